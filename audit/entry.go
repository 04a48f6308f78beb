package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// formatV1 is the first byte of every encoded entry (and of the old
// layout's head record).
const formatV1 = 1

// hashDomain separates audit entry hashes from every other SHA-256 use.
const hashDomain = "keymesh audit entry v1\x00"

// Encoded entry, version 1 (all integers big-endian; str = u32 length ‖
// bytes, at most MaxFieldLen):
//
//	u8 version (1) ‖ [32]byte prev ‖ u64 seq ‖ i64 unix seconds ‖
//	u32 nanoseconds ‖ str principal ‖ str action ‖ str key ‖ u32 version ‖
//	str outcome ‖ str reason ‖ u32 count ‖ [32]byte hash
//
// hash = SHA-256(hashDomain ‖ every byte before the hash).
const (
	fixedEntryLen = 1 + 32 + 8 + 8 + 4 + 5*4 + 4 + 4 + 32
	headLen       = 1 + 8 + 32
)

// entryKey returns the old kv layout's key of entry seq: "audit/e/" ‖
// 8-byte big-endian seq.
func entryKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, len(entryPrefix)+8), entryPrefix...), seq)
}

func beUint64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// appendEntry appends e's encoding to dst, computing e.Hash from e.Prev and
// the other fields first.
func appendEntry(dst []byte, e *Entry) []byte {
	start := len(dst)
	dst = appendBody(dst, e)
	e.Hash = hashBody(dst[start:])
	return append(dst, e.Hash[:]...)
}

// appendBody appends the encoding of e without its hash.
func appendBody(dst []byte, e *Entry) []byte {
	dst = append(dst, formatV1)
	dst = append(dst, e.Prev[:]...)
	dst = binary.BigEndian.AppendUint64(dst, e.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.Time.Unix()))
	dst = binary.BigEndian.AppendUint32(dst, uint32(e.Time.Nanosecond()))
	dst = appendStr(dst, e.Principal)
	dst = appendStr(dst, e.Action)
	dst = appendStr(dst, e.Key)
	dst = binary.BigEndian.AppendUint32(dst, e.Version)
	dst = appendStr(dst, e.Outcome)
	dst = appendStr(dst, e.Reason)
	return binary.BigEndian.AppendUint32(dst, uint32(e.Count))
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

// hashBody returns SHA-256(hashDomain ‖ body), body being an encoding
// without its trailing hash.
func hashBody(body []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(hashDomain))
	h.Write(body)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// entryHash recomputes the hash of an encoded entry from its bytes. v must
// have been accepted by decodeEntry.
func entryHash(v []byte) [32]byte { return hashBody(v[:len(v)-32]) }

// checkEntry returns why the decoded entry e (encoded as v) does not belong
// at seq, or "" if it does.
func checkEntry(v []byte, e *Entry, seq uint64) string {
	if e.Seq != seq {
		return fmt.Sprintf("entry stored under seq %d records seq %d", seq, e.Seq)
	}
	if entryHash(v) != e.Hash {
		return "hash mismatch: entry altered"
	}
	return ""
}

var errMalformed = errors.New("malformed record")

// decodeEntry is the one strict parser of encoded entries: it rejects an
// unknown version, out-of-range fields and trailing bytes, so that every
// accepted encoding re-encodes to the same bytes. It does not check the
// hash.
func decodeEntry(v []byte) (Entry, error) {
	d := decoder{b: v}
	var e Entry
	if d.u8() != formatV1 {
		return Entry{}, fmt.Errorf("%w: unknown format version", errMalformed)
	}
	d.bytes32(&e.Prev)
	e.Seq = d.u64()
	sec := int64(d.u64())
	nsec := d.u32()
	e.Principal = d.str()
	e.Action = d.str()
	e.Key = d.str()
	e.Version = d.u32()
	e.Outcome = d.str()
	e.Reason = d.str()
	count := d.u32()
	d.bytes32(&e.Hash)
	switch {
	case d.err != nil:
		return Entry{}, d.err
	case len(d.b) != 0:
		return Entry{}, fmt.Errorf("%w: %d trailing bytes", errMalformed, len(d.b))
	case nsec >= 1e9:
		return Entry{}, fmt.Errorf("%w: nanoseconds out of range", errMalformed)
	case count == 0 || count > math.MaxInt32:
		return Entry{}, fmt.Errorf("%w: count out of range", errMalformed)
	}
	e.Time = time.Unix(sec, int64(nsec)).UTC()
	e.Count = int(count)
	return e, nil
}

// encodeHead encodes the head record: version ‖ u64 seq ‖ [32]byte hash.
func encodeHead(seq uint64, hash [32]byte) []byte {
	b := make([]byte, 0, headLen)
	b = append(b, formatV1)
	b = binary.BigEndian.AppendUint64(b, seq)
	return append(b, hash[:]...)
}

// decodeHead is the strict parser of head records.
func decodeHead(v []byte) (seq uint64, hash [32]byte, err error) {
	if len(v) != headLen || v[0] != formatV1 {
		return 0, hash, fmt.Errorf("%w: bad head record", errMalformed)
	}
	copy(hash[:], v[9:])
	return binary.BigEndian.Uint64(v[1:9]), hash, nil
}

// decoder reads big-endian fields, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.err = fmt.Errorf("%w: truncated", errMalformed)
		d.b = nil
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) u8() byte {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if b := d.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if b := d.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (d *decoder) bytes32(dst *[32]byte) {
	if b := d.take(32); b != nil {
		copy(dst[:], b)
	}
}

func (d *decoder) str() string {
	n := d.u32()
	if d.err == nil && n > MaxFieldLen {
		d.err = fmt.Errorf("%w: field longer than %d bytes", errMalformed, MaxFieldLen)
		return ""
	}
	return string(d.take(int(n)))
}
