package event

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/keymesh/keymesh/internal/hextext"
	"github.com/keymesh/keymesh/internal/strictjson"
	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault/envelope"
)

// Limits of payloads, in bytes of JSON unless said otherwise.
const (
	// MaxWraps is the most wraps a KeyVersion carries.
	MaxWraps = 256
	// MaxWrapBlob is the largest wrapped blob, in bytes. A transport blob is
	// 1220 bytes (format 2; 1208 in format 1); MaxWraps wraps of MaxWrapBlob
	// bytes still fit MaxPayload.
	MaxWrapBlob = 1280

	maxSmallJSON = 4 << 10
	maxGrantJSON = 256 << 10
)

// Key lifecycle states carried by KeyState.
const (
	StateActive      = "active"
	StateDeactivated = "deactivated"
	StateCompromised = "compromised"
)

// KeyCreate is the payload of KindKeyCreate: the issuer's org creates a key
// and owns it.
type KeyCreate struct {
	Key           string // "<namespace>/<name>" (envelope.CheckKeyName)
	Deterministic bool   // the key may seal in deterministic mode
	Exportable    bool   // the key's versions may be exported
	PreActive     bool   // the key starts pre-active rather than active
}

// Validate reports whether c is well formed. Its errors wrap ErrMalformed.
func (c KeyCreate) Validate() error { return checkKey(c.Key) }

// Digest is the SHA-256 of a wrapped key copy (a transport blob), carried
// in the signed payload; the blob itself travels as an unsigned attachment
// of the event (Event.Attachments), so it can be pruned.
type Digest [32]byte

// DigestOf returns the digest of blob.
func DigestOf(blob []byte) Digest { return sha256.Sum256(blob) }

// MarshalText encodes d as lower-case hex.
func (d Digest) MarshalText() ([]byte, error) { return hexText(d[:]), nil }

// UnmarshalText decodes 64 lower-case hex digits.
func (d *Digest) UnmarshalText(text []byte) error { return unhexText(d[:], text, "digest") }

// Wrap is one key version wrapped (package vault/transport) for one
// recipient node: the recipient and the digest of the blob, which is an
// attachment of the event.
type Wrap struct {
	Recipient network.NodeKey // the recipient node's signing key
	Digest    Digest          // SHA-256 of the transport blob
}

func (w Wrap) validate() error {
	if w.Recipient == (network.NodeKey{}) {
		return malformed("wrap for the zero node key")
	}
	if w.Digest == (Digest{}) {
		return malformed("wrap with a zero digest")
	}
	return nil
}

// KeyVersion is the payload of KindKeyVersion: a new version of a key,
// wrapped for each node that is to hold it.
type KeyVersion struct {
	Key        string
	Version    uint32    // from 1
	ActivateAt time.Time // when holders start encrypting with it; not zero
	// Check commits to the version's material (vault.KeyCheck): every
	// recipient verifies the material it unwraps against it, from this
	// event or from any later KeyShare, so no node can plant material of
	// its choosing under the owner's version.
	Check Digest
	// Floor marks the version an org revocation rotated to: endorsement
	// mode never selects a version below it (the revoked org held those),
	// whatever a proposal's timestamp.
	Floor bool
	Wraps []Wrap // at most MaxWraps, one per recipient
}

// Validate reports whether v is well formed: a valid key name, a version of
// at least 1, a non-zero activation time, at most MaxWraps wraps with
// distinct recipients. Its errors wrap ErrMalformed.
func (v KeyVersion) Validate() error {
	if err := checkKeyVersion(v.Key, v.Version, v.ActivateAt); err != nil {
		return err
	}
	if v.Check == (Digest{}) {
		return malformed("key %q version %d has no material check", v.Key, v.Version)
	}
	if len(v.Wraps) > MaxWraps {
		return malformed("%d wraps, at most %d", len(v.Wraps), MaxWraps)
	}
	seen := make(map[network.NodeKey]bool, len(v.Wraps))
	for _, w := range v.Wraps {
		if err := w.validate(); err != nil {
			return err
		}
		if seen[w.Recipient] {
			return malformed("two wraps for node %s", w.Recipient)
		}
		seen[w.Recipient] = true
	}
	return nil
}

// KeyShare is the payload of KindKeyShare: existing versions of one key
// wrapped for more nodes — mirroring to a newly registered node of a holder
// org, or handing a newly granted org every version at once.
type KeyShare struct {
	Key    string
	Shares []Share // 1..MaxWraps, distinct (version, recipient) pairs
}

// Share is one version of a key wrapped for one recipient.
type Share struct {
	Version    uint32
	ActivateAt time.Time
	Wrap       Wrap
}

// Validate reports whether s is well formed. Its errors wrap ErrMalformed.
func (s KeyShare) Validate() error {
	if err := checkKey(s.Key); err != nil {
		return err
	}
	if len(s.Shares) == 0 || len(s.Shares) > MaxWraps {
		return malformed("%d shares, want 1..%d", len(s.Shares), MaxWraps)
	}
	type pair struct {
		v uint32
		r network.NodeKey
	}
	seen := make(map[pair]bool, len(s.Shares))
	for _, sh := range s.Shares {
		if err := checkKeyVersion(s.Key, sh.Version, sh.ActivateAt); err != nil {
			return err
		}
		if err := sh.Wrap.validate(); err != nil {
			return err
		}
		p := pair{sh.Version, sh.Wrap.Recipient}
		if seen[p] {
			return malformed("two shares of version %d for node %s", sh.Version, sh.Wrap.Recipient)
		}
		seen[p] = true
	}
	return nil
}

// KeyState is the payload of KindKeyState: a lifecycle change.
type KeyState struct {
	Key string
	// State is StateActive, StateDeactivated or StateCompromised, or ""
	// (unchanged) when MinDecryptionVersion is set.
	State string
	// MinDecryptionVersion is the oldest version that may still decrypt;
	// 0 leaves it unchanged.
	MinDecryptionVersion uint32
}

// Validate reports whether s is well formed. Its errors wrap ErrMalformed.
func (s KeyState) Validate() error {
	if err := checkKey(s.Key); err != nil {
		return err
	}
	switch s.State {
	case StateActive, StateDeactivated, StateCompromised:
		return nil
	case "":
		// Only the minimum decryption version changes.
		if s.MinDecryptionVersion > 0 {
			return nil
		}
		return malformed("a key-state payload changes the state, the minimum decryption version or both")
	}
	return malformed("unknown key state %q", cut(s.State))
}

// KeyDestroy is the payload of KindKeyDestroy: every holder deletes the
// key's material and acknowledges with a DestroyAck.
type KeyDestroy struct {
	Key string
}

// Validate reports whether d is well formed. Its errors wrap ErrMalformed.
func (d KeyDestroy) Validate() error { return checkKey(d.Key) }

// DestroyAck is the payload of KindDestroyAck: the issuer has destroyed its
// copy of the key.
type DestroyAck struct {
	Key string
}

// Validate reports whether a is well formed. Its errors wrap ErrMalformed.
func (a DestroyAck) Validate() error { return checkKey(a.Key) }

func checkKey(name string) error {
	if err := envelope.CheckKeyName(name); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}

func checkKeyVersion(key string, version uint32, activateAt time.Time) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if version == 0 {
		return malformed("key %q version 0", key)
	}
	if activateAt.IsZero() {
		return malformed("key %q version %d has no activation time", key, version)
	}
	return nil
}

// cut shortens an untrusted string for an error message.
func cut(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// decodeStrict decodes payload into v (a pointer) and accepts it only if it
// is exactly what json.Marshal writes for the decoded value
// (internal/strictjson), within limit. So a payload has one encoding.
func decodeStrict(payload []byte, limit int, what string, v any) error {
	if err := strictjson.Decode(payload, limit, v); err != nil {
		return malformed("%s payload: %v", what, err)
	}
	return nil
}

func hexText(b []byte) []byte { return hextext.Encode(b) }

// unhexText decodes exactly len(dst) bytes of lower-case hex into dst.
func unhexText(dst, text []byte, what string) error {
	if err := hextext.Decode(dst, text, what); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// The DecodeXxx functions parse the payload of one kind. Each is strict: the
// payload must be exactly json.Marshal of a valid value of its type (see
// decodeStrict), within a size bound, and the value must pass its Validate.
// Their errors wrap ErrMalformed (or policy.ErrInvalidGrant for grants and
// revocations). Times are returned in UTC.

// DecodeKeyCreate parses the payload of a KindKeyCreate event.
func DecodeKeyCreate(payload []byte) (KeyCreate, error) {
	var c KeyCreate
	if err := decodeStrict(payload, maxSmallJSON, "key-create", &c); err != nil {
		return KeyCreate{}, err
	}
	if err := c.Validate(); err != nil {
		return KeyCreate{}, err
	}
	return c, nil
}

// DecodeKeyVersion parses the payload of a KindKeyVersion event.
func DecodeKeyVersion(payload []byte) (KeyVersion, error) {
	var v KeyVersion
	if err := decodeStrict(payload, MaxPayload, "key-version", &v); err != nil {
		return KeyVersion{}, err
	}
	if err := v.Validate(); err != nil {
		return KeyVersion{}, err
	}
	v.ActivateAt = utc(v.ActivateAt)
	return v, nil
}

// DecodeKeyShare parses the payload of a KindKeyShare event.
func DecodeKeyShare(payload []byte) (KeyShare, error) {
	var s KeyShare
	if err := decodeStrict(payload, MaxPayload, "key-share", &s); err != nil {
		return KeyShare{}, err
	}
	if err := s.Validate(); err != nil {
		return KeyShare{}, err
	}
	for i := range s.Shares {
		s.Shares[i].ActivateAt = utc(s.Shares[i].ActivateAt)
	}
	return s, nil
}

// DecodeKeyState parses the payload of a KindKeyState event.
func DecodeKeyState(payload []byte) (KeyState, error) {
	var s KeyState
	if err := decodeStrict(payload, maxSmallJSON, "key-state", &s); err != nil {
		return KeyState{}, err
	}
	if err := s.Validate(); err != nil {
		return KeyState{}, err
	}
	return s, nil
}

// DecodeKeyDestroy parses the payload of a KindKeyDestroy event.
func DecodeKeyDestroy(payload []byte) (KeyDestroy, error) {
	var d KeyDestroy
	if err := decodeStrict(payload, maxSmallJSON, "key-destroy", &d); err != nil {
		return KeyDestroy{}, err
	}
	if err := d.Validate(); err != nil {
		return KeyDestroy{}, err
	}
	return d, nil
}

// DecodeDestroyAck parses the payload of a KindDestroyAck event.
func DecodeDestroyAck(payload []byte) (DestroyAck, error) {
	var a DestroyAck
	if err := decodeStrict(payload, maxSmallJSON, "destroy-ack", &a); err != nil {
		return DestroyAck{}, err
	}
	if err := a.Validate(); err != nil {
		return DestroyAck{}, err
	}
	return a, nil
}

// DecodeGrant parses the payload of a KindGrant event: a policy.Grant whose
// Validate passes and whose key is a valid key name. Validation errors wrap
// policy.ErrInvalidGrant; encoding errors wrap ErrMalformed.
func DecodeGrant(payload []byte) (policy.Grant, error) {
	var g policy.Grant
	if err := decodeStrict(payload, maxGrantJSON, "grant", &g); err != nil {
		return policy.Grant{}, err
	}
	if err := g.Validate(); err != nil {
		return policy.Grant{}, err
	}
	if err := checkKey(g.Key); err != nil {
		return policy.Grant{}, err
	}
	g.NotBefore, g.NotAfter, g.IssuedAt = utc(g.NotBefore), utc(g.NotAfter), utc(g.IssuedAt)
	return g, nil
}

// DecodeRevoke parses the payload of a KindRevoke event: a
// policy.Revocation whose Validate passes and whose key is a valid key name.
func DecodeRevoke(payload []byte) (policy.Revocation, error) {
	var r policy.Revocation
	if err := decodeStrict(payload, maxSmallJSON, "revoke", &r); err != nil {
		return policy.Revocation{}, err
	}
	if err := r.Validate(); err != nil {
		return policy.Revocation{}, err
	}
	if err := checkKey(r.Key); err != nil {
		return policy.Revocation{}, err
	}
	r.IssuedAt = utc(r.IssuedAt)
	return r, nil
}
