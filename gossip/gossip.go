// Package gossip holds the words the event log (package mesh) and the p2p
// transport (package p2p) share, so that neither imports the other and
// node hands the log to the host as it is: the [Verdict] on a delivered
// event, with gossipsub's meaning, and a [Want], a range of an issuer's
// events that a log asks every peer for.
//
// It imports nothing; mesh and p2p both stand on it.
package gossip

import "fmt"

// Verdict is what a log decided about a delivered event (from gossip, a
// pulled batch or a local publish), with gossipsub's meaning. Its numeric
// values are part of the API (pinned by a test).
type Verdict int

// The verdicts.
const (
	// Accept stores (or keeps as proof) and applies the event; gossip
	// forwards it.
	Accept Verdict = iota
	// Ignore drops the event without blaming the sender: a duplicate, an
	// event that waits for its predecessor or dependencies, one dated in
	// the future.
	Ignore
	// Reject drops the event and blames the sender (bad signature, foreign
	// network, broken chain, forged clock); gossipsub lowers its score.
	Reject
)

// String returns "accept", "ignore" or "reject" (the metrics label).
func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case Ignore:
		return "ignore"
	case Reject:
		return "reject"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// Want is a range of an issuer's events, (After, After+Max], to ask every
// peer for in every anti-entropy round, whatever the peer's summary says
// (the mesh asks for the events that locate an equivocation).
type Want struct {
	Issuer string
	After  uint64
	Max    int
}
