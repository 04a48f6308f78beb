package p2p

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/keymesh/keymesh/gossip"
)

// antiEntropyLoop triggers a round with every connected peer every
// AntiEntropyInterval and forgets long-gone peers.
func (h *Host) antiEntropyLoop() {
	t := time.NewTicker(h.cfg.AntiEntropyInterval)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		// A round with a few random peers per interval, not with every
		// peer: push-pull exchanges reach everyone in O(log N) intervals,
		// and the cost stays linear in N (every peer with every peer is
		// N² rounds per interval). New connections still get a round at
		// once (onConnected).
		peers := h.host.Network().Peers()
		rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
		for _, p := range peers[:min(len(peers), h.cfg.AntiEntropyFanout)] {
			h.trigger(p)
		}
		// Unregistered peers whose probation is over are disconnected;
		// peers registered since they connected are reconnected, so that
		// gossip takes them in.
		for _, p := range h.host.Network().Peers() {
			if h.gate.expired(p) {
				_ = h.host.Network().ClosePeer(p)
			}
		}
		for _, p := range h.gate.promoted() {
			_ = h.host.Network().ClosePeer(p)
		}
		h.prune()
	}
}

// prune forgets peers that are neither bootstrap peers nor connected and have
// not been seen for ten minutes, so that the peer table stays bounded.
func (h *Host) prune() {
	cutoff := time.Now().Add(-10 * time.Minute)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.known) <= h.cfg.ConnHigh {
		return
	}
	for id, st := range h.known {
		if !st.bootstrap && st.lastSeen.Before(cutoff) && !st.pending.Load() &&
			h.host.Network().Connectedness(id) != network.Connected {
			delete(h.known, id)
		}
	}
}

// trigger schedules an outbound round with p unless one is already waiting to
// start. It never blocks.
func (h *Host) trigger(p peer.ID) {
	if p == h.host.ID() {
		return
	}
	h.mu.Lock()
	st := h.state(p)
	h.mu.Unlock()
	if !st.pending.CompareAndSwap(false, true) {
		return
	}
	if !h.spawn(func() { _ = h.syncPeer(h.ctx, p, st, true) }) {
		st.pending.Store(false)
	}
}

// SyncNow runs one anti-entropy round with every connected peer and returns
// when they are done or ctx ends. Rounds with one peer are spaced by about a
// second, so SyncNow may first wait for a round that has just run.
func (h *Host) SyncNow(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(h.ctx, cancel)
	defer stop()
	var wg sync.WaitGroup
	for _, p := range h.host.Network().Peers() {
		h.mu.Lock()
		st := h.state(p)
		h.mu.Unlock()
		wg.Add(1)
		if !h.spawn(func() {
			defer wg.Done()
			_ = h.syncPeer(ctx, p, st, false)
		}) {
			wg.Done()
		}
	}
	wg.Wait()
}

// syncPeer runs one outbound round with p, at most one at a time per peer and
// spaced by minOutboundSpacing.
func (h *Host) syncPeer(ctx context.Context, p peer.ID, st *peerState, triggered bool) error {
	select {
	case st.round <- struct{}{}:
	case <-ctx.Done():
		if triggered {
			st.pending.Store(false)
		}
		return ctx.Err()
	}
	defer func() { <-st.round }()
	if wait := time.Until(st.lastRound.Add(minOutboundSpacing)); wait > 0 && !sleep(ctx, wait) {
		if triggered {
			st.pending.Store(false)
		}
		return ctx.Err()
	}
	if triggered {
		// From here on a new trigger schedules another round.
		st.pending.Store(false)
	}
	err := h.outbound(ctx, p)
	if errors.Is(err, errBusy) && sleep(ctx, minOutboundSpacing) {
		// The peer is at its limit (another of its inbound rounds, or ours
		// seen early); try once more.
		err = h.outbound(ctx, p)
	}
	// Spacing counts from the end of the round: the peer admitted it
	// before that, so it never sees two of our rounds less than
	// minOutboundSpacing apart.
	st.lastRound = time.Now()
	switch {
	case err == nil:
		h.roundDone("outbound", "ok")
	case errors.Is(err, errBusy):
		h.roundDone("outbound", "busy")
	default:
		h.roundDone("outbound", "error")
		if h.ctx.Err() == nil {
			h.log.Debug("anti-entropy round failed", "peer", p.String(), "err", err)
		}
	}
	return err
}

func (h *Host) roundDone(direction, result string) {
	h.m.rounds.WithLabelValues(direction, result).Inc()
	if result != "ok" {
		return
	}
	now := time.Now()
	h.mu.Lock()
	h.lastSync = now
	h.mu.Unlock()
	h.m.lastRound.Set(float64(now.UnixNano()) / 1e9)
}

// session is one anti-entropy round on one stream.
type session struct {
	h      *Host
	peer   peer.ID
	io     *frameIO
	s      network.Stream
	served int // events served this round
	reqs   int // requests served this round
	// trusted: the peer is registered. An untrusted (probationary) peer
	// gets an empty summary and empty batches, and only its own chain is
	// pulled from it.
	trusted bool
}

func (h *Host) newSession(ctx context.Context, s network.Stream) (*session, func()) {
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	p := s.Conn().RemotePeer()
	return &session{h: h, peer: p, io: newFrameIO(s, h.cfg.MaxMessageSize), s: s, trusted: h.gate.trusted(p)}, func() { stop() }
}

func (ss *session) read() (frame, error) {
	_ = ss.s.SetReadDeadline(time.Now().Add(frameTimeout))
	f, err := ss.io.read()
	if errors.Is(err, errFrameTooLarge) {
		ss.h.m.oversize.WithLabelValues("stream").Inc()
	}
	return f, err
}

func (ss *session) write(body []byte) error {
	_ = ss.s.SetWriteDeadline(time.Now().Add(frameTimeout))
	return ss.io.write(body)
}

func (ss *session) summary() []byte {
	if !ss.trusted {
		// To a peer not registered here, only this node's own record (the
		// first event of its chain): enough for the peer to admit it.
		body, _ := encodeSummary(ss.ownRecord(), ss.h.cfg.MaxMessageSize)
		return body
	}
	body, dropped := encodeSummary(ss.h.cfg.Log.Summary(), ss.h.cfg.MaxMessageSize)
	if dropped > 0 {
		ss.h.log.Warn("anti-entropy summary truncated", "dropped_issuers", dropped)
	}
	return body
}

// ownRecord is the summary shown to an untrusted peer: this node's own
// chain, up to its first event (its node record).
func (ss *session) ownRecord() map[string]uint64 {
	if ss.h.cfg.IssuerOf == nil {
		return nil
	}
	own := ss.h.cfg.IssuerOf(ss.h.host.ID())
	if ss.h.cfg.Log.Summary()[own] == 0 {
		return nil
	}
	return map[string]uint64{own: 1}
}

// outbound runs the initiator's side of a round with p.
func (h *Host) outbound(ctx context.Context, p peer.ID) (err error) {
	ctx, cancel := context.WithTimeout(ctx, roundTimeout)
	defer cancel()
	s, err := h.host.NewStream(ctx, p, protocol.ID(h.cfg.Protocol))
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	ss, stop := h.newSession(ctx, s)
	defer stop()
	defer func() {
		if err != nil {
			_ = s.Reset()
		} else {
			_ = s.Close()
		}
	}()
	if err := ss.write(ss.summary()); err != nil {
		return err
	}
	f, err := ss.read()
	if err != nil {
		return err
	}
	switch f.typ {
	case frameBusy:
		return errBusy
	case frameSummary:
	default:
		return fmt.Errorf("%w: got %s, want summary", errMalformed, frameName(f.typ))
	}
	if err := ss.pull(ctx, f.summary); err != nil {
		return err
	}
	if err := ss.write([]byte{frameDone}); err != nil {
		return err
	}
	return ss.serve()
}

// handleStream runs the responder's side of a round.
func (h *Host) handleStream(s network.Stream) {
	if !h.spawn(func() { h.inboundRound(s) }) {
		_ = s.Reset()
	}
}

func (h *Host) inboundRound(s network.Stream) {
	ctx, cancel := context.WithTimeout(h.ctx, roundTimeout)
	defer cancel()
	ss, stop := h.newSession(ctx, s)
	defer stop()
	if !h.admitInbound(ss.peer) {
		_ = ss.write([]byte{frameBusy})
		_ = s.Close()
		h.m.rounds.WithLabelValues("inbound", "busy").Inc()
		return
	}
	defer func() { <-h.inbound }()
	err := func() error {
		f, err := ss.read()
		if err != nil {
			return err
		}
		if f.typ != frameSummary {
			return fmt.Errorf("%w: got %s, want summary", errMalformed, frameName(f.typ))
		}
		if err := ss.write(ss.summary()); err != nil {
			return err
		}
		if err := ss.serve(); err != nil {
			return err
		}
		if err := ss.pull(ctx, f.summary); err != nil {
			return err
		}
		return ss.write([]byte{frameDone})
	}()
	if err != nil {
		_ = s.Reset()
		h.roundDone("inbound", "error")
		if h.ctx.Err() == nil {
			h.log.Debug("inbound anti-entropy round failed", "peer", ss.peer.String(), "err", err)
		}
		return
	}
	_ = s.Close()
	h.roundDone("inbound", "ok")
}

// admitInbound takes a slot of the inbound semaphore if p's last inbound
// round started at least minInboundSpacing ago and a slot is free.
func (h *Host) admitInbound(p peer.ID) bool {
	now := time.Now()
	h.inboundMu.Lock()
	defer h.inboundMu.Unlock()
	if last, ok := h.lastInbound[p]; ok && now.Sub(last) < minInboundSpacing {
		return false
	}
	select {
	case h.inbound <- struct{}{}:
	default:
		return false
	}
	if len(h.lastInbound) >= 4*h.cfg.ConnHigh {
		for id, t := range h.lastInbound {
			if now.Sub(t) >= minInboundSpacing {
				delete(h.lastInbound, id)
			}
		}
	}
	h.lastInbound[p] = now
	return true
}

// serve answers the peer's requests until it sends done.
func (ss *session) serve() error {
	for {
		f, err := ss.read()
		if err != nil {
			return err
		}
		switch f.typ {
		case frameDone:
			return nil
		case frameRequest:
		default:
			return fmt.Errorf("%w: got %s, want request or done", errMalformed, frameName(f.typ))
		}
		ss.reqs++
		if ss.reqs > maxRequestsPerRound {
			return fmt.Errorf("p2p: peer exceeded %d requests in a round", maxRequestsPerRound)
		}
		var events [][]byte
		if !ss.trusted {
			if _, own := ss.ownRecord()[f.issuer]; own && f.after == 0 {
				events, _ = ss.h.cfg.Log.Events(f.issuer, 0, 1)
			}
		} else if n := min(int(f.max), maxEventsPerRound-ss.served); n > 0 {
			events, err = ss.h.cfg.Log.Events(f.issuer, f.after, n)
			if err != nil {
				ss.h.log.Warn("anti-entropy: reading events failed", "issuer", quoteIssuer(f.issuer), "after", f.after, "err", err)
				events = nil
			}
			events = events[:min(len(events), n)]
		}
		body, n := encodeBatch(events, ss.h.cfg.MaxMessageSize)
		if n < len(events) && n == 0 {
			ss.h.log.Warn("anti-entropy: event too large to serve", "issuer", quoteIssuer(f.issuer), "seq", f.after+1, "bytes", len(events[0]))
		}
		ss.served += n
		if err := ss.write(body); err != nil {
			return err
		}
	}
}

// pull requests, in order, the events of every issuer for which theirs is
// ahead of this node's log, and delivers them. It makes up to maxPullPasses
// passes over the summary while events keep being accepted, so that events
// ignored because they depend on another issuer's missing events are fetched
// again once those have arrived.
func (ss *session) pull(ctx context.Context, theirs map[string]uint64) error {
	budget := maxEventsPerRound
	pulled, rejected := 0, 0
	defer func() {
		ss.h.m.pulled.Add(float64(pulled))
		ss.h.m.rejected.Add(float64(rejected))
	}()
	skip := map[string]bool{} // issuers whose events the peer served and our log rejected
	if !ss.trusted {
		// A peer on probation hands in its own chain and nothing else.
		own := ss.h.cfg.IssuerOf(ss.peer)
		theirs = map[string]uint64{own: min(theirs[own], maxBatch)}
	}
	for pass := 0; pass < maxPullPasses && budget > 0; pass++ {
		mine := ss.h.cfg.Log.Summary()
		var issuers []string
		for is, seq := range theirs {
			if seq > mine[is] && !skip[is] {
				issuers = append(issuers, is)
			}
		}
		if len(issuers) == 0 {
			return nil
		}
		slices.Sort(issuers)
		accepted := 0
	issuers:
		for _, is := range issuers {
			after := mine[is]
			if strings.Contains(is, ":") {
				// A single item: one request, then the next issuer.
				if err := ss.fetch(is, after, 1, &accepted, &pulled, &rejected, skip); err != nil {
					return err
				}
				skip[is] = true
				continue
			}
			for after < theirs[is] && budget > 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
				want := min(theirs[is]-after, maxBatch, uint64(budget))
				if err := ss.write(encodeRequest(is, after, want)); err != nil {
					return err
				}
				f, err := ss.read()
				if err != nil {
					return err
				}
				if f.typ != frameBatch {
					return fmt.Errorf("%w: got %s, want batch", errMalformed, frameName(f.typ))
				}
				if uint64(len(f.events)) > want {
					return fmt.Errorf("%w: %d events for a request of %d", errMalformed, len(f.events), want)
				}
				if len(f.events) == 0 {
					continue issuers
				}
				for _, r := range deliverAll(ss.h.cfg.Log, f.events) {
					switch r {
					case gossip.Accept:
						accepted++
						pulled++
					case gossip.Reject:
						rejected++
						skip[is] = true
						ss.h.log.Warn("anti-entropy: peer served an event the log rejects", "peer", ss.peer.String(), "issuer", quoteIssuer(is))
						continue issuers
					}
				}
				after += uint64(len(f.events))
				budget -= len(f.events)
			}
		}
		if accepted == 0 {
			break
		}
	}
	if w, ok := ss.h.cfg.Log.(Wanter); ok && ss.trusted {
		for _, want := range w.Wants() {
			accepted := 0
			if err := ss.fetch(want.Issuer, want.After, min(max(want.Max, 1), maxBatch), &accepted, &pulled, &rejected, skip); err != nil {
				return err
			}
		}
	}
	return nil
}

// fetch requests one range of an issuer's items and delivers what comes.
func (ss *session) fetch(is string, after uint64, want int, accepted, pulled, rejected *int, skip map[string]bool) error {
	if err := ss.write(encodeRequest(is, after, uint64(want))); err != nil {
		return err
	}
	f, err := ss.read()
	if err != nil {
		return err
	}
	if f.typ != frameBatch {
		return fmt.Errorf("%w: got %s, want batch", errMalformed, frameName(f.typ))
	}
	if len(f.events) > want {
		return fmt.Errorf("%w: %d items for a request of %d", errMalformed, len(f.events), want)
	}
	for _, r := range deliverAll(ss.h.cfg.Log, f.events) {
		switch r {
		case gossip.Accept:
			*accepted++
			*pulled++
		case gossip.Reject:
			*rejected++
			skip[is] = true
		}
	}
	return nil
}

// deliverAll delivers a pulled batch, in one call when the log can take a
// batch (one durable write for all of it instead of one per event).
func deliverAll(l Log, raws [][]byte) []gossip.Verdict {
	if bl, ok := l.(BatchLog); ok {
		return bl.DeliverBatch(raws)
	}
	out := make([]gossip.Verdict, len(raws))
	for i, raw := range raws {
		out[i] = l.Deliver(raw)
	}
	return out
}
