package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	libp2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keymesh/keymesh/mesh"
	"github.com/keymesh/keymesh/mesh/member"
	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/p2p"
	"github.com/keymesh/keymesh/vault"
)

// memberHost is a mesh node's composition: its member (package mesh/member)
// and the libp2p host it publishes through.
type memberHost struct {
	member *member.Member
	log    *mesh.Log
	sign   *vault.Signer
	cfg    Config

	mu   sync.RWMutex
	host *p2p.Host
}

// peerIDOf returns the libp2p identity over the vault's signer (Sign
// works, Raw refuses) and its peer id.
func peerIDOf(sign *vault.Signer) (peer.ID, libp2pcrypto.PrivKey, error) {
	pk, err := p2p.SignerKey(sign)
	if err != nil {
		return "", nil, err
	}
	id, err := peer.IDFromPrivateKey(pk)
	return id, pk, err
}

func (m *memberHost) current() *p2p.Host {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.host
}

// publish is the member's publisher: gossip through the host, if it is
// up (anti-entropy delivers what it misses).
func (m *memberHost) publish(raw []byte) {
	h := m.current()
	if h == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = h.Publish(ctx, raw) // counted by the host; anti-entropy covers a miss
}

// network is what the member reports of the host.
func (m *memberHost) network() member.Network {
	h := m.current()
	if h == nil {
		return nil
	}
	return hostView{h}
}

type hostView struct{ h *p2p.Host }

func (v hostView) Peers() map[string]member.Peer {
	out := map[string]member.Peer{}
	for _, p := range v.h.Peers() {
		out[p.ID] = member.Peer{Connected: p.Connected, LastSeen: p.LastSeen}
	}
	return out
}
func (v hostView) Addrs() []string     { return v.h.Addrs() }
func (v hostView) LastSync() time.Time { return v.h.LastSync() }

// The event log is the host's Log as it is: both speak package gossip.
var _ interface {
	p2p.BatchLog
	p2p.Wanter
} = (*mesh.Log)(nil)

// nodeKeyOf returns the node key behind a libp2p peer id (the node's
// identity is its Ed25519 signing key).
func nodeKeyOf(p peer.ID) (network.NodeKey, bool) {
	pk, err := p.ExtractPublicKey()
	if err != nil {
		return network.NodeKey{}, false
	}
	raw, err := pk.Raw()
	if err != nil || len(raw) != len(network.NodeKey{}) {
		return network.NodeKey{}, false
	}
	return network.NodeKey(raw), true
}

// registeredPeer reports whether p is a registered node that may act now:
// only those connect, gossip and are served.
func (m *memberHost) registeredPeer(p peer.ID) bool {
	k, ok := nodeKeyOf(p)
	if !ok {
		return false
	}
	var active bool
	m.log.View(func(s *mesh.State) { _, active = s.Active(k, time.Now()) })
	return active
}

// targets are the registered nodes to keep connected to.
func (m *memberHost) targets() []p2p.Target {
	var out []p2p.Target
	self := m.log.Self()
	m.log.View(func(s *mesh.State) {
		for k, n := range s.Nodes {
			if k != self && n.Active(time.Now()) && len(n.Record.Addrs) > 0 {
				out = append(out, p2p.Target{ID: n.Record.PeerID, Addrs: slices.Clone(n.Record.Addrs)})
			}
		}
	})
	return out
}

// needsHost reports whether the node has anyone to talk to: a network of
// one (a single org, no bootstrap addresses, no other node registered)
// starts no p2p host unless it is configured to listen.
func (m *memberHost) needsHost() bool {
	g := m.log.Genesis()
	if len(m.cfg.P2PListen) > 0 || len(m.cfg.Bootstrap) > 0 || len(g.Bootstrap) > 0 || len(g.Orgs) > 1 {
		return true
	}
	others := false
	self := m.log.Self()
	m.log.View(func(s *mesh.State) {
		for k := range s.Nodes {
			others = others || k != self
		}
	})
	return others
}

// start starts the libp2p host (if the node needs one) and the member's
// loops.
func (m *memberHost) start(ctx context.Context, reg prometheus.Registerer, logger interface{ Warn(string, ...any) }) error {
	if !m.needsHost() {
		go m.member.Run(ctx)
		return nil
	}
	_, pk, err := peerIDOf(m.sign)
	if err != nil {
		return err
	}
	nid := m.log.Network().String()
	listen := m.cfg.P2PListen
	if len(listen) == 0 {
		listen = []string{"/ip4/127.0.0.1/tcp/0"}
	}
	// Dial the genesis and configured bootstrap addresses, and every
	// registered node's recorded addresses.
	boot := append(slices.Clone(m.log.Genesis().Bootstrap), m.cfg.Bootstrap...)
	for _, t := range m.targets() {
		boot = append(boot, t.Addrs...)
	}
	slices.Sort(boot)
	boot = slices.Compact(boot)
	h, err := p2p.New(ctx, p2p.Config{
		Identity: pk, Listen: listen, Bootstrap: boot,
		Topic: "/keymesh/" + nid + "/events/1", Protocol: "/keymesh/" + nid + "/sync/1",
		Log: m.log, AntiEntropyInterval: m.cfg.AntiEntropyInterval,
		Registerer: reg, Logger: m.member.Logger().With("component", "p2p"),
		Registered: m.registeredPeer, Targets: m.targets,
		IssuerOf: func(p peer.ID) string {
			k, _ := nodeKeyOf(p)
			return mesh.IssuerID(k)
		},
	})
	if err != nil {
		return fmt.Errorf("node: p2p: %w", err)
	}
	m.mu.Lock()
	m.host = h
	m.mu.Unlock()
	go m.member.Run(ctx)
	return nil
}

func (m *memberHost) close() {
	m.mu.Lock()
	h := m.host
	m.host = nil
	m.mu.Unlock()
	if h != nil {
		if err := h.Close(); err != nil {
			m.member.Logger().Warn("close p2p host", "err", err)
		}
	}
	m.sign.Destroy() // best effort: the node is closing
}
