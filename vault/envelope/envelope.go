package envelope

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Mode selects how [Sealer.Seal] chooses the nonce. Its value is written into
// every envelope: the values are pinned and never change.
type Mode uint8

const (
	// ModeRandom draws the nonce from a random source. It is the default.
	ModeRandom Mode = 1
	// ModeEndorsement derives the nonce from the transaction id, the
	// additional data and the plaintext, so that every endorsing peer
	// produces the same envelope for the same proposal.
	ModeEndorsement Mode = 2
	// ModeDeterministic derives the nonce from the additional data and the
	// plaintext. Equal inputs give equal envelopes: it reveals equality.
	ModeDeterministic Mode = 3
)

// String returns "random", "endorsement" or "deterministic", and "mode(N)"
// for any other value.
func (m Mode) String() string {
	switch m {
	case ModeRandom:
		return "random"
	case ModeEndorsement:
		return "endorsement"
	case ModeDeterministic:
		return "deterministic"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

func (m Mode) valid() bool { return m >= ModeRandom && m <= ModeDeterministic }

// ParseMode returns the Mode named s, as spelled by [Mode.String]. The empty
// string means [ModeRandom].
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "random":
		return ModeRandom, nil
	case "endorsement":
		return ModeEndorsement, nil
	case "deterministic":
		return ModeDeterministic, nil
	}
	return 0, fmt.Errorf("envelope: unknown mode %s", quote(s))
}

// FormatVersion is the first byte of every envelope Seal writes: format 2,
// with a per-sealer subkey in random mode and a synthetic IV (AES-CTR and
// HMAC-SHA256) in the derived modes. See the package doc.
const FormatVersion = 2

// FormatVersion1 is the first format: AES-256-GCM under the version key in
// every mode, the nonce random or derived. Parse and Open still accept it;
// Seal no longer writes it.
const FormatVersion1 = 1

// TextPrefix starts the text form of an envelope, which continues with the
// binary form in unpadded base64url (RFC 4648 §5).
const TextPrefix = "km1:"

// NonceSize is the size of the AES-GCM nonce, in bytes.
const NonceSize = 12

// SIVSize is the size of the synthetic IV of the derived modes of format 2:
// the AES-CTR initial counter block, in bytes.
const SIVSize = 16

// SealerIDSize is the size of a sealer id, in bytes.
const SealerIDSize = 8

// SealerID names the node that sealed a random-mode envelope of format 2.
// The envelope's GCM key is a subkey derived for that sealer, so each sealer
// counts its nonces under a key of its own. It is public.
type SealerID [SealerIDSize]byte

// TagSize is the size of the AES-GCM authentication tag, in bytes.
const TagSize = 16

// KeySize is the size of a key version, in bytes (AES-256).
const KeySize = 32

// MaxKeyNameLen is the maximum length of a key name, in bytes.
const MaxKeyNameLen = 128

// MaxPlaintextSize is the largest plaintext Seal accepts, in bytes.
const MaxPlaintextSize = 1 << 20

// MaxTxIDLen is the maximum length of a transaction id, in bytes.
const MaxTxIDLen = 256

// NetworkIDSize is the size of a network id, in bytes.
const NetworkIDSize = 32

// NetworkID identifies the consortium (the genesis hash). It is bound into
// every envelope, so an envelope from another network does not open.
type NetworkID [NetworkIDSize]byte

const (
	fixedHeaderLen   = 7 // format version, mode, name length, key version
	maxHeaderLen     = fixedHeaderLen + MaxKeyNameLen + SealerIDSize
	maxCiphertextLen = MaxPlaintextSize + TagSize
	// The largest envelope is a random one of format 2: header with
	// sealer id, nonce, ciphertext and tag. A derived one of format 2
	// carries SIVSize+TagSize = 32 bytes besides the plaintext, fewer
	// than NonceSize+TagSize+SealerIDSize = 36.
	maxBinaryLen = maxHeaderLen + NonceSize + maxCiphertextLen
	// maxTextLen is len(TextPrefix) + base64.RawURLEncoding.EncodedLen(maxBinaryLen).
	maxTextLen = len(TextPrefix) + (maxBinaryLen*8+5)/6
)

var (
	// ErrMalformed is wrapped by every error that reports an envelope (or a
	// header given to Seal) that does not follow the format.
	ErrMalformed = errors.New("envelope: malformed envelope")
	// ErrDecrypt is the one error for an envelope that does not
	// authenticate: wrong key, wrong context, wrong network id, or tampered.
	// It is returned as is, never wrapped with a reason.
	ErrDecrypt = errors.New("envelope: decryption failed")
	// ErrInvalidKeyName is wrapped by errors about a key name that
	// CheckKeyName rejects.
	ErrInvalidKeyName = errors.New("envelope: invalid key name")
	// ErrInvalidContext is wrapped by errors about a Context that
	// Context.Validate rejects.
	ErrInvalidContext = errors.New("envelope: invalid context")
	// ErrInvalidKey is wrapped by errors about a key of the wrong size and
	// returned by a Sealer after Destroy.
	ErrInvalidKey = errors.New("envelope: invalid key")
	// ErrTooLarge is wrapped by errors about a plaintext longer than
	// MaxPlaintextSize.
	ErrTooLarge = errors.New("envelope: plaintext too large")
	// ErrInvalidTxID is wrapped by errors about a transaction id that does
	// not fit the mode: endorsement needs one of 1..MaxTxIDLen bytes, the
	// other modes take none.
	ErrInvalidTxID = errors.New("envelope: invalid transaction id")
	// ErrFormat is wrapped by Seal's errors about a header that asks for a
	// format Seal does not write (format 1 is read-only).
	ErrFormat = errors.New("envelope: format not written")
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// quote quotes a public input for an error message, cut to a readable length.
func quote(s string) string {
	const limit = 64
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "..."
	}
	return strconv.Quote(s)
}

// Header is the cleartext part of an envelope: its format, how the nonce was
// chosen and which key version seals it. All of it is authenticated.
type Header struct {
	// Mode is how the nonce was chosen.
	Mode Mode
	// Key is the key name, "<namespace>/<name>".
	Key string
	// Version is the key version, from 1.
	Version uint32
	// Format is the format version. Zero means FormatVersion, the one
	// Seal writes; Parse always sets it (FormatVersion or FormatVersion1).
	Format uint8
	// Sealer is the id of the sealing node, in random mode of format 2
	// only; it must be zero otherwise.
	Sealer SealerID
}

// format returns h.Format with zero read as FormatVersion.
func (h *Header) format() uint8 {
	if h.Format == 0 {
		return FormatVersion
	}
	return h.Format
}

// hasSealer reports whether the header carries a sealer id.
func (h *Header) hasSealer() bool { return h.format() == FormatVersion && h.Mode == ModeRandom }

// siv reports whether the envelope uses the synthetic IV construction.
func (h *Header) siv() bool { return h.format() == FormatVersion && h.Mode != ModeRandom }

// check reports whether h can be written as an envelope header. With
// nameChecked, the caller knows that h.Key passed CheckKeyName before.
func (h *Header) check(nameChecked bool) error {
	if f := h.format(); f != FormatVersion && f != FormatVersion1 {
		return malformed("unknown format version %d", f)
	}
	if !h.Mode.valid() {
		return malformed("unknown mode %d", h.Mode)
	}
	if !nameChecked {
		if err := CheckKeyName(h.Key); err != nil {
			return err
		}
	}
	if h.Version == 0 {
		return malformed("version 0")
	}
	if !h.hasSealer() && h.Sealer != (SealerID{}) {
		return malformed("sealer id in a %v envelope of format %d", h.Mode, h.format())
	}
	return nil
}

func (h *Header) len() int {
	n := fixedHeaderLen + len(h.Key)
	if h.hasSealer() {
		n += SealerIDSize
	}
	return n
}

// appendTo appends the binary header. It does not validate h; a key name
// too long for the length byte is written with length 0, which Parse rejects,
// rather than with a truncated length that might parse as something else.
func (h *Header) appendTo(b []byte) []byte {
	n := len(h.Key)
	if n > MaxKeyNameLen {
		n = 0
	}
	b = append(b, h.format(), byte(h.Mode), byte(n))
	b = append(b, h.Key...)
	b = binary.BigEndian.AppendUint32(b, h.Version)
	if h.hasSealer() {
		b = append(b, h.Sealer[:]...)
	}
	return b
}

// Envelope is one encrypted field. Its fields are authoritative: Marshal,
// Text and Sealer.Open read them as they are, so an Envelope may be built by
// hand. Envelopes returned by Seal, Parse and ParseText are valid.
type Envelope struct {
	Header
	// Nonce is the AES-GCM nonce: format 1, and random mode of format 2.
	// It is zero and not written in the derived modes of format 2.
	Nonce [NonceSize]byte
	// SIV is the synthetic IV of the derived modes of format 2. It is zero
	// and not written otherwise.
	SIV [SIVSize]byte
	// Ciphertext is the AES-GCM ciphertext followed by the tag, or in the
	// derived modes of format 2 the AES-CTR ciphertext followed by the
	// HMAC tag; at least TagSize bytes either way.
	Ciphertext []byte
}

// iv returns the bytes written between the header and the ciphertext.
func (e *Envelope) iv() []byte {
	if e.siv() {
		return e.SIV[:]
	}
	return e.Nonce[:]
}

func (e *Envelope) binaryLen() int {
	return e.Header.len() + len(e.iv()) + len(e.Ciphertext)
}

// Marshal returns the binary form of e in a new slice. It does not validate
// e: an envelope that is not valid marshals to bytes Parse rejects.
func (e *Envelope) Marshal() []byte {
	b := make([]byte, 0, e.binaryLen())
	b = e.Header.appendTo(b)
	b = append(b, e.iv()...)
	return append(b, e.Ciphertext...)
}

var b64 = base64.RawURLEncoding.Strict()

// Text returns the text form of e: TextPrefix followed by the binary form in
// unpadded base64url. Like Marshal, it does not validate e.
func (e *Envelope) Text() string {
	var sb strings.Builder
	sb.Grow(len(TextPrefix) + b64.EncodedLen(e.binaryLen()))
	sb.WriteString(TextPrefix)
	// Encode header||nonce from a stack buffer, topped up with the first
	// ciphertext bytes so that the rest of the ciphertext starts on a
	// 3-byte boundary and can be encoded in place. The only allocation is
	// the string.
	var stack [maxHeaderLen + SIVSize + 2]byte
	head := e.Header.appendTo(stack[:0])
	head = append(head, e.iv()...)
	ct := e.Ciphertext
	k := min((3-len(head)%3)%3, len(ct))
	head = append(head, ct[:k]...)
	var out [1024]byte
	writeBase64(&sb, &out, head)
	writeBase64(&sb, &out, ct[k:])
	return sb.String()
}

// writeBase64 encodes src to sb through out. Unless it is the last piece of
// the input, len(src) must be a multiple of 3.
func writeBase64(sb *strings.Builder, out *[1024]byte, src []byte) {
	const chunk = len(out) / 4 * 3
	for len(src) > 0 {
		c := src[:min(len(src), chunk)]
		b64.Encode(out[:], c)
		sb.Write(out[:b64.EncodedLen(len(c))])
		src = src[len(c):]
	}
}

// Parse parses the binary form of an envelope. It is strict: it accepts only
// what Marshal writes for a valid envelope, so Parse(b).Marshal() equals b.
// The envelope does not alias b. Errors wrap ErrMalformed.
func Parse(b []byte) (*Envelope, error) {
	return parse(b, false)
}

// parse parses b; with owned, the envelope's ciphertext aliases b.
func parse(b []byte, owned bool) (*Envelope, error) {
	if len(b) > 0 && b[0] != FormatVersion && b[0] != FormatVersion1 {
		return nil, malformed("unknown format version %d", b[0])
	}
	if len(b) < 3 {
		return nil, malformed("truncated header")
	}
	h := Header{Format: b[0], Mode: Mode(b[1])}
	if !h.Mode.valid() {
		return nil, malformed("unknown mode %d", b[1])
	}
	n := int(b[2])
	if n == 0 || n > MaxKeyNameLen {
		return nil, malformed("invalid key name length %d", n)
	}
	ivLen := NonceSize
	if h.siv() {
		ivLen = SIVSize
	}
	sealerLen := 0
	if h.hasSealer() {
		sealerLen = SealerIDSize
	}
	off := fixedHeaderLen + n + sealerLen + ivLen
	if len(b) < off {
		return nil, malformed("truncated header")
	}
	name := b[3 : 3+n]
	if checkKeyName(name) != "" {
		return nil, malformed("invalid key name %s", quote(string(name)))
	}
	h.Version = binary.BigEndian.Uint32(b[3+n:])
	if h.Version == 0 {
		return nil, malformed("version 0")
	}
	copy(h.Sealer[:], b[fixedHeaderLen+n:fixedHeaderLen+n+sealerLen])
	ct := b[off:]
	if len(ct) < TagSize {
		return nil, malformed("ciphertext shorter than tag")
	}
	if len(ct) > maxCiphertextLen {
		return nil, malformed("ciphertext longer than %d bytes", maxCiphertextLen)
	}
	if !owned {
		ct = bytes.Clone(ct)
	}
	h.Key = string(name)
	e := &Envelope{Header: h, Ciphertext: ct}
	copy(e.iv(), b[off-ivLen:off])
	return e, nil
}

// ParseText parses the text form of an envelope. It is strict: it requires
// TextPrefix, rejects padding, line breaks, non-canonical trailing bits and
// the standard alphabet's '+' and '/', and refuses input longer than the
// largest envelope's text form before decoding it, so
// ParseText(s).Text() equals s. Errors wrap ErrMalformed.
func ParseText(s string) (*Envelope, error) {
	if len(s) > maxTextLen {
		return nil, malformed("text form of %d bytes exceeds %d", len(s), maxTextLen)
	}
	data, ok := strings.CutPrefix(s, TextPrefix)
	if !ok {
		return nil, malformed("text form does not start with %q", TextPrefix)
	}
	// The decoder skips '\r' and '\n'; the text form has none.
	if i := strings.IndexAny(data, "\r\n"); i >= 0 {
		return nil, malformed("invalid base64: line break at byte %d", len(TextPrefix)+i)
	}
	b := make([]byte, b64.DecodedLen(len(data)))
	n, err := b64.Decode(b, []byte(data))
	if err != nil {
		return nil, malformed("invalid base64: %v", err)
	}
	return parse(b[:n], true)
}
