package mesh

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/network"
)

// Evidence is self-contained proof that an issuer equivocated: two events
// it signed that cannot both be in one chain — two different events at one
// position, or an event whose predecessor is not the event held at the
// position before it. Anyone can check it without the rest of the log, so
// every node that holds the same evidence taints the issuer from the same
// position.
//
// The taint position is where the two branches provably part: for two
// events at position s with the same predecessor, s (exact); with
// different predecessors, at most s-1; for an event at s+1 that does not
// follow the event at s, at most s. An inexact position is refined as
// nodes exchange their branches' events (Log.Wants), so it decreases to
// the real fork, and a node keeps only its lowest evidence per issuer.
type Evidence struct {
	A, B  *event.Event // pruned: no attachments
	At    uint64       // the issuer's events from At on have no effect
	Exact bool         // At is the fork itself, not an upper bound
}

// EvidenceFormat is the first byte of encoded evidence, distinct from
// event format versions and from checkpoints.
const EvidenceFormat = 0xE2

var errNotEvidence = errors.New("mesh: not equivocation evidence")

// evidenceOf returns the evidence that a and b (verified events of one
// issuer) give, if any.
func evidenceOf(a, b *event.Event) (*Evidence, bool) {
	if a.Issuer != b.Issuer || a.Network != b.Network {
		return nil, false
	}
	aid, bid := a.ID(), b.ID()
	if a.Seq > b.Seq || a.Seq == b.Seq && bytes.Compare(aid[:], bid[:]) > 0 {
		a, b, aid, bid = b, a, bid, aid // one canonical order
	}
	switch {
	case a.Seq == b.Seq && aid != bid:
		if a.Prev == b.Prev || a.Seq == 1 {
			return &Evidence{A: a.Pruned(), B: b.Pruned(), At: a.Seq, Exact: true}, true
		}
		return &Evidence{A: a.Pruned(), B: b.Pruned(), At: a.Seq - 1}, true
	case b.Seq == a.Seq+1 && b.Prev != aid:
		return &Evidence{A: a.Pruned(), B: b.Pruned(), At: a.Seq}, true
	}
	return nil, false
}

// Marshal encodes the evidence: EvidenceFormat || uint32 len(A) || A ||
// uint32 len(B) || B (both events in their binary form, without
// attachments; A the lower position, or the lower ID at one position).
func (v *Evidence) Marshal() []byte {
	a, b := v.A.Marshal(), v.B.Marshal()
	out := make([]byte, 0, 1+8+len(a)+len(b))
	out = append(out, EvidenceFormat)
	out = binary.BigEndian.AppendUint32(out, uint32(len(a)))
	out = append(out, a...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(b)))
	return append(out, b...)
}

// parseEvidence parses and checks encoded evidence for network nid: both
// events parse, verify and belong to nid, and they do prove equivocation.
func parseEvidence(raw []byte, nid network.NetworkID) (*Evidence, error) {
	if len(raw) < 9 || raw[0] != EvidenceFormat || len(raw) > 2*MaxEventSize {
		return nil, errNotEvidence
	}
	rest := raw[1:]
	var evs [2]*event.Event
	for i := range evs {
		if len(rest) < 4 {
			return nil, errNotEvidence
		}
		n := int(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if n > len(rest) || n > MaxEventSize {
			return nil, errNotEvidence
		}
		e, err := event.Parse(rest[:n])
		if err != nil || len(e.Attachments) != 0 {
			return nil, fmt.Errorf("%w: event %d: %v", errNotEvidence, i, err)
		}
		if e.Network != nid || e.Verify() != nil {
			return nil, errNotEvidence
		}
		evs[i] = e
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return nil, errNotEvidence
	}
	v, ok := evidenceOf(evs[0], evs[1])
	if !ok || v.A.ID() != evs[0].ID() {
		return nil, errNotEvidence // not evidence, or not in canonical order
	}
	return v, nil
}

// better reports whether v taints from an earlier position than old (or
// as early, exactly where old was only an upper bound).
func (v *Evidence) better(old *Evidence) bool {
	return old == nil || v.At < old.At || v.At == old.At && v.Exact && !old.Exact
}
