// Package token manages keymesh's API bearer tokens: it creates them,
// authenticates the secret a client presents on each request, and revokes
// them.
//
// Start with [Open], which loads every token from a [kv.Store] into memory.
// [Registry.Create] returns a new token's secret exactly once;
// [Registry.Authenticate] turns a presented secret into the [Token] it
// belongs to, or fails with [ErrUnauthenticated].
//
// # Guarantees
//
//   - Only a hash is stored. A secret is "kmt_" + ID + "_" + 43 characters
//     of base64url (32 random bytes). The store keeps SHA-256(secret) beside
//     the public [Token] fields; the secret itself is returned once by
//     Create and is never stored, logged or put in an error. [Token] has no
//     secret field. A secret carries 256 random bits, so an unsalted
//     SHA-256 is enough: it cannot be guessed from its hash.
//   - Durable before acknowledged. Create and Revoke return only after the
//     record is committed to the store; if the write fails they return an
//     error and memory is unchanged (a token whose creation failed never
//     authenticates; a token whose revocation failed still does, and the
//     caller is told).
//   - One uniform failure. A malformed, unknown, wrong, expired or revoked
//     secret all yield an [*AuthError] whose Error is "token: invalid
//     token" and which wraps [ErrUnauthenticated]; its Reason field says
//     which check failed, for logs and the audit log only. The secret is
//     compared with crypto/subtle.ConstantTimeCompare, and expiry and
//     revocation are only checked after the secret matched, so those
//     reasons are only ever seen by whoever holds the real secret.
//   - Fast and concurrent. Authenticate never touches the store: it reads an
//     immutable in-memory snapshot, replaced on every Create and Revoke,
//     and takes no lock. It is safe for concurrent use, as are all methods.
//
// # Roles and parties
//
// A token speaks for one [policy.Party] and has a [Role]. Admin tokens
// manage keys, grants and tokens and always speak for [policy.AdminParty]
// ("token:admin"), which is reserved for them: a client token cannot claim
// it. Client tokens may speak for any canonical party; the API layer decides
// which kinds of party a bearer token is accepted for.
//
// # Storage layout
//
//	token/<ID>   version ‖ ID ‖ SHA-256(secret) ‖ role ‖ revoked ‖ created ‖
//	             expiry ‖ party ‖ label   (see record.go)
package token

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/policy"
)

// Role is what a token may do. Its values are persisted and must not
// change.
type Role uint8

// Roles.
const (
	// RoleClient tokens encrypt and decrypt as their party, as grants allow.
	RoleClient Role = 1
	// RoleAdmin tokens manage keys, grants and tokens; they decrypt nothing
	// unless a grant names token:admin.
	RoleAdmin Role = 2
	// RoleChaincode tokens belong to a Fabric chaincode. The token's own
	// party gets no data access: each request names the transaction
	// creator (a Fabric SerializedIdentity), which the API verifies against
	// the node's configured MSP CAs, and grants are evaluated for the
	// creator's fabric: and org: parties.
	RoleChaincode Role = 3
)

// String returns "client", "admin" or "chaincode", or "Role(n)" for an
// unknown value.
func (r Role) String() string {
	switch r {
	case RoleClient:
		return "client"
	case RoleAdmin:
		return "admin"
	case RoleChaincode:
		return "chaincode"
	}
	return "Role(" + strconv.Itoa(int(r)) + ")"
}

// Token is the public description of a bearer token. It holds no secret.
type Token struct {
	ID      string       // public id: 16 lower-case hex digits (8 random bytes)
	Party   policy.Party // who the token speaks for; token:admin for admin tokens
	Role    Role
	Label   string    // operator's note, e.g. "settlement service"
	Created time.Time // UTC
	Expires time.Time // UTC; the zero time means never
	Revoked bool
	// Binding is set for chaincode tokens: the channels, chaincode and
	// MSPs of the proposals the token may present.
	Binding Binding
}

// Expired reports whether t has expired at now.
func (t Token) Expired(now time.Time) bool {
	return !t.Expires.IsZero() && !now.Before(t.Expires)
}

var (
	// ErrUnauthenticated is wrapped by every Authenticate failure.
	ErrUnauthenticated = errors.New("token: invalid token")
	// ErrNotFound is returned (wrapped) by Get and Revoke for an unknown id.
	ErrNotFound = errors.New("token: not found")
	// ErrInvalid is wrapped by Create when its arguments are refused: an
	// invalid party, an unknown role, an admin role for another party or
	// the admin party for another role, a bad label or lifetime.
	ErrInvalid = errors.New("invalid token request")
)

// Reasons recorded in [AuthError.Reason].
const (
	ReasonMalformed   = "malformed"
	ReasonUnknownID   = "unknown id"
	ReasonWrongSecret = "wrong secret"
	ReasonExpired     = "expired"
	ReasonRevoked     = "revoked"
)

// AuthError is the error Authenticate returns. Its message is always
// "token: invalid token", whatever failed, so it can be shown to the
// client; ID and Reason are for logs and the audit log. It wraps
// [ErrUnauthenticated].
type AuthError struct {
	ID     string // the public id the secret claimed; "" if malformed
	Reason string // one of the Reason constants
}

// Error returns "token: invalid token".
func (e *AuthError) Error() string { return ErrUnauthenticated.Error() }

// Unwrap returns [ErrUnauthenticated].
func (e *AuthError) Unwrap() error { return ErrUnauthenticated }

// LogValue implements slog.LogValuer: the public id and the reason.
func (e *AuthError) LogValue() slog.Value {
	return slog.GroupValue(slog.String("token_id", e.ID), slog.String("reason", e.Reason))
}

// Formats and limits.
const (
	// SecretPrefix starts every secret.
	SecretPrefix = "kmt_"
	// MaxLabelLen is the longest label, in bytes.
	MaxLabelLen = 128

	idBytes   = 8
	idLen     = 2 * idBytes // hex
	randBytes = 32
	randLen   = 43 // base64url without padding of 32 bytes
	secretLen = len(SecretPrefix) + idLen + 1 + randLen
	keyPrefix = "token/"
)

// Option configures [Open].
type Option func(*options)

type options struct {
	clock func() time.Time
	rand  io.Reader
}

// WithClock sets the clock for creation and expiry (default time.Now).
func WithClock(clock func() time.Time) Option {
	return func(o *options) {
		if clock != nil {
			o.clock = clock
		}
	}
}

// WithRand sets the source of token ids and secrets (default
// crypto/rand.Reader). Only tests should change it.
func WithRand(r io.Reader) Option {
	return func(o *options) {
		if r != nil {
			o.rand = r
		}
	}
}

// Registry holds every token in memory, backed by a store. It is safe for
// concurrent use. A Registry must be the only writer of the "token/" keys
// of its store.
type Registry struct {
	store kv.Store
	opts  options

	wmu    sync.Mutex                         // serialises Create and Revoke
	tokens atomic.Pointer[map[string]*record] // immutable snapshot; replaced, never modified
}

// record is a token and the hash of its secret.
type record struct {
	tok  Token
	hash [sha256.Size]byte
}

// Open loads every token in store. It fails if the store cannot be read or
// holds a record that does not parse: a damaged token store is reported,
// not skipped.
func Open(store kv.Store, opts ...Option) (*Registry, error) {
	o := options{clock: time.Now, rand: rand.Reader}
	for _, opt := range opts {
		opt(&o)
	}
	m := map[string]*record{}
	err := store.Scan([]byte(keyPrefix), func(k, v []byte) error {
		rec, err := decodeRecord(v)
		if err != nil {
			return fmt.Errorf("record %q: %w", k, err)
		}
		if string(k) != keyPrefix+rec.tok.ID {
			return fmt.Errorf("record %q holds token %q", k, rec.tok.ID)
		}
		m[rec.tok.ID] = rec
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("token: open: %w", err)
	}
	r := &Registry{store: store, opts: o}
	r.tokens.Store(&m)
	return r, nil
}

// Create makes a token for party with role, label and a lifetime of ttl
// (0 = never expires), stores it durably and returns its secret and
// description. The secret is returned only here: keymesh cannot show it
// again. Admin tokens must speak for [policy.AdminParty], and only they
// may.
//
// A chaincode token takes its [Binding] from [WithBinding]; a token of
// another role takes none.
func (r *Registry) Create(party policy.Party, role Role, label string, ttl time.Duration, opts ...CreateOption) (secret string, t Token, err error) {
	var co createOptions
	for _, o := range opts {
		o(&co)
	}
	switch {
	case role == RoleChaincode && !co.binding.IsZero():
		if co.binding, err = (binding{Channels: co.binding.ChannelList(), Chaincode: co.binding.Chaincode, MSPs: co.binding.MSPList()}).normalise(); err != nil {
			return "", Token{}, fmt.Errorf("token: create: %w: %w", ErrInvalid, err)
		}
	case role != RoleChaincode && !co.binding.IsZero():
		return "", Token{}, fmt.Errorf("token: create: %w: only chaincode tokens take a binding", ErrInvalid)
	}
	if err := checkCreate(party, role, label, ttl); err != nil {
		return "", Token{}, fmt.Errorf("token: create: %w: %w", ErrInvalid, err)
	}

	var raw [idBytes + randBytes]byte
	defer clear(raw[:]) // best effort: the secret string itself cannot be wiped
	if _, err := io.ReadFull(r.opts.rand, raw[:]); err != nil {
		return "", Token{}, fmt.Errorf("token: create: read random: %w", err)
	}
	id := hex.EncodeToString(raw[:idBytes])
	secret = SecretPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(raw[idBytes:])
	rec := &record{hash: sha256.Sum256([]byte(secret))}

	r.wmu.Lock()
	defer r.wmu.Unlock()
	cur := *r.tokens.Load()
	if _, dup := cur[id]; dup {
		// 64 random bits colliding means the random source is broken.
		return "", Token{}, fmt.Errorf("token: create: id %q already in use; random source broken?", id)
	}
	now := r.opts.clock().UTC()
	rec.tok = Token{ID: id, Party: party, Role: role, Label: label, Created: now, Binding: co.binding}
	if ttl > 0 {
		rec.tok.Expires = now.Add(ttl)
	}
	if err := r.put(cur, rec); err != nil {
		return "", Token{}, fmt.Errorf("token: create: %w", err)
	}
	return secret, rec.tok, nil
}

// checkCreate says why Create refuses its arguments, or nil.
func checkCreate(party policy.Party, role Role, label string, ttl time.Duration) error {
	if err := party.Validate(); err != nil {
		return err
	}
	switch {
	case role != RoleClient && role != RoleAdmin && role != RoleChaincode:
		return fmt.Errorf("unknown role %d", role)
	case role == RoleAdmin && party != policy.AdminParty:
		return fmt.Errorf("admin tokens must speak for %q, not %q", policy.AdminParty, party)
	case role != RoleAdmin && party == policy.AdminParty:
		return fmt.Errorf("party %q is reserved for admin tokens", party)
	}
	if err := checkLabel(label); err != nil {
		return err
	}
	if ttl < 0 {
		return fmt.Errorf("negative lifetime %v", ttl)
	}
	return nil
}

// put writes rec durably, then publishes a snapshot of cur with rec in it.
// r.wmu must be held.
func (r *Registry) put(cur map[string]*record, rec *record) error {
	v := encodeRecord(rec)
	if err := r.store.Update(func(txn kv.Txn) error { return txn.Set([]byte(keyPrefix+rec.tok.ID), v) }); err != nil {
		return err
	}
	next := maps.Clone(cur)
	next[rec.tok.ID] = rec
	r.tokens.Store(&next)
	return nil
}

func checkLabel(s string) error {
	if len(s) > MaxLabelLen {
		return fmt.Errorf("label longer than %d bytes", MaxLabelLen)
	}
	if !utf8.ValidString(s) {
		return errors.New("label is not valid UTF-8")
	}
	for _, c := range s {
		if unicode.IsControl(c) || unicode.Is(unicode.Cf, c) {
			return errors.New("label contains a control or formatting character")
		}
	}
	return nil
}

// Authenticate returns the token that secret belongs to. Every failure —
// malformed, unknown id, wrong secret, expired, revoked — is an
// [*AuthError] wrapping [ErrUnauthenticated], with the same message. It
// reads memory only and is safe for concurrent use.
func (r *Registry) Authenticate(secret string) (Token, error) {
	id, ok := parseSecret(secret)
	if !ok {
		return Token{}, &AuthError{Reason: ReasonMalformed}
	}
	var buf [secretLen]byte // hash a stack copy: no allocation
	copy(buf[:], secret)
	sum := sha256.Sum256(buf[:])
	clear(buf[:])
	rec := (*r.tokens.Load())[id]
	if rec == nil {
		return Token{}, &AuthError{ID: strings.Clone(id), Reason: ReasonUnknownID}
	}
	if subtle.ConstantTimeCompare(sum[:], rec.hash[:]) != 1 {
		return Token{}, &AuthError{ID: rec.tok.ID, Reason: ReasonWrongSecret}
	}
	if rec.tok.Revoked {
		return Token{}, &AuthError{ID: rec.tok.ID, Reason: ReasonRevoked}
	}
	if !rec.tok.Expires.IsZero() && rec.tok.Expired(r.opts.clock()) {
		return Token{}, &AuthError{ID: rec.tok.ID, Reason: ReasonExpired}
	}
	return rec.tok, nil
}

// parseSecret checks the exact format "kmt_" ‖ 16 lower-case hex ‖ "_" ‖
// 43 canonical base64url characters and returns the id part. The id is a
// substring of secret; copy it before keeping it.
func parseSecret(s string) (id string, ok bool) {
	if len(s) != secretLen || s[:len(SecretPrefix)] != SecretPrefix {
		return "", false
	}
	id = s[len(SecretPrefix) : len(SecretPrefix)+idLen]
	if !validID(id) || s[len(SecretPrefix)+idLen] != '_' {
		return "", false
	}
	rnd := s[len(SecretPrefix)+idLen+1:]
	for i := 0; i < len(rnd); i++ {
		if b64val[rnd[i]] < 0 {
			return "", false
		}
	}
	// 43 characters carry 258 bits; the last two must be zero, so that
	// each 32-byte value has exactly one spelling.
	if b64val[rnd[len(rnd)-1]]&3 != 0 {
		return "", false
	}
	return id, true
}

// validID reports whether id is 16 lower-case hex digits.
func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// b64val maps a byte to its base64url value, or -1.
var b64val = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = int8(i)
	}
	return t
}()

// List returns every token, revoked and expired ones included, sorted by
// creation time, then ID.
func (r *Registry) List() []Token {
	cur := *r.tokens.Load()
	out := make([]Token, 0, len(cur))
	for _, rec := range cur {
		out = append(out, rec.tok)
	}
	slices.SortFunc(out, func(a, b Token) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Get returns the token with the given public id, or an error wrapping
// [ErrNotFound].
func (r *Registry) Get(id string) (Token, error) {
	rec := (*r.tokens.Load())[id]
	if rec == nil {
		return Token{}, fmt.Errorf("token: get %s: %w", quoteID(id), ErrNotFound)
	}
	return rec.tok, nil
}

// Revoke marks the token with the given public id revoked, durably; from
// then on it no longer authenticates. Revoking a revoked token does
// nothing and succeeds. An unknown id yields an error wrapping
// [ErrNotFound]. If the store write fails, the token stays valid and
// Revoke returns the error.
func (r *Registry) Revoke(id string) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	cur := *r.tokens.Load()
	rec := cur[id]
	if rec == nil {
		return fmt.Errorf("token: revoke %s: %w", quoteID(id), ErrNotFound)
	}
	if rec.tok.Revoked {
		return nil
	}
	next := *rec
	next.tok.Revoked = true
	if err := r.put(cur, &next); err != nil {
		return fmt.Errorf("token: revoke %q: %w", id, err)
	}
	return nil
}

// quoteID quotes a public id for an error message. Anything that is not
// an id might be a secret pasted by mistake, so it is not repeated.
func quoteID(id string) string {
	if validID(id) {
		return strconv.Quote(id)
	}
	return "(malformed id)"
}
