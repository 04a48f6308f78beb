package mesh

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/kv"
)

// keyEvents signs, by node 0 of w (of the org that owns "trade/"), its
// record, the records of the other nodes, then n keys, each a KeyCreate
// and a KeyVersion wrapped for 1, 2 or 3 of w's nodes in turn (their
// attachments 64 bytes each): what most of a node's key-holding log is.
func keyEvents(b *testing.B, w *world, n int) [][]byte {
	iss := newIssuers(w)
	var out [][]byte
	for i, nd := range w.nodes {
		out = append(out, iss[i].event(b, event.KindNodeRecord, w.record(b, nd)))
	}
	owner := iss[0]
	for k := range n {
		name := fmt.Sprintf("trade/mem%d", k)
		out = append(out, owner.event(b, event.KindKeyCreate, event.KeyCreate{Key: name}))
		var wraps []event.Wrap
		var blobs [][]byte
		for r := range k%3 + 1 {
			blob := fmt.Appendf(make([]byte, 0, 64), "%064d", k*3+r)
			blobs = append(blobs, blob)
			wraps = append(wraps, event.Wrap{Recipient: w.nodes[r].key, Digest: event.DigestOf(blob)})
		}
		out = append(out, owner.event(b, event.KindKeyVersion, event.KeyVersion{Key: name, Version: 1, ActivateAt: w.t0,
			Check: event.DigestOf([]byte(name)), Wraps: wraps}, blobs...))
	}
	return out
}

// BenchmarkKeyMemory measures the live heap the fold's state keeps per
// key (state_B/key: stateHeap over the number of keys) on a log of n keys
// (keyEvents: one version each, copied for 1 to 3 recipients), opened
// again from its store as a node starts; the chains are not counted
// (BenchmarkChainMemory measures them). Run it with -benchtime=1x: each
// size runs once whatever b.N is. With KEYMESH_BENCH_HEAP=prefix it
// writes the heap profile of each size to prefix-n.pb.gz, the state
// still live (go tool pprof -sample_index=inuse_space -top). The figures depend on the Go runtime
// and the layout of the fold's types, not on the machine.
func BenchmarkKeyMemory(b *testing.B) {
	if os.Getenv("KEYMESH_BENCH_HEAP") != "" {
		defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
		runtime.MemProfileRate = 1 << 10 // a profile to read per key
	}
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			w := newWorld(b, []string{"Org1MSP", "Org2MSP"}, 3)
			evs := keyEvents(b, w, n)
			store := kv.NewMem()
			l, err := OpenLog(store, w.g, w.nodes[1].priv, LogOptions{})
			if err != nil {
				b.Fatal(err)
			}
			deliverBatches(b, l, evs, 1000)
			l = nil
			b.ResetTimer()
			l2, err := OpenLog(store, w.g, w.nodes[1].priv, LogOptions{})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			keys := 0
			l2.View(func(s *State) { keys = len(s.Keys) })
			if keys != n {
				b.Fatalf("reopened log holds %d keys, want %d", keys, n)
			}
			if prefix := os.Getenv("KEYMESH_BENCH_HEAP"); prefix != "" {
				writeHeapProfile(b, fmt.Sprintf("%s-%d.pb.gz", prefix, n))
			}
			state := stateHeap(l2)
			b.ReportMetric(float64(state)/float64(n), "state_B/key")
			b.ReportMetric(float64(state), "state_B")
		})
	}
}

// writeHeapProfile writes the heap profile after a collection to path.
func writeHeapProfile(b *testing.B, path string) {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}
