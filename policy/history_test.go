package policy

import (
	"fmt"
	"testing"
)

// TestHistory_GrantRevokeCycles: a pair granted and revoked many times
// keeps one live grant at most, the ended ones without their Observed,
// and StatusAt, InForceAt, CountGrants and Decide agree with GrantsAt.
func TestHistory_GrantRevokeCycles(t *testing.T) {
	s := NewState()
	const n = 50
	for i := range n {
		g := grant(fmt.Sprintf("g%03d", i), ssn, app, OpsOf(OpEncrypt), s.RevocationIDs(ssn, app)...)
		mustAddGrant(t, s, g)
		if i < n-1 {
			if err := s.AddRevocation(revoke(fmt.Sprintf("r%03d", i), ssn, app)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := s.CountGrants(); got != n {
		t.Fatalf("CountGrants() = %d, want %d", got, n)
	}
	if got := s.InForceAt(ssn, app, t0); got != 1 {
		t.Fatalf("InForceAt = %d, want 1", got)
	}
	pe := s.keys[ssn][app]
	if len(pe.grants) != 1 || len(pe.hist.ended) != 0 || len(pe.hist.revs) != n-1 || len(s.index[ssn].grants) != 1 {
		t.Fatalf("in memory: live %d, ended %d, revocations %d, grants by id %d, want 1, 0 (archived), %d (no position), 1",
			len(pe.grants), len(pe.hist.ended), len(pe.hist.revs), len(s.index[ssn].grants), n-1)
	}
	for _, st := range s.Grants(ssn) {
		if !st.InForce && st.Grant.Observed != nil {
			t.Fatalf("ended grant %s keeps %d observed IDs", st.Grant.ID, len(st.Grant.Observed))
		}
	}
	for _, st := range s.GrantsAt(ssn, t0) {
		got, ok := s.StatusAt(ssn, st.Grant.ID, t0)
		if !ok || got.InForce != st.InForce || got.Reason != st.Reason {
			t.Fatalf("StatusAt(%s) = %+v, %v, want %+v", st.Grant.ID, got, ok, st)
		}
	}
	last := fmt.Sprintf("g%03d", n-1)
	if d := s.Decide(principal(app), ssn, OpEncrypt, t0); !d.Allowed || d.GrantID != last {
		t.Fatalf("Decide = %+v, want allowed by %s", d, last)
	}
	// Re-adding an ended grant as it was issued is a no-op; changed, a conflict.
	again := grant("g000", ssn, app, OpsOf(OpEncrypt))
	if err := s.AddGrant(again); err != nil {
		t.Fatalf("AddGrant(g000 again) = %v, want nil", err)
	}
	again.Observed = []string{"r999"}
	if err := s.AddGrant(again); err == nil {
		t.Fatalf("AddGrant(g000 with another Observed) = nil, want a conflict")
	}
	if err := s.AddRevocation(revoke("r999", ssn, app)); err != nil {
		t.Fatal(err)
	}
	d := s.Decide(principal(app), ssn, OpEncrypt, t0)
	if d.Allowed || d.Reason != ReasonRevoked || d.GrantID != "g000" {
		t.Fatalf("Decide after revoking all = %+v, want denied %q naming g000", d, ReasonRevoked)
	}
	if got := s.CountGrants(); got != n {
		t.Fatalf("CountGrants() = %d, want %d", got, n)
	}
	if _, ok := s.StatusAt(ssn, "nope", t0); ok {
		t.Fatalf("StatusAt(nope) found a grant")
	}
}

// TestGrantsAtPage: pages cover GrantsAt in order, and cursors round-trip.
func TestGrantsAtPage(t *testing.T) {
	s := NewState()
	for i := range 7 {
		mustAddGrant(t, s, grant(fmt.Sprintf("g%d", i), fmt.Sprintf("demo/k%d", i%3), Party(fmt.Sprintf("token:p%d", i%2)), OpsOf(OpEncrypt)))
	}
	want := s.GrantsAt("", t0)
	var got []Status
	var after GrantCursor
	for range 10 {
		page, next, err := s.GrantsAtPage("", t0, after, 3)
		if err != nil {
			t.Fatalf("GrantsAtPage = %v", err)
		}
		got = append(got, page...)
		if next == (GrantCursor{}) {
			break
		}
		c, err := ParseGrantCursor(next.String())
		if err != nil || c != next {
			t.Fatalf("ParseGrantCursor(%q) = %+v, %v, want %+v", next.String(), c, err, next)
		}
		after = c
	}
	if len(got) != len(want) {
		t.Fatalf("pages hold %d grants, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Grant.ID != want[i].Grant.ID || got[i].InForce != want[i].InForce {
			t.Fatalf("page item %d = %s, want %s", i, got[i].Grant.ID, want[i].Grant.ID)
		}
	}
	for _, bad := range []string{"%%", "AA", "AQE"} {
		if _, err := ParseGrantCursor(bad); err == nil {
			t.Errorf("ParseGrantCursor(%q) = nil error", bad)
		}
	}
}
