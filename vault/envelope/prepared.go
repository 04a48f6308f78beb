package envelope

import (
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync/atomic"
)

// PreparedContext is a [Context] checked, sorted and encoded once, for
// callers that seal or open many fields under one context (the items of a
// batch, the fields of one record): [Sealer.SealPrepared],
// [Sealer.SealPreparedTo] and [Sealer.OpenPrepared] take it in place of the
// Context and skip the work [Sealer.Seal] and [Sealer.Open] do on every
// call. An envelope sealed with a PreparedContext is the envelope Seal
// writes for the Context it was prepared from, byte for byte, and opens
// with either.
//
// A PreparedContext holds the same entries for ever and is safe for
// concurrent use. It does not alias the Context it was prepared from: later
// changes to that map do not change it. The nil *PreparedContext is the
// empty context, like a nil Context.
type PreparedContext struct {
	// enc is the context's encoding in the additional data: uint16 count,
	// then in bytewise key order uint16 len(key) || key || uint32
	// len(value) || value for each entry.
	enc []byte
	n   int // entries

	// aad is the whole additional data of a random-mode seal under the
	// subkey it names, the one this context was last sealed under: a
	// batch seals its items under one subkey.
	aad atomic.Pointer[preparedAAD]
}

// preparedAAD is the additional data of random-mode envelopes sealed under
// one subkey with one PreparedContext: the subkey's prefix || enc. It is
// immutable once stored.
type preparedAAD struct {
	subkey uint64 // subkey.id
	b      []byte
}

// randomAAD returns the additional data of a random-mode envelope sealed
// under sk with p, from p's cache or built and kept there; for the empty
// context, which every Sealer shares, the subkey's own.
func (p *PreparedContext) randomAAD(sk *subkey) []byte {
	if p == emptyPrepared {
		return sk.aad0
	}
	if a := p.aad.Load(); a != nil && a.subkey == sk.id {
		return a.b
	}
	b := make([]byte, 0, len(sk.aad)+len(p.enc))
	b = append(append(b, sk.aad...), p.enc...)
	p.aad.Store(&preparedAAD{subkey: sk.id, b: b})
	return b
}

var errNilEnvelope = errors.New("envelope: SealPreparedTo: nil Envelope")

// emptyPrepared is the empty context, what a nil *PreparedContext means.
var emptyPrepared = &PreparedContext{enc: []byte{0, 0}}

// PrepareContext checks c as [Context.Validate] does and returns it
// prepared. Its error is the one Validate, Seal and Open report for c (with
// several invalid entries, which one is reported depends on the map's
// order, as it does there), wrapping ErrInvalidContext.
func PrepareContext(c Context) (*PreparedContext, error) {
	if len(c) == 0 {
		return emptyPrepared, nil
	}
	enc, err := appendContext(nil, c)
	if err != nil {
		return nil, err
	}
	return &PreparedContext{enc: enc[:len(enc):len(enc)], n: int(binary.BigEndian.Uint16(enc))}, nil
}

// Matches reports whether c has exactly the entries p was prepared from, so
// that sealing or opening with p and with c are the same. A nil or empty c
// matches a nil or empty p. It costs at most one map lookup per entry of p
// and stops at the first entry that differs.
func (p *PreparedContext) Matches(c Context) bool {
	if p == nil {
		p = emptyPrepared
	}
	if len(c) != p.n {
		return false
	}
	// c has p.n distinct keys: if each of p's is in c with the same value,
	// c holds exactly p's entries.
	for b := p.enc[2:]; len(b) > 0; {
		kl := int(binary.BigEndian.Uint16(b))
		k := b[2 : 2+kl]
		b = b[2+kl:]
		vl := int(binary.BigEndian.Uint32(b))
		v := b[4 : 4+vl]
		b = b[4+vl:]
		if got, ok := c[string(k)]; !ok || got != string(v) {
			return false
		}
	}
	return true
}

// String returns the keys of p, in bytewise order, for logs and errors:
// "PreparedContext[chaincode channel field state_key]". Values are left
// out, as in the package's error messages.
func (p *PreparedContext) String() string {
	if p == nil {
		p = emptyPrepared
	}
	var sb strings.Builder
	sb.WriteString("PreparedContext[")
	for b := p.enc[2:]; len(b) > 0; {
		kl := int(binary.BigEndian.Uint16(b))
		if sb.Len() > len("PreparedContext[") {
			sb.WriteByte(' ')
		}
		sb.Write(b[2 : 2+kl])
		b = b[2+kl:]
		b = b[4+int(binary.BigEndian.Uint32(b)):]
	}
	sb.WriteByte(']')
	return sb.String()
}

// ctxArg is the context of one Seal or Open: a Context, encoded through the
// Sealer's cache of key sets, or a PreparedContext, already encoded.
type ctxArg struct {
	c Context
	p *PreparedContext // if set, used in place of c
}

// appendTo appends the context's encoding to b; the error is the Context's,
// as Context.Validate reports it. On error it returns b unchanged.
func (a ctxArg) appendTo(b []byte, cc *contextCache) ([]byte, error) {
	if a.p != nil {
		return append(b, a.p.enc...), nil
	}
	return cc.appendContext(b, a.c)
}

// validate is Context.Validate; a PreparedContext is valid.
func (a ctxArg) validate() error {
	if a.p != nil {
		return nil
	}
	return a.c.Validate()
}

// encodedLen returns the length of a prepared context's encoding, or 0.
func (a ctxArg) encodedLen() int {
	if a.p != nil {
		return len(a.p.enc)
	}
	return 0
}

// SealPrepared is [Sealer.Seal] with a prepared context: the same
// envelope for the same inputs (and, with a non-nil rand, the same nonce),
// the same errors but those of an invalid context, which PrepareContext
// has already reported. A nil pc is the empty context.
func (s *Sealer) SealPrepared(h Header, nid NetworkID, pc *PreparedContext, txID string, plaintext []byte, rand io.Reader) (*Envelope, error) {
	if pc == nil {
		pc = emptyPrepared
	}
	// One defer and one return, so that the defer is open-coded.
	s.mu.RLock()
	defer s.mu.RUnlock()
	return seal(s.st, &h, &nid, ctxArg{p: pc}, txID, plaintext, rand, nil)
}

// SealPreparedTo is [Sealer.SealPrepared] into the caller's envelope e,
// which it overwrites, so that a caller sealing many fields need not
// allocate one Envelope each: it reuses the storage of e.Ciphertext if that
// has the capacity (NonceSize+len(plaintext)+TagSize bytes covers every
// mode) and does not overlap plaintext, and allocates a new one otherwise.
// Whatever e.Ciphertext held before is overwritten: do not reuse the
// Envelope of a ciphertext still in use. e.Ciphertext keeps the capacity
// of its storage. On error e is left as it was, except that the bytes of
// e.Ciphertext's storage may have been overwritten.
func (s *Sealer) SealPreparedTo(e *Envelope, h Header, nid NetworkID, pc *PreparedContext, txID string, plaintext []byte, rand io.Reader) error {
	if e == nil {
		return errNilEnvelope
	}
	if pc == nil {
		pc = emptyPrepared
	}
	// One defer and one return, so that the defer is open-coded.
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, err := seal(s.st, &h, &nid, ctxArg{p: pc}, txID, plaintext, rand, e)
	return err
}

// OpenPrepared is [Sealer.Open] with a prepared context: the same plaintext
// and the same errors, but those of an invalid context, which
// PrepareContext has already reported. A nil pc is the empty context.
func (s *Sealer) OpenPrepared(e *Envelope, nid NetworkID, pc *PreparedContext) ([]byte, error) {
	if pc == nil {
		pc = emptyPrepared
	}
	// One defer and one return, so that the defer is open-coded.
	s.mu.RLock()
	defer s.mu.RUnlock()
	return open(s.st, e, &nid, ctxArg{p: pc})
}
