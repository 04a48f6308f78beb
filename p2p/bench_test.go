package p2p

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// deliveryTracker closes a channel once an event has been accepted by every
// log of a network.
type deliveryTracker struct {
	mu     sync.Mutex
	want   int
	counts map[string]int
	done   map[string]chan struct{}
}

func (d *deliveryTracker) wait(key string) chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	ch, ok := d.done[key]
	if !ok {
		ch = make(chan struct{})
		d.done[key] = ch
	}
	return ch
}

func (d *deliveryTracker) accepted(issuer string, seq uint64, _ []byte) {
	key := fmt.Sprintf("%s|%d", issuer, seq)
	ch := d.wait(key)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.counts[key]++
	if d.counts[key] == d.want {
		close(ch)
	}
}

// BenchmarkPropagation measures publish → accepted-by-every-node latency on
// n hosts on loopback (each host i > 0 bootstraps to hosts (i-1)/2 and i-1),
// publishing from each host in turn. It reports p50 and p99.
func BenchmarkPropagation(b *testing.B) {
	for _, n := range []int{10} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) { benchPropagation(b, n) })
	}
}

func benchPropagation(b *testing.B, n int) {
	tr := &deliveryTracker{want: n, counts: map[string]int{}, done: map[string]chan struct{}{}}
	nodes := make([]*node, n)
	for i := range n {
		log := newMemLog()
		log.onAccept = tr.accepted
		nodes[i] = startNode(b, log, nil, func(cfg *Config) {
			cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
			if i > 0 {
				bootstrapTo(nodes[(i-1)/2])(cfg)
				if (i-1)/2 != i-1 {
					bootstrapTo(nodes[i-1])(cfg)
				}
			}
		})
	}
	waitFor(b, 20*time.Second, "meshes", func() bool {
		for _, nd := range nodes {
			if len(nd.meshPeers()) == 0 || len(nd.meshPeers()) < len(nd.host.Network().Peers()) {
				return false
			}
		}
		return true
	})
	seqs := make([]uint64, n)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		from := i % n
		seqs[from]++
		issuer := fmt.Sprintf("n%d", from)
		raw := ev(issuer, seqs[from], "payload")
		done := tr.wait(fmt.Sprintf("%s|%d", issuer, seqs[from]))
		start := time.Now()
		publish(b, nodes[from], raw)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			b.Fatalf("event %d not at every node after 10s", i)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99_ms")
}
