// Package vault is keymesh's key store: named keys with versions and a
// NIST SP 800-57 lifecycle, sealed at rest under the node's key-encryption
// key, and the field encryption and decryption that uses them.
//
// Start with Open, which unseals the vault with the node's Master secret;
// Encrypt / Decrypt turn field values into envelopes (see package
// vault/envelope for the wire format) and back. Policy — who may do what —
// is not the vault's business: callers check it first (package policy).
//
// The vault decides nothing about its keys' lifecycles. The network agrees
// on each key (package mesh folds the signed events; a node alone is a
// network of one), and the node's member (package mesh/member) makes the
// vault follow: SyncKey for a key's metadata and state, GenerateVersion /
// AcceptVersion / ShareVersion for versions, whose material moves only
// wrapped for a recipient node and is checked against the version's
// commitment (mesh.go, share.go), Destroy to crypto-shred.
//
// # Keys and versions
//
// A key is named "<namespace>/<name>" and has versions 1, 2, …, each 32
// random bytes. Every version is stored AES-256-GCM-wrapped under its own
// wrapping key, derived from the KEK and a salt in the key table (see
// "Crypto-shredding"), with the key name and version as associated data,
// so a wrapped version cannot be moved to another key or version. The KEK is derived at Open from
// the master secret (a key file, or a passphrase through PBKDF2) and never
// stored; a wrong master secret fails Open with ErrWrongMasterSecret.
//
// Lifecycle (persisted values pinned in tests):
//
//	pre-active  → active, compromised, destroyed
//	active      → deactivated, compromised, destroyed
//	deactivated → compromised, destroyed   (decrypt only)
//	compromised → destroyed                (decrypt only, audited as such)
//	destroyed   → (final)
//
// Encryption needs an active key; decryption works while the key is active,
// deactivated or compromised, and for versions at or above the minimum
// decryption version. Destroy crypto-shreds: the wrapped versions are deleted
// from the store and cleared from memory, and every later decrypt fails with
// ErrKeyDestroyed. A destroyed key keeps its record (and its name) as
// evidence; the name is never reused, so an old envelope can never be opened
// by a new key of the same name.
//
// # Versions, activation and rotation
//
// Each version carries an activation time. Version 1 is active at creation;
// a rotation gives new versions an activation time a propagation grace in the
// future, so every holder has them before anyone encrypts with them. Encrypt
// uses the newest version whose activation time is at or before "now" — or,
// in endorsement mode, at or before the transaction's timestamp, so every
// endorsing peer picks the same version.
//
// AES-GCM with random 96-bit nonces must not seal more than 2^32 messages
// under one key (NIST SP 800-38D). Random-mode envelopes are sealed under a
// subkey of the version for this vault's sealer id (see SealerID and package
// envelope), so every holder of a version in a mesh spends its own budget
// under its own key. The vault counts encryptions per version
// and asks for a rotation (WithRotateHook: the member rotates through the
// network) when a version reaches the rotation threshold (default 2^30); a version refuses to encrypt at the hard limit (default
// 2^31). Counts are persisted in leases (default 65,536 encryptions): after
// a crash the vault assumes the whole lease was used, so a count can only
// overstate, never understate, what a key has sealed.
//
// # Key hierarchy
//
// The master secret gives the KEK (HKDF-SHA256, after PBKDF2 for a
// passphrase, with the store's salt). From the KEK come, by HKDF with their
// own labels, the record MAC key ("keymesh/v2 record-mac") and the root of
// the version wrapping keys ("keymesh/v2 version-wrap"). The KEK itself
// seals the node's secrets (sealSecret, identity.go) and the seal record's check value.
//
// # Authenticated records
//
// Every record the vault's store holds — key records with their state,
// minimum decryption version, deterministic flag and encryption count
// leases; wrapped versions; sealed secrets; and, through Store, tokens,
// grants, revocations, the node identity and the event log; through
// Authenticate, the audit log's store — is stored as
// value ‖ HMAC-SHA256(record MAC key, key ‖ value) (kv.Authenticated). Only
// the seal record is exempt: it is read before the MAC key exists and
// authenticates itself (a wrong salt or iteration count gives a KEK that
// does not open its check value; the iteration count is bounded to
// [1,000, 10,000,000]). Open checks the tag of every record and refuses a
// store holding one that does not authenticate, with an error wrapping
// kv.ErrTampered that names the record: whoever can write the store without
// the master secret can neither forge a record (an admin token, a grant)
// nor move one to another key.
//
// A tag does not stop a replay of an older, validly tagged value, which
// could roll back an encryption count lease or re-activate a key. So the
// key records (and, as the node asks with WithSummarised, the token and
// grant records) are also summarised: one tagged record per prefix holds
// the XOR of a keyed digest of every (key, value) under it and their
// count, updated in the same transaction as the records. A record rolled
// back, replayed, added or removed no longer matches, and Open refuses the
// store. We chose a summary over a monotonic counter per key because one
// check covers every field of every record (state and minimum decryption
// version as well as counts, and removals) at O(1) per write, and over a
// list of digests because that would grow with the number of keys on
// every write. What no store can see by itself is a rollback of all the
// records under a prefix together with their summary to one earlier moment
// (restoring a whole backup, or badger losing the tail of its log): that
// needs state kept outside the store and is not claimed.
//
// A store written by an older keymesh (format 1: untagged records, versions
// wrapped directly under the KEK) is recognised by its seal record's check
// value and migrated on the first Open with the right master secret: every
// record is tagged, the summaries written, every held version rewrapped
// (below) and, last, the check value rewritten to format 2. The migration
// is idempotent after a crash. It trusts what the old store holds — the
// old format had nothing to check it against. A format-1 seal record next
// to a key table in use is refused as a replay of an old seal record.
//
// # Crypto-shredding
//
// A log-structured store keeps deleted values in old tables, write-ahead
// files and free blocks until compaction, and in every backup: deleting a
// wrapped version does not make it unreadable to whoever holds the master
// secret and an old copy. So each version is wrapped under its own key,
// derived from the version wrapping root and a 32-byte random salt kept in
// the key table, a small file outside the store (WithKeyTable; keymeshd
// uses <data>/keytable): fixed-size slots, each naming a key and version,
// written in place and fsynced. A wrapped version is slot ‖ AES-256-GCM
// with a random nonce, with the key name and version as associated data.
// Destroy, and ForgetVersion on a node whose grant ended, overwrite the
// slots' salts with zeros in place and fsync: every copy of those wrapped
// versions, wherever it survives, no longer opens, with or without the
// master secret. A slot is allocated (and synced) before the store write
// that uses it, and erased after the store write that drops it; slots no
// held version uses are erased at the next Open, so a crash between the
// two steps leaves nothing behind for long. Overwriting in place is best
// effort on copy-on-write file systems (btrfs, ZFS), wear-levelled flash
// and in snapshots of the key table file, which may keep the old block: a
// key table that must never be recoverable belongs on a plain file system
// or in memory-backed storage, and is never backed up apart from an
// encrypted, expiring backup. A failed erasure does not undo the destroy:
// KeyInfo.EraseError reports it, and the next Open retries it.
//
// Without WithKeyTable the salts are kept in the store itself (tests and
// embedded use): records are still authenticated and destroy still
// deletes and erases the salts, but an old copy of the store can then open
// a destroyed key with the master secret.
package vault

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/vault/envelope"
)

// State is a key's lifecycle state. Its numeric values are persisted and
// must never change.
type State uint8

// Lifecycle states (NIST SP 800-57).
const (
	StatePreActive   State = 1
	StateActive      State = 2
	StateDeactivated State = 3
	StateCompromised State = 4
	StateDestroyed   State = 5
)

var stateNames = map[State]string{
	StatePreActive:   "pre-active",
	StateActive:      "active",
	StateDeactivated: "deactivated",
	StateCompromised: "compromised",
	StateDestroyed:   "destroyed",
}

// String returns the state's name, e.g. "pre-active".
func (s State) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ParseState parses a state name as String prints it.
func ParseState(s string) (State, error) {
	for st, n := range stateNames {
		if n == s {
			return st, nil
		}
	}
	return 0, fmt.Errorf("vault: unknown key state %q", s)
}

var transitions = map[State][]State{
	StatePreActive:   {StateActive, StateCompromised, StateDestroyed},
	StateActive:      {StateDeactivated, StateCompromised, StateDestroyed},
	StateDeactivated: {StateCompromised, StateDestroyed},
	StateCompromised: {StateDestroyed},
}

// CanTransition reports whether a key may move from one state to another.
func CanTransition(from, to State) bool { return slices.Contains(transitions[from], to) }

// Errors callers branch on.
var (
	ErrKeyNotFound       = errors.New("vault: key not found")
	ErrKeyExists         = errors.New("vault: key already exists")
	ErrKeyDestroyed      = errors.New("key destroyed")
	ErrKeyNotUsable      = errors.New("vault: key not usable")
	ErrInvalidTransition = errors.New("vault: invalid state transition")
	ErrWrongMasterSecret = errors.New("vault: wrong master secret: the key-encryption key does not open this store")
	ErrModeNotAllowed    = errors.New("vault: mode not allowed for this key")
	ErrInvalidRequest    = errors.New("vault: invalid request")
	// ErrVersionNotHeld is returned for a version this node does not hold:
	// it never received it, or forgot it when its grant ended.
	ErrVersionNotHeld = errors.New("vault: key version not held by this node")
	// ErrEraseIncomplete is wrapped when a version was deleted but erasing
	// its salt or material from disk failed.
	ErrEraseIncomplete = errors.New("vault: erase from disk incomplete")
	// ErrDecrypt is the one error for every failed authentication of an
	// envelope: wrong key, wrong context, wrong network, tampered bytes.
	ErrDecrypt = envelope.ErrDecrypt
)

// UsableError says why a key cannot be used for an operation. It unwraps
// to ErrKeyNotUsable.
type UsableError struct {
	Key    string
	Op     string
	Reason string
}

func (e *UsableError) Error() string {
	return fmt.Sprintf("vault: key %q cannot %s: %s", e.Key, e.Op, e.Reason)
}

// Unwrap returns ErrKeyNotUsable.
func (e *UsableError) Unwrap() error { return ErrKeyNotUsable }

// Defaults for Options.
const (
	DefaultRotateAt   = 1 << 30
	DefaultHardLimit  = 1 << 31
	DefaultCountLease = 1 << 16
	DefaultGrace      = 5 * time.Second
	// MaxVersions bounds the versions of one key.
	MaxVersions = 1 << 16
)

type options struct {
	clock      func() time.Time
	rand       io.Reader
	rotateAt   uint64
	hardLimit  uint64
	lease      uint64
	grace      time.Duration
	iterations int
	network    envelope.NetworkID
	owner      string
	logger     *slog.Logger
	rotateHook func(key string)
	sealerID   *envelope.SealerID
	keyTable   string   // path of the key table file; "" keeps it in the store
	summarised []string // further store prefixes whose records are summarised
	// checkedOnLoad: prefixes the caller checks with ScanChecked.
	checkedOnLoad []string
}

// Option configures Open.
type Option func(*options)

// WithClock injects the clock (tests).
func WithClock(f func() time.Time) Option { return func(o *options) { o.clock = f } }

// WithRand injects the randomness source for keys, salts and the sealer id
// (tests). Nonces are never drawn from it: the cryptographic module
// generates every GCM nonce.
func WithRand(r io.Reader) Option { return func(o *options) { o.rand = r } }

// WithRotation sets the encryption count at which a version is rotated
// automatically and the hard limit at which it refuses to encrypt.
// rotateAt must be below hardLimit, and hardLimit at most 2^32.
func WithRotation(rotateAt, hardLimit uint64) Option {
	return func(o *options) { o.rotateAt, o.hardLimit = rotateAt, hardLimit }
}

// WithCountLease sets how many encryptions are reserved per durable write
// of a version's count.
func WithCountLease(n uint64) Option { return func(o *options) { o.lease = n } }

// WithGrace sets the default activation delay of rotated versions.
func WithGrace(d time.Duration) Option { return func(o *options) { o.grace = d } }

// WithPBKDF2Iterations sets the iteration count recorded when a passphrase
// vault is initialised (tests use a small one; the floor is 1,000).
func WithPBKDF2Iterations(n int) Option { return func(o *options) { o.iterations = n } }

// WithNetwork binds every envelope to a network id: an envelope made in one
// network fails to open in another.
func WithNetwork(id envelope.NetworkID) Option { return func(o *options) { o.network = id } }

// WithOwner sets the organisation recorded as owner of keys created here.
func WithOwner(org string) Option { return func(o *options) { o.owner = org } }

// WithRotateHook hands automatic rotation to fn: when the newest version
// of a key reaches the rotation threshold the vault calls fn(key) (at most
// once at a time per key). The node's mesh member rotates through the
// network, so every holder gets the new version; the vault never makes a
// version of its own accord.
func WithRotateHook(fn func(key string)) Option { return func(o *options) { o.rotateHook = fn } }

// WithKeyTable keeps the per-version wrapping salts in the file at path
// (created 0600 if missing) instead of the store: see "Crypto-shredding" in
// the package doc. keymeshd always sets it; without it the salts live in
// the store and a copy of the store taken before a destroy can still open
// the destroyed key with the master secret.
func WithKeyTable(path string) Option { return func(o *options) { o.keyTable = path } }

// WithSummarised adds store prefixes (besides the vault's key records)
// whose records are protected against rollback and removal by a summary:
// see "Authenticated records" in the package doc. A node passes the token
// and grant prefixes.
func WithSummarised(prefixes ...string) Option {
	return func(o *options) { o.summarised = append(o.summarised, prefixes...) }
}

// WithCheckedOnLoad names store prefixes outside the vault's own whose
// every record the caller reads, at start-up and before it serves, with
// kv.Authenticated.ScanChecked on Store() (as mesh.OpenLog does for
// mesh.LoadChecked): Open's check of the store then leaves their tags to
// those scans, so each record is checked once rather than twice. A caller
// that passes a prefix and does not read it in full leaves its records
// checked only when they are read. Open refuses a prefix that overlaps the
// vault's records or a summarised prefix.
func WithCheckedOnLoad(prefixes ...string) Option {
	return func(o *options) { o.checkedOnLoad = append(o.checkedOnLoad, prefixes...) }
}

// WithLogger sets the logger. Nothing secret is ever logged.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Vault holds the node's keys. It is safe for concurrent use.
type Vault struct {
	raw      kv.Store          // the store as given to Open
	store    *kv.Authenticated // raw, every record tagged (see Store)
	kek      cipher.AEAD
	sub      *subkeys
	table    keyTable
	opts     options
	sealerID envelope.SealerID

	epoch uint64 // counts epoch of this open (counts.go)
	// countsSince is the first epoch of the run of clean shutdowns a
	// SaveCounts of this open ends (counts.go).
	countsSince uint64

	mu        sync.RWMutex
	rings     map[string]*ring
	names     []string // the rings' names, sorted (for ListPage); rings are never removed
	closed    bool
	persistMu sync.Mutex // serialises key-record writes
}

// ring is the in-memory keyring of one key.
type ring struct {
	mu       sync.RWMutex
	rec      keyRecord
	versions []*version // index = version-1
	rotating atomic.Bool
	eraseErr error  // why erasing the destroyed key's material failed
	floor    uint32 // endorsement floor (endorse.go); 0 = none
}

type version struct {
	n          uint32
	created    time.Time
	activateAt time.Time
	// held: this node holds the version's material (wrapped in the store).
	// Set when the version is made or loaded, cleared (under the ring's
	// write lock) when it is destroyed, forgotten or replaced.
	held bool
	// sealer is the unwrapped material: nil until the version is first
	// used (sealerOf; Open unwraps nothing), and again once not held.
	// Stored under unwrapMu with the ring's lock held (read or write),
	// cleared under the ring's write lock.
	sealer   atomic.Pointer[envelope.Sealer]
	unwrapMu sync.Mutex // serialises the first unwrap
	count    atomic.Uint64
	reserved atomic.Uint64
	// shownBase and startCount give the count shown to operators
	// (counts.go): shownBase + count - startCount.
	shownBase, startCount uint64
	// savedExact: the count saved in the version's record is exact, from
	// the run of clean shutdowns this open continues (Open trusted it, or
	// SaveCounts wrote it); with count still at startCount, SaveCounts
	// need not write it again.
	savedExact bool
}

// keyRecord is the persisted metadata of a key (JSON under "vault/key/<name>").
type keyRecord struct {
	Name          string          `json:"name"`
	Owner         string          `json:"owner"`
	State         State           `json:"state"`
	Deterministic bool            `json:"deterministic"`
	Exportable    bool            `json:"exportable"`
	Created       time.Time       `json:"created"`
	StateChanged  time.Time       `json:"state_changed"`
	MinDecrypt    uint32          `json:"min_decryption_version"`
	Versions      []versionRecord `json:"versions"`
}

type versionRecord struct {
	Version    uint32    `json:"version"`
	Created    time.Time `json:"created"`
	ActivateAt time.Time `json:"activate_at"`
	// Reserved is the encryption count leased so far: the count restarts
	// here after a restart.
	Reserved  uint64 `json:"reserved"`
	Destroyed bool   `json:"destroyed,omitempty"`
	// NotHeld marks a version this node knows of but does not hold: in a
	// mesh, versions made after this node's organisation lost its grant
	// reach only the remaining holders.
	NotHeld bool `json:"not_held,omitempty"`
	// Used is the exact encryption count at a clean shutdown, for display
	// only (counts.go), saved in counts epoch UsedEpoch: trusted only while
	// that epoch is the one marked clean (0: saved before epochs, cleared
	// when the vault opens).
	Used      *uint64 `json:"used,omitempty"`
	UsedEpoch uint64  `json:"used_epoch,omitempty"`
}

func recordKey(name string) []byte { return []byte("vault/key/" + name) }

func materialKey(name string, v uint32) []byte {
	k := []byte("vault/mat/" + name + "/")
	return binary.BigEndian.AppendUint32(k, v)
}

func materialPrefix(name string) []byte { return []byte("vault/mat/" + name + "/") }

// Open unseals the vault in store with master and loads every key. On an
// empty store it initialises the seal record for master. The caller may
// clear master after Open returns.
func Open(store kv.Store, master Master, opts ...Option) (*Vault, error) {
	o := options{
		clock:      time.Now,
		rand:       rand.Reader,
		rotateAt:   DefaultRotateAt,
		hardLimit:  DefaultHardLimit,
		lease:      DefaultCountLease,
		grace:      DefaultGrace,
		iterations: DefaultPBKDF2Iterations,
		logger:     slog.New(slog.DiscardHandler),
	}
	for _, f := range opts {
		f(&o)
	}
	if o.rotateAt == 0 || o.rotateAt >= o.hardLimit || o.hardLimit > 1<<32 {
		return nil, fmt.Errorf("vault: rotation threshold %d must be above 0 and below the hard limit %d (at most 2^32)", o.rotateAt, o.hardLimit)
	}
	if o.lease == 0 {
		o.lease = 1
	}
	if o.iterations < minPBKDF2Iterations || o.iterations > maxPBKDF2Iterations {
		return nil, fmt.Errorf("vault: %d PBKDF2 iterations is outside [%d, %d]", o.iterations, minPBKDF2Iterations, maxPBKDF2Iterations)
	}
	checked := slices.Clone(loadChecked)
	for _, p := range o.checkedOnLoad {
		if p == "" || strings.HasPrefix(p, "vault/") || strings.HasPrefix("vault/", p) || strings.HasPrefix(p, kv.SummaryPrefix) || strings.HasPrefix(kv.SummaryPrefix, p) {
			return nil, fmt.Errorf("vault: checked-on-load prefix %q overlaps the vault's records", p)
		}
		for _, q := range o.summarised {
			if strings.HasPrefix(p, q) || strings.HasPrefix(q, p) {
				return nil, fmt.Errorf("vault: checked-on-load prefix %q overlaps the summarised prefix %q", p, q)
			}
		}
		checked = append(checked, []byte(p))
	}
	kek, sub, format, err := unseal(store, master, o.iterations, o.rand)
	if err != nil {
		return nil, err
	}
	summarised := append([]string{"vault/key/"}, o.summarised...)
	auth := kv.NewAuthenticated(store, sub, []string{string(sealKey)}, summarised)
	v := &Vault{raw: store, store: auth, kek: kek, sub: sub, opts: o, rings: map[string]*ring{}}
	if err := v.openKeyTable(); err != nil {
		v.Close()
		return nil, err
	}
	if format < 2 {
		if err := v.migrate(); err != nil {
			v.Close()
			return nil, err
		}
	}
	// Every record's tag and the summaries are checked once: the key
	// records and the wrapped material by load's own scans (ScanChecked),
	// those of WithCheckedOnLoad by the caller's, the rest of the store by
	// VerifyRest while load reads the keys (on
	// another core: both are linear in the store). load waits for the
	// verdict before it writes anything, and a damaged store is refused
	// whatever load found.
	verdict := make(chan error, 1)
	go func() { verdict <- auth.VerifyRest(checked) }()
	verified := sync.OnceValue(func() error {
		if err := <-verdict; err != nil {
			return fmt.Errorf("vault: refusing to open a damaged store: %w", err)
		}
		return nil
	})
	err = v.load(verified)
	if verr := verified(); verr != nil {
		err = verr
	}
	if err == nil {
		v.sealerID, err = v.loadSealerID()
	}
	if err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

// Store returns the node's store as the vault authenticates it: every
// value written through it carries a tag under a key derived from the KEK
// and bound to its store key, and reading a record that does not
// authenticate fails with an error wrapping kv.ErrTampered. Components that
// share the vault's store (tokens, grants, the event log) use this view.
func (v *Vault) Store() kv.Store { return v.store }

// Authenticate returns store (another store of the node, such as its audit
// log) with every record tagged under the vault's record MAC key, as Store
// is. The caller migrates a store written without tags (see
// kv.Authenticated.Migrate) once it knows it is of the old format.
func (v *Vault) Authenticate(store kv.Store) *kv.Authenticated {
	return kv.NewAuthenticated(store, v.sub, nil, nil)
}

// Tagger returns the tagger that authenticates the node's records (an
// HMAC-SHA256 under the vault's record MAC key), for stores that are not a
// kv.Store, such as the audit log's segment files. It computes tags; the
// key never leaves the vault.
func (v *Vault) Tagger() kv.Tagger { return v.sub }

// damageFirst returns the first of errs that reports a damaged store
// (kv.ErrTampered), else the first that is not nil: when two scans run
// side by side, damage is reported before what was made of records that
// did authenticate, as when the whole store was checked first.
func damageFirst(errs ...error) error {
	for _, err := range errs {
		if errors.Is(err, kv.ErrTampered) {
			return err
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// loadChecked are the prefixes load reads in full with ScanChecked, so
// Open's VerifyRest leaves their records to it.
var loadChecked = [][]byte{[]byte(keyRecordPrefix), []byte(materialRecordPrefix)}

const (
	keyRecordPrefix      = "vault/key/"
	materialRecordPrefix = "vault/mat/"
)

// load reads every key record and checks the held versions' material;
// once verified (Open's check of the whole store) passes, it writes what
// opening writes (cleared legacy counts, the counts epoch) and erases
// unused key-table slots.
func (v *Vault) load(verified func() error) error {
	var cleared []keyRecord
	epoch, err := v.readCountsEpoch()
	if err != nil {
		return err
	}
	lo, hi := epoch.trusted()
	referenced := map[uint32]bool{}
	// The wrapped versions are scanned (and their tags checked) on another
	// core while this one reads the key records.
	type scanned struct {
		refs []matRef
		err  error
	}
	mats := make(chan scanned, 1)
	go func() {
		refs, err := v.scanMaterial()
		mats <- scanned{refs, err}
	}()
	err = v.store.ScanChecked([]byte(keyRecordPrefix), func(k, val []byte) error {
		r := &ring{}
		if err := decodeKeyRecord(val, &r.rec); err != nil {
			return fmt.Errorf("vault: decode key record %q: %w", k, err)
		}
		rec := &r.rec
		// One allocation for a key's versions, not one each.
		vs := make([]version, len(rec.Versions))
		r.versions = make([]*version, 0, len(rec.Versions))
		for i, vr := range rec.Versions {
			ver := &vs[i]
			ver.n, ver.created, ver.activateAt = vr.Version, vr.Created, vr.ActivateAt
			ver.count.Store(vr.Reserved)
			ver.reserved.Store(vr.Reserved)
			ver.held = !vr.Destroyed && !vr.NotHeld && rec.State != StateDestroyed
			r.versions = append(r.versions, ver)
		}
		if v.loadCounts(r, lo, hi) {
			cleared = append(cleared, r.rec)
		}
		v.rings[rec.Name] = r
		return nil
	})
	if err != nil {
		err = fmt.Errorf("vault: load keys: %w", err)
	}
	m := <-mats
	if err := damageFirst(err, m.err); err != nil {
		return err
	}
	v.names = make([]string, 0, len(v.rings))
	for name := range v.rings {
		v.names = append(v.names, name)
	}
	slices.Sort(v.names)
	if err := v.loadMaterial(m.refs, referenced); err != nil {
		return err
	}
	// Nothing is written, nor a salt erased, on the word of a store that
	// may be damaged (a removed key record would look unreferenced).
	if err := verified(); err != nil {
		return err
	}
	for chunk := range slices.Chunk(cleared, countsBatch) {
		if err := v.persistRecords(chunk); err != nil {
			return err
		}
	}
	// A new epoch, not clean: until SaveCounts, a crash leaves no counts to
	// trust.
	v.epoch = epoch.Epoch + 1
	// The run of clean shutdowns goes on if the last one was clean: the
	// counts Open trusted stay exact for SaveCounts (counts.go).
	v.countsSince = v.epoch
	if lo != 0 {
		v.countsSince = lo
	}
	if err := v.writeCountsEpoch(countsEpoch{Epoch: v.epoch}); err != nil {
		return err
	}
	// Salts no held version uses: a destroy or forget whose erase did not
	// finish, or an allocation whose store write failed. Erase them now.
	if err := v.table.erase(func(_ string, _ uint32, slot uint32) bool { return !referenced[slot] }); err != nil {
		v.opts.logger.Error("erase unused key table slots", "err", err)
	}
	if err := v.loadFloors(); err != nil {
		return err
	}
	v.opts.logger.Info("vault unsealed", "keys", len(v.rings))
	return nil
}

// matRef is a wrapped version as scanMaterial found it in the store.
type matRef struct {
	name    string
	n, slot uint32
	short   bool // too short to name its key-table slot
}

// scanMaterial lists the wrapped versions in the store, in one scan of
// them that checks every record's tag (ScanChecked). load runs it on
// another core beside the key records' scan; loadMaterial then checks
// what it found against the keys.
func (v *Vault) scanMaterial() ([]matRef, error) {
	prefix := []byte(materialRecordPrefix)
	var refs []matRef
	err := v.store.ScanChecked(prefix, func(k, wrapped []byte) error {
		rest := k[len(prefix):]
		if len(rest) < 5 || rest[len(rest)-5] != '/' {
			return fmt.Errorf("vault: stored key material %q: malformed name", k)
		}
		ref := matRef{name: string(rest[:len(rest)-5]), n: binary.BigEndian.Uint32(rest[len(rest)-4:]), short: len(wrapped) < 4}
		if !ref.short {
			ref.slot = binary.BigEndian.Uint32(wrapped)
		}
		refs = append(refs, ref)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("vault: load key material: %w", err)
	}
	return refs, nil
}

// loadMaterial checks, against the wrapped versions scanMaterial found,
// that every held version has its wrapped material in the store and its
// salt in the key table, and notes the slots they use in referenced. It
// unwraps nothing: a version is unwrapped on first use (sealerOf), so
// Open's cost per key is a record decode and a tag check, and material a
// node never uses is never in its memory. v.rings is being built by load.
func (v *Vault) loadMaterial(refs []matRef, referenced map[uint32]bool) error {
	found := 0
	for _, ref := range refs {
		name, n := ref.name, ref.n
		r := v.rings[name]
		if r == nil || n < 1 || int(n) > len(r.versions) || !r.versions[n-1].held {
			continue // not held: ignored, as before (its slot is erased below)
		}
		if ref.short {
			return fmt.Errorf("vault: load key material: vault: load %q version %d: stored key does not authenticate", name, n)
		}
		salt, ok := v.table.salt(ref.slot, name, n)
		if !ok {
			return fmt.Errorf("vault: load key material: vault: unwrap %q version %d: its wrapping salt is not in the key table (erased by a destroy, or the key table was lost or replaced)", name, n)
		}
		clear(salt)
		referenced[ref.slot] = true
		found++
	}
	held := 0
	for _, r := range v.rings {
		for _, ver := range r.versions {
			if ver.held {
				held++
			}
		}
	}
	if found == held {
		return nil
	}
	for name, r := range v.rings {
		for _, ver := range r.versions {
			if ver.held {
				if _, err := v.store.Get(materialKey(name, ver.n)); err != nil {
					return fmt.Errorf("vault: load %q version %d: %w", name, ver.n, err)
				}
			}
		}
	}
	return fmt.Errorf("vault: load key material: %d of %d held versions found", found, held)
}

// sealerOf returns ver's sealer, unwrapping the version from the store on
// its first use; the material is cleared once the sealer holds it. The
// caller holds r.mu (read or write) and has checked ver.held.
func (v *Vault) sealerOf(name string, ver *version) (*envelope.Sealer, error) {
	if s := ver.sealer.Load(); s != nil {
		return s, nil
	}
	ver.unwrapMu.Lock()
	defer ver.unwrapMu.Unlock()
	if s := ver.sealer.Load(); s != nil {
		return s, nil
	}
	material, err := v.material(name, ver.n)
	if err != nil {
		return nil, err
	}
	defer clear(material)
	s, err := envelope.NewSealer(material)
	if err != nil {
		return nil, err
	}
	ver.sealer.Store(s)
	return s, nil
}

// drop clears ver's sealer, if unwrapped, and marks it not held. The
// caller holds the ring's write lock.
func (ver *version) drop() {
	ver.held = false
	if s := ver.sealer.Swap(nil); s != nil {
		s.Destroy()
	}
}

// wrapAAD binds a wrapped version to its key name and version.
func wrapAAD(name string, ver uint32) []byte {
	aad := []byte("keymesh/v1 wrap\x00")
	aad = append(aad, byte(len(name)))
	aad = append(aad, name...)
	return binary.BigEndian.AppendUint32(aad, ver)
}

// sealKEK encrypts b under the KEK with a nonce the cryptographic module
// generates: nonce (12) || ciphertext || tag (16).
func (v *Vault) sealKEK(b, aad []byte) ([]byte, error) {
	return v.kek.Seal(nil, nil, b, aad), nil
}

// openKEK decrypts what sealKEK made (and what it made before module
// nonces, in the same layout); false if it does not authenticate.
func (v *Vault) openKEK(sealed, aad []byte) ([]byte, bool) {
	b, err := v.kek.Open(nil, nil, sealed, aad)
	return b, err == nil
}

// wrap seals material for version ver of name under a fresh slot of the
// key table: slot (4 bytes) ‖ AES-256-GCM(nonce ‖ ciphertext ‖ tag) under
// the slot's wrapping key, with the key name and version as associated
// data.
func (v *Vault) wrap(name string, ver uint32, material []byte) ([]byte, error) {
	slot, err := v.table.alloc(name, ver)
	if err != nil {
		return nil, err
	}
	salt, _ := v.table.salt(slot, name, ver)
	defer clear(salt)
	aead, err := v.sub.versionAEAD(salt, name, ver, slot)
	if err != nil {
		return nil, err
	}
	out := binary.BigEndian.AppendUint32(nil, slot)
	return aead.Seal(out, nil, material, wrapAAD(name, ver)), nil
}

// unwrapMaterial opens what wrap made. It fails if the slot's salt was
// erased (the version was destroyed or forgotten) or the bytes do not
// authenticate.
func (v *Vault) unwrapMaterial(name string, ver uint32, wrapped []byte) ([]byte, error) {
	if len(wrapped) < 4 {
		return nil, fmt.Errorf("vault: unwrap %q version %d: stored key does not authenticate", name, ver)
	}
	slot := binary.BigEndian.Uint32(wrapped)
	salt, ok := v.table.salt(slot, name, ver)
	if !ok {
		return nil, fmt.Errorf("vault: unwrap %q version %d: its wrapping salt is not in the key table (erased by a destroy, or the key table was lost or replaced)", name, ver)
	}
	defer clear(salt)
	aead, err := v.sub.versionAEAD(salt, name, ver, slot)
	if err != nil {
		return nil, err
	}
	material, err := aead.Open(nil, nil, wrapped[4:], wrapAAD(name, ver))
	if err != nil {
		return nil, fmt.Errorf("vault: unwrap %q version %d: stored key does not authenticate", name, ver)
	}
	return material, nil
}

// Close clears every key from memory. The store is the caller's to close.
func (v *Vault) Close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, r := range v.rings {
		r.mu.Lock()
		for _, ver := range r.versions {
			ver.drop()
		}
		r.mu.Unlock()
	}
	v.rings = map[string]*ring{}
	if v.table != nil && !v.closed {
		if err := v.table.close(); err != nil {
			v.opts.logger.Error("close key table", "err", err)
		}
	}
	v.closed = true
}

func (v *Vault) ring(name string) (*ring, error) {
	v.mu.RLock()
	r, ok := v.rings[name]
	v.mu.RUnlock()
	if !ok {
		if err := envelope.CheckKeyName(name); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %q", ErrKeyNotFound, name)
	}
	return r, nil
}

// persist runs extra (checks and further writes), then writes rec, in one
// durable transaction.
func (v *Vault) persist(rec keyRecord, extra func(kv.Txn) error) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("vault: encode key record: %w", err)
	}
	// Every key-record write also rewrites the key records' summary (see
	// "Authenticated records"): one at a time, rather than as optimistic
	// transactions that conflict and retry.
	v.persistMu.Lock()
	defer v.persistMu.Unlock()
	err = v.store.Update(func(tx kv.Txn) error {
		if extra != nil {
			if err := extra(tx); err != nil {
				return err
			}
		}
		return tx.Set(recordKey(rec.Name), b)
	})
	if err != nil {
		return fmt.Errorf("vault: write key %q: %w", rec.Name, err)
	}
	return nil
}
