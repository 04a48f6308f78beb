package p2p

import (
	"context"
	"fmt"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/keymesh/keymesh/gossip"
)

// validate is the topic validator. Every message — remote, or our own
// publish — goes through Log.Deliver, so an event is stored before gossipsub
// delivers or forwards it.
//
// Our own publishes are special: the caller Delivered the event before
// publishing it, so Deliver answers Ignore (duplicate), and gossipsub would
// drop an ignored message (and fail Publish). A local message is therefore
// accepted unless the log rejects it.
func (h *Host) validate(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	local := msg.Local || from == h.host.ID()
	if len(msg.Data) > h.cfg.MaxMessageSize {
		if !local {
			h.m.oversize.WithLabelValues("gossip").Inc()
			h.m.gossip.WithLabelValues(gossip.Reject.String()).Inc()
		}
		return pubsub.ValidationReject
	}
	r := h.cfg.Log.Deliver(msg.Data)
	if local {
		if r == gossip.Reject {
			return pubsub.ValidationReject
		}
		return pubsub.ValidationAccept
	}
	switch r {
	case gossip.Accept:
		h.m.gossip.WithLabelValues(gossip.Accept.String()).Inc()
		return pubsub.ValidationAccept
	case gossip.Reject:
		h.m.gossip.WithLabelValues(gossip.Reject.String()).Inc()
		h.log.Debug("gossip message rejected", "from", from.String(), "author", msg.GetFrom().String())
		return pubsub.ValidationReject
	default:
		// A duplicate, or an event whose predecessors we lack: the peer that
		// forwarded it accepted it, so it holds them. Pull them now rather
		// than at the next periodic round.
		h.m.gossip.WithLabelValues(gossip.Ignore.String()).Inc()
		h.trigger(from)
		return pubsub.ValidationIgnore
	}
}

// drain consumes the subscription; events were already applied by validate.
func (h *Host) drain() {
	for {
		if _, err := h.sub.Next(h.ctx); err != nil {
			return
		}
	}
}

// Publish publishes raw, which the caller has already Delivered to its Log, on
// the gossip topic. If the topic has no peers yet the event reaches nobody
// now: Publish still returns nil (anti-entropy will carry the event) but
// counts it in keymesh_p2p_publish_total{outcome="no_peers"}. An event larger
// than Config.MaxMessageSize fails with ErrMessageTooLarge; one the Log
// rejects fails too.
func (h *Host) Publish(ctx context.Context, raw []byte) error {
	if h.ctx.Err() != nil {
		return ErrClosed
	}
	if len(raw) > h.cfg.MaxMessageSize {
		h.m.oversize.WithLabelValues("publish").Inc()
		return fmt.Errorf("%w: %d > %d bytes", ErrMessageTooLarge, len(raw), h.cfg.MaxMessageSize)
	}
	peers := len(h.topic.ListPeers())
	if err := h.topic.Publish(ctx, raw); err != nil {
		h.m.publish.WithLabelValues("error").Inc()
		return fmt.Errorf("p2p: publish: %w", err)
	}
	if peers == 0 {
		h.m.publish.WithLabelValues("no_peers").Inc()
		h.log.Debug("published with no topic peers; anti-entropy will carry the event")
	} else {
		h.m.publish.WithLabelValues("sent").Inc()
	}
	return nil
}

// scoreParams enables gossipsub peer scoring only for what Reject means:
// invalid message deliveries (P4) lower a peer's score (weight × count²; the
// count decays to zero in about ten minutes). Everything else is left at zero:
// notably IP colocation, which would penalise every peer of a devnet on one
// host.
func scoreParams(topic string) *pubsub.PeerScoreParams {
	return &pubsub.PeerScoreParams{
		SkipAtomicValidation: true,
		AppSpecificScore:     func(peer.ID) float64 { return 0 },
		DecayInterval:        time.Second,
		DecayToZero:          0.01,
		RetainScore:          10 * time.Minute,
		Topics: map[string]*pubsub.TopicScoreParams{
			topic: {
				SkipAtomicValidation:           true,
				TopicWeight:                    1,
				TimeInMeshQuantum:              time.Second, // a divisor even when unweighted
				InvalidMessageDeliveriesWeight: -1,
				InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(10 * time.Minute),
			},
		},
	}
}

// scoreThresholds: about 4 rejected messages stop gossip to and from a peer,
// 7 stop publishing to it, 10 graylist it (its RPCs are ignored) until the
// count decays.
func scoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		SkipAtomicValidation: true,
		GossipThreshold:      -10,
		PublishThreshold:     -50,
		GraylistThreshold:    -100,
	}
}
