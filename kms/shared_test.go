package kms

import (
	"maps"
	"testing"

	"github.com/keymesh/keymesh/vault/envelope"
)

// TestSharedContexts checks which items of a batch get a prepared context:
// those of a run of one map, and only while the map is the run's.
func TestSharedContexts(t *testing.T) {
	a := envelope.Context{"channel": "trade", "field": "price"}
	b := envelope.Context{"channel": "trade", "field": "quantity"}
	bad := envelope.Context{"": "no key"}
	for _, tc := range []struct {
		name string
		ctxs []envelope.Context
		// want[i] is the index of the item whose map item i's prepared
		// context was prepared from, or -1 for none.
		want []int
	}{
		{"ok/one-run", []envelope.Context{a, a, a}, []int{0, 0, 0}},
		{"ok/two-runs", []envelope.Context{a, a, b, b}, []int{0, 0, 2, 2}},
		{"ok/back-to-the-run", []envelope.Context{a, a, b, a}, []int{0, 0, -1, 0}},
		{"ok/single", []envelope.Context{a}, []int{-1}},
		{"ok/alternating", []envelope.Context{a, b, a, b}, []int{-1, -1, -1, -1}},
		{"ok/equal-maps-not-shared", []envelope.Context{a, maps.Clone(a), maps.Clone(a)}, []int{-1, -1, -1}},
		{"ok/empty", []envelope.Context{nil, nil, {}, {}}, []int{-1, -1, -1, -1}},
		{"fail/invalid-run", []envelope.Context{bad, bad, a, a}, []int{-1, -1, 2, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sc sharedContexts
			for i, c := range tc.ctxs {
				var next envelope.Context
				if i+1 < len(tc.ctxs) {
					next = tc.ctxs[i+1]
				}
				pc := sc.of(c, next)
				if w := tc.want[i]; w < 0 {
					if pc != nil {
						t.Errorf("item %d: prepared %v, want none", i, pc)
					}
				} else if pc == nil || !pc.Matches(tc.ctxs[w]) || !sameMap(sc.src, tc.ctxs[w]) {
					t.Errorf("item %d: prepared %v, want item %d's context", i, pc, w)
				}
			}
		})
	}
}

func TestSameMap(t *testing.T) {
	a := envelope.Context{"k": "v"}
	if !sameMap(a, a) || sameMap(a, maps.Clone(a)) || sameMap(nil, nil) || sameMap(a, nil) {
		t.Error("sameMap: want true for the same map only")
	}
}
