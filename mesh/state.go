// Package mesh holds a keymesh network's replicated state: the durable
// per-node log of signed events (package event is their wire format), the
// admission of events into it, and the deterministic fold of the event set
// into registered nodes, keys with their versions and wrapped copies,
// grants and revocations, and destroy acknowledgements.
//
// # Trust model
//
// The adversary is another member: a registered node may sign anything —
// backdated or forward-dated clocks, reused ids, two events at one position
// of its chain, events after its deregistration, key shares of material of
// its choosing — and may withhold events. Whatever it does, and in any
// delivery order:
//
//   - honest nodes that hold the same events hold the same state;
//   - no org changes another org's keys, grants or revocations;
//   - a deregistered node's events after its cut have no effect;
//   - a node unwraps only material that the key's owner committed to;
//   - a node of another org that has not heard from the key's owner org
//     within the staleness bound refuses the key ([Log.Fresh]).
//
// What a dishonest member can do: leak what it was entitled to read (the
// limit of every key manager), act on its own org's keys, and withhold its
// own events.
//
// # Admission
//
// Admission (see [Log]) depends on the event and on the events it names:
// its form, signature and network; its issuer's chain (an issuer's first
// event is its own admin-signed node record, each later one names the ID of
// the one before); its dependencies held; its Lamport clock exactly one more
// than the largest of its predecessor's and its dependencies'. An event
// whose predecessor or dependencies are missing waits, bounded, until
// anti-entropy brings them. Two different events at one position of an
// issuer's chain are equivocation: the second is refused, kept as proof and
// spread, and the issuer is tainted from that position on — only that
// issuer.
//
// # The fold
//
// State is a pure function of the set of admitted events, computed
// incrementally: each rule below is a property of the set, not of the
// order, so applying events in any order gives the same state, and one
// event costs work in the key it touches (a deregistration or a taint
// refolds the keys its issuer's events touched, nothing else).
//
//   - An event counts if its issuer is registered (its chain starts with
//     its node record), the record in force at that point of its chain is
//     valid at the event's time, the event is at or before the issuer's
//     deregistration cut, and before any equivocation of the issuer.
//   - A key's owner is fixed by the genesis ([network.Genesis.KeyOwner]): the
//     org its namespace belongs to. Only counted events of the owner's
//     nodes create, version, change, grant, revoke or destroy the key;
//     every other org's events on it have no effect in any order.
//   - A key's flags come from its KeyCreate; when an owner node created a
//     key twice, the create first in (Lamport, issuer, seq) order wins. A
//     version slot likewise goes to the first KeyVersion for it in that
//     order. Lifecycle states only move forward (pre-active → active →
//     deactivated → compromised → destroyed), so a key's state is the
//     furthest any counted event reached; the minimum decryption version is
//     the largest set.
//   - Every KeyVersion commits to its material (event.KeyVersion.Check). A
//     wrapped copy for a node comes from the version's KeyVersion or from a
//     KeyShare of a node of an entitled org; every candidate copy is kept,
//     and the recipient uses only one whose material matches the
//     commitment, so a forged share plants nothing. Copies for a node
//     whose record is not valid at the wrapping event's time do not count.
//   - Grant and revocation ids are scoped: an id must start with its
//     issuer's prefix ([IDPrefix]) and lives in its key's namespace, so
//     events on different keys or by different issuers never interact; an
//     issuer that reuses an id loses the later use (its chain orders its
//     own events). They fold remove-wins (package policy).
//   - A deregistration, signed by an admin of the node's org, is a causal
//     cut: the node's events up to LastSeq count, none after.
//
// # Policy history on disk
//
// Grants and revocations are most of a long log, and a pair granted and
// revoked n times must not cost n of anything in memory. The fold keeps
// no list of a key's grant and revocation events and their entries keep
// no payload: the store indexes them per key in fold order, and a refold
// reads them back one at a time. The policy state keeps its live grants
// and per-pair summaries and hands its ended grants and placed
// revocations to an archive in the store (policy.Archive, polStore).
// Both are derived from the events and rebuilt by OpenLog. A read that
// fails fails closed: a grant that cannot be read back does not count, a
// revocation that cannot be read back suspends its pair
// (policy.State.Suspend).
//
// # Crypto-shredding and the log
//
// Key versions travel wrapped (package vault/transport) as unsigned
// attachments of KeyVersion and KeyShare events, named in the signed
// payload by digest. When the fold destroys a key, every node drops those
// attachments from memory, deletes them from its store and erases them from
// disk (kv.Eraser); the events themselves stay, still verifiable, so logs
// keep converging. A destroy carried out before a later-arriving
// deregistration undid it cannot be undone on disk: the state converges,
// the material is gone.
package mesh

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault"
)

// Node is a node as the network knows it.
type Node struct {
	// Record is the node's newest admitted record.
	Record network.NodeRecord
	// Deregistered is set once an admin of its org signed a deregistration;
	// LastSeq is then the cut: the last of its events that counts.
	Deregistered bool
	LastSeq      uint64
	// Tainted is the first position of its chain at which it equivocated
	// (0: it has not); no event from there on counts.
	Tainted uint64
	// records are its node records in chain order.
	records []seqRecord
}

type seqRecord struct {
	seq uint64
	rec network.NodeRecord
}

// recordAt returns the record in force at position seq of the node's chain.
func (n *Node) recordAt(seq uint64) (network.NodeRecord, bool) {
	i, found := slices.BinarySearchFunc(n.records, seq, func(r seqRecord, s uint64) int { return cmp.Compare(r.seq, s) })
	if !found {
		i--
	}
	if i < 0 {
		return network.NodeRecord{}, false
	}
	return n.records[i].rec, true
}

// Counts reports whether the node's event at position seq is before its
// cut and before any equivocation.
func (n *Node) Counts(seq uint64) bool {
	return (!n.Deregistered || seq <= n.LastSeq) && (n.Tainted == 0 || seq < n.Tainted)
}

// Active reports whether the node may still act: not deregistered, not
// tainted, and its record valid at t.
func (n *Node) Active(t time.Time) bool {
	return !n.Deregistered && n.Tainted == 0 && n.Record.ValidAt(t)
}

// Key is a key as the network agrees on it.
type Key struct {
	Name          string
	Owner         string // fixed by the genesis namespace
	Created       bool   // a counted KeyCreate is held
	Creator       network.NodeKey
	Deterministic bool
	Exportable    bool
	State         vault.State
	MinDecrypt    uint32
	CreatedAt     time.Time
	Versions      []*Version // index = version-1: the slots won, contiguous from 1
	// EndorseFloor is the newest version an org revocation rotated to (0:
	// none): endorsement mode never selects a version below it.
	EndorseFloor uint32
	Destroyed    bool
	// KMIP is the key's KMIP side, the owner org's latest KMIPAttrs
	// (nil for a key never managed over KMIP).
	KMIP *event.KMIPAttrs
	// Holders are the nodes that ever received a copy of a version (or
	// created one): each must acknowledge a destroy. Acks are those that
	// did (nil before a destroy). Read them, do not write them: keys
	// with the same holders share one map (State.shareHolders).
	Holders map[network.NodeKey]bool
	Acks    map[network.NodeKey]bool

	// events are every admitted event on the key but grants and
	// revocations, which the store indexes by key instead (polStore), so
	// that a key's memory does not grow with its grant history.
	events []*entry
}

// Version is one key version: its activation time, its material
// commitment and the candidate copies wrapped for each node.
type Version struct {
	N          uint32
	ActivateAt time.Time
	Creator    network.NodeKey
	Check      event.Digest
	// copies holds every candidate copy, sorted by recipient and, for
	// one recipient, in the order the fold added them: from the
	// KeyVersion first, then from shares. The recipient keeps the first
	// whose material matches Check. Most versions have one to three
	// recipients: a sorted slice of 44-byte values, which name nodes by
	// their number in nodes, where a map of recipients to slices of
	// pointers cost ~600 bytes for one.
	copies []foldCopy
	nodes  *nodeTable
}

// foldCopy is one of the fold's candidate copies of a version: a Wrap
// without a blob, with its recipient; to and from are numbers of the
// version's nodeTable.
type foldCopy struct {
	to, from uint32
	digest   event.Digest
	held     bool
}

// nodeTable numbers the nodes the fold's copies name, so that a copy
// names its recipient and the node that wrapped it in 4 bytes each
// instead of 32. A number, once given, stays; only nodes with a record
// get one (addCopy counts no copy for another), so the table is bounded
// by the network's nodes. A state has one, shared by its versions.
type nodeTable struct {
	keys []network.NodeKey
	ids  map[network.NodeKey]uint32
}

// number returns k's number, giving it the next one if it has none.
func (t *nodeTable) number(k network.NodeKey) uint32 {
	if n, ok := t.ids[k]; ok {
		return n
	}
	n := uint32(len(t.keys))
	t.keys = append(t.keys, k)
	t.ids[k] = n
	return n
}

func (v *Version) wrap(c *foldCopy) Wrap {
	return Wrap{Digest: c.digest, From: v.nodes.keys[c.from], held: c.held}
}

// span returns the bounds of r's copies in v.copies: v.copies[i:j].
func (v *Version) span(r network.NodeKey) (i, j int) {
	if v.nodes == nil {
		return 0, 0
	}
	n, ok := v.nodes.ids[r]
	if !ok {
		return 0, 0
	}
	i, _ = slices.BinarySearchFunc(v.copies, r, func(c foldCopy, r network.NodeKey) int { return compareKeys(v.nodes.keys[c.to], r) })
	for j = i; j < len(v.copies) && v.copies[j].to == n; j++ {
	}
	return i, j
}

// Recipients yields, sorted by key, every node with at least one
// candidate copy of the version, each once.
func (v *Version) Recipients() iter.Seq[network.NodeKey] {
	return func(yield func(network.NodeKey) bool) {
		for i, c := range v.copies {
			if i > 0 && v.copies[i-1].to == c.to {
				continue
			}
			if !yield(v.nodes.keys[c.to]) {
				return
			}
		}
	}
}

// Copies yields the candidate copies of the version wrapped for node r,
// whether they count now or not ([State.CopiesFor] says which do), in
// the fold's order: from the KeyVersion first, then from shares. They
// come without their blobs.
func (v *Version) Copies(r network.NodeKey) iter.Seq[Wrap] {
	return func(yield func(Wrap) bool) {
		i, j := v.span(r)
		for ; i < j; i++ {
			if !yield(v.wrap(&v.copies[i])) {
				return
			}
		}
	}
}

// CopyCount returns the number of candidate copies of the version
// wrapped for node r.
func (v *Version) CopyCount(r network.NodeKey) int {
	i, j := v.span(r)
	return j - i
}

// addCopy adds a candidate copy of digest d for node to, wrapped by
// node from, after those to has, unless one with digest d is among them;
// it reports whether it added it. v.nodes must be set.
func (v *Version) addCopy(to, from network.NodeKey, d event.Digest, held bool) bool {
	i, j := v.span(to)
	for _, x := range v.copies[i:j] {
		if x.digest == d {
			return false
		}
	}
	c := foldCopy{to: v.nodes.number(to), from: v.nodes.number(from), digest: d, held: held}
	if i == j { // to has no copy yet: j is where one goes
		j, _ = slices.BinarySearchFunc(v.copies, to, func(c foldCopy, r network.NodeKey) int { return compareKeys(v.nodes.keys[c.to], r) })
	}
	v.copies = slices.Insert(v.copies, j, c)
	return true
}

// Wrap is a copy of a version wrapped for one node: the digest the signed
// event names, the node that wrapped it, and the blob when this node has
// it (nil once pruned, or while only a stripped copy has arrived).
//
// The fold's own copies ([Version.Copies]) hold no blob: blobs stay in
// the store, and [State.CopiesFor] returns copies with the blobs read
// back.
type Wrap struct {
	Digest event.Digest
	From   network.NodeKey
	Blob   []byte
	held   bool // this node holds the blob (in the store)
}

// Holds reports whether node r has a counted copy of the version.
func (v *Version) Holds(r network.NodeKey) bool { return v.Creator == r || v.CopyCount(r) > 0 }

// State is the fold of an event set.
type State struct {
	// load reads an entry's whole event back from the store (a refold
	// reads every grant and revocation of its key back, and an entry
	// whose payload was dropped needs it).
	load func(*entry) (*event.Event, error)
	// pol holds the policy's history: the policy state's archive and
	// the index of each key's grant and revocation events.
	pol *polStore
	// readAtt reads a wrapped copy of a key from the store (nil, nil if
	// it is not there) for CopiesFor; nil in a state without a log.
	readAtt func(key string, d event.Digest) ([]byte, error)
	genesis *network.Genesis
	nid     network.NetworkID
	Nodes   map[network.NodeKey]*Node
	Keys    map[string]*Key
	Policy  *policy.State
	// Dropped counts events that do not count or break a rule, by reason.
	Dropped map[string]int
	// cuts holds deregistrations of nodes not known yet, by node.
	cuts map[network.NodeKey][]network.Deregister
	// touched lists, per issuer, the keys its events touched (for refolds
	// after a cut or a taint); wrappedFor, per node, the keys with copies
	// wrapped for it (refolded when a record of the node arrives).
	touched    map[network.NodeKey]map[string]bool
	wrappedFor map[network.NodeKey]map[string]bool
	// dirty holds the keys changed since the last TakeDirty; allDirty is
	// set when a change may touch every key (a node's record).
	dirty    map[string]bool
	allDirty bool
	// adminOK caches, by event id, whether a node record's or
	// deregistration's admin signature holds: refolds and repeated
	// deliveries verify each once.
	adminOK map[[32]byte]bool
	// holders holds one Holders map per set of holders (at most
	// maxSharedHolders), which keys with those holders share.
	holders map[string]map[network.NodeKey]bool
	// nodes numbers the nodes its versions' copies name (copyNodes).
	nodes *nodeTable
	// kmipOwned holds, per KMIP owner, the keys whose KMIP side names it
	// (Key.KMIP.Owner): with the policy's KMIPKeys, what a KMIP Locate
	// looks at (KMIPOwned).
	kmipOwned map[policy.Party]map[string]bool
}

// maxSharedHolders bounds State.holders: past it, a key keeps its own map.
const maxSharedHolders = 1024

// shareHolders returns a map equal to set (a key's Holders, just built),
// shared with every key that has the same holders: a map of one holder
// is ~300 bytes, and on most nodes most keys have the same few holders.
// A shared map is never written again: refoldKey builds a new one.
func (s *State) shareHolders(set map[network.NodeKey]bool) map[network.NodeKey]bool {
	ks := make([]network.NodeKey, 0, len(set))
	for k, ok := range set {
		if !ok {
			return set // only true values are written; keep any other as it is
		}
		ks = append(ks, k)
	}
	slices.SortFunc(ks, compareKeys)
	id := make([]byte, 0, len(ks)*len(network.NodeKey{}))
	for _, k := range ks {
		id = append(id, k[:]...)
	}
	if shared, ok := s.holders[string(id)]; ok {
		return shared
	}
	if len(s.holders) < maxSharedHolders {
		s.holders[string(id)] = set
	}
	return set
}

// copyNodes returns the state's nodeTable, which its versions share.
func (s *State) copyNodes() *nodeTable {
	if s.nodes == nil {
		s.nodes = &nodeTable{ids: map[network.NodeKey]uint32{}}
	}
	return s.nodes
}

// adminSigned reports whether the admin signature of the event with id id
// (a node record or deregistration with admin key key of org) holds under
// the genesis, verifying each event once.
func (s *State) adminSigned(id [32]byte, org string, key [32]byte, verify func(network.NetworkID) error) bool {
	if ok, seen := s.adminOK[id]; seen {
		return ok
	}
	ok := s.genesis.IsAdmin(org, key) && verify(s.nid) == nil
	if len(s.adminOK) < 1<<16 {
		s.adminOK[id] = ok
	}
	return ok
}

// TakeDirty returns the names of the keys whose state changed since the
// last call, sorted (all reports that any key may have: a node record
// arrived, so the recipients of every key may differ), and forgets them.
// It lets a follower reconcile only what changed.
func (s *State) TakeDirty() (names []string, all bool) {
	all = s.allDirty
	for n := range s.dirty {
		names = append(names, n)
	}
	slices.Sort(names)
	s.dirty, s.allDirty = map[string]bool{}, false
	return names, all
}

// NewState returns the state of an empty event set under genesis. Its
// policy history is kept in memory; a Log keeps it in its store.
func NewState(g *network.Genesis) *State {
	return newState(g, newPolStore(kv.NewMem(), nil))
}

func newState(g *network.Genesis, pol *polStore) *State {
	return &State{
		genesis: g, nid: g.ID(), Nodes: map[network.NodeKey]*Node{}, Keys: map[string]*Key{},
		pol: pol, Policy: policy.NewState(policy.WithArchive(polArchive{pol})), Dropped: map[string]int{},
		cuts: map[network.NodeKey][]network.Deregister{}, touched: map[network.NodeKey]map[string]bool{},
		wrappedFor: map[network.NodeKey]map[string]bool{}, dirty: map[string]bool{}, adminOK: map[[32]byte]bool{},
		holders: map[string]map[network.NodeKey]bool{}, kmipOwned: map[policy.Party]map[string]bool{},
	}
}

// KMIPOwned returns, sorted, the keys whose KMIP side names owner as
// their KMIP owner.
func (s *State) KMIPOwned(owner policy.Party) []string {
	keys := make([]string, 0, len(s.kmipOwned[owner]))
	for k := range s.kmipOwned[owner] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// kmipOwner is the KMIP owner k's KMIP side names ("" for none).
func kmipOwner(k *Key) policy.Party {
	if k.KMIP == nil {
		return ""
	}
	return k.KMIP.Owner
}

// moveKMIPOwner moves key name in kmipOwned from owner was to owner is.
func (s *State) moveKMIPOwner(name string, was, is policy.Party) {
	if was == is {
		return
	}
	if set := s.kmipOwned[was]; set != nil {
		delete(set, name)
		if len(set) == 0 {
			delete(s.kmipOwned, was)
		}
	}
	if is != "" {
		addTo(s.kmipOwned, is, name)
	}
}

// Drop reasons, counted in State.Dropped.
const (
	DropUnregistered = "unregistered issuer"
	DropNotCounted   = "after cut or equivocation"
	DropExpired      = "record not valid at event time"
	DropUnauthorised = "unauthorised"
	DropBadAdmin     = "bad admin signature"
	DropConflict     = "conflict"
	DropDestroyed    = "key destroyed"
	// DropUnreadable is a grant the fold could not check because the
	// policy history it needed could not be read back: it does not count
	// (until a refold of its key can read it).
	DropUnreadable = "policy history unreadable"
)

// IDPrefix is the prefix every grant and revocation id of issuer must
// carry: 20 hex digits of its key and a '-'. It scopes ids by issuer.
func IDPrefix(issuer network.NodeKey) string { return hex.EncodeToString(issuer[:10]) + "-" }

// OrgOf returns the organisation of a known node.
func (s *State) OrgOf(k network.NodeKey) (string, bool) {
	n, ok := s.Nodes[k]
	if !ok {
		return "", false
	}
	return n.Record.Org, true
}

// Active returns node k if it may still act at t (see Node.Active).
func (s *State) Active(k network.NodeKey, t time.Time) (*Node, bool) {
	n, ok := s.Nodes[k]
	if !ok || !n.Active(t) {
		return nil, false
	}
	return n, true
}

// OrgNodes returns the nodes of org active at t, sorted by key.
func (s *State) OrgNodes(org string, t time.Time) []network.NodeKey {
	var out []network.NodeKey
	for k, n := range s.Nodes {
		if n.Record.Org == org && n.Active(t) {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, compareKeys)
	return out
}

func compareKeys(a, b network.NodeKey) int { return bytes.Compare(a[:], b[:]) }

// EntitledOrgs returns the organisations whose nodes may hold key: the
// owner and every org with an org: grant that is not revoked. Sorted.
func (s *State) EntitledOrgs(key string) []string {
	k, ok := s.Keys[key]
	if !ok || k.Destroyed {
		return nil
	}
	orgs := s.Policy.OrgsWithGrant(key)
	if !slices.Contains(orgs, k.Owner) {
		orgs = append(orgs, k.Owner)
		slices.Sort(orgs)
	}
	return orgs
}

// Entitled reports whether node n's org may hold versions of key.
func (s *State) Entitled(key string, n network.NodeKey) bool {
	org, ok := s.OrgOf(n)
	return ok && slices.Contains(s.EntitledOrgs(key), org)
}

// Recipients returns every node entitled to key and active at t, sorted:
// expired, deregistered and tainted nodes receive no wraps.
func (s *State) Recipients(key string, t time.Time) []network.NodeKey {
	var out []network.NodeKey
	for _, org := range s.EntitledOrgs(key) {
		out = append(out, s.OrgNodes(org, t)...)
	}
	slices.SortFunc(out, compareKeys)
	return out
}

// CopiesFor returns the candidate copies of version v of key wrapped for
// node r that count now: from the KeyVersion, or shared by a node of an
// entitled org. The recipient checks each against v.Check. Each is a copy
// of the fold's, with the blob read from the store when this node holds
// it; a copy whose blob cannot be read comes without it (the error is
// logged) and the key is marked dirty, so a follower asks again.
func (s *State) CopiesFor(key string, v *Version, r network.NodeKey) []*Wrap {
	var out []*Wrap
	for w := range v.Copies(r) {
		if w.From == v.Creator || s.Entitled(key, w.From) {
			if w.held && s.readAtt != nil {
				blob, err := s.readAtt(key, w.Digest)
				if err != nil {
					s.dirty[key] = true
				}
				w.Blob = blob
			}
			out = append(out, &w)
		}
	}
	return out
}

// HasCopies reports whether CopiesFor(key, v, r) would return any copy,
// without reading a blob: what a count needs.
func (s *State) HasCopies(key string, v *Version, r network.NodeKey) bool {
	for w := range v.Copies(r) {
		if w.From == v.Creator || s.Entitled(key, w.From) {
			return true
		}
	}
	return false
}

// Outstanding returns the holders of a destroyed key that have not
// acknowledged the destroy yet.
func (k *Key) Outstanding() []network.NodeKey {
	var out []network.NodeKey
	for h := range k.Holders {
		if !k.Acks[h] {
			out = append(out, h)
		}
	}
	slices.SortFunc(out, compareKeys)
	return out
}

// key returns the key named name, creating its (empty) entry.
func (s *State) key(name string) *Key {
	k := s.Keys[name]
	if k == nil {
		owner, _ := s.genesis.KeyOwner(name)
		k = &Key{Name: name, Owner: owner}
		s.Keys[name] = k
	}
	return k
}

// counted reports whether the event with header e counts (see the package
// doc), with its issuer's org; otherwise the drop reason.
func (s *State) counted(e header) (org, reason string) {
	n, ok := s.Nodes[e.Issuer]
	if !ok {
		return "", DropUnregistered
	}
	if !n.Counts(e.Seq) {
		return "", DropNotCounted
	}
	rec, ok := n.recordAt(e.Seq)
	if !ok {
		return "", DropUnregistered
	}
	if !rec.ValidAt(e.Time) {
		return "", DropExpired
	}
	return rec.Org, ""
}

// apply folds one admitted event (its payload decoded in p) into the
// state. The order of calls does not change the result.
func (s *State) apply(e *entry) {
	ev := e.ev
	switch ev.Kind {
	case event.KindNodeRecord:
		s.applyRecord(e)
		return
	case event.KindDeregister:
		// The admin's signature is the authority; who carried it does not
		// matter.
		d := e.payload.(network.Deregister)
		if !s.adminSigned(e.id, d.Org, d.AdminKey, d.VerifyAdmin) {
			s.Dropped[DropBadAdmin]++
			return
		}
		n, ok := s.Nodes[d.SignKey]
		if !ok {
			s.cuts[d.SignKey] = append(s.cuts[d.SignKey], d)
			return
		}
		s.cut(n, d)
		return
	}
	name := e.key
	k := s.key(name)
	e.key = k.Name // one string per key, not one per event
	s.dirty[name] = true
	if ev.Kind == event.KindGrant || ev.Kind == event.KindRevoke {
		payload, deps := e.policyEvent(s.load)
		s.pol.addEvent(name, e, partyOf(payload))
		s.touch(ev.Issuer, name)
		if !k.Destroyed {
			if payload == nil && ev.Kind == event.KindRevoke {
				s.Policy.Suspend(name, "", fmt.Errorf("mesh: revocation %s/%d could not be read back", IssuerID(ev.Issuer), ev.Seq))
			}
			s.applyPolicy(k, e, payload, deps)
		}
		s.pol.maybeFlush()
		return
	}
	e.payload = sharedPayload(e.payload, k.Name)
	k.events = append(k.events, e)
	s.touch(ev.Issuer, name)
	s.refoldKey(k)
}

// sharedPayload returns p, the payload of an event on the key named name,
// with name (the Key's own string) for the key it names and a
// KeyVersion's wraps in a slice of their length. The fold keeps these
// payloads for refolds (see dropEvent), and a decoded one holds a copy
// of the name of its own and the wraps in the slice JSON decoding grew.
func sharedPayload(p any, name string) any {
	switch v := p.(type) {
	case event.KeyCreate:
		v.Key = name
		return v
	case event.KeyVersion:
		v.Key = name
		if cap(v.Wraps) > len(v.Wraps) {
			v.Wraps = slices.Clone(v.Wraps)
		}
		return v
	case event.KeyShare:
		v.Key = name
		return v
	case event.KeyState:
		v.Key = name
		return v
	case event.KeyDestroy:
		v.Key = name
		return v
	case event.DestroyAck:
		v.Key = name
		return v
	}
	return p
}

func (s *State) touch(issuer network.NodeKey, name string) { addTo(s.touched, issuer, name) }

func addTo[K comparable](m map[K]map[string]bool, k K, name string) {
	set := m[k]
	if set == nil {
		set = map[string]bool{}
		m[k] = set
	}
	set[name] = true
}

// refoldKeys refolds the named keys, in name order: their structure,
// and their grants and revocations too if policy is set.
func (s *State) refoldKeys(set map[string]bool, policy bool) {
	names := make([]string, 0, len(set))
	for name := range set {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		k := s.Keys[name]
		s.dirty[name] = true
		wasDestroyed := k.Destroyed
		s.refoldKey(k) // refolds the policy itself if Destroyed changed
		if policy && k.Destroyed == wasDestroyed {
			s.refoldPolicy(k)
		}
	}
}

// applyRecord adds a node record from its node's own chain.
func (s *State) applyRecord(e *entry) {
	r := e.payload.(network.NodeRecord)
	if r.SignKey != e.ev.Issuer || !s.adminSigned(e.id, r.Org, r.AdminKey, r.VerifyAdmin) {
		s.Dropped[DropBadAdmin]++
		return
	}
	n, ok := s.Nodes[r.SignKey]
	if !ok {
		n = &Node{}
		s.Nodes[r.SignKey] = n
	} else if n.records[0].rec.Org != r.Org {
		s.Dropped[DropConflict]++ // a node key belongs to one org for good
		return
	}
	i, _ := slices.BinarySearchFunc(n.records, e.ev.Seq, func(x seqRecord, q uint64) int { return cmp.Compare(x.seq, q) })
	n.records = slices.Insert(n.records, i, seqRecord{seq: e.ev.Seq, rec: r})
	n.Record = n.records[len(n.records)-1].rec
	s.allDirty = true
	if !ok {
		for _, d := range s.cuts[r.SignKey] {
			s.cut(n, d)
		}
		delete(s.cuts, r.SignKey)
	}
	// Copies wrapped for the node count once a record valid at the
	// wrapping event's time is held, whichever arrived first. The keys'
	// grants and revocations do not change: a record counts for its
	// node's events after it in its chain, which arrive after it (a cut
	// waiting for the node's first record refolds them above). Their
	// history is on disk, so not reading it back matters.
	s.refoldKeys(s.wrappedFor[r.SignKey], false)
}

// cut applies a verified deregistration to its node.
func (s *State) cut(n *Node, d network.Deregister) {
	if n.records[0].rec.Org != d.Org {
		s.Dropped[DropUnauthorised]++ // an admin deregisters only its org's nodes
		return
	}
	if n.Deregistered && n.LastSeq <= d.LastSeq {
		return
	}
	n.Deregistered, n.LastSeq = true, d.LastSeq
	s.refoldIssuer(d.SignKey)
}

// taint marks issuer k as equivocating from position seq on.
func (s *State) taint(k network.NodeKey, seq uint64) {
	n, ok := s.Nodes[k]
	if !ok || n.Tainted != 0 && n.Tainted <= seq {
		return
	}
	n.Tainted = seq
	s.refoldIssuer(k)
}

// refoldIssuer refolds every key that issuer's events touched.
func (s *State) refoldIssuer(issuer network.NodeKey) { s.refoldKeys(s.touched[issuer], true) }

// partyOf returns the party a grant or revocation payload names.
func partyOf(p any) policy.Party {
	switch v := p.(type) {
	case policy.Grant:
		return v.Party
	case policy.Revocation:
		return v.Party
	}
	return ""
}

// applyPolicy folds one grant or revocation, e with its payload and (for
// a grant) the dependencies its event names, into the policy state.
func (s *State) applyPolicy(k *Key, e *entry, payload any, deps []event.Dep) {
	org, reason := s.counted(e.ev)
	if reason != "" {
		s.Dropped[reason]++
		return
	}
	if org != k.Owner {
		s.Dropped[DropUnauthorised]++
		return
	}
	var err error
	switch p := payload.(type) {
	case policy.Grant:
		if !strings.HasPrefix(p.ID, IDPrefix(e.ev.Issuer)) {
			s.Dropped[DropUnauthorised]++
			return
		}
		err = s.Policy.AddGrantReaching(p, s.reachOf(&e.ev, deps))
	case policy.Revocation:
		if !strings.HasPrefix(p.ID, IDPrefix(e.ev.Issuer)) {
			s.Dropped[DropUnauthorised]++
			return
		}
		err = s.Policy.AddRevocationAt(p, policy.Position{Chain: ChainOf(e.ev.Issuer), Seq: e.ev.Seq})
	}
	switch {
	case errors.Is(err, policy.ErrArchive):
		s.Dropped[DropUnreadable]++
	case err != nil:
		s.Dropped[DropConflict]++
	}
}

// ChainOf is the policy chain of issuer k (policy.Position.Chain): the key's
// bytes.
func ChainOf(k network.NodeKey) string { return string(k[:]) }

// chainKey is the issuer of a chain ChainOf names.
func chainKey(chain string) (network.NodeKey, bool) {
	if len(chain) != len(network.NodeKey{}) {
		return network.NodeKey{}, false
	}
	return network.NodeKey([]byte(chain)), true
}

// reachOf is the causal reach (policy.Reach) of the event with header h
// that names dependencies deps, from what its admission proved: its own
// chain before it (Prev), and each dependency's chain up to the
// dependency, whose id the receiver checked — except a dependency at or
// after its issuer's taint, which admission does not check, so it reaches
// nothing. A taint refolds every key its issuer's events touched, so a
// reach that changes with it is asked again. The reach keeps its own copy
// of deps and of h's issuer and seq. The policy state keeps a grant's
// reach while the grant is in force, so it captures as little as it can:
// not h, which points into the event's entry and would keep the whole
// entry alive with every live grant (~190 bytes each:
// TestLiveGrantKeepsNoEntry), and no deps for an event without
// dependencies (a single node's).
func (s *State) reachOf(h *header, deps []event.Dep) policy.Reach {
	issuer, seq := h.Issuer, h.Seq
	if len(deps) == 0 {
		return func(chain string) uint64 {
			if chain == string(issuer[:]) {
				return seq - 1
			}
			return 0
		}
	}
	deps = slices.Clone(deps)
	return func(chain string) uint64 {
		if chain == string(issuer[:]) {
			return seq - 1
		}
		for _, d := range deps {
			if chain != string(d.Issuer[:]) {
				continue
			}
			if n, ok := s.Nodes[d.Issuer]; ok && n.Tainted != 0 && d.Seq >= n.Tainted {
				return 0
			}
			return d.Seq
		}
		return 0
	}
}

// refoldPolicy rebuilds the grants and revocations of key k from its
// events, in the fold's order (so an issuer's reused id keeps its first
// use), reading each back from the store one at a time (polStore's index
// of the key's events): a refold holds one event in memory, not the
// key's history. It fails closed: a grant that cannot be read back does
// not count; a revocation that cannot be read back suspends its pair
// (policy.State.Suspend: denied until the key's next refold), and an
// index that cannot be read suspends the whole key.
func (s *State) refoldPolicy(k *Key) {
	s.Policy.DropKey(k.Name)
	if k.Destroyed {
		return
	}
	err := s.pol.eachEvent(k.Name, func(r polRef) error {
		e := &entry{ev: header{Issuer: r.issuer, Seq: r.seq, Lamport: r.lamport, Kind: r.kind}, id: r.id, key: k.Name, stored: true}
		var ev *event.Event
		err := errors.New("mesh: no store to read it from")
		if s.load != nil {
			ev, err = s.load(e)
		}
		if err == nil {
			e.ev = header{Issuer: ev.Issuer, Seq: ev.Seq, Lamport: ev.Lamport, Time: ev.Time, Kind: ev.Kind}
			e.full = ev
		}
		payload, deps := e.policyEvent(nil)
		if payload == nil {
			if r.kind == event.KindRevoke {
				if err == nil {
					err = fmt.Errorf("mesh: stored revocation %s/%d does not decode", IssuerID(r.issuer), r.seq)
				}
				s.Policy.Suspend(k.Name, r.party, err)
			}
			return nil // a grant that cannot be read back does not count
		}
		s.applyPolicy(k, e, payload, deps)
		s.pol.maybeFlush()
		return nil
	})
	if err != nil {
		s.Policy.Suspend(k.Name, "", fmt.Errorf("mesh: read back the grants and revocations of %q: %w", k.Name, err))
	}
}

// compareOrder is the canonical order used for tie-breaks: (Lamport,
// issuer, seq).
func compareOrder(a, b header) int {
	return cmp.Or(cmp.Compare(a.Lamport, b.Lamport), compareKeys(a.Issuer, b.Issuer), cmp.Compare(a.Seq, b.Seq))
}

// refoldKey recomputes key k's structure (create, versions, copies, state,
// destroy, acks) from its events. It is linear in the key's events, which
// are few: versions, shares and lifecycle changes.
func (s *State) refoldKey(k *Key) {
	wasDestroyed := k.Destroyed
	was := kmipOwner(k)
	defer func() { s.moveKMIPOwner(k.Name, was, kmipOwner(k)) }()
	*k = Key{Name: k.Name, Owner: k.Owner, events: k.events,
		Holders: map[network.NodeKey]bool{}} // Acks: nil (empty) until destroyed
	evs := slices.Clone(k.events)
	slices.SortFunc(evs, func(a, b *entry) int { return compareOrder(a.ev, b.ev) })
	var slots []*entry // winning KeyVersion per slot (index version-1)
	var shares, acks []*entry
	for _, e := range evs {
		org, reason := s.counted(e.ev)
		if reason != "" {
			continue
		}
		ownerEvent := org == k.Owner && k.Owner != ""
		switch p := e.payload.(type) {
		case event.KeyCreate:
			if ownerEvent && !k.Created {
				k.Created, k.Creator = true, e.ev.Issuer
				k.Deterministic, k.Exportable, k.CreatedAt = p.Deterministic, p.Exportable, e.ev.Time.UTC()
				k.State, k.MinDecrypt = vault.StateActive, 1
				if p.PreActive {
					k.State = vault.StatePreActive
				}
			}
		case event.KeyVersion:
			if !ownerEvent {
				continue
			}
			for len(slots) < int(p.Version) {
				slots = append(slots, nil)
			}
			if slots[p.Version-1] == nil {
				slots[p.Version-1] = e
			}
		case event.KeyShare:
			shares = append(shares, e)
		case event.DestroyAck:
			acks = append(acks, e)
		}
	}
	if !k.Created {
		return
	}
	for _, e := range evs {
		if org, reason := s.counted(e.ev); reason != "" || org != k.Owner {
			continue
		}
		switch p := e.payload.(type) {
		case event.KeyState:
			if to, err := vault.ParseState(p.State); err == nil && to > k.State && to != vault.StateDestroyed {
				k.State = to
			}
			k.MinDecrypt = max(k.MinDecrypt, p.MinDecryptionVersion)
		case event.KeyDestroy:
			k.Destroyed, k.State = true, vault.StateDestroyed
		case event.KMIPAttrs: // the latest in the fold's order counts
			k.KMIP = &p
		}
	}
	for _, e := range slots {
		if e == nil {
			break // versions are contiguous from 1
		}
		kv := e.payload.(event.KeyVersion)
		v := &Version{N: kv.Version, ActivateAt: kv.ActivateAt.UTC(), Creator: e.ev.Issuer, Check: kv.Check,
			copies: make([]foldCopy, 0, len(kv.Wraps)), nodes: s.copyNodes()}
		for _, w := range kv.Wraps {
			s.addCopy(k, v, w, e)
		}
		k.Holders[e.ev.Issuer] = true
		k.Versions = append(k.Versions, v)
		if kv.Floor {
			k.EndorseFloor = kv.Version
		}
	}
	for _, e := range shares {
		for _, sh := range e.payload.(event.KeyShare).Shares {
			if int(sh.Version) <= len(k.Versions) {
				s.addCopy(k, k.Versions[sh.Version-1], sh.Wrap, e)
			}
		}
	}
	if k.Destroyed {
		for _, v := range k.Versions {
			v.copies = nil
		}
		k.Acks = map[network.NodeKey]bool{}
		for _, e := range acks {
			if k.Holders[e.ev.Issuer] {
				k.Acks[e.ev.Issuer] = true
			}
		}
	}
	k.Holders = s.shareHolders(k.Holders)
	if k.Destroyed != wasDestroyed {
		s.refoldPolicy(k)
	}
}

// addCopy adds a candidate copy of v for w.Recipient from event e, if one
// of the recipient's records is valid at e's time: an expired node
// receives no wraps.
func (s *State) addCopy(k *Key, v *Version, w event.Wrap, e *entry) {
	addTo(s.wrappedFor, w.Recipient, k.Name)
	n, ok := s.Nodes[w.Recipient]
	if !ok || !slices.ContainsFunc(n.records, func(r seqRecord) bool { return r.rec.ValidAt(e.ev.Time) }) {
		return
	}
	if v.addCopy(w.Recipient, e.ev.Issuer, w.Digest, e.holds(w.Digest)) {
		k.Holders[w.Recipient] = true
	}
}

func keyName(p any) string {
	switch v := p.(type) {
	case event.KeyCreate:
		return v.Key
	case event.KeyVersion:
		return v.Key
	case event.KeyShare:
		return v.Key
	case event.KeyState:
		return v.Key
	case event.KeyDestroy:
		return v.Key
	case event.DestroyAck:
		return v.Key
	case event.KMIPAttrs:
		return v.Key
	case policy.Grant:
		return v.Key
	case policy.Revocation:
		return v.Key
	}
	return ""
}

// decode parses and validates an event's payload.
func decode(e *event.Event) (any, error) {
	switch e.Kind {
	case event.KindNodeRecord:
		return network.DecodeNodeRecord(e.Payload)
	case event.KindDeregister:
		return network.DecodeDeregister(e.Payload)
	case event.KindKeyCreate:
		return event.DecodeKeyCreate(e.Payload)
	case event.KindKeyVersion:
		return event.DecodeKeyVersion(e.Payload)
	case event.KindKeyShare:
		return event.DecodeKeyShare(e.Payload)
	case event.KindKeyState:
		return event.DecodeKeyState(e.Payload)
	case event.KindKeyDestroy:
		return event.DecodeKeyDestroy(e.Payload)
	case event.KindDestroyAck:
		return event.DecodeDestroyAck(e.Payload)
	case event.KindGrant:
		return event.DecodeGrant(e.Payload)
	case event.KindRevoke:
		return event.DecodeRevoke(e.Payload)
	case event.KindKMIPAttrs:
		return event.DecodeKMIPAttrs(e.Payload)
	}
	return nil, fmt.Errorf("unknown event kind %d", e.Kind)
}

// Canonical returns a deterministic encoding of the whole state: two nodes
// holding the same event set produce identical bytes. Dropped counts are
// left out (they count deliveries, not the set).
func (s *State) Canonical() []byte {
	var b bytes.Buffer
	str := func(x string) {
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(x))))
		b.WriteString(x)
	}
	u := func(x uint64) { b.Write(binary.BigEndian.AppendUint64(nil, x)) }
	nodes := make([]network.NodeKey, 0, len(s.Nodes))
	for k := range s.Nodes {
		nodes = append(nodes, k)
	}
	slices.SortFunc(nodes, compareKeys)
	u(uint64(len(nodes)))
	for _, k := range nodes {
		n := s.Nodes[k]
		b.Write(k[:])
		str(n.Record.Org)
		str(n.Record.PeerID)
		str(strings.Join(n.Record.Addrs, ","))
		h := sha256.Sum256(n.Record.KEMKey)
		b.Write(h[:])
		u(uint64(n.Record.NotAfter.UnixNano()))
		str(fmt.Sprintf("%t %d %d %d", n.Deregistered, n.LastSeq, n.Tainted, len(n.records)))
	}
	names := make([]string, 0, len(s.Keys))
	for n, k := range s.Keys {
		if k.Created {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	u(uint64(len(names)))
	for _, n := range names {
		k := s.Keys[n]
		str(k.Name)
		str(k.Owner)
		b.Write(k.Creator[:])
		str(fmt.Sprintf("%t %t %d %d %t %d %d", k.Deterministic, k.Exportable, k.State, k.MinDecrypt, k.Destroyed, k.CreatedAt.UnixNano(), k.EndorseFloor))
		u(uint64(len(k.Versions)))
		for _, v := range k.Versions {
			u(uint64(v.N))
			u(uint64(v.ActivateAt.UnixNano()))
			b.Write(v.Creator[:])
			b.Write(v.Check[:])
			rs := slices.Collect(v.Recipients()) // sorted
			u(uint64(len(rs)))
			for _, r := range rs {
				b.Write(r[:])
				var ds []string
				for w := range v.Copies(r) {
					ds = append(ds, string(w.Digest[:])+string(w.From[:]))
				}
				slices.Sort(ds)
				for _, d := range ds {
					b.WriteString(d)
				}
			}
		}
		for _, set := range []map[network.NodeKey]bool{k.Holders, k.Acks} {
			ks := make([]network.NodeKey, 0, len(set))
			for x := range set {
				ks = append(ks, x)
			}
			slices.SortFunc(ks, compareKeys)
			u(uint64(len(ks)))
			for _, x := range ks {
				b.Write(x[:])
			}
		}
	}
	b.Write(s.Policy.Canonical())
	return b.Bytes()
}
