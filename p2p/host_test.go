package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/keymesh/keymesh/gossip"
)

const (
	testTopic    = "/keymesh/00/events/1"
	testProtocol = "/keymesh/00/sync/1"
)

var testListen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}

func testLogger() *slog.Logger {
	if os.Getenv("P2P_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newKey(t testing.TB) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// node is a host under test with its log.
type node struct {
	*Host
	log *memLog
	key crypto.PrivKey
}

// startNode starts a host on 127.0.0.1; edit adjusts its config. The host is
// closed at the end of the test.
func startNode(t testing.TB, log *memLog, key crypto.PrivKey, edit func(*Config)) *node {
	t.Helper()
	if key == nil {
		key = newKey(t)
	}
	cfg := Config{
		Identity: key,
		Listen:   testListen,
		Topic:    testTopic,
		Protocol: testProtocol,
		Log:      log,
		Logger:   testLogger(),
	}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return &node{Host: h, log: log, key: key}
}

func bootstrapTo(n *node) func(*Config) {
	return func(c *Config) { c.Bootstrap = append(c.Bootstrap, n.Addrs()...) }
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitTopicPeers waits until n has want in its gossipsub mesh.
func waitTopicPeers(t testing.TB, n *node, want ...*node) {
	t.Helper()
	waitFor(t, 10*time.Second, "mesh peers", func() bool {
		peers := n.meshPeers()
		for _, w := range want {
			if !slices.Contains(peers, w.ID()) {
				return false
			}
		}
		return true
	})
}

// publish delivers raw to n's log and publishes it, as a node does.
func publish(t testing.TB, n *node, raw []byte) {
	t.Helper()
	if r := n.log.Deliver(raw); r != gossip.Accept {
		t.Fatalf("Deliver(%q) = %v, want accept", raw, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Publish(ctx, raw); err != nil {
		t.Fatalf("Publish(%q) = %v", raw, err)
	}
}

// value reads a counter or gauge.
func value(t testing.TB, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	c.Collect(ch)
	close(ch)
	sum := 0.0
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		switch {
		case d.Counter != nil:
			sum += d.Counter.GetValue()
		case d.Gauge != nil:
			sum += d.Gauge.GetValue()
		}
	}
	return sum
}

// line starts three hosts A–B–C, B bootstrapping to A and C to B, and waits
// until gossip can flow along the line.
func line(t testing.TB, edit func(*Config)) (a, b, c *node) {
	t.Helper()
	with := func(fs ...func(*Config)) func(*Config) {
		return func(cfg *Config) {
			for _, f := range fs {
				if f != nil {
					f(cfg)
				}
			}
		}
	}
	a = startNode(t, newMemLog(), nil, edit)
	b = startNode(t, newMemLog(), nil, with(edit, bootstrapTo(a)))
	c = startNode(t, newMemLog(), nil, with(edit, bootstrapTo(b)))
	waitTopicPeers(t, a, b)
	waitTopicPeers(t, b, a, c)
	waitTopicPeers(t, c, b)
	return a, b, c
}

func TestGossipAlongLine(t *testing.T) {
	t.Parallel()
	a, b, c := line(t, func(cfg *Config) { cfg.AntiEntropyInterval = time.Hour })
	if slices.Contains(a.Host.host.Network().Peers(), c.ID()) {
		t.Fatal("A and C are directly connected; the test needs a line")
	}
	start := time.Now()
	raw := ev("A", 1, "hello")
	publish(t, a, raw)
	waitFor(t, 5*time.Second, "event at C", func() bool { return c.log.has(raw) })
	t.Logf("A→C via B in %v", time.Since(start))
	if !b.log.has(raw) {
		t.Error("B does not hold the event it forwarded")
	}
	if got := value(t, c.m.gossip.WithLabelValues("accept")); got != 1 {
		t.Errorf("C gossip accept = %v, want 1", got)
	}
	if got := value(t, c.m.pulled); got != 0 {
		t.Errorf("C pulled %v events by anti-entropy, want 0 (gossip only)", got)
	}

	// Publishing an event that is already in the log (the normal case) a
	// second time fails nowhere; messages are identified by their content,
	// so gossip's seen-cache drops the copy before any validation.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Publish(ctx, raw); err != nil {
		t.Fatalf("second Publish = %v", err)
	}
	if got := value(t, a.m.publish.WithLabelValues("sent")); got != 2 {
		t.Errorf("A publish sent = %v, want 2", got)
	}

	// Peers and Addrs.
	peers := b.Peers()
	if len(peers) != 2 {
		t.Fatalf("B.Peers() = %+v, want A and C", peers)
	}
	for _, p := range peers {
		if !p.Connected || p.LastSeen.IsZero() || len(p.Addrs) == 0 {
			t.Errorf("B.Peers() entry %+v, want connected with addrs", p)
		}
	}
	for _, s := range a.Addrs() {
		if !strings.HasSuffix(s, "/p2p/"+a.ID().String()) {
			t.Errorf("Addrs() entry %q lacks /p2p/<id>", s)
		}
	}
}

func TestPublishWithoutPeersIsCounted(t *testing.T) {
	t.Parallel()
	a := startNode(t, newMemLog(), nil, nil)
	publish(t, a, ev("A", 1, "lonely"))
	if got := value(t, a.m.publish.WithLabelValues("no_peers")); got != 1 {
		t.Errorf("publish no_peers = %v, want 1", got)
	}
	// A local event the log rejects fails Publish.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Publish(ctx, ev("A", 2, "bad")); err == nil {
		t.Error("Publish(rejected event) = nil, want error")
	}
}

func TestRestartCatchesUp(t *testing.T) {
	t.Parallel()
	a, b, c := line(t, nil)
	cKey, cLog := c.key, c.log
	if err := c.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	const n = 50
	for i := uint64(1); i <= n; i++ {
		publish(t, a, ev("A", i, "while C was down"))
	}
	waitFor(t, 5*time.Second, "B has the events", func() bool { return b.log.count("A") == n })
	start := time.Now()
	c2 := startNode(t, cLog, cKey, bootstrapTo(b))
	if c2.ID() != c.ID() {
		t.Fatalf("restarted id %s, want %s", c2.ID(), c.ID())
	}
	waitFor(t, 5*time.Second, "C caught up", func() bool { return cLog.count("A") == n })
	t.Logf("C caught up %d events in %v after restart", n, time.Since(start))
	// The round that carried the events completes just after they arrive.
	waitFor(t, 5*time.Second, "LastSync set", func() bool { return !c2.LastSync().IsZero() })
	waitFor(t, 5*time.Second, "pulled counted", func() bool { return value(t, c2.m.pulled) == n })
}

func TestLateJoinerGetsHistory(t *testing.T) {
	t.Parallel()
	// Small frames: batches are cut by size, not only by count.
	small := func(cfg *Config) { cfg.MaxMessageSize = 8 << 10 }
	a := startNode(t, newMemLog(), nil, small)
	b := startNode(t, newMemLog(), nil, func(cfg *Config) { small(cfg); bootstrapTo(a)(cfg) })
	payload := strings.Repeat("x", 100)
	for i := uint64(1); i <= 300; i++ {
		if r := a.log.Deliver(ev("A", i, payload)); r != gossip.Accept {
			t.Fatalf("Deliver = %v", r)
		}
	}
	for i := uint64(1); i <= 10; i++ {
		if r := b.log.Deliver(ev("B", i, payload)); r != gossip.Accept {
			t.Fatalf("Deliver = %v", r)
		}
	}
	waitFor(t, 10*time.Second, "A and B converge", func() bool { return a.log.total() == 310 && b.log.total() == 310 })
	start := time.Now()
	d := startNode(t, newMemLog(), nil, func(cfg *Config) { small(cfg); bootstrapTo(b)(cfg) })
	waitFor(t, 10*time.Second, "late joiner has the history", func() bool { return d.log.total() == 310 })
	t.Logf("late joiner pulled 310 events in %v", time.Since(start))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before := d.LastSync()
	d.SyncNow(ctx)
	if !d.LastSync().After(before) {
		t.Errorf("SyncNow did not advance LastSync (%v, before %v)", d.LastSync(), before)
	}
}

func TestRejectIsNotForwarded(t *testing.T) {
	t.Parallel()
	a, b, c := line(t, func(cfg *Config) { cfg.AntiEntropyInterval = time.Hour })
	a.log.mu.Lock()
	a.log.acceptAll = true // a faulty node that publishes what others reject
	a.log.mu.Unlock()
	bad := ev("A", 1, "bad signature")
	publish(t, a, bad)
	waitFor(t, 5*time.Second, "reject counted at B", func() bool {
		return value(t, b.m.gossip.WithLabelValues("reject")) == 1
	})
	// A later good event still flows along the line; the bad one never
	// reaches C.
	good := ev("Z", 1, "good")
	publish(t, a, good)
	waitFor(t, 5*time.Second, "good event at C", func() bool { return c.log.has(good) })
	// Anti-entropy does not carry it either: B pulls it from A, rejects it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b.SyncNow(ctx)
	c.SyncNow(ctx)
	if b.log.has(bad) || c.log.has(bad) {
		t.Fatal("the rejected event was stored")
	}
	if got := value(t, c.m.gossip.WithLabelValues("reject")); got != 0 {
		t.Errorf("C gossip reject = %v, want 0 (B must not forward it)", got)
	}
	if got := value(t, b.m.rejected); got < 1 {
		t.Errorf("B anti-entropy rejected = %v, want >= 1", got)
	}
}

func TestOversizeRefused(t *testing.T) {
	t.Parallel()
	// Y accepts events of at most 1 KiB; X, misconfigured, sends bigger ones.
	y := startNode(t, newMemLog(), nil, func(cfg *Config) { cfg.MaxMessageSize = 1 << 10 })
	x := startNode(t, newMemLog(), nil, func(cfg *Config) {
		cfg.MaxMessageSize = 64 << 10
		cfg.AntiEntropyInterval = 500 * time.Millisecond
		bootstrapTo(y)(cfg)
	})
	waitTopicPeers(t, x, y)
	waitTopicPeers(t, y, x)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := y.Publish(ctx, ev("Y", 1, strings.Repeat("y", 2<<10))); !errors.Is(err, ErrMessageTooLarge) {
		t.Errorf("Publish(2 KiB) = %v, want ErrMessageTooLarge", err)
	}
	if got := value(t, y.m.oversize.WithLabelValues("publish")); got != 1 {
		t.Errorf("oversize publish = %v, want 1", got)
	}

	big := ev("X", 1, strings.Repeat("x", 2<<10))
	publish(t, x, big)
	// By gossip: refused by Y's validator.
	waitFor(t, 5*time.Second, "oversize gossip refused", func() bool {
		return value(t, y.m.oversize.WithLabelValues("gossip")) == 1
	})
	// By anti-entropy: X's batch frame is refused by Y.
	waitFor(t, 5*time.Second, "oversize frame refused", func() bool {
		return value(t, y.m.oversize.WithLabelValues("stream")) >= 1
	})
	if y.log.has(big) {
		t.Error("Y stored an oversize event")
	}
}

func TestClosedHostLeavesNoGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	a, b, c := line(t, func(cfg *Config) { cfg.AntiEntropyInterval = 200 * time.Millisecond })
	publish(t, a, ev("A", 1, "x"))
	waitFor(t, 5*time.Second, "event at C", func() bool { return c.log.has(ev("A", 1, "x")) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range []*node{a, b, c} {
		wg.Go(func() { n.SyncNow(ctx) })
	}
	wg.Wait()
	for _, n := range []*node{a, b, c} {
		if err := n.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
		if err := n.Close(); err != nil {
			t.Errorf("second Close() = %v", err)
		}
	}
	// Close waits for every goroutine the host started.
	if s := ourGoroutines(); s != "" {
		t.Fatalf("goroutines of package p2p still running after Close:\n%s", s)
	}
	// libp2p's and gossipsub's own goroutines wind down shortly after.
	waitFor(t, 10*time.Second, "goroutines back to baseline", func() bool {
		return runtime.NumGoroutine() <= base+5
	})
	if err := a.Publish(ctx, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
}

// ourGoroutines returns the stacks of goroutines running code of this package
// (other than tests).
func ourGoroutines() string {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "keymesh/keymesh/p2p.(*Host)") || strings.Contains(g, "keymesh/keymesh/p2p.(*session)") {
			if !strings.Contains(g, "_test.go") {
				out = append(out, g)
			}
		}
	}
	return strings.Join(out, "\n\n")
}

func TestInboundRoundsAreRateLimited(t *testing.T) {
	t.Parallel()
	a := startNode(t, newMemLog(), nil, nil)
	p := peer.ID("peer-1")
	if !a.admitInbound(p) {
		t.Fatal("first inbound round refused")
	}
	<-a.inbound
	if a.admitInbound(p) {
		t.Fatal("second inbound round within a second admitted")
	}
	if !a.admitInbound(peer.ID("peer-2")) {
		t.Fatal("another peer's round refused")
	}
	// The semaphore bounds concurrent rounds.
	for i := range maxInboundRounds - 1 {
		if !a.admitInbound(peer.ID(fmt.Sprintf("other-%d", i))) {
			t.Fatalf("round %d refused below the limit", i)
		}
	}
	if a.admitInbound(peer.ID("one-too-many")) {
		t.Fatal("round above the concurrency limit admitted")
	}
	for range maxInboundRounds {
		<-a.inbound
	}
	a.inboundMu.Lock()
	a.lastInbound[p] = time.Now().Add(-minInboundSpacing)
	a.inboundMu.Unlock()
	if !a.admitInbound(p) {
		t.Fatal("round a second later refused")
	}
	<-a.inbound
}

func TestBootstrapRedialsAfterPeerRestart(t *testing.T) {
	t.Parallel()
	bLog, bKey := newMemLog(), newKey(t)
	b := startNode(t, bLog, bKey, func(cfg *Config) { cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"} })
	addr := b.Addrs()
	c := startNode(t, newMemLog(), nil, func(cfg *Config) { cfg.Bootstrap = addr })
	waitTopicPeers(t, c, b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	publish(t, c, ev("C", 1, "while B was down"))
	// Restart B on the same address: C's bootstrap loop redials it.
	port := strings.Split(addr[0], "/")[4]
	b2 := startNode(t, bLog, bKey, func(cfg *Config) { cfg.Listen = []string{"/ip4/127.0.0.1/tcp/" + port} })
	waitFor(t, 10*time.Second, "B caught up after C redialled", func() bool { return bLog.count("C") == 1 })
	var found bool
	for _, p := range c.Peers() {
		if p.ID == b2.ID().String() {
			found = p.Connected
		}
	}
	if !found {
		t.Errorf("C.Peers() = %+v, want B connected", c.Peers())
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	key := newKey(t)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"fail/no identity", Config{Listen: testListen, Topic: testTopic, Protocol: testProtocol, Log: newMemLog()}},
		{"fail/no log", Config{Identity: key, Listen: testListen, Topic: testTopic, Protocol: testProtocol}},
		{"fail/no topic", Config{Identity: key, Listen: testListen, Protocol: testProtocol, Log: newMemLog()}},
		{"fail/bad bootstrap", Config{Identity: key, Listen: testListen, Topic: testTopic, Protocol: testProtocol, Log: newMemLog(), Bootstrap: []string{"/ip4/127.0.0.1/tcp/1"}}},
		{"fail/watermarks", Config{Identity: key, Listen: testListen, Topic: testTopic, Protocol: testProtocol, Log: newMemLog(), ConnLow: 10, ConnHigh: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if h, err := New(ctx, tt.cfg); err == nil {
				_ = h.Close()
				t.Fatal("New() = nil error")
			}
		})
	}
}

func TestMetricsOnRegisterer(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	key := newKey(t)
	for range 2 { // a restart on the same registry reuses the collectors
		n := startNode(t, newMemLog(), key, func(cfg *Config) { cfg.Registerer = reg })
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	for _, want := range []string{"keymesh_p2p_gossip_messages_total", "keymesh_p2p_antientropy_rounds_total", "keymesh_p2p_peers"} {
		if !slices.Contains(names, want) {
			t.Errorf("metric %s not registered (have %v)", want, names)
		}
	}
	// Nothing of ours or of libp2p's lands on the default registerer.
	startNode(t, newMemLog(), nil, nil)
	mfs, err = prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if n := mf.GetName(); strings.HasPrefix(n, "keymesh_") || strings.HasPrefix(n, "libp2p_") {
			t.Errorf("metric %s on the default registerer", n)
		}
	}
}
