package policy

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// TestCompactEntriesRoundTrip: what the state lists is the grant and the
// revocation it was given, in normal form, whatever the times (the zero
// time, the Unix epoch, before 1970, past the year 2262 that nanoseconds
// since 1970 cannot hold) and however many distinct issuers were interned.
func TestCompactEntriesRoundTrip(t *testing.T) {
	times := []time.Time{
		{},
		time.Unix(0, 0),
		time.Unix(-1, 999_999_999),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(2026, 12, 1, 18, 0, 0, 5, time.FixedZone("x", 3600)),
	}
	s := NewState()
	var want []Grant
	var wantRevs []Revocation
	for i, at := range times {
		for j, nb := range times {
			g := Grant{
				ID: fmt.Sprintf("g%d-%d", i, j), Key: ssn, Party: Party(fmt.Sprintf("token:p%d", i)),
				Ops: OpsAll, NotBefore: nb, Custodian: "Org1MSP",
				// More distinct issuers than the state interns.
				Issuer: fmt.Sprintf("node%d", i*len(times)+j+maxInterned), IssuedAt: at,
				Observed: []string{"r-b", "r-a", "r-b"},
			}
			if !nb.IsZero() {
				g.NotAfter = nb.Add(time.Hour)
			}
			mustAddGrant(t, s, g)
			want = append(want, g.normal())
		}
		r := Revocation{ID: fmt.Sprintf("r%d", i), Key: ssn, Party: Party(fmt.Sprintf("token:q%d", i)), Issuer: "node1", IssuedAt: at}
		mustAddRevocation(t, s, r)
		wantRevs = append(wantRevs, r.normal())
	}
	for _, g := range want {
		got, ok := s.Grant(g.ID)
		if !ok || !reflect.DeepEqual(got, g) {
			t.Errorf("Grant(%s) = %+v, %v, want %+v", g.ID, got, ok, g)
		}
		st, ok := s.StatusAt(ssn, g.ID, t0)
		if !ok || !reflect.DeepEqual(st.Grant, g) {
			t.Errorf("StatusAt(%s).Grant = %+v, want %+v", g.ID, st.Grant, g)
		}
		if in, why := g.StatusAt(t0); st.InForce != in || st.Reason != why {
			t.Errorf("StatusAt(%s) = %v %q, want %v %q (Grant.StatusAt)", g.ID, st.InForce, st.Reason, in, why)
		}
		// Re-adding it as given is a no-op.
		if err := s.AddGrant(g); err != nil {
			t.Errorf("AddGrant(%s again) = %v, want nil", g.ID, err)
		}
	}
	for _, r := range wantRevs {
		got, ok := s.Revocation(r.ID)
		if !ok || !reflect.DeepEqual(got, r) {
			t.Errorf("Revocation(%s) = %+v, %v, want %+v", r.ID, got, ok, r)
		}
		if err := s.AddRevocation(r); err != nil {
			t.Errorf("AddRevocation(%s again) = %v, want nil", r.ID, err)
		}
	}
	if got := len(s.Grants("")); got != len(want) {
		t.Errorf("len(Grants(\"\")) = %d, want %d", got, len(want))
	}
	if got := len(s.strs); got > maxInterned {
		t.Errorf("%d interned strings, want at most %d", got, maxInterned)
	}
}

// TestInstantOrder: an instant judges a bound as time.Time does, to the
// nanosecond.
func TestInstantOrder(t *testing.T) {
	bound := time.Date(2026, 12, 1, 18, 0, 0, 500, time.UTC)
	i := instantOf(bound)
	for _, c := range []struct {
		at   time.Time
		want bool
	}{
		{bound, true},
		{bound.Add(-1), false},
		{bound.Add(1), true},
		{bound.Add(-time.Second), false},
		{bound.Add(time.Second - 1000), true},
		{bound.In(time.FixedZone("y", -7200)), true},
		{time.Now().Add(-time.Hour), time.Now().Add(-time.Hour).Compare(bound) >= 0},
	} {
		if got := i.reachedBy(c.at); got != c.want {
			t.Errorf("instantOf(%v).reachedBy(%v) = %v, want %v", bound, c.at, got, c.want)
		}
	}
	if !instantOf(time.Time{}).isZero() || instantOf(time.Unix(0, 0)).isZero() {
		t.Errorf("instantOf: the zero time and the Unix epoch are not told apart")
	}
}
