package envelope

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
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
	if len(c) > maxContextEntries {
		return tooManyEntries(len(c))
	}
	for k, v := range c {
		if err := checkContextEntry(k, v); err != nil {
			return err
		}
	}
	return nil
}

func tooManyEntries(n int) error {
	return fmt.Errorf("%w: %d entries, more than %d", ErrInvalidContext, n, maxContextEntries)
}

// contextEntryOK is the fast path of checkContextEntry: it reports whether
// k and v can be an entry of a Context, for a key of printable ASCII and a
// value of ASCII. Other entries need checkContextEntry.
func contextEntryOK(k, v string) bool {
	return len(k) != 0 && len(k) <= maxContextKeyLen && len(v) <= maxContextValueLen &&
		printableASCII(k) && orBytes(v)&highBits == 0
}

// contextValueOK reports whether v can be the value of a Context entry.
func contextValueOK(v string) bool {
	return len(v) <= maxContextValueLen && (orBytes(v)&highBits == 0 || utf8.ValidString(v))
}

// Word-at-a-time checks. A word w has a byte below 0x20 if
// (w - 0x20 × ones) &^ w has a high bit set, and one above 0x7e if
// (w + ones) | w has: both exact for these bounds, whatever the carries.
// Short strings are read as two words that overlap, which checks some bytes
// twice and none never.
const (
	ones     = 0x0101010101010101
	highBits = 0x8080808080808080
)

// printableASCII reports whether every byte of s is in 0x20..0x7e.
func printableASCII(s string) bool {
	n := len(s)
	var bad uint64
	switch {
	case n >= 8:
		for i := 0; i+8 <= n; i += 8 {
			w := load64(s, i)
			bad |= (w-0x20*ones)&^w | (w + ones) | w
		}
		w := load64(s, n-8)
		bad |= (w-0x20*ones)&^w | (w + ones) | w
	case n >= 4:
		w := uint64(load32(s, 0)) | uint64(load32(s, n-4))<<32
		bad = (w-0x20*ones)&^w | (w + ones) | w
	default:
		for i := 0; i < n; i++ {
			if c := s[i]; c < 0x20 || c > 0x7e {
				return false
			}
		}
	}
	return bad&highBits == 0
}

// orBytes returns a word whose high bits are clear if s is ASCII.
func orBytes(s string) uint64 {
	n := len(s)
	switch {
	case n >= 8:
		var w uint64
		for i := 0; i+8 <= n; i += 8 {
			w |= load64(s, i)
		}
		return w | load64(s, n-8)
	case n >= 4:
		return uint64(load32(s, 0) | load32(s, n-4))
	case n > 0:
		return uint64(s[0] | s[n/2] | s[n-1])
	}
	return 0
}

// load64 returns the eight bytes of s from i, little-endian.
func load64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// load32 returns the four bytes of s from i, little-endian.
func load32(s string, i int) uint32 {
	s = s[i : i+4]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

// checkContextEntry reports whether k and v can be an entry of a Context.
func checkContextEntry(k, v string) error {
	if contextEntryOK(k, v) {
		return nil
	}
	if reason := checkContextKey(k); reason != "" {
		return fmt.Errorf("%w: key %s %s", ErrInvalidContext, quote(k), reason)
	}
	if len(v) > maxContextValueLen {
		return fmt.Errorf("%w: value of %s is %d bytes, longer than %d", ErrInvalidContext, quote(k), len(v), maxContextValueLen)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: value of %s is not valid UTF-8", ErrInvalidContext, quote(k))
	}
	return nil
}

// smallContext is the number of entries appendContext sorts on the stack;
// larger contexts take a slower path with one allocation. (Zeroing room for
// all 32 on every call would cost more than the rest of the sort.)
const smallContext = 8

type contextEntry struct{ k, v string }

// appendContext validates c, as Validate does, and appends its encoding:
// uint16 count, then in bytewise key order for each entry uint16 len(key) ||
// key || uint32 len(value) || value. On error it returns b unchanged.
//
// The entries are gathered in an array local to this function and sorted
// through an array of indices, so that no pointer is written outside the
// stack frame: such writes would each cost a GC write barrier while the
// collector runs, which at the allocation rate of a busy sealer is often.
func appendContext(b []byte, c Context) ([]byte, error) {
	if len(c) > smallContext {
		return appendLargeContext(b, c)
	}
	var es [smallContext]contextEntry
	var order [smallContext]uint8
	n, size := 0, 2
	for k, v := range c {
		if !contextEntryOK(k, v) {
			if err := checkContextEntry(k, v); err != nil {
				return b, err
			}
		}
		if n == smallContext {
			// Only if c grew during the walk, which is a data race.
			return appendLargeContext(b, c)
		}
		es[n] = contextEntry{k, v}
		// Insertion sort of the indices: contexts are small.
		i := n
		for ; i > 0 && es[order[i-1]].k > k; i-- {
			order[i] = order[i-1]
		}
		order[i] = uint8(n)
		n++
		size += 2 + len(k) + 4 + len(v)
	}
	b = slices.Grow(b, size)
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	for _, j := range order[:n] {
		b = appendEntry(b, &es[j])
	}
	return b, nil
}

// appendLargeContext is appendContext for contexts of more than
// smallContext entries.
func appendLargeContext(b []byte, c Context) ([]byte, error) {
	if len(c) > maxContextEntries {
		return b, tooManyEntries(len(c))
	}
	es := make([]contextEntry, 0, len(c))
	size := 2
	for k, v := range c {
		if err := checkContextEntry(k, v); err != nil {
			return b, err
		}
		es = append(es, contextEntry{k, v})
		size += 2 + len(k) + 4 + len(v)
	}
	if len(es) > maxContextEntries {
		return b, tooManyEntries(len(es))
	}
	slices.SortFunc(es, func(a, b contextEntry) int { return strings.Compare(a.k, b.k) })
	b = slices.Grow(b, size)
	b = binary.BigEndian.AppendUint16(b, uint16(len(es)))
	for i := range es {
		b = appendEntry(b, &es[i])
	}
	return b, nil
}

func appendEntry(b []byte, e *contextEntry) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.k)))
	b = append(b, e.k...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.v)))
	return append(b, e.v...)
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

// contextCache remembers the key set of recent contexts, so that a Sealer
// whose contexts share their keys (a field's context names the same
// channel, chaincode, state key and field entries on every call, with other
// values) need not walk, check and sort the keys on every call: it looks
// the remembered keys up in the map, in order, and checks only the values.
// The zero contextCache is empty and ready; a nil one remembers nothing.
type contextCache struct {
	keys   atomic.Pointer[contextKeys]
	misses atomic.Uint32
}

// contextKeys is the key set of a valid, non-empty Context, in bytewise
// order. It is immutable once stored.
type contextKeys struct {
	keys []string
}

// learnEvery is how often, in misses, contextCache replaces the key set it
// remembers: at the first miss and then one in learnEvery, so that callers
// alternating between key sets cost a lookup more per call, not an
// allocation.
const learnEvery = 16

// appendContext is the package's appendContext (the same encoding, the
// same errors), through the cache.
func (cc *contextCache) appendContext(b []byte, c Context) ([]byte, error) {
	if cc == nil || len(c) == 0 || len(c) > maxContextEntries {
		return appendContext(b, c)
	}
	if ks := cc.keys.Load(); ks != nil && len(ks.keys) == len(c) {
		if out, ok := ks.appendContext(b, c); ok {
			return out, nil
		}
	}
	out, err := appendContext(b, c)
	if err == nil && cc.misses.Add(1)%learnEvery == 1 {
		cc.keys.Store(newContextKeys(c))
	}
	return out, err
}

// newContextKeys returns the key set of c, a valid Context. It checks the
// keys again, so that only checked keys are remembered even if c changed
// since (a data race of the caller), and returns nil if one fails.
func newContextKeys(c Context) *contextKeys {
	keys := make([]string, 0, len(c))
	for k := range c {
		if len(keys) == maxContextEntries || checkContextKey(k) != "" {
			return nil
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return &contextKeys{keys: keys}
}

// appendContext appends the encoding of c if c has exactly the keys of ks,
// which the caller has checked c has as many of, and its values are valid.
// Otherwise it reports false, and the caller takes the full path, which
// also finds the error.
func (ks *contextKeys) appendContext(b []byte, c Context) ([]byte, bool) {
	// c has len(ks.keys) distinct keys: if each of them is in c, they are
	// all of c's keys, already checked and sorted.
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, uint16(len(ks.keys)))
	for _, k := range ks.keys {
		v, ok := c[k]
		if !ok || !contextValueOK(v) {
			return b[:start], false
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	return b, true
}
