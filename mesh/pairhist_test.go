package mesh

import (
	"fmt"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/kv/badgerstore"
	"github.com/keymesh/keymesh/policy"
)

// BenchmarkPairHistory reports the heap a Log over a badger store (in
// b.TempDir) holds after 1k, 10k and 100k grant/revoke cycles of one
// pair, delivered as another node of the owner org issues them (each
// grant following its chain, so it reaches every earlier revocation),
// in batches of 1,000 (one durable write each):
//
//	B/pair     the log's heap (measured as what a collection frees once
//	           the log is dropped, the store closed first), per pair
//	B/cycle    the same per cycle
//	hdr-B/cycle  of which the log's per-event entries in its chains
//	           (two per cycle: the entry and its slot), which the fold
//	           does not keep for grants and revocations
//	ns/cycle   delivery time of a cycle (signing excluded)
//	refold-ms  a refold of the key (as after a deregistration)
//	reopen-ms  OpenLog of the store (a restart)
func BenchmarkPairHistory(b *testing.B) {
	for _, cycles := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("cycles=%d", cycles), func(b *testing.B) {
			var perPair, perCycle, hdr, ns, refold, reopen float64
			for b.Loop() {
				w := newWorld(b, []string{"Org1MSP"}, 2)
				iss := newIssuers(w)
				a := iss[1]
				var evs [][]byte
				for i, n := range w.nodes {
					evs = append(evs, iss[i].event(b, event.KindNodeRecord, w.record(b, n)))
				}
				const key, party = "pair/k", policy.Party("token:p")
				evs = append(evs, a.event(b, event.KindKeyCreate, event.KeyCreate{Key: key}))
				for i := range cycles {
					evs = append(evs, a.event(b, event.KindGrant, policy.Grant{ID: fmt.Sprintf("%sg%d", IDPrefix(a.n.key), i), Key: key,
						Party: party, Ops: policy.OpsOf(policy.OpDecrypt), Custodian: "Org1MSP", Issuer: "token:admin", IssuedAt: w.t0}))
					evs = append(evs, a.event(b, event.KindRevoke, policy.Revocation{ID: fmt.Sprintf("%sr%d", IDPrefix(a.n.key), i), Key: key,
						Party: party, Issuer: "token:admin", IssuedAt: w.t0}))
				}
				store, err := badgerstore.Open(b.TempDir(), nil)
				if err != nil {
					b.Fatal(err)
				}
				l, err := OpenLog(store, w.g, w.nodes[0].priv, LogOptions{})
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				for len(evs) > 0 {
					n := min(len(evs), 1000)
					for i, v := range l.DeliverBatch(evs[:n]) {
						if v != Accept {
							b.Fatalf("event %d: %v", i, v)
						}
					}
					evs = evs[n:]
				}
				ns = float64(time.Since(start).Nanoseconds()) / float64(cycles)
				p := policy.Principal{Parties: []policy.Party{party}}
				if d := l.Policy().Decide(p, key, policy.OpDecrypt, w.t0); d.Allowed || d.Reason != policy.ReasonRevoked {
					b.Fatalf("Decide = %+v, want revoked", d)
				}
				l.mu.Lock()
				start = time.Now()
				l.state.refoldPolicy(l.state.Keys[key])
				refold = float64(time.Since(start).Microseconds()) / 1000
				l.mu.Unlock()
				if d := l.Policy().Decide(p, key, policy.OpDecrypt, w.t0); d.Allowed || d.Reason != policy.ReasonRevoked {
					b.Fatalf("Decide after a refold = %+v, want revoked", d)
				}
				start = time.Now()
				l2, err := OpenLog(store, w.g, w.nodes[0].priv, LogOptions{})
				if err != nil {
					b.Fatal(err)
				}
				reopen = float64(time.Since(start).Microseconds()) / 1000
				if d := l2.Policy().Decide(p, key, policy.OpDecrypt, w.t0); d.Allowed || d.Reason != policy.ReasonRevoked {
					b.Fatalf("Decide after a restart = %+v, want revoked", d)
				}
				// Closed, the store does no background work between the
				// two measurements; it stays reachable in both.
				if err := store.Close(); err != nil {
					b.Fatal(err)
				}
				with := liveHeap()
				runtime.KeepAlive(l)
				l = nil
				without := liveHeap()
				runtime.KeepAlive(store)
				perPair = float64(int64(with) - int64(without))
				perCycle = perPair / float64(cycles)
				hdr = 2 * float64(sizeClass(unsafe.Sizeof(entry{}))+unsafe.Sizeof(&entry{}))
			}
			b.ReportMetric(perPair, "B/pair")
			b.ReportMetric(perCycle, "B/cycle")
			b.ReportMetric(hdr, "hdr-B/cycle")
			b.ReportMetric(ns, "ns/cycle")
			b.ReportMetric(refold, "refold-ms")
			b.ReportMetric(reopen, "reopen-ms")
		})
	}
}

// sizeClass rounds n up to the Go allocator's size class (those up to
// 512 bytes, which an entry is).
func sizeClass(n uintptr) uintptr {
	for _, c := range []uintptr{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320, 352, 384, 416, 448, 480, 512} {
		if n <= c {
			return c
		}
	}
	return n
}
