package mesh

import (
	"bytes"
	"errors"
	mrand "math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/kv/kvtest"
	"github.com/keymesh/keymesh/policy"
)

// TestDecodeStoredAsDecode: for every event a log admits (canonical
// payloads: decode accepted them), decodeStored gives exactly what decode
// gives, for every kind; and a payload decode refuses is refused with
// decode's error when json.Unmarshal or Validate refuses it too.
func TestDecodeStoredAsDecode(t *testing.T) {
	w := newWorld(t, []string{"Org1MSP", "Org2MSP", "Org3MSP"}, 2)
	evs := history(t, w, mrand.New(mrand.NewPCG(5, 6)))
	// Grants with every time field set, and a revocation, beside the
	// history's.
	iss := newIssuers(w)
	a := iss[0]
	for i, n := range w.nodes {
		evs = append(evs, iss[i].event(t, event.KindNodeRecord, w.record(t, n)))
	}
	evs = append(evs, a.event(t, event.KindGrant, policy.Grant{ID: IDPrefix(a.n.key) + "gt", Key: "trade/k0", Party: "token:p",
		Ops: policy.OpsDecrypt, NotBefore: w.t0.Add(time.Minute), NotAfter: w.t0.Add(time.Hour), Custodian: "Org1MSP",
		Issuer: "token:admin", IssuedAt: w.t0, Observed: []string{"x-1", "x-2"}}))
	evs = append(evs, a.event(t, event.KindRevoke, policy.Revocation{ID: IDPrefix(a.n.key) + "rt", Key: "trade/k0", Party: "token:p",
		Issuer: "token:admin", IssuedAt: w.t0}))
	kinds := map[event.Kind]int{}
	for i, raw := range evs {
		ev, err := event.Parse(raw)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		want, werr := decode(ev)
		got, gerr := decodeStored(ev)
		if werr != nil {
			continue // not admitted; never stored
		}
		if gerr != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("event %d (%s): decodeStored = %#v, %v; want %#v (decode)", i, ev.Kind, got, gerr, want)
		}
		kinds[ev.Kind]++
	}
	for _, k := range []event.Kind{event.KindKeyCreate, event.KindKeyVersion, event.KindGrant, event.KindRevoke, event.KindKeyShare} {
		if kinds[k] == 0 {
			t.Errorf("no %s event checked", k)
		}
	}
	// A payload that does not even parse, or does not validate, comes back
	// with decode's error.
	for _, c := range []struct {
		kind    event.Kind
		payload string
	}{
		{event.KindKeyVersion, `{"key":`},
		{event.KindKeyCreate, `{"key":""}`},
		{event.KindGrant, `{"id":"g","key":"trade/k0","party":"nope"}`},
		{event.KindRevoke, `[]`},
	} {
		ev := &event.Event{Kind: c.kind, Payload: []byte(c.payload)}
		_, werr := decode(ev)
		_, gerr := decodeStored(ev)
		if werr == nil || gerr == nil || gerr.Error() != werr.Error() {
			t.Errorf("%s %s: decodeStored err = %v, want decode's %v", c.kind, c.payload, gerr, werr)
		}
	}
}

// BenchmarkDecodeStored compares decodeStored with decode on a key
// version with one wrapped copy (two events per key at start-up).
func BenchmarkDecodeStored(b *testing.B) {
	w := newWorld(b, []string{"Org1MSP"}, 1)
	a := newIssuers(w)[0]
	a.event(b, event.KindNodeRecord, w.record(b, w.nodes[0]))
	raw := a.event(b, event.KindKeyVersion, event.KeyVersion{Key: "trade/k0", Version: 1, ActivateAt: w.t0,
		Check: event.Digest{1}, Wraps: []event.Wrap{{Recipient: w.nodes[0].key, Digest: event.Digest{2}}}})
	ev, err := event.Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		f    func(*event.Event) (any, error)
	}{{"decode", decode}, {"decodeStored", decodeStored}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.f(ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestStoredPayloadsAreAuthenticated: decodeStored leaves the check of a
// stored payload's form to the store's authentication, so what a restart
// or a refold reads back must be what the log wrote: a reopened log over
// the node's authenticated store holds the same state; a stored grant
// replaced under it (here by its own payload with an extra field, which
// json.Unmarshal alone would take) fails OpenLog, and fails closed in a
// running log's refold (the grant does not count).
func TestStoredPayloadsAreAuthenticated(t *testing.T) {
	w := newWorld(t, []string{"Org1MSP"}, 2)
	raw := kv.NewMem()
	store := kv.NewAuthenticated(raw, kvtest.HMACTagger("a test key of sixteen+ bytes"), nil, nil)
	l, err := OpenLog(store, w.g, w.nodes[1].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := newIssuers(w)[0]
	const key, party = "trade/k", policy.Party("token:p")
	gid := IDPrefix(a.n.key) + "g1"
	evs := [][]byte{
		a.event(t, event.KindNodeRecord, w.record(t, w.nodes[0])),
		a.event(t, event.KindKeyCreate, event.KeyCreate{Key: key}),
		a.event(t, event.KindGrant, policy.Grant{ID: gid, Key: key, Party: party, Ops: policy.OpsAll, Issuer: "a", IssuedAt: w.t0}),
		a.event(t, event.KindRevoke, policy.Revocation{ID: IDPrefix(a.n.key) + "r1", Key: key, Party: "token:q", Issuer: "a", IssuedAt: w.t0}),
	}
	deliverAll(l, evs)
	var want []byte
	l.View(func(s *State) { want = s.Canonical() })
	l2, err := OpenLog(store, w.g, w.nodes[1].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	l2.View(func(s *State) { got = s.Canonical() })
	if !bytes.Equal(got, want) {
		t.Fatalf("reopened log's state differs from the running log's")
	}
	p := policy.Principal{Parties: []policy.Party{party}}
	at := w.t0.Add(time.Hour)
	refold := func() {
		l.mu.Lock()
		l.state.refoldIssuer(a.n.key)
		l.mu.Unlock()
	}
	refold() // reads the grant back from the store
	if d := l.Policy().Decide(p, key, policy.OpDecrypt, at); !d.Allowed {
		t.Fatalf("Decide after a refold = %+v, want allowed by %s", d, gid)
	}

	// Replace the stored grant (a's third event) by a variant json.Unmarshal
	// accepts, written without the store's tag.
	ev, err := event.Parse(evs[2])
	if err != nil {
		t.Fatal(err)
	}
	ev.Payload = append(bytes.TrimSuffix(ev.Payload, []byte("}")), []byte(`,"extra":1}`)...)
	if _, err := decodeStored(ev); err != nil {
		t.Fatalf("decodeStored(payload with an extra field) = %v: the check below proves nothing", err)
	}
	if err := raw.Update(func(tx kv.Txn) error { return tx.Set(evKey(a.n.key, 3), ev.Marshal()) }); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLog(store, w.g, w.nodes[1].priv, LogOptions{}); !errors.Is(err, kv.ErrTampered) {
		t.Errorf("OpenLog(a replaced grant) = %v, want %v", err, kv.ErrTampered)
	}
	refold()
	if d := l.Policy().Decide(p, key, policy.OpDecrypt, at); d.Allowed {
		t.Errorf("a refold that read back a replaced grant lets it count: %+v", d)
	}
}
