package kmip

import (
	"context"
	"errors"
	"time"

	"github.com/keymesh/keymesh/vault/secret"
)

// Backend is what the KMIP front door needs from keymesh: domain calls for
// one caller, no TTLV. Every method decides for c, writes the decision to
// the audit log (durably, before anything leaves) and only then acts; an
// error wraps one of the Err* sentinels below, which the server maps onto
// KMIP result reasons. The node implements it (node/kmipbackend.go) over
// the vault, the policy, the audit log and the admin changes of a
// standalone or mesh node, so that a KMIP object is a keymesh key.
type Backend interface {
	// Create makes a new key (generated AES-256 material, or req.Material
	// for Register) in the pre-active state, owned by c.
	Create(ctx context.Context, c Caller, req CreateRequest) (Object, error)
	// Object describes the key id, if c may see it.
	Object(ctx context.Context, c Caller, id string) (Object, error)
	// List describes every KMIP-managed key c may see (for Locate).
	List(ctx context.Context, c Caller) ([]Object, error)
	// SetAttributes replaces the client-settable attributes of id.
	SetAttributes(ctx context.Context, c Caller, id string, attrs []Attr) (Object, error)
	// Activate, Revoke and Destroy move id through its lifecycle.
	Activate(ctx context.Context, c Caller, id string) error
	Revoke(ctx context.Context, c Caller, id string, compromised bool) error
	Destroy(ctx context.Context, c Caller, id string) error
	// Export returns the material of id: only for an exportable key and a
	// caller granted export. The caller clears it.
	Export(ctx context.Context, c Caller, id string) (Object, *secret.Bytes, error)
	// Encrypt seals plaintext with AES-256-GCM under id; Decrypt opens.
	Encrypt(ctx context.Context, c Caller, id string, plaintext, aad []byte) (Sealed, error)
	Decrypt(ctx context.Context, c Caller, id string, s Sealed, aad []byte) ([]byte, error)
}

// Caller is who asks: the party its client certificate maps to.
type Caller struct {
	Party  string // "kmip:<subject common name>"
	Remote string // the peer address, for logs
}

// State is a key's lifecycle state, with KMIP's numbering (which is also
// the vault's: pre-active 1 … destroyed 5).
type State uint8

// States.
const (
	StatePreActive   State = 1
	StateActive      State = 2
	StateDeactivated State = 3
	StateCompromised State = 4
	StateDestroyed   State = 5
)

// Attr is one client-settable attribute of an object, as the server
// stores and mirrors it: its name, its index among attributes of that name
// and its value as a TTLV-encoded KMIP Attribute structure. The backend
// stores the bytes as they are (bounded by MaxAttrBytes each, MaxAttrs in
// all); only this package interprets them.
type Attr struct {
	Name  string
	Index int32
	TTLV  []byte
}

// Limits on what a client stores.
const (
	MaxAttrs     = 64
	MaxAttrBytes = 2048
	MaxNameLen   = 255 // a Name attribute's value, in bytes
)

// Object is a KMIP-managed key as the backend describes it. It never holds
// material.
type Object struct {
	ID         string // the KMIP Unique Identifier: the keymesh key name
	State      State
	Exportable bool
	// Owner is the party that created it over KMIP ("" for a key created
	// through the REST API or the CLI).
	Owner string
	// Lifecycle dates; zero when the key has not reached the state.
	Created, Activated, Deactivated, Compromised, Destroyed time.Time
	LastChange                                              time.Time
	Attrs                                                   []Attr
}

// CreateRequest is what Create needs.
type CreateRequest struct {
	Attrs      []Attr
	Exportable bool
	// Material is nil to generate a key (Create), or the 32 bytes a client
	// registers (Register).
	Material *secret.Bytes
}

// Sealed is an AES-256-GCM ciphertext.
type Sealed struct {
	Nonce, Ciphertext, Tag []byte
}

// Errors a Backend's errors wrap.
var (
	// ErrNotFound: no such key, or one the caller may not see.
	ErrNotFound = errors.New("kmip: object not found")
	// ErrDenied: the policy refuses (no grant, not the key's owner, not
	// exportable).
	ErrDenied = errors.New("kmip: permission denied")
	// ErrWrongState: the key's state does not allow the operation.
	ErrWrongState = errors.New("kmip: wrong key lifecycle state")
	// ErrInvalid: a malformed or unsupported request value.
	ErrInvalid = errors.New("kmip: invalid field")
	// ErrDecrypt: the ciphertext does not open.
	ErrDecrypt = errors.New("kmip: decryption failed")
	// ErrUnavailable: the node cannot vouch for the key now (stale policy)
	// or cannot write its audit log: fail closed.
	ErrUnavailable = errors.New("kmip: temporarily unavailable")
)
