package policy

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// State is the deterministic fold of a set of grants and revocations: it
// depends only on which grants and revocations were added, not on their
// order (see the package doc). It is safe for concurrent use; Decide takes
// only a read lock.
//
// # Memory
//
// What a State keeps in memory does not grow with the history of a
// pair: per (key, party) it holds the pair's live grants and a summary
// of the rest — per chain, the highest position of the pair's
// revocations (bounded by the number of issuers), the revocations
// without a position (which only legacy and test paths add), and per
// custodian the smallest ID of an ended grant with each operation (what
// a denial names). Ended grants and placed revocations go to the
// state's [Archive], which the mesh keeps in its store, and are read
// back only for listings, pages, Canonical, conflict checks of a reused
// ID, and a grant that does not reach every revocation of its pair and
// lists some in Observed; Decide never reads it. An archive that refuses
// a write leaves the record in memory, so nothing is lost; one that
// cannot be read fails closed (see [ErrArchive]). Without an archive
// ([NewState] alone) the records are kept in a map in memory.
//
// A live entry holds its strings once (a grant's id is the tail of its
// "grant <id>" reason; its key and party are the index's own; issuers,
// custodians and chains are interned), its times in 12 bytes each, its
// Observed digest only when Observed was not empty (BenchmarkStateMemory,
// BenchmarkPairHistory measure it). Grants and revocations are indexed
// per key, so no scoped id string is built.
type State struct {
	gate atomic.Pointer[func(key string, at time.Time) error]
	mu   sync.RWMutex
	// keys holds, per key, its pairs: what a decision reads.
	keys map[string]map[Party]*pairEntry
	// index holds, per key, its grants and revocations by ID and its org:
	// pairs (a subset of keys), which OrgsWithGrant walks on every change
	// of the key: a key granted to many other parties does not make it
	// slower.
	index map[string]*keyIndex
	// ngrants and nrevs count the grants and revocations held, for
	// CountGrants and Canonical.
	ngrants, nrevs int
	// arch holds the ended grants and placed revocations (see Archive).
	arch Archive
	// suspended holds the pairs (party "": every pair of the key) whose
	// policy could not be read back whole (Suspend, or an archive that
	// refused to forget a dropped key): Decide denies them.
	suspended map[pairName]error
	// strs interns issuers, custodians and chains, which few grants and
	// revocations do not share (at most maxInterned; past that each
	// keeps its own copy).
	strs map[string]string
	// kmipKeys holds, per KMIP party, the keys on which it has a pair:
	// the keys a KMIP Locate may find for it (KMIPKeys). Only KMIP
	// parties are indexed, so other kinds cost it nothing.
	kmipKeys map[Party]map[string]struct{}
}

// maxInterned bounds State.strs: the strings it holds outlive the keys
// that brought them.
const maxInterned = 4096

// intern returns x, sharing one copy of it among the entries that hold it.
// The caller holds the write lock.
func (s *State) intern(x string) string {
	if x == "" {
		return ""
	}
	if y, ok := s.strs[x]; ok {
		return y
	}
	if len(s.strs) < maxInterned {
		x = strings.Clone(x)
		s.strs[x] = x
	}
	return x
}

// keyIndex is what the state knows of one key beside its pairs.
type keyIndex struct {
	name string // the key, shared by every entry of it
	// grants holds the key's grants in memory by ID: the live ones, and
	// ended ones the archive refused; revs likewise the revocations
	// without a position and placed ones the archive refused.
	grants map[string]*grantEntry
	revs   map[string]*revEntry
	orgs   map[Party]*pairEntry
	// ngrants and nrevs count the key's grants and revocations, archived
	// ones included.
	ngrants, nrevs int
}

// revEntry is a held revocation and where its event sits; its key is
// its index's.
type revEntry struct {
	id     string
	party  Party
	issuer string
	at     Position
	issued instant
}

func compareRevID(r *revEntry, id string) int { return cmp.Compare(r.id, id) }

// revocation returns the revocation r of key.
func (r *revEntry) revocation(key string) Revocation {
	return Revocation{ID: r.id, Key: key, Party: r.party, Issuer: r.issuer, IssuedAt: r.issued.time()}
}

// pairEntry holds what the state keeps in memory of one (key, party).
//
// A grant that a revocation ended stays ended whatever is added later
// (remove-wins), so the pair keeps its live grants apart from its ended
// ones, which go to the archive: a decision, a revocation and a new
// grant read the live grants and the pair's summaries only, whatever
// the pair's history.
type pairEntry struct {
	grants []*grantEntry // not revoked, sorted by ID
	// hist is the pair's revocations and ended grants (a grant ends only
	// by a revocation of its pair); nil while it has none.
	hist *pairRevs
}

// endedSum summarises a pair's ended grants of one custodian: what
// Decide names for a denial, which is the ended grant with the smallest
// ID among those that have the operation.
type endedSum struct {
	custodian string
	min       [OpExport + 1]string // by Op: the smallest ID that has it ("" none)
}

// addSum counts ended grant ge in h's summaries.
func (h *pairRevs) addSum(ge *grantEntry) {
	i := slices.IndexFunc(h.sums, func(e endedSum) bool { return e.custodian == ge.custodian })
	if i < 0 {
		h.sums = append(h.sums, endedSum{custodian: ge.custodian})
		i = len(h.sums) - 1
	}
	sum := &h.sums[i]
	for op := OpEncrypt; op <= OpExport; op++ {
		if ge.ops.Has(op) && (sum.min[op] == "" || ge.g.ID < sum.min[op]) {
			sum.min[op] = ge.g.ID
		}
	}
}

// pairRevs are the revocations and ended grants of one pair.
type pairRevs struct {
	party Party // the index's copy
	// ended holds the ended grants the archive refused, sorted by ID;
	// their Observed is dropped.
	ended []*grantEntry
	// sums summarise every ended grant of the pair, per custodian, for
	// the reason of a denial.
	sums []endedSum
	// revs holds the pair's revocations in memory, sorted by ID: those
	// without a position, and placed ones the archive refused; archived
	// counts those in the archive.
	revs     []*revEntry
	archived int
	// last holds, per chain (sorted), the highest position of the pair's
	// revocations there, and unplaced counts those without a position:
	// a grant whose reach passes every last and that has no unplaced
	// revocation to observe by ID follows all of them (coversAll).
	last     []chainSeq
	unplaced int
}

type chainSeq struct {
	chain string
	seq   uint64
}

// find returns the index of chain in last, or -1.
func (h *pairRevs) find(chain string) int {
	i, ok := slices.BinarySearchFunc(h.last, chain, func(c chainSeq, x string) int { return cmp.Compare(c.chain, x) })
	if !ok {
		return -1
	}
	return i
}

// instant is a time in normal form (UTC, no monotonic reading) in 12
// bytes: Unix seconds, and nanoseconds plus one (0: the zero time).
type instant struct {
	sec  int64
	nsec int32
}

func instantOf(t time.Time) instant {
	if t.IsZero() {
		return instant{}
	}
	return instant{sec: t.Unix(), nsec: int32(t.Nanosecond()) + 1}
}

func (i instant) isZero() bool { return i.nsec == 0 }

func (i instant) time() time.Time {
	if i.nsec == 0 {
		return time.Time{}
	}
	return time.Unix(i.sec, int64(i.nsec-1)).UTC()
}

// reachedBy reports whether at is at or after the non-zero instant i.
func (i instant) reachedBy(at time.Time) bool {
	s := at.Unix()
	return s > i.sec || s == i.sec && int32(at.Nanosecond()) >= i.nsec-1
}

// grantEntry is a held grant; its key is its index's. Its id is the tail
// of reason, and its party, issuer and custodian are shared strings.
type grantEntry struct {
	// g holds the ID and, while the grant is in force, its Observed set
	// (normal form); Observed is nil once revoked (see obs).
	g struct {
		ID       string
		Observed []string
	}
	reason    string // "grant <id>", built once so that Decide allocates nothing
	party     Party
	custodian string
	issuer    string
	// reach is the grant event's causal reach (nil: none); kept while the
	// grant is in force, dropped with Observed when it ends.
	reach Reach
	// obs is the digest and size of the grant's Observed set (nil when it
	// was empty): what comparing a re-added grant and [State.Canonical]
	// need once Observed itself is dropped. A revoked grant's Observed can
	// no longer matter to any decision, and it is what made a pair
	// granted and revoked n times hold O(n²) IDs (each new grant observes
	// every earlier revocation).
	obs                         *observedSet
	notBefore, notAfter, issued instant
	ops                         Ops
	revoked                     bool // some revocation of the pair is not covered (covers)
}

// observedSet is the SHA-256 of a non-empty Observed set (its sorted IDs,
// each length-prefixed) and its size.
type observedSet struct {
	digest [32]byte
	n      int
}

// emptyObserved is the digest of an empty Observed set.
var emptyObserved = observedDigest(nil)

func (ge *grantEntry) observed() (digest [32]byte, n int) {
	if ge.obs == nil {
		return emptyObserved, 0
	}
	return ge.obs.digest, ge.obs.n
}

// newGrantEntry returns the entry of g (in normal form, validated) in a
// pair of party p (the index's string). The caller holds the write lock.
func (s *State) newGrantEntry(g Grant, p Party) *grantEntry {
	reason := "grant " + g.ID
	ge := &grantEntry{
		reason: reason, party: p, custodian: s.intern(g.Custodian), issuer: s.intern(g.Issuer),
		notBefore: instantOf(g.NotBefore), notAfter: instantOf(g.NotAfter), issued: instantOf(g.IssuedAt),
		ops: g.Ops,
	}
	ge.g.ID = reason[len("grant "):]
	ge.g.Observed = g.Observed
	if len(g.Observed) > 0 {
		ge.obs = &observedSet{digest: observedDigest(g.Observed), n: len(g.Observed)}
	}
	return ge
}

// grant returns the grant ge of key, with a copy of its Observed.
func (ge *grantEntry) grant(key string) Grant {
	return Grant{
		ID: ge.g.ID, Key: key, Party: ge.party, Ops: ge.ops,
		NotBefore: ge.notBefore.time(), NotAfter: ge.notAfter.time(),
		Custodian: ge.custodian, Issuer: ge.issuer, IssuedAt: ge.issued.time(),
		Observed: slices.Clone(ge.g.Observed),
	}
}

// observedDigest returns the digest a grantEntry keeps of a sorted Observed.
func observedDigest(obs []string) [32]byte {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, id := range obs {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(id)))])
		h.Write([]byte(id))
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// end marks the grant at index i of pe's live grants revoked and moves it
// to the archive, dropping its Observed and reach. The caller holds the
// write lock.
func (s *State) end(idx *keyIndex, pe *pairEntry, i int) {
	ge := pe.grants[i]
	ge.revoked = true
	ge.g.Observed, ge.reach = nil, nil
	pe.grants = slices.Delete(pe.grants, i, i+1)
	s.retire(idx, pe, ge)
}

// retire files ended grant ge of pe: in the pair's summaries, and in the
// archive, or, if the archive refuses it, in memory (pe.hist.ended), so
// that nothing is lost. pe has a revocation (what ended ge). The caller
// holds the write lock.
func (s *State) retire(idx *keyIndex, pe *pairEntry, ge *grantEntry) {
	h := pe.hist
	h.addSum(ge)
	if s.archiveGrant(idx.name, ge) {
		delete(idx.grants, ge.g.ID)
		return
	}
	idx.grants[ge.g.ID] = ge
	j, _ := slices.BinarySearchFunc(h.ended, ge.g.ID, compareEntryID)
	h.ended = slices.Insert(h.ended, j, ge)
}

func compareEntryID(e *grantEntry, id string) int { return cmp.Compare(e.g.ID, id) }

// NewState returns an empty state. Without [WithArchive] it keeps its
// ended grants and placed revocations in memory.
func NewState(opts ...Option) *State {
	s := &State{
		keys:      make(map[string]map[Party]*pairEntry),
		index:     make(map[string]*keyIndex),
		kmipKeys:  make(map[Party]map[string]struct{}),
		strs:      make(map[string]string),
		suspended: make(map[pairName]error),
	}
	for _, o := range opts {
		o(s)
	}
	if s.arch == nil {
		s.arch = newMemArchive()
	}
	return s
}

// SetGate installs a check that Decide runs first: when it returns an
// error, the decision is a refusal that wraps [ErrStalePolicy] and no grant
// is consulted. The mesh uses it to refuse keys whose owner org it has not
// heard from within its staleness bound. gate must be safe for concurrent
// use; nil removes it.
func (s *State) SetGate(gate func(key string, at time.Time) error) {
	if gate == nil {
		s.gate.Store(nil)
		return
	}
	s.gate.Store(&gate)
}

// pairName names a (key, party); party "" stands for every party.
type pairName struct {
	key   string
	party Party
}

// Suspend makes Decide deny every request on (key, p), or on every pair
// of key if p is "", with reason [ReasonUnreadable], until the next
// [State.DropKey] of key: what the event layer does when it cannot read
// back a revocation of the pair (or cannot tell which pairs a key's
// unreadable events name), so that a revocation it could not read does
// not leave a grant in force.
func (s *State) Suspend(key string, p Party, cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cause == nil {
		cause = ErrArchive
	}
	s.suspended[pairName{strings.Clone(key), Party(strings.Clone(string(p)))}] = cause
}

// Suspended returns why Decide denies (key, p) (see [State.Suspend]),
// or nil.
func (s *State) Suspended(key string, p Party) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.suspendedLocked(key, p)
}

func (s *State) suspendedLocked(key string, p Party) error {
	if len(s.suspended) == 0 {
		return nil
	}
	if err := s.suspended[pairName{key, ""}]; err != nil {
		return err
	}
	return s.suspended[pairName{key, p}]
}

// pair returns the index of key and the entry of (key, p) with the
// index's copy of p, creating them. The caller holds the write lock.
func (s *State) pair(key string, p Party) (*keyIndex, *pairEntry, Party) {
	idx := s.index[key]
	if idx == nil {
		key = strings.Clone(key)
		idx = &keyIndex{name: key, grants: map[string]*grantEntry{}, revs: map[string]*revEntry{}}
		s.index[key] = idx
		s.keys[key] = make(map[Party]*pairEntry)
	}
	byParty := s.keys[idx.name]
	pe := byParty[p]
	if pe == nil {
		p = Party(strings.Clone(string(p)))
		pe = &pairEntry{}
		byParty[p] = pe
		switch p.Kind() {
		case KindOrg:
			if idx.orgs == nil {
				idx.orgs = make(map[Party]*pairEntry)
			}
			idx.orgs[p] = pe
		case KindKMIP:
			set := s.kmipKeys[p]
			if set == nil {
				set = make(map[string]struct{})
				s.kmipKeys[p] = set
			}
			set[idx.name] = struct{}{}
		}
		return idx, pe, p
	}
	// The map's own copy of p, which every entry of the pair holds: a pair
	// is made for the grant or revocation that first names it, so it has
	// one (a pair with none would take the caller's copy, which is only
	// memory, not meaning).
	if len(pe.grants) > 0 {
		return idx, pe, pe.grants[0].party
	}
	if pe.hist != nil {
		return idx, pe, pe.hist.party
	}
	return idx, pe, p
}

// covers reports whether a grant with explicit set obs (sorted) and reach
// observed revocation r: r's ID is in obs, or r's event is in the grant
// event's causal past.
func covers(obs []string, reach Reach, r *revEntry) bool {
	if reach != nil && r.at.Chain != "" && r.at.Seq != 0 && r.at.Seq <= reach(r.at.Chain) {
		return true
	}
	_, found := slices.BinarySearch(obs, r.id)
	return found
}

// placedReached reports whether reach passes the last revocation of
// every chain of h: then a grant with that reach observes every placed
// revocation of h, archived or not, whatever the pair's history (the
// reach is prefix-closed).
func (h *pairRevs) placedReached(reach Reach) bool {
	if reach == nil {
		return len(h.last) == 0
	}
	for _, c := range h.last {
		if reach(c.chain) < c.seq {
			return false
		}
	}
	return true
}

// cachedReach returns reach asked once per chain of h, not once per
// revocation.
func (h *pairRevs) cachedReach(reach Reach) Reach {
	if reach == nil {
		return nil
	}
	bound := make([]uint64, len(h.last))
	for i, c := range h.last {
		bound[i] = reach(c.chain)
	}
	return func(chain string) uint64 {
		if i := h.find(chain); i >= 0 {
			return bound[i]
		}
		return 0
	}
}

// unobserved calls fn for each revocation of pe that a grant with
// explicit set obs (sorted) and reach does not observe, until fn returns
// false: those in memory in ID order, then those in the archive in ID
// order, which it reads only when reach does not pass them all. key is
// pe's key. An archive error ends the walk.
func (s *State) unobserved(key string, pe *pairEntry, obs []string, reach Reach, fn func(*revEntry) bool) error {
	h := pe.hist
	if h == nil || len(h.revs) == 0 && h.archived == 0 {
		return nil
	}
	placed := h.placedReached(reach)
	if placed && h.unplaced == 0 {
		return nil
	}
	reach = h.cachedReach(reach)
	for _, r := range h.revs {
		if !covers(obs, reach, r) && !fn(r) {
			return nil
		}
	}
	if placed || h.archived == 0 {
		return nil
	}
	return s.eachArchivedPairRev(key, h.party, func(r *revEntry) bool {
		if _, named := slices.BinarySearch(obs, r.id); named || covers(nil, reach, r) {
			return true
		}
		return fn(r)
	})
}

// coversAll reports whether a grant with explicit set obs and reach
// observed every revocation of pe (key's). With an empty obs it never
// reads the archive: the last revocation of a chain the reach does not
// pass is then one the grant did not observe.
func (s *State) coversAll(key string, pe *pairEntry, obs []string, reach Reach) (bool, error) {
	if h := pe.hist; h != nil && len(obs) == 0 && !h.placedReached(reach) {
		return false, nil
	}
	all := true
	err := s.unobserved(key, pe, obs, reach, func(*revEntry) bool { all = false; return false })
	return all && err == nil, err
}

// heldGrant returns the grant id of idx's key held in memory or in the
// archive, or nil.
func (s *State) heldGrant(idx *keyIndex, id string) (*grantEntry, error) {
	if ge, ok := idx.grants[id]; ok {
		return ge, nil
	}
	return s.archivedGrant(idx.name, id)
}

// heldRev returns the revocation id of idx's key held in memory or in
// the archive, or nil.
func (s *State) heldRev(idx *keyIndex, id string) (*revEntry, error) {
	if re, ok := idx.revs[id]; ok {
		return re, nil
	}
	return s.archivedRev(idx.name, id)
}

// AddGrant adds g to the state with no causal reach: it observes exactly
// the revocations its Observed names. See [State.AddGrantReaching].
func (s *State) AddGrant(g Grant) error { return s.AddGrantReaching(g, nil) }

// AddGrantReaching adds g, whose event has causal reach reach (nil: none),
// to the state. g observes a revocation if Observed names it or if the
// revocation's position is within reach (see [Reach]). Adding a grant
// identical to one held (times compared as instants, Observed as a set)
// does nothing and succeeds, whatever its reach: a grant's ID names one
// event; a grant whose ID is held with a different content, in memory or
// in the archive, fails with [ErrConflict]; an invalid grant fails with an
// error from [Grant.Validate]; a grant the state cannot check because its
// archive cannot be read fails with an error wrapping [ErrArchive] (it
// does not count: fail closed). On error the state is unchanged. The
// state keeps its own copy of g, and reach while g is in force.
func (s *State) AddGrantReaching(g Grant, reach Reach) error {
	if err := g.Validate(); err != nil {
		return err
	}
	g = g.normal()
	s.mu.Lock()
	defer s.mu.Unlock()
	if idx := s.index[g.Key]; idx != nil {
		old, err := s.heldGrant(idx, g.ID)
		if err != nil {
			return fmt.Errorf("policy: grant %s: check its id: %w", quote(g.ID), err)
		}
		if old != nil {
			a, b := old.grant(idx.name), g
			a.Observed, b.Observed = nil, nil
			d, n := old.observed()
			if sameGrant(a, b) && n == len(g.Observed) && (n == 0 || d == observedDigest(g.Observed)) {
				return nil
			}
			return fmt.Errorf("%w: grant %s is held with a different content", ErrConflict, quote(g.ID))
		}
	}
	inForce := true
	if pe := s.keys[g.Key][g.Party]; pe != nil {
		var err error
		if inForce, err = s.coversAll(g.Key, pe, g.Observed, reach); err != nil {
			return fmt.Errorf("policy: grant %s: check what it observed: %w", quote(g.ID), err)
		}
	}
	idx, pe, p := s.pair(g.Key, g.Party)
	ge := s.newGrantEntry(g, p)
	s.ngrants++
	idx.ngrants++
	if inForce {
		ge.reach = reach
		idx.grants[ge.g.ID] = ge
		i, _ := slices.BinarySearchFunc(pe.grants, g.ID, compareEntryID)
		pe.grants = slices.Insert(pe.grants, i, ge)
		return nil
	}
	ge.revoked, ge.g.Observed = true, nil
	s.retire(idx, pe, ge)
	return nil
}

// AddRevocation adds r without a position: only grants whose Observed
// names it observe it. See [State.AddRevocationAt].
func (s *State) AddRevocation(r Revocation) error { return s.AddRevocationAt(r, Position{}) }

// AddRevocationAt adds r, whose event sits at position at, to the state,
// ending every grant of its (Key, Party) that did not observe it (neither
// names r.ID in Observed nor reaches at). Adding a revocation identical to
// one held (in memory or in the archive) does nothing and succeeds,
// keeping the first position (an issuer's ids carry its prefix, so both
// copies are on one chain and the event layer adds the earlier first);
// one whose ID is held with a different content fails with
// [ErrConflict]; an invalid one fails with an error from
// [Revocation.Validate]. On error the state is unchanged. A revocation
// whose ID the archive cannot look up is applied (it can only end
// grants: fail closed) and kept in memory.
func (s *State) AddRevocationAt(r Revocation, at Position) error {
	if err := r.Validate(); err != nil {
		return err
	}
	r = r.normal()
	s.mu.Lock()
	defer s.mu.Unlock()
	unchecked := false
	if idx := s.index[r.Key]; idx != nil {
		old, err := s.heldRev(idx, r.ID)
		switch {
		case err != nil:
			unchecked = true
		case old != nil:
			if sameRevocation(old.revocation(idx.name), r) {
				return nil
			}
			return fmt.Errorf("%w: revocation %s is held with a different content", ErrConflict, quote(r.ID))
		}
	}
	if at.Chain == "" || at.Seq == 0 {
		at = Position{}
	}
	at.Chain = s.intern(at.Chain)
	idx, pe, p := s.pair(r.Key, r.Party)
	re := &revEntry{id: strings.Clone(r.ID), party: p, issuer: s.intern(r.Issuer), at: at, issued: instantOf(r.IssuedAt)}
	s.nrevs++
	idx.nrevs++
	if pe.hist == nil {
		pe.hist = &pairRevs{party: p}
	}
	h := pe.hist
	if at.Chain == "" {
		h.unplaced++
	} else if j := h.find(at.Chain); j >= 0 {
		h.last[j].seq = max(h.last[j].seq, at.Seq)
	} else {
		j, _ := slices.BinarySearchFunc(h.last, at.Chain, func(c chainSeq, x string) int { return cmp.Compare(c.chain, x) })
		h.last = slices.Insert(h.last, j, chainSeq{chain: at.Chain, seq: at.Seq})
	}
	if at.Chain != "" && !unchecked && s.archiveRev(idx.name, re) {
		h.archived++
	} else {
		idx.revs[re.id] = re
		i, _ := slices.BinarySearchFunc(h.revs, r.ID, compareRevID)
		h.revs = slices.Insert(h.revs, i, re)
	}
	for i := len(pe.grants) - 1; i >= 0; i-- {
		if ge := pe.grants[i]; !covers(ge.g.Observed, ge.reach, re) {
			s.end(idx, pe, i)
		}
	}
	return nil
}

// RevocationChains returns, per chain, the highest position of the
// revocations of (key, p) held there, or nil if none has a position: what
// the event of a grant of (key, p) issued now should follow, so that its
// reach observes them all ([State.Unobserved] gives what it must list).
func (s *State) RevocationChains(key string, p Party) map[string]uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	pe := s.keys[key][p]
	if pe == nil || pe.hist == nil || len(pe.hist.last) == 0 {
		return nil
	}
	out := make(map[string]uint64, len(pe.hist.last))
	for _, c := range pe.hist.last {
		out[c.chain] = c.seq
	}
	return out
}

// Unobserved returns the sorted IDs of the revocations of (key, p) held in
// the state that a grant with causal reach reach (nil: none) would not
// observe: what a grant of (key, p) issued now must carry in Observed to be
// in force. It returns nil if there are none. It reads the archive only
// when reach does not pass every revocation of the pair; if that read
// fails it returns what it found, and a grant that lists only those is
// not in force (fail closed).
func (s *State) Unobserved(key string, p Party, reach Reach) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	pe := s.keys[key][p]
	if pe == nil {
		return nil
	}
	var ids []string
	_ = s.unobserved(key, pe, nil, reach, func(r *revEntry) bool { ids = append(ids, r.id); return true })
	slices.Sort(ids)
	return ids
}

// RevocationIDs returns the sorted IDs of the revocations of (key, p) held
// in the state: what a grant issued now for (key, p) without a causal
// reach must carry in Observed. It returns nil if there are none. It reads
// the archived ones back (those it cannot read are left out, so a grant
// listing only the rest is not in force).
func (s *State) RevocationIDs(key string, p Party) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	pe := s.keys[key][p]
	if pe == nil || pe.hist == nil || len(pe.hist.revs) == 0 && pe.hist.archived == 0 {
		return nil
	}
	ids := make([]string, 0, len(pe.hist.revs)+pe.hist.archived)
	for _, r := range pe.hist.revs {
		ids = append(ids, r.id)
	}
	if pe.hist.archived > 0 {
		_ = s.eachArchivedPairRev(key, p, func(r *revEntry) bool { ids = append(ids, r.id); return true })
		slices.Sort(ids)
		ids = slices.Compact(ids)
	}
	return ids
}

// Grant returns a grant with the given ID, if held (of the first key in
// name order that has one; ids are unique per key). An ended grant comes
// without its Observed set (the state drops it: revoked is final).
func (s *State) Grant(id string) (Grant, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, name := range s.sortedKeys() {
		if ge, err := s.heldGrant(s.index[name], id); err == nil && ge != nil {
			return ge.grant(name), true
		}
	}
	return Grant{}, false
}

// Revocation returns a revocation with the given ID, if held (of the first
// key in name order that has one).
func (s *State) Revocation(id string) (Revocation, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, name := range s.sortedKeys() {
		if re, err := s.heldRev(s.index[name], id); err == nil && re != nil {
			return re.revocation(name), true
		}
	}
	return Revocation{}, false
}

// sortedKeys returns the names of the keys held, sorted. The caller holds
// a lock.
func (s *State) sortedKeys() []string {
	names := make([]string, 0, len(s.index))
	for name := range s.index {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Status is a grant and whether it is in force.
type Status struct {
	Grant   Grant
	InForce bool
	// Reason is why the grant is not in force: "revoked", "expired" or
	// "not yet valid"; "" when it is in force.
	Reason string
}

// Status reasons.
const (
	StatusRevoked     = "revoked"
	StatusExpired     = "expired"
	StatusNotYetValid = "not yet valid"
)

// Grants lists the grants of key, or of every key if key is "", sorted by
// (Key, Party, IssuedAt, ID). Without a time it judges revocation only: a
// grant is InForce unless revoked, whatever its bounds; use [State.GrantsAt]
// to judge the bounds as well. Ended grants are read back from the
// archive; those it cannot read are left out ([State.GrantsAtPage]
// reports the error).
func (s *State) Grants(key string) []Status {
	out, _ := s.list(key, func(ge *grantEntry) (bool, string) {
		if ge.revoked {
			return false, StatusRevoked
		}
		return true, ""
	})
	return out
}

// GrantsAt is like [State.Grants] but judges each grant at time at: a grant
// is InForce if it is not revoked and NotBefore <= at < NotAfter. A revoked
// grant gives "revoked" even when it is also outside its bounds.
func (s *State) GrantsAt(key string, at time.Time) []Status {
	out, _ := s.list(key, func(ge *grantEntry) (bool, string) { return ge.judgeAt(at) })
	return out
}

// judgeAt says whether ge is in force at time at and, if not, why: revoked
// first, then its bounds (Grant.StatusAt).
func (ge *grantEntry) judgeAt(at time.Time) (bool, string) {
	if ge.revoked {
		return false, StatusRevoked
	}
	switch ge.timeRank(at) {
	case rankExpired:
		return false, StatusExpired
	case rankNotYetValid:
		return false, StatusNotYetValid
	}
	return true, ""
}

// statusAt is ge's Status at time at; key is ge's key.
func (ge *grantEntry) statusAt(key string, at time.Time) Status {
	st := Status{Grant: ge.grant(key)}
	st.InForce, st.Reason = ge.judgeAt(at)
	return st
}

// eachGrant calls fn with every grant of idx's key: those in memory, then
// the archived ones not also in memory. The caller holds a lock.
func (s *State) eachGrant(idx *keyIndex, fn func(*grantEntry)) error {
	for _, ge := range idx.grants {
		fn(ge)
	}
	if idx.ngrants == len(idx.grants) {
		return nil // nothing archived
	}
	return s.eachArchivedGrant(idx.name, func(ge *grantEntry) bool {
		if _, dup := idx.grants[ge.g.ID]; !dup {
			fn(ge)
		}
		return true
	})
}

// eachRev calls fn with every revocation of idx's key, as eachGrant.
func (s *State) eachRev(idx *keyIndex, fn func(*revEntry)) error {
	for _, re := range idx.revs {
		fn(re)
	}
	if idx.nrevs == len(idx.revs) {
		return nil
	}
	return s.eachArchivedRev(idx.name, func(re *revEntry) {
		if _, dup := idx.revs[re.id]; !dup {
			fn(re)
		}
	})
}

func (s *State) list(key string, judge func(*grantEntry) (bool, string)) ([]Status, error) {
	s.mu.RLock()
	var out []Status
	var errs []error
	add := func(idx *keyIndex) {
		errs = append(errs, s.eachGrant(idx, func(ge *grantEntry) {
			inForce, reason := judge(ge)
			out = append(out, Status{Grant: ge.grant(idx.name), InForce: inForce, Reason: reason})
		}))
	}
	if key == "" {
		for _, idx := range s.index {
			add(idx)
		}
	} else if idx := s.index[key]; idx != nil {
		add(idx)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, compareStatus)
	return out, errors.Join(errs...)
}

// StatusAt returns the grant of key with the given ID judged at time at
// as [State.GrantsAt] would, without listing the key's other grants: what
// a node answers for the grant it has just issued. A revoked grant comes
// without its Observed set (the state drops it: revoked is final), read
// back from the archive; one the archive cannot read is not found.
func (s *State) StatusAt(key, id string, at time.Time) (Status, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	idx := s.index[key]
	if idx == nil {
		return Status{}, false
	}
	ge, err := s.heldGrant(idx, id)
	if err != nil || ge == nil {
		return Status{}, false
	}
	return ge.statusAt(idx.name, at), true
}

// InForceAt counts the grants of (key, p) in force at time at: what a
// revocation of the pair issued now ends. It walks the pair's live grants
// only, not its history.
func (s *State) InForceAt(key string, p Party, at time.Time) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	if pe := s.keys[key][p]; pe != nil {
		for _, ge := range pe.grants {
			if ge.timeRank(at) == rankAllowed {
				n++
			}
		}
	}
	return n
}

// Revocations lists the revocations of key, or of every key if key is "",
// sorted by (Key, Party, IssuedAt, ID), reading the archived ones back
// (those it cannot read are left out).
func (s *State) Revocations(key string) []Revocation {
	s.mu.RLock()
	var out []Revocation
	add := func(idx *keyIndex) {
		_ = s.eachRev(idx, func(re *revEntry) { out = append(out, re.revocation(idx.name)) })
	}
	if key == "" {
		for _, idx := range s.index {
			add(idx)
		}
	} else if idx := s.index[key]; idx != nil {
		add(idx)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Revocation) int {
		return cmp.Or(
			cmp.Compare(a.Key, b.Key),
			cmp.Compare(a.Party, b.Party),
			a.IssuedAt.Compare(b.IssuedAt),
			cmp.Compare(a.ID, b.ID),
		)
	})
	return out
}

// KMIPKeys returns, sorted, the keys on which KMIP party p has a pair (a
// grant, live or ended, or a revocation): the only keys that a decision
// for p alone can allow, and so the keys a KMIP Locate by p looks at,
// whatever the number of keys the node holds. For a party of another
// kind it returns nil: only KMIP parties are indexed.
func (s *State) KMIPKeys(p Party) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	set := s.kmipKeys[p]
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// DropKey forgets every grant and revocation of key, as when the key is
// destroyed, and deletes its records from the archive. The state does not
// remember the key: grants or revocations of it added afterwards are held
// again, so the event layer must not apply events of a destroyed key. If
// the archive cannot delete them the key stays suspended (see
// [State.Suspend]) until a DropKey succeeds.
func (s *State) DropKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if idx := s.index[key]; idx != nil {
		s.ngrants -= idx.ngrants
		s.nrevs -= idx.nrevs
	}
	for p := range s.keys[key] {
		if set := s.kmipKeys[p]; set != nil {
			delete(set, key)
			if len(set) == 0 {
				delete(s.kmipKeys, p)
			}
		}
	}
	delete(s.keys, key)
	delete(s.index, key)
	for n := range s.suspended {
		if n.key == key {
			delete(s.suspended, n)
		}
	}
	if err := s.arch.DeletePrefix(keyPrefix(key)); err != nil {
		s.suspended[pairName{strings.Clone(key), ""}] = fmt.Errorf("%w: forget the records of %s: %w", ErrArchive, quote(key), err)
	}
}

// canonicalMagic starts every Canonical encoding; its last byte is the
// encoding version.
const canonicalMagic = "keymesh/policy/state\x00\x03"

// Canonical returns a deterministic encoding of the whole state, for
// comparing or hashing the states of two nodes: two States holding the same
// grants and revocations give identical bytes, whatever the order they were
// added in. It encodes the grants sorted by (key, ID), then the
// revocations sorted by (key, ID), every string length-prefixed (uvarint),
// every time as a presence byte then Unix seconds (8 bytes, big endian)
// and nanoseconds (4 bytes), and each Observed set as its size then the
// SHA-256 of its sorted, length-prefixed IDs (the state keeps no revoked
// grant's Observed), then a byte 1 if the grant is revoked (0 if not), and
// each revocation's position (its chain length-prefixed, then its seq as
// a uvarint). A grant's reach is not encoded: whether it is revoked stands
// for it. Ended grants and placed revocations are read back from the
// archive; if that fails, the encoding ends with the error (so it
// matches no healthy state's) and suspended keys are listed. It is not a
// wire format and has no parser.
func (s *State) Canonical() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := s.sortedKeys()
	var errs []error
	b := []byte(canonicalMagic)
	b = binary.AppendUvarint(b, uint64(s.ngrants))
	for _, name := range names {
		idx := s.index[name]
		var ges []*grantEntry
		errs = append(errs, s.eachGrant(idx, func(ge *grantEntry) { ges = append(ges, ge) }))
		slices.SortFunc(ges, func(a, b *grantEntry) int { return cmp.Compare(a.g.ID, b.g.ID) })
		for _, ge := range ges {
			b = appendString(b, ge.g.ID)
			b = appendString(b, name)
			b = ge.appendTerms(b)
			d, _ := ge.observed()
			b = append(b, d[:]...)
			if ge.revoked {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		}
	}
	b = binary.AppendUvarint(b, uint64(s.nrevs))
	for _, name := range names {
		idx := s.index[name]
		var res []*revEntry
		errs = append(errs, s.eachRev(idx, func(re *revEntry) { res = append(res, re) }))
		slices.SortFunc(res, func(a, b *revEntry) int { return cmp.Compare(a.id, b.id) })
		for _, re := range res {
			b = appendString(b, re.id)
			b = appendString(b, name)
			b = appendString(b, string(re.party))
			b = appendString(b, re.issuer)
			b = appendInstant(b, re.issued)
			b = appendString(b, re.at.Chain)
			b = binary.AppendUvarint(b, re.at.Seq)
		}
	}
	if err := errors.Join(errs...); err != nil || len(s.suspended) > 0 {
		b = append(b, "\x00unreadable:"...)
		if err != nil {
			b = appendString(b, err.Error())
		}
		sus := make([]string, 0, len(s.suspended))
		for n := range s.suspended {
			sus = append(sus, n.key+"\x00"+string(n.party))
		}
		slices.Sort(sus)
		for _, n := range sus {
			b = appendString(b, n)
		}
	}
	return b
}

// appendTerms appends what Canonical and the archive's record of ge both
// hold, in this order: party, ops, bounds, custodian, issuer, issue time
// and the size of its Observed set.
func (ge *grantEntry) appendTerms(b []byte) []byte {
	b = appendString(b, string(ge.party))
	b = append(b, byte(ge.ops))
	b = appendInstant(b, ge.notBefore)
	b = appendInstant(b, ge.notAfter)
	b = appendString(b, ge.custodian)
	b = appendString(b, ge.issuer)
	b = appendInstant(b, ge.issued)
	_, n := ge.observed()
	return binary.AppendUvarint(b, uint64(n))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendInstant encodes i.time(): a presence byte, then (if not zero) Unix
// seconds and nanoseconds.
func appendInstant(b []byte, i instant) []byte {
	if i.isZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.BigEndian.AppendUint64(b, uint64(i.sec))
	return binary.BigEndian.AppendUint32(b, uint32(i.nsec-1))
}

// OrgsWithGrant returns the organisations that an org: party grant on key
// names and no revocation has ended (whatever its time bounds), sorted.
// The mesh asks it on every change to know which organisations' nodes hold
// a key, so it walks the key's org: parties only, without listing every
// grant or the key's other parties.
func (s *State) OrgsWithGrant(key string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	idx := s.index[key]
	if idx == nil {
		return nil
	}
	var out []string
	for party, pe := range idx.orgs {
		if len(pe.grants) > 0 {
			out = append(out, party.Org())
		}
	}
	slices.Sort(out)
	return out
}
