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

// TestHistory_PairMemoryFlat: a pair granted and revoked many times as
// the mesh does it (each grant reaching its pair's revocations, each
// revocation placed) keeps in memory what one cycle keeps: no ended
// grant, no revocation, one chain and one custodian summarised; the rest
// is in the archive, and the state still decides, lists and counts it.
func TestHistory_PairMemoryFlat(t *testing.T) {
	s := NewState(WithArchive(newTestArchive()))
	const n = 500
	for i := range n {
		g := grant(fmt.Sprintf("g%04d", i), ssn, app, OpsOf(OpDecrypt))
		if err := s.AddGrantReaching(g, chainReach("c", uint64(2*i))); err != nil {
			t.Fatal(err)
		}
		if err := s.AddRevocationAt(revoke(fmt.Sprintf("r%04d", i), ssn, app), Position{Chain: "c", Seq: uint64(2*i + 1)}); err != nil {
			t.Fatal(err)
		}
		idx, pe := s.index[ssn], s.keys[ssn][app]
		h := pe.hist
		if len(idx.grants) != 0 || len(idx.revs) != 0 || len(pe.grants) != 0 || len(h.revs) != 0 || len(h.ended) != 0 ||
			len(h.sums) != 1 || len(h.last) != 1 || h.archived != i+1 {
			t.Fatalf("cycle %d: in memory %d grants, %d revocations, live %d, pair revs %d, ended %d, sums %d, chains %d, archived %d",
				i, len(idx.grants), len(idx.revs), len(pe.grants), len(h.revs), len(h.ended), len(h.sums), len(h.last), h.archived)
		}
	}
	if d := s.Decide(principal(app), ssn, OpDecrypt, t0); d.Allowed || d.GrantID != "g0000" || d.Reason != ReasonRevoked {
		t.Fatalf("Decide = %+v, want denied naming g0000", d)
	}
	if got := len(s.Grants(ssn)); got != n || s.CountGrants() != n || len(s.Revocations(ssn)) != n || len(s.RevocationIDs(ssn, app)) != n {
		t.Fatalf("Grants %d, CountGrants %d, Revocations %d, RevocationIDs %d, want %d each",
			got, s.CountGrants(), len(s.Revocations(ssn)), len(s.RevocationIDs(ssn, app)), n)
	}
	if ids := s.Unobserved(ssn, app, chainReach("c", 2*n-10)); len(ids) != 5 {
		t.Fatalf("Unobserved below the last 5 revocations = %v, want 5 IDs", ids)
	}
}
