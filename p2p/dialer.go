package p2p

import (
	"context"
	"time"
)

// Target is a peer the host keeps a connection to: its peer id and the
// multiaddrs it may be reached at.
type Target struct {
	ID    string
	Addrs []string
}

// keepConnected dials every target the host is not connected to, with
// per-peer exponential back-off (2 s up to 60 s), so a node reaches every
// registered node it can, not only its bootstrap peers: no single node is
// a point of failure for the spread of events, and a node that returns
// from downtime finds its peers even when its bootstrap node moved.
func (h *Host) keepConnected() {
	type backoff struct {
		next time.Time
		wait time.Duration
	}
	tries := map[string]*backoff{}
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		connected := map[string]bool{}
		for _, p := range h.Peers() {
			if p.Connected {
				connected[p.ID] = true
			}
		}
		now := time.Now()
		for _, tg := range h.cfg.Targets() {
			if tg.ID == h.host.ID().String() || connected[tg.ID] || len(tg.Addrs) == 0 {
				continue
			}
			b := tries[tg.ID]
			if b == nil {
				b = &backoff{wait: 2 * time.Second}
				tries[tg.ID] = b
			}
			if now.Before(b.next) {
				continue
			}
			ok := false
			for _, a := range tg.Addrs {
				dctx, cancel := context.WithTimeout(h.ctx, 3*time.Second)
				err := h.Connect(dctx, a)
				cancel()
				if err == nil {
					ok = true
					break
				}
			}
			if ok {
				delete(tries, tg.ID)
				continue
			}
			b.next = now.Add(b.wait)
			b.wait = min(2*b.wait, time.Minute)
		}
		if len(tries) > 4*h.cfg.ConnHigh { // bounded: forget the oldest back-offs
			for id := range tries {
				delete(tries, id)
				if len(tries) <= h.cfg.ConnHigh {
					break
				}
			}
		}
	}
}
