package mesh

import (
	"testing"
	"time"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/policy"
)

// TestRefoldReadsDroppedPayloads: a stored grant's payload lives in the
// store, not in memory, yet a refold of its key (here after another node of
// the owner org that touched the key is deregistered) still sees its
// Observed set: the grant that observed the revocation stays in force, in a
// running log and in one reopened from the store; and anti-entropy answers
// carry the whole events.
func TestRefoldReadsDroppedPayloads(t *testing.T) {
	w := newWorld(t, []string{"Org1MSP", "Org2MSP"}, 2)
	iss := newIssuers(w)
	a, b := iss[0], iss[1] // both of Org1, which owns trade/
	var evs [][]byte
	for i, n := range w.nodes {
		evs = append(evs, iss[i].event(t, event.KindNodeRecord, w.record(t, n)))
	}
	const key, party = "trade/k", policy.Party("token:p")
	evs = append(evs, a.event(t, event.KindKeyCreate, event.KeyCreate{Key: key}))
	evs = append(evs, b.event(t, event.KindGrant, policy.Grant{ID: IDPrefix(b.n.key) + "g0", Key: key, Party: "token:other", Ops: policy.OpsAll, Issuer: "b", IssuedAt: w.t0}))
	r1 := IDPrefix(a.n.key) + "r1"
	evs = append(evs, a.event(t, event.KindRevoke, policy.Revocation{ID: r1, Key: key, Party: party, Issuer: "a", IssuedAt: w.t0}))
	evs = append(evs, a.event(t, event.KindGrant, policy.Grant{ID: IDPrefix(a.n.key) + "g1", Key: key, Party: party, Ops: policy.OpsAll, Issuer: "a", IssuedAt: w.t0, Observed: []string{r1}}))
	d, err := network.SignDeregister(w.admins["Org1MSP"], w.g.ID(), network.Deregister{Org: "Org1MSP", SignKey: b.n.key, LastSeq: 1, At: w.t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	evs = append(evs, a.event(t, event.KindDeregister, d))

	l := newLog(t, w, 2)
	deliverAll(l, evs)
	if l.Height() != len(evs) {
		t.Fatalf("Height() = %d, want %d", l.Height(), len(evs))
	}
	p := policy.Principal{Parties: []policy.Party{party}}
	at := w.t0.Add(2 * time.Hour)
	check := func(l *Log, what string) {
		t.Helper()
		if d := l.Policy().Decide(p, key, policy.OpDecrypt, at); !d.Allowed {
			t.Fatalf("%s: Decide = %+v, want allowed by the grant that observed %s", what, d, r1)
		}
		if d := l.Policy().Decide(policy.Principal{Parties: []policy.Party{"token:other"}}, key, policy.OpDecrypt, at); d.Allowed {
			t.Fatalf("%s: the deregistered node's grant after its cut still counts: %+v", what, d)
		}
	}
	check(l, "running log")
	c := l.chains[a.n.key]
	for _, e := range c.events {
		if e.ev.Kind == event.KindGrant && (!e.stored || e.full != nil || e.payload != nil) {
			t.Fatalf("stored grant %d keeps its payload in memory", e.ev.Seq)
		}
	}
	raws, err := l.Events(IssuerID(a.n.key), 0, 100)
	if err != nil || len(raws) != len(c.events) {
		t.Fatalf("Events = %d, %v, want %d events", len(raws), err, len(c.events))
	}
	for i, raw := range raws {
		ev, err := event.Parse(raw)
		if err != nil || ev.ID() != c.events[i].id {
			t.Fatalf("Events()[%d] is not the stored event: %v", i, err)
		}
	}
	l2, err := OpenLog(l.store, w.g, w.nodes[2].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check(l2, "reopened log")
	l2.mu.Lock()
	l2.state.refoldIssuer(b.n.key)
	l2.mu.Unlock()
	check(l2, "reopened log, refolded")
}
