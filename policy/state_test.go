package policy

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	t0    = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	app   = Party("token:app")
	alice = Party("fabric:Org1MSP/alice")
	org1  = Party("org:Org1MSP")
	org2  = Party("org:Org2MSP")
	ssn   = "demo/ssn"
)

func principal(ps ...Party) Principal { return Principal{Parties: ps} }

// grant returns a valid grant of key to p for ops, issued at t0.
func grant(id, key string, p Party, ops Ops, observed ...string) Grant {
	return Grant{ID: id, Key: key, Party: p, Ops: ops, Issuer: "node1", IssuedAt: t0, Observed: observed}
}

func revoke(id, key string, p Party) Revocation {
	return Revocation{ID: id, Key: key, Party: p, Issuer: "node1", IssuedAt: t0.Add(time.Minute)}
}

func mustAddGrant(t testing.TB, s *State, g Grant) {
	t.Helper()
	if err := s.AddGrant(g); err != nil {
		t.Fatalf("AddGrant(%s) = %v, want nil", g.ID, err)
	}
}

func mustAddRevocation(t testing.TB, s *State, r Revocation) {
	t.Helper()
	if err := s.AddRevocation(r); err != nil {
		t.Fatalf("AddRevocation(%s) = %v, want nil", r.ID, err)
	}
}

func TestGrantValidate(t *testing.T) {
	ok := grant("g1", ssn, app, OpsAll)
	with := func(f func(*Grant)) Grant { g := ok; f(&g); return g }
	tests := []struct {
		name  string
		g     Grant
		party bool // error also wraps ErrInvalidParty
	}{
		{name: "ok/minimal", g: ok},
		{name: "ok/bounds", g: with(func(g *Grant) { g.NotBefore = t0; g.NotAfter = t0.Add(time.Hour) })},
		{name: "ok/only-not-after", g: with(func(g *Grant) { g.NotAfter = t0 })},
		{name: "ok/custodian", g: with(func(g *Grant) { g.Custodian = "Org1MSP" })},
		{name: "ok/observed", g: with(func(g *Grant) { g.Observed = []string{"r1", "r-2_X"} })},
		{name: "ok/id-64", g: with(func(g *Grant) { g.ID = strings.Repeat("a", 64) })},
		{name: "ok/key-128", g: with(func(g *Grant) { g.Key = strings.Repeat("k", 128) })},
		{name: "fail/id-empty", g: with(func(g *Grant) { g.ID = "" })},
		{name: "fail/id-65", g: with(func(g *Grant) { g.ID = strings.Repeat("a", 65) })},
		{name: "fail/id-dot", g: with(func(g *Grant) { g.ID = "g.1" })},
		{name: "fail/key-empty", g: with(func(g *Grant) { g.Key = "" })},
		{name: "fail/key-129", g: with(func(g *Grant) { g.Key = strings.Repeat("k", 129) })},
		{name: "fail/key-newline", g: with(func(g *Grant) { g.Key = "demo/\nssn" })},
		{name: "fail/party-empty", g: with(func(g *Grant) { g.Party = "" }), party: true},
		{name: "fail/party-non-canonical", g: with(func(g *Grant) { g.Party = "eth:0xAB00000000000000000000000000000000000000" }), party: true},
		{name: "fail/ops-empty", g: with(func(g *Grant) { g.Ops = 0 })},
		{name: "fail/ops-unknown-bit", g: with(func(g *Grant) { g.Ops = OpsDecrypt | 1 })},
		{name: "fail/bounds-equal", g: with(func(g *Grant) { g.NotBefore = t0; g.NotAfter = t0 })},
		{name: "fail/bounds-reversed", g: with(func(g *Grant) { g.NotBefore = t0; g.NotAfter = t0.Add(-time.Second) })},
		{name: "fail/custodian", g: with(func(g *Grant) { g.Custodian = "Org 1" })},
		{name: "fail/issuer-empty", g: with(func(g *Grant) { g.Issuer = "" })},
		{name: "fail/issuer-control", g: with(func(g *Grant) { g.Issuer = "node\x1b[31m" })},
		{name: "fail/observed-bad-id", g: with(func(g *Grant) { g.Observed = []string{"r1", ""} })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.g.Validate()
			if strings.HasPrefix(tt.name, "ok/") {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidGrant) {
				t.Fatalf("Validate() = %v, want ErrInvalidGrant", err)
			}
			if tt.party && !errors.Is(err, ErrInvalidParty) {
				t.Errorf("Validate() = %v, want it to wrap ErrInvalidParty too", err)
			}
			if err := NewState().AddGrant(tt.g); !errors.Is(err, ErrInvalidGrant) {
				t.Errorf("AddGrant() = %v, want ErrInvalidGrant", err)
			}
		})
	}
}

func TestRevocationValidate(t *testing.T) {
	ok := revoke("r1", ssn, app)
	with := func(f func(*Revocation)) Revocation { r := ok; f(&r); return r }
	for _, tt := range []struct {
		name string
		r    Revocation
	}{
		{"ok/minimal", ok},
		{"ok/zero-time", with(func(r *Revocation) { r.IssuedAt = time.Time{} })},
		{"fail/id-empty", with(func(r *Revocation) { r.ID = "" })},
		{"fail/id-slash", with(func(r *Revocation) { r.ID = "r/1" })},
		{"fail/key-empty", with(func(r *Revocation) { r.Key = "" })},
		{"fail/party", with(func(r *Revocation) { r.Party = "token:Admin" })},
		{"fail/issuer-empty", with(func(r *Revocation) { r.Issuer = "" })},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.r.Validate()
			if strings.HasPrefix(tt.name, "ok/") {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidGrant) {
				t.Fatalf("Validate() = %v, want ErrInvalidGrant", err)
			}
			if err := NewState().AddRevocation(tt.r); !errors.Is(err, ErrInvalidGrant) {
				t.Errorf("AddRevocation() = %v, want ErrInvalidGrant", err)
			}
		})
	}
}

// step is one change to a state in a scenario.
type step struct {
	g *Grant
	r *Revocation
}

func g(gr Grant) step      { return step{g: &gr} }
func r(rv Revocation) step { return step{r: &rv} }

func apply(t *testing.T, s *State, steps []step) {
	t.Helper()
	for _, st := range steps {
		if st.g != nil {
			mustAddGrant(t, s, *st.g)
		} else {
			mustAddRevocation(t, s, *st.r)
		}
	}
}

func TestRemoveWins(t *testing.T) {
	tests := []struct {
		name    string
		steps   []step
		allowed bool
		reason  string
	}{
		{
			name:    "ok/grant",
			steps:   []step{g(grant("g1", ssn, app, OpsAll))},
			allowed: true, reason: "grant g1",
		},
		{
			name:   "fail/grant-then-revoke",
			steps:  []step{g(grant("g1", ssn, app, OpsAll)), r(revoke("r1", ssn, app))},
			reason: ReasonRevoked,
		},
		{
			name:   "fail/revoke-then-unobserving-grant",
			steps:  []step{r(revoke("r1", ssn, app)), g(grant("g1", ssn, app, OpsAll))},
			reason: ReasonRevoked,
		},
		{
			name: "ok/regrant-observing-revoke",
			steps: []step{
				g(grant("g1", ssn, app, OpsAll)), r(revoke("r1", ssn, app)),
				g(grant("g2", ssn, app, OpsAll, "r1")),
			},
			allowed: true, reason: "grant g2",
		},
		{
			name: "ok/regrant-observing-revoke-arrives-first",
			steps: []step{
				g(grant("g2", ssn, app, OpsAll, "r1")),
				g(grant("g1", ssn, app, OpsAll)), r(revoke("r1", ssn, app)),
			},
			allowed: true, reason: "grant g2",
		},
		{
			name: "fail/concurrent-grant-and-revoke",
			steps: []step{
				g(grant("g1", ssn, app, OpsAll)),
				// g2 was issued by another node that had not seen r1.
				g(grant("g2", ssn, app, OpsAll)), r(revoke("r1", ssn, app)),
			},
			reason: ReasonRevoked,
		},
		{
			name: "fail/two-revocations-grant-observes-one",
			steps: []step{
				r(revoke("r1", ssn, app)), r(revoke("r2", ssn, app)),
				g(grant("g1", ssn, app, OpsAll, "r1")),
			},
			reason: ReasonRevoked,
		},
		{
			name: "ok/two-revocations-grant-observes-both",
			steps: []step{
				r(revoke("r1", ssn, app)), r(revoke("r2", ssn, app)),
				g(grant("g1", ssn, app, OpsAll, "r2", "r1")),
			},
			allowed: true, reason: "grant g1",
		},
		{
			name: "ok/revocation-of-other-party",
			steps: []step{
				g(grant("g1", ssn, app, OpsAll)), r(revoke("r1", ssn, "token:other")),
			},
			allowed: true, reason: "grant g1",
		},
		{
			name: "ok/revocation-of-other-key",
			steps: []step{
				g(grant("g1", ssn, app, OpsAll)), r(revoke("r1", "demo/other", app)),
			},
			allowed: true, reason: "grant g1",
		},
		{
			name: "fail/observing-other-pairs-revocation-does-not-help",
			steps: []step{
				r(revoke("r1", "demo/other", app)), r(revoke("r2", ssn, app)),
				g(grant("g1", ssn, app, OpsAll, "r1")),
			},
			reason: ReasonRevoked,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewState()
			apply(t, s, tt.steps)
			d := s.Decide(principal(app), ssn, OpDecrypt, t0)
			if d.Allowed != tt.allowed || d.Reason != tt.reason {
				t.Errorf("Decide(app, %q, decrypt) = %+v, want allowed=%v reason %q", ssn, d, tt.allowed, tt.reason)
			}
			// The same steps in reverse give the same decision.
			s2 := NewState()
			reversed := slices.Clone(tt.steps)
			slices.Reverse(reversed)
			apply(t, s2, reversed)
			if d2 := s2.Decide(principal(app), ssn, OpDecrypt, t0); d2 != d {
				t.Errorf("Decide after reversed steps = %+v, want %+v", d2, d)
			}
		})
	}
}

func TestRevocationIDs(t *testing.T) {
	s := NewState()
	if got := s.RevocationIDs(ssn, app); got != nil {
		t.Errorf("RevocationIDs on empty state = %q, want nil", got)
	}
	mustAddRevocation(t, s, revoke("rB", ssn, app))
	mustAddRevocation(t, s, revoke("rA", ssn, app))
	mustAddRevocation(t, s, revoke("rC", ssn, alice))
	mustAddRevocation(t, s, revoke("rD", "demo/other", app))
	got := s.RevocationIDs(ssn, app)
	if want := []string{"rA", "rB"}; !slices.Equal(got, want) {
		t.Fatalf("RevocationIDs(%q, app) = %q, want %q", ssn, got, want)
	}
	got[0] = "mutated"
	if got := s.RevocationIDs(ssn, app); got[0] != "rA" {
		t.Errorf("RevocationIDs returned the state's own slice")
	}
	// A grant carrying them is in force.
	mustAddGrant(t, s, grant("g1", ssn, app, OpsDecrypt, s.RevocationIDs(ssn, app)...))
	if d := s.Decide(principal(app), ssn, OpDecrypt, t0); !d.Allowed {
		t.Errorf("Decide after grant observing RevocationIDs = %+v, want allowed", d)
	}
}

func TestTimeBounds(t *testing.T) {
	s := NewState()
	gr := grant("g1", ssn, app, OpsAll)
	gr.NotBefore = t0
	gr.NotAfter = t0.Add(time.Hour)
	mustAddGrant(t, s, gr)
	for _, tt := range []struct {
		name    string
		at      time.Time
		allowed bool
		reason  string
	}{
		{"fail/before", t0.Add(-time.Nanosecond), false, ReasonNotYetValid},
		{"ok/at-not-before", t0, true, "grant g1"},
		{"ok/inside", t0.Add(30 * time.Minute), true, "grant g1"},
		{"ok/last-instant", t0.Add(time.Hour - time.Nanosecond), true, "grant g1"},
		{"fail/at-not-after", t0.Add(time.Hour), false, ReasonExpired},
		{"fail/after", t0.Add(48 * time.Hour), false, ReasonExpired},
		{"ok/other-zone", t0.Add(time.Minute).In(time.FixedZone("X", 5*3600)), true, "grant g1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := s.Decide(principal(app), ssn, OpEncrypt, tt.at)
			if d.Allowed != tt.allowed || d.Reason != tt.reason {
				t.Errorf("Decide(app, %q, encrypt, %v) = %+v, want allowed=%v reason %q", ssn, tt.at, d, tt.allowed, tt.reason)
			}
			if !tt.allowed && (d.GrantID != "g1" || d.Party != app) {
				t.Errorf("Decide(...) = %+v, want GrantID g1 and Party %s named", d, app)
			}
		})
	}

	open := NewState()
	lower := grant("lo", ssn, app, OpsAll)
	lower.NotBefore = t0
	mustAddGrant(t, open, lower)
	if d := open.Decide(principal(app), ssn, OpEncrypt, t0.AddDate(100, 0, 0)); !d.Allowed {
		t.Errorf("Decide(far future) with no upper bound = %+v, want allowed", d)
	}
	upper := grant("up", "demo/k2", app, OpsAll)
	upper.NotAfter = t0
	mustAddGrant(t, open, upper)
	if d := open.Decide(principal(app), "demo/k2", OpEncrypt, time.Unix(0, 0)); !d.Allowed {
		t.Errorf("Decide(1970) with no lower bound = %+v, want allowed", d)
	}
}

func TestDecideReasons(t *testing.T) {
	bounded := func(gr Grant, nb, na time.Duration) Grant {
		gr.NotBefore, gr.NotAfter = t0.Add(nb), t0.Add(na)
		return gr
	}
	tests := []struct {
		name  string
		steps []step
		p     Principal
		op    Op
		want  Decision
	}{
		{
			name: "fail/no-grant",
			p:    principal(app), op: OpEncrypt,
			want: Decision{Reason: "no grant for token:app on this key"},
		},
		{
			name:  "fail/no-grant-multi-party",
			steps: []step{g(grant("g1", "demo/other", alice, OpsAll))},
			p:     principal(alice, org1), op: OpEncrypt,
			want: Decision{Reason: "no grant for fabric:Org1MSP/alice+org:Org1MSP on this key"},
		},
		{
			name:  "fail/no-grant-only-revocation",
			steps: []step{r(revoke("r1", ssn, app))},
			p:     principal(app), op: OpEncrypt,
			want: Decision{Reason: "no grant for token:app on this key"},
		},
		{
			name:  "fail/op-not-granted",
			steps: []step{g(grant("g1", ssn, app, OpsDecrypt))},
			p:     principal(app), op: OpEncrypt,
			want: Decision{Reason: "operation encrypt not granted"},
		},
		{
			name:  "fail/op-not-granted-decrypt",
			steps: []step{g(grant("g1", ssn, app, OpsEncrypt))},
			p:     principal(app), op: OpDecrypt,
			want: Decision{Reason: "operation decrypt not granted"},
		},
		{
			name:  "fail/unknown-op",
			steps: []step{g(grant("g1", ssn, app, OpsAll))},
			p:     principal(app), op: 4,
			want: Decision{Reason: "operation op(4) not granted"},
		},
		{
			name:  "fail/export-not-in-all",
			steps: []step{g(grant("g1", ssn, app, OpsAll))},
			p:     principal(app), op: OpExport,
			want: Decision{Reason: "operation export not granted"},
		},
		{
			name: "fail/revoked-grant-of-op-beats-op-not-granted",
			steps: []step{
				g(grant("g1", ssn, app, OpsEncrypt)), r(revoke("r1", ssn, app)),
				g(grant("g2", ssn, app, OpsDecrypt, "r1")),
			},
			p: principal(app), op: OpEncrypt,
			want: Decision{Reason: ReasonRevoked, GrantID: "g1", Party: app},
		},
		{
			name: "fail/revoked-grant-without-op-is-op-not-granted",
			steps: []step{
				g(grant("g1", ssn, app, OpsDecrypt)), r(revoke("r1", ssn, app)),
			},
			p: principal(app), op: OpEncrypt,
			want: Decision{Reason: "operation encrypt not granted"},
		},
		{
			name: "fail/revoked-and-expired-is-revoked",
			steps: []step{
				g(bounded(grant("g1", ssn, app, OpsAll), -2*time.Hour, -time.Hour)), r(revoke("r1", ssn, app)),
			},
			p: principal(app), op: OpEncrypt,
			want: Decision{Reason: ReasonRevoked, GrantID: "g1", Party: app},
		},
		{
			name: "fail/expired-beats-revoked",
			steps: []step{
				g(grant("g1", ssn, app, OpsAll)), r(revoke("r1", ssn, app)),
				g(bounded(grant("g2", ssn, app, OpsAll, "r1"), -2*time.Hour, -time.Hour)),
			},
			p: principal(app), op: OpEncrypt,
			want: Decision{Reason: ReasonExpired, GrantID: "g2", Party: app},
		},
		{
			name: "fail/not-yet-valid-beats-expired",
			steps: []step{
				g(bounded(grant("g1", ssn, app, OpsAll), -2*time.Hour, -time.Hour)),
				g(bounded(grant("g2", ssn, app, OpsAll), time.Hour, 2*time.Hour)),
			},
			p: principal(app), op: OpEncrypt,
			want: Decision{Reason: ReasonNotYetValid, GrantID: "g2", Party: app},
		},
		{
			name: "fail/tie-names-smallest-id",
			steps: []step{
				g(grant("g2", ssn, app, OpsAll)), g(grant("g1", ssn, app, OpsAll)),
				g(grant("g3", ssn, app, OpsAll)), r(revoke("r1", ssn, app)),
			},
			p: principal(app), op: OpEncrypt,
			want: Decision{Reason: ReasonRevoked, GrantID: "g1", Party: app},
		},
		{
			name: "ok/smallest-id-wins",
			steps: []step{
				g(grant("g3", ssn, app, OpsAll)), g(grant("g1", ssn, app, OpsAll)), g(grant("g2", ssn, app, OpsAll)),
			},
			p: principal(app), op: OpEncrypt,
			want: Decision{Allowed: true, Reason: "grant g1", GrantID: "g1", Party: app},
		},
		{
			name: "ok/allowed-beats-smaller-revoked",
			steps: []step{
				g(grant("a", ssn, app, OpsAll)), r(revoke("r1", ssn, app)),
				g(grant("b", ssn, app, OpsAll, "r1")),
			},
			p: principal(app), op: OpEncrypt,
			want: Decision{Allowed: true, Reason: "grant b", GrantID: "b", Party: app},
		},
		{
			name:  "ok/multi-party-org",
			steps: []step{g(grant("g1", ssn, org1, OpsDecrypt))},
			p:     principal(alice, org1), op: OpDecrypt,
			want: Decision{Allowed: true, Reason: "grant g1", GrantID: "g1", Party: org1},
		},
		{
			name: "ok/multi-party-smallest-id-across-parties",
			steps: []step{
				g(grant("g2", ssn, alice, OpsDecrypt)), g(grant("g1", ssn, org1, OpsDecrypt)),
			},
			p: principal(alice, org1), op: OpDecrypt,
			want: Decision{Allowed: true, Reason: "grant g1", GrantID: "g1", Party: org1},
		},
		{
			name: "ok/multi-party-other-party-revoked",
			steps: []step{
				g(grant("g1", ssn, org1, OpsDecrypt)), g(grant("g2", ssn, alice, OpsDecrypt)),
				r(revoke("r1", ssn, org1)),
			},
			p: principal(alice, org1), op: OpDecrypt,
			want: Decision{Allowed: true, Reason: "grant g2", GrantID: "g2", Party: alice},
		},
		{
			name:  "fail/other-org",
			steps: []step{g(grant("g1", ssn, org2, OpsDecrypt))},
			p:     principal(alice, org1), op: OpDecrypt,
			want: Decision{Reason: "no grant for fabric:Org1MSP/alice+org:Org1MSP on this key"},
		},
		{
			name:  "fail/empty-principal",
			steps: []step{g(grant("g1", ssn, app, OpsAll))},
			p:     Principal{}, op: OpDecrypt,
			want: Decision{Reason: "no grant for (no party) on this key"},
		},
		{
			name:  "fail/admin-has-no-bypass",
			steps: []step{g(grant("g1", ssn, app, OpsAll))},
			p:     principal(AdminParty), op: OpDecrypt,
			want: Decision{Reason: "no grant for token:admin on this key"},
		},
		{
			name:  "ok/admin-with-grant",
			steps: []step{g(grant("g1", ssn, AdminParty, OpsDecrypt))},
			p:     principal(AdminParty), op: OpDecrypt,
			want: Decision{Allowed: true, Reason: "grant g1", GrantID: "g1", Party: AdminParty},
		},
		{
			name:  "fail/non-canonical-principal-matches-nothing",
			steps: []step{g(grant("g1", ssn, "eth:0xab00000000000000000000000000000000000000", OpsAll))},
			p:     principal("eth:0xAB00000000000000000000000000000000000000"), op: OpDecrypt,
			want: Decision{Reason: "no grant for eth:0xAB00000000000000000000000000000000000000 on this key"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewState()
			apply(t, s, tt.steps)
			want := tt.want
			want.Key, want.Op = ssn, tt.op
			if got := s.Decide(tt.p, ssn, tt.op, t0); got != want {
				t.Errorf("Decide(%v, %q, %v) = %+v, want %+v", tt.p, ssn, tt.op, got, want)
			}
		})
	}
}

func TestDecisionErr(t *testing.T) {
	s := NewState()
	d := s.Decide(principal(app), ssn, OpEncrypt, t0)
	err := d.Err()
	var de *DeniedError
	if !errors.As(err, &de) || !errors.Is(err, ErrNotGranted) {
		t.Fatalf("Decide(...).Err() = %v, want a *DeniedError wrapping ErrNotGranted", err)
	}
	if want := `policy: encrypt on "demo/ssn" denied: no grant for token:app on this key`; err.Error() != want {
		t.Errorf("Err().Error() = %q, want %q", err.Error(), want)
	}
	if de.Key != ssn || de.Op != OpEncrypt {
		t.Errorf("DeniedError = %+v, want key %q op encrypt", de, ssn)
	}
	mustAddGrant(t, s, grant("g1", ssn, app, OpsAll))
	if err := s.Decide(principal(app), ssn, OpEncrypt, t0).Err(); err != nil {
		t.Errorf("Decide(allowed).Err() = %v, want nil", err)
	}
	if err := (Decision{}).Err(); !errors.Is(err, ErrNotGranted) {
		t.Errorf("Decision{}.Err() = %v, want ErrNotGranted", err)
	}
}

func TestIdempotency(t *testing.T) {
	s := NewState()
	gr := grant("g1", ssn, app, OpsAll, "r2", "r1")
	gr.NotAfter = t0.Add(time.Hour)
	mustAddGrant(t, s, gr)
	before := s.Canonical()

	same := gr
	same.Observed = []string{"r1", "r2", "r1"} // the same set
	same.NotAfter = gr.NotAfter.In(time.FixedZone("X", 3600))
	same.IssuedAt = gr.IssuedAt.Local()
	mustAddGrant(t, s, same)
	mustAddGrant(t, s, gr)

	rv := revoke("r9", ssn, app)
	mustAddRevocation(t, s, rv)
	mustAddRevocation(t, s, rv)
	rvLocal := rv
	rvLocal.IssuedAt = rv.IssuedAt.Local()
	mustAddRevocation(t, s, rvLocal)

	s2 := NewState()
	mustAddGrant(t, s2, gr)
	mustAddRevocation(t, s2, rv)
	if !bytes.Equal(s.Canonical(), s2.Canonical()) {
		t.Errorf("Canonical after repeated adds differs from single adds")
	}
	if bytes.Equal(before, s.Canonical()) {
		t.Errorf("Canonical did not change after a new revocation")
	}
	if n := len(s.Grants("")); n != 1 {
		t.Errorf("len(Grants(\"\")) = %d, want 1", n)
	}
}

// TestIDsScopedByKey: ids live in their key's namespace (issue 8, finding
// 2: a reused id on another key cancelled a revocation or removed grants):
// the same id on two keys is two grants, and neither touches the other.
func TestIDsScopedByKey(t *testing.T) {
	s := NewState()
	mustAddGrant(t, s, grant("g1", ssn, app, OpsDecrypt))
	other := grant("g1", "demo/other", app, OpsAll)
	if err := s.AddGrant(other); err != nil {
		t.Fatalf("AddGrant(same id, other key) = %v, want nil", err)
	}
	mustAddRevocation(t, s, revoke("r1", "demo/other", app))
	if d := s.Decide(principal(app), ssn, OpDecrypt, t0); !d.Allowed {
		t.Errorf("a revocation on another key with a reused id ended the grant: %+v", d)
	}
	if d := s.Decide(principal(app), "demo/other", OpDecrypt, t0); d.Allowed {
		t.Errorf("revoked grant on demo/other allowed: %+v", d)
	}
}

func TestConflict(t *testing.T) {
	s := NewState()
	gr := grant("g1", ssn, app, OpsDecrypt)
	mustAddGrant(t, s, gr)
	rv := revoke("r1", "demo/other", app)
	mustAddRevocation(t, s, rv)
	before := s.Canonical()

	for _, tt := range []struct {
		name string
		f    func(*Grant)
	}{
		{"fail/ops", func(g *Grant) { g.Ops = OpsAll }},
		{"fail/party", func(g *Grant) { g.Party = alice }},
		{"fail/not-after", func(g *Grant) { g.NotAfter = t0 }},
		{"fail/observed", func(g *Grant) { g.Observed = []string{"r1"} }},
		{"fail/issued-at", func(g *Grant) { g.IssuedAt = t0.Add(time.Nanosecond) }},
		{"fail/issuer", func(g *Grant) { g.Issuer = "node2" }},
		{"fail/custodian", func(g *Grant) { g.Custodian = "Org1MSP" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			other := gr
			tt.f(&other)
			if err := s.AddGrant(other); !errors.Is(err, ErrConflict) {
				t.Errorf("AddGrant(changed g1) = %v, want ErrConflict", err)
			}
		})
	}
	other := rv
	other.Party = alice
	if err := s.AddRevocation(other); !errors.Is(err, ErrConflict) {
		t.Errorf("AddRevocation(changed r1) = %v, want ErrConflict", err)
	}
	if !bytes.Equal(before, s.Canonical()) {
		t.Errorf("state changed after conflicting adds")
	}
	if d := s.Decide(principal(app), ssn, OpEncrypt, t0); d.Allowed {
		t.Errorf("Decide(encrypt) after rejected widening = %+v, want denied", d)
	}
	// Grant and revocation IDs are separate name spaces.
	mustAddRevocation(t, s, revoke("g1", ssn, "token:other"))
}

func TestAddGrantCopies(t *testing.T) {
	s := NewState()
	obs := []string{"r2", "r1"}
	gr := grant("g1", ssn, app, OpsAll, obs...)
	gr.Observed = obs
	mustAddGrant(t, s, gr)
	obs[0] = "zz"
	got, ok := s.Grant("g1")
	if !ok || !slices.Equal(got.Observed, []string{"r1", "r2"}) {
		t.Fatalf("Grant(g1) = %+v, %v, want Observed [r1 r2]", got, ok)
	}
	got.Observed[0] = "mutated"
	if again, _ := s.Grant("g1"); again.Observed[0] != "r1" {
		t.Errorf("Grant returned the state's own Observed slice")
	}
	st := s.Grants(ssn)
	st[0].Grant.Observed[0] = "mutated"
	if again, _ := s.Grant("g1"); again.Observed[0] != "r1" {
		t.Errorf("Grants returned the state's own Observed slice")
	}
	if _, ok := s.Grant("nope"); ok {
		t.Errorf("Grant(nope) found, want not found")
	}
}

func TestGrantsListing(t *testing.T) {
	s := NewState()
	later := grant("a", ssn, app, OpsAll)
	later.IssuedAt = t0.Add(time.Hour)
	expired := grant("b", ssn, app, OpsAll)
	expired.NotAfter = t0
	future := grant("c", ssn, alice, OpsAll)
	future.NotBefore = t0.Add(time.Hour)
	apply(t, s, []step{
		g(later), g(expired), g(future),
		g(grant("d", ssn, org1, OpsAll)), r(revoke("r1", ssn, org1)),
		g(grant("e", "demo/aaa", app, OpsAll)),
	})

	ids := func(st []Status) string {
		var b strings.Builder
		for _, x := range st {
			fmt.Fprintf(&b, "%s:%v:%s ", x.Grant.ID, x.InForce, x.Reason)
		}
		return b.String()
	}
	// Sorted by (Key, Party, IssuedAt, ID): fabric: < org: < token:, and b
	// (issued at t0) before a (issued an hour later).
	if got, want := ids(s.Grants(ssn)), "c:true: d:false:revoked b:true: a:true: "; got != want {
		t.Errorf("Grants(%q) = %s, want %s", ssn, got, want)
	}
	if got, want := ids(s.GrantsAt(ssn, t0)), "c:false:not yet valid d:false:revoked b:false:expired a:true: "; got != want {
		t.Errorf("GrantsAt(%q, t0) = %s, want %s", ssn, got, want)
	}
	if got, want := ids(s.Grants("")), "e:true: c:true: d:false:revoked b:true: a:true: "; got != want {
		t.Errorf("Grants(\"\") = %s, want %s", got, want)
	}
	if got := s.Grants("demo/none"); len(got) != 0 {
		t.Errorf("Grants(demo/none) = %v, want empty", got)
	}
	if rs := s.Revocations(""); len(rs) != 1 || rs[0].ID != "r1" {
		t.Errorf("Revocations(\"\") = %+v, want [r1]", rs)
	}
	if rs := s.Revocations("demo/aaa"); len(rs) != 0 {
		t.Errorf("Revocations(demo/aaa) = %+v, want empty", rs)
	}
	if rv, ok := s.Revocation("r1"); !ok || rv.Party != org1 {
		t.Errorf("Revocation(r1) = %+v, %v, want org1's", rv, ok)
	}
}

func TestDropKey(t *testing.T) {
	s := NewState()
	apply(t, s, []step{
		g(grant("g1", ssn, app, OpsAll)), r(revoke("r1", ssn, alice)),
		g(grant("g2", "demo/keep", app, OpsAll)),
	})
	s.DropKey(ssn)
	if d := s.Decide(principal(app), ssn, OpDecrypt, t0); d.Allowed || d.Reason != "no grant for token:app on this key" {
		t.Errorf("Decide after DropKey = %+v, want no grant", d)
	}
	if d := s.Decide(principal(app), "demo/keep", OpDecrypt, t0); !d.Allowed {
		t.Errorf("Decide(other key) after DropKey = %+v, want allowed", d)
	}
	if got := s.Grants(ssn); len(got) != 0 {
		t.Errorf("Grants(%q) after DropKey = %v, want empty", ssn, got)
	}
	if got := s.RevocationIDs(ssn, alice); got != nil {
		t.Errorf("RevocationIDs after DropKey = %q, want nil", got)
	}
	want := NewState()
	mustAddGrant(t, want, grant("g2", "demo/keep", app, OpsAll))
	if !bytes.Equal(s.Canonical(), want.Canonical()) {
		t.Errorf("Canonical after DropKey differs from a state that never held the key")
	}
	// The IDs are free again: no conflict with what was forgotten.
	mustAddGrant(t, s, grant("g1", ssn, alice, OpsDecrypt))
	s.DropKey("demo/none") // no-op
}

func TestCanonicalDistinguishes(t *testing.T) {
	base := grant("g1", ssn, app, OpsAll)
	enc := func(gs ...Grant) []byte {
		s := NewState()
		for _, gr := range gs {
			mustAddGrant(t, s, gr)
		}
		return s.Canonical()
	}
	ref := enc(base)
	for name, f := range map[string]func(*Grant){
		"ops":        func(g *Grant) { g.Ops = OpsDecrypt },
		"not-before": func(g *Grant) { g.NotBefore = t0 },
		"not-after":  func(g *Grant) { g.NotAfter = t0 },
		"nanosecond": func(g *Grant) { g.IssuedAt = t0.Add(1) },
		"custodian":  func(g *Grant) { g.Custodian = "O" },
		"observed":   func(g *Grant) { g.Observed = []string{"r1"} },
		// Length prefixes keep field boundaries: "g1"+"demo/ssn" is not
		// "g1d"+"emo/ssn".
		"boundaries": func(g *Grant) { g.ID = "g1d"; g.Key = "emo/ssn" },
	} {
		other := base
		f(&other)
		if bytes.Equal(enc(other), ref) {
			t.Errorf("Canonical does not see a change of %s", name)
		}
	}
	if !bytes.HasPrefix(ref, []byte(canonicalMagic)) {
		t.Errorf("Canonical does not start with its magic")
	}
}

// TestConcurrent runs writers and deciders at once; run with -race.
func TestConcurrent(t *testing.T) {
	s := NewState()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				id := fmt.Sprintf("g%d-%d", w, i)
				p := Party(fmt.Sprintf("token:t%d", i%7))
				if err := s.AddGrant(grant(id, ssn, p, OpsAll)); err != nil {
					t.Errorf("AddGrant(%s) = %v", id, err)
				}
				if i%10 == 0 {
					if err := s.AddRevocation(revoke(fmt.Sprintf("r%d-%d", w, i), ssn, p)); err != nil {
						t.Errorf("AddRevocation = %v", err)
					}
				}
			}
		})
		wg.Go(func() {
			for i := range 2000 {
				s.Decide(principal(Party(fmt.Sprintf("token:t%d", i%7))), ssn, OpDecrypt, t0)
				if i%100 == 0 {
					s.Grants("")
					s.Canonical()
				}
			}
		})
	}
	wg.Wait()
}

func TestDecideCustodian(t *testing.T) {
	s := NewState()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, g := range []Grant{
		{ID: "g1", Key: "k/a", Party: "token:app", Ops: OpsAll, Custodian: "Org1MSP", Issuer: "n1", IssuedAt: at},
		{ID: "g2", Key: "k/a", Party: "org:Org2MSP", Ops: OpsAll, Custodian: "Org1MSP", Issuer: "n1", IssuedAt: at},
	} {
		if err := s.AddGrant(g); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		p    Principal
		want bool
	}{
		{"ok/custodian-node", Principal{Parties: []Party{"token:app"}, Custodian: "Org1MSP"}, true},
		{"ok/no-custodian-scope", Principal{Parties: []Party{"token:app"}}, true},
		{"fail/other-orgs-token", Principal{Parties: []Party{"token:app"}, Custodian: "Org2MSP"}, false},
		{"ok/org-grant-at-its-node", Principal{Parties: []Party{"token:x", "org:Org2MSP"}, Custodian: "Org2MSP"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := s.Decide(tt.p, "k/a", OpDecrypt, at); d.Allowed != tt.want {
				t.Errorf("Decide(%v) = %+v, want allowed=%v", tt.p, d, tt.want)
			}
		})
	}
}

// reachOf is a Reach of fixed per-chain bounds.
func reachOf(bounds map[string]uint64) Reach {
	return func(chain string) uint64 { return bounds[chain] }
}

func TestReachObservesRevocations(t *testing.T) {
	// Three revocations of (ssn, app): two on chain A (positions 2, 5),
	// one on chain B (position 3); rX has no position.
	revs := []struct {
		r  Revocation
		at Position
	}{
		{revoke("rA2", ssn, app), Position{"A", 2}},
		{revoke("rA5", ssn, app), Position{"A", 5}},
		{revoke("rB3", ssn, app), Position{"B", 3}},
	}
	cases := []struct {
		name     string
		reach    map[string]uint64
		observed []string
		unplaced bool // add rX without a position as well
		inForce  bool
	}{
		{"no reach, no Observed", nil, nil, false, false},
		{"reach covers every chain", map[string]uint64{"A": 5, "B": 3}, nil, false, true},
		{"reach beyond every chain", map[string]uint64{"A": 9, "B": 7}, nil, false, true},
		{"reach misses A's last", map[string]uint64{"A": 4, "B": 3}, nil, false, false},
		{"reach misses A's last, Observed names it", map[string]uint64{"A": 4, "B": 3}, []string{"rA5"}, false, true},
		{"reach misses chain B", map[string]uint64{"A": 5}, nil, false, false},
		{"Observed names B's", map[string]uint64{"A": 5}, []string{"rB3"}, false, true},
		{"Observed names every one", nil, []string{"rA2", "rA5", "rB3"}, false, true},
		{"unplaced needs its ID", map[string]uint64{"A": 5, "B": 3}, nil, true, false},
		{"unplaced named", map[string]uint64{"A": 5, "B": 3}, []string{"rX"}, true, true},
	}
	for _, c := range cases {
		for _, grantFirst := range []bool{false, true} {
			s := NewState()
			g := grant("g1", ssn, app, OpsDecrypt, c.observed...)
			var reach Reach
			if c.reach != nil {
				reach = reachOf(c.reach)
			}
			addGrant := func() {
				if err := s.AddGrantReaching(g, reach); err != nil {
					t.Fatalf("%s: AddGrantReaching = %v", c.name, err)
				}
			}
			if grantFirst {
				addGrant()
			}
			for _, r := range revs {
				if err := s.AddRevocationAt(r.r, r.at); err != nil {
					t.Fatalf("%s: AddRevocationAt(%s) = %v", c.name, r.r.ID, err)
				}
			}
			if c.unplaced {
				mustAddRevocation(t, s, revoke("rX", ssn, app))
			}
			if !grantFirst {
				addGrant()
			}
			d := s.Decide(principal(app), ssn, OpDecrypt, t0)
			if d.Allowed != c.inForce {
				t.Errorf("%s (grant first %v): allowed = %v (%s), want %v", c.name, grantFirst, d.Allowed, d.Reason, c.inForce)
			}
		}
	}
}

// TestObserveIsCompact: a pair revoked n times on one chain asks a new
// grant to follow one position, not to list n IDs; only revocations held
// without a position, or beyond its reach, are to be listed.
func TestObserveIsCompact(t *testing.T) {
	s := NewState()
	for i := 1; i <= 100; i++ {
		if err := s.AddRevocationAt(revoke(fmt.Sprintf("r%03d", i), ssn, app), Position{"A", uint64(2 * i)}); err != nil {
			t.Fatal(err)
		}
	}
	mustAddRevocation(t, s, revoke("legacy", ssn, app))
	last := s.RevocationChains(ssn, app)
	ids := s.Unobserved(ssn, app, reachOf(last))
	if !slices.Equal(ids, []string{"legacy"}) || len(last) != 1 || last["A"] != 200 {
		t.Fatalf("RevocationChains = %v, Unobserved = %q; want map[A:200], [legacy]", last, ids)
	}
	if got := s.Unobserved(ssn, app, reachOf(map[string]uint64{"A": 100})); len(got) != 51 {
		t.Errorf("Unobserved with reach A:100 has %d ids, want 51 (50 beyond it and legacy)", len(got))
	}
	if got := len(s.RevocationIDs(ssn, app)); got != 101 {
		t.Errorf("RevocationIDs has %d ids, want 101", got)
	}
	mustAddGrant(t, s, Grant{ID: "g1", Key: ssn, Party: app, Ops: OpsDecrypt, Issuer: "node1", IssuedAt: t0, Observed: ids})
	if d := s.Decide(principal(app), ssn, OpDecrypt, t0); d.Allowed {
		t.Errorf("a grant listing only the unplaced id, without reach, is in force")
	}
	if err := s.AddGrantReaching(Grant{ID: "g2", Key: ssn, Party: app, Ops: OpsDecrypt, Issuer: "node1", IssuedAt: t0, Observed: ids}, reachOf(last)); err != nil {
		t.Fatal(err)
	}
	if d := s.Decide(principal(app), ssn, OpDecrypt, t0); !d.Allowed || d.GrantID != "g2" {
		t.Errorf("a grant reaching Observe's positions: %+v, want allowed by g2", d)
	}
	// A revocation after it on chain A ends it.
	if err := s.AddRevocationAt(revoke("r-late", ssn, app), Position{"A", 201}); err != nil {
		t.Fatal(err)
	}
	if d := s.Decide(principal(app), ssn, OpDecrypt, t0); d.Allowed {
		t.Errorf("a revocation beyond the grant's reach did not end it")
	}
}

// TestOrgsWithGrant: the orgs whose org: grant on a key is in force,
// sorted, whatever other parties the key is granted to; revoked orgs and
// dropped keys are not listed.
func TestOrgsWithGrant(t *testing.T) {
	s := NewState()
	for i := range 200 {
		mustAddGrant(t, s, grant(fmt.Sprintf("t%03d", i), ssn, Party(fmt.Sprintf("token:p%03d", i)), OpsDecrypt))
	}
	mustAddGrant(t, s, grant("g2", ssn, "org:Org2MSP", OpsDecrypt))
	mustAddGrant(t, s, grant("g1", ssn, "org:Org1MSP", OpsDecrypt))
	mustAddGrant(t, s, grant("g3", ssn, "org:Org3MSP", OpsDecrypt))
	mustAddRevocation(t, s, revoke("r3", ssn, "org:Org3MSP"))
	mustAddGrant(t, s, grant("o1", "demo/other", "org:Org9MSP", OpsDecrypt))
	if got, want := s.OrgsWithGrant(ssn), []string{"Org1MSP", "Org2MSP"}; !slices.Equal(got, want) {
		t.Fatalf("OrgsWithGrant = %q, want %q", got, want)
	}
	s.DropKey(ssn)
	if got := s.OrgsWithGrant(ssn); got != nil {
		t.Errorf("OrgsWithGrant after DropKey = %q, want none", got)
	}
	if got := s.OrgsWithGrant("demo/other"); !slices.Equal(got, []string{"Org9MSP"}) {
		t.Errorf("OrgsWithGrant(demo/other) = %q", got)
	}
}

// TestKMIPKeys: the keys a KMIP party has a pair on (a grant, live or
// ended, or a revocation), kept as grants and revocations come and keys
// are dropped; other kinds of party are not indexed.
func TestKMIPKeys(t *testing.T) {
	s := NewState()
	const mongo, other = Party("kmip:mongo"), Party("kmip:other")
	mustAddGrant(t, s, grant("g1", "k/b", mongo, OpsAll))
	mustAddGrant(t, s, grant("g2", "k/a", mongo, OpsAll))
	mustAddGrant(t, s, grant("g3", "k/a", other, OpsAll))
	mustAddGrant(t, s, grant("g4", "k/c", app, OpsAll))
	mustAddRevocation(t, s, revoke("r1", "k/d", mongo)) // a revocation alone makes a pair
	mustAddRevocation(t, s, revoke("r2", "k/b", mongo)) // an ended grant keeps its pair
	for _, tc := range []struct {
		p    Party
		want []string
	}{
		{mongo, []string{"k/a", "k/b", "k/d"}},
		{other, []string{"k/a"}},
		{app, []string{}},
		{"kmip:nobody", []string{}},
	} {
		if got := s.KMIPKeys(tc.p); !slices.Equal(got, tc.want) {
			t.Errorf("KMIPKeys(%s) = %v, want %v", tc.p, got, tc.want)
		}
	}
	s.DropKey("k/a")
	if got := s.KMIPKeys(mongo); !slices.Equal(got, []string{"k/b", "k/d"}) {
		t.Errorf("after DropKey(k/a): KMIPKeys(mongo) = %v", got)
	}
	if got := s.KMIPKeys(other); len(got) != 0 {
		t.Errorf("after DropKey(k/a): KMIPKeys(other) = %v", got)
	}
	mustAddGrant(t, s, grant("g5", "k/a", other, OpsAll))
	if got := s.KMIPKeys(other); !slices.Equal(got, []string{"k/a"}) {
		t.Errorf("a grant after the drop: KMIPKeys(other) = %v", got)
	}
}
