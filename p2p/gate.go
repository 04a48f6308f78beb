package p2p

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Probation bounds for peers that are not (yet) registered: at most
// maxProbation of them hold a connection at once, each for at most
// probationFor. Over such a connection a peer can only hand in its own
// chain (which starts with its admin-signed node record): this node sends
// it no summary, no event and no gossip.
const (
	maxProbation = 32
	probationFor = 30 * time.Second
)

// gate is the host's connection gater: it admits registered peers
// (Config.Registered), configured bootstrap peers, and a few unregistered
// inbound peers on probation so that a new node can hand in its record.
type gate struct {
	registered func(peer.ID) bool
	boot       map[peer.ID]bool

	mu        sync.Mutex
	probation map[peer.ID]time.Time
	// untrusted holds peers seen while not registered: once registered,
	// their connection is closed once so that gossip, which filtered them,
	// sets them up afresh when they reconnect.
	untrusted map[peer.ID]bool
}

func newGate(registered func(peer.ID) bool, boot map[peer.ID]bool) *gate {
	return &gate{registered: registered, boot: boot, probation: map[peer.ID]time.Time{}, untrusted: map[peer.ID]bool{}}
}

// trusted reports whether p is served: registered, or the peer is allowed
// because the host has no registry (tests, a single node).
func (g *gate) trusted(p peer.ID) bool {
	if g.registered == nil || g.registered(p) {
		return true
	}
	g.mu.Lock()
	if len(g.untrusted) < 4*maxProbation+len(g.boot) {
		g.untrusted[p] = true
	}
	g.mu.Unlock()
	return false
}

// promoted returns the peers seen untrusted that are registered now, and
// forgets them.
func (g *gate) promoted() []peer.ID {
	if g.registered == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []peer.ID
	for p := range g.untrusted {
		if g.registered(p) {
			out = append(out, p)
			delete(g.untrusted, p)
		}
	}
	return out
}

func (g *gate) known(p peer.ID) bool { return g.trusted(p) || g.boot[p] }

// onProbation takes (or keeps) a probation slot for p.
func (g *gate) onProbation(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	for id, since := range g.probation {
		// A slot is free again once its peer registered or its time is up.
		if now.Sub(since) > probationFor || g.registered != nil && g.registered(id) {
			delete(g.probation, id)
		}
	}
	if since, ok := g.probation[p]; ok {
		return now.Sub(since) <= probationFor
	}
	if len(g.probation) >= maxProbation {
		return false
	}
	g.probation[p] = now
	return true
}

// expired reports whether p is unregistered and its probation is over.
func (g *gate) expired(p peer.ID) bool {
	if g.known(p) {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	since, ok := g.probation[p]
	return !ok || time.Since(since) > probationFor
}

func (g *gate) InterceptPeerDial(peer.ID) bool               { return true }
func (g *gate) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }
func (g *gate) InterceptAccept(network.ConnMultiaddrs) bool  { return true }

func (g *gate) InterceptSecured(dir network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	if g.known(p) {
		return true
	}
	return dir == network.DirInbound && g.onProbation(p)
}

func (g *gate) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
