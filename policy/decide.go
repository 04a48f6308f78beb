package policy

import (
	"fmt"
	"slices"
	"time"
)

// Decision is the outcome of [State.Decide].
type Decision struct {
	Allowed bool
	// Reason is "grant <id>" when allowed, else why not (see the package
	// doc).
	Reason string
	// GrantID and Party name the grant that allowed the request or, for a
	// denial by a grant's state (revoked, expired, not yet valid), the grant
	// whose state is reported. They are empty otherwise.
	GrantID string
	Party   Party
	// Key and Op repeat the request, so that the decision can be audited
	// and turned into an error on its own.
	stale bool
	Key   string
	Op    Op
}

// Denial reasons.
const (
	ReasonRevoked     = "grant revoked"
	ReasonExpired     = "grant expired"
	ReasonNotYetValid = "grant not yet valid"
	// ReasonUnreadable denies every request on a key whose grants and
	// revocations could not all be read back (State.Suspend).
	ReasonUnreadable = "policy of this key unreadable"
)

// Ranks of a grant against a request: how close it came to allowing it.
const (
	rankNone = iota
	rankNoOp
	rankRevoked
	rankExpired
	rankNotYetValid
	rankAllowed
)

var (
	reasonNoEncrypt = "operation " + OpEncrypt.String() + " not granted"
	reasonNoDecrypt = "operation " + OpDecrypt.String() + " not granted"
)

// timeCheck ranks g's bounds against at: rankAllowed if they hold.
func timeCheck(g *Grant, at time.Time) int {
	if !g.NotBefore.IsZero() && at.Before(g.NotBefore) {
		return rankNotYetValid
	}
	if !g.NotAfter.IsZero() && !at.Before(g.NotAfter) {
		return rankExpired
	}
	return rankAllowed
}

// timeRank is timeCheck of ge's grant.
func (ge *grantEntry) timeRank(at time.Time) int {
	if !ge.notBefore.isZero() && !ge.notBefore.reachedBy(at) {
		return rankNotYetValid
	}
	if !ge.notAfter.isZero() && ge.notAfter.reachedBy(at) {
		return rankExpired
	}
	return rankAllowed
}

func (ge *grantEntry) rank(op Op, at time.Time) int {
	switch {
	case !ge.ops.Has(op):
		return rankNoOp
	case ge.revoked:
		return rankRevoked
	}
	return ge.timeRank(at)
}

// Decide reports whether principal p may perform op on key at time at: it
// may iff some party of p has an in-force grant for key whose Ops include op
// and whose bounds hold (NotBefore <= at < NotAfter). When several grants
// allow, the one with the smallest ID is named. A denial carries the most
// specific reason (see the package doc). There is no administrator bypass.
//
// Decide takes only the read lock and allocates nothing when it allows.
func (s *State) Decide(p Principal, key string, op Op, at time.Time) Decision {
	d := s.decide(p, key, op, at)
	// The gate runs outside the lock (it may consult whoever feeds the
	// state), and only for what would be allowed: a denial needs no
	// vouching.
	if g := s.gate.Load(); g != nil && d.Allowed {
		if err := (*g)(key, at); err != nil {
			return Decision{Key: key, Op: op, Reason: err.Error(), stale: true}
		}
	}
	return d
}

func (s *State) decide(p Principal, key string, op Op, at time.Time) Decision {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.suspended) > 0 {
		if s.suspendedLocked(key, "") != nil || slices.ContainsFunc(p.Parties, func(q Party) bool { return s.suspendedLocked(key, q) != nil }) {
			return Decision{Key: key, Op: op, Reason: ReasonUnreadable}
		}
	}
	byParty := s.keys[key]
	var best *grantEntry // the best live grant, while it is the best
	bestRank := rankNone
	var bestID string
	var bestParty Party
	for _, party := range p.Parties {
		pe := byParty[party]
		if pe == nil {
			continue
		}
		for _, ge := range pe.grants {
			if p.Custodian != "" && ge.custodian != "" && ge.custodian != p.Custodian && party.Kind() != KindOrg {
				continue
			}
			r := ge.rank(op, at)
			if r > bestRank || r == bestRank && ge.g.ID < bestID {
				best, bestRank, bestID, bestParty = ge, r, ge.g.ID, ge.party
			}
		}
		if bestRank > rankRevoked {
			continue // no ended grant can do better
		}
		// The ended grants only name the reason of a denial: the one
		// with the smallest ID among those of the caller's custodian
		// that have op, which the pair's summaries hold (the grants
		// themselves are in the archive).
		if pe.hist == nil {
			continue
		}
		for i := range pe.hist.sums {
			sum := &pe.hist.sums[i]
			if p.Custodian != "" && sum.custodian != "" && sum.custodian != p.Custodian && party.Kind() != KindOrg {
				continue
			}
			r, id := rankNoOp, ""
			if op.valid() && sum.min[op] != "" {
				r, id = rankRevoked, sum.min[op]
			}
			if r > bestRank || r == bestRank && r == rankRevoked && id < bestID {
				best, bestRank, bestID, bestParty = nil, r, id, pe.hist.party
			}
		}
	}
	d := Decision{Key: key, Op: op}
	switch bestRank {
	case rankAllowed:
		d.Allowed = true
		d.Reason = best.reason
	case rankNone:
		d.Reason = "no grant for " + p.String() + " on this key"
		return d
	case rankNoOp:
		switch op {
		case OpEncrypt:
			d.Reason = reasonNoEncrypt
		case OpDecrypt:
			d.Reason = reasonNoDecrypt
		default:
			d.Reason = "operation " + op.String() + " not granted"
		}
		return d
	case rankRevoked:
		d.Reason = ReasonRevoked
	case rankExpired:
		d.Reason = ReasonExpired
	case rankNotYetValid:
		d.Reason = ReasonNotYetValid
	}
	d.GrantID = bestID
	d.Party = bestParty
	return d
}

// Err returns nil if d allowed the request, and otherwise a *[DeniedError]
// that wraps [ErrNotGranted].
func (d Decision) Err() error {
	if d.Allowed {
		return nil
	}
	reason := d.Reason
	if reason == "" {
		reason = "no decision"
	}
	if d.stale {
		return &StaleError{Key: d.Key, Op: d.Op, Reason: reason}
	}
	return &DeniedError{Key: d.Key, Op: d.Op, Reason: reason}
}

// Stale reports whether d was refused by the gate (see State.SetGate):
// no grant was consulted.
func (d Decision) Stale() bool { return d.stale }

// StaleError is a request refused because the node cannot vouch for the
// key's policy now. It wraps [ErrStalePolicy].
type StaleError struct {
	Key    string
	Op     Op
	Reason string
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("policy: %s on %s refused: %s", e.Op, quote(e.Key), e.Reason)
}

// Unwrap returns [ErrStalePolicy].
func (e *StaleError) Unwrap() error { return ErrStalePolicy }

// DeniedError is a denied request. Its message names the operation, the key
// and the reason, e.g.
//
//	policy: encrypt on "demo/ssn" denied: no grant for token:app on this key
type DeniedError struct {
	Key    string
	Op     Op
	Reason string
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("policy: %s on %s denied: %s", e.Op, quote(e.Key), e.Reason)
}

// Unwrap returns [ErrNotGranted].
func (e *DeniedError) Unwrap() error { return ErrNotGranted }
