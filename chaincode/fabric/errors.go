package fabric

import (
	"errors"
	"strconv"
	"strings"

	"github.com/keymesh/keymesh/node/client"
)

// Conditions a contract branches on with errors.Is.
var (
	// ErrNotGranted: the transaction creator holds no grant in force for
	// the key and operation (decrypt for reads, encrypt for writes).
	ErrNotGranted = errors.New("keymesh: not granted")
	// ErrDecryptionFailed: the envelope does not open with this context —
	// it was copied from another key, field, collection, chaincode or
	// channel, or tampered with.
	ErrDecryptionFailed = errors.New("keymesh: decryption failed")
	// ErrCreatorRefused: the node did not accept the transaction creator
	// (an MSP it has no CA for, a certificate that does not chain, an
	// expired certificate).
	ErrCreatorRefused = errors.New("keymesh: transaction creator refused")
	// ErrKeyDestroyed: the key was crypto-shredded; the value is gone.
	ErrKeyDestroyed = errors.New("keymesh: key destroyed")
	// ErrNotEncrypted: a tagged field on the ledger does not hold an
	// envelope.
	ErrNotEncrypted = errors.New("keymesh: field is not encrypted")
	// ErrNotFound: the state (or private data) key does not exist.
	ErrNotFound = errors.New("keymesh: state not found")
	// ErrTransient: the transient map lacks the entry, or it is not the
	// expected JSON.
	ErrTransient = errors.New("keymesh: transient data")
)

// FieldError is the failure of one field. Its message names where the value
// lives and which key protects it, never the value.
type FieldError struct {
	Op         string // "encrypt" or "decrypt"
	Collection string // "" for world state
	Key        string // state key
	Field      string // JSON field name, or the Location's field; "" when the whole request failed
	KeyName    string // keymesh key, e.g. "asset/appraised-value"; "" if unknown
	Err        error  // the cause: an *client.APIError or another error
}

// Error returns e.g. `keymesh: decrypt field "appraisedValue" of "asset1"
// (key asset/appraised-value): not granted`. A failure of the whole
// request (the creator refused, the node unreachable) has no Field.
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString("keymesh: " + e.Op)
	if e.Field != "" {
		b.WriteString(" field " + strconv.Quote(e.Field) + " of")
	}
	b.WriteString(" " + strconv.Quote(e.Key))
	if e.Collection != "" {
		b.WriteString(" in collection " + strconv.Quote(e.Collection))
	}
	if e.KeyName != "" {
		b.WriteString(" (key " + e.KeyName + ")")
	}
	b.WriteString(": ")
	b.WriteString(causeText(e.Err))
	return b.String()
}

// Unwrap returns the package's sentinel for the cause, if any, and the
// cause itself, so that errors.Is matches both ErrNotGranted and
// client.ErrNotGranted.
func (e *FieldError) Unwrap() []error {
	if s := sentinel(e.Err); s != nil {
		return []error{s, e.Err}
	}
	return []error{e.Err}
}

func sentinel(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, client.ErrNotGranted):
		return ErrNotGranted
	case errors.Is(err, client.ErrDecryptionFailed), errors.Is(err, client.ErrInvalidCiphertext):
		return ErrDecryptionFailed
	case errors.Is(err, client.ErrInvalidCreator):
		return ErrCreatorRefused
	case errors.Is(err, client.ErrKeyDestroyed):
		return ErrKeyDestroyed
	}
	return nil
}

func causeText(err error) string {
	switch s := sentinel(err); {
	case s == ErrNotGranted:
		return "not granted"
	case s == ErrDecryptionFailed:
		return "decryption failed"
	case s == ErrKeyDestroyed:
		return "key destroyed"
	case s == ErrCreatorRefused:
		var ae *client.APIError
		if errors.As(err, &ae) {
			return "transaction creator refused: " + strings.TrimPrefix(ae.Message, "fabricid: transaction creator refused: ")
		}
		return "transaction creator refused"
	case err == nil:
		return "unknown error"
	}
	return strings.TrimPrefix(err.Error(), "keymesh: ")
}

// apiErr turns a batch item's error into the *client.APIError a single
// request would have returned.
func apiErr(code, msg string) error { return &client.APIError{Code: code, Message: msg} }
