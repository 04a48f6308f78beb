package mesh

import (
	"bytes"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/policy"
)

// countingStore counts the reads of store keys under prefix.
type countingStore struct {
	kv.Store
	prefix []byte
	gets   atomic.Int64
}

func (c *countingStore) Get(key []byte) ([]byte, error) {
	if bytes.HasPrefix(key, c.prefix) {
		c.gets.Add(1)
	}
	return c.Store.Get(key)
}

// cycleEvents returns node records for w's nodes, a key of iss[1]'s org,
// and n grant/revoke cycles of (key, party) by iss[1].
func cycleEvents(t testing.TB, w *world, iss []*issuer, key string, party policy.Party, n int) [][]byte {
	var evs [][]byte
	for i, nd := range w.nodes {
		evs = append(evs, iss[i].event(t, event.KindNodeRecord, w.record(t, nd)))
	}
	a := iss[1]
	evs = append(evs, a.event(t, event.KindKeyCreate, event.KeyCreate{Key: key}))
	for i := range n {
		evs = append(evs, a.event(t, event.KindGrant, policy.Grant{ID: fmt.Sprintf("%sg%d", IDPrefix(a.n.key), i), Key: key, Party: party,
			Ops: policy.OpsOf(policy.OpDecrypt), Issuer: "a", IssuedAt: w.t0.Add(time.Duration(i) * time.Second)}))
		evs = append(evs, a.event(t, event.KindRevoke, policy.Revocation{ID: fmt.Sprintf("%sr%d", IDPrefix(a.n.key), i), Key: key, Party: party,
			Issuer: "a", IssuedAt: w.t0}))
	}
	return evs
}

// TestAdversaryReusesIDOfEndedGrant: a node of the owner org reuses the
// ID of one of its grants that a revocation ended — so the policy state
// holds it only in its archive, on disk — for a grant of more operations
// that follows the revocation (and so would be in force). The reuse is a
// conflict: it has no effect, the state is that of the log without it,
// the check read the store, and the same holds after a restart and after
// a refold of the key.
func TestAdversaryReusesIDOfEndedGrant(t *testing.T) {
	w := newWorld(t, []string{"Org1MSP"}, 2)
	iss := newIssuers(w)
	const key, party = "trade/k", policy.Party("token:p")
	evs := cycleEvents(t, w, iss, key, party, 3)
	a := iss[1]
	reused := a.event(t, event.KindGrant, policy.Grant{ID: IDPrefix(a.n.key) + "g1", Key: key, Party: party,
		Ops: policy.OpsAll, Issuer: "a", IssuedAt: w.t0})

	store := &countingStore{Store: kv.NewMem(), prefix: polArchPrefix}
	l, err := OpenLog(store, w.g, w.nodes[0].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deliverAll(l, evs)
	var want []byte
	l.View(func(s *State) {
		want = s.Canonical()
		if err := s.pol.flush(); err != nil { // the ended grant leaves the buffer too: only the store holds it
			t.Fatal(err)
		}
	})
	store.gets.Store(0)
	if v := l.Deliver(reused); v != Accept {
		t.Fatalf("Deliver(reused) = %v, want accept (admission does not judge ids)", v)
	}
	p := policy.Principal{Parties: []policy.Party{party}}
	check := func(l *Log, what string) {
		t.Helper()
		if d := l.Policy().Decide(p, key, policy.OpEncrypt, w.t0.Add(time.Hour)); d.Allowed {
			t.Fatalf("%s: the grant reusing an ended grant's id is in force: %+v", what, d)
		}
		if st, ok := l.Policy().StatusAt(key, IDPrefix(a.n.key)+"g1", w.t0); !ok || st.InForce || st.Grant.Ops != policy.OpsOf(policy.OpDecrypt) {
			t.Fatalf("%s: StatusAt(g1) = %+v, %v, want the first use, revoked", what, st, ok)
		}
		var got []byte
		var conflicts int
		l.View(func(s *State) { got, conflicts = s.Canonical(), s.Dropped[DropConflict] })
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: the reuse changed the state", what)
		}
		if conflicts == 0 {
			t.Fatalf("%s: the reuse is not counted as a conflict", what)
		}
	}
	check(l, "running log")
	if store.gets.Load() == 0 {
		t.Fatalf("the conflict check did not read the archive in the store")
	}
	l2, err := OpenLog(store, w.g, w.nodes[0].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check(l2, "reopened log")
	l2.mu.Lock()
	l2.state.refoldIssuer(a.n.key)
	l2.mu.Unlock()
	check(l2, "refolded")
}

// TestRefoldReadsPolicyHistoryBack: a key's grants and revocations live
// in the store, not in the fold's memory (revocation entries keep no
// payload); a refold of the key after a deregistration reads them back
// and gives the state of a fresh fold; listings and pages show the ended
// grants read back; and a restart rebuilds the history, forgetting
// records the store holds from before (a crash between flushes).
func TestRefoldReadsPolicyHistoryBack(t *testing.T) {
	w := newWorld(t, []string{"Org1MSP"}, 3)
	iss := newIssuers(w)
	const key, party = "trade/k", policy.Party("token:p")
	evs := cycleEvents(t, w, iss, key, party, 40)
	a, b := iss[1], iss[2]
	last := IDPrefix(a.n.key) + "glast"
	evs = append(evs, a.event(t, event.KindGrant, policy.Grant{ID: last, Key: key, Party: party,
		Ops: policy.OpsOf(policy.OpDecrypt), Issuer: "a", IssuedAt: w.t0.Add(time.Hour)}))
	evs = append(evs, b.event(t, event.KindGrant, policy.Grant{ID: IDPrefix(b.n.key) + "gb", Key: key, Party: "token:other",
		Ops: policy.OpsAll, Issuer: "b", IssuedAt: w.t0}))
	evs = append(evs, b.event(t, event.KindRevoke, policy.Revocation{ID: IDPrefix(b.n.key) + "rb", Key: key, Party: party,
		Issuer: "b", IssuedAt: w.t0}))
	d, err := network.SignDeregister(w.admins["Org1MSP"], w.g.ID(), network.Deregister{Org: "Org1MSP", SignKey: b.n.key, LastSeq: 1, At: w.t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	dereg := iss[0].event(t, event.KindDeregister, d)

	store := kv.NewMem()
	l, err := OpenLog(store, w.g, w.nodes[0].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deliverAll(l, evs)
	for _, c := range l.chains {
		for _, e := range c.events {
			if (e.ev.Kind == event.KindGrant || e.ev.Kind == event.KindRevoke) && e.payload != nil {
				t.Fatalf("stored %v %d keeps its payload in memory", e.ev.Kind, e.ev.Seq)
			}
		}
	}
	p := policy.Principal{Parties: []policy.Party{party}}
	at := w.t0.Add(2 * time.Hour)
	if d := l.Policy().Decide(p, key, policy.OpDecrypt, at); d.Allowed {
		t.Fatalf("before the cut, b's revocation does not end %s: %+v", last, d)
	}
	deliverAll(l, [][]byte{dereg}) // refolds the key: b's grant and revocation no longer count
	if d := l.Policy().Decide(p, key, policy.OpDecrypt, at); !d.Allowed || d.GrantID != last {
		t.Fatalf("after the cut, Decide = %+v, want allowed by %s", d, last)
	}
	if l.Height() != len(evs)+1 {
		t.Fatalf("Height() = %d, want %d", l.Height(), len(evs)+1)
	}
	got := advCanon(l)
	l2, err := OpenLog(store, w.g, w.nodes[0].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, advCanon(l2)) {
		t.Fatalf("the refolded state differs from a fresh fold of the same events")
	}
	if d := l.Policy().Decide(policy.Principal{Parties: []policy.Party{"token:other"}}, key, policy.OpDecrypt, w.t0.Add(2*time.Hour)); d.Allowed {
		t.Fatalf("the deregistered node's grant after its cut counts: %+v", d)
	}
	sts := l.Policy().GrantsAt(key, w.t0)
	if len(sts) != 41 {
		t.Fatalf("GrantsAt lists %d grants, want 41 (a's, not b's after its cut)", len(sts))
	}
	var paged []policy.Status
	for after := (policy.GrantCursor{}); ; {
		page, next, err := l.Policy().GrantsAtPage(key, w.t0, after, 7)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, page...)
		if next == (policy.GrantCursor{}) {
			break
		}
		after = next
	}
	if fmt.Sprint(paged) != fmt.Sprint(sts) {
		t.Fatalf("pages differ from the listing")
	}

	// A record the store kept from before a crash (never flushed away)
	// is gone after a restart.
	var ghost []byte
	l.View(func(s *State) { ghost, _ = polArchive{s.pol}.name([]byte(key + "\x00gghost")) })
	if err := store.Update(func(tx kv.Txn) error { return tx.Set(ghost, []byte{1, 0}) }); err != nil {
		t.Fatal(err)
	}
	l3, err := OpenLog(store, w.g, w.nodes[0].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(advCanon(l3), got) || strings.Contains(fmt.Sprint(l3.Policy().Grants(key)), "ghost") {
		t.Fatalf("a restart keeps a stale policy history record")
	}
	if _, err := store.Get(ghost); err == nil {
		t.Fatalf("OpenLog left the stale record in the store")
	}
}

// TestPolicyHistoryReadsBesideFlushes: listings read the policy history
// without the log's lock while deliveries write it and flush it to the
// store; every page reads back (no error, nothing lost: a listing never
// shrinks), and the end state is a fresh fold's. Run it with -race.
func TestPolicyHistoryReadsBesideFlushes(t *testing.T) {
	w := newWorld(t, []string{"Org1MSP"}, 2)
	iss := newIssuers(w)
	const key, party = "trade/k", policy.Party("token:p")
	evs := cycleEvents(t, w, iss, key, party, 1500) // ~6k history writes: a flush
	store := kv.NewMem()
	l, err := OpenLog(store, w.g, w.nodes[0].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		seen := 0
		for {
			select {
			case <-done:
				return
			default:
			}
			n := 0
			for after := (policy.GrantCursor{}); ; {
				page, next, err := l.Policy().GrantsAtPage(key, w.t0, after, 500)
				if err != nil {
					errs <- err
					return
				}
				n += len(page)
				if next == (policy.GrantCursor{}) {
					break
				}
				after = next
			}
			if n < seen {
				errs <- fmt.Errorf("a listing of %d grants after one of %d", n, seen)
				return
			}
			seen = n
			time.Sleep(time.Millisecond)
		}
	}()
	for len(evs) > 0 {
		n := min(len(evs), 200)
		l.DeliverBatch(evs[:n])
		evs = evs[n:]
	}
	close(done)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if got := len(l.Policy().Grants(key)); got != 1500 {
		t.Fatalf("Grants lists %d, want 1500", got)
	}
	a := advCanon(l)
	l2, err := OpenLog(store, w.g, w.nodes[0].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, advCanon(l2)) {
		t.Fatalf("the state differs from a fresh fold of the same events")
	}
}
