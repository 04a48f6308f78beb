package mesh

import (
	"bytes"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/policy"
)

// TestRefoldReadsDroppedPayloads: a stored grant's payload lives in the
// store, not in memory, yet a refold of its key (here after another node of
// the owner org that touched the key is deregistered) still sees its
// Observed set: the grant that observed the revocation stays in force, in a
// running log and in one reopened from the store; and anti-entropy answers
// carry the whole events.
func TestRefoldReadsDroppedPayloads(t *testing.T) {
	w := newWorld(t, []string{"Org1MSP", "Org2MSP"}, 2)
	iss := newIssuers(w)
	a, b := iss[0], iss[1] // both of Org1, which owns trade/
	var evs [][]byte
	for i, n := range w.nodes {
		evs = append(evs, iss[i].event(t, event.KindNodeRecord, w.record(t, n)))
	}
	const key, party = "trade/k", policy.Party("token:p")
	evs = append(evs, a.event(t, event.KindKeyCreate, event.KeyCreate{Key: key}))
	evs = append(evs, b.event(t, event.KindGrant, policy.Grant{ID: IDPrefix(b.n.key) + "g0", Key: key, Party: "token:other", Ops: policy.OpsAll, Issuer: "b", IssuedAt: w.t0}))
	r1 := IDPrefix(a.n.key) + "r1"
	evs = append(evs, a.event(t, event.KindRevoke, policy.Revocation{ID: r1, Key: key, Party: party, Issuer: "a", IssuedAt: w.t0}))
	evs = append(evs, a.event(t, event.KindGrant, policy.Grant{ID: IDPrefix(a.n.key) + "g1", Key: key, Party: party, Ops: policy.OpsAll, Issuer: "a", IssuedAt: w.t0, Observed: []string{r1}}))
	d, err := network.SignDeregister(w.admins["Org1MSP"], w.g.ID(), network.Deregister{Org: "Org1MSP", SignKey: b.n.key, LastSeq: 1, At: w.t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	evs = append(evs, a.event(t, event.KindDeregister, d))

	l := newLog(t, w, 2)
	deliverAll(l, evs)
	if l.Height() != len(evs) {
		t.Fatalf("Height() = %d, want %d", l.Height(), len(evs))
	}
	p := policy.Principal{Parties: []policy.Party{party}}
	at := w.t0.Add(2 * time.Hour)
	check := func(l *Log, what string) {
		t.Helper()
		if d := l.Policy().Decide(p, key, policy.OpDecrypt, at); !d.Allowed {
			t.Fatalf("%s: Decide = %+v, want allowed by the grant that observed %s", what, d, r1)
		}
		if d := l.Policy().Decide(policy.Principal{Parties: []policy.Party{"token:other"}}, key, policy.OpDecrypt, at); d.Allowed {
			t.Fatalf("%s: the deregistered node's grant after its cut still counts: %+v", what, d)
		}
	}
	check(l, "running log")
	c := l.chains[a.n.key]
	for _, e := range c.events {
		if e.ev.Kind == event.KindGrant && (!e.stored || e.full != nil || e.payload != nil) {
			t.Fatalf("stored grant %d keeps its payload in memory", e.ev.Seq)
		}
	}
	raws, err := l.Events(IssuerID(a.n.key), 0, 100)
	if err != nil || len(raws) != len(c.events) {
		t.Fatalf("Events = %d, %v, want %d events", len(raws), err, len(c.events))
	}
	for i, raw := range raws {
		ev, err := event.Parse(raw)
		if err != nil || ev.ID() != c.events[i].id {
			t.Fatalf("Events()[%d] is not the stored event: %v", i, err)
		}
	}
	l2, err := OpenLog(l.store, w.g, w.nodes[2].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check(l2, "reopened log")
	l2.mu.Lock()
	l2.state.refoldIssuer(b.n.key)
	l2.mu.Unlock()
	check(l2, "reopened log, refolded")
}

// failingReads is a store whose reads fail while fail is set: every read,
// or only those of key only.
type failingReads struct {
	kv.Store
	fail atomic.Bool
	only []byte
}

var errRead = errors.New("injected read failure")

func (f *failingReads) Get(key []byte) ([]byte, error) {
	if f.fail.Load() && (f.only == nil || bytes.Equal(key, f.only)) {
		return nil, errRead
	}
	return f.Store.Get(key)
}

// TestReadBackStoreErrors: what the log reads back from the store
// (anti-entropy answers, a version's wrapped copies, a refold's grants, an
// equivocation check) fails cleanly while the store's reads fail, with the
// cause wrapped, and works again once they do not.
func TestReadBackStoreErrors(t *testing.T) {
	w := newWorld(t, []string{"Org1MSP"}, 3)
	iss := newIssuers(w)
	a := iss[0]
	var evs [][]byte
	for i, n := range w.nodes {
		evs = append(evs, iss[i].event(t, event.KindNodeRecord, w.record(t, n)))
	}
	const key, party = "gdpr/k", policy.Party("token:p")
	blob := bytes.Repeat([]byte{0xCD}, 1208)
	evs = append(evs, a.event(t, event.KindKeyCreate, event.KeyCreate{Key: key}))
	evs = append(evs, a.event(t, event.KindKeyVersion, event.KeyVersion{Key: key, Version: 1, ActivateAt: w.t0, Check: event.DigestOf([]byte("c")),
		Wraps: []event.Wrap{{Recipient: w.nodes[2].key, Digest: event.DigestOf(blob)}}}, blob))
	evs = append(evs, a.event(t, event.KindGrant, policy.Grant{ID: IDPrefix(a.n.key) + "g1", Key: key, Party: party, Ops: policy.OpsAll, Issuer: "a", IssuedAt: w.t0}))
	const revoked = policy.Party("token:q")
	evs = append(evs, a.event(t, event.KindGrant, policy.Grant{ID: IDPrefix(a.n.key) + "g2", Key: key, Party: revoked, Ops: policy.OpsAll, Issuer: "a", IssuedAt: w.t0}))
	evs = append(evs, a.event(t, event.KindRevoke, policy.Revocation{ID: IDPrefix(a.n.key) + "r2", Key: key, Party: revoked, Issuer: "a", IssuedAt: w.t0}))
	store := &failingReads{Store: kv.NewMem()}
	l, err := OpenLog(store, w.g, w.nodes[2].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deliverAll(l, evs)
	if l.Height() != len(evs) {
		t.Fatalf("Height() = %d, want %d", l.Height(), len(evs))
	}
	p := policy.Principal{Parties: []policy.Party{party}}
	at := w.t0.Add(time.Hour)
	copies := func() (blobs int, dirty bool) {
		l.View(func(s *State) {
			s.TakeDirty()
			for _, c := range s.CopiesFor(key, s.Keys[key].Versions[0], w.nodes[2].key) {
				if c.Blob != nil {
					if !bytes.Equal(c.Blob, blob) {
						t.Errorf("CopiesFor: blob %x…, want %x…", c.Blob[:4], blob[:4])
					}
					blobs++
				}
			}
			names, _ := s.TakeDirty()
			dirty = slices.Contains(names, key)
		})
		return blobs, dirty
	}
	if n, dirty := copies(); n != 1 || dirty {
		t.Fatalf("CopiesFor: %d blobs (dirty %v), want 1", n, dirty)
	}

	// A refold that cannot read the revocation back must not let the
	// revoked grant count again: its pair is suspended (denied) until a
	// refold reads it; the key's other pairs are decided as before.
	q := policy.Principal{Parties: []policy.Party{revoked}}
	store.only = evKey(a.n.key, 6)
	store.fail.Store(true)
	l.mu.Lock()
	l.state.refoldIssuer(a.n.key)
	l.mu.Unlock()
	if d := l.Policy().Decide(q, key, policy.OpDecrypt, at); d.Allowed || d.Reason != policy.ReasonUnreadable {
		t.Errorf("a refold that could not read the revocation back: Decide = %+v, want denied %q", d, policy.ReasonUnreadable)
	}
	if d := l.Policy().Decide(p, key, policy.OpDecrypt, at); !d.Allowed {
		t.Errorf("a grant readable back does not count: %+v", d)
	}
	store.only = nil
	if _, err := l.Events(IssuerID(a.n.key), 0, 100); !errors.Is(err, errRead) {
		t.Errorf("Events with failing reads: %v, want %v wrapped", err, errRead)
	}
	if n, dirty := copies(); n != 0 || !dirty {
		t.Errorf("CopiesFor with failing reads: %d blobs, key dirty %v; want none, dirty (asked again)", n, dirty)
	}
	// A refold of the key reads its grant back and cannot: the grant does
	// not count meanwhile (never a panic), and counts again at the next
	// refold that can read it.
	l.mu.Lock()
	l.state.refoldIssuer(a.n.key)
	l.mu.Unlock()
	if d := l.Policy().Decide(p, key, policy.OpDecrypt, at); d.Allowed {
		t.Errorf("a grant that could not be read back counts: %+v", d)
	}
	// An equivocation check reads the held event back: while it cannot,
	// a second event at a's position 2 is refused without evidence.
	iss2 := newIssuers(w)
	iss2[0].event(t, event.KindNodeRecord, w.record(t, w.nodes[0])) // the one held
	fork := iss2[0].event(t, event.KindKeyCreate, event.KeyCreate{Key: "gdpr/other"})
	if v := l.Deliver(fork); v != Ignore {
		t.Errorf("Deliver(fork) with failing reads = %v, want ignore", v)
	}
	tainted := func() uint64 {
		var at uint64
		l.View(func(s *State) { at = s.Nodes[a.n.key].Tainted })
		return at
	}
	if at := tainted(); at != 0 {
		t.Errorf("tainted at %d without evidence", at)
	}
	store.fail.Store(false)
	l.mu.Lock()
	l.state.refoldIssuer(a.n.key)
	l.mu.Unlock()
	if d := l.Policy().Decide(p, key, policy.OpDecrypt, at); !d.Allowed {
		t.Errorf("after the store recovers, Decide = %+v, want allowed", d)
	}
	if d := l.Policy().Decide(q, key, policy.OpDecrypt, at); d.Allowed {
		t.Errorf("after the store recovers, the revoked grant counts: %+v", d)
	}
	if n, _ := copies(); n != 1 {
		t.Errorf("after the store recovers, CopiesFor: %d blobs, want 1", n)
	}
	raws, err := l.Events(IssuerID(a.n.key), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := event.Parse(raws[2])
	if err != nil || !bytes.Equal(ev.Attachment(event.DigestOf(blob)), blob) {
		t.Errorf("Events()[2] = %v, %v: want the KeyVersion with its attachment", ev, err)
	}
	if v := l.Deliver(fork); v != Accept || tainted() != 2 {
		t.Errorf("Deliver(fork) = %v, tainted at %d; want the evidence accepted, tainted at 2", v, tainted())
	}
}
