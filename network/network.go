// Package network defines a keymesh network and its membership: the
// [Genesis] (its organisations, their admin keys and key namespaces; its
// hash is the [NetworkID]), the admin-signed [NodeRecord] that registers a
// node and the [Deregister] that removes one, the [NodeKey] that names a
// node, and the file form of an org admin's key ([MarshalAdminKey]). It is
// pure: no I/O beyond [LoadGenesis], no clock, no storage.
//
// The events nodes exchange are package event's; a node record travels as
// the payload of an event of kind event.KindNodeRecord.
package network

import (
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/keymesh/keymesh/internal/hextext"
	"github.com/keymesh/keymesh/internal/strictjson"
)

// NetworkID identifies a network: the hash of its genesis (Genesis.ID).
type NetworkID [32]byte

// String returns the network id in lower-case hex (64 digits).
func (n NetworkID) String() string { return hex.EncodeToString(n[:]) }

// MarshalText returns the network id in lower-case hex.
func (n NetworkID) MarshalText() ([]byte, error) { return hexText(n[:]), nil }

// UnmarshalText parses exactly 64 lower-case hex digits.
func (n *NetworkID) UnmarshalText(text []byte) error { return unhexText(n[:], text, "network id") }

// NodeKey is a node's Ed25519 public signing key. The node's libp2p identity
// is the same key, so a NodeKey names a node. Its text form (JSON) is 64
// lower-case hex digits.
type NodeKey [32]byte

// String returns a short form for logs: the first 8 bytes in hex.
func (k NodeKey) String() string { return hex.EncodeToString(k[:8]) }

// Hex returns the full key in lower-case hex (64 digits).
func (k NodeKey) Hex() string { return hex.EncodeToString(k[:]) }

// MarshalText returns the full key in lower-case hex.
func (k NodeKey) MarshalText() ([]byte, error) { return hexText(k[:]), nil }

// UnmarshalText parses exactly 64 lower-case hex digits.
func (k *NodeKey) UnmarshalText(text []byte) error { return unhexText(k[:], text, "node key") }

// ParseKey parses the text form of a 32-byte public key — a NodeKey or an
// org admin key: exactly 64 lower-case hex digits.
func ParseKey(s string) ([32]byte, error) {
	var k [32]byte
	err := unhexText(k[:], []byte(s), "public key")
	return k, err
}

func hexText(b []byte) []byte { return hextext.Encode(b) }

// unhexText decodes exactly len(dst) bytes of lower-case hex into dst.
func unhexText(dst, text []byte, what string) error {
	if err := hextext.Decode(dst, text, what); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// Errors callers branch on.
var (
	// ErrMalformed is wrapped by every error about bytes that do not follow
	// a format of this package: a genesis, a record, a key.
	ErrMalformed = errors.New("network: malformed")
	// ErrBadSignature is the one error for an admin signature that does not
	// verify, whatever the reason. It is returned as is.
	ErrBadSignature = errors.New("network: bad signature")
	// ErrNotAdmin is returned by Genesis.VerifyNodeRecord and
	// Genesis.VerifyDeregister when the admin key is not a genesis admin
	// key of the record's org.
	ErrNotAdmin = errors.New("network: not an admin key of the org")
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// cut shortens an untrusted string for an error message.
func cut(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Limits of the JSON forms, in bytes.
const (
	maxNodeRecordJSON = 16 << 10
	maxSmallJSON      = 4 << 10
)

// decodeStrict decodes a record's JSON into v, accepting only its one
// encoding (internal/strictjson).
func decodeStrict(data []byte, limit int, what string, v any) error {
	if err := strictjson.Decode(data, limit, v); err != nil {
		return malformed("%s payload: %v", what, err)
	}
	return nil
}

// unixNano returns t in Unix nanoseconds, and whether that is exact.
func unixNano(t time.Time) (int64, bool) {
	n := t.UnixNano()
	return n, time.Unix(0, n).Equal(t)
}
