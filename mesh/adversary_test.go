package mesh

// The dishonest-member harness and the regression tests of issue 8.
//
// Mallory is a registered node of Org2MSP that the test drives directly: it
// signs whatever it likes with event.Sign — clocks too small or too large,
// times before or after what it follows, ids it saw elsewhere, two events
// at one position of its chain, events after its deregistration, key events
// on Org1MSP's keys, shares of material of its choosing — and hands each
// event to whichever nodes it likes. Honest nodes are real Logs on in-memory
// stores that issue through Log.Issue.
//
// Findings 6 (anyone can read the event log) and 8 (the nonce budget is per
// node) are not properties of this package and are tested elsewhere: 6 in
// package p2p (the connection gater and registered-only anti-entropy,
// TestFinding6_UnregisteredPeerReadsNothing in p2p/gate_test.go), 8 in
// package vault/envelope (the nonce construction and its budget).
//
// Every identifier of this file and of sim_test.go starts with adv or sim so
// that they do not collide with the other tests of the package.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault"
	"github.com/keymesh/keymesh/vault/transport"
)

// advOrgs are the orgs of every test network and the namespace each owns.
var advOrgs = []struct{ id, ns string }{
	{"Org1MSP", "trade"},
	{"Org2MSP", "asset"},
	{"Org3MSP", "gdpr"},
}

func advNamespace(org string) string {
	for _, o := range advOrgs {
		if o.id == org {
			return o.ns
		}
	}
	panic("unknown org " + org)
}

// One transport key pair for every node: generating ML-KEM keys per node
// would dominate the simulation, and the bindings name the recipient anyway.
var advKEM struct {
	once      sync.Once
	priv, pub []byte
	err       error
}

func advKEMKey(t testing.TB) (priv, pub []byte) {
	t.Helper()
	advKEM.once.Do(func() {
		// A fixed seed, so that a schedule's events (and their ids) are the
		// same in every run: -sim.seed replays exactly.
		advKEM.priv = bytes.Repeat([]byte{0x6b}, transport.PrivateKeySize)
		advKEM.pub, advKEM.err = transport.PublicKey(advKEM.priv)
	})
	if advKEM.err != nil {
		t.Fatal(advKEM.err)
	}
	return advKEM.priv, advKEM.pub
}

// advNet is a test network: the genesis, the org admins' keys and one clock
// that every log of the network reads.
type advNet struct {
	g      *network.Genesis
	nid    network.NetworkID
	admins map[string]ed25519.PrivateKey
	t0     time.Time
	now    time.Time
	rng    *mrand.Rand // node keys
}

func newAdvNet(t testing.TB, seed uint64) *advNet {
	t.Helper()
	n := &advNet{admins: map[string]ed25519.PrivateKey{}, t0: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC),
		rng: mrand.New(mrand.NewPCG(seed, 0xadf))}
	n.now = n.t0
	g := &network.Genesis{Network: "adv-net", Created: n.t0}
	for _, o := range advOrgs {
		priv := n.newKey()
		n.admins[o.id] = priv
		g.Orgs = append(g.Orgs, network.GenesisOrg{ID: o.id, AdminKeys: [][32]byte{[32]byte(priv.Public().(ed25519.PublicKey))},
			Namespaces: []string{o.ns}})
	}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	n.g, n.nid = g, g.ID()
	return n
}

func (n *advNet) newKey() ed25519.PrivateKey {
	var s [32]byte
	for i := range s {
		s[i] = byte(n.rng.Uint32())
	}
	return ed25519.NewKeyFromSeed(s[:])
}

func (n *advNet) clock() time.Time { return n.now }

// advMember is a node identity: its org and signing key.
type advMember struct {
	org  string
	priv ed25519.PrivateKey
	key  network.NodeKey
}

func (n *advNet) member(org string) advMember {
	priv := n.newKey()
	return advMember{org: org, priv: priv, key: network.NodeKey(priv.Public().(ed25519.PublicKey))}
}

// record is m's admin-signed node record, valid from nb to na.
func (n *advNet) record(t testing.TB, m advMember, nb, na time.Time) network.NodeRecord {
	t.Helper()
	_, pub := advKEMKey(t)
	r, err := network.SignNodeRecord(n.admins[m.org], n.nid, network.NodeRecord{
		Org: m.org, PeerID: "12D3KooWadv" + m.key.String(), SignKey: m.key, KEMKey: pub,
		Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}, NotBefore: nb, NotAfter: na,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (n *advNet) defaultRecord(t testing.TB, m advMember) network.NodeRecord {
	return n.record(t, m, n.t0.Add(-time.Hour), n.t0.Add(24*time.Hour))
}

// deregister is an admin of org's deregistration of node k after lastSeq.
func (n *advNet) deregister(t testing.TB, org string, k network.NodeKey, lastSeq uint64) network.Deregister {
	t.Helper()
	d, err := network.SignDeregister(n.admins[org], n.nid, network.Deregister{Org: org, SignKey: k, LastSeq: lastSeq, At: n.now})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func advJSON(t testing.TB, v any) []byte {
	t.Helper()
	if b, ok := v.([]byte); ok {
		return b
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// advNode is an honest node: a Log on its own in-memory store.
type advNode struct {
	net   *advNet
	m     advMember
	store *kv.Mem
	log   *Log
	opts  LogOptions
}

// honest opens a log for a new node of org and issues its record.
func (n *advNet) honest(t testing.TB, org string) *advNode {
	t.Helper()
	h := n.node(t, n.member(org), LogOptions{})
	h.issue(t, event.KindNodeRecord, n.defaultRecord(t, h.m))
	return h
}

// node opens a log for m without registering it.
func (n *advNet) node(t testing.TB, m advMember, o LogOptions) *advNode {
	t.Helper()
	if o.Clock == nil {
		o.Clock = n.clock
	}
	h := &advNode{net: n, m: m, store: kv.NewMem(), opts: o}
	h.reopen(t)
	return h
}

// reopen restarts the node: a new Log from its store.
func (h *advNode) reopen(t testing.TB) {
	t.Helper()
	l, err := OpenLog(h.store, h.net.g, h.m.priv, h.opts)
	if err != nil {
		t.Fatal(err)
	}
	h.log = l
}

func (h *advNode) issue(t testing.TB, kind event.Kind, payload any, att ...[]byte) []byte {
	t.Helper()
	is, err := h.log.Issue(kind, advJSON(t, payload), att...)
	if err != nil {
		t.Fatalf("%s of %s: %v", kind, h.m.org, err)
	}
	return is.Raw
}

func (h *advNode) canon() []byte { return advCanon(h.log) }

func advCanon(l *Log) []byte {
	var b []byte
	l.View(func(s *State) { b = s.Canonical() })
	return b
}

// advAll returns every event and proof l holds, issuer by issuer.
func advAll(t testing.TB, l *Log) [][]byte {
	t.Helper()
	var out [][]byte
	sum := l.Summary()
	ids := make([]string, 0, len(sum))
	for id := range sum {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		evs, err := l.Events(id, 0, int(sum[id]))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, evs...)
	}
	return out
}

// advChain returns the events of issuer k that l holds.
func advChain(t testing.TB, l *Log, k network.NodeKey) [][]byte {
	t.Helper()
	evs, err := l.Events(IssuerID(k), 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// advHolds fails unless l holds Mallory's whole chain: its hostile events
// were admitted (admission is a pure function of the event), so whatever
// the test asserts about their effect is the fold's doing.
func advHolds(t testing.TB, l *Log, ml *advMallory) {
	t.Helper()
	if got := l.Summary()[IssuerID(ml.m.key)]; got != uint64(len(ml.chain)) {
		t.Fatalf("the log holds %d of Mallory's %d events", got, len(ml.chain))
	}
}

// advDeliver delivers raws in order, passing again over what was ignored,
// as anti-entropy would bring it again, until nothing changes.
func advDeliver(l *Log, raws ...[]byte) {
	pending := raws
	for len(pending) > 0 {
		var next [][]byte
		for _, raw := range pending {
			if l.Deliver(raw) == Ignore {
				next = append(next, raw)
			}
		}
		if len(next) == len(pending) {
			return
		}
		pending = next
	}
}

// advPull copies to dst whatever src holds beyond dst's summary, as the p2p
// anti-entropy does (issuer by issuer, from dst's count on), until dst
// stops advancing. It reports whether dst changed.
func advPull(dst, src *Log) bool {
	changed := false
	for range 64 {
		mine, theirs := dst.Summary(), src.Summary()
		progress := false
		ids := make([]string, 0, len(theirs))
		for id := range theirs {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			if theirs[id] <= mine[id] {
				continue
			}
			evs, err := src.Events(id, mine[id], int(theirs[id]-mine[id]))
			if err != nil || len(evs) == 0 {
				continue
			}
			for _, v := range dst.DeliverBatch(evs) {
				if v == Accept {
					progress = true
				}
			}
		}
		if !progress {
			break
		}
		changed = true
	}
	// Then what dst asks every peer for whatever their summaries say.
	for _, w := range advWants(dst) {
		evs, err := src.Events(w.issuer, w.after, w.max)
		if err != nil || len(evs) == 0 {
			continue
		}
		for _, v := range dst.DeliverBatch(evs) {
			if v == Accept {
				changed = true
			}
		}
	}
	return changed
}

type advWant struct {
	issuer string
	after  uint64
	max    int
}

// advWants returns l.Wants() (the anti-entropy Wanter interface of package
// p2p), read by reflection so that this file does not depend on the
// method's presence or on its result's type name.
func advWants(l *Log) []advWant {
	m := reflect.ValueOf(l).MethodByName("Wants")
	if !m.IsValid() || m.Type().NumIn() != 0 || m.Type().NumOut() != 1 {
		return nil
	}
	res := m.Call(nil)[0]
	var out []advWant
	for i := range res.Len() {
		w := res.Index(i)
		out = append(out, advWant{issuer: w.FieldByName("Issuer").String(), after: w.FieldByName("After").Uint(), max: int(w.FieldByName("Max").Int())})
	}
	return out
}

// advSync pulls between every pair of logs until none changes.
func advSync(logs ...*Log) {
	for range 32 {
		changed := false
		for _, a := range logs {
			for _, b := range logs {
				if a != b && advPull(a, b) {
					changed = true
				}
			}
		}
		if !changed {
			return
		}
	}
}

// advMallory is the dishonest member: it keeps its own chain and signs
// events with event.Sign directly.
type advMallory struct {
	net   *advNet
	m     advMember
	chain []*event.Event // its main chain, index seq-1
}

// advEv describes one event Mallory signs. Zero fields take the values an
// honest node would use, except Time, which defaults to the earliest time
// its chain and dependencies allow (backdated as far as admission lets it).
type advEv struct {
	Kind    event.Kind
	Payload any
	Att     [][]byte
	Deps    []*event.Event // events of other issuers it names
	RawDeps []event.Dep    // named as given (fabricated, withheld)
	// Lamport replaces the clock when not 0; LamportDelta is added to the
	// exact clock otherwise.
	Lamport      uint64
	LamportDelta int64
	Time         time.Time
	// At signs at that position of the chain, chained on the event held
	// there before it, without extending the chain (equivocation). 0: the
	// next position, extending the chain.
	At uint64
	// Prev replaces the previous event's id when not zero.
	Prev [32]byte
}

func (n *advNet) mallory(t testing.TB, org string) *advMallory {
	return &advMallory{net: n, m: n.member(org)}
}

// register signs Mallory's record as its first event.
func (ml *advMallory) register(t testing.TB, r network.NodeRecord) []byte {
	t.Helper()
	return ml.sign(t, advEv{Kind: event.KindNodeRecord, Payload: r, Time: r.NotBefore.Add(time.Minute)})
}

func (ml *advMallory) head() *event.Event {
	if len(ml.chain) == 0 {
		return nil
	}
	return ml.chain[len(ml.chain)-1]
}

func (ml *advMallory) sign(t testing.TB, e advEv) []byte {
	t.Helper()
	raw, _ := ml.signEvent(t, e)
	return raw
}

func (ml *advMallory) signEvent(t testing.TB, e advEv) ([]byte, *event.Event) {
	t.Helper()
	seq := uint64(len(ml.chain)) + 1
	if e.At != 0 {
		seq = e.At
	}
	ev := event.Event{Network: ml.net.nid, Seq: seq, Kind: e.Kind, Payload: advJSON(t, e.Payload), Attachments: e.Att}
	lamport := uint64(1)
	var minTime time.Time
	if seq > 1 && int(seq-2) < len(ml.chain) {
		prev := ml.chain[seq-2]
		ev.Prev = prev.ID()
		lamport, minTime = prev.Lamport+1, prev.Time
	} else if seq > 1 {
		lamport = seq // beyond its chain: Prev and Lamport must be given
	}
	if e.Prev != ([32]byte{}) {
		ev.Prev = e.Prev
	}
	for _, d := range e.Deps {
		ev.Deps = append(ev.Deps, event.Dep{Issuer: d.Issuer, Seq: d.Seq, ID: d.ID()})
		lamport = max(lamport, d.Lamport+1)
		if d.Time.After(minTime) {
			minTime = d.Time
		}
	}
	ev.Deps = append(ev.Deps, e.RawDeps...)
	slices.SortFunc(ev.Deps, func(a, b event.Dep) int { return compareKeys(a.Issuer, b.Issuer) })
	ev.Lamport = uint64(int64(lamport) + e.LamportDelta)
	if e.Lamport != 0 {
		ev.Lamport = e.Lamport
	}
	ev.Time = e.Time
	if ev.Time.IsZero() {
		ev.Time = minTime
		if ev.Time.IsZero() {
			ev.Time = ml.net.t0.Add(-30 * time.Minute)
		}
	}
	signed, raw, err := event.Sign(ml.m.priv, ev)
	if err != nil {
		t.Fatalf("mallory: sign %s: %v", e.Kind, err)
	}
	if e.At == 0 {
		ml.chain = append(ml.chain, &signed)
	}
	return raw, &signed
}

// advParse parses a raw event.
func advParse(t testing.TB, raw []byte) *event.Event {
	t.Helper()
	ev, err := event.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// advBlob returns a fake wrapped copy (the fold never opens blobs) and a
// random material check.
func advBlob(r *mrand.Rand) ([]byte, event.Digest) {
	b := make([]byte, 48)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	var c event.Digest
	for i := range c {
		c[i] = byte(r.Uint32())
	}
	c[0] |= 1
	return b, c
}

// advMaterial returns random version material, its commitment and a real
// transport copy of it for each recipient.
func (n *advNet) advMaterial(t testing.TB, key string, version uint32, recipients ...network.NodeKey) ([]byte, event.Digest, [][]byte) {
	t.Helper()
	m := make([]byte, transport.MaterialSize)
	if _, err := rand.Read(m); err != nil {
		t.Fatal(err)
	}
	return m, event.Digest(vault.KeyCheck(n.nid, key, version, m)), n.advWrap(t, key, version, m, recipients...)
}

func (n *advNet) advWrap(t testing.TB, key string, version uint32, m []byte, recipients ...network.NodeKey) [][]byte {
	t.Helper()
	_, pub := advKEMKey(t)
	var blobs [][]byte
	for _, r := range recipients {
		b, err := transport.Wrap(pub, transport.Binding{Network: n.nid, Key: key, Version: version, Recipient: r}, m)
		if err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, b)
	}
	return blobs
}

func advWraps(recipients []network.NodeKey, blobs [][]byte) []event.Wrap {
	out := make([]event.Wrap, len(recipients))
	for i := range recipients {
		out[i] = event.Wrap{Recipient: recipients[i], Digest: event.DigestOf(blobs[i])}
	}
	return out
}

func advPrincipal(party, custodian string) policy.Principal {
	return policy.Principal{Parties: []policy.Party{policy.Party(party)}, Custodian: custodian}
}

func advDecide(l *Log, party, custodian, key string, op policy.Op, at time.Time) policy.Decision {
	var d policy.Decision
	l.View(func(s *State) { d = s.Policy.Decide(advPrincipal(party, custodian), key, op, at) })
	return d
}

// advPerms delivers evs to fresh logs of node m in rounds random orders
// with duplicates and checks that every one folds to want.
func advPerms(t *testing.T, n *advNet, m advMember, evs [][]byte, rounds int, want []byte) {
	t.Helper()
	r := mrand.New(mrand.NewPCG(uint64(len(evs)), 7))
	for round := range rounds {
		perm := slices.Clone(evs)
		r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		for range r.IntN(4) {
			perm = append(perm, evs[r.IntN(len(evs))])
		}
		h := n.node(t, m, LogOptions{})
		advDeliver(h.log, perm...)
		if got := h.canon(); !bytes.Equal(got, want) {
			t.Fatalf("order %d: the state differs from the reference", round)
		}
		h.reopen(t)
		if got := h.canon(); !bytes.Equal(got, want) {
			t.Fatalf("order %d: the state after a restart differs from the reference", round)
		}
	}
}

// TestFinding1_KeyTakeoverByBackdating: Mallory (Org2) publishes KeyCreate
// for Org1's existing key at the smallest clock its chain allows, and then
// versions, lifecycle changes and a destroy of it. The owner is fixed by the
// genesis namespace, so none of it has any effect in any order; a clock
// smaller than the one its dependencies give is refused outright.
func TestFinding1_KeyTakeoverByBackdating(t *testing.T) {
	t.Parallel()
	n := newAdvNet(t, 1)
	a := n.honest(t, "Org1MSP")
	c := n.honest(t, "Org3MSP")
	ml := n.mallory(t, "Org2MSP")
	rec := ml.register(t, n.defaultRecord(t, ml.m))

	n.now = n.t0.Add(time.Minute)
	a.issue(t, event.KindKeyCreate, event.KeyCreate{Key: "trade/k"})
	_, check, blobs := n.advMaterial(t, "trade/k", 1, a.m.key)
	a.issue(t, event.KindKeyVersion, event.KeyVersion{Key: "trade/k", Version: 1, ActivateAt: n.now, Check: check,
		Wraps: advWraps([]network.NodeKey{a.m.key}, blobs)}, blobs...)
	honest := advAll(t, a.log)
	createEv := advParse(t, honest[1])
	if createEv.Kind != event.KindKeyCreate {
		t.Fatalf("event 2 of Org1 is %s", createEv.Kind)
	}

	// Org3's node follows Org1's events, so its next event has a clock
	// above its sequence number.
	var reasons []string
	c.opts.OnVerdict = func(v Verdict, reason string) { reasons = append(reasons, v.String()+"/"+reason) }
	c.reopen(t)
	advDeliver(c.log, honest...)
	advDeliver(c.log, rec)
	cEv := advParse(t, c.issue(t, event.KindKeyCreate, event.KeyCreate{Key: "gdpr/c"}))
	// A create that names it but claims a smaller clock (so that it would
	// sort first) is refused: the receiver derives the clock.
	forged := ml.sign(t, advEv{At: 2, Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: "trade/k"},
		Deps: []*event.Event{cEv}, Lamport: cEv.Seq + 1})
	if v := c.log.Deliver(forged); v != Reject || reasons[len(reasons)-1] != "reject/"+ReasonBadClock {
		t.Fatalf("Deliver(create with a clock below its dependency's) = %v (%s), want reject/%s", v, reasons[len(reasons)-1], ReasonBadClock)
	}
	base := advAll(t, c.log)

	// Well-formed hostile events on Org1's key, backdated: no dependencies,
	// dated before Org1's create, smallest clocks.
	mcheck := event.Digest{1, 2, 3}
	mblob := bytes.Repeat([]byte{0x4d}, 64)
	hostile := [][]byte{
		ml.sign(t, advEv{Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: "trade/k", Exportable: true, Deterministic: true}}),
		ml.sign(t, advEv{Kind: event.KindKeyVersion, Payload: event.KeyVersion{Key: "trade/k", Version: 1, ActivateAt: n.t0.Add(-time.Hour), Check: mcheck,
			Wraps: []event.Wrap{{Recipient: ml.m.key, Digest: event.DigestOf(mblob)}}}, Att: [][]byte{mblob}}),
		ml.sign(t, advEv{Kind: event.KindKeyVersion, Payload: event.KeyVersion{Key: "trade/k", Version: 2, ActivateAt: n.t0.Add(-time.Hour), Check: mcheck,
			Wraps: []event.Wrap{{Recipient: ml.m.key, Digest: event.DigestOf(mblob)}, {Recipient: a.m.key, Digest: event.DigestOf(mblob[:32])}}},
			Att: [][]byte{mblob, mblob[:32]}}),
		ml.sign(t, advEv{Kind: event.KindKeyState, Payload: event.KeyState{Key: "trade/k", State: event.StateCompromised, MinDecryptionVersion: 2}}),
		ml.sign(t, advEv{Kind: event.KindKeyDestroy, Payload: event.KeyDestroy{Key: "trade/k"}}),
		// And the same again, this time causally after Org1's events.
		ml.sign(t, advEv{Kind: event.KindKeyDestroy, Payload: event.KeyDestroy{Key: "trade/k"}, Deps: []*event.Event{advParse(t, honest[len(honest)-1])}}),
	}
	if ev := advParse(t, hostile[0]); ev.Lamport != 2 || !ev.Time.Before(createEv.Time) {
		t.Fatalf("Mallory's create has clock %d at %s; want 2, before Org1's create at %s", ev.Lamport, ev.Time, createEv.Time)
	}

	// The reference: the same events without Mallory's key events.
	ref := n.node(t, c.m, LogOptions{})
	advDeliver(ref.log, base...)
	want := ref.canon()

	check1 := func(name string, l *Log) {
		t.Helper()
		l.View(func(s *State) {
			k := s.Keys["trade/k"]
			switch {
			case k == nil || !k.Created:
				t.Fatalf("%s: trade/k not created", name)
			case k.Owner != "Org1MSP" || k.Creator != a.m.key:
				t.Errorf("%s: trade/k owner %s creator %s, want Org1MSP and Org1's node", name, k.Owner, k.Creator)
			case k.Exportable || k.Deterministic:
				t.Errorf("%s: Mallory's create set the key's flags", name)
			case k.Destroyed || k.State != vault.StateActive || k.MinDecrypt != 1:
				t.Errorf("%s: trade/k destroyed=%v state=%v min=%d after Mallory's events", name, k.Destroyed, k.State, k.MinDecrypt)
			case len(k.Versions) != 1 || k.Versions[0].Creator != a.m.key || k.Versions[0].Check != check:
				t.Errorf("%s: trade/k has %d versions (v1 by %s); want only Org1's", name, len(k.Versions), k.Versions[0].Creator)
			case k.Holders[ml.m.key] || k.Versions[0].CopyCount(ml.m.key) != 0:
				t.Errorf("%s: Mallory holds a copy of trade/k", name)
			case s.Entitled("trade/k", ml.m.key) || slices.Contains(s.Recipients("trade/k", n.now), ml.m.key):
				t.Errorf("%s: Mallory is entitled to trade/k", name)
			}
		})
		if got := advCanon(l); !bytes.Equal(got, want) {
			t.Errorf("%s: Mallory's events on Org1's key changed the state", name)
		}
	}
	advDeliver(c.log, hostile...)
	advHolds(t, c.log, ml)
	check1("Org1 first", c.log)
	first := n.node(t, c.m, LogOptions{})
	advDeliver(first.log, rec)
	advDeliver(first.log, hostile...)
	advDeliver(first.log, base...)
	check1("Mallory first", first.log)
	advDeliver(a.log, base...)
	advDeliver(a.log, hostile...)
	check1("the owner's node", a.log)
	advPerms(t, n, c.m, append(slices.Clone(base), hostile...), 20, want)
}

// TestFinding2_RevocationCancelledByReusedID: Mallory reuses Org1's grant
// and revocation ids, backdated, on its own org's key and on Org1's key.
// Ids are scoped by issuer, and a key's grants and revocations come from
// its owner's nodes only, so Org1's revoked token:app stays revoked and its
// grants stay.
func TestFinding2_RevocationCancelledByReusedID(t *testing.T) {
	t.Parallel()
	n := newAdvNet(t, 2)
	a := n.honest(t, "Org1MSP")
	ml := n.mallory(t, "Org2MSP")
	rec := ml.register(t, n.defaultRecord(t, ml.m))
	obs := n.member("Org3MSP")
	obsRec := n.node(t, obs, LogOptions{}).issue(t, event.KindNodeRecord, n.defaultRecord(t, obs))

	n.now = n.t0.Add(time.Minute)
	pa := IDPrefix(a.m.key)
	gApp, gOrg3, gOrg2, rApp := pa+"g-app", pa+"g-org3", pa+"g-org2", pa+"r-app"
	a.issue(t, event.KindKeyCreate, event.KeyCreate{Key: "trade/k"})
	a.issue(t, event.KindGrant, policy.Grant{ID: gApp, Key: "trade/k", Party: "token:app", Ops: policy.OpsOf(policy.OpDecrypt), Custodian: "Org1MSP", Issuer: "a", IssuedAt: n.now})
	a.issue(t, event.KindGrant, policy.Grant{ID: gOrg3, Key: "trade/k", Party: "org:Org3MSP", Ops: policy.OpsAll, Issuer: "a", IssuedAt: n.now})
	a.issue(t, event.KindGrant, policy.Grant{ID: gOrg2, Key: "trade/k", Party: "org:Org2MSP", Ops: policy.OpsAll, Issuer: "a", IssuedAt: n.now})
	n.now = n.now.Add(time.Minute)
	a.issue(t, event.KindRevoke, policy.Revocation{ID: rApp, Key: "trade/k", Party: "token:app", Issuer: "a", IssuedAt: n.now})
	honest := advAll(t, a.log)

	pm := IDPrefix(ml.m.key)
	old := n.t0.Add(-20 * time.Minute)
	hostile := [][]byte{
		ml.sign(t, advEv{Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: "asset/m"}}),
		// Org1's revocation id on Mallory's own key: cancels nothing.
		ml.sign(t, advEv{Kind: event.KindRevoke, Payload: policy.Revocation{ID: rApp, Key: "asset/m", Party: "token:app", Issuer: "m", IssuedAt: old}}),
		// Org1's grant ids on Mallory's own key: removes none of Org1's grants.
		ml.sign(t, advEv{Kind: event.KindGrant, Payload: policy.Grant{ID: gOrg3, Key: "asset/m", Party: "org:Org2MSP", Ops: policy.OpsAll, Issuer: "m", IssuedAt: old}}),
		ml.sign(t, advEv{Kind: event.KindGrant, Payload: policy.Grant{ID: gApp, Key: "asset/m", Party: "token:app", Ops: policy.OpsAll, Issuer: "m", IssuedAt: old}}),
		// The same ids, identical content, on Org1's key.
		ml.sign(t, advEv{Kind: event.KindGrant, Payload: policy.Grant{ID: gApp, Key: "trade/k", Party: "token:app", Ops: policy.OpsOf(policy.OpDecrypt), Custodian: "Org1MSP", Issuer: "a", IssuedAt: n.t0.Add(time.Minute)}}),
		// Its own ids on Org1's key: a revocation of Org3 and Org2's
		// grants, a grant to itself, a token grant re-observing the revocation.
		ml.sign(t, advEv{Kind: event.KindRevoke, Payload: policy.Revocation{ID: pm + "r-org3", Key: "trade/k", Party: "org:Org3MSP", Issuer: "m", IssuedAt: old}}),
		ml.sign(t, advEv{Kind: event.KindGrant, Payload: policy.Grant{ID: pm + "g-evil", Key: "trade/k", Party: "token:evil", Ops: policy.OpsAll, Issuer: "m", IssuedAt: old}}),
		ml.sign(t, advEv{Kind: event.KindGrant, Payload: policy.Grant{ID: pm + "g-app", Key: "trade/k", Party: "token:app", Ops: policy.OpsAll, Custodian: "Org1MSP", Issuer: "m", IssuedAt: old, Observed: []string{rApp}}}),
		ml.sign(t, advEv{Kind: event.KindGrant, Payload: policy.Grant{ID: pm + "g-m", Key: "trade/k", Party: "org:Org2MSP", Ops: policy.OpsAll, Issuer: "m", IssuedAt: old, Observed: []string{}}}),
	}
	// A revocation of Org2's grant, by Org1, after Mallory's grant-to-self.
	n.now = n.now.Add(time.Minute)
	advDeliver(a.log, rec)
	advDeliver(a.log, hostile...)
	rOrg2 := pa + "r-org2"
	revOrg2 := a.issue(t, event.KindRevoke, policy.Revocation{ID: rOrg2, Key: "trade/k", Party: "org:Org2MSP", Issuer: "a", IssuedAt: n.now})
	honest = append(honest, revOrg2)

	later := n.now.Add(time.Hour)
	check2 := func(name string, l *Log) {
		t.Helper()
		if d := advDecide(l, "token:app", "Org1MSP", "trade/k", policy.OpDecrypt, later); d.Allowed || d.Reason != policy.ReasonRevoked {
			t.Errorf("%s: revoked token:app on trade/k: allowed=%v (%s), want revoked", name, d.Allowed, d.Reason)
		}
		if d := advDecide(l, "org:Org3MSP", "Org3MSP", "trade/k", policy.OpDecrypt, later); !d.Allowed || d.GrantID != gOrg3 {
			t.Errorf("%s: org:Org3MSP on trade/k: allowed=%v (%s), want allowed by %s", name, d.Allowed, d.Reason, gOrg3)
		}
		if d := advDecide(l, "org:Org2MSP", "Org2MSP", "trade/k", policy.OpDecrypt, later); d.Allowed {
			t.Errorf("%s: org:Org2MSP on trade/k allowed (%s) after Org1 revoked it", name, d.Reason)
		}
		if d := advDecide(l, "token:evil", "", "trade/k", policy.OpDecrypt, later); d.Allowed {
			t.Errorf("%s: Mallory's grant to token:evil on trade/k is in force", name)
		}
		l.View(func(s *State) {
			if r, ok := s.Policy.Revocation(rApp); !ok || r.Key != "trade/k" {
				t.Errorf("%s: revocation %s = %+v, %v; want Org1's on trade/k", name, rApp, r, ok)
			}
			for _, id := range []string{gApp, gOrg3} {
				if g, ok := s.Policy.Grant(id); !ok || g.Key != "trade/k" {
					t.Errorf("%s: grant %s = %+v, %v; want Org1's on trade/k", name, id, g, ok)
				}
			}
			if gs, rs := s.Policy.Grants("asset/m"), s.Policy.Revocations("asset/m"); len(gs)+len(rs) != 0 {
				t.Errorf("%s: Mallory's reused ids hold %d grants and %d revocations on asset/m", name, len(gs), len(rs))
			}
			for _, st := range s.Policy.Grants("trade/k") {
				if st.Grant.Issuer != "a" {
					t.Errorf("%s: grant %s on trade/k from Mallory is held", name, st.Grant.ID)
				}
			}
			if len(s.Policy.Revocations("trade/k")) != 2 {
				t.Errorf("%s: %d revocations on trade/k, want Org1's 2", name, len(s.Policy.Revocations("trade/k")))
			}
		})
	}
	check2("the owner's node", a.log)
	ref := n.node(t, obs, LogOptions{})
	advDeliver(ref.log, obsRec, rec)
	advDeliver(ref.log, hostile...)
	advDeliver(ref.log, honest...)
	advHolds(t, ref.log, ml)
	check2("Mallory first", ref.log)
	want := ref.canon()
	advPerms(t, n, obs, append(append(slices.Clone(honest), rec, obsRec), hostile...), 20, want)
}

// TestFinding3_DeregisteredNodeHasNoEffectInAnyOrder: an admin of Org2
// deregisters Mallory after its third event. Mallory's later events —
// backdated before the deregistration, or naming it — have no effect,
// whichever arrives first, and every honest node holds the same log and
// state.
func TestFinding3_DeregisteredNodeHasNoEffectInAnyOrder(t *testing.T) {
	t.Parallel()
	n := newAdvNet(t, 3)
	b := n.honest(t, "Org2MSP")
	a := n.honest(t, "Org1MSP")
	ml := n.mallory(t, "Org2MSP")
	pm := IDPrefix(ml.m.key)
	evs := [][]byte{
		ml.register(t, n.defaultRecord(t, ml.m)),
		ml.sign(t, advEv{Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: "asset/m"}}),
		ml.sign(t, advEv{Kind: event.KindGrant, Payload: policy.Grant{ID: pm + "x", Key: "asset/m", Party: "token:x", Ops: policy.OpsAll, Issuer: "m", IssuedAt: n.t0}}),
	}
	n.now = n.t0.Add(time.Hour)
	advDeliver(b.log, evs...)
	dereg := b.issue(t, event.KindDeregister, n.deregister(t, "Org2MSP", ml.m.key, 3))
	deregEv := advParse(t, dereg)
	evs = append(evs, dereg)
	// After the cut: backdated (dated before the deregistration, no
	// dependencies) and causally after it.
	old := n.t0.Add(-10 * time.Minute)
	blob, check := advBlob(n.rng)
	after := [][]byte{
		ml.sign(t, advEv{Kind: event.KindGrant, Payload: policy.Grant{ID: pm + "y", Key: "asset/m", Party: "token:y", Ops: policy.OpsAll, Issuer: "m", IssuedAt: old}}),
		ml.sign(t, advEv{Kind: event.KindRevoke, Payload: policy.Revocation{ID: pm + "rx", Key: "asset/m", Party: "token:x", Issuer: "m", IssuedAt: old}}),
		ml.sign(t, advEv{Kind: event.KindKeyVersion, Payload: event.KeyVersion{Key: "asset/m", Version: 1, ActivateAt: old, Check: check,
			Wraps: []event.Wrap{{Recipient: ml.m.key, Digest: event.DigestOf(blob)}}}, Att: [][]byte{blob}}),
		ml.sign(t, advEv{Kind: event.KindKeyState, Payload: event.KeyState{Key: "asset/m", State: event.StateCompromised}, Deps: []*event.Event{deregEv}}),
		ml.sign(t, advEv{Kind: event.KindKeyDestroy, Payload: event.KeyDestroy{Key: "asset/m"}}),
		ml.sign(t, advEv{Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: "asset/late"}}),
	}
	evs = append(evs, after...)
	evs = append(evs, advChain(t, a.log, a.m.key)...)
	evs = append(evs, advChain(t, b.log, b.m.key)[:1]...)

	check3 := func(name string, l *Log) {
		t.Helper()
		l.View(func(s *State) {
			nd := s.Nodes[ml.m.key]
			if nd == nil || !nd.Deregistered || nd.LastSeq != 3 || nd.Active(n.now) {
				t.Fatalf("%s: Mallory = %+v, want deregistered after 3", name, nd)
			}
			k := s.Keys["asset/m"]
			if k == nil || !k.Created || k.Destroyed || k.State != vault.StateActive || len(k.Versions) != 0 {
				t.Errorf("%s: asset/m = %+v; want created by Mallory before its cut, nothing after", name, k)
			}
			if k := s.Keys["asset/late"]; k != nil && k.Created {
				t.Errorf("%s: asset/late created after Mallory's cut", name)
			}
		})
		if d := advDecide(l, "token:x", "Org2MSP", "asset/m", policy.OpDecrypt, n.now); !d.Allowed {
			t.Errorf("%s: token:x (granted before the cut) refused: %s", name, d.Reason)
		}
		if d := advDecide(l, "token:y", "Org2MSP", "asset/m", policy.OpDecrypt, n.now); d.Allowed {
			t.Errorf("%s: token:y (granted after the cut, backdated) allowed", name)
		}
	}
	// Before the deregistration and after it.
	early := n.node(t, a.m, LogOptions{})
	advDeliver(early.log, evs[:3]...)
	advDeliver(early.log, after...)
	advDeliver(early.log, evs...)
	advHolds(t, early.log, ml)
	check3("cut last", early.log)
	want := early.canon()
	late := n.node(t, a.m, LogOptions{})
	advDeliver(late.log, dereg)
	advDeliver(late.log, evs...)
	check3("cut first", late.log)
	if !bytes.Equal(late.canon(), want) {
		t.Fatal("the node that had the cut first holds another state")
	}
	if early.log.Height() != late.log.Height() {
		t.Fatalf("the two nodes hold %d and %d events", early.log.Height(), late.log.Height())
	}
	advPerms(t, n, a.m, evs, 30, want)
}

// TestFinding4_ExpiredRecordGetsNoEffectAndNoWraps: Mallory's record
// expires an hour after t0. Its events dated after that have no effect; an
// honest node's versions and shares made after it carry no copy for it;
// its earlier events and copies still count; and every order agrees.
func TestFinding4_ExpiredRecordGetsNoEffectAndNoWraps(t *testing.T) {
	t.Parallel()
	n := newAdvNet(t, 4)
	a := n.honest(t, "Org1MSP")
	ml := n.mallory(t, "Org2MSP")
	rec := ml.register(t, n.record(t, ml.m, n.t0.Add(-time.Hour), n.t0.Add(time.Hour)))
	advDeliver(a.log, rec)
	pm := IDPrefix(ml.m.key)

	n.now = n.t0.Add(30 * time.Minute)
	hostile := [][]byte{
		ml.sign(t, advEv{Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: "asset/e"}, Time: n.now}),
	}
	a.issue(t, event.KindKeyCreate, event.KeyCreate{Key: "trade/k"})
	a.issue(t, event.KindGrant, policy.Grant{ID: IDPrefix(a.m.key) + "g2", Key: "trade/k", Party: "org:Org2MSP", Ops: policy.OpsAll, Issuer: "a", IssuedAt: n.now})
	b1, c1 := advBlob(n.rng)
	b1m, _ := advBlob(n.rng)
	a.issue(t, event.KindKeyVersion, event.KeyVersion{Key: "trade/k", Version: 1, ActivateAt: n.now, Check: c1,
		Wraps: []event.Wrap{{Recipient: a.m.key, Digest: event.DigestOf(b1)}, {Recipient: ml.m.key, Digest: event.DigestOf(b1m)}}}, b1, b1m)

	n.now = n.t0.Add(2 * time.Hour) // Mallory's record has expired
	var recipients []network.NodeKey
	a.log.View(func(s *State) { recipients = s.Recipients("trade/k", n.now) })
	if slices.Contains(recipients, ml.m.key) || !slices.Contains(recipients, a.m.key) {
		t.Fatalf("recipients of trade/k after Mallory's record expired: %v", recipients)
	}
	b2, c2 := advBlob(n.rng)
	b2m, _ := advBlob(n.rng)
	// A version and a share that (wrongly) wrap for Mallory anyway, as a
	// node with an old view would.
	a.issue(t, event.KindKeyVersion, event.KeyVersion{Key: "trade/k", Version: 2, ActivateAt: n.now, Check: c2,
		Wraps: []event.Wrap{{Recipient: a.m.key, Digest: event.DigestOf(b2)}, {Recipient: ml.m.key, Digest: event.DigestOf(b2m)}}}, b2, b2m)
	bs, _ := advBlob(n.rng)
	a.issue(t, event.KindKeyShare, event.KeyShare{Key: "trade/k", Shares: []event.Share{{Version: 2, ActivateAt: n.now, Wrap: event.Wrap{Recipient: ml.m.key, Digest: event.DigestOf(bs)}}}}, bs)
	// Mallory's events dated after its record's end.
	hostile = append(hostile,
		ml.sign(t, advEv{Kind: event.KindGrant, Payload: policy.Grant{ID: pm + "late", Key: "asset/e", Party: "token:late", Ops: policy.OpsAll, Issuer: "m", IssuedAt: n.now}, Time: n.now}),
		ml.sign(t, advEv{Kind: event.KindKeyDestroy, Payload: event.KeyDestroy{Key: "asset/e"}, Time: n.now}),
	)
	honest := advAll(t, a.log)

	check4 := func(name string, l *Log) {
		t.Helper()
		l.View(func(s *State) {
			if nd, ok := s.Active(ml.m.key, n.now); ok {
				t.Errorf("%s: Mallory active after its record expired: %+v", name, nd)
			}
			k := s.Keys["trade/k"]
			if k == nil || len(k.Versions) != 2 {
				t.Fatalf("%s: trade/k = %+v", name, k)
			}
			if k.Versions[0].CopyCount(ml.m.key) != 1 {
				t.Errorf("%s: Mallory's copy of v1, wrapped while its record was valid, is gone", name)
			}
			if w := k.Versions[1].CopyCount(ml.m.key); w != 0 {
				t.Errorf("%s: Mallory has %d copies of v2, wrapped after its record expired", name, w)
			}
			if slices.Contains(s.Recipients("trade/k", n.now), ml.m.key) {
				t.Errorf("%s: Mallory is a recipient after its record expired", name)
			}
			e := s.Keys["asset/e"]
			if e == nil || !e.Created || e.Destroyed {
				t.Errorf("%s: asset/e = %+v, want created (while valid) and not destroyed (after)", name, e)
			}
		})
		if d := advDecide(l, "token:late", "Org2MSP", "asset/e", policy.OpDecrypt, n.now); d.Allowed {
			t.Errorf("%s: Mallory's grant dated after its record expired is in force", name)
		}
	}
	advDeliver(a.log, hostile...)
	advHolds(t, a.log, ml)
	check4("the owner's node", a.log)
	want := a.canon()
	first := n.node(t, a.m, LogOptions{})
	advDeliver(first.log, hostile...)
	advDeliver(first.log, honest...)
	advDeliver(first.log, hostile...) // anti-entropy brings again what was not kept
	check4("record last", first.log)
	if !bytes.Equal(first.canon(), want) {
		t.Error("the node that had Mallory's record last holds another state")
	}
	advPerms(t, n, a.m, append(slices.Clone(honest), hostile...), 20, want)
}

// TestFinding5_PlantedMaterialIsNotUsable: Mallory, of an org entitled to
// Org1's key, shares material of its choosing under Org1's version 1 to
// Org3's node, and publishes its own version 2 with its own commitment.
// The fold keeps Mallory's share as a candidate, but it does not pass the
// commitment Org1 signed (the recipient's vault refuses it), while Org1's
// share does; once Org2's grant is revoked, Mallory's copies are not even
// candidates; and its version 2 does not exist.
func TestFinding5_PlantedMaterialIsNotUsable(t *testing.T) {
	t.Parallel()
	n := newAdvNet(t, 5)
	a := n.honest(t, "Org1MSP")
	c := n.honest(t, "Org3MSP")
	ml := n.mallory(t, "Org2MSP")
	rec := ml.register(t, n.defaultRecord(t, ml.m))
	advDeliver(a.log, rec)
	advDeliver(a.log, advAll(t, c.log)...)
	n.now = n.t0.Add(time.Minute)
	pa := IDPrefix(a.m.key)
	a.issue(t, event.KindKeyCreate, event.KeyCreate{Key: "trade/k"})
	a.issue(t, event.KindGrant, policy.Grant{ID: pa + "g2", Key: "trade/k", Party: "org:Org2MSP", Ops: policy.OpsAll, Issuer: "a", IssuedAt: n.now})
	m1, check, blobs := n.advMaterial(t, "trade/k", 1, a.m.key, ml.m.key)
	a.issue(t, event.KindKeyVersion, event.KeyVersion{Key: "trade/k", Version: 1, ActivateAt: n.now, Check: check,
		Wraps: advWraps([]network.NodeKey{a.m.key, ml.m.key}, blobs)}, blobs...)
	a.issue(t, event.KindGrant, policy.Grant{ID: pa + "g3", Key: "trade/k", Party: "org:Org3MSP", Ops: policy.OpsAll, Issuer: "a", IssuedAt: n.now})
	advDeliver(c.log, advAll(t, a.log)...)

	// Mallory shares chosen material first, backdated, for Org3's node and
	// for Org1's own node; then a version 2 of its own.
	chosen := bytes.Repeat([]byte{0x66}, transport.MaterialSize)
	planted := n.advWrap(t, "trade/k", 1, chosen, c.m.key, a.m.key)
	_, mcheck, mblobs := n.advMaterial(t, "trade/k", 2, c.m.key)
	hostile := [][]byte{
		ml.sign(t, advEv{Kind: event.KindKeyShare, Payload: event.KeyShare{Key: "trade/k", Shares: []event.Share{
			{Version: 1, ActivateAt: n.t0, Wrap: event.Wrap{Recipient: c.m.key, Digest: event.DigestOf(planted[0])}},
			{Version: 1, ActivateAt: n.t0, Wrap: event.Wrap{Recipient: a.m.key, Digest: event.DigestOf(planted[1])}},
		}}, Att: planted}),
		ml.sign(t, advEv{Kind: event.KindKeyVersion, Payload: event.KeyVersion{Key: "trade/k", Version: 2, ActivateAt: n.t0, Check: mcheck,
			Wraps: advWraps([]network.NodeKey{c.m.key}, mblobs)}, Att: mblobs}),
	}
	// A share whose attachment is not the blob it names is malformed.
	badAtt := ml.sign(t, advEv{At: uint64(len(ml.chain)) + 1, Kind: event.KindKeyShare, Payload: event.KeyShare{Key: "trade/k", Shares: []event.Share{
		{Version: 1, ActivateAt: n.t0, Wrap: event.Wrap{Recipient: c.m.key, Digest: event.DigestOf(planted[1])}}}}, Att: [][]byte{planted[0]}})
	if v := c.log.Deliver(badAtt); v != Reject {
		t.Errorf("Deliver(share with an attachment it does not name) = %v, want reject", v)
	}
	advDeliver(c.log, rec)
	advDeliver(c.log, hostile...)
	advDeliver(a.log, hostile...)
	n.now = n.now.Add(time.Minute)
	// Org1 shares the real material with Org3's node.
	genuine := n.advWrap(t, "trade/k", 1, m1, c.m.key)
	a.issue(t, event.KindKeyShare, event.KeyShare{Key: "trade/k", Shares: []event.Share{
		{Version: 1, ActivateAt: n.now, Wrap: event.Wrap{Recipient: c.m.key, Digest: event.DigestOf(genuine[0])}}}}, genuine...)
	advSync(a.log, c.log)

	kemPriv, _ := advKEMKey(t)
	// usable returns, for recipient r, the senders of the candidate copies
	// that the recipient's vault would accept, and of those it would refuse.
	usable := func(l *Log, r network.NodeKey) (ok, refused []network.NodeKey) {
		l.View(func(s *State) {
			k := s.Keys["trade/k"]
			if len(k.Versions) != 1 {
				t.Fatalf("trade/k has %d versions, want Org1's only", len(k.Versions))
			}
			v := k.Versions[0]
			for _, w := range s.CopiesFor("trade/k", v, r) {
				if w.Blob == nil {
					t.Fatalf("copy from %s without its blob", w.From)
				}
				m, err := transport.Unwrap(kemPriv, transport.Binding{Network: n.nid, Key: "trade/k", Version: 1, Recipient: r}, w.Blob)
				if err != nil {
					t.Fatalf("unwrap the copy from %s: %v", w.From, err)
				}
				if event.Digest(vault.KeyCheck(n.nid, "trade/k", 1, m)) == v.Check {
					ok = append(ok, w.From)
				} else {
					refused = append(refused, w.From)
				}
			}
		})
		return ok, refused
	}
	for _, l := range []*Log{a.log, c.log} {
		for _, r := range []network.NodeKey{c.m.key, a.m.key} {
			ok, refused := usable(l, r)
			if slices.Contains(ok, ml.m.key) {
				t.Errorf("Mallory's planted material for %s passes Org1's commitment", r)
			}
			if !slices.Contains(ok, a.m.key) {
				t.Errorf("Org1's own copy for %s does not pass its commitment (usable from %v)", r, ok)
			}
			if len(refused) != 1 || refused[0] != ml.m.key {
				t.Errorf("refused copies for %s come from %v, want Mallory's only", r, refused)
			}
		}
	}
	// Revoke Org2: Mallory's copies are no longer candidates at all.
	n.now = n.now.Add(time.Minute)
	a.issue(t, event.KindRevoke, policy.Revocation{ID: pa + "r2", Key: "trade/k", Party: "org:Org2MSP", Issuer: "a", IssuedAt: n.now})
	lateShare := ml.sign(t, advEv{Kind: event.KindKeyShare, Payload: event.KeyShare{Key: "trade/k", Shares: []event.Share{
		{Version: 1, ActivateAt: n.t0, Wrap: event.Wrap{Recipient: c.m.key, Digest: event.DigestOf(planted[1])}}}}, Att: [][]byte{planted[1]}})
	advDeliver(c.log, lateShare)
	advSync(a.log, c.log)
	advHolds(t, c.log, ml)
	for _, l := range []*Log{a.log, c.log} {
		if ok, refused := usable(l, c.m.key); len(ok) != 1 || ok[0] != a.m.key || len(refused) != 0 {
			t.Errorf("after Org2's revocation, copies for Org3's node: usable %v, refused %v; want Org1's only", ok, refused)
		}
	}
	if !bytes.Equal(a.canon(), c.canon()) {
		t.Error("Org1's and Org3's nodes hold different states")
	}
}

// TestFinding7_StaleOwnerRefusesKey: a node of another org vouches for an
// Org1 key only within the staleness bound after a checkpoint of an Org1
// node whose heads it holds; Mallory's checkpoints vouch for nothing of
// Org1's.
func TestFinding7_StaleOwnerRefusesKey(t *testing.T) {
	t.Parallel()
	n := newAdvNet(t, 7)
	a := n.honest(t, "Org1MSP")
	cm := n.member("Org3MSP")
	c := n.node(t, cm, LogOptions{Staleness: 10 * time.Second})
	c.issue(t, event.KindNodeRecord, n.defaultRecord(t, cm))
	ml := n.mallory(t, "Org2MSP")
	rec := ml.register(t, n.defaultRecord(t, ml.m))
	a.issue(t, event.KindKeyCreate, event.KeyCreate{Key: "trade/k"})
	advSync(a.log, c.log)
	advDeliver(c.log, rec)
	advDeliver(a.log, rec)

	if err := c.log.Fresh("trade/k", n.now); !errors.Is(err, ErrStalePolicy) {
		t.Fatalf("Fresh before any checkpoint of Org1 = %v, want %v", err, ErrStalePolicy)
	}
	if err := a.log.Fresh("trade/k", n.now.Add(time.Hour)); err != nil {
		t.Errorf("Fresh on the owner org's own node = %v, want nil", err)
	}
	// Mallory's checkpoint (Org2) vouches for Org2 only.
	_, mcp, err := event.SignCheckpoint(ml.m.priv, event.Checkpoint{Network: n.nid, Time: n.now,
		Heads: []event.Head{{Issuer: ml.m.key, Seq: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if v := c.log.Deliver(mcp); v != Accept {
		t.Fatalf("Deliver(Mallory's checkpoint) = %v", v)
	}
	if err := c.log.Fresh("trade/k", n.now); !errors.Is(err, ErrStalePolicy) {
		t.Errorf("Fresh after Mallory's checkpoint only = %v, want stale", err)
	}
	// A checkpoint signed by Mallory that names Org1's heads still counts for Org2 only.
	_, mcp2, _ := event.SignCheckpoint(ml.m.priv, event.Checkpoint{Network: n.nid, Time: n.now.Add(time.Second),
		Heads: []event.Head{{Issuer: a.m.key, Seq: 2}}})
	c.log.Deliver(mcp2)
	if err := c.log.Fresh("trade/k", n.now); !errors.Is(err, ErrStalePolicy) {
		t.Errorf("Fresh after Mallory's checkpoint naming Org1's heads = %v, want stale", err)
	}

	// Org1's checkpoint, all of whose heads c holds: fresh for the bound.
	cp := a.log.Checkpoint()
	if v := c.log.Deliver(cp); v != Accept {
		t.Fatalf("Deliver(Org1's checkpoint) = %v", v)
	}
	if err := c.log.Fresh("trade/k", n.now); err != nil {
		t.Fatalf("Fresh right after Org1's checkpoint = %v", err)
	}
	if err := c.log.Fresh("trade/k", n.now.Add(10*time.Second)); err != nil {
		t.Errorf("Fresh at the bound = %v", err)
	}
	if err := c.log.Fresh("trade/k", n.now.Add(10*time.Second+time.Millisecond)); !errors.Is(err, ErrStalePolicy) {
		t.Errorf("Fresh past the bound = %v, want stale", err)
	}
	// A revocation c has not seen: Org1's next checkpoint names it, so it
	// does not vouch until c holds it.
	n.now = n.now.Add(20 * time.Second)
	rev := a.issue(t, event.KindRevoke, policy.Revocation{ID: IDPrefix(a.m.key) + "r", Key: "trade/k", Party: "org:Org3MSP", Issuer: "a", IssuedAt: n.now})
	if v := c.log.Deliver(a.log.Checkpoint()); v != Accept {
		t.Fatalf("Deliver(Org1's second checkpoint) = %v", v)
	}
	if err := c.log.Fresh("trade/k", n.now); !errors.Is(err, ErrStalePolicy) {
		t.Errorf("Fresh with Org1's checkpoint naming a revocation not held = %v, want stale", err)
	}
	if v := c.log.Deliver(rev); v != Accept {
		t.Fatalf("Deliver(revocation) = %v", v)
	}
	if err := c.log.Fresh("trade/k", n.now); err != nil {
		t.Errorf("Fresh once the named revocation is held = %v", err)
	}
	n.now = n.now.Add(11 * time.Second)
	if err := c.log.Fresh("trade/k", n.now); !errors.Is(err, ErrStalePolicy) {
		t.Errorf("Fresh 11 s after the last checkpoint = %v, want stale", err)
	}
	// A forward-dated checkpoint (within the skew) does not buy freshness
	// beyond the receiver's own clock.
	n.now = n.now.Add(30 * time.Second)
	future := a.log.Checkpoint()
	n.now = n.now.Add(-30 * time.Second)
	if v := c.log.Deliver(future); v != Accept {
		t.Fatalf("Deliver(checkpoint 30 s ahead) = %v", v)
	}
	if err := c.log.Fresh("trade/k", n.now.Add(15*time.Second)); !errors.Is(err, ErrStalePolicy) {
		t.Errorf("Fresh 15 s after a checkpoint dated 30 s ahead = %v, want stale", err)
	}
}

// TestAdversaryRevocationAtCutOffOwnerNode: Org1 has two nodes; the one
// that revokes Org3's grant (z) is cut off from the other (y) and from
// Org3's node (x). y keeps publishing checkpoints, x keeps holding every
// head they name, so x stays fresh and keeps serving the revoked party
// long past the bound — against the README's "a revocation is in force at
// every node that still serves, at most the staleness bound after it was
// issued, partitions included". (Not an attack: a partition inside the
// owner org is enough.)
func TestAdversaryRevocationAtCutOffOwnerNode(t *testing.T) {
	t.Parallel()
	n := newAdvNet(t, 18)
	z := n.honest(t, "Org1MSP")
	y := n.honest(t, "Org1MSP")
	xm := n.member("Org3MSP")
	x := n.node(t, xm, LogOptions{Staleness: 10 * time.Second})
	x.issue(t, event.KindNodeRecord, n.defaultRecord(t, xm))
	z.issue(t, event.KindKeyCreate, event.KeyCreate{Key: "trade/k"})
	z.issue(t, event.KindGrant, policy.Grant{ID: IDPrefix(z.m.key) + "g3", Key: "trade/k", Party: "org:Org3MSP", Ops: policy.OpsAll, Issuer: "z", IssuedAt: n.now})
	advSync(x.log, y.log, z.log)
	// The partition: z alone.
	n.now = n.now.Add(time.Second)
	revokedAt := n.now
	z.issue(t, event.KindRevoke, policy.Revocation{ID: IDPrefix(z.m.key) + "r3", Key: "trade/k", Party: "org:Org3MSP", Issuer: "z", IssuedAt: n.now})
	for range 12 {
		n.now = n.now.Add(5 * time.Second)
		advSync(x.log, y.log)
		x.log.Deliver(y.log.Checkpoint())
	}
	fresh := x.log.Fresh("trade/k", n.now)
	d := advDecide(x.log, "org:Org3MSP", "Org3MSP", "trade/k", policy.OpDecrypt, n.now)
	if fresh == nil && d.Allowed {
		t.Errorf("BUG: %s after Org1 revoked Org3's grant (bound 10 s), Org3's node still vouches for trade/k (Fresh = nil) and allows the revoked party: "+
			"a checkpoint of any owner node makes the owner org fresh, though that node may be cut off from the one that revoked",
			n.now.Sub(revokedAt))
	}
}

// TestAdversaryForgedClocksAndTimes: the receiver derives the clock from
// the events named and refuses any other; times may not go below what the
// event follows; events dated beyond the skew wait.
func TestAdversaryForgedClocksAndTimes(t *testing.T) {
	t.Parallel()
	n := newAdvNet(t, 8)
	a := n.honest(t, "Org1MSP")
	c := n.honest(t, "Org3MSP")
	ml := n.mallory(t, "Org2MSP")
	var last string
	a.opts.OnVerdict = func(v Verdict, reason string) { last = v.String() + "/" + reason }
	a.reopen(t)
	advDeliver(a.log, ml.register(t, n.defaultRecord(t, ml.m)))
	n.now = n.t0.Add(time.Hour)
	a.issue(t, event.KindKeyCreate, event.KeyCreate{Key: "trade/k"})
	a.issue(t, event.KindKeyState, event.KeyState{Key: "trade/k", State: event.StateActive})
	advSync(a.log, c.log)
	// An event whose clock exceeds its sequence number, to name.
	head := advParse(t, c.issue(t, event.KindKeyCreate, event.KeyCreate{Key: "gdpr/c"}))
	advSync(a.log, c.log)
	if head.Lamport <= head.Seq+1 {
		t.Fatalf("Org3's event has clock %d at %d", head.Lamport, head.Seq)
	}
	create := event.KeyCreate{Key: "asset/m"}
	for _, tc := range []struct {
		name string
		e    advEv
		want string
	}{
		{"clock one too high", advEv{At: 2, Kind: event.KindKeyCreate, Payload: create, LamportDelta: 1}, "reject/" + ReasonBadClock},
		{"clock far too high", advEv{At: 2, Kind: event.KindKeyCreate, Payload: create, Lamport: 1 << 40}, "reject/" + ReasonBadClock},
		{"clock below dependency", advEv{At: 2, Kind: event.KindKeyCreate, Payload: create, Deps: []*event.Event{head}, LamportDelta: -1}, "reject/" + ReasonBadClock},
		{"time before dependency", advEv{At: 2, Kind: event.KindKeyCreate, Payload: create, Deps: []*event.Event{head}, Time: head.Time.Add(-time.Nanosecond)}, "reject/" + ReasonBadClock},
		{"time before predecessor", advEv{At: 2, Kind: event.KindKeyCreate, Payload: create, Time: ml.chain[0].Time.Add(-time.Second)}, "reject/" + ReasonBadClock},
		{"fabricated dependency", advEv{At: 2, Kind: event.KindKeyCreate, Payload: create, RawDeps: []event.Dep{{Issuer: a.m.key, Seq: 2, ID: [32]byte{9}}}, Lamport: 3}, "ignore/" + ReasonPending},
		{"beyond the skew", advEv{At: 2, Kind: event.KindKeyCreate, Payload: create, Time: n.now.Add(MaxSkew + time.Second)}, "ignore/" + ReasonFuture},
		{"wrong previous event", advEv{At: 2, Kind: event.KindKeyCreate, Payload: create, Prev: [32]byte{7}}, "accept/" + ReasonEquivocation},
	} {
		raw := ml.sign(t, tc.e)
		a.log.Deliver(raw)
		if last != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, last, tc.want)
		}
	}
	// Not blamed on anyone but Mallory: a's own chain is unaffected.
	a.issue(t, event.KindKeyState, event.KeyState{Key: "trade/k", State: event.StateDeactivated})
}

// advEquivocation builds two honest nodes that each hold a different branch
// of Mallory's chain at seq 3 and have each issued an event naming it.
func advEquivocation(t *testing.T, seed uint64) (n *advNet, a, c *advNode, ml *advMallory, left, right []byte) {
	n = newAdvNet(t, seed)
	a = n.honest(t, "Org1MSP")
	c = n.honest(t, "Org3MSP")
	advSync(a.log, c.log)
	ml = n.mallory(t, "Org2MSP")
	pm := IDPrefix(ml.m.key)
	base := [][]byte{
		ml.register(t, n.defaultRecord(t, ml.m)),
		ml.sign(t, advEv{Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: "asset/m"}}),
	}
	advDeliver(a.log, base...)
	advDeliver(c.log, base...)
	n.now = n.t0.Add(time.Minute)
	left = ml.sign(t, advEv{Kind: event.KindGrant, Payload: policy.Grant{ID: pm + "l", Key: "asset/m", Party: "token:l", Ops: policy.OpsAll, Issuer: "m", IssuedAt: n.now}})
	right = ml.sign(t, advEv{At: 3, Kind: event.KindGrant, Payload: policy.Grant{ID: pm + "r", Key: "asset/m", Party: "token:r", Ops: policy.OpsAll, Issuer: "m", IssuedAt: n.now}})
	advDeliver(a.log, left)
	advDeliver(c.log, right)
	// Each honest node names the branch it holds.
	a.issue(t, event.KindKeyCreate, event.KeyCreate{Key: "trade/x"})
	c.issue(t, event.KindKeyCreate, event.KeyCreate{Key: "gdpr/x"})
	return n, a, c, ml, left, right
}

func advCheckEquivocation(t *testing.T, ml *advMallory, nodes ...*advNode) {
	t.Helper()
	for _, h := range nodes {
		h.log.View(func(s *State) {
			if s.Nodes[ml.m.key].Tainted != 3 {
				t.Errorf("node of %s: Mallory tainted at %d, want 3", h.m.org, s.Nodes[ml.m.key].Tainted)
			}
			for k, nd := range s.Nodes {
				if k != ml.m.key && nd.Tainted != 0 {
					t.Errorf("node of %s: honest node %s tainted", h.m.org, k)
				}
			}
			for _, name := range []string{"trade/x", "gdpr/x", "asset/m"} {
				if k := s.Keys[name]; k == nil || !k.Created {
					t.Errorf("node of %s: %s missing", h.m.org, name)
				}
			}
			if len(s.Policy.Grants("asset/m")) != 0 {
				t.Errorf("node of %s: a grant of either branch counts: %v", h.m.org, s.Policy.Grants("asset/m"))
			}
		})
		if h.log.Pending() != 0 {
			t.Errorf("node of %s: %d events still pending", h.m.org, h.log.Pending())
		}
	}
	if !bytes.Equal(nodes[0].canon(), nodes[1].canon()) {
		t.Fatal("the two honest nodes hold different states")
	}
}

// TestAdversaryEquivocationTaintsOnlyItsIssuer: Mallory signs two events at
// one position and hands each to a different node; gossip forwards each
// (Accept) to the other node, which keeps it as proof. Both taint Mallory
// from that position and only Mallory, honest events that named either
// branch are admitted everywhere, and the states converge, also after a
// restart.
func TestAdversaryEquivocationTaintsOnlyItsIssuer(t *testing.T) {
	t.Parallel()
	_, a, c, ml, left, right := advEquivocation(t, 9)
	var reasons []string
	a.opts.OnVerdict = func(v Verdict, reason string) { reasons = append(reasons, reason) }
	a.reopen(t)
	if v := a.log.Deliver(right); v != Accept || reasons[len(reasons)-1] != ReasonEquivocation {
		t.Fatalf("Deliver(second branch) = %v (%v), want accept as %s", v, reasons, ReasonEquivocation)
	}
	if v := a.log.Deliver(right); v != Ignore {
		t.Errorf("Deliver(known proof) = %v, want ignore", v)
	}
	c.log.Deliver(left) // gossip forwards what it accepted
	advSync(a.log, c.log)
	advCheckEquivocation(t, ml, a, c)
	c.reopen(t)
	if !bytes.Equal(a.canon(), c.canon()) {
		t.Fatal("the state after a restart differs")
	}
}

// TestAdversaryEquivocationSpreadsByAntiEntropy: as above, but the gossip
// forward of one branch is lost, so anti-entropy alone must spread the
// equivocation. The node holding the left branch keeps the right one as
// proof and serves it under "proof:"; the node holding the right branch
// already has that event (a duplicate) and is never offered the left one
// (equal chain lengths), so it never taints Mallory, and the honest event
// that named the left branch — with every later event of its issuer —
// waits there forever.
func TestAdversaryEquivocationSpreadsByAntiEntropy(t *testing.T) {
	t.Parallel()
	_, a, c, ml, _, right := advEquivocation(t, 9)
	a.log.Deliver(right) // c's forward of right reached a; a's forward of left to c was lost
	advSync(a.log, c.log)
	var tc uint64
	c.log.View(func(s *State) { tc = s.Nodes[ml.m.key].Tainted })
	if tc != 3 || c.log.Pending() != 0 || !bytes.Equal(a.canon(), c.canon()) {
		t.Errorf("BUG: after anti-entropy the node holding the other branch taints Mallory at %d (want 3) and holds %d pending events "+
			"(Org1's event naming the left branch): Events(\"proof:\"…) serves only the second event a node saw at a position, "+
			"which a node holding that branch already has", tc, c.log.Pending())
	}
}

// TestAdversaryUndetectedForkBlocksNoHonestChain: as above, but no gossip
// forward gets through at all: each honest node holds one branch and
// neither has evidence. Each has issued an event naming the branch it
// holds, which the other cannot admit ("a fork we have no proof of yet").
// Anti-entropy alone must still bring them together: the chains of Mallory
// have equal lengths, so a summary comparison never exchanges the branches;
// the node holding an event that waits on a dependency whose id differs
// from the event it holds at that position has to ask for it.
func TestAdversaryUndetectedForkBlocksNoHonestChain(t *testing.T) {
	t.Parallel()
	n, a, c, ml, _, _ := advEquivocation(t, 9)
	advSync(a.log, c.log)
	var ta, tc uint64
	a.log.View(func(s *State) { ta = s.Nodes[ml.m.key].Tainted })
	c.log.View(func(s *State) { tc = s.Nodes[ml.m.key].Tainted })
	la := advDecide(a.log, "token:l", "", "asset/m", policy.OpDecrypt, n.now).Allowed
	lc := advDecide(c.log, "token:l", "", "asset/m", policy.OpDecrypt, n.now).Allowed
	if ta != 3 || tc != 3 || a.log.Pending()+c.log.Pending() != 0 || !bytes.Equal(a.canon(), c.canon()) {
		t.Errorf("BUG: after anti-entropy Mallory is tainted at %d and %d (want 3 at both); %d and %d events wait for ever "+
			"(each honest node's event naming the branch it holds, and with them every later event of those honest nodes); "+
			"Mallory's left-branch grant counts at one node (%v) and not at the other (%v). Summary compares chain lengths only, "+
			"so two branches of one length are never exchanged", ta, tc, a.log.Pending(), c.log.Pending(), la, lc)
	}
}

// TestAdversaryEqualLengthForkIsFound: Mallory hands one branch of its
// chain to one honest node and the other, of the same length, to the
// other, and nobody builds on either. Each node counts the branch it holds
// (here: a grant to token:l at one node, to token:r at the other); after
// anti-entropy the two must hold the same state.
func TestAdversaryEqualLengthForkIsFound(t *testing.T) {
	t.Parallel()
	n := newAdvNet(t, 17)
	a := n.honest(t, "Org1MSP")
	c := n.honest(t, "Org3MSP")
	advSync(a.log, c.log)
	ml := n.mallory(t, "Org2MSP")
	pm := IDPrefix(ml.m.key)
	base := [][]byte{
		ml.register(t, n.defaultRecord(t, ml.m)),
		ml.sign(t, advEv{Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: "asset/m"}}),
	}
	left := ml.sign(t, advEv{Kind: event.KindGrant, Payload: policy.Grant{ID: pm + "l", Key: "asset/m", Party: "token:l", Ops: policy.OpsAll, Issuer: "m", IssuedAt: n.t0}})
	right := ml.sign(t, advEv{At: 3, Kind: event.KindGrant, Payload: policy.Grant{ID: pm + "r", Key: "asset/m", Party: "token:r", Ops: policy.OpsAll, Issuer: "m", IssuedAt: n.t0}})
	advDeliver(a.log, append(slices.Clone(base), left)...)
	advDeliver(c.log, append(slices.Clone(base), right)...)
	advSync(a.log, c.log)
	var ta, tc uint64
	a.log.View(func(s *State) { ta = s.Nodes[ml.m.key].Tainted })
	c.log.View(func(s *State) { tc = s.Nodes[ml.m.key].Tainted })
	if !bytes.Equal(a.canon(), c.canon()) {
		t.Errorf("BUG: two honest nodes, the same number of Mallory's events, different states after anti-entropy "+
			"(tainted at %d and %d; token:l allowed %v / %v): a fork whose branches have one length is never exchanged — "+
			"the summary carries chain lengths only, and wants are raised only by events that name the other branch",
			ta, tc, advDecide(a.log, "token:l", "", "asset/m", policy.OpDecrypt, n.now).Allowed, advDecide(c.log, "token:l", "", "asset/m", policy.OpDecrypt, n.now).Allowed)
	}
}

// TestAdversaryWithheldDependencies: Mallory withholds its own events from
// some nodes and names events that do not exist. What it withholds but an
// honest node holds arrives by anti-entropy; what does not exist waits,
// bounded, and blocks nothing of anyone else.
func TestAdversaryWithheldDependencies(t *testing.T) {
	t.Parallel()
	n := newAdvNet(t, 10)
	a := n.honest(t, "Org1MSP")
	b := n.honest(t, "Org2MSP")
	c := n.honest(t, "Org3MSP")
	advSync(a.log, b.log, c.log)
	ml := n.mallory(t, "Org2MSP")
	pm := IDPrefix(ml.m.key)
	rec := ml.register(t, n.defaultRecord(t, ml.m))
	m2 := ml.sign(t, advEv{Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: "asset/w"}})
	m3 := ml.sign(t, advEv{Kind: event.KindGrant, Payload: policy.Grant{ID: pm + "w", Key: "asset/w", Party: "token:w", Ops: policy.OpsAll, Issuer: "m", IssuedAt: n.t0}})
	// b sees everything and builds on it; c sees only m3, a nothing.
	advDeliver(b.log, rec, m2, m3)
	n.now = n.t0.Add(time.Minute)
	bEv := b.issue(t, event.KindKeyCreate, event.KeyCreate{Key: "asset/b"})
	advDeliver(c.log, m3, bEv)
	if p := c.log.Pending(); p < 1 || p > 2 {
		t.Fatalf("c holds %d pending, want b's event waiting on Mallory's withheld chain (and perhaps Mallory's event)", p)
	}
	// An event naming one that never existed, and one far ahead in its chain.
	ghost := ml.sign(t, advEv{Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: "asset/ghost"}, RawDeps: []event.Dep{{Issuer: a.m.key, Seq: 1, ID: [32]byte{1}}}})
	gap := ml.sign(t, advEv{At: 40, Prev: [32]byte{4}, Lamport: 50, Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: "asset/gap"}})
	for _, h := range []*advNode{a, b, c} {
		advDeliver(h.log, ghost, gap)
	}
	// Honest work goes on.
	a.issue(t, event.KindKeyCreate, event.KeyCreate{Key: "trade/a"})
	advSync(a.log, b.log, c.log)
	want := a.canon()
	for _, h := range []*advNode{b, c} {
		if !bytes.Equal(h.canon(), want) {
			t.Errorf("node of %s holds another state", h.m.org)
		}
	}
	for _, h := range []*advNode{a, b, c} {
		h.log.View(func(s *State) {
			for _, name := range []string{"trade/a", "asset/b", "asset/w"} {
				if k := s.Keys[name]; k == nil || !k.Created {
					t.Errorf("node of %s: %s missing", h.m.org, name)
				}
			}
			if k := s.Keys["asset/ghost"]; k != nil && k.Created {
				t.Errorf("node of %s: the event naming a ghost counts", h.m.org)
			}
		})
		if p := h.log.Pending(); p > 2 {
			t.Errorf("node of %s holds %d pending events, want at most Mallory's 2", h.m.org, p)
		}
	}
	// Pending is bounded per issuer.
	for i := range MaxPendingPerIssuer + 10 {
		a.log.Deliver(ml.sign(t, advEv{At: uint64(100 + i), Prev: [32]byte{5}, Lamport: uint64(200 + i), Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: "asset/flood"}}))
	}
	if p := a.log.Pending(); p > MaxPendingPerIssuer {
		t.Errorf("%d events pending from one issuer, bound %d", p, MaxPendingPerIssuer)
	}
	b2 := b.issue(t, event.KindKeyCreate, event.KeyCreate{Key: "asset/after"})
	b3 := b.issue(t, event.KindKeyCreate, event.KeyCreate{Key: "asset/after2"})
	advDeliver(a.log, b3, b2)
	a.log.View(func(s *State) {
		if k := s.Keys["asset/after2"]; k == nil || !k.Created {
			t.Error("an honest out-of-order event could not wait while Mallory's chain fills its pending share")
		}
	})
}

// TestAdversaryForeignAdminCannotDeregister: Org2's admin signs
// deregistrations of Org1's node, as Org2 and as Org1; neither cuts it.
func TestAdversaryForeignAdminCannotDeregister(t *testing.T) {
	t.Parallel()
	n := newAdvNet(t, 11)
	a := n.honest(t, "Org1MSP")
	b := n.honest(t, "Org2MSP")
	advSync(a.log, b.log)
	as2 := n.deregister(t, "Org2MSP", a.m.key, 0)
	as1, err := network.SignDeregister(n.admins["Org2MSP"], n.nid, network.Deregister{Org: "Org1MSP", SignKey: a.m.key, LastSeq: 0, At: n.now})
	if err != nil {
		t.Fatal(err)
	}
	b.issue(t, event.KindDeregister, as2)
	b.issue(t, event.KindDeregister, as1)
	advSync(a.log, b.log)
	a.issue(t, event.KindKeyCreate, event.KeyCreate{Key: "trade/still"})
	advSync(a.log, b.log)
	b.log.View(func(s *State) {
		if nd := s.Nodes[a.m.key]; nd.Deregistered {
			t.Error("Org2's admin deregistered Org1's node")
		}
		if k := s.Keys["trade/still"]; k == nil || !k.Created {
			t.Error("Org1's node lost its effect")
		}
	})
}

// --- Bugs found in the new mesh code (see the report of the session). ---

// TestAdversaryTaintPositionDoesNotDependOnOrder: Mallory signs its seq-3
// event e3 and, for some nodes, a seq-3 event f3 whose Prev names a seq-2
// event it never publishes. A node that holds only seq ≤ 2 when f3 arrives
// takes it as a broken chain and taints Mallory from 2; a node that already
// holds e3 takes f3 as a second event at 3 and taints from 3 — and so does
// the first node once restarted, since the proof is then judged against e3.
// The same events must give the same taint.
func TestAdversaryTaintPositionDoesNotDependOnOrder(t *testing.T) {
	t.Parallel()
	n := newAdvNet(t, 12)
	x := n.honest(t, "Org1MSP")
	y := n.honest(t, "Org3MSP")
	advSync(x.log, y.log)
	ml := n.mallory(t, "Org2MSP")
	pm := IDPrefix(ml.m.key)
	base := [][]byte{
		ml.register(t, n.defaultRecord(t, ml.m)),
		ml.sign(t, advEv{Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: "asset/m"}}),
		ml.sign(t, advEv{Kind: event.KindGrant, Payload: policy.Grant{ID: pm + "g", Key: "asset/m", Party: "token:g", Ops: policy.OpsAll, Issuer: "m", IssuedAt: n.t0}}),
	}
	// The unpublished alternative to event 2, and f3 chained on it.
	_, alt2 := ml.signEvent(t, advEv{At: 2, Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: "asset/alt"}})
	f3 := ml.sign(t, advEv{At: 3, Prev: alt2.ID(), Kind: event.KindKeyDestroy, Payload: event.KeyDestroy{Key: "asset/m"}})
	e3 := base[2]
	advDeliver(x.log, base[:2]...)
	advDeliver(x.log, f3, e3) // broken chain first
	advDeliver(y.log, base...)
	advDeliver(y.log, f3) // second event at a held position
	taint := func(l *Log) uint64 {
		var at uint64
		l.View(func(s *State) { at = s.Nodes[ml.m.key].Tainted })
		return at
	}
	tx, ty := taint(x.log), taint(y.log)
	x.reopen(t)
	tr := taint(x.log)
	advSync(x.log, y.log)
	if tx != ty || tx != tr || !bytes.Equal(x.canon(), y.canon()) {
		t.Errorf("BUG: one event set, three taints: %d (broken chain first), %d (second event at 3), %d (the first node restarted); "+
			"takeProof taints from seq-1 only when the proof is beyond the chain head, not when it is at a held position whose Prev differs", tx, ty, tr)
	}
}

// TestAdversaryProofSetsConverge: Mallory equivocates at two positions and
// gives each honest node one proof. Anti-entropy compares proof counts, not
// proof sets, so neither node pulls the other's proof, and their taints
// differ forever.
func TestAdversaryProofSetsConverge(t *testing.T) {
	t.Parallel()
	n := newAdvNet(t, 13)
	x := n.honest(t, "Org1MSP")
	y := n.honest(t, "Org3MSP")
	advSync(x.log, y.log)
	ml := n.mallory(t, "Org2MSP")
	pm := IDPrefix(ml.m.key)
	chain := [][]byte{
		ml.register(t, n.defaultRecord(t, ml.m)),
		ml.sign(t, advEv{Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: "asset/m"}}),
	}
	for i := range 3 {
		chain = append(chain, ml.sign(t, advEv{Kind: event.KindGrant, Payload: policy.Grant{ID: fmt.Sprintf("%sg%d", pm, i), Key: "asset/m", Party: "token:g", Ops: policy.OpsAll, Issuer: "m", IssuedAt: n.t0}}))
	}
	forkAt := func(seq uint64) []byte {
		return ml.sign(t, advEv{At: seq, Kind: event.KindKeyDestroy, Payload: event.KeyDestroy{Key: fmt.Sprintf("asset/f%d", seq)}})
	}
	advDeliver(x.log, chain...)
	advDeliver(y.log, chain...)
	advDeliver(x.log, forkAt(2))
	advDeliver(y.log, forkAt(4))
	advSync(x.log, y.log)
	var tx, ty uint64
	x.log.View(func(s *State) { tx = s.Nodes[ml.m.key].Tainted })
	y.log.View(func(s *State) { ty = s.Nodes[ml.m.key].Tainted })
	if tx != ty || !bytes.Equal(x.canon(), y.canon()) {
		t.Errorf("BUG: after anti-entropy the two honest nodes taint Mallory at %d and %d: "+
			"Summary advertises the number of proofs per issuer and Events serves them by index, so nodes holding "+
			"different proofs in equal numbers never exchange them", tx, ty)
	}
}

// TestAdversaryEquivocationProofsAreBounded: every different event Mallory
// signs at a held position is accepted, stored and forwarded as a new
// proof. One proof per issuer is enough to taint it; keeping all of them
// lets one member fill every node's disk.
func TestAdversaryEquivocationProofsAreBounded(t *testing.T) {
	t.Parallel()
	n := newAdvNet(t, 14)
	a := n.honest(t, "Org1MSP")
	ml := n.mallory(t, "Org2MSP")
	advDeliver(a.log, ml.register(t, n.defaultRecord(t, ml.m)), ml.sign(t, advEv{Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: "asset/m"}}))
	accepted := 0
	for i := range 200 {
		if a.log.Deliver(ml.sign(t, advEv{At: 2, Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: fmt.Sprintf("asset/p%d", i)}})) == Accept {
			accepted++
		}
	}
	stored := 0
	_ = a.store.Scan(proofPrefix, func(k, v []byte) error { stored++; return nil })
	if stored > 4 || accepted > 4 {
		t.Errorf("BUG: 200 equivocations at one position: %d accepted (and so forwarded), %d stored as proofs; "+
			"proofs against an issuer are not bounded", accepted, stored)
	}
}

// TestAdversaryPendingFloodByUnregisteredIssuers: admission holds events of
// issuers it has never seen (seq > 1) as waiting for their predecessors.
// Mallory signs them under throw-away keys — four keys fill the global
// pending bound for good (nothing ever unblocks or expires them), and from
// then on no honest event that arrives ahead of its dependencies can wait.
func TestAdversaryPendingFloodByUnregisteredIssuers(t *testing.T) {
	t.Parallel()
	n := newAdvNet(t, 15)
	a := n.honest(t, "Org1MSP")
	b := n.honest(t, "Org2MSP")
	advSync(a.log, b.log)
	for range MaxPending/MaxPendingPerIssuer + 1 {
		throwaway := &advMallory{net: n, m: n.member("Org2MSP")}
		raws := make([][]byte, MaxPendingPerIssuer)
		for i := range raws {
			seq := uint64(2 + i)
			raws[i] = throwaway.sign(t, advEv{At: seq, Prev: [32]byte{1}, Lamport: seq, Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: "asset/x"}})
		}
		a.log.DeliverBatch(raws)
	}
	pending := a.log.Pending()
	n.now = n.now.Add(time.Minute)
	b2 := b.issue(t, event.KindKeyCreate, event.KeyCreate{Key: "asset/one"})
	b3 := b.issue(t, event.KindKeyCreate, event.KeyCreate{Key: "asset/two"})
	var last string
	a.opts.OnVerdict = func(v Verdict, reason string) { last = reason }
	a.log.verdict = a.opts.OnVerdict
	a.log.Deliver(b3) // ahead of its predecessor
	reason := last
	a.log.Deliver(b2)
	if pending > 0 || reason == ReasonPendingFull {
		t.Errorf("BUG: %d events of never-registered issuers are held as pending (bound %d, never evicted); an honest event ahead of its predecessor then gets %q. "+
			"ready() holds an event of an issuer with no chain at all as waiting for its predecessor", pending, MaxPending, reason)
	}
}

// TestAdversaryReusedIDAcrossOwnKeys: an issuer (here Mallory, on its own
// org's keys) uses one grant id on two keys. The policy state keys grants by
// id alone, so which of the two holds depends on which refolds last: a node
// that learns a wrapped copy's recipient record late refolds one key and
// re-adds its grant, another node does not.
func TestAdversaryReusedIDAcrossOwnKeys(t *testing.T) {
	t.Parallel()
	n := newAdvNet(t, 16)
	x := n.honest(t, "Org1MSP")
	y := n.honest(t, "Org3MSP")
	advSync(x.log, y.log)
	late := n.member("Org2MSP") // a node whose record arrives late at y
	lateRec := n.node(t, late, LogOptions{}).issue(t, event.KindNodeRecord, n.defaultRecord(t, late))
	ml := n.mallory(t, "Org2MSP")
	pm := IDPrefix(ml.m.key)
	blob, check := advBlob(n.rng)
	evs := [][]byte{
		ml.register(t, n.defaultRecord(t, ml.m)),
		ml.sign(t, advEv{Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: "asset/a"}}),
		ml.sign(t, advEv{Kind: event.KindKeyCreate, Payload: event.KeyCreate{Key: "asset/b"}}),
		ml.sign(t, advEv{Kind: event.KindKeyVersion, Payload: event.KeyVersion{Key: "asset/b", Version: 1, ActivateAt: n.t0, Check: check,
			Wraps: []event.Wrap{{Recipient: late.key, Digest: event.DigestOf(blob)}}}, Att: [][]byte{blob}}),
		ml.sign(t, advEv{Kind: event.KindGrant, Payload: policy.Grant{ID: pm + "same", Key: "asset/a", Party: "token:a", Ops: policy.OpsAll, Issuer: "m", IssuedAt: n.t0}}),
		ml.sign(t, advEv{Kind: event.KindGrant, Payload: policy.Grant{ID: pm + "same", Key: "asset/b", Party: "token:b", Ops: policy.OpsAll, Issuer: "m", IssuedAt: n.t0}}),
		ml.sign(t, advEv{Kind: event.KindKeyDestroy, Payload: event.KeyDestroy{Key: "asset/a"}}),
	}
	advDeliver(x.log, lateRec)
	advDeliver(x.log, evs...)
	advDeliver(y.log, evs...)
	advDeliver(y.log, lateRec) // refolds asset/b, whose grant no longer conflicts
	dx := advDecide(x.log, "token:b", "Org2MSP", "asset/b", policy.OpDecrypt, n.now)
	dy := advDecide(y.log, "token:b", "Org2MSP", "asset/b", policy.OpDecrypt, n.now)
	if dx.Allowed != dy.Allowed || !bytes.Equal(x.canon(), y.canon()) {
		t.Errorf("BUG: same events, token:b on asset/b allowed=%v at one node and %v at the other (%s): "+
			"grant ids are unique per issuer but the policy state holds them in one map for all keys, and refoldPolicy re-adds a key's "+
			"grants only when something refolds that key", dx.Allowed, dy.Allowed, simDiff(x.log, y.log))
	}
}

// advIssueGrant issues g at h the way a member does: its event follows the
// chains of the pair's revocations and Observed lists what its reach
// misses. It returns the raw event and the grant as issued.
func advIssueGrant(t testing.TB, h *advNode, g policy.Grant) ([]byte, policy.Grant) {
	t.Helper()
	pol := h.log.Policy()
	is, err := h.log.IssueWith(event.KindGrant, pol.RevocationChains(g.Key, g.Party), func(reach policy.Reach) ([]byte, error) {
		g.Observed = pol.Unobserved(g.Key, g.Party, reach)
		return json.Marshal(g)
	})
	if err != nil {
		t.Fatalf("grant %s of %s: %v", g.ID, h.m.org, err)
	}
	return is.Raw, g
}

// TestAdversaryGrantReachIsProvedByHash: a grant observes a revocation
// through its causal reach only when its event names, by hash, a position
// at or after the revocation. An honest node of the owner org that saw the
// revocation grants again with an empty Observed and is in force
// everywhere; Mallory, a node of the owner org too, cannot make a grant
// outlive a later revocation: one naming a real but older position ends
// with the revocation, and one naming a position of the honest chain that
// did not exist yet (its id made up) is never admitted — whatever the
// order of delivery.
func TestAdversaryGrantReachIsProvedByHash(t *testing.T) {
	t.Parallel()
	n := newAdvNet(t, 41)
	a := n.honest(t, "Org1MSP")
	b := n.honest(t, "Org1MSP")
	ml := n.mallory(t, "Org1MSP")
	rec := ml.register(t, n.defaultRecord(t, ml.m))
	obs := n.member("Org3MSP")
	obsRec := n.node(t, obs, LogOptions{}).issue(t, event.KindNodeRecord, n.defaultRecord(t, obs))
	for _, h := range []*advNode{a, b} {
		advDeliver(h.log, rec, obsRec)
	}
	advSync(a.log, b.log)

	n.now = n.t0.Add(time.Minute)
	pa, pb, pm := IDPrefix(a.m.key), IDPrefix(b.m.key), IDPrefix(ml.m.key)
	const key, party = "trade/k", "token:app"
	grant := func(id, issuer string) policy.Grant {
		return policy.Grant{ID: id, Key: key, Party: party, Ops: policy.OpsAll, Custodian: "Org1MSP", Issuer: issuer, IssuedAt: n.now}
	}
	revoke := func(id string) policy.Revocation {
		return policy.Revocation{ID: id, Key: key, Party: party, Issuer: "a", IssuedAt: n.now}
	}
	a.issue(t, event.KindKeyCreate, event.KeyCreate{Key: key})
	a.issue(t, event.KindGrant, grant(pa+"g1", "a"))
	r1 := a.issue(t, event.KindRevoke, revoke(pa+"r1"))
	advSync(a.log, b.log)

	// b saw r1: its grant follows a's chain and lists nothing.
	bg, issued := advIssueGrant(t, b, grant(pb+"g2", "b"))
	if len(issued.Observed) != 0 {
		t.Fatalf("b's grant lists %q in Observed, want nothing: its event follows r1", issued.Observed)
	}
	if ev := advParse(t, bg); !slices.ContainsFunc(ev.Deps, func(d event.Dep) bool { return d.Issuer == a.m.key && d.Seq >= advParse(t, r1).Seq }) {
		t.Fatalf("b's grant names %+v, want a's chain at r1 or after", ev.Deps)
	}
	advSync(a.log, b.log)
	for _, h := range []*advNode{a, b} {
		if d := advDecide(h.log, party, "Org1MSP", key, policy.OpDecrypt, n.now); !d.Allowed || d.GrantID != pb+"g2" {
			t.Fatalf("node %s after b's grant: %+v, want allowed by %s", h.m.key, d, pb+"g2")
		}
	}

	// Mallory's grants: one following r1 by hash, one naming a position of
	// a's chain that does not exist yet.
	r1ev := advParse(t, r1)
	real := ml.sign(t, advEv{Kind: event.KindGrant, Payload: grant(pm+"real", "m"), Deps: []*event.Event{r1ev}})
	ahead := r1ev.Seq + 3
	forged := ml.sign(t, advEv{Kind: event.KindGrant, Payload: grant(pm+"forged", "m"),
		RawDeps: []event.Dep{{Issuer: a.m.key, Seq: ahead, ID: [32]byte{0xfe}}}, Lamport: r1ev.Lamport + 10})
	advDeliver(a.log, real, forged)
	if d := advDecide(a.log, party, "Org1MSP", key, policy.OpDecrypt, n.now); !d.Allowed {
		t.Fatalf("Mallory's grant following r1 by hash: %+v, want in force until a later revocation", d)
	}

	// a revokes again, then goes past the forged position.
	n.now = n.now.Add(time.Minute)
	r2 := a.issue(t, event.KindRevoke, revoke(pa+"r2"))
	var later [][]byte
	for i := range 4 {
		later = append(later, a.issue(t, event.KindKeyCreate, event.KeyCreate{Key: fmt.Sprintf("trade/x%d", i)}))
	}
	advDeliver(a.log, forged)
	advSync(a.log, b.log)
	advDeliver(b.log, real, forged)

	check := func(name string, l *Log) {
		t.Helper()
		if d := advDecide(l, party, "Org1MSP", key, policy.OpDecrypt, n.now); d.Allowed {
			t.Errorf("%s: %s allowed by %s after r2, want revoked", name, party, d.GrantID)
		}
		l.View(func(s *State) {
			if _, ok := s.Policy.Grant(pm + "forged"); ok {
				t.Errorf("%s: the grant naming a made-up position is held", name)
			}
		})
	}
	check("a", a.log)
	check("b", b.log)

	// After r2, b grants again: in force everywhere, still listing nothing.
	n.now = n.now.Add(time.Minute)
	bg3, issued3 := advIssueGrant(t, b, grant(pb+"g3", "b"))
	if len(issued3.Observed) != 0 {
		t.Fatalf("b's second grant lists %q, want nothing", issued3.Observed)
	}
	advSync(a.log, b.log)
	for _, h := range []*advNode{a, b} {
		if d := advDecide(h.log, party, "Org1MSP", key, policy.OpDecrypt, n.now); !d.Allowed || d.GrantID != pb+"g3" {
			t.Errorf("node %s after b's grant following r2: %+v, want allowed by %s", h.m.key, d, pb+"g3")
		}
	}

	// Org1's admin cuts Mallory after its record: a refold of trade/k,
	// which reads the stored grants back, keeps b's grant in force through
	// its reach.
	n.now = n.now.Add(time.Minute)
	cut := a.issue(t, event.KindDeregister, n.deregister(t, "Org1MSP", ml.m.key, 1))
	advSync(a.log, b.log)
	for _, h := range []*advNode{a, b} {
		if d := advDecide(h.log, party, "Org1MSP", key, policy.OpDecrypt, n.now); !d.Allowed || d.GrantID != pb+"g3" {
			t.Errorf("node %s after the refold of Mallory's cut: %+v, want allowed by %s", h.m.key, d, pb+"g3")
		}
	}

	evs := append(append(advAll(t, a.log), real, forged, bg3, cut), later...)
	ref := n.node(t, obs, LogOptions{})
	advDeliver(ref.log, evs...)
	want := a.canon()
	if !bytes.Equal(ref.canon(), want) {
		t.Fatal("the observer folds another state than a")
	}
	_ = r2
	advPerms(t, n, obs, evs, 20, want)
}
