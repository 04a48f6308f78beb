package mesh

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/policy"
)

// Verdict is what Deliver decided about an event, with gossipsub's
// meaning: Accept stores, applies and forwards it; Ignore drops it without
// blaming the sender (a duplicate, or an event whose issuer or key is not
// known here yet — anti-entropy brings it again later); Reject drops it and
// blames the sender (bad signature, foreign network, unauthorised,
// equivocation).
type Verdict int

// Verdicts.
const (
	Accept Verdict = iota
	Ignore
	Reject
)

func (v Verdict) String() string {
	return [...]string{"accept", "ignore", "reject"}[v]
}

// Refusal reasons reported to OnVerdict, beside the fold's drop reasons.
const (
	ReasonOK             = "ok"
	ReasonDuplicate      = "duplicate"
	ReasonReplay         = "replay"
	ReasonOversize       = "oversize"
	ReasonMalformed      = "malformed"
	ReasonForeignNetwork = "foreign network"
	ReasonBadSignature   = "bad signature"
	ReasonStore          = "store error"
)

// MaxEventSize bounds one encoded event.
const MaxEventSize = 1 << 20

type entry struct {
	ev      *event.Event // with the attachments this node holds
	payload any
}

// wrapKey returns the key name of a KeyVersion or KeyShare payload, "" for
// other kinds.
func wrapKey(p any) string {
	switch p.(type) {
	case event.KeyVersion, event.KeyShare:
		return keyName(p)
	}
	return ""
}

// Log is a node's durable event log and the fold of it. It is safe for
// concurrent use.
type Log struct {
	store   kv.Store
	genesis *event.Genesis
	nid     event.NetworkID
	priv    ed25519.PrivateKey
	self    event.NodeKey
	clock   func() time.Time
	logger  *slog.Logger
	verdict func(Verdict, string)

	mu      sync.Mutex
	entries map[event.NodeKey]map[uint64]*entry
	contig  map[event.NodeKey]uint64
	order   []*entry // sorted canonically; order[:applied] are in state
	applied int
	state   *State
	lamport uint64
	policy  atomic.Pointer[policy.State]
	notify  chan struct{}
	pruned  map[string]bool // destroyed keys whose attachments are gone
}

// LogOptions configures OpenLog.
type LogOptions struct {
	Clock  func() time.Time
	Logger *slog.Logger
	// OnVerdict is called for every delivered event (metrics).
	OnVerdict func(v Verdict, reason string)
}

// Storage: each event without its attachments under "mesh/ev/" + issuer +
// seq, and each attachment (a wrapped key copy) under "mesh/att/" + key
// name + "/" + digest, so a destroyed key's copies can be erased from disk
// by prefix.
var (
	evPrefix  = []byte("mesh/ev/")
	attPrefix = []byte("mesh/att/")
)

func evKey(issuer event.NodeKey, seq uint64) []byte {
	k := append(append([]byte(nil), evPrefix...), issuer[:]...)
	return binary.BigEndian.AppendUint64(k, seq)
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
// signing key (its libp2p identity key).
func OpenLog(store kv.Store, g *event.Genesis, priv ed25519.PrivateKey, o LogOptions) (*Log, error) {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.OnVerdict == nil {
		o.OnVerdict = func(Verdict, string) {}
	}
	l := &Log{
		store: store, genesis: g, nid: g.ID(), priv: priv, clock: o.Clock, logger: o.Logger, verdict: o.OnVerdict,
		entries: map[event.NodeKey]map[uint64]*entry{}, contig: map[event.NodeKey]uint64{},
		notify: make(chan struct{}, 1), pruned: map[string]bool{},
	}
	copy(l.self[:], priv.Public().(ed25519.PublicKey))
	var loaded []*entry
	err := store.Scan(evPrefix, func(k, v []byte) error {
		ev, err := event.Parse(v)
		if err != nil {
			return fmt.Errorf("stored event %x: %w", k, err)
		}
		p, err := decode(ev)
		if err != nil {
			return fmt.Errorf("stored event %x: %w", k, err)
		}
		loaded = append(loaded, &entry{ev: ev, payload: p})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mesh: load event log: %w", err)
	}
	for _, e := range loaded {
		if name := wrapKey(e.payload); name != "" {
			for _, d := range wrapDigests(e.payload) {
				blob, err := store.Get(attKey(name, d))
				if err == nil {
					e.ev.Attachments = append(e.ev.Attachments, blob)
				} else if !errors.Is(err, kv.ErrNotFound) {
					return nil, fmt.Errorf("mesh: load attachment: %w", err)
				}
			}
		}
		l.insert(e)
	}
	l.refold()
	l.prune()
	return l, nil
}

// Self returns this node's key.
func (l *Log) Self() event.NodeKey { return l.self }

// Network returns the network id.
func (l *Log) Network() event.NetworkID { return l.nid }

// Genesis returns the network definition.
func (l *Log) Genesis() *event.Genesis { return l.genesis }

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
	return len(l.order)
}

// insert adds e to the indexes (not to the state). l.mu is held.
func (l *Log) insert(e *entry) {
	m := l.entries[e.ev.Issuer]
	if m == nil {
		m = map[uint64]*entry{}
		l.entries[e.ev.Issuer] = m
	}
	m[e.ev.Seq] = e
	for m[l.contig[e.ev.Issuer]+1] != nil {
		l.contig[e.ev.Issuer]++
	}
	l.lamport = max(l.lamport, e.ev.Lamport)
	k := keyOf(e.ev)
	i, _ := slices.BinarySearchFunc(l.order, k, func(x *entry, k sortKey) int { return keyOf(x.ev).compare(k) })
	l.order = slices.Insert(l.order, i, e)
	if i < l.applied {
		l.applied = -1 // an event sorts before applied ones: refold
	}
}

// refold rebuilds the state from every event. l.mu is held.
func (l *Log) refold() {
	s := NewState(l.genesis)
	if l.state != nil {
		s.adminOK = l.state.adminOK
	}
	for _, e := range l.order {
		if err := s.apply(e.ev, e.payload); err != nil {
			s.Dropped[dropReason(err)]++
		}
	}
	l.state, l.applied = s, len(l.order)
	l.policy.Store(s.Policy)
}

// catchUp applies events not yet in the state. l.mu is held.
func (l *Log) catchUp() (dropped string) {
	if l.applied < 0 || l.state == nil {
		l.refold()
		return ""
	}
	for ; l.applied < len(l.order); l.applied++ {
		e := l.order[l.applied]
		if err := l.state.apply(e.ev, e.payload); err != nil {
			r := dropReason(err)
			l.state.Dropped[r]++
			dropped = r
		}
	}
	return dropped
}

func (l *Log) signal() {
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// Deliver validates, stores durably and applies one raw event. It is
// idempotent, and it is the gossip validator: an event is on disk before it
// is forwarded.
func (l *Log) Deliver(raw []byte) Verdict {
	return l.DeliverBatch([][]byte{raw})[0]
}

// DeliverBatch delivers events in order, as Deliver would one by one, but
// stores every accepted event with one durable write: anti-entropy pulls
// batches, and a node catching up after downtime then pays one fsync per
// batch, not per event. If the write fails, none of the batch is kept.
func (l *Log) DeliverBatch(raws [][]byte) []Verdict {
	out := make([]Verdict, len(raws))
	reasons := make([]string, len(raws))
	entries := make([]*entry, len(raws))
	for i, raw := range raws {
		entries[i], out[i], reasons[i] = l.parse(raw)
	}
	l.mu.Lock()
	l.deliverLocked(entries, out, reasons)
	l.mu.Unlock()
	for i := range out {
		l.verdict(out[i], reasons[i])
		if out[i] != Accept && reasons[i] != ReasonDuplicate {
			l.logger.Debug("event refused", "verdict", out[i].String(), "reason", reasons[i])
		}
	}
	return out
}

// parse checks what needs no state: size, form, network, signature,
// payload and attachments. It returns the entry, or nil and the verdict.
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
	return &entry{ev: ev, payload: p}, Accept, ReasonOK
}

// deliverLocked admits the parsed entries in order (nil ones keep the
// verdict already in out), then stores the new ones with one write; if the
// write fails they are taken back out and reported as store errors. l.mu is
// held.
func (l *Log) deliverLocked(entries []*entry, out []Verdict, reasons []string) {
	var staged []*entry
	for i, e := range entries {
		if e == nil {
			continue
		}
		var isNew bool
		out[i], reasons[i], isNew = l.admit(e)
		if isNew {
			staged = append(staged, e)
		}
	}
	if len(staged) == 0 {
		return
	}
	err := l.store.Update(func(tx kv.Txn) error {
		for _, e := range staged {
			if err := putEntry(tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		l.logger.Error("mesh: store events", "err", err)
		for _, e := range staged {
			l.remove(e)
		}
		l.refold()
		for i, e := range entries {
			if e != nil && slices.Contains(staged, e) {
				out[i], reasons[i] = Ignore, ReasonStore
			}
		}
		return
	}
	l.prune()
	l.signal()
}

// admit judges one parsed entry against the log and the state, and applies
// it if it is new (isNew: it still has to be stored). l.mu is held.
func (l *Log) admit(e *entry) (v Verdict, reason string, isNew bool) {
	ev := e.ev
	name := wrapKey(e.payload)
	if name != "" && l.pruned[name] {
		ev.Attachments = nil // the key is destroyed: never keep its copies
	}
	if old := l.entries[ev.Issuer][ev.Seq]; old != nil {
		switch {
		case old.ev.ID() != ev.ID():
			return Reject, ReasonReplay, false
		case l.mergeAttachments(old, ev, name):
			return Accept, ReasonOK, false
		}
		return Ignore, ReasonDuplicate, false
	}
	if v, reason := l.precheck(ev, e.payload); v != Accept {
		return v, reason, false
	}
	l.insert(e)
	l.catchUp()
	return Accept, ReasonOK, true
}

// putEntry writes an event without its attachments, and each attachment
// under its key's prefix.
func putEntry(tx kv.Txn, e *entry) error {
	name := wrapKey(e.payload)
	for _, a := range e.ev.Attachments {
		if err := tx.Set(attKey(name, event.DigestOf(a)), a); err != nil {
			return err
		}
	}
	return tx.Set(evKey(e.ev.Issuer, e.ev.Seq), e.ev.Pruned().Marshal())
}

// remove takes e out of the indexes (not the state). l.mu is held.
func (l *Log) remove(e *entry) {
	delete(l.entries[e.ev.Issuer], e.ev.Seq)
	if l.contig[e.ev.Issuer] >= e.ev.Seq {
		l.contig[e.ev.Issuer] = e.ev.Seq - 1
	}
	if i := slices.Index(l.order, e); i >= 0 {
		l.order = slices.Delete(l.order, i, i+1)
		l.applied = -1
	}
}

// mergeAttachments adds to a held event the attachments a fuller copy of
// it carries (a relay may have stripped them, or this node pruned them and
// the key is alive again in no way — pruned keys are skipped). It reports
// whether anything was added. l.mu is held.
func (l *Log) mergeAttachments(old *entry, ev *event.Event, name string) bool {
	if name == "" || l.pruned[name] {
		return false
	}
	var add [][]byte
	for _, a := range ev.Attachments {
		if old.ev.Attachment(event.DigestOf(a)) == nil {
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
	old.ev.Attachments = append(old.ev.Attachments, add...)
	l.refold()
	l.signal()
	return true
}

// prune drops the wrapped copies of every destroyed key from memory and
// erases them from disk: crypto-shredding reaches the event log. The events
// stay (their signatures still verify without attachments). l.mu is held.
func (l *Log) prune() {
	for name, k := range l.state.Keys {
		if !k.Destroyed || l.pruned[name] {
			continue
		}
		for _, e := range l.order {
			if wrapKey(e.payload) == name {
				for _, a := range e.ev.Attachments {
					clear(a)
				}
				e.ev.Attachments = nil
			}
		}
		err := l.store.Update(func(tx kv.Txn) error { return kv.DeletePrefix(tx, attKeyPrefix(name)) })
		if err != nil {
			l.logger.Error("mesh: prune destroyed key copies", "key", name, "err", err)
			continue
		}
		if er, ok := l.store.(kv.Eraser); ok {
			if err := er.Erase(attKeyPrefix(name)); err != nil {
				l.logger.Error("mesh: erase destroyed key copies", "key", name, "err", err)
			}
		}
		l.pruned[name] = true
		l.logger.Info("pruned the wrapped copies of a destroyed key", "key", name)
	}
}

// precheck refuses, before storing, what the current state already shows
// to be wrong. The fold checks again in canonical order.
func (l *Log) precheck(ev *event.Event, p any) (Verdict, string) {
	s := l.state
	switch ev.Kind {
	case event.KindNodeRecord:
		r := p.(event.NodeRecord)
		if r.SignKey != ev.Issuer || !l.genesis.IsAdmin(r.Org, r.AdminKey) || r.VerifyAdmin(l.nid) != nil {
			return Reject, DropBadAdmin
		}
		return Accept, ""
	case event.KindDeregister:
		d := p.(event.Deregister)
		if !l.genesis.IsAdmin(d.Org, d.AdminKey) || d.VerifyAdmin(l.nid) != nil {
			return Reject, DropBadAdmin
		}
	}
	org, ok := s.OrgOf(ev.Issuer)
	if !ok {
		return Ignore, DropUnregistered
	}
	switch ev.Kind {
	case event.KindKeyVersion, event.KindKeyState, event.KindKeyDestroy, event.KindGrant, event.KindRevoke:
		k, ok := s.Keys[keyName(p)]
		if !ok {
			return Ignore, DropUnknownKey
		}
		if k.Owner != org {
			return Reject, DropUnauthorised
		}
	}
	return Accept, ""
}

// ErrRefused is returned by Issue when the node's own event does not pass.
var ErrRefused = errors.New("mesh: event refused")

// Issue signs a new event of this node, stores and applies it, and returns
// its encoding for publishing. attachments are the wrapped key copies a
// KeyVersion or KeyShare names by digest.
func (l *Log) Issue(kind event.Kind, payload []byte, attachments ...[]byte) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ev := event.Event{
		Network: l.nid, Seq: l.contig[l.self] + 1, Lamport: l.lamport + 1,
		Time: l.clock().UTC(), Kind: kind, Payload: payload, Attachments: attachments,
	}
	signed, raw, err := event.Sign(l.priv, ev)
	if err != nil {
		return nil, fmt.Errorf("mesh: sign event: %w", err)
	}
	p, err := decode(&signed)
	if err != nil {
		return nil, fmt.Errorf("mesh: %s payload: %w", kind, err)
	}
	if err := l.state.check(&signed, p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	if err := signed.VerifyAttachments(); err != nil {
		return nil, fmt.Errorf("mesh: %s attachments: %w", kind, err)
	}
	out, reasons := []Verdict{Accept}, []string{ReasonOK}
	l.deliverLocked([]*entry{{ev: &signed, payload: p}}, out, reasons)
	l.verdict(out[0], reasons[0])
	if out[0] != Accept {
		return nil, fmt.Errorf("%w: %s (%s)", ErrRefused, reasons[0], kind)
	}
	return raw, nil
}

// IssuerID is the string form of an issuer used in anti-entropy summaries.
func IssuerID(k event.NodeKey) string { return hex.EncodeToString(k[:]) }

// Summary returns, per issuer, the highest sequence number up to which
// every event is held.
func (l *Log) Summary() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]uint64, len(l.contig))
	for k, n := range l.contig {
		if n > 0 {
			out[IssuerID(k)] = n
		}
	}
	return out
}

// Events returns the raw events of issuer with sequence numbers in
// (after, after+max], in order, stopping at the first gap.
func (l *Log) Events(issuer string, after uint64, max int) ([][]byte, error) {
	b, err := hex.DecodeString(issuer)
	if err != nil || len(b) != len(event.NodeKey{}) {
		return nil, fmt.Errorf("mesh: bad issuer id %q", issuer)
	}
	var k event.NodeKey
	copy(k[:], b)
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][]byte
	for seq := after + 1; len(out) < max; seq++ {
		e := l.entries[k][seq]
		if e == nil {
			break
		}
		out = append(out, e.ev.Marshal())
	}
	return out, nil
}
