// Package secret holds Bytes, the type keymesh keeps key material and other
// secrets in. A Bytes redacts itself wherever it could leak — fmt verbs,
// slog, JSON — copies on the way in and out, compares in constant time, and
// can be cleared when it is no longer needed.
//
// Clearing is best effort: Go may have copied the bytes (the garbage
// collector moves nothing, but callers, the runtime and the kernel can hold
// copies) and there is no mlock here. What it does guarantee is that a
// cleared Bytes no longer hands out the old value.
package secret

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// Redacted is what a Bytes prints as.
const Redacted = "[REDACTED]"

// ErrCleared is returned when a cleared Bytes is used.
var ErrCleared = errors.New("secret: used after clear")

// Bytes is a secret byte string. The zero value is an empty, usable secret.
// It is safe for concurrent use.
type Bytes struct {
	mu      sync.RWMutex
	b       []byte
	cleared bool
}

// New returns a Bytes holding a copy of b. The caller should clear its own
// copy of b when it is done with it.
func New(b []byte) *Bytes {
	return &Bytes{b: append([]byte(nil), b...)}
}

// Len returns the length of the secret.
func (s *Bytes) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.b)
}

// Copy returns a copy of the secret, which the caller owns and should clear.
func (s *Bytes) Copy() ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.cleared {
		return nil, ErrCleared
	}
	return append([]byte(nil), s.b...), nil
}

// Use calls fn with the secret without copying it. fn must not retain or
// modify the slice.
func (s *Bytes) Use(fn func(b []byte) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.cleared {
		return ErrCleared
	}
	return fn(s.b)
}

// Equal reports, in constant time for equal lengths, whether s and o hold
// the same bytes. A cleared secret equals nothing.
func (s *Bytes) Equal(o *Bytes) bool {
	if s == o {
		s.mu.RLock()
		defer s.mu.RUnlock()
		return !s.cleared
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	o.mu.RLock()
	defer o.mu.RUnlock()
	if s.cleared || o.cleared {
		return false
	}
	return subtle.ConstantTimeCompare(s.b, o.b) == 1
}

// EqualBytes reports, in constant time for equal lengths, whether s holds b.
func (s *Bytes) EqualBytes(b []byte) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return !s.cleared && subtle.ConstantTimeCompare(s.b, b) == 1
}

// Clear overwrites the secret with zeros and marks it cleared; later Copy
// and Use fail with ErrCleared. Clear is idempotent.
func (s *Bytes) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.b)
	s.b = nil
	s.cleared = true
}

// Cleared reports whether Clear has been called.
func (s *Bytes) Cleared() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cleared
}

// String returns Redacted.
func (s *Bytes) String() string { return Redacted }

// GoString returns Redacted, so %#v does not leak either.
func (s *Bytes) GoString() string { return Redacted }

// Format prints Redacted for every verb.
func (s *Bytes) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// LogValue makes slog print Redacted.
func (s *Bytes) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON encodes the secret as the string Redacted.
func (s *Bytes) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText encodes the secret as Redacted, for encoders that use
// encoding.TextMarshaler.
func (s *Bytes) MarshalText() ([]byte, error) { return []byte(Redacted), nil }
