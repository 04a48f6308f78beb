package p2p

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/keymesh/keymesh/gossip"
)

// registry is a test Registered/IssuerOf pair: a set of registered peers,
// and each peer's chain named by its peer id.
type registry struct {
	mu  sync.Mutex
	set map[peer.ID]bool
}

func (r *registry) registered(p peer.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.set[p]
}

func (r *registry) add(p peer.ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.set[p] = true
}

func issuerOf(p peer.ID) string { return "chain-" + p.String() }

func gated(r *registry) func(*Config) {
	return func(c *Config) { c.Registered, c.IssuerOf = r.registered, issuerOf }
}

// TestFinding6_UnregisteredPeerReadsNothing is the regression test of issue
// 8's sixth finding (any libp2p peer that learns an address pulled every
// event by anti-entropy): a peer that is not registered at A gets, over
// anti-entropy, only A's own record (the first event of A's own chain),
// never another issuer's events or the rest of A's chain, and no gossip;
// once registered, it gets everything.
func TestFinding6_UnregisteredPeerReadsNothing(t *testing.T) {
	t.Parallel()
	regA := &registry{set: map[peer.ID]bool{}}
	aKey, mKey := newKey(t), newKey(t)
	aID, _ := peer.IDFromPrivateKey(aKey)
	a := startNode(t, newMemLog(), aKey, gated(regA))
	own := issuerOf(aID)
	for i := uint64(1); i <= 5; i++ {
		if r := a.log.Deliver(ev(own, i, "a's own")); r != gossip.Accept {
			t.Fatal(r)
		}
		if r := a.log.Deliver(ev("other-org-node", i, "secret party names")); r != gossip.Accept {
			t.Fatal(r)
		}
	}
	// Mallory is not registered at A; A is registered at Mallory (so she
	// would serve and pull everything if A let her).
	regM := &registry{set: map[peer.ID]bool{aID: true}}
	m := startNode(t, newMemLog(), mKey, func(c *Config) { gated(regM)(c); bootstrapTo(a)(c) })
	waitFor(t, 10*time.Second, "Mallory holds A's record", func() bool { return m.log.count(own) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		m.SyncNow(ctx)
	}
	if n, o := m.log.count(own), m.log.count("other-org-node"); n != 1 || o != 0 {
		t.Fatalf("unregistered peer pulled %d of A's events and %d of another issuer's; want 1 (A's record) and 0", n, o)
	}
	// A witness registered at A (and A at it), in A's gossip mesh: once
	// the gossiped event reached it, it had its chance to reach Mallory.
	wKey := newKey(t)
	wID, _ := peer.IDFromPrivateKey(wKey)
	regA.add(wID)
	w := startNode(t, newMemLog(), wKey, func(c *Config) {
		gated(&registry{set: map[peer.ID]bool{aID: true}})(c)
		bootstrapTo(a)(c)
		c.AntiEntropyInterval = time.Hour
	})
	waitFor(t, 10*time.Second, "the witness pulls A's chain", func() bool {
		w.SyncNow(ctx)
		return w.log.count(own) == 5
	})
	waitTopicPeers(t, a, w)
	publish(t, a, ev(own, 6, "gossiped"))
	waitFor(t, 10*time.Second, "the registered witness receives the gossip", func() bool { return w.log.count(own) == 6 })
	if m.log.count(own) != 1 {
		t.Fatalf("unregistered peer received gossip: holds %d of A's events", m.log.count(own))
	}
	// Registered: A reconnects it into gossip and serves it in full.
	regA.add(m.ID())
	waitFor(t, 15*time.Second, "registered peer gets the history", func() bool {
		return m.log.count(own) == 6 && m.log.count("other-org-node") == 5
	})
}

// TestProbationIsBounded: at most maxProbation unregistered peers hold a
// connection at once.
func TestProbationIsBounded(t *testing.T) {
	t.Parallel()
	a := startNode(t, newMemLog(), nil, gated(&registry{set: map[peer.ID]bool{}}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range maxProbation + 4 {
		s := startNode(t, newMemLog(), nil, nil)
		_ = s.Connect(ctx, a.Addrs()[0]) // the dialer may see success before A's gater closes it
	}
	// A's gater closes the surplus connections; wait (bounded) for it.
	waitFor(t, 10*time.Second, fmt.Sprintf("A holds 1..%d unregistered peers", maxProbation), func() bool {
		n := len(a.host.Network().Peers())
		return n <= maxProbation && n > 0
	})
}
