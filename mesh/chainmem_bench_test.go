package mesh

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/kv/badgerstore"
	"github.com/keymesh/keymesh/policy"
)

// soakEvents signs a grant/revoke soak of n events by one issuer (node 0 of
// w, of the org that owns "trade/"): its record, 16 keys, then grants and
// revocations alternating over 16 key and party pairs, as scripts/soak.sh
// drives a node.
func soakEvents(b *testing.B, w *world, n int) [][]byte {
	is := newIssuers(w)[0]
	out := [][]byte{is.event(b, event.KindNodeRecord, w.record(b, is.n))}
	for k := range 16 {
		out = append(out, is.event(b, event.KindKeyCreate, event.KeyCreate{Key: fmt.Sprintf("trade/soak%d", k)}))
	}
	pre := IDPrefix(is.n.key)
	for i := 0; len(out) < n; i++ {
		key, party := fmt.Sprintf("trade/soak%d", i%16), policy.Party(fmt.Sprintf("token:p%d", i%16))
		if i/16%2 == 0 {
			out = append(out, is.event(b, event.KindGrant, policy.Grant{ID: pre + fmt.Sprintf("g%d", i), Key: key, Party: party, Ops: policy.OpsAll, Issuer: "soak", IssuedAt: w.t0}))
		} else {
			out = append(out, is.event(b, event.KindRevoke, policy.Revocation{ID: pre + fmt.Sprintf("r%d", i), Key: key, Party: party, Issuer: "soak", IssuedAt: w.t0}))
		}
	}
	return out
}

// liveHeap is the live heap after two collections.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// chainHeap drops l's state, then its chains, and returns the live heap
// that went with the chains: what they keep alive on their own. l is of no
// use afterwards.
func chainHeap(l *Log) int64 {
	l.state = nil
	with := liveHeap()
	l.chains = nil
	none := liveHeap()
	runtime.KeepAlive(l) // the rest of the log is not counted
	return int64(with) - int64(none)
}

// stateHeap is chainHeap for the state: it drops l's chains, then its
// state.
func stateHeap(l *Log) int64 {
	l.chains = nil
	with := liveHeap()
	l.state = nil
	none := liveHeap()
	runtime.KeepAlive(l)
	return int64(with) - int64(none)
}

// BenchmarkChainMemory measures, on a log with a badger store, the live
// heap the chain of one issuer keeps after 1k, 10k and 100k admitted
// events of a grant/revoke soak (chain_B: what the chains alone keep
// alive, with every entry they reference; chain_B_reopened: the same for
// the log opened again from the store; state_B: what the fold's state
// keeps alive on its own, on the reopened log), the admission rate (batches of
// 1,000, one durable write each) and the cost of anti-entropy answers over
// the whole chain (Events pages of 1,000) and over its last 1,000 events.
// Run it with -benchtime=1x: each size runs once whatever b.N is.
func BenchmarkChainMemory(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			w := newWorld(b, []string{"Org1MSP", "Org2MSP"}, 2)
			evs := soakEvents(b, w, n)
			db, err := badgerstore.Open(b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			l, err := OpenLog(db, w.g, w.nodes[1].priv, LogOptions{})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < len(evs); i += 1000 {
				l.DeliverBatch(evs[i:min(i+1000, len(evs))])
			}
			admit := time.Since(start)
			b.StopTimer()
			if l.Height() != n {
				b.Fatalf("Height() = %d, want %d", l.Height(), n)
			}
			issuer := IssuerID(w.nodes[0].key)
			start = time.Now()
			got := 0
			for after := uint64(0); ; {
				raws, err := l.Events(issuer, after, 1000)
				if err != nil {
					b.Fatal(err)
				}
				if len(raws) == 0 {
					break
				}
				got += len(raws)
				after += uint64(len(raws))
			}
			whole := time.Since(start)
			if got != n {
				b.Fatalf("Events over the chain = %d events, want %d", got, n)
			}
			start = time.Now()
			if raws, err := l.Events(issuer, uint64(n-1000), 1000); err != nil || len(raws) != 1000 {
				b.Fatalf("Events(last 1000) = %d, %v", len(raws), err)
			}
			recent := time.Since(start)
			chains := chainHeap(l)
			l = nil
			start = time.Now()
			l2, err := OpenLog(db, w.g, w.nodes[1].priv, LogOptions{})
			if err != nil {
				b.Fatal(err)
			}
			open := time.Since(start)
			chains2 := chainHeap(l2)
			l2 = nil
			l3, err := OpenLog(db, w.g, w.nodes[1].priv, LogOptions{})
			if err != nil {
				b.Fatal(err)
			}
			state := stateHeap(l3)
			b.ReportMetric(float64(chains), "chain_B")
			b.ReportMetric(float64(chains)/float64(n), "chain_B/event")
			b.ReportMetric(float64(state), "state_B")
			b.ReportMetric(float64(chains2), "chain_B_reopened")
			b.ReportMetric(float64(n)/admit.Seconds(), "admitted/s")
			b.ReportMetric(float64(whole.Microseconds())/float64(n), "events_µs/event")
			b.ReportMetric(float64(recent.Microseconds())/1000, "recent_µs/event")
			b.ReportMetric(open.Seconds(), "open_s")
		})
	}
}
