package mesh

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/gossip"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault/envelope"
)

// Verdict is what Deliver decided about an event: the verdict shared with
// the p2p transport ([gossip.Verdict]), with gossipsub's meaning: Accept
// stores (or keeps as proof), applies and forwards it; Ignore drops it
// without blaming the sender (a duplicate, an event that waits for its
// predecessor or dependencies, one dated in the future); Reject drops it and
// blames the sender (bad signature, foreign network, broken chain, forged
// clock).
type Verdict = gossip.Verdict

// Verdicts.
const (
	Accept = gossip.Accept
	Ignore = gossip.Ignore
	Reject = gossip.Reject
)

// Reasons reported to OnVerdict.
const (
	ReasonOK             = "ok"
	ReasonDuplicate      = "duplicate"
	ReasonPending        = "waiting for dependencies"
	ReasonPendingFull    = "pending buffer full"
	ReasonFuture         = "dated in the future"
	ReasonEquivocation   = "equivocation"
	ReasonTainted        = "issuer equivocated"
	ReasonBadChain       = "broken chain"
	ReasonBadClock       = "forged clock"
	ReasonOversize       = "oversize"
	ReasonMalformed      = "malformed"
	ReasonForeignNetwork = "foreign network"
	ReasonBadSignature   = "bad signature"
	ReasonBadRecord      = "first event is not an admin-signed own record"
	ReasonUnregistered   = "unregistered issuer"
	ReasonStore          = "store error"
)

// Limits.
const (
	// MaxEventSize bounds one encoded event.
	MaxEventSize = 1 << 20
	// MaxPending bounds the events that wait for their predecessor or
	// dependencies, in count, per issuer, and in bytes.
	MaxPending          = 4096
	MaxPendingPerIssuer = 1024
	MaxPendingBytes     = 64 << 20
	// MaxSkew is how far in the future an event may be dated and still be
	// admitted now; a later one waits (it is not stored, anti-entropy
	// brings it again).
	MaxSkew = time.Minute
	// DefaultStaleness is the default staleness bound (LogOptions.Staleness).
	DefaultStaleness = 10 * time.Second
)

// ErrOldLog is returned by OpenLog for a data directory whose event log
// was written by an earlier keymesh (event format 1).
var ErrOldLog = errors.New("mesh: the event log is in format 1, which this keymesh no longer reads: " +
	"format 2 chains every node's events and verifies their clocks, and format 1 events cannot be converted " +
	"(they carry other nodes' signatures); start this node from a new data directory and register it again")

// header is what the fold and admission read of a held event: 80 bytes
// instead of the whole event (signature, previous id, dependencies,
// payload and attachments), which the store holds (fullEvent reads it
// back). It is in memory for the events of a chain's window and for those
// the fold's state refers to; admission reads the header of an older event
// back from the store (Log.at).
type header struct {
	Issuer  network.NodeKey
	Seq     uint64
	Lamport uint64
	Time    time.Time // UTC, as event.Parse returns it
	Kind    event.Kind
}

// entry is one event of the log in memory: its header and id, what the
// fold needs of its payload, and the whole event only until it is stored.
// A chain keeps the entries of its window only (chain); the fold's state
// keeps those it refolds (State.Keys[k].events and .policy); an entry
// neither refers to any more is garbage, and the store alone holds its
// event.
type entry struct {
	ev header
	// id is the event's ID, computed once.
	id [32]byte
	// key is the key a key event names ("" for other kinds).
	key string
	// payload is the decoded payload the fold reads; nil for a stored
	// grant, which policyEvent reads back from the store.
	payload any
	// held are the digests of the attachments (wrapped copies) of a
	// KeyVersion or KeyShare that this node holds: in the store, under
	// the key's prefix, not in memory.
	held []event.Digest
	// full is the whole event with the attachments it came with, until it
	// is durably stored (dropEvent); pending and staged events keep it.
	full *event.Event
	// arrived is when this node admitted it, as l.clock() - l.born (so
	// monotonic with the real clock); admitted is false for an event
	// loaded at start, which counts as arrived long ago.
	arrived  time.Duration
	size     int32 // of its encoding, at most MaxEventSize
	admitted bool
	stored   bool // full was dropped: the store holds the event
}

// newEntry returns the entry of a parsed (or signed) event whose payload
// decoded to p; raw is its encoding's size.
func newEntry(ev *event.Event, p any, size int) *entry {
	e := &entry{
		ev:      header{Issuer: ev.Issuer, Seq: ev.Seq, Lamport: ev.Lamport, Time: ev.Time, Kind: ev.Kind},
		id:      ev.ID(),
		key:     keyName(p),
		payload: p,
		full:    ev,
		size:    int32(min(size, math.MaxInt32)),
	}
	for _, a := range ev.Attachments {
		e.held = append(e.held, event.DigestOf(a))
	}
	return e
}

// holds reports whether this node holds e's attachment with digest d.
func (e *entry) holds(d event.Digest) bool { return slices.Contains(e.held, d) }

// dropEvent drops a durably stored event from memory but for its header,
// id and the digests of its attachments held: the store holds the event
// and its attachments. A grant's or revocation's decoded payload goes too
// (they are most of a long log, and a grant written by keymesh before
// causal reach lists every earlier revocation of its pair): only refolds
// need them again, and a refold reads them back from the store
// (State.refoldPolicy). A grant that cannot be read back does not count,
// which denies; a revocation that cannot be read back suspends its pair
// (policy.State.Suspend), which denies too: a failed read fails closed.
// Other kinds keep their payload, which the fold reads on every event of
// their key (a key has few such events), and for which leaving out what
// cannot be read back would not fail closed: without a KeyDestroy or a
// compromising KeyState the key would come back to life, and without a
// KeyVersion (the newest, say, that an org revocation rotated to) a node
// that has not installed it yet would go on encrypting under an older
// one, which the revoked org holds. The payloads kept share their key's
// name (sharedPayload). Refolds, anti-entropy answers and equivocation
// checks read the whole event from the store (fullEvent, rawOf). What is
// left is dropped in turn when the entry leaves
// its chain's window (chain.trim) and the state no longer refers to it.
func (e *entry) dropEvent() {
	e.full, e.stored = nil, true
	if e.ev.Kind == event.KindGrant || e.ev.Kind == event.KindRevoke {
		e.payload = nil
	}
}

// fullEvent returns e's whole event with the attachments this node holds,
// from the store once it was dropped. l.mu is held (or the log is being
// opened).
func (l *Log) fullEvent(e *entry) (*event.Event, error) {
	if e.full != nil {
		return e.full, nil
	}
	ev, err := l.storedEvent(e)
	if err != nil {
		return nil, err
	}
	for _, d := range e.held {
		blob, err := l.store.Get(attKey(e.key, d))
		if errors.Is(err, kv.ErrNotFound) {
			continue // pruned meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("mesh: read attachment %x of event %s/%d: %w", d[:8], IssuerID(e.ev.Issuer), e.ev.Seq, err)
		}
		ev.Attachments = append(ev.Attachments, blob)
	}
	return ev, nil
}

// storedEvent reads e's event from the store, without attachments, and
// checks it is the one the log holds.
func (l *Log) storedEvent(e *entry) (*event.Event, error) {
	raw, err := l.store.Get(evKey(e.ev.Issuer, e.ev.Seq))
	if err != nil {
		return nil, fmt.Errorf("mesh: read event %s/%d: %w", IssuerID(e.ev.Issuer), e.ev.Seq, err)
	}
	ev, err := event.Parse(raw)
	if err != nil || ev.ID() != e.id {
		return nil, fmt.Errorf("mesh: stored event %s/%d does not match the log", IssuerID(e.ev.Issuer), e.ev.Seq)
	}
	return ev, nil
}

// storedAt reads issuer's admitted event at seq (one of its chain, before
// the window) back from the store, without attachments. The log keeps no
// id for such a position to compare with, as storedEvent does; what it
// checks instead is the position: the stored bytes parse, and as an event
// of this network by issuer at seq. The store holds under evKey(issuer,
// seq) the event this log admitted there and nothing else (putEntry
// writes it in the admitting write; a failed write is rolled back, and
// nothing overwrites it), and a node's store authenticates every record,
// so this is that event; an equivocation check verifies its signature as
// well (conflict), so that evidence never holds an event that does not
// verify. A failed read or check is an error, and every
// caller then refuses the event it was judging or does not count what it
// looked for: a read never admits. l.mu is held.
func (l *Log) storedAt(issuer network.NodeKey, seq uint64) (*event.Event, error) {
	raw, err := l.store.Get(evKey(issuer, seq))
	if err != nil {
		return nil, fmt.Errorf("mesh: read event %s/%d: %w", IssuerID(issuer), seq, err)
	}
	ev, err := event.Parse(raw)
	if err != nil || ev.Network != l.nid || ev.Issuer != issuer || ev.Seq != seq {
		return nil, fmt.Errorf("mesh: stored event %s/%d is not the event of that position", IssuerID(issuer), seq)
	}
	return ev, nil
}

// at returns the header and id of the event at seq of c, issuer's chain
// (1 <= seq <= c.length()): the window's entry, or read back from the store
// (storedAt), which can fail. l.mu is held.
func (l *Log) at(c *chain, issuer network.NodeKey, seq uint64) (header, [32]byte, error) {
	if e := c.recent(seq); e != nil {
		return e.ev, e.id, nil
	}
	ev, err := l.storedAt(issuer, seq)
	if err != nil {
		return header{}, [32]byte{}, err
	}
	return header{Issuer: ev.Issuer, Seq: ev.Seq, Lamport: ev.Lamport, Time: ev.Time, Kind: ev.Kind}, ev.ID(), nil
}

// keyEntry returns the fold's entry of a stored KeyVersion or KeyShare
// event ev (with the id id) that is no longer in its chain's window: the
// state keeps every such entry in its key's events (State.apply), with the
// digests of the copies this node holds. nil for another kind, or if the
// state has none (then nothing is merged into or read back with it).
// Linear in the key's events, which are few. l.mu is held.
func (l *Log) keyEntry(ev *event.Event, id [32]byte) *entry {
	if ev.Kind != event.KindKeyVersion && ev.Kind != event.KindKeyShare {
		return nil
	}
	p, err := decodeStored(ev)
	if err != nil {
		return nil
	}
	k := l.state.Keys[wrapKey(p)]
	if k == nil {
		return nil
	}
	for _, e := range k.events {
		if e.ev.Issuer == ev.Issuer && e.ev.Seq == ev.Seq && e.id == id {
			return e
		}
	}
	return nil
}

// rawAt returns issuer's event at seq, before its chain's window, in its
// binary form with the attachments this node holds, as rawOf does for an
// entry of the window. l.mu is held.
func (l *Log) rawAt(issuer network.NodeKey, seq uint64) ([]byte, error) {
	ev, err := l.storedAt(issuer, seq)
	if err != nil {
		return nil, err
	}
	if ev.Kind == event.KindKeyVersion || ev.Kind == event.KindKeyShare { // the kinds with attachments
		if e := l.keyEntry(ev, ev.ID()); e != nil {
			return l.rawOf(e)
		}
	}
	return ev.Marshal(), nil
}

// readAttachment reads the wrapped copy with digest d of key from the
// store (nil if it is not there). l.mu is held.
func (l *Log) readAttachment(key string, d event.Digest) ([]byte, error) {
	blob, err := l.store.Get(attKey(key, d))
	if errors.Is(err, kv.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		err = fmt.Errorf("mesh: read wrapped copy %x of %q: %w", d[:8], key, err)
		l.logger.Error("mesh: read a wrapped copy", "err", err)
		return nil, err
	}
	return blob, nil
}

// loadPolicyEvent is the state's load: storedEvent, logging a failure
// (applyPolicy has no error to return; a grant then does not count, and a
// revocation suspends its pair, until the next refold of its key).
func (l *Log) loadPolicyEvent(e *entry) (*event.Event, error) {
	ev, err := l.storedEvent(e)
	if err != nil {
		l.logger.Error("mesh: read back a stored event for a refold", "err", err)
	}
	return ev, err
}

// rawOf returns e's event in its binary form (without attachments it does
// not hold). l.mu is held.
func (l *Log) rawOf(e *entry) ([]byte, error) {
	ev, err := l.fullEvent(e)
	if err != nil {
		return nil, err
	}
	return ev.Marshal(), nil
}

// policyEvent returns the decoded payload of a grant or revocation entry
// and, for a grant, the dependencies its event names, which its reach is
// made of (State.reachOf). A stored entry's payload is decoded again from
// its event, read back from the store with load at most once. If that
// read fails it returns what is held (nil for a stored entry: the caller
// fails closed, see dropEvent) and no dependencies (a grant then reaches
// its own chain only, which denies).
func (e *entry) policyEvent(load func(*entry) (*event.Event, error)) (p any, deps []event.Dep) {
	grant := e.ev.Kind == event.KindGrant
	if !grant && e.payload != nil {
		return e.payload, nil
	}
	ev := e.full
	if ev == nil && load != nil {
		full, err := load(e)
		if err != nil {
			return e.payload, nil
		}
		ev = full
	}
	if ev == nil {
		return e.payload, nil
	}
	if grant {
		deps = ev.Deps
	}
	if e.payload != nil {
		return e.payload, deps
	}
	if p, err := decodeStored(ev); err == nil { // it decoded at admission
		return p, deps
	}
	return nil, deps
}

// DefaultDepSettle is the node's LogOptions.DepSettle.
const DefaultDepSettle = 500 * time.Millisecond

// wrapKey returns the key name of a KeyVersion or KeyShare payload, "" for
// other kinds.
func wrapKey(p any) string {
	switch p.(type) {
	case event.KeyVersion, event.KeyShare:
		return keyName(p)
	}
	return ""
}

// chainWindow is how many of a chain's newest entries the log keeps in
// memory at least: a chain's window holds from chainWindow to twice as
// many entries (chain.trim), plus, during a delivery, what it admits
// before the durable write. Admission reads what lies before the window
// back from the store (Log.at, Log.storedAt). Dependencies name recent
// heads, so they mostly fall in the window; it is at least settleLookback
// long, so settledHead finds what it looks for in memory.
const chainWindow = 128

// settleLookback is how many of a chain's newest events settledHead looks
// at.
const settleLookback = 64

// A window shorter than settledHead's look-back would hide settled events.
var _ [chainWindow - settleLookback]struct{}

// chain is one issuer's admitted events, contiguous from seq 1, and the
// lowest evidence of its equivocation this node holds. Its memory does
// not depend on its length: it keeps its length and a window of its newest
// entries (at least its head, and every entry not stored yet); the store
// holds every event (evKey), and the events before the window are read
// back from there when admission or anti-entropy needs them.
type chain struct {
	// base is the number of the chain's events before the window:
	// events[i] is the event at seq base+1+i.
	base     uint64
	events   []*entry // the window, oldest first; never empty once base > 0
	evidence *Evidence
}

// length is the number of events the chain holds, the seq of its head.
func (c *chain) length() uint64 {
	if c == nil {
		return 0
	}
	return c.base + uint64(len(c.events))
}

func (c *chain) head() *entry {
	if c == nil || len(c.events) == 0 {
		return nil
	}
	return c.events[len(c.events)-1]
}

// recent returns the entry at seq if the window holds it, nil if seq is
// before the window or past the head.
func (c *chain) recent(seq uint64) *entry {
	if c == nil || seq <= c.base || seq > c.length() {
		return nil
	}
	return c.events[seq-c.base-1]
}

// trim drops the oldest entries of the window once it holds 2*chainWindow
// of them, keeping the newest chainWindow, and never an entry whose event
// is not stored yet (a delivery's entries before its write; they are
// newer than any stored one). Trimming by halves costs O(1) per event.
// The fold's state may still refer to a dropped entry (State.Keys); the
// chain does not.
func (c *chain) trim() {
	if len(c.events) < 2*chainWindow {
		return
	}
	drop := len(c.events) - chainWindow
	if i := slices.IndexFunc(c.events[:drop], func(e *entry) bool { return !e.stored }); i >= 0 {
		drop = i
	}
	if drop == 0 {
		return
	}
	n := copy(c.events, c.events[drop:])
	clear(c.events[n:])
	c.events = c.events[:n]
	if cap(c.events) > 4*chainWindow {
		// A large delivery grew the window: give the array back.
		c.events = slices.Clone(c.events)
	}
	c.base += uint64(drop)
}

// Log is a node's durable event log and the fold of it. It is safe for
// concurrent use.
type Log struct {
	store     kv.Store
	genesis   *network.Genesis
	nid       network.NetworkID
	priv      crypto.Signer
	self      network.NodeKey
	clock     func() time.Time
	logger    *slog.Logger
	born      time.Time // l.clock() at OpenLog: entries' arrival times count from it
	verdict   func(Verdict, string)
	staleness time.Duration
	depSettle time.Duration

	mu           sync.Mutex
	storeErr     error // the last failed write (l.mu), for Issue's error
	chains       map[network.NodeKey]*chain
	pending      map[network.NodeKey]map[uint64]*entry
	pendingCount int
	pendingBytes int
	height       int
	state        *State
	referenced   map[network.NodeKey]uint64 // heads this node's events named
	notify       chan struct{}
	pruned       map[string]bool // destroyed keys whose attachments are gone
	unpruned     map[string]bool // destroyed keys whose pruning failed, to retry
	checkpoints  map[network.NodeKey]*event.Checkpoint
	// forkHints: issuers at whose position s a waiting event names another
	// event than the one held — a fork no evidence shows yet. Wants asks
	// peers for that position, so the other branch's event comes in and
	// becomes evidence. Bounded by maxForkHints.
	forkHints map[network.NodeKey]uint64
	fresh     map[network.NodeKey]time.Time // node → newest satisfied checkpoint time
	policy    atomic.Pointer[policy.State]
}

// LogOptions configures OpenLog.
type LogOptions struct {
	Clock  func() time.Time
	Logger *slog.Logger
	// OnVerdict is called for every delivered event (metrics).
	OnVerdict func(v Verdict, reason string)
	// Staleness is how long a node of another org may go without a
	// satisfied checkpoint from a key's owner org before Fresh refuses the
	// key (default DefaultStaleness).
	Staleness time.Duration
	// DepSettle is how long an event must have been held before this
	// node's own events name it as a dependency (0: at once). A receiver
	// then most likely holds it too, so causal delivery does not make a
	// new event wait for another issuer's event that is still spreading;
	// nodes use DefaultDepSettle.
	DepSettle time.Duration
}

// Storage: each admitted event without its attachments under "mesh/ev/" +
// issuer + seq; each attachment (a wrapped key copy) under "mesh/att/" +
// key name + "/" + digest, so a destroyed key's copies can be erased by
// prefix; the lowest equivocation evidence against an issuer under
// "mesh/proof/" + issuer.
var (
	evPrefix    = []byte("mesh/ev/")
	attPrefix   = []byte("mesh/att/")
	proofPrefix = []byte("mesh/proof/")
)

func evKey(issuer network.NodeKey, seq uint64) []byte {
	k := append(append([]byte(nil), evPrefix...), issuer[:]...)
	return binary.BigEndian.AppendUint64(k, seq)
}

func proofKey(issuer network.NodeKey) []byte {
	return append(append([]byte(nil), proofPrefix...), issuer[:]...)
}

func attKeyPrefix(key string) []byte { return append(append([]byte(nil), attPrefix...), key+"/"...) }

func attKey(key string, d event.Digest) []byte { return append(attKeyPrefix(key), d[:]...) }

// wrapDigests returns the digests a KeyVersion or KeyShare payload names.
func wrapDigests(p any) []event.Digest {
	switch v := p.(type) {
	case event.KeyVersion:
		out := make([]event.Digest, len(v.Wraps))
		for i, w := range v.Wraps {
			out[i] = w.Digest
		}
		return out
	case event.KeyShare:
		out := make([]event.Digest, len(v.Shares))
		for i, sh := range v.Shares {
			out[i] = sh.Wrap.Digest
		}
		return out
	}
	return nil
}

// OpenLog loads every stored event and folds them. priv is this node's
// Ed25519 signing key (its libp2p identity key): the vault's Signer, whose
// private half stays in the vault, or an ed25519.PrivateKey. A log written
// by an earlier keymesh is refused with ErrOldLog.
func OpenLog(store kv.Store, g *network.Genesis, priv crypto.Signer, o LogOptions) (*Log, error) {
	if pub, ok := priv.Public().(ed25519.PublicKey); !ok || len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("mesh: the signing key is not an Ed25519 key")
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.OnVerdict == nil {
		o.OnVerdict = func(Verdict, string) {}
	}
	if o.Staleness <= 0 {
		o.Staleness = DefaultStaleness
	}
	l := &Log{
		store: store, genesis: g, nid: g.ID(), priv: priv, clock: o.Clock, logger: o.Logger, verdict: o.OnVerdict,
		staleness: o.Staleness, depSettle: o.DepSettle, chains: map[network.NodeKey]*chain{}, pending: map[network.NodeKey]map[uint64]*entry{},
		state: newState(g, newPolStore(store, o.Logger)), referenced: map[network.NodeKey]uint64{}, notify: make(chan struct{}, 1),
		pruned: map[string]bool{}, unpruned: map[string]bool{}, checkpoints: map[network.NodeKey]*event.Checkpoint{}, fresh: map[network.NodeKey]time.Time{},
		forkHints: map[network.NodeKey]uint64{},
	}
	copy(l.self[:], priv.Public().(ed25519.PublicKey))
	l.born = l.clock()
	// A loaded grant's payload is dropped once applied (loadOne): a
	// refold while loading reads it back like later ones.
	l.state.load, l.state.readAtt = l.loadPolicyEvent, l.readAttachment
	// The policy history is derived from the events: the load writes it
	// again (polStore).
	if err := l.state.pol.reset(); err != nil {
		return nil, fmt.Errorf("mesh: clear the policy history: %w", err)
	}
	err := l.loadAll(store)
	if errors.Is(err, ErrOldLog) {
		return nil, ErrOldLog
	}
	if err != nil {
		return nil, fmt.Errorf("mesh: load event log: %w", err)
	}
	err = store.Scan(proofPrefix, func(k, v []byte) error {
		ev, err := parseEvidence(v, l.nid)
		if err != nil {
			return fmt.Errorf("stored evidence %x: %w", k, err)
		}
		l.installEvidence(ev)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mesh: load equivocation proofs: %w", err)
	}
	if h := l.chains[l.self].head(); h != nil {
		ev, err := l.storedEvent(h)
		if err != nil {
			return nil, fmt.Errorf("mesh: load this node's last event: %w", err)
		}
		for _, d := range ev.Deps {
			l.referenced[d.Issuer] = d.Seq
		}
	}
	if err := l.state.pol.flush(); err != nil {
		l.logger.Error("mesh: write the policy history", "err", err) // kept in memory, tried again
	}
	l.publishPolicy()
	l.pruneAll()
	return l, nil
}

// loadBatch is how many stored events OpenLog parses at once.
const loadBatch = 1024

// loadAhead is how many such batches may be scanned and parsed ahead of
// the one being applied: enough for parsing to go on while applying waits
// for the attachments' scan (a variable for tests).
var loadAhead = 64

// errLoadStopped ends the scan of loadAll once applying failed.
var errLoadStopped = errors.New("mesh: load stopped")

// loadAll loads every stored event into l (OpenLog). Keys are issuer ||
// seq, so a scan yields every chain in order. Start-up is a pipeline: the
// scan runs on its own goroutine and hands on batches of stored events;
// each batch is parsed and decoded on every core (loadEvents) while the
// scan goes on; the attachments are read by a scan of their own; and the
// batches are applied here, one after another in store order (attach,
// loadOne), as each is ready. At most loadAhead batches wait to be
// applied. When it returns, nothing it started still reads the store.
func (l *Log) loadAll(store kv.Store) error {
	type parsed struct {
		items []loadItem
		done  chan struct{} // closed once items are parsed
	}
	// The attachments are read in one scan of their own, beside the
	// events' scan and parsing (see loadAttachments); only applying waits
	// for it.
	attsDone := make(chan struct{})
	var atts map[string]struct{}
	var attsErr error
	go func() {
		defer close(attsDone)
		atts, attsErr = loadAttachments(store)
	}()
	defer func() { <-attsDone }()
	ready := make(chan parsed, loadAhead)
	stop := make(chan struct{})
	scanned := make(chan error, 1)
	go func() {
		defer close(ready)
		var batch []loadItem
		send := func() bool {
			p := parsed{items: batch, done: make(chan struct{})}
			batch = nil
			go func() {
				defer close(p.done)
				loadEvents(p.items)
			}()
			select {
			case ready <- p:
				return true
			case <-stop:
				<-p.done
				return false
			}
		}
		err := scanAll(store, evPrefix, func(k, v []byte) error {
			batch = append(batch, loadItem{k: bytes.Clone(k), v: bytes.Clone(v)})
			if len(batch) < loadBatch || send() {
				return nil
			}
			return errLoadStopped
		})
		if err == nil && len(batch) > 0 {
			send()
		}
		scanned <- err
	}()
	var err error
	for p := range ready {
		<-p.done
		for i := 0; err == nil && i < len(p.items); i++ {
			it := &p.items[i]
			if it.err == nil && it.wraps {
				<-attsDone
				if attsErr != nil {
					it.err = fmt.Errorf("load attachment: %w", attsErr)
				} else {
					attach(it.e, atts)
				}
			}
			if err = l.loadOne(it); err != nil {
				close(stop) // the scan stops; what it handed on is drained
			}
		}
	}
	// Damage found by a scan is reported in preference to what applying
	// made of the records before it, as it was when the vault checked
	// the whole store first: the scans read to the end (scanAll).
	if serr := <-scanned; err == nil || errors.Is(serr, kv.ErrTampered) {
		if serr != nil {
			err = serr
		}
	}
	<-attsDone
	if attsErr != nil && (err == nil || errors.Is(attsErr, kv.ErrTampered)) {
		err = fmt.Errorf("load attachments: %w", attsErr)
	}
	return err
}

// checkedScanner is the store of a node (kv.Authenticated), whose
// ScanChecked checks every record under a prefix, to the end.
type checkedScanner interface {
	ScanChecked(prefix []byte, fn func(k, v []byte) error) error
}

// scanAll scans prefix with the store's ScanChecked if it has one: a
// node's vault leaves the tags of the records under the prefixes OpenLog
// reads in full (LoadChecked) to these scans, so each is checked once at
// start-up.
func scanAll(store kv.Reader, prefix []byte, fn func(k, v []byte) error) error {
	if cs, ok := store.(checkedScanner); ok {
		return cs.ScanChecked(prefix, fn)
	}
	return store.Scan(prefix, fn)
}

// LoadChecked lists the store prefixes OpenLog reads in full with the
// store's ScanChecked (the events, their attachments, and the policy
// history it reads before it drops or deletes it to write again:
// polStore.reset), checking every record's tag there: a node's vault may
// leave them out of its own check of the store (vault.WithCheckedOnLoad).
func LoadChecked() []string {
	return []string{string(evPrefix), string(attPrefix), string(polPrefix)}
}

// loadItem is one stored event being loaded: its store key and bytes,
// then what loadEvents made of them.
type loadItem struct {
	k, v  []byte
	e     *entry
	wraps bool // e is a KeyVersion or KeyShare: attach its copies
	err   error
}

// loadAttachments lists every stored attachment, in one scan of
// "mesh/att/": the set of their store keys. OpenLog looked each one up by
// a point read instead, and at 100k keys each of those 100k reads
// decompressed a block of badger's table that its small cache did not
// hold (227 MB of garbage per start-up, docs/benchmarks.md). The set
// lives only while the log loads; the blobs stay in the store.
func loadAttachments(store kv.Store) (map[string]struct{}, error) {
	atts := map[string]struct{}{}
	err := scanAll(store, attPrefix, func(k, _ []byte) error {
		atts[string(k)] = struct{}{}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return atts, nil
}

// attach records which of the copies a loaded KeyVersion or KeyShare
// event names this node holds (those atts lists), in the payload's order.
func attach(e *entry, atts map[string]struct{}) {
	name := wrapKey(e.payload)
	for _, d := range wrapDigests(e.payload) {
		if _, ok := atts[string(attKey(name, d))]; ok {
			e.held = append(e.held, d)
		}
	}
}

// loadEvents parses and decodes every item of batch on every core. What
// it does per item needs nothing of the log; loadAll attaches and
// loadOne applies the items in order.
func loadEvents(batch []loadItem) {
	workers := min(runtime.GOMAXPROCS(0), (len(batch)+63)/64)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(batch); i += workers {
				batch[i].e, batch[i].err = loadEvent(batch[i].k, batch[i].v)
				batch[i].wraps = batch[i].e != nil && wrapKey(batch[i].e.payload) != ""
				batch[i].v = nil
			}
		}()
	}
	wg.Wait()
}

func loadEvent(k, v []byte) (*entry, error) {
	ev, err := event.Parse(v)
	if errors.Is(err, event.ErrOldFormat) {
		return nil, ErrOldLog
	}
	if err != nil {
		return nil, fmt.Errorf("stored event %x: %w", k, err)
	}
	p, err := decodeStored(ev)
	if err != nil {
		return nil, fmt.Errorf("stored event %x: %w", k, err)
	}
	e := newEntry(ev, p, len(v))
	// The store holds it. A grant keeps its event until it is applied
	// (loadOne drops it): its reach is made of the dependencies it names.
	if ev.Kind != event.KindGrant {
		e.full = nil
	}
	e.stored = true
	e.held = nil // which copies this node holds: attach
	return e, nil
}

// decodeStored decodes the payload of a stored event as decode does, for
// the kinds a large log is made of (key creates and versions, grants and
// revocations) without decode's canonical-form check: json.Unmarshal and
// the payload's Validate, not strictjson's second encoding of the value
// to compare with the input, which was half of a start-up's decoding
// (docs/benchmarks.md). That check is not needed here: the log admitted
// the event only after decode accepted its payload, and the store it
// reads back authenticates every record under the node's keys (the
// vault's Store), so the bytes are the ones decode accepted, and
// json.Unmarshal of canonical JSON gives what the strict decode gives
// (TestDecodeStoredAsDecode). Anything it does not accept goes through
// decode, for decode's error.
func decodeStored(ev *event.Event) (any, error) {
	switch ev.Kind {
	case event.KindKeyCreate:
		var c event.KeyCreate
		if json.Unmarshal(ev.Payload, &c) == nil && c.Validate() == nil {
			return c, nil
		}
	case event.KindKeyVersion:
		var v event.KeyVersion
		if json.Unmarshal(ev.Payload, &v) == nil && v.Validate() == nil {
			v.ActivateAt = utcTime(v.ActivateAt)
			return v, nil
		}
	case event.KindGrant:
		var g policy.Grant
		if json.Unmarshal(ev.Payload, &g) == nil && g.Validate() == nil && envelope.CheckKeyName(g.Key) == nil {
			g.NotBefore, g.NotAfter, g.IssuedAt = utcTime(g.NotBefore), utcTime(g.NotAfter), utcTime(g.IssuedAt)
			return g, nil
		}
	case event.KindRevoke:
		var r policy.Revocation
		if json.Unmarshal(ev.Payload, &r) == nil && r.Validate() == nil && envelope.CheckKeyName(r.Key) == nil {
			r.IssuedAt = utcTime(r.IssuedAt)
			return r, nil
		}
	}
	return decode(ev)
}

// utcTime is t in UTC, the zero time staying zero (as package event
// returns decoded times).
func utcTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// loadOne appends a loaded event to its chain and applies it (OpenLog,
// in store order).
func (l *Log) loadOne(it *loadItem) error {
	if it.err != nil {
		return it.err
	}
	e, ev := it.e, it.e.ev
	c := l.chains[ev.Issuer]
	if c == nil {
		c = &chain{}
		l.chains[ev.Issuer] = c
	}
	if ev.Seq != c.length()+1 {
		return fmt.Errorf("stored chain of %s has a gap at %d", ev.Issuer, ev.Seq)
	}
	c.events = append(c.events, e)
	l.height++
	l.state.apply(e)
	e.dropEvent() // stored: from now on the store holds the payload
	c.trim()      // the chain keeps its window only, as it does running
	return nil
}

func (l *Log) publishPolicy() { l.policy.Store(l.state.Policy) }

// Self returns this node's key.
func (l *Log) Self() network.NodeKey { return l.self }

// Network returns the network id.
func (l *Log) Network() network.NetworkID { return l.nid }

// Genesis returns the network definition.
func (l *Log) Genesis() *network.Genesis { return l.genesis }

// Changed is signalled (without blocking) after the state changes.
func (l *Log) Changed() <-chan struct{} { return l.notify }

// Policy returns the current grants and revocations; safe for concurrent
// use without the log's lock.
func (l *Log) Policy() *policy.State { return l.policy.Load() }

// View calls fn with the current state under the log's lock; fn must not
// retain it or call back into the log.
func (l *Log) View(fn func(*State)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fn(l.state)
}

// Height returns the number of events held.
func (l *Log) Height() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.height
}

// Pending returns the number of events waiting for dependencies.
func (l *Log) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pendingCount
}

func (l *Log) signal() {
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// Deliver validates, stores durably and applies one raw event or
// checkpoint. It is idempotent, and it is the gossip validator: an event is
// on disk before it is forwarded.
func (l *Log) Deliver(raw []byte) Verdict {
	return l.DeliverBatch([][]byte{raw})[0]
}

// DeliverBatch delivers events in order, as Deliver would one by one, but
// stores every admitted event with one durable write: anti-entropy pulls
// batches, and a node catching up pays one fsync per batch. If the write
// fails, none of the batch is kept.
func (l *Log) DeliverBatch(raws [][]byte) []Verdict {
	out := make([]Verdict, len(raws))
	reasons := make([]string, len(raws))
	entries := make([]*entry, len(raws))
	var evs []int // indices of events, parsed below
	for i, raw := range raws {
		switch {
		case event.IsCheckpoint(raw):
			out[i], reasons[i] = l.deliverCheckpoint(raw)
			continue
		case len(raw) > 0 && raw[0] == EvidenceFormat:
			v, err := parseEvidence(raw, l.nid)
			if err != nil {
				out[i], reasons[i] = Reject, ReasonMalformed
				continue
			}
			out[i], reasons[i] = Ignore, ReasonDuplicate // unless it is better than what is held
			entries[i] = &entry{payload: v}
			continue
		}
		evs = append(evs, i)
	}
	l.parseAll(raws, evs, entries, out, reasons)
	l.mu.Lock()
	l.deliverLocked(entries, out, reasons)
	l.mu.Unlock()
	for i := range out {
		l.verdict(out[i], reasons[i])
		if out[i] != Accept && reasons[i] != ReasonDuplicate {
			l.logger.Debug("event not admitted", "verdict", out[i].String(), "reason", reasons[i])
		}
	}
	return out
}

// parseBatchMin is the batch size from which parseAll spreads the work.
const parseBatchMin = 16

// parseAll parses the events raws[i] for i in idx into entries, out and
// reasons. parse needs nothing but the event, so a large batch (a node
// catching up pulls batches of up to 1,000) is checked on every core:
// signature verification is most of a catch-up's cost. The verdicts do
// not depend on how the work is split.
func (l *Log) parseAll(raws [][]byte, idx []int, entries []*entry, out []Verdict, reasons []string) {
	workers := min(runtime.GOMAXPROCS(0), len(idx)/parseBatchMin)
	if workers <= 1 {
		for _, i := range idx {
			entries[i], out[i], reasons[i] = l.parse(raws[i])
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j := int(next.Add(1)) - 1
				if j >= len(idx) {
					return
				}
				i := idx[j]
				entries[i], out[i], reasons[i] = l.parse(raws[i])
			}
		}()
	}
	wg.Wait()
}

// parse checks what needs nothing but the event: size, form, network,
// signature, payload and attachments, and that an issuer's first event is
// its own admin-signed record. It returns the entry, or nil and the
// verdict.
func (l *Log) parse(raw []byte) (*entry, Verdict, string) {
	if len(raw) > MaxEventSize {
		return nil, Reject, ReasonOversize
	}
	ev, err := event.Parse(raw)
	if err != nil {
		return nil, Reject, ReasonMalformed
	}
	if ev.Network != l.nid {
		return nil, Reject, ReasonForeignNetwork
	}
	if err := ev.Verify(); err != nil {
		return nil, Reject, ReasonBadSignature
	}
	p, err := decode(ev)
	if err != nil || ev.VerifyAttachments() != nil {
		return nil, Reject, ReasonMalformed
	}
	e := newEntry(ev, p, len(raw))
	if ev.Seq == 1 {
		r, ok := p.(network.NodeRecord)
		if !ok || r.SignKey != ev.Issuer || !l.recordSigned(e.id, r) {
			return nil, Reject, ReasonBadRecord
		}
	}
	return e, Accept, ReasonOK
}

// recordSigned checks a first event's admin signature through the state's
// cache, so the fold does not verify it again.
func (l *Log) recordSigned(id [32]byte, r network.NodeRecord) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state.adminSigned(id, r.Org, r.AdminKey, r.VerifyAdmin)
}

// deliverLocked admits the parsed entries in order (nil ones keep the
// verdict already in out), then whatever pending events they unblock, and
// stores the newly admitted ones with one write; if the write fails they
// are taken back out and reported as store errors. l.mu is held.
func (l *Log) deliverLocked(entries []*entry, out []Verdict, reasons []string) {
	var staged []*entry
	var proofs []*Evidence
	for i, e := range entries {
		if e == nil {
			continue
		}
		var v *Evidence
		if given, ok := e.payload.(*Evidence); ok && e.full == nil {
			v = given
			// Its events may also prove something against this node's
			// own chain, perhaps from an earlier position.
			for _, x := range []*event.Event{given.A, given.B} {
				if w := l.conflict(x); w != nil && w.better(v) {
					v = w
				}
			}
		} else {
			out[i], reasons[i], v = l.admit(e, &staged)
		}
		if v != nil && v.better(l.heldEvidence(v.A.Issuer)) && !slices.ContainsFunc(proofs, func(p *Evidence) bool { return p.A.Issuer == v.A.Issuer && !v.better(p) }) {
			proofs = append(proofs, v)
			out[i], reasons[i] = Accept, ReasonEquivocation // forwarded, so every node learns it
		}
	}
	if len(staged) > 0 {
		staged = append(staged, l.drainPending()...)
	}
	if len(staged) == 0 && len(proofs) == 0 {
		return
	}
	err := l.store.Update(func(tx kv.Txn) error {
		for _, e := range staged {
			if err := putEntry(tx, e); err != nil {
				return err
			}
		}
		for _, p := range proofs {
			if err := tx.Set(proofKey(p.A.Issuer), p.Marshal()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		l.logger.Error("mesh: store events", "err", err)
		l.storeErr = err
		l.rollback(staged)
		for i, e := range entries {
			if e != nil && slices.Contains(staged, e) {
				out[i], reasons[i] = Ignore, ReasonStore
			}
		}
		return
	}
	// Only the keys these events touch can have become destroyed (a
	// delivery never destroys another key), so pruning is linear in the
	// delivery, not in the keys held.
	touched := make([]string, 0, len(staged))
	for _, e := range staged {
		touched = append(touched, e.key)
		l.state.apply(e)
		e.dropEvent() // stored: the store holds the whole event
	}
	for _, e := range staged {
		l.chains[e.ev.Issuer].trim()
	}
	for _, p := range proofs {
		l.installEvidence(p)
	}
	l.publishPolicy()
	l.prune(touched)
	l.signal()
}

// rollback takes staged entries back out of the chains after a failed
// write. Nothing was applied yet, and no chain was trimmed since they were
// appended (trim runs after the write), so they are in the windows.
// l.mu is held.
func (l *Log) rollback(staged []*entry) {
	for i := len(staged) - 1; i >= 0; i-- {
		e := staged[i]
		c := l.chains[e.ev.Issuer]
		n := int(e.ev.Seq - 1 - c.base)
		clear(c.events[n:])
		c.events = c.events[:n]
		l.height--
	}
}

// admit judges one parsed entry against the chains: a duplicate, an
// equivocation (returned as evidence), an event that must wait, or the
// next event of its issuer, which it appends to staged. l.mu is held.
func (l *Log) admit(e *entry, staged *[]*entry) (v Verdict, reason string, proof *Evidence) {
	ev := e.full
	name := wrapKey(e.payload)
	if name != "" && l.pruned[name] {
		ev.Attachments, e.held = nil, nil // the key is destroyed: never keep its copies
	}
	c := l.chains[ev.Issuer]
	if c != nil && ev.Seq <= c.length() {
		// A position held: the same event again, or equivocation. Before
		// the window, the held event is read back from the store; if
		// that fails the event is refused, neither a duplicate nor proof.
		old := c.recent(ev.Seq)
		if old == nil {
			held, err := l.storedAt(ev.Issuer, ev.Seq)
			if err != nil {
				l.logger.Error("mesh: equivocation check", "err", err)
				return Ignore, ReasonStore, nil
			}
			if held.ID() != e.id {
				return Ignore, ReasonDuplicate, l.conflict(ev)
			}
			if len(ev.Attachments) > 0 {
				old = l.keyEntry(held, e.id)
			}
			if old != nil && l.mergeAttachments(old, ev, name) {
				return Accept, ReasonOK, nil
			}
			return Ignore, ReasonDuplicate, nil
		}
		if old.id != e.id {
			return Ignore, ReasonDuplicate, l.conflict(ev)
		}
		if l.mergeAttachments(old, ev, name) {
			return Accept, ReasonOK, nil
		}
		return Ignore, ReasonDuplicate, nil
	}
	if c == nil && ev.Seq > 1 {
		// An issuer whose record is not held: nothing of it waits here
		// (anti-entropy pulls chains from their first event).
		return Ignore, ReasonUnregistered, nil
	}
	if c != nil && c.evidence != nil && ev.Seq > c.evidence.At+1 {
		return Ignore, ReasonTainted, nil // it equivocated: nothing it adds counts
	}
	if ok, why := l.ready(ev); !ok {
		if why == ReasonBadChain {
			return Ignore, ReasonDuplicate, l.conflict(ev)
		}
		if why == ReasonStore {
			return Ignore, ReasonStore, nil // not the sender's fault: it comes again
		}
		if why != "" {
			return Reject, why, nil
		}
		if ev.Time.After(l.clock().Add(MaxSkew)) {
			return Ignore, ReasonFuture, nil
		}
		v, r := l.hold(e)
		return v, r, nil
	}
	if ev.Time.After(l.clock().Add(MaxSkew)) {
		return Ignore, ReasonFuture, nil
	}
	l.appendEntry(e)
	*staged = append(*staged, e)
	return Accept, ReasonOK, nil
}

// conflict returns the lowest evidence that x (a verified event) gives
// against this node's chain of its issuer, or nil. l.mu is held.
func (l *Log) conflict(x *event.Event) *Evidence {
	c := l.chains[x.Issuer]
	if c == nil {
		return nil
	}
	var best *Evidence
	for _, seq := range []uint64{x.Seq - 1, x.Seq, x.Seq + 1} {
		if seq < 1 || seq > c.length() {
			continue
		}
		var held *event.Event
		var err error
		if e := c.recent(seq); e != nil {
			held, err = l.fullEvent(e)
		} else if held, err = l.storedAt(x.Issuer, seq); err == nil && held.Verify() != nil {
			// Before the window the log holds no id to check the stored
			// event against: evidence is made of verified events only, so
			// it proves what it says wherever it goes, and what the store
			// hands back is verified again (one signature per check).
			held, err = nil, fmt.Errorf("mesh: stored event %s/%d does not verify", IssuerID(x.Issuer), seq)
		}
		if err != nil {
			l.logger.Error("mesh: equivocation check", "err", err)
			continue
		}
		if v, ok := evidenceOf(held, x); ok && v.better(best) {
			best = v
		}
	}
	return best
}

func (l *Log) heldEvidence(k network.NodeKey) *Evidence {
	if c := l.chains[k]; c != nil {
		return c.evidence
	}
	return nil
}

// ready reports whether ev can be admitted now: it is the next event of
// its issuer, its predecessor is the one held, every dependency is held
// (or of a tainted issuer), and its clock is the one they give it. why is
// "" when it must wait, a reason when it can never be admitted, and
// ReasonStore when the header of a dependency before its chain's window
// could not be read back (Log.at): the event is not admitted now. An
// event names at most event.MaxDeps dependencies, so judging it reads at
// most that many events back, whichever old events it names.
func (l *Log) ready(ev *event.Event) (ok bool, why string) {
	c := l.chains[ev.Issuer]
	var prev *header
	if ev.Seq > 1 {
		if c.length() < ev.Seq-1 {
			return false, ""
		}
		h, id, err := l.at(c, ev.Issuer, ev.Seq-1) // the head: in the window
		if err != nil {
			l.logger.Error("mesh: read an event's predecessor", "err", err)
			return false, ReasonStore
		}
		if id != ev.Prev {
			return false, ReasonBadChain // the issuer signed two chains
		}
		prev = &h
	}
	want := uint64(1)
	minTime := time.Time{}
	if prev != nil {
		want = prev.Lamport + 1
		minTime = prev.Time
	}
	skipped := false
	for _, d := range ev.Deps {
		dc := l.chains[d.Issuer]
		if n, known := l.state.Nodes[d.Issuer]; known && n.Tainted != 0 && d.Seq >= n.Tainted {
			skipped = true // that issuer equivocated there: no branch counts
			continue
		}
		if dc.length() < d.Seq {
			return false, ""
		}
		// Its header: in the window, or read back from the store.
		de, id, err := l.at(dc, d.Issuer, d.Seq)
		if err != nil {
			l.logger.Error("mesh: read an event's dependency", "err", err)
			return false, ReasonStore
		}
		if id != d.ID {
			// A fork of d.Issuer no evidence shows yet: ask peers for
			// that position (Wants) until the other branch's event comes.
			if old, ok := l.forkHints[d.Issuer]; ok {
				l.forkHints[d.Issuer] = min(old, d.Seq)
			} else if len(l.forkHints) < maxForkHints {
				l.forkHints[d.Issuer] = d.Seq
			}
			return false, ""
		}
		want = max(want, de.Lamport+1)
		if de.Time.After(minTime) {
			minTime = de.Time
		}
	}
	if ev.Lamport < want || !skipped && ev.Lamport != want {
		return false, ReasonBadClock
	}
	if ev.Time.Before(minTime) {
		return false, ReasonBadClock // backdated below what it follows
	}
	return true, ""
}

// appendEntry appends the next event of its issuer. l.mu is held.
func (l *Log) appendEntry(e *entry) {
	c := l.chains[e.ev.Issuer]
	if c == nil {
		c = &chain{}
		l.chains[e.ev.Issuer] = c
	}
	e.arrived, e.admitted = l.clock().Sub(l.born), true
	c.events = append(c.events, e)
	l.height++
}

// settledHead returns the newest event of c this node has held for at
// least the dependency settling time (looking back at most settleLookback
// events, all in the window), or nil.
func (l *Log) settledHead(c *chain, now time.Time) *entry {
	for i, n := len(c.events)-1, 0; i >= 0 && n < settleLookback; i, n = i-1, n+1 {
		if e := c.events[i]; !e.admitted || now.Sub(l.born)-e.arrived >= l.depSettle {
			return e
		}
	}
	return nil
}

// hold keeps an event that waits for its predecessor or dependencies,
// within the pending bounds. l.mu is held.
func (l *Log) hold(e *entry) (Verdict, string) {
	m := l.pending[e.ev.Issuer]
	if old := m[e.ev.Seq]; old != nil {
		return Ignore, ReasonDuplicate
	}
	if len(m) >= MaxPendingPerIssuer {
		return Ignore, ReasonPendingFull
	}
	for l.pendingCount >= MaxPending || l.pendingBytes+int(e.size) > MaxPendingBytes {
		// Full: make room by dropping the newest event of the issuer with
		// the most waiting, if that is not this event's issuer — no
		// issuer crowds out the others (anti-entropy brings it again).
		if !l.evictFor(e.ev.Issuer) {
			return Ignore, ReasonPendingFull
		}
	}
	if m == nil {
		m = map[uint64]*entry{}
		l.pending[e.ev.Issuer] = m
	}
	m[e.ev.Seq] = e
	l.pendingCount++
	l.pendingBytes += int(e.size)
	return Ignore, ReasonPending
}

// evictFor drops one pending event of the issuer with the most waiting,
// unless that is issuer or it has no more than issuer. l.mu is held.
func (l *Log) evictFor(issuer network.NodeKey) bool {
	var top network.NodeKey
	most := 0
	for k, m := range l.pending {
		if len(m) > most || len(m) == most && compareKeys(k, top) < 0 {
			top, most = k, len(m)
		}
	}
	if most == 0 || top == issuer || most <= len(l.pending[issuer]) {
		return false
	}
	m := l.pending[top]
	var seq uint64
	for s := range m {
		seq = max(seq, s)
	}
	l.unhold(m, seq, m[seq])
	if len(m) == 0 {
		delete(l.pending, top)
	}
	return true
}

// drainPending admits every pending event that has become ready, until
// none is. l.mu is held.
func (l *Log) drainPending() []*entry {
	var out []*entry
	for progress := true; progress && l.pendingCount > 0; {
		progress = false
		issuers := make([]network.NodeKey, 0, len(l.pending))
		for k := range l.pending {
			issuers = append(issuers, k)
		}
		slices.SortFunc(issuers, compareKeys)
		for _, k := range issuers {
			m := l.pending[k]
			for {
				next := l.chains[k].length() + 1
				e := m[next]
				// Drop what the chain has passed.
				for seq, old := range m {
					if seq < next {
						l.unhold(m, seq, old)
					}
				}
				if e == nil {
					break
				}
				ok, why := l.ready(e.full)
				if !ok && why == "" {
					break
				}
				l.unhold(m, next, e)
				if !ok {
					break // a broken chain or clock: never admissible
				}
				l.appendEntry(e)
				out = append(out, e)
				progress = true
			}
			if len(m) == 0 {
				delete(l.pending, k)
			}
		}
	}
	return out
}

func (l *Log) unhold(m map[uint64]*entry, seq uint64, e *entry) {
	delete(m, seq)
	l.pendingCount--
	l.pendingBytes -= int(e.size)
}

// installEvidence keeps v as the evidence against its issuer and taints
// the issuer from v.At. l.mu is held (or the log is being opened).
func (l *Log) installEvidence(v *Evidence) {
	c := l.chains[v.A.Issuer]
	if c == nil {
		c = &chain{}
		l.chains[v.A.Issuer] = c
	}
	if !v.better(c.evidence) {
		return
	}
	c.evidence = v
	l.logger.Warn("mesh: a node signed two events that cannot both be in its chain; its events from there on have no effect",
		"issuer", v.A.Issuer.Hex(), "from_seq", v.At, "exact", v.Exact)
	l.state.taint(v.A.Issuer, v.At)
}

// putEntry writes an event without its attachments, and each attachment
// under its key's prefix.
func putEntry(tx kv.Txn, e *entry) error {
	name := wrapKey(e.payload)
	for _, a := range e.full.Attachments {
		if err := tx.Set(attKey(name, event.DigestOf(a)), a); err != nil {
			return err
		}
	}
	return tx.Set(evKey(e.ev.Issuer, e.ev.Seq), e.full.Pruned().Marshal())
}

// mergeAttachments adds to a held event the attachments a fuller copy of
// it carries (a relay may have stripped them). It reports whether anything
// was added. l.mu is held.
func (l *Log) mergeAttachments(old *entry, ev *event.Event, name string) bool {
	if name == "" || l.pruned[name] {
		return false
	}
	var add [][]byte
	for _, a := range ev.Attachments {
		if !old.holds(event.DigestOf(a)) {
			add = append(add, a)
		}
	}
	if len(add) == 0 {
		return false
	}
	err := l.store.Update(func(tx kv.Txn) error {
		for _, a := range add {
			if err := tx.Set(attKey(name, event.DigestOf(a)), a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		l.logger.Error("mesh: store attachments", "err", err)
		return false
	}
	for _, a := range add {
		old.held = append(old.held, event.DigestOf(a))
	}
	if old.full != nil { // staged in this delivery, not written yet
		old.full.Attachments = append(old.full.Attachments, add...)
	}
	// The copies in the state point at blobs by digest: refold the key.
	if k := l.state.Keys[name]; k != nil {
		l.state.dirty[name] = true
		l.state.refoldKey(k)
	}
	l.signal()
	return true
}

// prune drops the wrapped copies of the destroyed keys among names (and of
// those whose pruning failed before) from memory and erases them from
// disk: crypto-shredding reaches the event log. The events stay (their
// signatures still verify without attachments). l.mu is held.
func (l *Log) prune(names []string) {
	for name := range l.unpruned {
		names = append(names, name)
	}
	for _, name := range names {
		k, ok := l.state.Keys[name]
		if !ok || !k.Destroyed || l.pruned[name] {
			continue
		}
		for _, e := range k.events {
			if wrapKey(e.payload) == name {
				if e.full != nil {
					for _, a := range e.full.Attachments {
						clear(a)
					}
					e.full.Attachments = nil
				}
				e.held = nil
			}
		}
		err := l.store.Update(func(tx kv.Txn) error { return kv.DeletePrefix(tx, attKeyPrefix(name)) })
		if err != nil {
			l.logger.Error("mesh: prune destroyed key copies", "key", name, "err", err)
			l.unpruned[name] = true // tried again with the next delivery
			continue
		}
		delete(l.unpruned, name)
		if er, ok := l.store.(kv.Eraser); ok {
			if err := er.Erase(attKeyPrefix(name)); err != nil {
				l.logger.Error("mesh: erase destroyed key copies", "key", name, "err", err)
			}
		}
		l.pruned[name] = true
		l.logger.Info("pruned the wrapped copies of a destroyed key", "key", name)
	}
}

// pruneAll prunes every destroyed key (at open).
func (l *Log) pruneAll() {
	names := make([]string, 0, len(l.state.Keys))
	for name := range l.state.Keys {
		names = append(names, name)
	}
	l.prune(names)
}

// ErrRefused is returned by Issue when the node's own event does not pass.
var ErrRefused = errors.New("mesh: event refused")

// Issued is an event this node issued: its encoding for publishing and
// its id.
type Issued struct {
	Raw []byte
	ID  [32]byte
	Seq uint64
}

// Issue signs this node's next event, stores and applies it, and returns
// its encoding for publishing. It chains the event on this node's last one
// and names as dependencies the other issuers' heads its earlier events
// did not name (at most event.MaxDeps, the furthest behind first), so its
// Lamport clock and time follow everything it has seen. attachments are the
// wrapped key copies a KeyVersion or KeyShare names by digest.
func (l *Log) Issue(kind event.Kind, payload []byte, attachments ...[]byte) (Issued, error) {
	return l.IssueWith(kind, nil, func(policy.Reach) ([]byte, error) { return payload, nil }, attachments...)
}

// IssueWith is Issue for a payload that depends on the event's causal
// reach: a grant lists in Observed only the revocations its event does not
// follow (policy.State.Unobserved). follow names chains (policy.Position
// Chain) the event should follow up to the given positions: it names their
// current heads as dependencies, ahead of the other candidates, even when
// not settled or named before (at most event.MaxDeps, in key order; a
// tainted issuer's chain is not followed). payload is called under the
// log's lock with the reach the event will have at every receiver.
func (l *Log) IssueWith(kind event.Kind, follow map[string]uint64, payload func(policy.Reach) ([]byte, error), attachments ...[]byte) (Issued, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.chains[l.self]
	ev := event.Event{Network: l.nid, Issuer: l.self, Seq: 1, Lamport: 1, Time: l.clock().UTC(), Kind: kind, Attachments: attachments}
	if h := c.head(); h != nil {
		ev.Seq, ev.Prev, ev.Lamport = h.ev.Seq+1, h.id, h.ev.Lamport+1
		if h.ev.Time.After(ev.Time) {
			ev.Time = h.ev.Time
		}
	}
	type cand struct {
		k   network.NodeKey
		gap uint64
	}
	var cands []cand
	now := l.clock()
	heads := map[network.NodeKey]*entry{}
	forced := l.followed(follow)
	for _, k := range forced {
		heads[k] = l.chains[k].head()
	}
	for k, oc := range l.chains {
		if k == l.self || oc.length() == 0 || heads[k] != nil {
			continue
		}
		h := l.settledHead(oc, now)
		if h == nil || h.ev.Seq <= l.referenced[k] {
			continue
		}
		if nd, ok := l.state.Nodes[k]; ok && nd.Tainted != 0 {
			continue
		}
		heads[k] = h
		cands = append(cands, cand{k, h.ev.Seq - l.referenced[k]})
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if a.gap != b.gap {
			return int(b.gap - a.gap)
		}
		return compareKeys(a.k, b.k)
	})
	if len(cands) > event.MaxDeps-len(forced) {
		cands = cands[:event.MaxDeps-len(forced)]
	}
	for _, k := range forced {
		cands = append(cands, cand{k: k})
	}
	for _, cd := range cands {
		h := heads[cd.k]
		ev.Deps = append(ev.Deps, event.Dep{Issuer: cd.k, Seq: h.ev.Seq, ID: h.id})
		ev.Lamport = max(ev.Lamport, h.ev.Lamport+1)
		if h.ev.Time.After(ev.Time) {
			ev.Time = h.ev.Time
		}
	}
	slices.SortFunc(ev.Deps, func(a, b event.Dep) int { return compareKeys(a.Issuer, b.Issuer) })
	b, err := payload(l.state.reachOf(&header{Issuer: ev.Issuer, Seq: ev.Seq}, ev.Deps))
	if err != nil {
		return Issued{}, err
	}
	ev.Payload = b
	signed, raw, err := event.Sign(l.priv, ev)
	if err != nil {
		return Issued{}, fmt.Errorf("mesh: sign event: %w", err)
	}
	p, err := decode(&signed)
	if err != nil {
		return Issued{}, fmt.Errorf("mesh: %s payload: %w", kind, err)
	}
	if err := signed.VerifyAttachments(); err != nil {
		return Issued{}, fmt.Errorf("mesh: %s attachments: %w", kind, err)
	}
	if signed.Seq == 1 && kind != event.KindNodeRecord {
		return Issued{}, fmt.Errorf("%w: this node is not registered (its first event must be its node record)", ErrRefused)
	}
	out, reasons := []Verdict{Accept}, []string{ReasonOK}
	l.deliverLocked([]*entry{newEntry(&signed, p, len(raw))}, out, reasons)
	l.verdict(out[0], reasons[0])
	if out[0] != Accept {
		if reasons[0] == ReasonStore {
			// The cause (a full disk: kv.ErrNoSpace) is the caller's to see.
			return Issued{}, fmt.Errorf("%w: %s (%s): %w", ErrRefused, reasons[0], kind, l.storeErr)
		}
		return Issued{}, fmt.Errorf("%w: %s (%s)", ErrRefused, reasons[0], kind)
	}
	for _, d := range signed.Deps {
		l.referenced[d.Issuer] = d.Seq
	}
	return Issued{Raw: raw, ID: signed.ID(), Seq: signed.Seq}, nil
}

// followed returns the issuers whose heads an event following follow must
// name: every chain of follow but this node's own (its chain reaches it),
// held, with a head at or past the position, of an issuer not tainted; at
// most event.MaxDeps, in key order. l.mu is held.
func (l *Log) followed(follow map[string]uint64) []network.NodeKey {
	var out []network.NodeKey
	for chain, seq := range follow {
		k, ok := chainKey(chain)
		if !ok || k == l.self {
			continue
		}
		h := l.chains[k].head()
		if h == nil || h.ev.Seq < seq {
			continue
		}
		if nd, ok := l.state.Nodes[k]; ok && nd.Tainted != 0 {
			continue
		}
		out = append(out, k)
	}
	slices.SortFunc(out, compareKeys)
	if len(out) > event.MaxDeps {
		out = out[:event.MaxDeps]
	}
	return out
}

// IssuerID is the string form of an issuer used in anti-entropy summaries.
func IssuerID(k network.NodeKey) string { return hex.EncodeToString(k[:]) }

// proofIDPrefix marks summary entries that advertise equivocation
// evidence: "proof:" + issuer id → evidenceScore(its taint position), so a
// node pulls the evidence of every peer that knows an earlier fork.
const proofIDPrefix = "proof:"

func evidenceScore(at uint64) uint64 { return 1<<40 - at }

// headIDPrefix marks summary entries that advertise the head of a chain:
// "head:" + issuer id → headScore, 63 bits of the head's id, so two nodes
// holding equally long but different branches of a forked chain find out:
// the one with the lower score pulls the other's head, which is then
// evidence. (63 bits: no one grinds two heads with one score.)
const headIDPrefix = "head:"

func headScore(id [32]byte) uint64 { return binary.BigEndian.Uint64(id[:8])>>1 | 1 }

// Summary returns, per issuer, the highest sequence number up to which
// every event is held, and per tainted issuer ("proof:" + issuer id) the
// score of the evidence held, so anti-entropy spreads evidence too.
func (l *Log) Summary() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]uint64, len(l.chains))
	for k, c := range l.chains {
		if n := c.length(); n > 0 {
			out[IssuerID(k)] = n
		}
		if c.evidence != nil {
			out[proofIDPrefix+IssuerID(k)] = evidenceScore(c.evidence.At)
		} else if h := c.head(); h != nil {
			out[headIDPrefix+IssuerID(k)] = headScore(h.id)
		}
	}
	return out
}

// Events returns the raw events of issuer with sequence numbers in
// (after, after+max], in order; for a "proof:" id, the evidence held
// against that issuer (one item, whatever after and max).
func (l *Log) Events(issuer string, after uint64, max int) ([][]byte, error) {
	id, isProof := strings.CutPrefix(issuer, proofIDPrefix)
	id, isHead := strings.CutPrefix(id, headIDPrefix)
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != len(network.NodeKey{}) {
		return nil, fmt.Errorf("mesh: bad issuer id %q", issuer)
	}
	k := network.NodeKey(b)
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.chains[k]
	if c == nil {
		return nil, nil
	}
	if isProof {
		if c.evidence == nil || max < 1 {
			return nil, nil
		}
		return [][]byte{c.evidence.Marshal()}, nil
	}
	if isHead {
		// after is the asker's own head score: answer when its chain ends
		// elsewhere (it is behind, ahead, or holds another branch).
		h := c.head()
		if h == nil || max < 1 || after == headScore(h.id) {
			return nil, nil
		}
		raw, err := l.rawOf(h)
		if err != nil {
			return nil, err
		}
		return [][]byte{raw}, nil
	}
	var out [][]byte
	for seq := after + 1; seq <= c.length() && len(out) < max; seq++ {
		var raw []byte
		var err error
		if e := c.recent(seq); e != nil {
			raw, err = l.rawOf(e)
		} else {
			raw, err = l.rawAt(k, seq) // before the window: from the store
		}
		if err != nil {
			return nil, err
		}
		out = append(out, raw)
	}
	return out, nil
}

// Want is a range of an issuer's chain to ask every peer for, whatever
// their summaries say (the anti-entropy Wanter interface of package p2p).
type Want = gossip.Want

const maxForkHints = 64

// Wants returns what this node asks peers for beyond their summaries: for
// each issuer whose evidence is only an upper bound of its fork, the event
// at that position, so that a peer holding the other branch hands in what
// locates the fork; and for each fork hint (a waiting event that names
// another event than the one held), that position (at most 16 wants).
func (l *Log) Wants() []Want {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Want
	for k, c := range l.chains {
		if c.evidence != nil && !c.evidence.Exact && c.evidence.At >= 1 && len(out) < 16 {
			out = append(out, Want{Issuer: IssuerID(k), After: c.evidence.At - 1, Max: 1})
		}
	}
	for k, seq := range l.forkHints {
		if c := l.chains[k]; c != nil && c.evidence != nil && c.evidence.At <= seq {
			delete(l.forkHints, k) // evidence covers it now
			continue
		}
		if len(out) < 16 {
			out = append(out, Want{Issuer: IssuerID(k), After: seq - 1, Max: 1})
		}
	}
	slices.SortFunc(out, func(a, b Want) int { return strings.Compare(a.Issuer, b.Issuer) })
	return out
}

// Checkpoint returns this node's signed liveness checkpoint, naming the
// heads it holds of every node of its org, or nil if it is not registered.
func (l *Log) Checkpoint() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	me, ok := l.state.Nodes[l.self]
	if !ok {
		return nil
	}
	cp := event.Checkpoint{Network: l.nid, Time: l.clock()}
	for k, n := range l.state.Nodes {
		if n.Record.Org == me.Record.Org {
			if n := l.chains[k].length(); n > 0 {
				cp.Heads = append(cp.Heads, event.Head{Issuer: k, Seq: n})
			}
		}
	}
	slices.SortFunc(cp.Heads, func(a, b event.Head) int { return compareKeys(a.Issuer, b.Issuer) })
	if len(cp.Heads) > event.MaxHeads {
		cp.Heads = cp.Heads[:event.MaxHeads]
	}
	_, raw, err := event.SignCheckpoint(l.priv, cp)
	if err != nil {
		l.logger.Error("mesh: sign checkpoint", "err", err)
		return nil
	}
	return raw
}

// deliverCheckpoint takes a checkpoint from another node: verified, of an
// active node, not dated in the future. It is kept (the newest per issuer)
// until this node holds every head it names; then it vouches for its org's
// events up to its time.
func (l *Log) deliverCheckpoint(raw []byte) (Verdict, string) {
	cp, err := event.ParseCheckpoint(raw)
	if err != nil {
		return Reject, ReasonMalformed
	}
	if cp.Network != l.nid {
		return Reject, ReasonForeignNetwork
	}
	if cp.Verify() != nil {
		return Reject, ReasonBadSignature
	}
	now := l.clock()
	if cp.Time.After(now.Add(MaxSkew)) {
		return Ignore, ReasonFuture
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n, ok := l.state.Nodes[cp.Issuer]
	if !ok || !n.Active(now) {
		return Ignore, ReasonUnregistered
	}
	if old := l.checkpoints[cp.Issuer]; old != nil && !cp.Time.After(old.Time) {
		return Ignore, ReasonDuplicate
	}
	l.checkpoints[cp.Issuer] = cp
	l.settleCheckpoints()
	return Accept, ReasonOK
}

// settleCheckpoints moves every checkpoint whose heads are all held into
// its org's freshness. l.mu is held.
func (l *Log) settleCheckpoints() {
	for k, cp := range l.checkpoints {
		held := true
		for _, h := range cp.Heads {
			if l.chains[h.Issuer].length() < h.Seq {
				held = false
				break
			}
		}
		if !held {
			continue
		}
		delete(l.checkpoints, k)
		t := cp.Time
		if now := l.clock(); t.After(now) {
			t = now
		}
		if t.After(l.fresh[k]) {
			l.fresh[k] = t
		}
	}
}

// ErrStalePolicy is returned by Fresh for a key whose owner org this node
// has not heard from within the staleness bound.
var ErrStalePolicy = policy.ErrStalePolicy

// Fresh returns nil if this node can vouch for key's policy at now: the
// key's owner is this node's own org, or every active node of the owner
// org has, within the staleness bound, sent a checkpoint that names
// nothing this node lacks. So a revocation that any owner node made is in
// force here at most the bound after it was made, partitions included: a
// node cut off from any of the owner's nodes refuses the key instead of
// serving a revocation it may have missed. The price is availability: a
// down node of the owner org makes that org's keys unavailable at other
// orgs' nodes until it returns, is deregistered, or its record expires.
func (l *Log) Fresh(key string, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	owner, ok := l.genesis.KeyOwner(key)
	if !ok {
		return nil // no org owns it: no key, nothing to vouch for
	}
	if me, ok := l.state.Nodes[l.self]; ok && me.Record.Org == owner {
		return nil
	}
	l.settleCheckpoints()
	age, who := l.orgAge(owner, now)
	switch {
	case who == nil:
		return fmt.Errorf("%w: %s, the owner of %q, has no active node", ErrStalePolicy, owner, key)
	case age < 0:
		return fmt.Errorf("%w: nothing heard from node %s of %s, the owner of %q, yet", ErrStalePolicy, who, owner, key)
	case age > l.staleness:
		return fmt.Errorf("%w: last heard from node %s of %s, the owner of %q, %s ago (bound %s)", ErrStalePolicy, who, owner, key, age.Round(time.Millisecond), l.staleness)
	}
	return nil
}

// orgAge returns how long ago this node last heard from the node of org it
// heard from least recently (negative: one never), and that node; nil if
// the org has no active node. l.mu is held.
func (l *Log) orgAge(org string, now time.Time) (time.Duration, *network.NodeKey) {
	var oldest time.Duration
	var who *network.NodeKey
	for k, n := range l.state.Nodes {
		if n.Record.Org != org || k == l.self || !n.Active(now) {
			continue
		}
		k := k
		t, heard := l.fresh[k]
		age := now.Sub(t)
		if !heard {
			return -1, &k
		}
		if who == nil || age > oldest {
			oldest, who = age, &k
		}
	}
	return oldest, who
}

// Staleness returns the staleness bound, and for each org of the network
// but this node's own, how long ago this node last heard from the node of
// that org it heard from least recently (negative: never, or no active
// node).
func (l *Log) Staleness(now time.Time) (bound time.Duration, ages map[string]time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.settleCheckpoints()
	me := l.state.Nodes[l.self]
	ages = map[string]time.Duration{}
	for _, o := range l.genesis.Orgs {
		if me != nil && me.Record.Org == o.ID {
			continue
		}
		age, who := l.orgAge(o.ID, now)
		if who == nil {
			age = -1
		}
		ages[o.ID] = age
	}
	return l.staleness, ages
}
