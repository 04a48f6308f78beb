package mesh

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/policy"
)

// TestLiveGrantKeepsNoEntry: a grant in force keeps its causal reach in
// the policy state, and that reach must not keep the grant's log entry
// alive once the event has left its chain's window: it did (reachOf
// captured a pointer into the entry), ~190 bytes per live grant, 19 MB on
// a node with 100k grants on one key.
func TestLiveGrantKeepsNoEntry(t *testing.T) {
	w := newWorld(t, []string{"Org1MSP"}, 1)
	is := newIssuers(w)[0]
	pre := IDPrefix(is.n.key)
	grant := func(i int) []byte {
		return is.event(t, event.KindGrant, policy.Grant{ID: pre + fmt.Sprintf("g%d", i), Key: "trade/k",
			Party: policy.Party(fmt.Sprintf("token:p%d", i)), Ops: policy.OpsAll, Issuer: "test", IssuedAt: w.t0})
	}
	evs := [][]byte{
		is.event(t, event.KindNodeRecord, w.record(t, is.n)),
		is.event(t, event.KindKeyCreate, event.KeyCreate{Key: "trade/k"}),
		grant(0), // seq 3
	}
	for i := 1; i <= 4*chainWindow; i++ {
		evs = append(evs, grant(i))
	}
	// The grant is loaded by OpenLog (as a node's grants are at every
	// start), so the entry the fold applied is the one in the chain.
	store := kv.NewMem()
	first, err := OpenLog(store, w.g, w.nodes[0].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deliverAll(first, evs[:3])
	l, err := OpenLog(store, w.g, w.nodes[0].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var freed atomic.Bool
	l.mu.Lock()
	e := l.chains[is.n.key].recent(3)
	l.mu.Unlock()
	if e == nil || e.ev.Kind != event.KindGrant {
		t.Fatalf("entry at seq 3 = %+v, want the grant", e)
	}
	runtime.AddCleanup(e, func(f *atomic.Bool) { f.Store(true) }, &freed)
	e = nil
	deliverAll(l, evs[3:])
	if h := l.Height(); h != len(evs) {
		t.Fatalf("height %d, want %d", h, len(evs))
	}
	if d := l.Policy().Decide(policy.Principal{Parties: []policy.Party{"token:p0"}}, "trade/k", policy.OpEncrypt, w.t0.Add(time.Minute)); !d.Allowed {
		t.Fatalf("grant g0 is not in force: %+v", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !freed.Load() && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(time.Millisecond) // cleanups run on their own goroutine
	}
	runtime.KeepAlive(l) // the log, its fold and the grant's reach stay live
	if !freed.Load() {
		t.Fatal("the entry of a grant in force is still reachable after its event left its chain's window")
	}
}
