package policy

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// event is a grant or a revocation, as gossip delivers them: a
// revocation with the position of its event, a grant with its event's
// causal reach (nil: none).
type event struct {
	g     *Grant
	reach map[string]uint64
	r     *Revocation
	at    Position
}

func (e event) addTo(s *State) error {
	if e.g != nil {
		if e.reach == nil {
			return s.AddGrant(*e.g)
		}
		return s.AddGrantReaching(*e.g, func(chain string) uint64 { return e.reach[chain] })
	}
	return s.AddRevocationAt(*e.r, e.at)
}

// observes is the definition: a grant observes a revocation that its
// Observed names or whose position its reach covers.
func (e event) observes(r event) bool {
	return slices.Contains(e.g.Observed, r.r.ID) || r.at.Chain != "" && r.at.Seq <= e.reach[r.at.Chain]
}

var (
	propKeys    = []string{"k/a", "k/b", "k/c"}
	propParties = []Party{app, AdminParty, org1, alice, "kmip:db"}
)

// randomHistory returns the events of a random history. Events are issued
// on three chains; most revocations have a position there. Each grant's
// Observed set is drawn from the revocations of its (key, party) issued
// before it (an issuer that had seen some of them), with now and then an ID
// of another pair's revocation or of one never issued, which must not
// matter; half the grants also have a causal reach: per chain, a prefix of
// what was issued before them.
func randomHistory(rng *rand.Rand) []event {
	chains := []string{"c0", "c1", "c2"}
	seqs := map[string]uint64{}
	next := func() Position {
		c := chains[rng.IntN(len(chains))]
		seqs[c]++
		return Position{Chain: c, Seq: seqs[c]}
	}
	type pairKey struct {
		key   string
		party Party
	}
	n := 1 + rng.IntN(40)
	revsOf := map[pairKey][]string{}
	var all []string
	var events []event
	for i := range n {
		pk := pairKey{propKeys[rng.IntN(len(propKeys))], propParties[rng.IntN(len(propParties))]}
		issued := t0.Add(time.Duration(i) * time.Minute)
		if rng.IntN(10) < 4 {
			id := fmt.Sprintf("r%02d", i)
			revsOf[pk] = append(revsOf[pk], id)
			all = append(all, id)
			at := next()
			if rng.IntN(10) == 0 {
				at = Position{}
			}
			events = append(events, event{r: &Revocation{ID: id, Key: pk.key, Party: pk.party, Issuer: "node1", IssuedAt: issued}, at: at})
			continue
		}
		var reach map[string]uint64
		if rng.IntN(2) == 0 {
			reach = map[string]uint64{}
			for _, c := range chains {
				reach[c] = rng.Uint64N(seqs[c] + 1)
			}
		}
		own := next()
		if reach != nil {
			reach[own.Chain] = max(reach[own.Chain], own.Seq-1)
		}
		gr := Grant{
			ID:       fmt.Sprintf("g%02d", i),
			Key:      pk.key,
			Party:    pk.party,
			Ops:      Ops(1+rng.IntN(3)) << 1, // encrypt, decrypt or both
			Issuer:   fmt.Sprintf("node%d", rng.IntN(3)),
			IssuedAt: issued,
		}
		hour := func() time.Time { return t0.Add(time.Duration(rng.IntN(7)-3) * time.Hour) }
		switch rng.IntN(4) {
		case 1:
			gr.NotBefore = hour()
		case 2:
			gr.NotAfter = hour()
		case 3:
			gr.NotBefore = hour()
			gr.NotAfter = gr.NotBefore.Add(time.Duration(1+rng.IntN(3)) * time.Hour)
		}
		for _, id := range revsOf[pk] {
			if rng.IntN(10) < 7 {
				gr.Observed = append(gr.Observed, id)
			}
		}
		if len(all) > 0 && rng.IntN(5) == 0 {
			gr.Observed = append(gr.Observed, all[rng.IntN(len(all))])
		}
		if rng.IntN(10) == 0 {
			gr.Observed = append(gr.Observed, "never-issued")
		}
		rng.Shuffle(len(gr.Observed), func(i, j int) { gr.Observed[i], gr.Observed[j] = gr.Observed[j], gr.Observed[i] })
		events = append(events, event{g: &gr, reach: reach})
	}
	return events
}

// delivery returns the events in a random order, some of them repeated.
func delivery(rng *rand.Rand, events []event) []event {
	out := slices.Clone(events)
	for range rng.IntN(len(events) + 1) {
		out = append(out, events[rng.IntN(len(events))])
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// oracle decides straight from the definition, with no index: allowed iff
// some party of p has a grant of key with op, within bounds, that observes
// every revocation of its (key, party). It returns the smallest such grant
// ID.
func oracle(events []event, p Principal, key string, op Op, at time.Time) (bool, string) {
	best := ""
	for _, e := range events {
		gr := e.g
		if gr == nil || gr.Key != key || !slices.Contains(p.Parties, gr.Party) || !gr.Ops.Has(op) {
			continue
		}
		if !gr.NotBefore.IsZero() && at.Before(gr.NotBefore) || !gr.NotAfter.IsZero() && !at.Before(gr.NotAfter) {
			continue
		}
		inForce := true
		for _, o := range events {
			if o.r != nil && o.r.Key == key && o.r.Party == gr.Party && !e.observes(o) {
				inForce = false
			}
		}
		if inForce && (best == "" || gr.ID < best) {
			best = gr.ID
		}
	}
	return best != "", best
}

// TestFoldOrderIndependent checks the fold's promise: the state is a
// function of the set of grants and revocations. Every round builds a random
// history, delivers it to several fresh States in different orders with
// repeats, and requires identical Canonical bytes, identical decisions on a
// grid of requests, and agreement with a naive oracle. Orders alternate
// between a state whose archive takes every ended grant and placed
// revocation and one whose archive refuses a third of them (kept in
// memory instead), so the cold path and the memory path must agree; the
// listings and pages must agree too.
func TestFoldOrderIndependent(t *testing.T) {
	const rounds, orders = 300, 5
	rng := rand.New(rand.NewPCG(20250601, 1))
	principals := []Principal{{}, principal(alice, org1), principal(org1, alice)}
	for _, p := range propParties {
		principals = append(principals, principal(p))
	}
	var times []time.Time
	for h := -4; h <= 4; h++ {
		at := t0.Add(time.Duration(h) * time.Hour)
		times = append(times, at, at.Add(-time.Nanosecond))
	}
	keys := append(slices.Clone(propKeys), "k/none")

	allowedSeen, deniedSeen := 0, 0
	for round := range rounds {
		events := randomHistory(rng)
		var refBytes []byte
		var refDecisions []Decision
		var refListing string
		for order := range orders {
			s := NewState()
			if order%2 == 1 {
				a := newTestArchive()
				a.failSet = func() bool { return rng.IntN(3) == 0 }
				s = NewState(WithArchive(a))
			}
			for _, e := range delivery(rng, events) {
				if err := e.addTo(s); err != nil {
					t.Fatalf("round %d order %d: add = %v, want nil", round, order, err)
				}
			}
			canon := s.Canonical()
			listing := fmt.Sprint(s.GrantsAt("", t0), s.Revocations(""))
			// KMIPKeys: the keys the KMIP party has a grant or a
			// revocation on, whatever the order.
			var kmipWant []string
			for _, e := range events {
				key, party := "", Party("")
				if e.g != nil {
					key, party = e.g.Key, e.g.Party
				} else {
					key, party = e.r.Key, e.r.Party
				}
				if party == "kmip:db" && !slices.Contains(kmipWant, key) {
					kmipWant = append(kmipWant, key)
				}
			}
			slices.Sort(kmipWant)
			if got := s.KMIPKeys("kmip:db"); !slices.Equal(got, kmipWant) && (len(got) > 0 || len(kmipWant) > 0) {
				t.Fatalf("round %d order %d: KMIPKeys(kmip:db) = %v, want %v", round, order, got, kmipWant)
			}
			var paged []Status
			for after := (GrantCursor{}); ; {
				page, next, err := s.GrantsAtPage("", t0, after, 1+rng.IntN(4))
				if err != nil {
					t.Fatalf("round %d order %d: GrantsAtPage = %v", round, order, err)
				}
				paged = append(paged, page...)
				if next == (GrantCursor{}) {
					break
				}
				after = next
			}
			if got := fmt.Sprint(paged); got != fmt.Sprint(s.GrantsAt("", t0)) {
				t.Fatalf("round %d order %d: pages %s, want the listing %s", round, order, got, fmt.Sprint(s.GrantsAt("", t0)))
			}
			var decisions []Decision
			for _, p := range principals {
				for _, key := range keys {
					for _, op := range []Op{OpEncrypt, OpDecrypt} {
						for _, at := range times {
							d := s.Decide(p, key, op, at)
							decisions = append(decisions, d)
							if order > 0 {
								continue
							}
							allowed, id := oracle(events, p, key, op, at)
							if d.Allowed != allowed || allowed && d.GrantID != id {
								t.Fatalf("round %d: Decide(%v, %q, %v, %v) = %+v, want allowed=%v grant %q",
									round, p, key, op, at, d, allowed, id)
							}
							if allowed {
								allowedSeen++
							} else {
								deniedSeen++
							}
						}
					}
				}
			}
			if order == 0 {
				refBytes, refDecisions, refListing = canon, decisions, listing
				continue
			}
			if listing != refListing {
				t.Fatalf("round %d order %d: listings differ from the first order's:\n %s\n %s", round, order, listing, refListing)
			}
			if !bytes.Equal(canon, refBytes) {
				t.Fatalf("round %d order %d: Canonical() differs from the first order's", round, order)
			}
			for i := range decisions {
				if decisions[i] != refDecisions[i] {
					t.Fatalf("round %d order %d: Decide(...) = %+v, want %+v (first order)", round, order, decisions[i], refDecisions[i])
				}
			}
		}
	}
	// The generator must exercise both outcomes, or the test proves little.
	if allowedSeen == 0 || deniedSeen == 0 {
		t.Fatalf("allowed %d, denied %d decisions: generator too one-sided", allowedSeen, deniedSeen)
	}
	t.Logf("%d rounds: %d allowed, %d denied decisions checked against the oracle", rounds, allowedSeen, deniedSeen)
}
