// Package mesh holds a keymesh network's replicated state: the signed
// events that nodes exchange (package event is their wire format), the
// durable per-node event log, and the deterministic fold of the event set
// into registered nodes, keys with their versions and wrapped copies, grants
// and revocations, and destroy acknowledgements.
//
// # The fold
//
// State is a pure function of the set of events: events are applied in one
// canonical order — (Lamport clock, issuer key, sequence number) — and each
// is checked against the state built so far, so two nodes holding the same
// events hold the same state whatever order the events arrived in. A node's
// Lamport clock exceeds that of every event it had applied, so an event
// issued after another was seen sorts after it. Rules:
//
//   - A node record is authorised by its organisation admin's signature (a
//     genesis admin key of that org) and published by the node itself. A
//     deregistration is authorised by an admin signature and is final for
//     that node key.
//   - Every other event needs an issuer that is registered at that point.
//   - Only nodes of a key's owner organisation (the organisation of the node
//     that created it) may add versions, change its state, grant, revoke or
//     destroy it. The first KeyCreate of a name wins; a version must be the
//     next number (a concurrent rotation loses deterministically — rotated
//     versions activate after a grace, so nobody encrypted with the loser).
//   - A KeyShare adds a wrapped copy of a version for an entitled node: one
//     of the owner organisation or of an organisation with an org: grant in
//     force, issued by a node that holds the version.
//   - Grants and revocations fold remove-wins (package policy).
//
// Events that break a rule are kept out of the state and counted; they are
// also refused at the gossip validator when the rule can be checked there.
//
// # Crypto-shredding and the log
//
// Key versions travel wrapped (package vault/transport) as unsigned
// attachments of KeyVersion and KeyShare events, named in the signed
// payload by digest. When the fold destroys a key, every node drops those
// attachments from memory, deletes them from its store and erases them from
// disk (kv.Eraser); the events themselves stay, still verifiable, so logs
// keep converging. Late copies of the key's events are stored without their
// attachments. So a destroyed key can be recovered neither from a vault nor
// from an event log — only from a node that did not honour the destroy,
// which its missing acknowledgement shows.
package mesh

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault"
)

// Node is a registered (or deregistered) node.
type Node struct {
	Record       event.NodeRecord
	Deregistered bool
}

// Key is a key as the network agrees on it.
type Key struct {
	Name          string
	Owner         string
	Creator       event.NodeKey
	Deterministic bool
	Exportable    bool
	State         vault.State
	MinDecrypt    uint32
	Created       time.Time
	Versions      []*Version // index = version-1
	Destroyed     bool
	// Holders are the nodes that ever held a version: each must
	// acknowledge a destroy.
	Holders map[event.NodeKey]bool
	Acks    map[event.NodeKey]bool
}

// Version is one key version: its activation time and the copies wrapped
// for each recipient node.
type Version struct {
	N          uint32
	ActivateAt time.Time
	Creator    event.NodeKey
	Wraps      map[event.NodeKey]*Wrap
}

// Wrap is a copy of a version wrapped for one node: the digest the signed
// event names, and the blob when this node has it (nil once pruned, or
// while only a stripped copy of the event has arrived).
type Wrap struct {
	Digest event.Digest
	Blob   []byte
}

// State is the fold of an event set.
type State struct {
	genesis *event.Genesis
	nid     event.NetworkID
	// adminOK caches, by event id, whether a node record's or
	// deregistration's admin signature holds: a refold must not re-verify
	// every record. It is shared by the successive states of one log.
	adminOK map[[32]byte]bool
	Nodes   map[event.NodeKey]*Node
	Keys    map[string]*Key
	Policy  *policy.State
	// Dropped counts events the fold kept out, by reason.
	Dropped map[string]int
}

// NewState returns the state of an empty event set under genesis.
func NewState(g *event.Genesis) *State {
	return &State{genesis: g, nid: g.ID(), adminOK: map[[32]byte]bool{}, Nodes: map[event.NodeKey]*Node{}, Keys: map[string]*Key{}, Policy: policy.NewState(), Dropped: map[string]int{}}
}

// adminSigned reports whether e's admin signature (node record or
// deregistration) holds, verifying each event once.
func (s *State) adminSigned(e *event.Event, org string, key [32]byte, verify func(event.NetworkID) error) bool {
	id := e.ID()
	if ok, seen := s.adminOK[id]; seen {
		return ok
	}
	ok := s.genesis.IsAdmin(org, key) && verify(s.nid) == nil
	s.adminOK[id] = ok
	return ok
}

// sortKey orders events canonically.
type sortKey struct {
	lamport uint64
	issuer  event.NodeKey
	seq     uint64
}

func keyOf(e *event.Event) sortKey { return sortKey{e.Lamport, e.Issuer, e.Seq} }

func (a sortKey) compare(b sortKey) int {
	if a.lamport != b.lamport {
		if a.lamport < b.lamport {
			return -1
		}
		return 1
	}
	if c := bytes.Compare(a.issuer[:], b.issuer[:]); c != 0 {
		return c
	}
	switch {
	case a.seq < b.seq:
		return -1
	case a.seq > b.seq:
		return 1
	}
	return 0
}

// Active reports whether node k is registered and not deregistered.
func (s *State) Active(k event.NodeKey) (*Node, bool) {
	n, ok := s.Nodes[k]
	if !ok || n.Deregistered {
		return nil, false
	}
	return n, true
}

// OrgOf returns the organisation of an active node.
func (s *State) OrgOf(k event.NodeKey) (string, bool) {
	n, ok := s.Active(k)
	if !ok {
		return "", false
	}
	return n.Record.Org, true
}

// OrgNodes returns the active nodes of org, sorted by key.
func (s *State) OrgNodes(org string) []event.NodeKey {
	var out []event.NodeKey
	for k, n := range s.Nodes {
		if !n.Deregistered && n.Record.Org == org {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b event.NodeKey) int { return bytes.Compare(a[:], b[:]) })
	return out
}

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

// Entitled reports whether node n may hold versions of key.
func (s *State) Entitled(key string, n event.NodeKey) bool {
	org, ok := s.OrgOf(n)
	return ok && slices.Contains(s.EntitledOrgs(key), org)
}

// Recipients returns every active node entitled to key, sorted.
func (s *State) Recipients(key string) []event.NodeKey {
	var out []event.NodeKey
	for _, org := range s.EntitledOrgs(key) {
		out = append(out, s.OrgNodes(org)...)
	}
	slices.SortFunc(out, func(a, b event.NodeKey) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// Outstanding returns the holders of a destroyed key that have not
// acknowledged the destroy yet.
func (k *Key) Outstanding() []event.NodeKey {
	var out []event.NodeKey
	for h := range k.Holders {
		if !k.Acks[h] {
			out = append(out, h)
		}
	}
	slices.SortFunc(out, func(a, b event.NodeKey) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// Drop reasons.
const (
	DropUnregistered = "unregistered issuer"
	DropUnauthorised = "unauthorised"
	DropBadAdmin     = "bad admin signature"
	DropMalformed    = "malformed payload"
	DropUnknownKey   = "unknown key"
	DropConflict     = "conflict"
	DropDestroyed    = "key destroyed"
)

// errDrop is a fold rule violation with its reason.
type errDrop struct{ reason, detail string }

func (e *errDrop) Error() string { return e.reason + ": " + e.detail }

func drop(reason, format string, args ...any) error {
	return &errDrop{reason: reason, detail: fmt.Sprintf(format, args...)}
}

// dropReason returns the reason of a rule violation, or "" for another
// error.
func dropReason(err error) string {
	var d *errDrop
	if errors.As(err, &d) {
		return d.reason
	}
	return ""
}

// check reports whether e would apply to the state now, without changing
// it; a node uses it before issuing an event of its own. It covers the
// rules a node can break by itself: creating an existing key, skipping a
// version number, acting on a key of another org or a destroyed key.
func (s *State) check(e *event.Event, p any) error {
	switch e.Kind {
	case event.KindNodeRecord, event.KindDeregister:
		return nil
	case event.KindKeyCreate:
		if _, ok := s.Keys[p.(event.KeyCreate).Key]; ok {
			return drop(DropConflict, "key %q exists", p.(event.KeyCreate).Key)
		}
		return nil
	}
	org, ok := s.OrgOf(e.Issuer)
	if !ok {
		return drop(DropUnregistered, "this node is not registered")
	}
	name := keyName(p)
	k, ok := s.Keys[name]
	if !ok {
		return drop(DropUnknownKey, "key %q", name)
	}
	if k.Destroyed && e.Kind != event.KindDestroyAck {
		return drop(DropDestroyed, "key %q", name)
	}
	switch e.Kind {
	case event.KindKeyShare, event.KindDestroyAck:
		return nil
	case event.KindKeyVersion:
		if v := p.(event.KeyVersion).Version; v != uint32(len(k.Versions))+1 {
			return drop(DropConflict, "version %d of %q, want %d", v, name, len(k.Versions)+1)
		}
	}
	if org != k.Owner {
		return drop(DropUnauthorised, "key %q is owned by %q", name, k.Owner)
	}
	return nil
}

// apply applies one verified event whose payload is decoded in p.
func (s *State) apply(e *event.Event, p any) error {
	switch e.Kind {
	case event.KindNodeRecord:
		r := p.(event.NodeRecord)
		if r.SignKey != e.Issuer {
			return drop(DropUnauthorised, "node record for another node key")
		}
		if !s.adminSigned(e, r.Org, r.AdminKey, r.VerifyAdmin) {
			return drop(DropBadAdmin, "node record of %q not signed by a genesis admin of that org", r.Org)
		}
		if n, ok := s.Nodes[r.SignKey]; ok && n.Deregistered {
			return drop(DropConflict, "node was deregistered")
		}
		if n, ok := s.Nodes[r.SignKey]; ok && n.Record.Org != r.Org {
			return drop(DropConflict, "node key already registered to another org")
		}
		s.Nodes[r.SignKey] = &Node{Record: r}
		return nil
	case event.KindDeregister:
		if _, ok := s.Active(e.Issuer); !ok {
			return drop(DropUnregistered, "issuer %s", e.Issuer)
		}
		d := p.(event.Deregister)
		if !s.adminSigned(e, d.Org, d.AdminKey, d.VerifyAdmin) {
			return drop(DropBadAdmin, "deregistration not signed by a genesis admin of %q", d.Org)
		}
		n, ok := s.Nodes[d.SignKey]
		if ok && n.Record.Org != d.Org {
			return drop(DropUnauthorised, "admin of %q cannot deregister a node of %q", d.Org, n.Record.Org)
		}
		if !ok {
			n = &Node{Record: event.NodeRecord{Org: d.Org, SignKey: d.SignKey}}
			s.Nodes[d.SignKey] = n
		}
		n.Deregistered = true
		return nil
	}

	issuerOrg, ok := s.OrgOf(e.Issuer)
	if !ok {
		return drop(DropUnregistered, "issuer %s", e.Issuer)
	}
	if e.Kind == event.KindKeyCreate {
		c := p.(event.KeyCreate)
		if _, exists := s.Keys[c.Key]; exists {
			return drop(DropConflict, "key %q exists", c.Key)
		}
		st := vault.StateActive
		if c.PreActive {
			st = vault.StatePreActive
		}
		s.Keys[c.Key] = &Key{
			Name: c.Key, Owner: issuerOrg, Creator: e.Issuer, Deterministic: c.Deterministic,
			Exportable: c.Exportable, State: st, MinDecrypt: 1, Created: e.Time.UTC(),
			Holders: map[event.NodeKey]bool{}, Acks: map[event.NodeKey]bool{},
		}
		return nil
	}

	name := keyName(p)
	k, ok := s.Keys[name]
	if !ok {
		return drop(DropUnknownKey, "key %q", name)
	}
	if e.Kind == event.KindDestroyAck {
		if !k.Destroyed {
			return drop(DropConflict, "ack for key %q that is not destroyed", name)
		}
		if !k.Holders[e.Issuer] {
			return drop(DropUnauthorised, "ack from a node that never held %q", name)
		}
		k.Acks[e.Issuer] = true
		return nil
	}
	if k.Destroyed {
		return drop(DropDestroyed, "key %q", name)
	}
	if e.Kind == event.KindKeyShare {
		ks := p.(event.KeyShare)
		// Every share must hold, or none applies.
		for _, sh := range ks.Shares {
			if sh.Version < 1 || int(sh.Version) > len(k.Versions) {
				return drop(DropConflict, "share of unknown version %d of %q", sh.Version, name)
			}
			v := k.Versions[sh.Version-1]
			if _, holds := v.Wraps[e.Issuer]; !holds && v.Creator != e.Issuer {
				return drop(DropUnauthorised, "share by a node that does not hold %q v%d", name, sh.Version)
			}
			if !s.Entitled(name, sh.Wrap.Recipient) {
				return drop(DropUnauthorised, "share of %q to a node that is not entitled", name)
			}
		}
		for _, sh := range ks.Shares {
			v := k.Versions[sh.Version-1]
			if _, has := v.Wraps[sh.Wrap.Recipient]; !has {
				v.Wraps[sh.Wrap.Recipient] = &Wrap{Digest: sh.Wrap.Digest, Blob: e.Attachment(sh.Wrap.Digest)}
				k.Holders[sh.Wrap.Recipient] = true
			}
		}
		return nil
	}
	if issuerOrg != k.Owner {
		return drop(DropUnauthorised, "%s by org %q on key %q owned by %q", e.Kind, issuerOrg, name, k.Owner)
	}
	switch e.Kind {
	case event.KindKeyVersion:
		kv := p.(event.KeyVersion)
		if kv.Version != uint32(len(k.Versions))+1 {
			return drop(DropConflict, "version %d of %q, want %d", kv.Version, name, len(k.Versions)+1)
		}
		v := &Version{N: kv.Version, ActivateAt: kv.ActivateAt.UTC(), Creator: e.Issuer, Wraps: map[event.NodeKey]*Wrap{}}
		for _, w := range kv.Wraps {
			if !s.Entitled(name, w.Recipient) {
				continue // a wrap for a node that is not entitled is ignored
			}
			v.Wraps[w.Recipient] = &Wrap{Digest: w.Digest, Blob: e.Attachment(w.Digest)}
			k.Holders[w.Recipient] = true
		}
		k.Holders[e.Issuer] = true
		k.Versions = append(k.Versions, v)
	case event.KindKeyState:
		ks := p.(event.KeyState)
		if ks.State != "" {
			to, err := vault.ParseState(ks.State)
			if err != nil || to == vault.StateDestroyed {
				return drop(DropMalformed, "state %q", ks.State)
			}
			if to != k.State && !vault.CanTransition(k.State, to) {
				return drop(DropConflict, "%q cannot go from %s to %s", name, k.State, to)
			}
			k.State = to
		}
		if ks.MinDecryptionVersion != 0 {
			if int(ks.MinDecryptionVersion) > len(k.Versions) {
				return drop(DropConflict, "minimum decryption version %d of %q beyond its versions", ks.MinDecryptionVersion, name)
			}
			k.MinDecrypt = ks.MinDecryptionVersion
		}
	case event.KindKeyDestroy:
		k.Destroyed = true
		k.State = vault.StateDestroyed
		for _, v := range k.Versions {
			v.Wraps = map[event.NodeKey]*Wrap{}
		}
	case event.KindGrant:
		g := p.(policy.Grant)
		if err := s.Policy.AddGrant(g); err != nil {
			return drop(DropConflict, "grant: %v", err)
		}
	case event.KindRevoke:
		r := p.(policy.Revocation)
		if err := s.Policy.AddRevocation(r); err != nil {
			return drop(DropConflict, "revocation: %v", err)
		}
	default:
		return drop(DropMalformed, "unknown kind %d", e.Kind)
	}
	return nil
}

func keyName(p any) string {
	switch v := p.(type) {
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
		return event.DecodeNodeRecord(e.Payload)
	case event.KindDeregister:
		return event.DecodeDeregister(e.Payload)
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
	}
	return nil, fmt.Errorf("unknown event kind %d", e.Kind)
}

// Canonical returns a deterministic encoding of the whole state: two nodes
// holding the same event set produce identical bytes.
func (s *State) Canonical() []byte {
	var b bytes.Buffer
	str := func(x string) {
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(x))))
		b.WriteString(x)
	}
	u := func(x uint64) { b.Write(binary.BigEndian.AppendUint64(nil, x)) }
	nodes := make([]event.NodeKey, 0, len(s.Nodes))
	for k := range s.Nodes {
		nodes = append(nodes, k)
	}
	slices.SortFunc(nodes, func(a, b event.NodeKey) int { return bytes.Compare(a[:], b[:]) })
	u(uint64(len(nodes)))
	for _, k := range nodes {
		n := s.Nodes[k]
		b.Write(k[:])
		str(n.Record.Org)
		str(n.Record.PeerID)
		str(strings.Join(n.Record.Addrs, ","))
		h := sha256.Sum256(n.Record.KEMKey)
		b.Write(h[:])
		if n.Deregistered {
			b.WriteByte(1)
		} else {
			b.WriteByte(0)
		}
	}
	names := make([]string, 0, len(s.Keys))
	for n := range s.Keys {
		names = append(names, n)
	}
	slices.Sort(names)
	u(uint64(len(names)))
	for _, n := range names {
		k := s.Keys[n]
		str(k.Name)
		str(k.Owner)
		b.Write(k.Creator[:])
		str(fmt.Sprintf("%t %t %d %d %t %d", k.Deterministic, k.Exportable, k.State, k.MinDecrypt, k.Destroyed, k.Created.UnixNano()))
		u(uint64(len(k.Versions)))
		for _, v := range k.Versions {
			u(uint64(v.N))
			u(uint64(v.ActivateAt.UnixNano()))
			b.Write(v.Creator[:])
			rs := make([]event.NodeKey, 0, len(v.Wraps))
			for r := range v.Wraps {
				rs = append(rs, r)
			}
			slices.SortFunc(rs, func(a, b event.NodeKey) int { return bytes.Compare(a[:], b[:]) })
			u(uint64(len(rs)))
			for _, r := range rs {
				b.Write(r[:])
				b.Write(v.Wraps[r].Digest[:])
			}
		}
		for _, set := range []map[event.NodeKey]bool{k.Holders, k.Acks} {
			ks := make([]event.NodeKey, 0, len(set))
			for x := range set {
				ks = append(ks, x)
			}
			slices.SortFunc(ks, func(a, b event.NodeKey) int { return bytes.Compare(a[:], b[:]) })
			u(uint64(len(ks)))
			for _, x := range ks {
				b.Write(x[:])
			}
		}
	}
	b.Write(s.Policy.Canonical())
	return b.Bytes()
}
