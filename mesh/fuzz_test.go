package mesh

import (
	"bytes"
	mrand "math/rand/v2"
	"testing"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/kv"
)

// fuzzSeeds returns real events of a small history, a checkpoint and a
// piece of evidence, to seed the fuzzers.
func fuzzSeeds(f *testing.F) (*world, [][]byte) {
	w := newWorld(f, []string{"Org1MSP", "Org2MSP"}, 1)
	evs := history(f, w, mrand.New(mrand.NewPCG(5, 6)))
	l, err := OpenLog(kv.NewMem(), w.g, w.nodes[0].priv, LogOptions{})
	if err != nil {
		f.Fatal(err)
	}
	deliverAll(l, evs)
	seeds := append([][]byte{}, evs...)
	if cp := l.Checkpoint(); cp != nil {
		seeds = append(seeds, cp)
	}
	a, _ := event.Parse(evs[0])
	iss := newIssuers(w)
	other, _ := event.Parse(iss[0].event(f, event.KindNodeRecord, w.record(f, w.nodes[0])))
	if v, ok := evidenceOf(a, other); ok {
		seeds = append(seeds, v.Marshal())
	}
	return w, seeds
}

// FuzzDeliver feeds arbitrary bytes to a log that holds a history: it must
// never panic, and whatever it accepts must be served back as it is
// stored (events) or leave the state well formed.
func FuzzDeliver(f *testing.F) {
	w, seeds := fuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		l, err := OpenLog(kv.NewMem(), w.g, w.nodes[1].priv, LogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		l.Deliver(raw)
		l.View(func(s *State) { _ = s.Canonical() })
		for issuer := range l.Summary() {
			if _, err := l.Events(issuer, 0, 8); err != nil {
				t.Fatalf("Events(%q) = %v", issuer, err)
			}
		}
	})
}

// FuzzParseEvidence checks that the evidence parser is strict: what it
// accepts re-encodes to the same bytes and proves equivocation.
func FuzzParseEvidence(f *testing.F) {
	w, seeds := fuzzSeeds(f)
	for _, s := range seeds {
		if len(s) > 0 && s[0] == EvidenceFormat {
			f.Add(s)
		}
	}
	f.Add([]byte{EvidenceFormat})
	f.Fuzz(func(t *testing.T, raw []byte) {
		v, err := parseEvidence(raw, w.g.ID())
		if err != nil {
			return
		}
		if !bytes.Equal(v.Marshal(), raw) {
			t.Fatalf("parseEvidence(%x).Marshal() differs", raw)
		}
		if _, ok := evidenceOf(v.A, v.B); !ok {
			t.Fatal("accepted evidence that proves nothing")
		}
	})
}
