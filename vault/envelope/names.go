package envelope

import (
	"encoding/binary"
	"fmt"
	"unicode"
	"unicode/utf8"
)

const maxSegmentLen = 63

// CheckKeyName reports whether name is a valid key name: "<namespace>/<name>"
// with exactly one '/', each segment 1..63 bytes of [a-z0-9._-] starting with
// [a-z0-9], at most MaxKeyNameLen bytes in all. The error quotes the name
// (key names are public) and wraps ErrInvalidKeyName.
func CheckKeyName(name string) error {
	if reason := checkKeyName(name); reason != "" {
		return fmt.Errorf("%w %s: %s", ErrInvalidKeyName, quote(name), reason)
	}
	return nil
}

// checkKeyName returns why name is not a valid key name, or "".
func checkKeyName[T string | []byte](name T) string {
	if len(name) == 0 {
		return "empty"
	}
	if len(name) > MaxKeyNameLen {
		return fmt.Sprintf("%d bytes, longer than %d", len(name), MaxKeyNameLen)
	}
	slash := -1
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			if slash >= 0 {
				return "more than one '/'"
			}
			slash = i
		}
	}
	if slash < 0 {
		return "no '/' between namespace and name"
	}
	if r := checkSegment(name[:slash]); r != "" {
		return "namespace " + r
	}
	if r := checkSegment(name[slash+1:]); r != "" {
		return "name " + r
	}
	return ""
}

func checkSegment[T string | []byte](seg T) string {
	if len(seg) == 0 {
		return "is empty"
	}
	if len(seg) > maxSegmentLen {
		return fmt.Sprintf("is longer than %d bytes", maxSegmentLen)
	}
	if !isLowerAlnum(seg[0]) {
		return "does not start with [a-z0-9]"
	}
	for i := 1; i < len(seg); i++ {
		if c := seg[i]; !isLowerAlnum(c) && c != '.' && c != '_' && c != '-' {
			return "has a byte outside [a-z0-9._-]"
		}
	}
	return ""
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// Context is the caller-supplied context bound into an envelope's additional
// data, such as the channel, chaincode, state key and field path of a Fabric
// field, or the chain id, contract and field of an Ethereum one. The envelope
// opens only with an equal Context; order of entries does not matter, and a
// nil Context equals an empty one. Keys are quoted in error messages, values
// never.
type Context map[string]string

const (
	maxContextEntries  = 32
	maxContextKeyLen   = 128
	maxContextValueLen = 4096
)

// Validate reports whether c can be bound into an envelope: at most 32
// entries; keys of 1..128 bytes of valid UTF-8 without control characters;
// values of at most 4096 bytes of valid UTF-8. The error wraps
// ErrInvalidContext.
func (c Context) Validate() error {
	var es contextEntries
	_, err := c.sorted(&es)
	return err
}

// contextEntries holds the entries of a typical Context on the stack; larger
// ones spill to the heap. (Zeroing room for all 32 would cost more than the
// rest of the sort.)
type contextEntries [8]contextEntry

type contextEntry struct{ k, v string }

// sorted validates c and returns its entries in bytewise key order, in es.
func (c Context) sorted(es *contextEntries) ([]contextEntry, error) {
	if len(c) > maxContextEntries {
		return nil, fmt.Errorf("%w: %d entries, more than %d", ErrInvalidContext, len(c), maxContextEntries)
	}
	out := es[:0]
	for k, v := range c {
		if reason := checkContextKey(k); reason != "" {
			return nil, fmt.Errorf("%w: key %s %s", ErrInvalidContext, quote(k), reason)
		}
		if len(v) > maxContextValueLen {
			return nil, fmt.Errorf("%w: value of %s is %d bytes, longer than %d", ErrInvalidContext, quote(k), len(v), maxContextValueLen)
		}
		if !utf8.ValidString(v) {
			return nil, fmt.Errorf("%w: value of %s is not valid UTF-8", ErrInvalidContext, quote(k))
		}
		// Insertion sort: contexts are small.
		i := len(out)
		out = append(out, contextEntry{})
		for ; i > 0 && out[i-1].k > k; i-- {
			out[i] = out[i-1]
		}
		out[i] = contextEntry{k, v}
	}
	return out, nil
}

func checkContextKey(k string) string {
	if len(k) == 0 {
		return "is empty"
	}
	if len(k) > maxContextKeyLen {
		return fmt.Sprintf("is longer than %d bytes", maxContextKeyLen)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c >= utf8.RuneSelf {
			return checkContextKeyUnicode(k)
		}
		if c < 0x20 || c == 0x7f {
			return "has a control character"
		}
	}
	return ""
}

func checkContextKeyUnicode(k string) string {
	if !utf8.ValidString(k) {
		return "is not valid UTF-8"
	}
	for _, r := range k {
		if unicode.IsControl(r) {
			return "has a control character"
		}
	}
	return ""
}

// contextLen returns the length of the encoding of es.
func contextLen(es []contextEntry) int {
	n := 2
	for _, e := range es {
		n += 2 + len(e.k) + 4 + len(e.v)
	}
	return n
}

// appendContext appends the encoding of a context from its sorted entries:
// uint16 count, then for each entry uint16 len(key) || key ||
// uint32 len(value) || value.
func appendContext(b []byte, es []contextEntry) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(es)))
	for _, e := range es {
		b = binary.BigEndian.AppendUint16(b, uint16(len(e.k)))
		b = append(b, e.k...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(e.v)))
		b = append(b, e.v...)
	}
	return b
}
