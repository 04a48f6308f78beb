package policy

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// State is the deterministic fold of a set of grants and revocations: it
// depends only on which grants and revocations were added, not on their
// order (see the package doc). It is safe for concurrent use; Decide takes
// only a read lock.
type State struct {
	gate   atomic.Pointer[func(key string, at time.Time) error]
	mu     sync.RWMutex
	grants map[string]*grantEntry // by grant ID
	revs   map[string]revEntry    // by revocation ID
	keys   map[string]map[Party]*pairEntry
	// orgs holds, per key, the pairs of its org: parties (a subset of
	// keys), which OrgsWithGrant walks on every change of the key: a key
	// granted to many other parties does not make it slower.
	orgs map[string]map[Party]*pairEntry
}

// revEntry is a held revocation and where its event sits.
type revEntry struct {
	r  Revocation
	at Position
}

// pairEntry holds what the state knows of one (key, party).
//
// A grant that a revocation ended stays ended whatever is added later
// (remove-wins), so the pair keeps its live grants apart from its ended
// ones: a decision, a revocation and a new grant walk the live grants
// only, whatever the pair's history.
type pairEntry struct {
	grants []*grantEntry // not revoked, sorted by ID
	ended  []*grantEntry // revoked, sorted by ID; their Observed is dropped
	revs   []revRef      // the revocations of this pair, sorted by ID
	// last holds, per chain, the highest position of the pair's
	// revocations there, and unplaced counts those without a position:
	// a grant whose reach passes every last and that has no unplaced
	// revocation to observe by ID follows all of them (coversAll).
	last     map[string]uint64
	unplaced int
}

// revRef is one revocation of a pair: its ID and position.
type revRef struct {
	id string
	at Position
}

func compareRevID(r revRef, id string) int { return cmp.Compare(r.id, id) }

type grantEntry struct {
	g       Grant  // normal form; Observed is nil once revoked (see obs)
	revoked bool   // some revocation of the pair is not covered (covers)
	reason  string // "grant <id>", built once so that Decide allocates nothing
	// reach is the grant event's causal reach (nil: none); kept while the
	// grant is in force, dropped with Observed when it ends.
	reach Reach
	// obs is the SHA-256 of the grant's Observed set (its sorted IDs,
	// each length-prefixed) and nobs its size: what comparing a re-added
	// grant and [State.Canonical] need once Observed itself is dropped.
	// A revoked grant's Observed can no longer matter to any decision,
	// and it is what made a pair granted and revoked n times hold O(n²)
	// IDs (each new grant observes every earlier revocation).
	obs  [32]byte
	nobs int
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
// to pe's ended grants, dropping its Observed. The caller holds the write
// lock.
func (s *State) end(pe *pairEntry, i int) {
	ge := pe.grants[i]
	ge.revoked = true
	ge.g.Observed, ge.reach = nil, nil
	pe.grants = slices.Delete(pe.grants, i, i+1)
	j, _ := slices.BinarySearchFunc(pe.ended, ge.g.ID, compareEntryID)
	pe.ended = slices.Insert(pe.ended, j, ge)
}

func compareEntryID(e *grantEntry, id string) int { return cmp.Compare(e.g.ID, id) }

// NewState returns an empty state.
func NewState() *State {
	return &State{
		grants: make(map[string]*grantEntry),
		revs:   make(map[string]revEntry),
		keys:   make(map[string]map[Party]*pairEntry),
		orgs:   make(map[string]map[Party]*pairEntry),
	}
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

// pair returns the entry of (key, p), creating it. The caller holds the
// write lock.
func (s *State) pair(key string, p Party) *pairEntry {
	byParty := s.keys[key]
	if byParty == nil {
		byParty = make(map[Party]*pairEntry)
		s.keys[key] = byParty
	}
	pe := byParty[p]
	if pe == nil {
		pe = &pairEntry{}
		byParty[p] = pe
		if p.Kind() == KindOrg {
			if s.orgs[key] == nil {
				s.orgs[key] = make(map[Party]*pairEntry)
			}
			s.orgs[key][p] = pe
		}
	}
	return pe
}

// covers reports whether a grant with explicit set obs (sorted) and reach
// observed revocation r: r's ID is in obs, or r's event is in the grant
// event's causal past.
func covers(obs []string, reach Reach, r revRef) bool {
	if reach != nil && r.at.Chain != "" && r.at.Seq != 0 && r.at.Seq <= reach(r.at.Chain) {
		return true
	}
	_, found := slices.BinarySearch(obs, r.id)
	return found
}

// reachesAll reports whether reach passes the last revocation of every
// chain of pe and pe has no unplaced revocation: then a grant with that
// reach observes all of pe's revocations, whatever the pair's history
// (the reach is prefix-closed).
func (pe *pairEntry) reachesAll(reach Reach) bool {
	if reach == nil || pe.unplaced > 0 {
		return false
	}
	for chain, seq := range pe.last {
		if reach(chain) < seq {
			return false
		}
	}
	return true
}

// unobserved calls fn for each revocation of pe that a grant with explicit
// set obs (sorted) and reach does not observe, until fn returns false. It
// asks reach once per chain.
func (pe *pairEntry) unobserved(obs []string, reach Reach, fn func(revRef) bool) {
	if len(pe.revs) == 0 || pe.reachesAll(reach) {
		return
	}
	if reach != nil { // asked once per chain, not once per revocation
		bound := make(map[string]uint64, len(pe.last))
		for chain := range pe.last {
			bound[chain] = reach(chain)
		}
		reach = func(chain string) uint64 { return bound[chain] }
	}
	for _, r := range pe.revs {
		if !covers(obs, reach, r) && !fn(r) {
			return
		}
	}
}

// coversAll reports whether a grant with explicit set obs and reach
// observed every revocation of pe.
func (pe *pairEntry) coversAll(obs []string, reach Reach) bool {
	all := true
	pe.unobserved(obs, reach, func(revRef) bool { all = false; return false })
	return all
}

// AddGrant adds g to the state with no causal reach: it observes exactly
// the revocations its Observed names. See [State.AddGrantReaching].
func (s *State) AddGrant(g Grant) error { return s.AddGrantReaching(g, nil) }

// AddGrantReaching adds g, whose event has causal reach reach (nil: none),
// to the state. g observes a revocation if Observed names it or if the
// revocation's position is within reach (see [Reach]). Adding a grant
// identical to one held (times compared as instants, Observed as a set)
// does nothing and succeeds, whatever its reach: a grant's ID names one
// event; a grant whose ID is held with a different content fails with
// [ErrConflict]; an invalid grant fails with an error from
// [Grant.Validate]. On error the state is unchanged. The state keeps its
// own copy of g, and reach while g is in force.
func (s *State) AddGrantReaching(g Grant, reach Reach) error {
	if err := g.Validate(); err != nil {
		return err
	}
	g = g.normal()
	s.mu.Lock()
	defer s.mu.Unlock()
	obs := observedDigest(g.Observed)
	if old, ok := s.grants[scoped(g.Key, g.ID)]; ok {
		a, b := old.g, g
		a.Observed, b.Observed = nil, nil
		if sameGrant(a, b) && old.obs == obs && old.nobs == len(g.Observed) {
			return nil
		}
		return fmt.Errorf("%w: grant %s is held with a different content", ErrConflict, quote(g.ID))
	}
	pe := s.pair(g.Key, g.Party)
	ge := &grantEntry{g: g, reason: "grant " + g.ID, obs: obs, nobs: len(g.Observed)}
	s.grants[scoped(g.Key, g.ID)] = ge
	if pe.coversAll(g.Observed, reach) {
		ge.reach = reach
		i, _ := slices.BinarySearchFunc(pe.grants, g.ID, compareEntryID)
		pe.grants = slices.Insert(pe.grants, i, ge)
	} else {
		ge.revoked, ge.g.Observed = true, nil
		i, _ := slices.BinarySearchFunc(pe.ended, g.ID, compareEntryID)
		pe.ended = slices.Insert(pe.ended, i, ge)
	}
	return nil
}

// AddRevocation adds r without a position: only grants whose Observed
// names it observe it. See [State.AddRevocationAt].
func (s *State) AddRevocation(r Revocation) error { return s.AddRevocationAt(r, Position{}) }

// AddRevocationAt adds r, whose event sits at position at, to the state,
// ending every grant of its (Key, Party) that did not observe it (neither
// names r.ID in Observed nor reaches at). Adding a revocation identical to
// one held does nothing and succeeds, keeping the first position (an
// issuer's ids carry its prefix, so both copies are on one chain and the
// event layer adds the earlier first); one whose ID is held with a
// different content fails with [ErrConflict]; an invalid one fails with an
// error from [Revocation.Validate]. On error the state is unchanged.
func (s *State) AddRevocationAt(r Revocation, at Position) error {
	if err := r.Validate(); err != nil {
		return err
	}
	r = r.normal()
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.revs[scoped(r.Key, r.ID)]; ok {
		if sameRevocation(old.r, r) {
			return nil
		}
		return fmt.Errorf("%w: revocation %s is held with a different content", ErrConflict, quote(r.ID))
	}
	if at.Chain == "" || at.Seq == 0 {
		at = Position{}
	}
	s.revs[scoped(r.Key, r.ID)] = revEntry{r: r, at: at}
	pe := s.pair(r.Key, r.Party)
	ref := revRef{id: r.ID, at: at}
	i, _ := slices.BinarySearchFunc(pe.revs, r.ID, compareRevID)
	pe.revs = slices.Insert(pe.revs, i, ref)
	if at.Chain == "" {
		pe.unplaced++
	} else {
		if pe.last == nil {
			pe.last = map[string]uint64{}
		}
		pe.last[at.Chain] = max(pe.last[at.Chain], at.Seq)
	}
	for i := len(pe.grants) - 1; i >= 0; i-- {
		if ge := pe.grants[i]; !covers(ge.g.Observed, ge.reach, ref) {
			s.end(pe, i)
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
	if pe := s.keys[key][p]; pe != nil && len(pe.last) > 0 {
		return maps.Clone(pe.last)
	}
	return nil
}

// Unobserved returns the sorted IDs of the revocations of (key, p) held in
// the state that a grant with causal reach reach (nil: none) would not
// observe: what a grant of (key, p) issued now must carry in Observed to be
// in force. It returns nil if there are none.
func (s *State) Unobserved(key string, p Party, reach Reach) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	pe := s.keys[key][p]
	if pe == nil {
		return nil
	}
	var ids []string
	pe.unobserved(nil, reach, func(r revRef) bool { ids = append(ids, r.id); return true })
	return ids
}

// RevocationIDs returns the sorted IDs of the revocations of (key, p) held
// in the state: what a grant issued now for (key, p) without a causal
// reach must carry in Observed. It returns nil if there are none.
func (s *State) RevocationIDs(key string, p Party) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	pe := s.keys[key][p]
	if pe == nil || len(pe.revs) == 0 {
		return nil
	}
	ids := make([]string, len(pe.revs))
	for i, r := range pe.revs {
		ids[i] = r.id
	}
	return ids
}

// scoped is the state's index of a grant or revocation: ids live in
// their key's namespace, so grants and revocations of different keys never
// interact, whatever their ids.
func scoped(key, id string) string { return key + "\x00" + id }

// Grant returns a grant with the given ID, if held (of the first key in
// name order that has one; ids are unique per key).
func (s *State) Grant(id string) (Grant, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var best *grantEntry
	for _, ge := range s.grants {
		if ge.g.ID == id && (best == nil || ge.g.Key < best.g.Key) {
			best = ge
		}
	}
	if best == nil {
		return Grant{}, false
	}
	return best.g.clone(), true
}

// Revocation returns a revocation with the given ID, if held (of the first
// key in name order that has one).
func (s *State) Revocation(id string) (Revocation, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var best Revocation
	found := false
	for _, re := range s.revs {
		if r := re.r; r.ID == id && (!found || r.Key < best.Key) {
			best, found = r, true
		}
	}
	return best, found
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
// to judge the bounds as well.
func (s *State) Grants(key string) []Status {
	return s.list(key, func(ge *grantEntry) (bool, string) {
		if ge.revoked {
			return false, StatusRevoked
		}
		return true, ""
	})
}

// GrantsAt is like [State.Grants] but judges each grant at time at: a grant
// is InForce if it is not revoked and NotBefore <= at < NotAfter. A revoked
// grant gives "revoked" even when it is also outside its bounds.
func (s *State) GrantsAt(key string, at time.Time) []Status {
	return s.list(key, func(ge *grantEntry) (bool, string) { return ge.judgeAt(at) })
}

// judgeAt says whether ge is in force at time at and, if not, why: revoked
// first, then its bounds (Grant.StatusAt).
func (ge *grantEntry) judgeAt(at time.Time) (bool, string) {
	if ge.revoked {
		return false, StatusRevoked
	}
	return ge.g.StatusAt(at)
}

// statusAt is ge's Status at time at.
func (ge *grantEntry) statusAt(at time.Time) Status {
	st := Status{Grant: ge.g.clone()}
	st.InForce, st.Reason = ge.judgeAt(at)
	return st
}

func (s *State) list(key string, judge func(*grantEntry) (bool, string)) []Status {
	s.mu.RLock()
	var out []Status
	add := func(byParty map[Party]*pairEntry) {
		for _, pe := range byParty {
			for _, set := range [][]*grantEntry{pe.grants, pe.ended} {
				for _, ge := range set {
					inForce, reason := judge(ge)
					out = append(out, Status{Grant: ge.g.clone(), InForce: inForce, Reason: reason})
				}
			}
		}
	}
	if key == "" {
		for _, byParty := range s.keys {
			add(byParty)
		}
	} else {
		add(s.keys[key])
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Status) int {
		return cmp.Or(
			cmp.Compare(a.Grant.Key, b.Grant.Key),
			cmp.Compare(a.Grant.Party, b.Grant.Party),
			a.Grant.IssuedAt.Compare(b.Grant.IssuedAt),
			cmp.Compare(a.Grant.ID, b.Grant.ID),
		)
	})
	return out
}

// StatusAt returns the grant of key with the given ID judged at time at
// as [State.GrantsAt] would, without listing the key's other grants: what
// a node answers for the grant it has just issued. A revoked grant comes
// without its Observed set (the state drops it: revoked is final).
func (s *State) StatusAt(key, id string, at time.Time) (Status, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ge, ok := s.grants[scoped(key, id)]
	if !ok {
		return Status{}, false
	}
	return ge.statusAt(at), true
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
			if timeCheck(&ge.g, at) == rankAllowed {
				n++
			}
		}
	}
	return n
}

// Revocations lists the revocations of key, or of every key if key is "",
// sorted by (Key, Party, IssuedAt, ID).
func (s *State) Revocations(key string) []Revocation {
	s.mu.RLock()
	var out []Revocation
	for _, re := range s.revs {
		if key == "" || re.r.Key == key {
			out = append(out, re.r)
		}
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

// DropKey forgets every grant and revocation of key, as when the key is
// destroyed. The state does not remember the key: grants or revocations of
// it added afterwards are held again, so the event layer must not apply
// events of a destroyed key.
func (s *State) DropKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pe := range s.keys[key] {
		for _, ge := range pe.grants {
			delete(s.grants, scoped(key, ge.g.ID))
		}
		for _, ge := range pe.ended {
			delete(s.grants, scoped(key, ge.g.ID))
		}
		for _, r := range pe.revs {
			delete(s.revs, scoped(key, r.id))
		}
	}
	delete(s.keys, key)
	delete(s.orgs, key)
}

// canonicalMagic starts every Canonical encoding; its last byte is the
// encoding version.
const canonicalMagic = "keymesh/policy/state\x00\x03"

// Canonical returns a deterministic encoding of the whole state, for
// comparing or hashing the states of two nodes: two States holding the same
// grants and revocations give identical bytes, whatever the order they were
// added in. It encodes the grants sorted by ID, then the revocations sorted
// by ID, every string length-prefixed (uvarint), every time as a presence
// byte then Unix seconds (8 bytes, big endian) and nanoseconds (4 bytes),
// and each Observed set as its size then the SHA-256 of its sorted,
// length-prefixed IDs (the state keeps no revoked grant's Observed), then
// a byte 1 if the grant is revoked (0 if not), and each revocation's
// position (its chain length-prefixed, then its seq as a uvarint). A
// grant's reach is not encoded: whether it is revoked stands for it. It is
// not a wire format and has no parser.
func (s *State) Canonical() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	gids := make([]string, 0, len(s.grants))
	for id := range s.grants {
		gids = append(gids, id)
	}
	slices.Sort(gids)
	rids := make([]string, 0, len(s.revs))
	for id := range s.revs {
		rids = append(rids, id)
	}
	slices.Sort(rids)

	b := []byte(canonicalMagic)
	b = binary.AppendUvarint(b, uint64(len(gids)))
	for _, id := range gids {
		ge := s.grants[id]
		g := &ge.g
		b = appendString(b, g.ID)
		b = appendString(b, g.Key)
		b = appendString(b, string(g.Party))
		b = append(b, byte(g.Ops))
		b = appendTime(b, g.NotBefore)
		b = appendTime(b, g.NotAfter)
		b = appendString(b, g.Custodian)
		b = appendString(b, g.Issuer)
		b = appendTime(b, g.IssuedAt)
		b = binary.AppendUvarint(b, uint64(ge.nobs))
		b = append(b, ge.obs[:]...)
		if ge.revoked {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(rids)))
	for _, id := range rids {
		re := s.revs[id]
		r := re.r
		b = appendString(b, r.ID)
		b = appendString(b, r.Key)
		b = appendString(b, string(r.Party))
		b = appendString(b, r.Issuer)
		b = appendTime(b, r.IssuedAt)
		b = appendString(b, re.at.Chain)
		b = binary.AppendUvarint(b, re.at.Seq)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.BigEndian.AppendUint64(b, uint64(t.Unix()))
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

// OrgsWithGrant returns the organisations that an org: party grant on key
// names and no revocation has ended (whatever its time bounds), sorted.
// The mesh asks it on every change to know which organisations' nodes hold
// a key, so it walks the key's org: parties only, without listing every
// grant or the key's other parties.
func (s *State) OrgsWithGrant(key string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for party, pe := range s.orgs[key] {
		if len(pe.grants) > 0 {
			out = append(out, party.Org())
		}
	}
	slices.Sort(out)
	return out
}
