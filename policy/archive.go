package policy

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Archive is where a [State] keeps what its decisions no longer read: the
// grants a revocation ended and the revocations that have a position,
// whose effect each pair's summary holds (see the State doc, "Memory").
// The State reads them back for listings, conflict checks, Canonical and
// the rare grant that observes revocations by ID instead of by reach.
//
// The records and their names are the State's own (names start with the
// key, then a 0 byte); an Archive stores them as given. The State calls
// Set and DeletePrefix under its write lock, Get and Scan under its read
// or write lock, so an Archive must let reads run beside each other and
// beside one writer. The mesh keeps its records in its store
// (mesh.Log); [NewState] without [WithArchive] keeps them in a map.
type Archive interface {
	// Get returns the record named name, or nil, nil if there is none.
	Get(name []byte) ([]byte, error)
	// Scan calls fn for every record whose name starts with prefix, in
	// ascending name order, and stops at the first error fn returns
	// (which Scan returns). fn must not retain name or rec.
	Scan(prefix []byte, fn func(name, rec []byte) error) error
	// Set stores rec (non-empty) under name. The State does not modify
	// either afterwards.
	Set(name, rec []byte) error
	// DeletePrefix removes every record whose name starts with prefix.
	DeletePrefix(prefix []byte) error
}

// ErrArchive is a failure of the [Archive] to read a record back. A State
// that cannot read its archive fails closed: a grant whose checks need
// the archive is refused, a revocation is applied (it can only end
// grants), and Decide never reads it.
var ErrArchive = errors.New("policy: archive unreadable")

// Option configures [NewState].
type Option func(*State)

// WithArchive keeps the state's ended grants and placed revocations in a
// (an empty archive: NewState does not read what a holds already).
func WithArchive(a Archive) Option { return func(s *State) { s.arch = a } }

// Record kinds, the byte after a name's key: an ended grant by ID, the
// listing order of ended grants, and a placed revocation by ID.
const (
	recGrant   = 'g'
	recListing = 'l'
	recRev     = 'r'
)

// recVersion starts every record: the state rebuilds its archive from
// its grants and revocations, so a new encoding needs no migration, only
// a new byte.
const recVersion = 1

// present is the value of an index record (an Archive stores no empty
// records).
var present = []byte{1}

// keyPrefix is the prefix of every record name of key.
func keyPrefix(key string) []byte { return append([]byte(key), 0) }

func recName(key string, kind byte, tail ...string) []byte {
	b := append(keyPrefix(key), kind)
	for _, t := range tail {
		b = append(b, t...)
	}
	return b
}

// partyPrefix is the part of an index name that names party p: p then a
// 0 byte, which sorts before every byte a party may hold, so names sort
// by party as strings do.
func partyPrefix(key string, kind byte, p Party) []byte {
	return append(recName(key, kind, string(p)), 0)
}

// listingName names ended grant ge of key in [State.Grants] order:
// (Party, IssuedAt, ID).
func listingName(key string, ge *grantEntry) []byte {
	b := partyPrefix(key, recListing, ge.party)
	b = appendSortTime(b, ge.issued.time())
	return append(b, ge.g.ID...)
}

// appendSortTime encodes t in 12 bytes that sort as times do: Unix
// seconds with the sign bit flipped, then nanoseconds, big endian.
func appendSortTime(b []byte, t time.Time) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(t.Unix())^(1<<63))
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

// encodeGrant is the record of ended grant ge (its key and ID are in the
// name): party, ops, bounds, custodian, issuer, issue time and the digest
// and size of its Observed set.
func encodeGrant(ge *grantEntry) []byte {
	b := ge.appendTerms([]byte{recVersion})
	if d, n := ge.observed(); n > 0 {
		b = append(b, d[:]...)
	}
	return b
}

// recReader reads a record; a short or malformed record sets bad.
type recReader struct {
	b   []byte
	bad bool
}

func (r *recReader) byte() byte {
	if len(r.b) < 1 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *recReader) uvarint() uint64 {
	n, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[k:]
	return n
}

func (r *recReader) string() string {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.b)) {
		r.bad = true
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *recReader) instant() instant {
	if r.byte() == 0 || r.bad {
		return instant{}
	}
	if len(r.b) < 12 {
		r.bad = true
		return instant{}
	}
	i := instant{sec: int64(binary.BigEndian.Uint64(r.b)), nsec: int32(binary.BigEndian.Uint32(r.b[8:])) + 1}
	r.b = r.b[12:]
	return i
}

// decodeGrant is the entry of the ended grant id that encodeGrant
// encoded in rec: revoked, with its Observed digest and no Observed.
func decodeGrant(id string, rec []byte) (*grantEntry, error) {
	r := recReader{b: rec}
	if r.byte() != recVersion {
		return nil, fmt.Errorf("%w: grant %s: unknown record version", ErrArchive, quote(id))
	}
	ge := &grantEntry{reason: "grant " + id, revoked: true}
	ge.g.ID = ge.reason[len("grant "):]
	ge.party = Party(r.string())
	ge.ops = Ops(r.byte())
	ge.notBefore, ge.notAfter = r.instant(), r.instant()
	ge.custodian, ge.issuer = r.string(), r.string()
	ge.issued = r.instant()
	if n := r.uvarint(); n > 0 && !r.bad {
		if len(r.b) < 32 {
			r.bad = true
		} else {
			ge.obs = &observedSet{n: int(n)}
			copy(ge.obs.digest[:], r.b)
			r.b = r.b[32:]
		}
	}
	if r.bad || len(r.b) != 0 {
		return nil, fmt.Errorf("%w: grant %s: malformed record", ErrArchive, quote(id))
	}
	return ge, nil
}

// encodeRev is the record of placed revocation re (its key and ID are in
// the name).
func encodeRev(re *revEntry) []byte {
	b := []byte{recVersion}
	b = appendString(b, string(re.party))
	b = appendString(b, re.issuer)
	b = appendInstant(b, re.issued)
	b = appendString(b, re.at.Chain)
	return binary.AppendUvarint(b, re.at.Seq)
}

func decodeRev(id string, rec []byte) (*revEntry, error) {
	r := recReader{b: rec}
	if r.byte() != recVersion {
		return nil, fmt.Errorf("%w: revocation %s: unknown record version", ErrArchive, quote(id))
	}
	re := &revEntry{id: id}
	re.party = Party(r.string())
	re.issuer = r.string()
	re.issued = r.instant()
	re.at.Chain = r.string()
	re.at.Seq = r.uvarint()
	if r.bad || len(r.b) != 0 {
		return nil, fmt.Errorf("%w: revocation %s: malformed record", ErrArchive, quote(id))
	}
	return re, nil
}

// archived reads the ended grant id of key from the archive (nil if it is
// not there).
func (s *State) archivedGrant(key, id string) (*grantEntry, error) {
	rec, err := s.arch.Get(recName(key, recGrant, id))
	if err != nil {
		return nil, fmt.Errorf("%w: read grant %s of %s: %w", ErrArchive, quote(id), quote(key), err)
	}
	if rec == nil {
		return nil, nil
	}
	return decodeGrant(id, rec)
}

// archivedRev reads the placed revocation id of key from the archive (nil
// if it is not there).
func (s *State) archivedRev(key, id string) (*revEntry, error) {
	rec, err := s.arch.Get(recName(key, recRev, id))
	if err != nil {
		return nil, fmt.Errorf("%w: read revocation %s of %s: %w", ErrArchive, quote(id), quote(key), err)
	}
	if rec == nil {
		return nil, nil
	}
	return decodeRev(id, rec)
}

// eachArchivedGrant calls fn with every ended grant of key in the
// archive, in ID order, until fn returns false.
func (s *State) eachArchivedGrant(key string, fn func(*grantEntry) bool) error {
	prefix := recName(key, recGrant)
	err := s.arch.Scan(prefix, func(name, rec []byte) error {
		ge, err := decodeGrant(string(name[len(prefix):]), rec)
		if err != nil {
			return err
		}
		if !fn(ge) {
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("%w: list the ended grants of %s: %w", ErrArchive, quote(key), err)
	}
	return nil
}

// eachArchivedRev calls fn with every placed revocation of key in the
// archive, in ID order.
func (s *State) eachArchivedRev(key string, fn func(*revEntry)) error {
	prefix := recName(key, recRev)
	err := s.arch.Scan(prefix, func(name, rec []byte) error {
		re, err := decodeRev(string(name[len(prefix):]), rec)
		if err != nil {
			return err
		}
		fn(re)
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: list the revocations of %s: %w", ErrArchive, quote(key), err)
	}
	return nil
}

// eachArchivedPairRev calls fn with every placed revocation of (key, p)
// in the archive, in ID order, until fn returns false. It reads all of
// the key's archived revocations: its callers (a grant that lists
// revocations by ID without reaching them, RevocationIDs) are rare, and
// an index per pair would cost every revocation a second record.
func (s *State) eachArchivedPairRev(key string, p Party, fn func(*revEntry) bool) error {
	prefix := recName(key, recRev)
	err := s.arch.Scan(prefix, func(name, rec []byte) error {
		re, err := decodeRev(string(name[len(prefix):]), rec)
		if err != nil {
			return err
		}
		if re.party == p && !fn(re) {
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("%w: list the revocations of %s on %s: %w", ErrArchive, p, quote(key), err)
	}
	return nil
}

var errStop = errors.New("policy: stop")

// archiveGrant moves ended grant ge of key to the archive; false if the
// archive refused it (ge then stays in memory). The caller holds the
// write lock.
func (s *State) archiveGrant(key string, ge *grantEntry) bool {
	if s.arch.Set(recName(key, recGrant, ge.g.ID), encodeGrant(ge)) != nil {
		return false
	}
	if s.arch.Set(listingName(key, ge), present) != nil {
		// The grant is archived but not listed in order: keep it in
		// memory as well (listings take the memory copy, see
		// mergeEnded).
		return false
	}
	return true
}

// archiveRev moves placed revocation re of key to the archive; false if
// the archive refused it.
func (s *State) archiveRev(key string, re *revEntry) bool {
	return s.arch.Set(recName(key, recRev, re.id), encodeRev(re)) == nil
}

// memArchive is the Archive of a State made without one: records in
// memory, per key (a key's names are sorted when it is scanned). It is
// for tests and legacy states: it saves no memory.
type memArchive struct {
	mu   sync.Mutex
	keys map[string]*memKey
}

type memKey struct {
	names  []string
	sorted bool
	recs   map[string][]byte
}

func newMemArchive() *memArchive { return &memArchive{keys: map[string]*memKey{}} }

// keyOf splits the key part off a record name or prefix.
func keyOf(name []byte) string {
	if i := bytes.IndexByte(name, 0); i >= 0 {
		return string(name[:i])
	}
	return string(name)
}

func (m *memArchive) Get(name []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k := m.keys[keyOf(name)]; k != nil {
		return k.recs[string(name)], nil
	}
	return nil, nil
}

func (m *memArchive) Scan(prefix []byte, fn func(name, rec []byte) error) error {
	m.mu.Lock()
	k := m.keys[keyOf(prefix)]
	var names []string
	var recs [][]byte
	if k != nil {
		if !k.sorted {
			slices.Sort(k.names)
			k.sorted = true
		}
		p := string(prefix)
		i, _ := slices.BinarySearch(k.names, p)
		for ; i < len(k.names) && strings.HasPrefix(k.names[i], p); i++ {
			names = append(names, k.names[i])
			recs = append(recs, k.recs[k.names[i]])
		}
	}
	m.mu.Unlock()
	for i, n := range names {
		if err := fn([]byte(n), recs[i]); err != nil {
			return err
		}
	}
	return nil
}

func (m *memArchive) Set(name, rec []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := keyOf(name)
	k := m.keys[key]
	if k == nil {
		k = &memKey{recs: map[string][]byte{}, sorted: true}
		m.keys[key] = k
	}
	n := string(name)
	if _, ok := k.recs[n]; !ok {
		k.sorted = k.sorted && (len(k.names) == 0 || k.names[len(k.names)-1] < n)
		k.names = append(k.names, n)
	}
	k.recs[n] = rec
	return nil
}

func (m *memArchive) DeletePrefix(prefix []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := keyOf(prefix)
	k := m.keys[key]
	if k == nil {
		return nil
	}
	p := string(prefix)
	k.names = slices.DeleteFunc(k.names, func(n string) bool {
		if strings.HasPrefix(n, p) {
			delete(k.recs, n)
			return true
		}
		return false
	})
	if len(k.names) == 0 {
		delete(m.keys, key)
	}
	return nil
}

// compareStatus orders listings: (Key, Party, IssuedAt, ID).
func compareStatus(a, b Status) int {
	return cmp.Or(
		cmp.Compare(a.Grant.Key, b.Grant.Key),
		cmp.Compare(a.Grant.Party, b.Grant.Party),
		a.Grant.IssuedAt.Compare(b.Grant.IssuedAt),
		cmp.Compare(a.Grant.ID, b.Grant.ID),
	)
}
