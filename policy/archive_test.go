package policy

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

// testArchive is a map-backed Archive whose reads and writes fail on
// demand, and which counts its reads.
type testArchive struct {
	*memArchive
	failGet, failScan atomic.Bool
	// failSet, if set, says whether a Set fails.
	failSet func() bool
	gets    atomic.Int64
}

var errInjected = errors.New("injected archive failure")

func newTestArchive() *testArchive { return &testArchive{memArchive: newMemArchive()} }

func (a *testArchive) Get(name []byte) ([]byte, error) {
	a.gets.Add(1)
	if a.failGet.Load() {
		return nil, errInjected
	}
	return a.memArchive.Get(name)
}

func (a *testArchive) Scan(prefix []byte, fn func(name, rec []byte) error) error {
	if a.failScan.Load() {
		return errInjected
	}
	return a.memArchive.Scan(prefix, fn)
}

func (a *testArchive) Set(name, rec []byte) error {
	if a.failSet != nil && a.failSet() {
		return errInjected
	}
	return a.memArchive.Set(name, rec)
}

// endedPair grants g1 of (ssn, app) with the reach of chain c up to 1 and
// revokes it at c:2: g1 is ended, and only the archive holds it and the
// revocation.
func endedPair(t *testing.T, s *State) {
	t.Helper()
	if err := s.AddGrantReaching(grant("g1", ssn, app, OpsOf(OpDecrypt)), chainReach("c", 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.AddRevocationAt(revoke("r1", ssn, app), Position{Chain: "c", Seq: 2}); err != nil {
		t.Fatal(err)
	}
	idx := s.index[ssn]
	if _, ok := idx.grants["g1"]; ok {
		t.Fatalf("the ended grant g1 is still in memory")
	}
	if _, ok := idx.revs["r1"]; ok {
		t.Fatalf("the placed revocation r1 is still in memory")
	}
}

// TestAdversaryReusedIDOfEndedGrant: an issuer that reuses the ID of one
// of its grants after that grant ended (and left memory for the archive)
// with another content — here a grant of every operation, which its
// reach would put in force — is refused with ErrConflict: the check reads
// the archive, not only memory. The same holds for a revocation ID. An
// identical copy is still a no-op.
func TestAdversaryReusedIDOfEndedGrant(t *testing.T) {
	a := newTestArchive()
	s := NewState(WithArchive(a))
	endedPair(t, s)
	before := s.Canonical()

	reused := grant("g1", ssn, app, OpsAll)
	a.gets.Store(0)
	err := s.AddGrantReaching(reused, chainReach("c", 10))
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("AddGrantReaching(g1 reused with other ops, reaching r1) = %v, want ErrConflict", err)
	}
	if a.gets.Load() == 0 {
		t.Fatalf("the conflict check did not read the archive")
	}
	if d := s.Decide(principal(app), ssn, OpEncrypt, t0); d.Allowed {
		t.Fatalf("Decide after the reused grant = %+v, want denied", d)
	}
	if !bytes.Equal(s.Canonical(), before) {
		t.Fatalf("a refused reuse changed the state")
	}
	if err := s.AddGrantReaching(grant("g1", ssn, app, OpsOf(OpDecrypt)), chainReach("c", 10)); err != nil {
		t.Fatalf("AddGrantReaching(g1 as issued) = %v, want nil (a duplicate)", err)
	}
	if d := s.Decide(principal(app), ssn, OpDecrypt, t0); d.Allowed || d.GrantID != "g1" || d.Reason != ReasonRevoked {
		t.Fatalf("Decide after the duplicate = %+v, want denied, g1 revoked", d)
	}

	other := revoke("r1", ssn, alice)
	if err := s.AddRevocationAt(other, Position{Chain: "c", Seq: 3}); !errors.Is(err, ErrConflict) {
		t.Fatalf("AddRevocationAt(r1 reused for another party) = %v, want ErrConflict", err)
	}
	if err := s.AddRevocationAt(revoke("r1", ssn, app), Position{Chain: "c", Seq: 2}); err != nil {
		t.Fatalf("AddRevocationAt(r1 as issued) = %v, want nil", err)
	}
	if !bytes.Equal(s.Canonical(), before) {
		t.Fatalf("duplicates and refused reuses changed the state")
	}
}

// TestArchiveReadFailuresFailClosed: while the archive cannot be read, a
// grant that needs it is refused (state unchanged), a revocation is
// applied (it ends grants) and kept in memory, a page fails with
// ErrArchive, and Decide never reads it.
func TestArchiveReadFailuresFailClosed(t *testing.T) {
	a := newTestArchive()
	s := NewState(WithArchive(a))
	endedPair(t, s)
	mustAddGrant(t, s, grant("g2", ssn, alice, OpsAll))
	before := s.Canonical()

	a.failGet.Store(true)
	a.failScan.Store(true)
	a.gets.Store(0)
	if d := s.Decide(principal(alice), ssn, OpEncrypt, t0); !d.Allowed {
		t.Fatalf("Decide(alice) = %+v, want allowed by g2", d)
	}
	if d := s.Decide(principal(app), ssn, OpDecrypt, t0); d.Allowed || d.GrantID != "g1" {
		t.Fatalf("Decide(app) = %+v, want denied naming g1", d)
	}
	if n := a.gets.Load(); n != 0 {
		t.Fatalf("Decide read the archive %d times", n)
	}
	err := s.AddGrantReaching(grant("g3", ssn, app, OpsAll), chainReach("c", 10))
	if !errors.Is(err, ErrArchive) || !errors.Is(err, errInjected) {
		t.Fatalf("AddGrantReaching with an unreadable archive = %v, want ErrArchive wrapping the cause", err)
	}
	if c := s.Canonical(); !bytes.Contains(c, []byte("unreadable")) {
		t.Fatalf("Canonical with an unreadable archive does not say so")
	}
	a.failScan.Store(false)
	if !bytes.Equal(s.Canonical(), before) {
		t.Fatalf("a refused grant changed the state")
	}
	a.failScan.Store(true)
	if err := s.AddRevocationAt(revoke("r2", ssn, alice), Position{Chain: "c", Seq: 5}); err != nil {
		t.Fatalf("AddRevocationAt with an unreadable archive = %v, want nil", err)
	}
	if d := s.Decide(principal(alice), ssn, OpEncrypt, t0); d.Allowed {
		t.Fatalf("Decide(alice) after r2 = %+v, want denied", d)
	}
	if _, ok := s.index[ssn].revs["r2"]; !ok {
		t.Fatalf("a revocation applied unchecked is not kept in memory")
	}
	if _, _, err := s.GrantsAtPage(ssn, t0, GrantCursor{}, 10); !errors.Is(err, ErrArchive) {
		t.Fatalf("GrantsAtPage with an unreadable archive = %v, want ErrArchive", err)
	}
	a.failGet.Store(false)
	a.failScan.Store(false)
	page, _, err := s.GrantsAtPage(ssn, t0, GrantCursor{}, 10)
	if err != nil || len(page) != 2 || page[0].InForce || page[1].InForce {
		t.Fatalf("GrantsAtPage after recovery = %+v, %v, want g1 and g2, both ended", page, err)
	}
}

// TestSuspendDenies: a suspended pair, or a whole suspended key, is
// denied until the key is dropped.
func TestSuspendDenies(t *testing.T) {
	s := NewState()
	mustAddGrant(t, s, grant("g1", ssn, app, OpsAll))
	mustAddGrant(t, s, grant("g2", ssn, alice, OpsAll))
	s.Suspend(ssn, app, errInjected)
	if d := s.Decide(principal(app), ssn, OpEncrypt, t0); d.Allowed || d.Reason != ReasonUnreadable {
		t.Fatalf("Decide(suspended pair) = %+v, want denied %q", d, ReasonUnreadable)
	}
	if d := s.Decide(principal(alice), ssn, OpEncrypt, t0); !d.Allowed {
		t.Fatalf("Decide(other pair) = %+v, want allowed", d)
	}
	s.Suspend(ssn, "", nil)
	if d := s.Decide(principal(alice), ssn, OpEncrypt, t0); d.Allowed {
		t.Fatalf("Decide(suspended key) = %+v, want denied", d)
	}
	s.DropKey(ssn)
	mustAddGrant(t, s, grant("g1", ssn, app, OpsAll))
	if d := s.Decide(principal(app), ssn, OpEncrypt, t0); !d.Allowed || s.Suspended(ssn, app) != nil {
		t.Fatalf("Decide after DropKey = %+v, want allowed", d)
	}
}

// TestArchiveSetFailuresKeepMemory: an archive that refuses some writes
// leaves those ended grants and revocations in memory; listings, pages,
// decisions and Canonical are those of a state whose archive took all.
func TestArchiveSetFailuresKeepMemory(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	flaky := newTestArchive()
	flaky.failSet = func() bool { return rng.IntN(3) == 0 }
	states := []*State{NewState(), NewState(WithArchive(flaky))}
	for _, s := range states {
		for i := range 60 {
			p := Party(fmt.Sprintf("token:p%d", i%4))
			g := grant(fmt.Sprintf("g%02d", i), ssn, p, OpsOf(Op(1+i%3)))
			g.IssuedAt = t0.Add(time.Duration(i%5) * time.Second)
			if err := s.AddGrantReaching(g, chainReach("c", uint64(2*i))); err != nil {
				t.Fatal(err)
			}
			if i%3 != 2 {
				if err := s.AddRevocationAt(revoke(fmt.Sprintf("r%02d", i), ssn, p), Position{Chain: "c", Seq: uint64(2*i + 1)}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	want, got := states[0], states[1]
	if !bytes.Equal(got.Canonical(), want.Canonical()) {
		t.Fatalf("Canonical differs with a flaky archive")
	}
	if g, w := fmt.Sprint(got.GrantsAt(ssn, t0), got.Revocations(ssn)), fmt.Sprint(want.GrantsAt(ssn, t0), want.Revocations(ssn)); g != w {
		t.Fatalf("listings differ with a flaky archive:\n got  %s\n want %s", g, w)
	}
	if g, w := fmt.Sprint(pages(t, got, 7)), fmt.Sprint(want.GrantsAt(ssn, t0)); g != w {
		t.Fatalf("pages differ from the listing:\n got  %s\n want %s", g, w)
	}
	for i := range 4 {
		p := principal(Party(fmt.Sprintf("token:p%d", i)))
		for op := OpEncrypt; op <= OpExport; op++ {
			if g, w := got.Decide(p, ssn, op, t0), want.Decide(p, ssn, op, t0); g != w {
				t.Fatalf("Decide(%v, %v) = %+v, want %+v", p, op, g, w)
			}
		}
	}
}

// pages lists key ssn of s page by page.
func pages(t *testing.T, s *State, limit int) []Status {
	t.Helper()
	var out []Status
	var after GrantCursor
	for range 1000 {
		page, next, err := s.GrantsAtPage(ssn, t0, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
		if next == (GrantCursor{}) {
			return out
		}
		after = next
	}
	t.Fatalf("pages do not end")
	return nil
}

// TestArchiveRecordsRoundTrip: an ended grant's and a placed revocation's
// records decode to what was encoded, and a damaged record is refused.
func TestArchiveRecordsRoundTrip(t *testing.T) {
	s := NewState()
	g := grant("g1", ssn, app, OpsAll, "r0", "r9")
	g.NotBefore, g.NotAfter, g.Custodian = t0.Add(-time.Hour), t0.Add(time.Hour), "Org1MSP"
	ge := s.newGrantEntry(g.normal(), app)
	ge.revoked, ge.g.Observed = true, nil
	back, err := decodeGrant("g1", encodeGrant(ge))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := back.grant(ssn), ge.grant(ssn); !sameGrant(a, b) || *back.obs != *ge.obs || !back.revoked {
		t.Fatalf("decodeGrant(encodeGrant(g)) = %+v, want %+v", a, b)
	}
	re := &revEntry{id: "r1", party: app, issuer: "node1", at: Position{Chain: "c", Seq: 7}, issued: instantOf(t0)}
	rb, err := decodeRev("r1", encodeRev(re))
	if err != nil || *rb != *re {
		t.Fatalf("decodeRev(encodeRev(r)) = %+v, %v, want %+v", rb, err, re)
	}
	rec := encodeGrant(ge)
	for n := range len(rec) {
		if _, err := decodeGrant("g1", rec[:n]); !errors.Is(err, ErrArchive) {
			t.Fatalf("decodeGrant(record cut at %d) = %v, want ErrArchive", n, err)
		}
	}
}
