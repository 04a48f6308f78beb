package audit

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/keymesh/keymesh/kv"
)

// Segment files (see the package doc, "Storage layout").
const (
	// DefaultSegmentSize is the size at which a segment file is closed and
	// the next one started.
	DefaultSegmentSize = 64 << 20

	segMagic     = "KMAUDLG1"
	segHeaderLen = len(segMagic) + 8 // magic ‖ u64 first seq
	segSuffix    = ".seg"
	tmpSuffix    = ".tmp"

	// recOverhead is what a record adds to its entry: a length before it,
	// and the tag and the length again after it.
	recOverhead = 4 + kv.TagSize + 4
	// maxEntryLen is the longest encoded entry.
	maxEntryLen = fixedEntryLen + 5*MaxFieldLen
	// maxRecordLen is the longest record.
	maxRecordLen = maxEntryLen + recOverhead
)

// recordKeyPrefix names a record for its tag: "auditlog/" ‖ u64 seq. No
// record of a kv store has a key of this form, so a tag of one is never
// valid for the other.
const recordKeyPrefix = "auditlog/"

// segName is the file name of the segment whose first entry is first.
func segName(first uint64) string { return fmt.Sprintf("%020d%s", first, segSuffix) }

// parseSegName returns the first seq a segment file name names.
func parseSegName(name string) (uint64, bool) {
	num, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(num) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n == 0 {
		return 0, false
	}
	return n, true
}

func appendSegHeader(dst []byte, first uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, segMagic...), first)
}

// checkSegHeader checks a segment's header against the first seq its name
// gives.
func checkSegHeader(h []byte, first uint64) string {
	switch {
	case len(h) < segHeaderLen:
		return "segment header truncated"
	case string(h[:len(segMagic)]) != segMagic:
		return "segment header malformed"
	case binary.BigEndian.Uint64(h[len(segMagic):segHeaderLen]) != first:
		return "segment header names another first entry than its file name"
	}
	return ""
}

// recordTag is the tag of the entry encoding v stored as seq.
func recordTag(t kv.Tagger, seq uint64, v []byte) [kv.TagSize]byte {
	var key [len(recordKeyPrefix) + 8]byte
	copy(key[:], recordKeyPrefix)
	binary.BigEndian.PutUint64(key[len(recordKeyPrefix):], seq)
	return t.Tag(kv.DomainRecord, key[:], v)
}

// appendRecord appends e's record to dst: u32 n ‖ entry (n bytes) ‖ tag ‖
// u32 n. It computes e.Hash from e.Prev and the other fields first.
func appendRecord(dst []byte, e *Entry, t kv.Tagger) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = appendEntry(dst, e)
	v := dst[start+4:]
	binary.BigEndian.PutUint32(dst[start:], uint32(len(v)))
	tag := recordTag(t, e.Seq, v)
	dst = append(dst, tag[:]...)
	return binary.BigEndian.AppendUint32(dst, uint32(len(v)))
}

// errTorn is returned by parseRecord for bytes that end before the record
// they start is complete.
var errTorn = errors.New("record incomplete")

// parseRecord is the one strict parser of records: it parses the record at
// the start of b and returns its entry and length. A b too short for the
// record (or for its length) is errTorn; a record whose lengths, encoding,
// tag or hash do not check is an error wrapping errMalformed, as is a
// length out of range (a record announcing more than the longest entry is
// not incomplete, it is wrong). Every accepted record re-encodes to the
// same bytes.
func parseRecord(b []byte, t kv.Tagger) (Entry, int, error) {
	if len(b) < 4 {
		return Entry{}, 0, errTorn
	}
	n := int(binary.BigEndian.Uint32(b))
	if n < fixedEntryLen || n > maxEntryLen {
		return Entry{}, 0, fmt.Errorf("%w: record length %d out of range", errMalformed, n)
	}
	size := n + recOverhead
	if len(b) < size {
		return Entry{}, 0, errTorn
	}
	v := b[4 : 4+n]
	tag := b[4+n : 4+n+kv.TagSize]
	if trailer := binary.BigEndian.Uint32(b[size-4:]); int(trailer) != n {
		return Entry{}, 0, fmt.Errorf("%w: record lengths disagree", errMalformed)
	}
	// Authenticate first, parse after: the tag covers the seq stored at
	// its fixed place in the entry (after the version and Prev).
	want := recordTag(t, binary.BigEndian.Uint64(v[1+32:]), v)
	if subtle.ConstantTimeCompare(want[:], tag) != 1 {
		return Entry{}, 0, fmt.Errorf("%w: %w", errMalformed, errForged)
	}
	e, err := decodeEntry(v)
	if err != nil {
		return Entry{}, 0, err
	}
	if entryHash(v) != e.Hash {
		return Entry{}, 0, fmt.Errorf("%w: hash mismatch: entry altered", errMalformed)
	}
	return e, size, nil
}

// errForged marks a record whose tag does not verify: it was written
// without the vault's key (forged), or altered. A VerifyError for it also
// unwraps to kv.ErrTampered.
var errForged = errors.New("record tag does not authenticate: forged or altered without the master secret")

// chain checks that entries follow each other.
type chain struct {
	next uint64   // the seq the next entry must have
	prev [32]byte // the hash it must link to
	last Entry    // the last entry accepted
}

func (c *chain) add(e *Entry) *VerifyError {
	if e.Seq != c.next {
		return &VerifyError{Seq: c.next, Reason: fmt.Sprintf("entry missing or out of place: found seq %d where seq %d belongs", e.Seq, c.next)}
	}
	if e.Prev != c.prev {
		return &VerifyError{Seq: e.Seq, Reason: "prev does not match the previous entry's hash"}
	}
	c.next, c.prev, c.last = e.Seq+1, e.Hash, *e
	return nil
}

// recordError turns a parse error at seq into a VerifyError.
func recordError(seq uint64, err error) *VerifyError {
	return &VerifyError{Seq: seq, Reason: err.Error(), forged: errors.Is(err, errForged)}
}

// scanBuf is the read buffer of a segment scan: at least two of the
// longest records, so that one always fits after what is left of the last
// read.
const scanBuf = 256 << 10

// segScan reads the records of one segment file, from just after its
// header to limit, in bounded memory.
type segScan struct {
	f     File
	t     kv.Tagger
	off   int64 // file offset of buf[0]
	limit int64
	buf   []byte
	pos   int // next record in buf
	n     int // valid bytes in buf
	eof   bool
	rerr  error // a read error after some bytes were read: returned once they are used up
}

func newSegScan(f File, t kv.Tagger, limit int64, buf []byte) *segScan {
	return &segScan{f: f, t: t, off: int64(segHeaderLen), limit: limit, buf: buf}
}

// next returns the next record and its end offset. At the end of the
// segment it returns io.EOF; for an incomplete record at the end, errTorn
// with the record's start offset; for a record that does not parse, an
// error wrapping errMalformed; for a read error, that error.
func (s *segScan) next() (Entry, int64, error) {
	for range 3 { // at most two refills bring a whole record
		e, size, err := parseRecord(s.buf[s.pos:s.n], s.t)
		if err == nil {
			s.pos += size
			return e, s.off + int64(s.pos), nil
		}
		if !errors.Is(err, errTorn) {
			return Entry{}, s.start(), err
		}
		if s.eof {
			if s.pos == s.n {
				return Entry{}, s.start(), io.EOF
			}
			return Entry{}, s.start(), errTorn
		}
		if err := s.fill(); err != nil {
			return Entry{}, s.start(), err
		}
	}
	return Entry{}, s.start(), errors.New("audit: segment scan made no progress") // unreachable: buf holds two records
}

// start is the file offset of the next record.
func (s *segScan) start() int64 { return s.off + int64(s.pos) }

// fill keeps the unparsed bytes and reads more after them.
func (s *segScan) fill() error {
	if s.rerr != nil {
		return s.rerr
	}
	rest := copy(s.buf, s.buf[s.pos:s.n])
	s.off += int64(s.pos)
	s.pos, s.n = 0, rest
	want := min(int64(len(s.buf)-rest), s.limit-(s.off+int64(rest)))
	if want <= 0 {
		s.eof = true
		return nil
	}
	got, err := s.f.ReadAt(s.buf[rest:rest+int(want)], s.off+int64(rest))
	s.n += got
	switch {
	case errors.Is(err, io.EOF):
		s.eof = true
	case err != nil && got > 0:
		s.rerr = err
	case err != nil:
		return err
	case int64(got) == want && s.off+int64(s.n) >= s.limit:
		s.eof = true
	}
	return nil
}

// readRecordBefore reads the record that ends at end (found through its
// trailing length), not starting before lo.
func readRecordBefore(f File, t kv.Tagger, end, lo int64, buf []byte) (Entry, int64, error) {
	if end-lo < recOverhead {
		return Entry{}, 0, fmt.Errorf("%w: no whole record before offset %d", errMalformed, end)
	}
	var tr [4]byte
	if _, err := f.ReadAt(tr[:], end-4); err != nil {
		return Entry{}, 0, err
	}
	n := int64(binary.BigEndian.Uint32(tr[:]))
	if n < fixedEntryLen || n > maxEntryLen || end-lo < n+recOverhead {
		return Entry{}, 0, fmt.Errorf("%w: record length %d out of range", errMalformed, n)
	}
	start := end - n - recOverhead
	b := buf[:n+recOverhead]
	if _, err := f.ReadAt(b, start); err != nil {
		return Entry{}, 0, err
	}
	e, _, err := parseRecord(b, t)
	if errors.Is(err, errTorn) {
		err = fmt.Errorf("%w: record truncated", errMalformed)
	}
	return e, start, err
}

// soundRecordAtEnd reports whether a whole record — entry and tag, found
// through the trailing length and authenticated; its leading length is not
// looked at — ends at end, starting at or after lo.
func soundRecordAtEnd(f File, t kv.Tagger, end, lo int64, buf []byte) (Entry, bool) {
	if end-lo < recOverhead+fixedEntryLen {
		return Entry{}, false
	}
	var tr [4]byte
	if _, err := f.ReadAt(tr[:], end-4); err != nil {
		return Entry{}, false
	}
	n := int64(binary.BigEndian.Uint32(tr[:]))
	if n < fixedEntryLen || n > maxEntryLen || end-lo < n+recOverhead {
		return Entry{}, false
	}
	b := buf[:n+recOverhead]
	if _, err := f.ReadAt(b, end-n-recOverhead); err != nil {
		return Entry{}, false
	}
	binary.BigEndian.PutUint32(b, uint32(n)) // the leading length may be the damaged part
	e, _, err := parseRecord(b, t)
	return e, err == nil
}

// allZero reports whether f holds only zero bytes from off to size: what a
// file system can leave after a power loss where a write's size reached
// the disk but its data did not.
func allZero(f File, off, size int64, buf []byte) (bool, error) {
	for off < size { // bounded: off grows by at least one byte per round
		n := min(int64(len(buf)), size-off)
		got, err := f.ReadAt(buf[:n], off)
		if got == 0 && err != nil {
			return false, err
		}
		if !bytes.Equal(buf[:got], make([]byte, got)) {
			return false, nil
		}
		off += int64(got)
	}
	return true, nil
}
