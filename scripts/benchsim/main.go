// Command benchsim measures how the mesh design grows past one machine: N
// in-process nodes (of min(N, 50) orgs, round-robin), each with its own event log, vault and
// member on an in-memory store, joined by an in-memory gossip transport
// that delivers every published message to every other node, each node on
// its own goroutine (a queue per node, as a gossip validator would). It
// prints, per N, the propagation p50/p99 of a grant (until the grantee's
// node holds the key's version and allows it) and of an org revocation
// (until every node denies the grantee and the grantee holds no version),
// and the bytes each node received.
//
// It measures the protocol's costs (signature checks, folds, key
// transport, reconciliation), not a network's: delivery is instant, so
// the figures are a lower bound of the latency and an exact count of the
// bytes. scripts/bench-mesh.sh measures real libp2p daemons at N ≤ 50.
//
//	go run ./scripts/benchsim -n 50,200 -ops 20
package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/mesh"
	"github.com/keymesh/keymesh/mesh/member"
	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault"
	"github.com/keymesh/keymesh/vault/envelope"
)

type node struct {
	org   string
	store *kv.Mem
	priv  crypto.Signer
	log   *mesh.Log
	vault *vault.Vault
	m     *member.Member
	inbox chan []byte
	bytes atomic.Int64
}

type sim struct {
	nodes []*node
	wg    sync.WaitGroup
	stop  chan struct{}
}

func (s *sim) publish(from *node) func([]byte) {
	return func(raw []byte) {
		for _, n := range s.nodes {
			if n != from {
				n.bytes.Add(int64(len(raw)))
				select {
				case n.inbox <- raw:
				case <-s.stop:
					return
				}
			}
		}
	}
}

func (s *sim) run(n *node) {
	defer s.wg.Done()
	for {
		select {
		case raw := <-n.inbox:
			n.log.Deliver(raw)
		case <-s.stop:
			return
		}
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "benchsim: "+format+"\n", args...)
	os.Exit(1)
}

func build(n int) *sim {
	t0 := time.Now().UTC().Truncate(time.Second)
	g := &network.Genesis{Network: fmt.Sprintf("sim-%d", n), Created: t0}
	orgs := min(n, 50)
	admins := make([]ed25519.PrivateKey, orgs)
	for i := range orgs {
		admins[i] = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(i + 1)}, 32))
		org := network.GenesisOrg{ID: fmt.Sprintf("Org%dMSP", i+1), AdminKeys: [][32]byte{[32]byte(admins[i].Public().(ed25519.PublicKey))}}
		switch i {
		case 0:
			org.Namespaces = []string{"bench"}
		case 1:
			org.Namespaces = []string{"bench2"} // the second writer of -scale
		}
		g.Orgs = append(g.Orgs, org)
	}
	s := &sim{stop: make(chan struct{})}
	type pending struct {
		n   *node
		rec []byte
	}
	var regs []pending
	for i := range n {
		store := kv.NewMem()
		org := g.Orgs[i%orgs].ID
		v, err := vault.Open(store, vault.MasterKey(bytes.Repeat([]byte{byte(i + 7)}, 32)),
			vault.WithNetwork(envelope.NetworkID(g.ID())), vault.WithOwner(org))
		if err != nil {
			fatalf("vault: %v", err)
		}
		// The node's keys are made and kept in its vault, as keymeshd's.
		_, kemPub, err := v.GenerateNodeKeys()
		if err != nil {
			fatalf("node keys: %v", err)
		}
		sign, err := v.Signer()
		if err != nil {
			fatalf("signer: %v", err)
		}
		l, err := mesh.OpenLog(store, g, sign, mesh.LogOptions{Staleness: time.Hour})
		if err != nil {
			fatalf("log: %v", err)
		}
		nd := &node{org: org, store: store, priv: sign, log: l, vault: v, inbox: make(chan []byte, 1<<16)}
		nd.m = member.New(member.Config{Log: l, Vault: v, Org: nd.org, KEMKey: kemPub, Grace: time.Second,
			Publish: s.publish(nd), CheckpointEvery: time.Hour})
		s.nodes = append(s.nodes, nd)
		rec, err := network.SignNodeRecord(admins[i%orgs], g.ID(), network.NodeRecord{
			Org: nd.org, PeerID: "12D3KooWsim" + strconv.Itoa(i), SignKey: l.Self(), KEMKey: kemPub,
			Addrs: []string{"/ip4/127.0.0.1/tcp/1"}, NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(24 * time.Hour),
		})
		if err != nil {
			fatalf("record: %v", err)
		}
		raw, _ := json.Marshal(rec)
		regs = append(regs, pending{nd, raw})
	}
	for _, nd := range s.nodes {
		s.wg.Add(1)
		go s.run(nd)
	}
	for _, r := range regs {
		if err := r.n.m.Register(r.rec); err != nil {
			fatalf("register: %v", err)
		}
	}
	for _, nd := range s.nodes {
		go nd.m.Run(contextOf(s.stop))
	}
	waitFor(2*time.Minute, "every node knows every node", func() bool {
		for _, nd := range s.nodes {
			if len(nd.m.Nodes()) != n {
				return false
			}
		}
		return true
	})
	return s
}

// contextOf returns a context that ends when stop is closed.
func contextOf(stop chan struct{}) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-stop; cancel() }()
	return ctx
}

func waitFor(d time.Duration, what string, cond func() bool) time.Duration {
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			fatalf("%s: not within %s", what, d)
		}
		time.Sleep(200 * time.Microsecond)
	}
	return time.Since(start)
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0 // -scale: a size the measuring of the previous one passed
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// memProfile is -memprofile.
var memProfile string

// writeHeapProfile writes a heap profile to memProfile, if set.
func writeHeapProfile() {
	if memProfile == "" {
		return
	}
	f, err := os.Create(memProfile)
	if err != nil {
		fatalf("%v", err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		fatalf("%v", err)
	}
}

func main() {
	ns := flag.String("n", "50,200", "network sizes")
	ops := flag.Int("ops", 20, "grant/revoke pairs per size")
	scale := flag.String("scale", "", "instead: grow a 2-node mesh's log to these event counts (e.g. 1000,10000,100000) and measure at each (see scale.go)")
	keys := flag.Int("keys", 100, "-scale: keys the grants spread over")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to `file`")
	flag.StringVar(&memProfile, "memprofile", "", "-scale: write a heap profile at the largest size to `file`")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fatalf("%v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatalf("%v", err)
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("# machine: %d cores, %s, GOMAXPROCS %d\n", runtime.NumCPU(), runtime.Version(), runtime.GOMAXPROCS(0))
	if *scale != "" {
		var sizes []int
		for _, f := range strings.Split(*scale, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 100 || len(sizes) > 0 && n <= sizes[len(sizes)-1] {
				fatalf("-scale: %q (increasing sizes of at least 100)", f)
			}
			sizes = append(sizes, n)
		}
		measureScale(sizes, max(*keys, 1))
		return
	}
	for _, f := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 || n > 1000 {
			fatalf("-n: %q", f)
		}
		measure(n, *ops)
	}
}

func measure(n, ops int) {
	start := time.Now()
	s := build(n)
	fmt.Printf("# N=%d formed in %s\n", n, time.Since(start).Round(time.Millisecond))
	owner := s.nodes[0]
	var grants, revokes []time.Duration
	for i := range ops {
		key := fmt.Sprintf("bench/k%d", i/10)
		if i%10 == 0 {
			if _, err := owner.m.CreateKey(key, vault.CreateOptions{}); err != nil {
				fatalf("create: %v", err)
			}
		}
		target := s.nodes[1+i%(min(n, 50)-1)] // the first node of another org
		party := policy.Party("org:" + target.org)
		pr := policy.Principal{Parties: []policy.Party{party}}
		t0 := time.Now()
		if _, err := owner.m.Grant(policy.Grant{Key: key, Party: party, Ops: policy.OpsAll, Issuer: "bench"}); err != nil {
			fatalf("grant: %v", err)
		}
		var versions uint32
		owner.log.View(func(st *mesh.State) { versions = uint32(len(st.Keys[key].Versions)) })
		waitFor(30*time.Second, "grant visible", func() bool {
			return target.vault.Holds(key, versions) && target.log.Policy().Decide(pr, key, policy.OpDecrypt, time.Now()).Allowed
		})
		grants = append(grants, time.Since(t0))
		t0 = time.Now()
		if _, _, err := owner.m.Revoke(key, party, "bench"); err != nil {
			fatalf("revoke: %v", err)
		}
		waitFor(30*time.Second, "revoke visible", func() bool {
			for _, nd := range s.nodes {
				if nd.log.Policy().Decide(pr, key, policy.OpDecrypt, time.Now()).Allowed {
					return false
				}
			}
			for v := uint32(1); v <= versions+1; v++ {
				if target.vault.Holds(key, v) {
					return false
				}
			}
			return true
		})
		revokes = append(revokes, time.Since(t0))
	}
	var total int64
	for _, nd := range s.nodes {
		total += nd.bytes.Load()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("N=%d grant_p50_ms=%.1f grant_p99_ms=%.1f revoke_p50_ms=%.1f revoke_p99_ms=%.1f bytes_per_node=%d heap_mib=%d\n",
		n, ms1(pct(grants, .5)), ms1(pct(grants, .99)), ms1(pct(revokes, .5)), ms1(pct(revokes, .99)), total/int64(n), ms.HeapInuse>>20)
	close(s.stop)
	s.wg.Wait()
}

func ms1(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
