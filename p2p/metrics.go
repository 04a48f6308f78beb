package p2p

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the host's Prometheus collectors. They exist (and count) even
// when no registerer is configured, so the host never branches on it.
type metrics struct {
	gossip    *prometheus.CounterVec // remote gossip messages by validation result
	publish   *prometheus.CounterVec // local publishes by outcome
	rounds    *prometheus.CounterVec // anti-entropy rounds by direction and result
	pulled    prometheus.Counter     // events accepted from anti-entropy batches
	rejected  prometheus.Counter     // events rejected from anti-entropy batches
	oversize  *prometheus.CounterVec // messages/frames refused for size, by path
	peers     prometheus.Gauge       // connected peers
	lastRound prometheus.Gauge       // unix time of the last completed round
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		gossip: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "keymesh", Subsystem: "p2p", Name: "gossip_messages_total",
			Help: "Gossip messages received from peers, by validation result (accept, ignore, reject).",
		}, []string{"result"}),
		publish: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "keymesh", Subsystem: "p2p", Name: "publish_total",
			Help: "Local publishes, by outcome (sent, no_peers: published while the topic had no peers, error).",
		}, []string{"outcome"}),
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "keymesh", Subsystem: "p2p", Name: "antientropy_rounds_total",
			Help: "Anti-entropy rounds, by direction (outbound, inbound) and result (ok, busy, error).",
		}, []string{"direction", "result"}),
		pulled: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "keymesh", Subsystem: "p2p", Name: "antientropy_events_pulled_total",
			Help: "Events pulled by anti-entropy and accepted by the log.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "keymesh", Subsystem: "p2p", Name: "antientropy_events_rejected_total",
			Help: "Events pulled by anti-entropy and rejected by the log.",
		}),
		oversize: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "keymesh", Subsystem: "p2p", Name: "oversize_refused_total",
			Help: "Messages and frames refused for exceeding the maximum message size, by path (publish, gossip, stream).",
		}, []string{"path"}),
		peers: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "keymesh", Subsystem: "p2p", Name: "peers",
			Help: "Connected peers.",
		}),
		lastRound: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "keymesh", Subsystem: "p2p", Name: "antientropy_last_round_timestamp_seconds",
			Help: "Unix time of the last completed anti-entropy round.",
		}),
	}
	// Pre-create the label values so that zero counts are exported.
	for _, r := range []string{"accept", "ignore", "reject"} {
		m.gossip.WithLabelValues(r)
	}
	for _, o := range []string{"sent", "no_peers", "error"} {
		m.publish.WithLabelValues(o)
	}
	for _, d := range []string{"outbound", "inbound"} {
		for _, r := range []string{"ok", "busy", "error"} {
			m.rounds.WithLabelValues(d, r)
		}
	}
	for _, p := range []string{"publish", "gossip", "stream"} {
		m.oversize.WithLabelValues(p)
	}
	if reg == nil {
		return m, nil
	}
	// Register, reusing collectors already registered by a previous host on
	// the same registerer (a node restarting its host in-process).
	var errs []error
	register(reg, &m.gossip, &errs)
	register(reg, &m.publish, &errs)
	register(reg, &m.rounds, &errs)
	register(reg, &m.pulled, &errs)
	register(reg, &m.rejected, &errs)
	register(reg, &m.oversize, &errs)
	register(reg, &m.peers, &errs)
	register(reg, &m.lastRound, &errs)
	return m, errors.Join(errs...)
}

// register registers *c on reg; if an equal collector is already registered,
// *c is replaced by it.
func register[C prometheus.Collector](reg prometheus.Registerer, c *C, errs *[]error) {
	err := reg.Register(*c)
	if err == nil {
		return
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			*c = existing
			return
		}
	}
	*errs = append(*errs, err)
}
