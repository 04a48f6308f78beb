package mesh

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/policy"
)

// windowLen is the length of the chains the window tests build: longer
// than the largest window (2*chainWindow), so their first events are read
// back from the store.
const windowLen = 2*chainWindow + 10

// windowChain signs is's chain of n events: its record, then grants (on a
// key of Org1MSP: admitted whoever signs them). It returns the raw events,
// and a copy of the issuer as it was after forkAt events, which signs
// another event at position forkAt+1.
func windowChain(t *testing.T, w *world, is *issuer, n int, forkAt uint64) (raws [][]byte, ids [][32]byte, fork *issuer) {
	t.Helper()
	raws = append(raws, is.event(t, event.KindNodeRecord, w.record(t, is.n)))
	for len(raws) < n {
		if is.seq == forkAt {
			f := *is
			fork = &f
		}
		raws = append(raws, is.event(t, event.KindGrant, policy.Grant{ID: IDPrefix(is.n.key) + fmt.Sprintf("g%d", len(raws)), Key: "trade/w",
			Party: "token:w", Ops: policy.OpsAll, Issuer: "w", IssuedAt: w.t0}))
	}
	for _, raw := range raws {
		ids = append(ids, advParse(t, raw).ID())
	}
	return raws, ids, fork
}

// windowLog opens a log for node i of w on store and delivers raws in
// batches; every chain holding more than its window must have moved it.
func windowLog(t *testing.T, w *world, i int, store kv.Store, o LogOptions, raws [][]byte) *Log {
	t.Helper()
	l, err := OpenLog(store, w.g, w.nodes[i].priv, o)
	if err != nil {
		t.Fatal(err)
	}
	deliverBatches(t, l, raws, 100)
	checkWindows(t, l)
	return l
}

// checkWindows checks that no chain of l keeps more than its window.
func checkWindows(t *testing.T, l *Log) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, c := range l.chains {
		if len(c.events) >= 2*chainWindow || c.length() > 2*chainWindow && c.base == 0 {
			t.Fatalf("chain %s keeps %d of its %d entries, want fewer than %d", k, len(c.events), c.length(), 2*chainWindow)
		}
	}
}

func lastReason(reasons *[]string) string {
	if len(*reasons) == 0 {
		return ""
	}
	return (*reasons)[len(*reasons)-1]
}

// TestWindowEquivocationBeforeWindow: a second event at a position of an
// issuer's chain that is no longer in memory (before the window) is still
// caught: read back from the store, the held event and the new one make
// the same evidence, byte for byte, as when the position is in the window,
// it is stored, and the issuer is tainted from there. The same event
// again at such a position is a duplicate, not evidence. A log opened
// again from the store keeps its windows only, and answers anti-entropy
// over the whole chain.
func TestWindowEquivocationBeforeWindow(t *testing.T) {
	w := newWorld(t, []string{"Org1MSP", "Org2MSP"}, 2)
	ml := newIssuers(w)[2] // a member of Org2MSP, signing what it likes
	raws, ids, fork := windowChain(t, w, ml, windowLen, 4)
	other := fork.event(t, event.KindGrant, policy.Grant{ID: IDPrefix(ml.n.key) + "other", Key: "trade/w", Party: "token:x", Ops: policy.OpsAll, Issuer: "w", IssuedAt: w.t0})

	// In the window: the evidence as the log has always made it.
	short := windowLog(t, w, 0, kv.NewMem(), LogOptions{}, raws[:10])
	if v := short.Deliver(other); v != Accept {
		t.Fatalf("in the window: Deliver(second event at 5) = %v, want accept", v)
	}
	want := short.chains[ml.n.key].evidence
	if want == nil || want.At != 5 || !want.Exact {
		t.Fatalf("in the window: evidence %+v, want exact at 5", want)
	}

	var reasons []string
	store := kv.NewMem()
	l := windowLog(t, w, 0, store, LogOptions{OnVerdict: func(_ Verdict, r string) { reasons = append(reasons, r) }}, raws)
	if e := l.chains[ml.n.key].recent(5); e != nil {
		t.Fatalf("position 5 of %d is still in the window", windowLen)
	}
	if v := l.Deliver(raws[4]); v != Ignore || lastReason(&reasons) != ReasonDuplicate || l.chains[ml.n.key].evidence != nil {
		t.Fatalf("Deliver(held event 5 again) = %v (%s), evidence %v; want a duplicate", v, lastReason(&reasons), l.chains[ml.n.key].evidence)
	}
	if v := l.Deliver(other); v != Accept || lastReason(&reasons) != ReasonEquivocation {
		t.Fatalf("Deliver(second event at 5) = %v (%s), want accept as %s", v, lastReason(&reasons), ReasonEquivocation)
	}
	got := l.chains[ml.n.key].evidence
	if got == nil || !bytes.Equal(got.Marshal(), want.Marshal()) {
		t.Fatalf("evidence before the window = %+v, want %+v as in the window", got, want)
	}
	if got.A.ID() != ids[4] && got.B.ID() != ids[4] {
		t.Fatalf("evidence names %x and %x, not the held event 5", got.A.ID(), got.B.ID())
	}
	stored, err := store.Get(proofKey(ml.n.key))
	if err != nil || !bytes.Equal(stored, want.Marshal()) {
		t.Fatalf("stored evidence = %x, %v; want it", stored, err)
	}
	l.View(func(s *State) {
		if at := s.Nodes[ml.n.key].Tainted; at != 5 {
			t.Fatalf("tainted at %d, want 5", at)
		}
	})

	l2, err := OpenLog(store, w.g, w.nodes[0].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkWindows(t, l2)
	if ev := l2.chains[ml.n.key].evidence; ev == nil || !bytes.Equal(ev.Marshal(), want.Marshal()) {
		t.Fatalf("reopened: evidence %+v, want %+v", ev, want)
	}
	var all [][]byte
	for after := uint64(0); ; {
		page, err := l2.Events(IssuerID(ml.n.key), after, 100)
		if err != nil {
			t.Fatalf("reopened: Events(after %d) = %v", after, err)
		}
		if len(page) == 0 {
			break
		}
		all, after = append(all, page...), after+uint64(len(page))
	}
	if len(all) != windowLen {
		t.Fatalf("reopened: Events over the chain = %d events, want %d", len(all), windowLen)
	}
	for i, raw := range all {
		if id := advParse(t, raw).ID(); id != ids[i] {
			t.Fatalf("reopened: Events()[%d] = %x, want %x", i, id, ids[i])
		}
	}
}

// windowDepEvent signs node b's second event (its first is rec): a grant
// naming d as its one dependency, with Lamport clock lamport and the time
// of the dependency.
func windowDepEvent(t *testing.T, w *world, b testNode, rec []byte, d event.Dep, lamport uint64, at time.Time) []byte {
	t.Helper()
	prev := advParse(t, rec)
	ev := event.Event{Network: w.g.ID(), Issuer: b.key, Seq: 2, Prev: prev.ID(), Lamport: lamport, Time: at, Kind: event.KindGrant,
		Payload: advJSON(t, policy.Grant{ID: IDPrefix(b.key) + "dep", Key: "trade/w", Party: "token:d", Ops: policy.OpsAll, Issuer: "b", IssuedAt: w.t0}),
		Deps:    []event.Dep{d}}
	_, raw, err := event.Sign(b.priv, ev)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestWindowDependencyBeforeWindow: an event that names as its dependency
// an event before the window of that issuer's chain is judged on the
// dependency's header and id read back from the store: with the held id
// and the clock that follows it, it is admitted; with another id it is not
// admitted (it waits, and the position becomes a fork hint, as in the
// window); with a Lamport clock or a time that does not follow the
// dependency's, it is rejected.
func TestWindowDependencyBeforeWindow(t *testing.T) {
	w := newWorld(t, []string{"Org1MSP", "Org2MSP"}, 2)
	iss := newIssuers(w)
	a := iss[2]
	raws, ids, _ := windowChain(t, w, a, windowLen, 0)
	b := newIssuers(w)[3] // its own heads: its record names nothing
	rec := b.event(t, event.KindNodeRecord, w.record(t, b.n))
	dep5 := advParse(t, raws[4])
	at := dep5.Time
	wrong := ids[4]
	wrong[0] ^= 1
	for _, tc := range []struct {
		name    string
		dep     event.Dep
		lamport uint64
		at      time.Time
		want    Verdict
		reason  string
	}{
		{"ok/held id", event.Dep{Issuer: a.n.key, Seq: 5, ID: ids[4]}, dep5.Lamport + 1, at, Accept, ReasonOK},
		{"fail/other id", event.Dep{Issuer: a.n.key, Seq: 5, ID: wrong}, dep5.Lamport + 1, at, Ignore, ReasonPending},
		{"fail/clock not the dependency's", event.Dep{Issuer: a.n.key, Seq: 5, ID: ids[4]}, dep5.Lamport + 2, at, Reject, ReasonBadClock},
		{"fail/dated before the dependency", event.Dep{Issuer: a.n.key, Seq: 5, ID: ids[4]}, dep5.Lamport + 1, at.Add(-time.Second), Reject, ReasonBadClock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reason string
			l := windowLog(t, w, 0, kv.NewMem(), LogOptions{OnVerdict: func(_ Verdict, r string) { reason = r }}, append(slices.Clone(raws), rec))
			if l.chains[a.n.key].recent(5) != nil {
				t.Fatal("the dependency is still in the window")
			}
			raw := windowDepEvent(t, w, b.n, rec, tc.dep, tc.lamport, tc.at)
			if v := l.Deliver(raw); v != tc.want || reason != tc.reason {
				t.Fatalf("Deliver = %v (%s), want %v (%s)", v, reason, tc.want, tc.reason)
			}
			wantHeight := windowLen + 1
			if tc.want == Accept {
				wantHeight++
			}
			if l.Height() != wantHeight {
				t.Fatalf("Height() = %d, want %d", l.Height(), wantHeight)
			}
			if tc.reason == ReasonPending {
				l.mu.Lock()
				hint, ok := l.forkHints[a.n.key]
				l.mu.Unlock()
				if !ok || hint != 5 {
					t.Fatalf("fork hint %d (%v), want 5", hint, ok)
				}
			}
		})
	}
}

// TestWindowReadBackStoreErrors: while the store cannot read back the held
// event at a position before the window, an event whose judgement needs it
// is refused (ignored as a store error, not the sender's fault), never
// admitted nor taken as proof: a second event at that position, the same
// event again, an event naming it as a dependency; anti-entropy answers
// that include it fail with the cause wrapped. Once reads work again, each
// is judged as usual.
func TestWindowReadBackStoreErrors(t *testing.T) {
	w := newWorld(t, []string{"Org1MSP", "Org2MSP"}, 2)
	a := newIssuers(w)[2]
	raws, ids, fork := windowChain(t, w, a, windowLen, 4)
	other := fork.event(t, event.KindGrant, policy.Grant{ID: IDPrefix(a.n.key) + "other", Key: "trade/w", Party: "token:x", Ops: policy.OpsAll, Issuer: "w", IssuedAt: w.t0})
	b := newIssuers(w)[3]
	rec := b.event(t, event.KindNodeRecord, w.record(t, b.n))
	dep5 := advParse(t, raws[4])
	depending := windowDepEvent(t, w, b.n, rec, event.Dep{Issuer: a.n.key, Seq: 5, ID: ids[4]}, dep5.Lamport+1, dep5.Time)

	store := &failingReads{Store: kv.NewMem(), only: evKey(a.n.key, 5)}
	var reason string
	l := windowLog(t, w, 0, store, LogOptions{OnVerdict: func(_ Verdict, r string) { reason = r }}, append(slices.Clone(raws), rec))
	if l.chains[a.n.key].recent(5) != nil {
		t.Fatal("position 5 is still in the window")
	}
	height := l.Height()
	store.fail.Store(true)
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"second event at 5", other},
		{"held event 5 again", raws[4]},
		{"event depending on 5", depending},
	} {
		if v := l.Deliver(tc.raw); v != Ignore || reason != ReasonStore {
			t.Errorf("failing reads: Deliver(%s) = %v (%s), want ignore (%s)", tc.name, v, reason, ReasonStore)
		}
	}
	if l.Height() != height || l.Pending() != 0 {
		t.Errorf("failing reads: Height() = %d, Pending() = %d; want %d, 0", l.Height(), l.Pending(), height)
	}
	l.View(func(s *State) {
		if at := s.Nodes[a.n.key].Tainted; at != 0 {
			t.Errorf("failing reads: tainted at %d without evidence read back", at)
		}
	})
	if ev := l.chains[a.n.key].evidence; ev != nil {
		t.Errorf("failing reads: evidence %+v", ev)
	}
	if _, err := l.Events(IssuerID(a.n.key), 0, 10); !errors.Is(err, errRead) {
		t.Errorf("failing reads: Events = %v, want %v wrapped", err, errRead)
	}

	store.fail.Store(false)
	if v := l.Deliver(depending); v != Accept || l.Height() != height+1 {
		t.Errorf("reads work: Deliver(event depending on 5) = %v, Height() = %d; want accept, %d", v, l.Height(), height+1)
	}
	if v := l.Deliver(other); v != Accept || reason != ReasonEquivocation {
		t.Errorf("reads work: Deliver(second event at 5) = %v (%s), want accept (%s)", v, reason, ReasonEquivocation)
	}
	l.View(func(s *State) {
		if at := s.Nodes[a.n.key].Tainted; at != 5 {
			t.Errorf("reads work: tainted at %d, want 5", at)
		}
	})
	raw, err := l.Events(IssuerID(a.n.key), 4, 1)
	if err != nil || len(raw) != 1 || advParse(t, raw[0]).ID() != ids[4] {
		t.Errorf("reads work: Events(after 4) = %d events, %v; want event 5", len(raw), err)
	}
}

// TestWindowAttachmentsBeforeWindow: a KeyVersion that first arrived
// without its wrapped copy (a relay stripped it) and whose position has
// left the window still takes the copy when a full copy of the event
// arrives: the copy is stored, the fold holds it, and anti-entropy answers
// carry it.
func TestWindowAttachmentsBeforeWindow(t *testing.T) {
	w := newWorld(t, []string{"Org1MSP", "Org2MSP"}, 2)
	owner := newIssuers(w)[0]
	me := w.nodes[1]
	const key = "trade/v"
	blob := bytes.Repeat([]byte{0xAB}, 1208)
	raws := [][]byte{
		owner.event(t, event.KindNodeRecord, w.record(t, owner.n)),
		owner.event(t, event.KindKeyCreate, event.KeyCreate{Key: key}),
		owner.event(t, event.KindKeyVersion, event.KeyVersion{Key: key, Version: 1, ActivateAt: w.t0, Check: event.DigestOf([]byte("c")),
			Wraps: []event.Wrap{{Recipient: me.key, Digest: event.DigestOf(blob)}}}, blob),
	}
	full := raws[2]
	raws[2] = advParse(t, full).Pruned().Marshal()
	raws = append(raws, newIssuers(w)[1].event(t, event.KindNodeRecord, w.record(t, me))) // the copies' recipient
	for len(raws) < windowLen {
		raws = append(raws, owner.event(t, event.KindGrant, policy.Grant{ID: IDPrefix(owner.n.key) + fmt.Sprintf("g%d", len(raws)), Key: key,
			Party: "token:w", Ops: policy.OpsAll, Issuer: "w", IssuedAt: w.t0}))
	}
	store := kv.NewMem()
	l := windowLog(t, w, 1, store, LogOptions{}, raws)
	if l.chains[owner.n.key].recent(3) != nil {
		t.Fatal("position 3 is still in the window")
	}
	copies := func() int {
		n := 0
		l.View(func(s *State) {
			for _, c := range s.CopiesFor(key, s.Keys[key].Versions[0], me.key) {
				if bytes.Equal(c.Blob, blob) {
					n++
				}
			}
		})
		return n
	}
	if n := copies(); n != 0 {
		t.Fatalf("CopiesFor before the full copy: %d, want 0", n)
	}
	if v := l.Deliver(full); v != Accept {
		t.Fatalf("Deliver(full copy of event 3) = %v, want accept (its attachment is new)", v)
	}
	if got, err := store.Get(attKey(key, event.DigestOf(blob))); err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("stored copy: %v", err)
	}
	if n := copies(); n != 1 {
		t.Fatalf("CopiesFor after the full copy: %d, want 1", n)
	}
	if v := l.Deliver(full); v != Ignore {
		t.Fatalf("Deliver(full copy again) = %v, want ignore", v)
	}
	page, err := l.Events(IssuerID(owner.n.key), 2, 1)
	if err != nil || len(page) != 1 || !bytes.Equal(advParse(t, page[0]).Attachment(event.DigestOf(blob)), blob) {
		t.Fatalf("Events(after 2) = %d events, %v: want event 3 with its copy", len(page), err)
	}
}

// TestWindowFoldConverges is TestFoldConverges over chains longer than
// their windows: one issuer's chain runs far ahead of the others, and a
// partitioned node's events name its heads from before the partition, so
// events name dependencies that have left the window by the time they are
// judged, and late duplicates land on positions before it. Every order gives the reference state, every chain
// keeps its window only, and a log opened again from its store holds the
// same state.
func TestWindowFoldConverges(t *testing.T) {
	t.Parallel()
	w := newWorld(t, []string{"Org1MSP", "Org2MSP"}, 2)
	r := mrand.New(mrand.NewPCG(7, 8))
	iss := newIssuers(w)
	var evs [][]byte
	for i, n := range w.nodes {
		evs = append(evs, iss[i].event(t, event.KindNodeRecord, w.record(t, n)))
	}
	const key = "trade/k0"
	blob := bytes.Repeat([]byte{0x5A}, 64)
	evs = append(evs, iss[0].event(t, event.KindKeyCreate, event.KeyCreate{Key: key}))
	evs = append(evs, iss[0].event(t, event.KindKeyVersion, event.KeyVersion{Key: key, Version: 1, ActivateAt: w.t0, Check: event.DigestOf([]byte(key)),
		Wraps: []event.Wrap{{Recipient: w.nodes[1].key, Digest: event.DigestOf(blob)}}}, blob))
	for i := range 1000 {
		who := []int{0, 0, 0, 1, 2}[i%5] // node 0 of Org1 runs ahead; node 2 is of Org2
		is := iss[who]
		party := policy.Party(fmt.Sprintf("token:p%d", i%7))
		if i%3 == 2 {
			evs = append(evs, is.event(t, event.KindRevoke, policy.Revocation{ID: IDPrefix(is.n.key) + fmt.Sprintf("r%d", i), Key: key, Party: party, Issuer: "n", IssuedAt: w.t0}))
		} else {
			evs = append(evs, is.event(t, event.KindGrant, policy.Grant{ID: IDPrefix(is.n.key) + fmt.Sprintf("g%d", i), Key: key, Party: party, Ops: policy.OpsAll, Issuer: "n", IssuedAt: w.t0}))
		}
	}
	// A partition: node 2 goes on naming the heads it last saw while the
	// others, who do not see its new events, run on; its events come last,
	// naming positions that are behind node 0's window by then.
	seen := maps.Clone(*iss[2].heads)
	iss[2].heads = &seen
	var late [][]byte
	for i := range 400 {
		if i%10 == 9 {
			late = append(late, iss[2].event(t, event.KindGrant, policy.Grant{ID: IDPrefix(iss[2].n.key) + fmt.Sprintf("late%d", i), Key: key, Party: "token:late", Ops: policy.OpsAll, Issuer: "n", IssuedAt: w.t0}))
			continue
		}
		is := iss[[]int{0, 0, 0, 1}[i%4]]
		evs = append(evs, is.event(t, event.KindGrant, policy.Grant{ID: IDPrefix(is.n.key) + fmt.Sprintf("p%d", i), Key: key, Party: "token:p", Ops: policy.OpsAll, Issuer: "n", IssuedAt: w.t0}))
	}
	evs = append(evs, late...)
	ref := newLog(t, w, 3)
	deliverAll(ref, evs)
	if ref.Height() != len(evs) {
		t.Fatalf("reference log holds %d events, want %d", ref.Height(), len(evs))
	}
	checkWindows(t, ref)
	if ref.chains[w.nodes[0].key].base == 0 {
		t.Fatalf("node 0's chain of %d events has not moved its window", ref.chains[w.nodes[0].key].length())
	}
	want := advCanon(ref)
	for round := range 4 {
		perm := slices.Clone(evs)
		r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		for range 50 {
			perm = append(perm, evs[r.IntN(len(evs))])
		}
		store := kv.NewMem()
		l, err := OpenLog(store, w.g, w.nodes[round].priv, LogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		deliverAll(l, perm)
		if l.Height() != len(evs) {
			t.Fatalf("round %d: %d events held, want %d", round, l.Height(), len(evs))
		}
		checkWindows(t, l)
		if !bytes.Equal(advCanon(l), want) {
			t.Fatalf("round %d: state differs from the reference", round)
		}
		l2, err := OpenLog(store, w.g, w.nodes[round].priv, LogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkWindows(t, l2)
		if !bytes.Equal(advCanon(l2), want) {
			t.Fatalf("round %d: reopened state differs from the reference", round)
		}
	}
}

// TestWindowTamperedStoreNoEvidence: before the window the log holds no id
// of its own for a position, so an equivocation check verifies the event
// the store hands back: an event at that position whose signature does
// not hold (written by whoever could write the store; a node's
// authenticating store would refuse to read it) is no evidence against
// its issuer, and the issuer's own event there is not taken for a fork.
func TestWindowTamperedStoreNoEvidence(t *testing.T) {
	w := newWorld(t, []string{"Org1MSP", "Org2MSP"}, 2)
	a := newIssuers(w)[2]
	raws, _, _ := windowChain(t, w, a, windowLen, 0)
	store := kv.NewMem()
	var reason string
	l := windowLog(t, w, 0, store, LogOptions{OnVerdict: func(_ Verdict, r string) { reason = r }}, raws)
	forged := advParse(t, raws[4])
	forged.Sig[0] ^= 1
	if err := store.Update(func(tx kv.Txn) error { return tx.Set(evKey(a.n.key, 5), forged.Marshal()) }); err != nil {
		t.Fatal(err)
	}
	if v := l.Deliver(raws[4]); v == Accept || reason == ReasonEquivocation {
		t.Fatalf("Deliver(the issuer's own event 5) = %v (%s), want it not taken as equivocation", v, reason)
	}
	if ev := l.chains[a.n.key].evidence; ev != nil {
		t.Fatalf("evidence from an event that does not verify: %+v", ev)
	}
	l.View(func(s *State) {
		if at := s.Nodes[a.n.key].Tainted; at != 0 {
			t.Fatalf("honest issuer tainted at %d", at)
		}
	})
}
