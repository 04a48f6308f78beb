package gossip

import "testing"

// TestVerdictValues pins the numeric values and names of the verdicts: they
// label metrics and cross the mesh/p2p boundary.
func TestVerdictValues(t *testing.T) {
	for _, c := range []struct {
		v    Verdict
		n    int
		name string
	}{{Accept, 0, "accept"}, {Ignore, 1, "ignore"}, {Reject, 2, "reject"}, {Verdict(7), 7, "Verdict(7)"}} {
		if int(c.v) != c.n || c.v.String() != c.name {
			t.Errorf("verdict %d = (%d, %q), want (%d, %q)", c.n, int(c.v), c.v.String(), c.n, c.name)
		}
	}
}
