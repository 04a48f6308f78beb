package mesh

import (
	mrand "math/rand/v2"
	"testing"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/policy"
)

// TestFoldKMIPAttrs checks the fold of KMIPAttrs events: only the owner
// org's count, the latest in the fold's order wins, and every delivery
// order gives the same result.
func TestFoldKMIPAttrs(t *testing.T) {
	w := newWorld(t, []string{"Org1MSP", "Org2MSP"}, 2)
	iss := newIssuers(w)
	var evs [][]byte
	for i, n := range w.nodes {
		evs = append(evs, iss[i].event(t, event.KindNodeRecord, w.record(t, n)))
	}
	mk := func(owner, name string) event.KMIPAttrs {
		return event.KMIPAttrs{Key: "trade/k", Owner: policy.Party("kmip:" + owner), Attrs: []event.KMIPAttr{{Name: "Name", TTLV: []byte(name)}}}
	}
	evs = append(evs,
		iss[0].event(t, event.KindKeyCreate, event.KeyCreate{Key: "trade/k", PreActive: true}),
		iss[0].event(t, event.KindKMIPAttrs, mk("mongo", "first")),
		iss[1].event(t, event.KindKMIPAttrs, mk("mongo", "second")),    // Org1's other node, later: wins
		iss[2].event(t, event.KindKMIPAttrs, mk("mallory", "foreign")), // Org2 does not own trade/
	)
	r := mrand.New(mrand.NewPCG(1, 2))
	for round := range 6 {
		order := append([][]byte(nil), evs...)
		if round > 0 {
			r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		l := newLog(t, w, 3)
		deliverAll(l, order)
		l.View(func(s *State) {
			k := s.Keys["trade/k"]
			if k == nil || k.KMIP == nil {
				t.Fatalf("round %d: no KMIP attributes folded", round)
			}
			if k.KMIP.Owner != "kmip:mongo" || len(k.KMIP.Attrs) != 1 || string(k.KMIP.Attrs[0].TTLV) != "second" {
				t.Errorf("round %d: KMIP = %+v, want Org1's latest", round, k.KMIP)
			}
			if got := s.KMIPOwned("kmip:mongo"); len(got) != 1 || got[0] != "trade/k" {
				t.Errorf("round %d: KMIPOwned(kmip:mongo) = %v, want [trade/k]", round, got)
			}
			if got := s.KMIPOwned("kmip:mallory"); len(got) != 0 {
				t.Errorf("round %d: KMIPOwned(kmip:mallory) = %v, want none (Org2's event does not count)", round, got)
			}
		})
	}
}

// TestKMIPOwnedFollowsTheFold: the index of keys by KMIP owner (what a
// KMIP Locate looks at) follows the fold: a key whose KMIP side moves to
// another owner leaves the first owner's set, in every delivery order.
func TestKMIPOwnedFollowsTheFold(t *testing.T) {
	w := newWorld(t, []string{"Org1MSP"}, 1)
	iss := newIssuers(w)
	evs := [][]byte{iss[0].event(t, event.KindNodeRecord, w.record(t, w.nodes[0]))}
	mk := func(key, owner string) event.KMIPAttrs {
		return event.KMIPAttrs{Key: key, Owner: policy.Party("kmip:" + owner)}
	}
	evs = append(evs,
		iss[0].event(t, event.KindKeyCreate, event.KeyCreate{Key: "trade/k", PreActive: true}),
		iss[0].event(t, event.KindKeyCreate, event.KeyCreate{Key: "trade/j", PreActive: true}),
		iss[0].event(t, event.KindKMIPAttrs, mk("trade/k", "mongo")),
		iss[0].event(t, event.KindKMIPAttrs, mk("trade/j", "mongo")),
		iss[0].event(t, event.KindKMIPAttrs, mk("trade/k", "cassandra")), // later: moves trade/k
	)
	r := mrand.New(mrand.NewPCG(3, 4))
	for round := range 6 {
		order := append([][]byte(nil), evs...)
		if round > 0 {
			r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		l := newLog(t, w, 0)
		deliverAll(l, order)
		l.View(func(s *State) {
			if got := s.KMIPOwned("kmip:mongo"); len(got) != 1 || got[0] != "trade/j" {
				t.Errorf("round %d: KMIPOwned(kmip:mongo) = %v, want [trade/j]", round, got)
			}
			if got := s.KMIPOwned("kmip:cassandra"); len(got) != 1 || got[0] != "trade/k" {
				t.Errorf("round %d: KMIPOwned(kmip:cassandra) = %v, want [trade/k]", round, got)
			}
		})
	}
}
