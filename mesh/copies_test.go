package mesh

import (
	"maps"
	mrand "math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/network"
)

// TestHasCopiesAndSharedHolders: HasCopies says what len(CopiesFor) > 0
// says, for every version of every key and every node, without reading a
// blob; keys with the same holders share one Holders map, and refolding one
// key does not change another's.
func TestHasCopiesAndSharedHolders(t *testing.T) {
	w := newWorld(t, []string{"Org1MSP", "Org2MSP", "Org3MSP"}, 2)
	evs := history(t, w, mrand.New(mrand.NewPCG(3, 4)))
	l := newLog(t, w, 0)
	deliverAll(l, evs)
	l.View(func(s *State) {
		readAtt := s.readAtt
		checked, some := 0, 0
		for name, k := range s.Keys {
			for _, v := range k.Versions {
				nodes := map[network.NodeKey]bool{}
				for r := range v.Recipients() {
					nodes[r] = true
				}
				for _, n := range w.nodes {
					nodes[n.key] = true
				}
				for r := range nodes {
					s.readAtt = nil // HasCopies reads no blob: it needs no store
					has := s.HasCopies(name, v, r)
					s.readAtt = readAtt
					if want := len(s.CopiesFor(name, v, r)) > 0; has != want {
						t.Errorf("HasCopies(%s v%d, %s) = %v, want %v (CopiesFor)", name, v.N, r, has, want)
					}
					checked++
					if has {
						some++
					}
				}
			}
		}
		if checked == 0 || some == 0 || some == checked {
			t.Fatalf("%d checks, %d with copies: the history exercises too little", checked, some)
		}
		s.readAtt = readAtt

		// Keys with equal holders share a map; the history has such keys.
		byHolders := map[string][]*Key{}
		for _, k := range s.Keys {
			id := ""
			for _, h := range sortedKeys(k.Holders) {
				id += string(h[:])
			}
			byHolders[id] = append(byHolders[id], k)
		}
		shared := 0
		for _, ks := range byHolders {
			for _, k := range ks[1:] {
				if reflect.ValueOf(k.Holders).Pointer() != reflect.ValueOf(ks[0].Holders).Pointer() {
					t.Errorf("%s and %s have the same holders in two maps", k.Name, ks[0].Name)
				}
				shared++
			}
		}
		if shared == 0 {
			t.Fatalf("no two keys with the same holders: the check proves nothing")
		}
		before := map[string]map[network.NodeKey]bool{}
		for name, k := range s.Keys {
			before[name] = maps.Clone(k.Holders)
		}
		for name, k := range s.Keys {
			s.refoldKey(k)
			for other, ok := range s.Keys {
				if !maps.Equal(ok.Holders, before[other]) {
					t.Fatalf("refolding %s changed the holders of %s", name, other)
				}
			}
		}
	})
}

func sortedKeys(m map[network.NodeKey]bool) []network.NodeKey {
	out := make([]network.NodeKey, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, compareKeys)
	return out
}

// TestVersionCopiesOrder: a version's candidate copies are listed by
// recipient in key order, and a recipient's in the order the fold added
// them (the KeyVersion's first, then shares), whatever order the
// recipients came in; a second copy with a digest a recipient already has
// is not added.
func TestVersionCopiesOrder(t *testing.T) {
	t.Parallel()
	key := func(b byte) network.NodeKey { return network.NodeKey{b} }
	dig := func(b byte) event.Digest { return event.Digest{b} }
	v := Version{nodes: &nodeTable{ids: map[network.NodeKey]uint32{}}}
	adds := []struct {
		to, digest, from byte
		added            bool
	}{
		{to: 3, digest: 1, from: 9, added: true},
		{to: 1, digest: 2, from: 9, added: true},
		{to: 3, digest: 4, from: 8, added: true},
		{to: 2, digest: 5, from: 9, added: true},
		{to: 3, digest: 3, from: 7, added: true},
		{to: 3, digest: 4, from: 6, added: false}, // a digest 3 has
		{to: 1, digest: 1, from: 8, added: true},  // another recipient's digest
	}
	for _, a := range adds {
		if got := v.addCopy(key(a.to), key(a.from), dig(a.digest), false); got != a.added {
			t.Errorf("addCopy(to %d, digest %d) = %v, want %v", a.to, a.digest, got, a.added)
		}
	}
	if got, want := slices.Collect(v.Recipients()), []network.NodeKey{key(1), key(2), key(3)}; !slices.Equal(got, want) {
		t.Errorf("Recipients() = %v, want %v", got, want)
	}
	want := map[byte][]Wrap{
		1: {{Digest: dig(2), From: key(9)}, {Digest: dig(1), From: key(8)}},
		2: {{Digest: dig(5), From: key(9)}},
		3: {{Digest: dig(1), From: key(9)}, {Digest: dig(4), From: key(8)}, {Digest: dig(3), From: key(7)}},
		4: nil,
	}
	for r, ws := range want {
		if got := slices.Collect(v.Copies(key(r))); !reflect.DeepEqual(got, ws) {
			t.Errorf("Copies(%d) = %v, want %v", r, got, ws)
		}
		if got := v.CopyCount(key(r)); got != len(ws) {
			t.Errorf("CopyCount(%d) = %d, want %d", r, got, len(ws))
		}
		if got := v.Holds(key(r)); got != (len(ws) > 0) {
			t.Errorf("Holds(%d) = %v, want %v", r, got, len(ws) > 0)
		}
	}
	v.Creator = key(4)
	if !v.Holds(key(4)) {
		t.Error("Holds(creator) = false, want true")
	}
}
