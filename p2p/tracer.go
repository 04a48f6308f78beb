package p2p

import (
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// meshTracer records which peers gossipsub has grafted onto our mesh for the
// topic. Gossipsub forgets a disconnected peer's mesh link without a Prune
// event, so readers intersect the set with the connected peers.
type meshTracer struct {
	topic string
	mu    sync.Mutex
	mesh  map[peer.ID]struct{}
}

var _ pubsub.RawTracer = (*meshTracer)(nil)

func newMeshTracer(topic string) *meshTracer {
	return &meshTracer{topic: topic, mesh: make(map[peer.ID]struct{})}
}

// peers returns the mesh peers that connected(p) reports connected.
func (t *meshTracer) peers(connected func(peer.ID) bool) []peer.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]peer.ID, 0, len(t.mesh))
	for p := range t.mesh {
		if connected(p) {
			out = append(out, p)
		}
	}
	return out
}

func (t *meshTracer) Graft(p peer.ID, topic string) {
	if topic != t.topic {
		return
	}
	t.mu.Lock()
	t.mesh[p] = struct{}{}
	t.mu.Unlock()
}

func (t *meshTracer) Prune(p peer.ID, topic string) {
	if topic != t.topic {
		return
	}
	t.mu.Lock()
	delete(t.mesh, p)
	t.mu.Unlock()
}

func (*meshTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (*meshTracer) OnClosedOutboundStream(peer.ID)                       {}
func (*meshTracer) Join(string)                                          {}
func (*meshTracer) Leave(string)                                         {}
func (*meshTracer) ValidateMessage(*pubsub.Message)                      {}
func (*meshTracer) DeliverMessage(*pubsub.Message)                       {}
func (*meshTracer) RejectMessage(*pubsub.Message, string)                {}
func (*meshTracer) DuplicateMessage(*pubsub.Message)                     {}
func (*meshTracer) ThrottlePeer(peer.ID)                                 {}
func (*meshTracer) RecvRPC(*pubsub.RPC)                                  {}
func (*meshTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (*meshTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (*meshTracer) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (*meshTracer) UndeliverableMessage(*pubsub.Message)                 {}
