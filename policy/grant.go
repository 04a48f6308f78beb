package policy

import (
	"fmt"
	"slices"
	"time"
)

// Limits of grant and revocation fields.
const (
	maxID     = 64
	maxKey    = 128
	maxIssuer = 256
)

// Grant allows a party to use a key for some operations, within optional
// time bounds. It stays in force until a revocation of the same key and
// party that it did not observe is held (see the package doc).
type Grant struct {
	// ID is unique, chosen by the issuer: 1..64 bytes of [A-Za-z0-9_-].
	ID string
	// Key is the key name (validated by the vault; here 1..128 bytes of
	// printable UTF-8).
	Key string
	// Party is who the grant is for, in canonical form.
	Party Party
	// Ops is the non-empty set of operations granted.
	Ops Ops
	// NotBefore is the first instant the grant allows; zero means no lower
	// bound.
	NotBefore time.Time
	// NotAfter is the first instant the grant no longer allows; zero means
	// no upper bound. When both bounds are set it must be after NotBefore.
	NotAfter time.Time
	// Custodian is the OrgID whose nodes serve a non-org party; it may be
	// "" (the event layer then picks the grantor's org).
	Custodian string
	// Issuer is the node or operator that issued the grant: 1..256 bytes
	// of printable UTF-8.
	Issuer string
	// IssuedAt is when the issuer issued the grant. It orders listings; the
	// fold does not use it.
	IssuedAt time.Time
	// Observed holds IDs of revocations of the same (Key, Party) that the
	// issuer had applied when it issued the grant. It is a set: order and
	// repeats do not matter. It need not name a revocation that the grant
	// observes through its causal reach (see [Reach]): the mesh names
	// only those ([State.Observe]), so a pair granted and revoked n times
	// does not make its n-th grant O(n) bytes.
	Observed []string
}

// Position is where an event sits: its issuer's chain (an opaque string
// the event layer chooses, one per issuer) and its sequence number there,
// from 1. The zero Position is no position: a revocation added without one
// is observed only by the grants whose Observed names its ID.
type Position struct {
	Chain string
	Seq   uint64
}

// Reach is a grant event's causal reach: Reach(chain) is the highest
// sequence number of chain whose event the grant's event causally follows
// (0: none). Causal pasts are prefix-closed, so the grant follows every
// event of chain up to that number. A grant observes every revocation at
// a position within its reach: its issuer had applied it.
//
// The event layer must give a grant only the reach it has proved (its own
// chain, and the dependencies the receiver checked). A reach must not
// change while the grant is held; the state calls it while adding the
// grant and while adding later revocations of its pair.
type Reach func(chain string) uint64

// Revocation ends every grant of its (Key, Party) that did not observe it:
// that neither lists the revocation's ID in Observed nor reaches its
// position (see [Reach]).
type Revocation struct {
	ID       string // unique, chosen by the issuer, as Grant.ID
	Key      string
	Party    Party
	Issuer   string
	IssuedAt time.Time // orders listings; the fold does not use it
}

// Validate reports whether g is well-formed. Its errors wrap
// [ErrInvalidGrant] (and [ErrInvalidParty] for a bad party) and quote the
// grant ID.
func (g Grant) Validate() error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w %s: %s", ErrInvalidGrant, quote(g.ID), fmt.Sprintf(format, args...))
	}
	if why := checkID(g.ID); why != "" {
		return fail("id %s", why)
	}
	if why := checkText(g.Key, maxKey); why != "" {
		return fail("key %s", why)
	}
	if err := g.Party.Validate(); err != nil {
		return fmt.Errorf("%w %s: %w", ErrInvalidGrant, quote(g.ID), err)
	}
	if !g.Ops.valid() {
		return fail("operations 0x%02x: want a non-empty set of encrypt, decrypt and export", uint8(g.Ops))
	}
	if !g.NotBefore.IsZero() && !g.NotAfter.IsZero() && !g.NotAfter.After(g.NotBefore) {
		return fail("not-after %s is not after not-before %s",
			g.NotAfter.UTC().Format(time.RFC3339Nano), g.NotBefore.UTC().Format(time.RFC3339Nano))
	}
	if g.Custodian != "" {
		if why := checkOrgID(g.Custodian); why != "" {
			return fail("custodian %s: %s", quote(g.Custodian), why)
		}
	}
	if why := checkText(g.Issuer, maxIssuer); why != "" {
		return fail("issuer %s", why)
	}
	for _, id := range g.Observed {
		if why := checkID(id); why != "" {
			return fail("observed revocation id %s %s", quote(id), why)
		}
	}
	return nil
}

// Validate reports whether r is well-formed. Its errors wrap
// [ErrInvalidGrant] (and [ErrInvalidParty] for a bad party) and quote the
// revocation ID.
func (r Revocation) Validate() error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: revocation %s: %s", ErrInvalidGrant, quote(r.ID), fmt.Sprintf(format, args...))
	}
	if why := checkID(r.ID); why != "" {
		return fail("id %s", why)
	}
	if why := checkText(r.Key, maxKey); why != "" {
		return fail("key %s", why)
	}
	if err := r.Party.Validate(); err != nil {
		return fmt.Errorf("%w: revocation %s: %w", ErrInvalidGrant, quote(r.ID), err)
	}
	if why := checkText(r.Issuer, maxIssuer); why != "" {
		return fail("issuer %s", why)
	}
	return nil
}

// ValidID reports whether s is a well-formed grant or revocation ID:
// 1..64 bytes of [A-Za-z0-9_-].
func ValidID(s string) bool { return checkID(s) == "" }

func checkID(s string) string {
	if s == "" {
		return "is empty"
	}
	if len(s) > maxID {
		return "longer than 64 bytes"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return "must match [A-Za-z0-9_-]+"
		}
	}
	return ""
}

// normalTime drops the monotonic reading and the location, so that equal
// instants compare and encode equally. The zero time stays zero.
func normalTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Round(0).UTC()
}

// normal returns a copy of g in normal form: times in UTC without monotonic
// reading, Observed sorted without repeats and not aliasing the caller's
// slice.
func (g Grant) normal() Grant {
	g.NotBefore = normalTime(g.NotBefore)
	g.NotAfter = normalTime(g.NotAfter)
	g.IssuedAt = normalTime(g.IssuedAt)
	if len(g.Observed) == 0 {
		g.Observed = nil
	} else {
		obs := slices.Clone(g.Observed)
		slices.Sort(obs)
		g.Observed = slices.Compact(obs)
	}
	return g
}

func (r Revocation) normal() Revocation {
	r.IssuedAt = normalTime(r.IssuedAt)
	return r
}

// sameGrant reports whether two grants in normal form are identical.
func sameGrant(a, b Grant) bool {
	return a.ID == b.ID && a.Key == b.Key && a.Party == b.Party && a.Ops == b.Ops &&
		a.NotBefore.Equal(b.NotBefore) && a.NotAfter.Equal(b.NotAfter) &&
		a.Custodian == b.Custodian && a.Issuer == b.Issuer && a.IssuedAt.Equal(b.IssuedAt) &&
		slices.Equal(a.Observed, b.Observed)
}

// sameRevocation reports whether two revocations in normal form are identical.
func sameRevocation(a, b Revocation) bool {
	return a.ID == b.ID && a.Key == b.Key && a.Party == b.Party &&
		a.Issuer == b.Issuer && a.IssuedAt.Equal(b.IssuedAt)
}

// StatusAt judges g's bounds alone at time at (NotBefore <= at < NotAfter):
// whether it is in force and, if not, why ([StatusExpired] or
// [StatusNotYetValid]). Revocation is the state's to judge
// ([State.GrantsAt]).
func (g Grant) StatusAt(at time.Time) (inForce bool, reason string) {
	switch timeCheck(&g, at) {
	case rankExpired:
		return false, StatusExpired
	case rankNotYetValid:
		return false, StatusNotYetValid
	}
	return true, ""
}
