// Package p2p is keymesh's libp2p transport: a host that carries opaque
// events between the nodes of a network over gossipsub and makes nodes that
// were offline, partitioned or joined late converge with an anti-entropy
// stream protocol.
//
// Start with [New] and a [Config]. The package knows nothing of the event
// format, the vault or the policy: every event, whether it arrives by gossip,
// in an anti-entropy batch or from a local publish, is judged by the node's
// [Log], whose [gossip.Verdict] decides what gossipsub does with it (deliver and
// forward, drop, or drop and penalise the sender). Because the log stores an
// event inside the gossip validator, an event is stored before this node
// forwards it.
//
// Anti-entropy (wire format in wire.go) runs on every new connection and every
// [Config.AntiEntropyInterval]: the two sides exchange per-issuer summaries
// ([Log.Summary]) and each pulls, in order, the events it lacks
// ([Log.Events], [Log.Deliver]).
package p2p

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keymesh/keymesh/gossip"
)

// BatchLog is a Log that can also take a batch of events in order, storing
// them with one durable write; anti-entropy uses it when the Log has it.
// The results are as if each event were Delivered in turn.
type BatchLog interface {
	Log
	DeliverBatch(raws [][]byte) []gossip.Verdict
}

// Wanter is implemented by a Log that asks peers for more than their
// summaries advertise (the mesh: the events that locate an equivocation).
type Wanter interface {
	Wants() []gossip.Want
}

// Log is the node's event log. All methods are safe for concurrent use.
type Log interface {
	// Deliver validates, durably stores and applies one raw event (from
	// gossip, a pulled batch or a local publish) and returns the verdict. It
	// must be idempotent.
	Deliver(raw []byte) gossip.Verdict
	// Summary returns, per issuer (opaque string id), the highest sequence
	// number up to which this node holds every event of that issuer. An id
	// with a ':' names a single item (such as equivocation evidence) whose
	// number is a score: a peer with a higher score is asked once per
	// round for it (Events(id, mine, 1)).
	Summary() map[string]uint64
	// Events returns the raw events of issuer with sequence numbers in
	// (after, after+max], in order.
	Events(issuer string, after uint64, max int) ([][]byte, error)
}

// Config configures a [Host]. Zero values take the documented defaults.
type Config struct {
	// Identity is the libp2p Ed25519 identity, persisted by the caller:
	// a node's is a [SignerKey] over its vault's signer, whose private half
	// never leaves the vault.
	Identity crypto.PrivKey
	// Listen holds the multiaddrs to listen on, e.g. /ip4/127.0.0.1/tcp/0
	// and /ip4/127.0.0.1/udp/0/quic-v1. Only TCP and QUIC are supported.
	Listen []string
	// Bootstrap holds multiaddrs with /p2p/<id>. They are dialled at start
	// and re-dialled with exponential back-off (1 s to 60 s, jittered) while
	// disconnected. Our own id is skipped.
	Bootstrap []string
	// Topic is the gossip topic, e.g. "/keymesh/<network-id-hex>/events/1".
	Topic string
	// Protocol is the anti-entropy stream protocol id, e.g.
	// "/keymesh/<network-id-hex>/sync/1".
	Protocol string
	// Log judges, stores and serves events. Required.
	Log Log
	// AntiEntropyInterval is the period of anti-entropy rounds with every
	// connected peer (default 3 s). A round also runs on every new connection.
	AntiEntropyInterval time.Duration
	// AntiEntropyFanout is how many random connected peers get a periodic
	// round each interval (default 3).
	AntiEntropyFanout int
	// MaxMessageSize bounds events and stream frames, in bytes (default
	// 1 MiB). Larger gossip messages and frames are refused.
	MaxMessageSize int
	// ConnLow and ConnHigh are the connection manager's watermarks (defaults
	// 64 and 128). Bootstrap peers are protected from trimming.
	ConnLow, ConnHigh int
	// Registerer receives the host's metrics and libp2p's; if nil, both are
	// kept but not exported. Nothing is registered on
	// prometheus.DefaultRegisterer unless it is passed here.
	Registerer prometheus.Registerer
	// Logger receives the host's logs (default: discarded).
	Logger *slog.Logger
	// EnableMDNS turns on mDNS discovery of peers on the local network
	// (default off).
	EnableMDNS bool
	// Registered reports whether a peer is a registered node. Only
	// registered peers (and bootstrap peers) connect, gossip and are served
	// by anti-entropy; an unregistered peer may hold a short probationary
	// connection to hand in its own chain (its node record) and receives
	// nothing. Nil admits every peer (tests).
	Registered func(peer.ID) bool
	// IssuerOf names the anti-entropy issuer id of a peer's own chain: the
	// only one pulled from an unregistered peer. Required with Registered.
	IssuerOf func(peer.ID) string
	// Targets lists the peers to keep connected to (the registered nodes
	// with their recorded addresses); the host dials those it is not
	// connected to, with back-off. Nil: bootstrap peers only.
	Targets func() []Target
}

// Defaults for the zero values of Config.
const (
	DefaultAntiEntropyInterval = 3 * time.Second
	DefaultMaxMessageSize      = 1 << 20
	DefaultConnLow             = 64
	DefaultConnHigh            = 128
)

// Limits of the anti-entropy protocol.
const (
	frameTimeout        = 10 * time.Second // per frame read or write
	roundTimeout        = 30 * time.Second // per round
	maxEventsPerRound   = 10_000           // pulled, and served, per round and direction
	maxRequestsPerRound = 2 * maxSummaryIssuers
	maxPullPasses       = 4 // passes over the summary while events keep being accepted
	maxInboundRounds    = 4 // concurrent inbound rounds
	// minInboundSpacing is the least time between two inbound rounds from one
	// peer; outbound rounds to one peer are spaced by minOutboundSpacing,
	// slightly more, so that jitter does not make the peer refuse them.
	minInboundSpacing  = time.Second
	minOutboundSpacing = 1100 * time.Millisecond
	dialTimeout        = 10 * time.Second
	backoffMin         = time.Second
	backoffMax         = 60 * time.Second
	// envelopeOverhead is the room left in gossipsub's RPC size limit for
	// the message envelope (signature, key, sequence number, topic).
	envelopeOverhead = 4 << 10
)

var (
	// ErrMessageTooLarge is returned by Publish for an event larger than
	// Config.MaxMessageSize.
	ErrMessageTooLarge = errors.New("p2p: message exceeds the maximum message size")
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("p2p: host closed")
	// errBusy means the peer refused an anti-entropy round (rate limit).
	errBusy = errors.New("p2p: peer busy")
)

// PeerInfo describes a known peer: a bootstrap peer, or one that has been
// connected.
type PeerInfo struct {
	ID        string    // peer id
	Addrs     []string  // known multiaddrs (without /p2p)
	Connected bool      // connected now
	LastSeen  time.Time // now if connected, else when last disconnected; zero if never connected
}

// Host is a running libp2p host joined to the gossip topic and serving the
// anti-entropy protocol. Its methods are safe for concurrent use.
type Host struct {
	gate *gate
	cfg  Config
	log  *slog.Logger
	m    *metrics
	host host.Host
	// closeQUIC closes the QUIC connection manager New made for a
	// SignerKey identity (libp2p closes its own default one).
	closeQUIC func() error
	ps        *pubsub.PubSub
	topic     *pubsub.Topic
	sub       *pubsub.Subscription
	mdns      mdns.Service
	mesh      *meshTracer

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	notif  *network.NotifyBundle

	mu       sync.Mutex
	closed   bool
	wg       sync.WaitGroup         // every goroutine the host starts; Add under mu
	known    map[peer.ID]*peerState // peers we know of
	lastSync time.Time

	inbound     chan struct{} // semaphore of inbound rounds
	inboundMu   sync.Mutex
	lastInbound map[peer.ID]time.Time

	closeOnce sync.Once
	closeErr  error
}

// peerState is what the host tracks about one peer.
type peerState struct {
	lastSeen  time.Time // guarded by Host.mu
	bootstrap bool      // guarded by Host.mu

	round     chan struct{} // held (cap 1) while an outbound round runs
	lastRound time.Time     // guarded by holding round
	pending   atomic.Bool   // an outbound round has been triggered and not started
}

func (c *Config) fill() error {
	if c.Identity == nil {
		return errors.New("p2p: Config.Identity is required")
	}
	if c.Log == nil {
		return errors.New("p2p: Config.Log is required")
	}
	if c.Topic == "" || c.Protocol == "" {
		return errors.New("p2p: Config.Topic and Config.Protocol are required")
	}
	if len(c.Listen) == 0 {
		return errors.New("p2p: Config.Listen is required")
	}
	if c.AntiEntropyFanout <= 0 {
		c.AntiEntropyFanout = 3
	}
	if c.AntiEntropyInterval <= 0 {
		c.AntiEntropyInterval = DefaultAntiEntropyInterval
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.ConnLow <= 0 {
		c.ConnLow = DefaultConnLow
	}
	if c.ConnHigh <= 0 {
		c.ConnHigh = DefaultConnHigh
	}
	if c.ConnHigh < c.ConnLow {
		return fmt.Errorf("p2p: ConnHigh %d < ConnLow %d", c.ConnHigh, c.ConnLow)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// New starts a host: it listens, joins the gossip topic, serves the
// anti-entropy protocol and starts dialling the bootstrap peers in the
// background (New never waits for them). ctx bounds the start-up only; the
// host runs until Close.
func New(ctx context.Context, cfg Config) (*Host, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	bootstrap := make([]peer.AddrInfo, 0, len(cfg.Bootstrap))
	for _, s := range cfg.Bootstrap {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return nil, fmt.Errorf("p2p: bootstrap address %q: %w", s, err)
		}
		bootstrap = append(bootstrap, *ai)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("p2p: metrics: %w", err)
	}
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh)
	if err != nil {
		return nil, fmt.Errorf("p2p: connection manager: %w", err)
	}
	boot := map[peer.ID]bool{}
	for _, a := range cfg.Bootstrap {
		if ai, err := peer.AddrInfoFromString(a); err == nil {
			boot[ai.ID] = true
		}
	}
	gt := newGate(cfg.Registered, boot)
	opts := []libp2p.Option{
		libp2p.Identity(cfg.Identity),
		libp2p.ConnectionGater(gt),
		libp2p.ListenAddrStrings(cfg.Listen...),
		// TLS 1.3 only (TCP; QUIC is TLS 1.3 too): Noise's X25519 and
		// ChaCha20-Poly1305 are refused under fips140=only, and one
		// handshake everywhere keeps FIPS and default nodes compatible.
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.DisableRelay(),
		libp2p.ConnectionManager(cm),
		// The resource manager takes libp2p's defaults.
	}
	reg := cfg.Registerer
	if reg == nil {
		// Not libp2p.DisableMetrics: in go-libp2p v0.51.0 the event bus then
		// still registers its collectors on prometheus.DefaultRegisterer. A
		// private registry keeps libp2p's metrics out of sight instead.
		reg = prometheus.NewRegistry()
	}
	opts = append(opts, libp2p.PrometheusRegisterer(reg))
	// An identity held by a signer (SignerKey) refuses Raw, from which
	// libp2p would derive the QUIC keys: derive them through the signer.
	closeQUIC := func() error { return nil }
	reset, token, held, err := quicKeys(cfg.Identity)
	if err != nil {
		_ = cm.Close()
		return nil, fmt.Errorf("p2p: identity: %w", err)
	}
	if held {
		opts = append(opts, quicReuse(reset, token, reg, &closeQUIC))
	}
	lh, err := libp2p.New(opts...)
	if err != nil {
		_ = cm.Close()
		_ = closeQUIC()
		return nil, fmt.Errorf("p2p: libp2p host: %w", err)
	}

	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &Host{
		cfg:         cfg,
		log:         cfg.Logger.With("component", "p2p"),
		m:           m,
		host:        lh,
		closeQUIC:   closeQUIC,
		ctx:         hctx,
		cancel:      cancel,
		known:       make(map[peer.ID]*peerState),
		gate:        gt,
		mesh:        newMeshTracer(cfg.Topic),
		inbound:     make(chan struct{}, maxInboundRounds),
		lastInbound: make(map[peer.ID]time.Time),
	}
	fail := func(err error) (*Host, error) {
		cancel()
		_ = lh.Close()
		_ = closeQUIC()
		return nil, err
	}

	gp := pubsub.DefaultGossipSubParams()
	gp.HeartbeatInterval = 250 * time.Millisecond
	ps, err := pubsub.NewGossipSub(hctx, lh,
		// Every payload is signed by its issuer (events, checkpoints) and
		// verified by the validator, so gossipsub's own per-message
		// signature would be a second Ed25519 verify per hop for nothing:
		// messages go unsigned, identified by the hash of their content
		// (a replayed payload is the same message; a forged one fails the
		// validator), between registered peers only (the gate).
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMessageIdFn(func(m *pubsubpb.Message) string {
			h := sha256.Sum256(m.Data)
			return string(h[:])
		}),
		pubsub.WithMaxMessageSize(cfg.MaxMessageSize+envelopeOverhead),
		pubsub.WithGossipSubParams(gp),
		pubsub.WithPeerScore(scoreParams(cfg.Topic), scoreThresholds()),
		// Our own events go to every topic peer at once, not only to the
		// mesh: fastest first hop, and a publish right after start-up (before
		// the first heartbeat has built a mesh) still goes out.
		pubsub.WithFloodPublish(true),
		pubsub.WithValidateQueueSize(1024),
		// One validation worker: inline validators on several workers can
		// still deliver two events of one issuer out of order (NumCPU
		// workers by default), and the node's log then refolds its whole
		// state. Validation is a signature check and a store write; one
		// worker keeps up with a consortium's event rate.
		pubsub.WithValidateWorkers(1),
		pubsub.WithPeerOutboundQueueSize(256),
		pubsub.WithLogger(h.log.With("component", "gossipsub")),
		pubsub.WithRawTracer(h.mesh),
		// Gossip goes only to and from registered peers.
		pubsub.WithPeerFilter(func(p peer.ID, _ string) bool { return gt.trusted(p) }),
	)
	if err != nil {
		return fail(fmt.Errorf("p2p: gossipsub: %w", err))
	}
	h.ps = ps
	// Inline validation: validators run on pubsub's validation workers in
	// arrival order instead of one goroutine each, which keeps the events of
	// one issuer from being reordered by the validation step itself.
	if err := ps.RegisterTopicValidator(cfg.Topic, h.validate, pubsub.WithValidatorInline(true)); err != nil {
		return fail(fmt.Errorf("p2p: topic validator: %w", err))
	}
	if h.topic, err = ps.Join(cfg.Topic); err != nil {
		return fail(fmt.Errorf("p2p: join topic: %w", err))
	}
	if h.sub, err = h.topic.Subscribe(); err != nil {
		return fail(fmt.Errorf("p2p: subscribe: %w", err))
	}

	lh.SetStreamHandler(protocol.ID(cfg.Protocol), h.handleStream)
	h.notif = &network.NotifyBundle{
		ConnectedF:    func(_ network.Network, c network.Conn) { h.onConnected(c.RemotePeer()) },
		DisconnectedF: func(_ network.Network, c network.Conn) { h.onDisconnected(c.RemotePeer()) },
	}
	lh.Network().Notify(h.notif)

	h.spawn(h.drain)
	h.spawn(h.antiEntropyLoop)
	if cfg.Targets != nil {
		h.spawn(h.keepConnected)
	}
	for _, ai := range bootstrap {
		if ai.ID == lh.ID() {
			continue
		}
		h.mu.Lock()
		h.state(ai.ID).bootstrap = true
		h.mu.Unlock()
		lh.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
		lh.ConnManager().Protect(ai.ID, "keymesh-bootstrap")
		h.spawn(func() { h.bootstrapLoop(ai) })
	}
	if cfg.EnableMDNS {
		sum := sha256.Sum256([]byte(cfg.Topic))
		h.mdns = mdns.NewMdnsService(lh, "keymesh-"+hex.EncodeToString(sum[:8]), mdnsNotifee{h})
		if err := h.mdns.Start(); err != nil {
			_ = h.Close()
			return nil, fmt.Errorf("p2p: mdns: %w", err)
		}
	}
	h.log.Info("p2p host started", "peer_id", lh.ID().String(), "addrs", h.Addrs())
	return h, nil
}

// spawn runs f in a goroutine that Close waits for. It returns false (and does
// not run f) once the host is closing.
func (h *Host) spawn(f func()) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f()
	}()
	return true
}

// state returns the state of p, creating it. h.mu must be held.
func (h *Host) state(p peer.ID) *peerState {
	st := h.known[p]
	if st == nil {
		st = &peerState{round: make(chan struct{}, 1)}
		h.known[p] = st
	}
	return st
}

// ID returns the host's peer id.
func (h *Host) ID() peer.ID { return h.host.ID() }

// Addrs returns the host's listen multiaddrs with /p2p/<id>, suitable for
// other hosts' Bootstrap lists.
func (h *Host) Addrs() []string {
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.host.ID(), Addrs: h.host.Addrs()})
	if err != nil {
		return nil
	}
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}

// Connect dials the peer at addr (a multiaddr with /p2p/<id>) and returns
// once connected, or with ctx's error.
func (h *Host) Connect(ctx context.Context, addr string) error {
	if h.ctx.Err() != nil {
		return ErrClosed
	}
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		return fmt.Errorf("p2p: address %q: %w", addr, err)
	}
	if ai.ID == h.host.ID() {
		return fmt.Errorf("p2p: address %q is this host", addr)
	}
	h.mu.Lock()
	h.state(ai.ID)
	h.mu.Unlock()
	if err := h.host.Connect(ctx, *ai); err != nil {
		return fmt.Errorf("p2p: connect %s: %w", ai.ID, err)
	}
	return nil
}

// Peers returns the peers the host knows of — bootstrap peers and every peer
// that has been connected — sorted by id.
func (h *Host) Peers() []PeerInfo {
	now := time.Now()
	h.mu.Lock()
	ids := make([]peer.ID, 0, len(h.known))
	seen := make(map[peer.ID]time.Time, len(h.known))
	for id, st := range h.known {
		ids = append(ids, id)
		seen[id] = st.lastSeen
	}
	h.mu.Unlock()
	for _, id := range h.host.Network().Peers() {
		if _, ok := seen[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out := make([]PeerInfo, 0, len(ids))
	for _, id := range ids {
		pi := PeerInfo{ID: id.String(), LastSeen: seen[id]}
		for _, a := range h.host.Peerstore().Addrs(id) {
			pi.Addrs = append(pi.Addrs, a.String())
		}
		slices.Sort(pi.Addrs)
		if h.host.Network().Connectedness(id) == network.Connected {
			pi.Connected = true
			pi.LastSeen = now
		}
		out = append(out, pi)
	}
	return out
}

// LastSync returns the time of the last completed anti-entropy round (in
// either direction), or the zero time if none has completed.
func (h *Host) LastSync() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastSync
}

// Close stops the host: it leaves the topic, closes every connection, stops
// every goroutine the host started and waits for them. It is idempotent.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		h.mu.Unlock()
		h.cancel()
		h.host.RemoveStreamHandler(protocol.ID(h.cfg.Protocol))
		if h.notif != nil {
			h.host.Network().StopNotify(h.notif)
		}
		var errs []error
		if h.mdns != nil {
			errs = append(errs, h.mdns.Close())
		}
		if h.sub != nil {
			h.sub.Cancel()
		}
		if h.topic != nil {
			// Close fails while the subscription's cancellation is in flight;
			// the topic goes away with pubsub's context anyway.
			_ = h.topic.Close()
		}
		errs = append(errs, h.host.Close(), h.closeQUIC())
		h.wg.Wait()
		h.closeErr = errors.Join(errs...)
		h.log.Info("p2p host closed")
	})
	return h.closeErr
}

func (h *Host) onConnected(p peer.ID) {
	h.mu.Lock()
	h.state(p).lastSeen = time.Now()
	h.mu.Unlock()
	h.spawn(h.updatePeerGauge)
	h.trigger(p)
}

func (h *Host) onDisconnected(p peer.ID) {
	h.mu.Lock()
	if st := h.known[p]; st != nil {
		st.lastSeen = time.Now()
	}
	h.mu.Unlock()
	h.spawn(h.updatePeerGauge)
}

func (h *Host) updatePeerGauge() {
	h.m.peers.Set(float64(len(h.host.Network().Peers())))
}

// meshPeers returns the connected peers in our gossipsub mesh for the topic.
func (h *Host) meshPeers() []peer.ID {
	return h.mesh.peers(func(p peer.ID) bool {
		return h.host.Network().Connectedness(p) == network.Connected
	})
}

// bootstrapLoop keeps the host connected to one bootstrap peer, dialling it
// with jittered exponential back-off while it is disconnected.
func (h *Host) bootstrapLoop(ai peer.AddrInfo) {
	backoff := backoffMin
	for {
		wait := time.Second // poll interval while connected
		if h.host.Network().Connectedness(ai.ID) != network.Connected {
			ctx, cancel := context.WithTimeout(h.ctx, dialTimeout)
			err := h.host.Connect(ctx, ai)
			cancel()
			if err != nil {
				if h.ctx.Err() != nil {
					return
				}
				h.log.Debug("bootstrap dial failed", "peer", ai.ID.String(), "err", err, "retry_in", backoff)
				wait = jitter(backoff)
				backoff = min(2*backoff, backoffMax)
			} else {
				h.log.Debug("bootstrap peer connected", "peer", ai.ID.String())
				backoff = backoffMin
			}
		}
		if !sleep(h.ctx, wait) {
			return
		}
	}
}

// jitter returns d ± 20 %.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// sleep waits for d or ctx; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

type mdnsNotifee struct{ h *Host }

// HandlePeerFound dials a peer found by mDNS.
func (n mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	h := n.h
	if ai.ID == h.host.ID() {
		return
	}
	h.spawn(func() {
		ctx, cancel := context.WithTimeout(h.ctx, dialTimeout)
		defer cancel()
		if err := h.host.Connect(ctx, ai); err != nil {
			h.log.Debug("mdns peer dial failed", "peer", ai.ID.String(), "err", err)
		}
	})
}
