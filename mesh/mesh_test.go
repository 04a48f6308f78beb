package mesh

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault/transport"
)

// world is a test network: a genesis with orgs and their admins, and node
// signing keys.
type world struct {
	g      *network.Genesis
	admins map[string]ed25519.PrivateKey
	nodes  []testNode
	t0     time.Time
}

type testNode struct {
	org  string
	priv ed25519.PrivateKey
	key  network.NodeKey
	kem  []byte
}

func newWorld(t testing.TB, orgs []string, perOrg int) *world {
	t.Helper()
	w := &world{admins: map[string]ed25519.PrivateKey{}, t0: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	g := &network.Genesis{Network: "test-net", Created: w.t0}
	seed := byte(1)
	for _, o := range orgs {
		priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
		seed++
		w.admins[o] = priv
		var pub [32]byte
		copy(pub[:], priv.Public().(ed25519.PublicKey))
		g.Orgs = append(g.Orgs, network.GenesisOrg{ID: o, AdminKeys: [][32]byte{pub}})
	}
	if len(g.Orgs) > 1 {
		g.Orgs[0].Namespaces = []string{"trade", "gdpr", "a"}
	}
	w.g = g
	_, kemPub, err := transport.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range orgs {
		for range perOrg {
			priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
			seed++
			var k network.NodeKey
			copy(k[:], priv.Public().(ed25519.PublicKey))
			w.nodes = append(w.nodes, testNode{org: o, priv: priv, key: k, kem: kemPub})
		}
	}
	return w
}

// issuer signs events for one node as an honest node would: chained on
// its previous event, depending on the last event of every issuer signed
// before (clocks shared through heads).
type issuer struct {
	w     *world
	n     testNode
	seq   uint64
	prev  [32]byte
	lam   uint64
	heads *map[network.NodeKey]*event.Event
}

func newIssuers(w *world) []*issuer {
	heads := map[network.NodeKey]*event.Event{}
	out := make([]*issuer, len(w.nodes))
	for i, n := range w.nodes {
		out[i] = &issuer{w: w, n: n, heads: &heads}
	}
	return out
}

func (is *issuer) event(t testing.TB, kind event.Kind, payload any, attachments ...[]byte) []byte {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	ev := event.Event{Network: is.w.g.ID(), Seq: is.seq + 1, Prev: is.prev, Lamport: is.lam + 1, Kind: kind, Payload: b, Attachments: attachments}
	for k, h := range *is.heads {
		if k != is.n.key {
			ev.Deps = append(ev.Deps, event.Dep{Issuer: k, Seq: h.Seq, ID: h.ID()})
			ev.Lamport = max(ev.Lamport, h.Lamport+1)
		}
	}
	slices.SortFunc(ev.Deps, func(a, b event.Dep) int { return bytes.Compare(a.Issuer[:], b.Issuer[:]) })
	ev.Time = is.w.t0.Add(time.Duration(ev.Lamport) * time.Second)
	signed, raw, err := event.Sign(is.n.priv, ev)
	if err != nil {
		t.Fatal(err)
	}
	is.seq, is.prev, is.lam = signed.Seq, signed.ID(), signed.Lamport
	(*is.heads)[is.n.key] = &signed
	return raw
}

func (w *world) record(t testing.TB, n testNode) network.NodeRecord {
	t.Helper()
	r, err := network.SignNodeRecord(w.admins[n.org], w.g.ID(), network.NodeRecord{
		Org: n.org, PeerID: "12D3KooWtest" + n.key.String(), SignKey: n.key, KEMKey: n.kem,
		Addrs: []string{"/ip4/127.0.0.1/tcp/1"}, NotBefore: w.t0.Add(-time.Hour), NotAfter: w.t0.Add(24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// history builds a causally ordered event set over three orgs: records,
// keys, versions with wraps, org and token grants, revocations, shares,
// a destroy with acks.
func history(t testing.TB, w *world, r *mrand.Rand) [][]byte {
	iss := newIssuers(w)
	var out [][]byte
	for i, n := range w.nodes {
		out = append(out, iss[i].event(t, event.KindNodeRecord, w.record(t, n)))
	}
	owner := iss[0] // Org1's first node
	blob := func() []byte {
		b := make([]byte, 64)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	for k := range 3 {
		name := fmt.Sprintf("trade/k%d", k)
		out = append(out, owner.event(t, event.KindKeyCreate, event.KeyCreate{Key: name}))
		var wraps []event.Wrap
		var blobs [][]byte
		for _, n := range w.nodes {
			if n.org == owner.n.org {
				b := blob()
				blobs = append(blobs, b)
				wraps = append(wraps, event.Wrap{Recipient: n.key, Digest: event.DigestOf(b)})
			}
		}
		out = append(out, owner.event(t, event.KindKeyVersion, event.KeyVersion{Key: name, Version: 1, ActivateAt: w.t0, Check: event.DigestOf([]byte(name)), Wraps: wraps}, blobs...))
		g := policy.Grant{ID: IDPrefix(owner.n.key) + fmt.Sprintf("g%d", k), Key: name, Party: "org:Org2MSP", Ops: policy.OpsAll, Issuer: "n", IssuedAt: w.t0}
		out = append(out, owner.event(t, event.KindGrant, g))
		for _, n := range w.nodes {
			if n.org == "Org2MSP" {
				b := blob()
				out = append(out, owner.event(t, event.KindKeyShare, event.KeyShare{Key: name, Shares: []event.Share{{Version: 1, ActivateAt: w.t0, Wrap: event.Wrap{Recipient: n.key, Digest: event.DigestOf(b)}}}}, b))
			}
		}
		tg := policy.Grant{ID: IDPrefix(owner.n.key) + fmt.Sprintf("t%d", k), Key: name, Party: "token:app", Ops: policy.OpsOf(policy.OpDecrypt), Custodian: "Org1MSP", Issuer: "n", IssuedAt: w.t0}
		out = append(out, owner.event(t, event.KindGrant, tg))
		if k == 1 {
			out = append(out, owner.event(t, event.KindRevoke, policy.Revocation{ID: IDPrefix(owner.n.key) + "r1", Key: name, Party: "org:Org2MSP", Issuer: "n", IssuedAt: w.t0}))
			b := blob()
			out = append(out, owner.event(t, event.KindKeyVersion, event.KeyVersion{Key: name, Version: 2, ActivateAt: w.t0, Check: event.DigestOf([]byte(name + "2")), Wraps: []event.Wrap{{Recipient: owner.n.key, Digest: event.DigestOf(b)}}}, b))
		}
		if k == 2 {
			out = append(out, owner.event(t, event.KindKeyDestroy, event.KeyDestroy{Key: name}))
			for i, n := range w.nodes {
				if n.org != "Org3MSP" {
					out = append(out, iss[i].event(t, event.KindDestroyAck, event.DestroyAck{Key: name}))
				}
			}
		}
	}
	// A forged grant by Org2 on Org1's key, and an Org3 state change: the
	// fold must keep them out wherever they land.
	var org2 *issuer
	for _, is := range iss {
		if is.n.org == "Org2MSP" {
			org2 = is
			break
		}
	}
	out = append(out, org2.event(t, event.KindGrant, policy.Grant{ID: IDPrefix(org2.n.key) + "forged", Key: "trade/k0", Party: "token:evil", Ops: policy.OpsAll, Issuer: "n", IssuedAt: w.t0}))
	return out
}

// deliverAll delivers events in order, passing again over what was ignored
// (as anti-entropy would bring it again) until nothing changes.
func deliverAll(l *Log, evs [][]byte) {
	pending := evs
	for range len(evs) + 1 {
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

// deliverBatches delivers evs to l, an empty log, in order in batches of
// n, and fails tb unless l then holds them all.
func deliverBatches(tb testing.TB, l *Log, evs [][]byte, n int) {
	tb.Helper()
	for i := 0; i < len(evs); i += n {
		l.DeliverBatch(evs[i:min(i+n, len(evs))])
	}
	if l.Height() != len(evs) {
		tb.Fatalf("Height() = %d, want %d", l.Height(), len(evs))
	}
}

func newLog(t testing.TB, w *world, i int) *Log {
	t.Helper()
	l, err := OpenLog(kv.NewMem(), w.g, w.nodes[i].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestFoldConverges is the property test: the same event set, delivered in
// random permutations with duplicates at several nodes, gives byte-for-byte
// the same state — and the same state as a fresh fold of the stored log.
func TestFoldConverges(t *testing.T) {
	t.Parallel()
	w := newWorld(t, []string{"Org1MSP", "Org2MSP", "Org3MSP"}, 2)
	r := mrand.New(mrand.NewPCG(1, 2))
	evs := history(t, w, r)
	ref := newLog(t, w, 0)
	deliverAll(ref, evs)
	var want []byte
	ref.View(func(s *State) { want = s.Canonical() })
	if ref.Height() != len(evs) {
		t.Fatalf("reference log holds %d events, want %d (the forged grant is held, with no effect)", ref.Height(), len(evs))
	}
	for round := range 60 {
		perm := append([][]byte(nil), evs...)
		r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		for range r.IntN(10) {
			perm = append(perm, evs[r.IntN(len(evs))])
		}
		l := newLog(t, w, round%len(w.nodes))
		deliverAll(l, perm)
		var got []byte
		l.View(func(s *State) { got = s.Canonical() })
		if !bytes.Equal(got, want) {
			t.Fatalf("round %d: state differs from the reference (%d vs %d bytes)", round, len(got), len(want))
		}
	}
	ref.View(func(s *State) {
		k0 := s.Keys["trade/k0"]
		if k0 == nil || k0.Owner != "Org1MSP" || len(k0.Versions) != 1 {
			t.Fatalf("trade/k0 = %+v", k0)
		}
		if !s.Entitled("trade/k0", w.nodes[2].key) {
			t.Error("Org2 node not entitled to trade/k0 after its org grant")
		}
		if s.Entitled("trade/k1", w.nodes[2].key) {
			t.Error("Org2 node still entitled to trade/k1 after the revocation")
		}
		if v2 := s.Keys["trade/k1"].Versions[1]; len(slices.Collect(v2.Recipients())) != 1 || len(s.CopiesFor("trade/k1", v2, w.nodes[2].key)) != 0 {
			t.Errorf("trade/k1 v2 has %d wraps, want only the owner's", len(slices.Collect(v2.Recipients())))
		}
		k2 := s.Keys["trade/k2"]
		if !k2.Destroyed || len(k2.Outstanding()) != 0 {
			t.Errorf("trade/k2 destroyed=%v outstanding=%d, want destroyed with every ack", k2.Destroyed, len(k2.Outstanding()))
		}
		for _, st := range s.Policy.Grants("trade/k0") {
			if strings.HasSuffix(st.Grant.ID, "forged") {
				t.Error("the grant forged by Org2 on Org1's key is in the state")
			}
		}
	})
}

func TestDeliverRefusals(t *testing.T) {
	t.Parallel()
	w := newWorld(t, []string{"Org1MSP", "Org2MSP"}, 1)
	var counts = map[string]int{}
	l, err := OpenLog(kv.NewMem(), w.g, w.nodes[0].priv, LogOptions{
		Clock:     func() time.Time { return w.t0.Add(time.Hour) },
		OnVerdict: func(v Verdict, reason string) { counts[v.String()+"/"+reason]++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	iss := newIssuers(w)
	a, b := iss[0], iss[1]
	recA := a.event(t, event.KindNodeRecord, w.record(t, w.nodes[0]))
	if v := l.Deliver(recA); v != Accept {
		t.Fatalf("Deliver(record) = %v", v)
	}
	create := a.event(t, event.KindKeyCreate, event.KeyCreate{Key: "trade/x"})
	if v := l.Deliver(create); v != Accept {
		t.Fatalf("Deliver(create) = %v", v)
	}
	// A record for b signed by the wrong org's admin, as b's first event.
	bad := w.record(t, w.nodes[1])
	bad, _ = network.SignNodeRecord(w.admins["Org1MSP"], w.g.ID(), bad)
	bad.Org = "Org2MSP"
	badB := &issuer{w: w, n: w.nodes[1], heads: &map[network.NodeKey]*event.Event{}}
	badRec := badB.event(t, event.KindNodeRecord, bad)
	goodRec := b.event(t, event.KindNodeRecord, w.record(t, w.nodes[1]))
	forged := b.event(t, event.KindGrant, policy.Grant{ID: IDPrefix(b.n.key) + "f", Key: "trade/x", Party: "token:evil", Ops: policy.OpsAll, Issuer: "b", IssuedAt: w.t0})
	// Another network.
	other := *w.g
	other.Network = "other-net"
	_, foreign, _ := event.Sign(w.nodes[0].priv, event.Event{Network: other.ID(), Seq: 1, Lamport: 1, Time: w.t0, Kind: event.KindKeyCreate, Payload: []byte(`{"key":"trade/z"}`)})
	tampered := append([]byte(nil), create...)
	tampered[len(tampered)-70] ^= 1
	// b's second event, forging a clock: its lamport is not the one its
	// predecessor and dependencies give it.
	_, badClock, _ := event.Sign(w.nodes[1].priv, event.Event{Network: w.g.ID(), Seq: 3, Prev: b.prev, Lamport: b.lam + 5, Time: w.t0.Add(time.Hour), Kind: event.KindDestroyAck, Payload: []byte(`{"Key":"trade/x"}`)})

	tests := []struct {
		name string
		raw  []byte
		want Verdict
	}{
		{"fail/before-record", forged, Ignore}, // not held: anti-entropy pulls chains from their start
		{"fail/bad-admin", badRec, Reject},
		{"ok/record", goodRec, Accept},
		{"ok/after-record", forged, Accept},
		{"fail/duplicate", create, Ignore},
		{"fail/foreign-network", foreign, Reject},
		{"fail/bad-signature", tampered, Reject},
		{"fail/garbage", []byte("nope"), Reject},
		{"fail/forged-clock", badClock, Reject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v := l.Deliver(tt.raw); v != tt.want {
				t.Errorf("Deliver = %v, want %v", v, tt.want)
			}
		})
	}
	// b's grant is held now, with no effect: b is not of the key's owner
	// org.
	if l.Height() != 4 || l.Pending() != 0 {
		t.Errorf("log holds %d events, %d pending; want 4, 0", l.Height(), l.Pending())
	}
	if len(l.Policy().Grants("trade/x")) != 0 {
		t.Error("Org2's grant on Org1's key is in force")
	}
	// Another event at b's first position is equivocation: kept as proof,
	// forwarded, and b is tainted from there.
	eq := &issuer{w: w, n: w.nodes[1], heads: &map[network.NodeKey]*event.Event{}}
	r2 := w.record(t, w.nodes[1])
	r2.Addrs = []string{"/ip4/127.0.0.1/tcp/2"}
	r2, _ = network.SignNodeRecord(w.admins["Org2MSP"], w.g.ID(), r2)
	if v := l.Deliver(eq.event(t, event.KindNodeRecord, r2)); v != Accept {
		t.Errorf("Deliver(equivocation) = %v, want accept (as proof)", v)
	}
	l.View(func(s *State) {
		if s.Nodes[w.nodes[1].key].Tainted != 1 {
			t.Errorf("b tainted from %d, want 1", s.Nodes[w.nodes[1].key].Tainted)
		}
	})
	for _, want := range []string{"ignore/" + ReasonUnregistered, "reject/" + ReasonBadRecord, "reject/" + ReasonForeignNetwork,
		"reject/" + ReasonBadSignature, "reject/" + ReasonBadClock, "accept/" + ReasonEquivocation, "ignore/" + ReasonDuplicate} {
		if counts[want] == 0 {
			t.Errorf("no %q counted; counts %v", want, counts)
		}
	}
}

// TestIssueAndRestart checks a node's own events and that a reopened log
// folds to the same state and continues its sequence.
func TestIssueAndRestart(t *testing.T) {
	t.Parallel()
	w := newWorld(t, []string{"Org1MSP"}, 1)
	store := kv.NewMem()
	l, err := OpenLog(store, w.g, w.nodes[0].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := json.Marshal(w.record(t, w.nodes[0]))
	if _, err := l.Issue(event.KindNodeRecord, rec); err != nil {
		t.Fatal(err)
	}
	kc, _ := json.Marshal(event.KeyCreate{Key: "a/b"})
	if _, err := l.Issue(event.KindKeyCreate, kc); err != nil {
		t.Fatal(err)
	}
	var want []byte
	l.View(func(s *State) { want = s.Canonical() })
	l2, err := OpenLog(store, w.g, w.nodes[0].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	l2.View(func(s *State) { got = s.Canonical() })
	if !bytes.Equal(got, want) {
		t.Error("reopened log folds to a different state")
	}
	if s := l2.Summary()[IssuerID(w.nodes[0].key)]; s < 2 {
		t.Errorf("Summary after reopen = %d, want >= 2", s)
	}
	evs, _ := l2.Events(IssuerID(w.nodes[0].key), 0, 10)
	if len(evs) != l2.Height() {
		t.Errorf("Events() = %d, want %d", len(evs), l2.Height())
	}
}

// TestPruneOnDestroy checks that destroying a key removes its wrapped
// copies from the log (memory and store) while the events stay valid, and
// that a stripped copy of an event is completed by a fuller one.
func TestPruneOnDestroy(t *testing.T) {
	t.Parallel()
	w := newWorld(t, []string{"Org1MSP"}, 2)
	store := kv.NewMem()
	l, err := OpenLog(store, w.g, w.nodes[1].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	iss := newIssuers(w)
	a, b := iss[0], iss[1]
	blob := bytes.Repeat([]byte{0xAB}, 1208)
	for _, raw := range [][]byte{
		a.event(t, event.KindNodeRecord, w.record(t, w.nodes[0])),
		b.event(t, event.KindNodeRecord, w.record(t, w.nodes[1])),
		a.event(t, event.KindKeyCreate, event.KeyCreate{Key: "gdpr/email"}),
	} {
		if v := l.Deliver(raw); v != Accept {
			t.Fatalf("Deliver = %v", v)
		}
	}
	full := a.event(t, event.KindKeyVersion, event.KeyVersion{Key: "gdpr/email", Version: 1, ActivateAt: w.t0, Check: event.DigestOf([]byte("c")),
		Wraps: []event.Wrap{{Recipient: w.nodes[1].key, Digest: event.DigestOf(blob)}}}, blob)
	ev, _ := event.Parse(full)
	stripped := ev.Pruned().Marshal()
	if v := l.Deliver(stripped); v != Accept {
		t.Fatalf("Deliver(stripped) = %v", v)
	}
	hasBlob := func() bool {
		var got bool
		l.View(func(s *State) {
			v := s.Keys["gdpr/email"].Versions[0]
			ws := s.CopiesFor("gdpr/email", v, w.nodes[1].key)
			got = len(ws) > 0 && ws[0].Blob != nil
		})
		return got
	}
	if hasBlob() {
		t.Fatal("a stripped event carried a blob")
	}
	if v := l.Deliver(full); v != Accept || !hasBlob() {
		t.Fatalf("Deliver(full copy) = %v, blob present %v; want the copy merged", v, hasBlob())
	}
	if v := l.Deliver(full); v != Ignore {
		t.Errorf("Deliver(full copy again) = %v, want ignore", v)
	}
	countAtt := func() int {
		n := 0
		_ = store.Scan(attPrefix, func(k, v []byte) error {
			n++
			if bytes.Contains(v, blob[:64]) {
				return nil
			}
			return nil
		})
		return n
	}
	if countAtt() != 1 {
		t.Fatalf("store holds %d attachments, want 1", countAtt())
	}
	if v := l.Deliver(a.event(t, event.KindKeyDestroy, event.KeyDestroy{Key: "gdpr/email"})); v != Accept {
		t.Fatal(v)
	}
	if n := countAtt(); n != 0 {
		t.Errorf("store holds %d attachments after destroy, want 0", n)
	}
	evs, _ := l.Events(IssuerID(w.nodes[0].key), 0, 10)
	for _, raw := range evs {
		if bytes.Contains(raw, blob[:64]) {
			t.Error("an event served after destroy still carries the wrapped copy")
		}
		e, err := event.Parse(raw)
		if err != nil || e.Verify() != nil {
			t.Errorf("served event does not parse and verify: %v", err)
		}
	}
	// A late copy of the version with its blob is stored without it.
	if v := l.Deliver(full); v != Ignore {
		t.Errorf("Deliver(full copy after destroy) = %v, want ignore", v)
	}
	if countAtt() != 0 {
		t.Error("a late copy brought the destroyed key's blob back")
	}
	// Reopening keeps it pruned.
	l2, err := OpenLog(store, w.g, w.nodes[1].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l2.View(func(s *State) {
		if !s.Keys["gdpr/email"].Destroyed {
			t.Error("key not destroyed after reopen")
		}
	})
}

// TestDeliverBatch checks that a batch gives the verdicts of one-by-one
// delivery, and that a failed store write keeps none of it.
func TestDeliverBatch(t *testing.T) {
	t.Parallel()
	w := newWorld(t, []string{"Org1MSP", "Org2MSP", "Org3MSP"}, 1)
	evs := history(t, w, mrand.New(mrand.NewPCG(3, 4)))
	one := newLog(t, w, 0)
	var want []Verdict
	for _, raw := range evs {
		want = append(want, one.Deliver(raw))
	}
	store := kv.NewMem()
	batch, err := OpenLog(store, w.g, w.nodes[0].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := batch.DeliverBatch(evs)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: DeliverBatch = %v, Deliver = %v", i, got[i], want[i])
		}
	}
	var a, b []byte
	one.View(func(s *State) { a = s.Canonical() })
	batch.View(func(s *State) { b = s.Canonical() })
	if !bytes.Equal(a, b) {
		t.Error("batch and one-by-one delivery fold to different states")
	}
	// A failing store: nothing of the batch is kept.
	failing := kv.NewMem()
	l, err := OpenLog(failing, w.g, w.nodes[0].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	failing.SetFailure(errors.New("disk full"))
	for i, v := range l.DeliverBatch(evs[:4]) {
		if v == Accept {
			t.Errorf("event %d accepted with a failing store", i)
		}
	}
	if l.Height() != 0 {
		t.Errorf("log holds %d events after a failed batch, want 0", l.Height())
	}
	failing.SetFailure(nil)
	for i, v := range l.DeliverBatch(evs[:4]) {
		if v != Accept {
			t.Errorf("event %d after recovery = %v, want accept", i, v)
		}
	}
}

// TestOpenRefusesFormat1Log: a data directory whose event log an earlier
// keymesh wrote (event format 1) is refused with ErrOldLog, which says
// what to do, rather than misread.
func TestOpenRefusesFormat1Log(t *testing.T) {
	t.Parallel()
	w := newWorld(t, []string{"Org1MSP"}, 1)
	store := kv.NewMem()
	old := append([]byte{1}, bytes.Repeat([]byte{0xAA}, 200)...) // a format-1 event's first byte
	if err := store.Update(func(tx kv.Txn) error { return tx.Set(evKey(w.nodes[0].key, 1), old) }); err != nil {
		t.Fatal(err)
	}
	_, err := OpenLog(store, w.g, w.nodes[0].priv, LogOptions{})
	if !errors.Is(err, ErrOldLog) || !strings.Contains(err.Error(), "format 1") {
		t.Fatalf("OpenLog(format-1 log) = %v, want %v", err, ErrOldLog)
	}
}
