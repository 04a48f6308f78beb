package main

import (
	"crypto/ed25519"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/mesh"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault"
)

// measureScale grows the log of a 2-node mesh (Org1 writes bench/…, Org2
// bench2/…) with grants to token: parties spread over keys keys, and at
// each size in sizes (events in the log, both nodes') prints:
//
//   - grant_rate: grants/s issued by Org1 over the segment that led to the
//     size (Member.Grant: sign, store, fold, reconcile), and the p50/p99 of
//     one Member.Grant over the segment's last 1,000;
//   - prop_p50/p99: from Member.Grant at Org1 until Org2's fold holds it,
//     over 50 grants at that size;
//   - two_writers: grants/s of each node while both issue 500 at once;
//   - catchup_10k: an observer log (a third node's, on its own store) that
//     followed the mesh until 10,000 events before the size pulls the
//     missing events from both nodes in batches of 1,000 (what
//     anti-entropy does, without the network and without a member's
//     reconciliation);
//   - restart: reopening Org1's log from its store;
//   - heap: the live heap of the whole process after a collection, and per
//     event (two logs and their folds, the observer's log, three vaults);
//   - store: the bytes of keys and values in the three in-memory stores
//     (kv.Mem), which a node holds on disk, counted in the heap above; and
//     the heap without them, per event (what the logs, folds and vaults
//     hold in memory, with kv.Mem's own per-record overhead).
//
// Each figure is followed by its growth exponent b against the previous
// size (figure ∝ size^b; 0 is flat, 1 linear).
func measureScale(sizes []int, keys int) {
	start := time.Now()
	s := build(2)
	fmt.Printf("# 2-node mesh formed in %s; grants spread over %d keys\n", time.Since(start).Round(time.Millisecond), keys)
	a, b := s.nodes[0], s.nodes[1]
	for i := range keys {
		if _, err := a.m.CreateKey(fmt.Sprintf("bench/s%d", i), vault.CreateOptions{}); err != nil {
			fatalf("create: %v", err)
		}
	}
	if _, err := b.m.CreateKey("bench2/w", vault.CreateOptions{}); err != nil {
		fatalf("create: %v", err)
	}
	obsStore := kv.NewMem()
	obs, err := mesh.OpenLog(obsStore, a.log.Genesis(), edKey(0xEE), mesh.LogOptions{Staleness: time.Hour})
	if err != nil {
		fatalf("observer: %v", err)
	}
	n := 0 // grants issued by a so far
	grant := func(nd *node, key string) time.Duration {
		t0 := time.Now()
		p := policy.Party(fmt.Sprintf("token:p%d", n))
		n++
		if _, err := nd.m.Grant(policy.Grant{Key: key, Party: p, Ops: policy.OpsAll, Issuer: "bench"}); err != nil {
			fatalf("grant: %v", err)
		}
		return time.Since(t0)
	}
	prev := map[string]float64{}
	prevSize := 0
	expo := func(name string, v float64, size int) string { // size: events now held
		out := fmt.Sprintf("%s=%.3g", name, v)
		if p, ok := prev[name]; ok && p > 0 && v > 0 {
			out += fmt.Sprintf(" (b=%.2f)", math.Log(v/p)/math.Log(float64(size)/float64(prevSize)))
		}
		prev[name] = v
		return out
	}
	for _, size := range sizes {
		// Grow to size-10k (observer follows), then to size (observer does not).
		follow := max(size-10000, 0)
		var lat []time.Duration
		segStart := time.Now()
		segN := 0
		for a.log.Height() < size {
			d := grant(a, fmt.Sprintf("bench/s%d", n%keys))
			segN++
			if len(lat) == 1000 {
				copy(lat, lat[1:])
				lat = lat[:999]
			}
			lat = append(lat, d)
			if a.log.Height() <= follow && a.log.Height()%1000 == 0 {
				pull(obs, s)
			}
		}
		rate := float64(segN) / time.Since(segStart).Seconds()
		if segN == 0 {
			fmt.Printf("# size %d: the log already holds %d events (each size adds ~1,050 while measuring); skipped\n", size, a.log.Height())
			continue
		}
		waitFor(5*time.Minute, "org2 caught up", func() bool { return b.log.Height() >= a.log.Height() })

		// Catch-up of the last ≤10k events at the observer.
		behind := a.log.Height() - obs.Height()
		t0 := time.Now()
		pull(obs, s)
		catchup := time.Since(t0)
		if obs.Height() != a.log.Height() {
			fatalf("observer at %d, want %d", obs.Height(), a.log.Height())
		}

		// Propagation at this size.
		var prop []time.Duration
		for range 50 {
			key := fmt.Sprintf("bench/s%d", n%keys)
			p := policy.Principal{Parties: []policy.Party{policy.Party(fmt.Sprintf("token:p%d", n))}}
			t0 := time.Now()
			grant(a, key)
			waitFor(30*time.Second, "grant at org2", func() bool {
				return b.log.Policy().Decide(p, key, policy.OpEncrypt, time.Now()).Allowed
			})
			prop = append(prop, time.Since(t0))
		}

		// Two writers at once.
		var wg sync.WaitGroup
		var rates [2]float64
		for i, nd := range []*node{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t0 := time.Now()
				for j := range 500 {
					key := fmt.Sprintf("bench/s%d", j%keys)
					if i == 1 {
						key = "bench2/w"
					}
					p := policy.Party(fmt.Sprintf("token:w%d-%d-%d", i, size, j))
					if _, err := nd.m.Grant(policy.Grant{Key: key, Party: p, Ops: policy.OpsAll, Issuer: "bench"}); err != nil {
						fatalf("grant: %v", err)
					}
				}
				rates[i] = 500 / time.Since(t0).Seconds()
			}()
		}
		wg.Wait()
		waitFor(5*time.Minute, "both caught up", func() bool {
			return b.log.Height() == a.log.Height() && obs.Height() >= 0
		})
		pull(obs, s)

		// Restart of Org1's log.
		t0 = time.Now()
		if _, err := mesh.OpenLog(a.store, a.log.Genesis(), a.priv, mesh.LogOptions{Staleness: time.Hour}); err != nil {
			fatalf("reopen: %v", err)
		}
		restart := time.Since(t0)

		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		events := a.log.Height()
		size := events // exponents against the events actually held
		heap := float64(ms.HeapAlloc) / (1 << 20)
		var stored int
		for _, st := range []*kv.Mem{a.store, b.store, obsStore} {
			_ = st.Scan(nil, func(k, v []byte) error { stored += len(k) + len(v); return nil })
		}
		fmt.Printf("events=%d behind=%d %s %s %s %s %s %s %s %s %s %s heap_bytes_per_event=%.0f store_mib=%.3g heap_less_store_bytes_per_event=%.0f\n",
			events, behind,
			expo("grant_rate_per_s", rate, size),
			expo("grant_p50_ms", ms1(pct(lat, .5)), size),
			expo("grant_p99_ms", ms1(pct(lat, .99)), size),
			expo("prop_p50_ms", ms1(pct(prop, .5)), size),
			expo("prop_p99_ms", ms1(pct(prop, .99)), size),
			expo("two_writers_org1_per_s", rates[0], size),
			expo("two_writers_org2_per_s", rates[1], size),
			expo("catchup_10k_ms", ms1(catchup), size),
			expo("restart_ms", ms1(restart), size),
			expo("heap_mib", heap, size),
			heap*(1<<20)/float64(events),
			float64(stored)/(1<<20), (float64(ms.HeapAlloc)-float64(stored))/float64(events))
		prevSize = events
	}
	writeHeapProfile()
	close(s.stop)
	s.wg.Wait()
}

// pull brings obs up to date with every node of s, 1,000 events per batch.
func pull(obs *mesh.Log, s *sim) {
	for {
		got := 0
		have := obs.Summary()
		for _, nd := range s.nodes {
			for issuer, h := range nd.log.Summary() {
				if len(issuer) != 64 || have[issuer] >= h {
					continue
				}
				raws, err := nd.log.Events(issuer, have[issuer], 1000)
				if err != nil {
					fatalf("events: %v", err)
				}
				obs.DeliverBatch(raws)
				got += len(raws)
			}
		}
		if got == 0 {
			return
		}
	}
}

func edKey(b byte) ed25519.PrivateKey {
	seed := make([]byte, 32)
	seed[0], seed[31] = b, 0x5C
	return ed25519.NewKeyFromSeed(seed)
}
