package audit

import (
	"errors"
	"fmt"
	"io"
)

// Verify streams every segment and checks that the first starts at seq 1
// and each the entry after the last of the one before, that every record
// parses strictly and its tag verifies, that entries are numbered 1…n
// without gaps, that each entry's hash matches its contents and links to
// the previous entry, and that the log still contains the head this Log
// wrote (which catches files cut back underneath a running process).
//
// If the log verifies, Verify returns its size and head. If it does not,
// or a file cannot be read to the end, the error is a [*VerifyError]
// (wrapping [ErrTampered]) naming the first sequence number that is wrong
// or unreadable. Verify runs concurrently with Append, in memory bounded
// by one read buffer whatever the log's length, and checks the log up to
// the head at the moment it starts.
func (l *Log) Verify() (Report, error) { return l.VerifyProgress(nil) }

// ProgressEvery is how many entries VerifyProgress checks between two
// calls of its progress function.
const ProgressEvery = 1 << 16

// VerifyProgress is [Log.Verify] calling progress (when not nil) with the
// number of entries checked so far every [ProgressEvery] entries, from the
// scanning goroutine: a long verification can report how far it got.
func (l *Log) VerifyProgress(progress func(checked uint64)) (Report, error) {
	v := l.snapshot() // durable before the scan starts, so the scan must contain it
	c := chain{next: 1}
	buf := make([]byte, scanBuf)
	for i, seg := range v.segs {
		last := i == len(v.segs)-1
		if err := l.verifySegment(seg, last, v.end, &c, buf, progress); err != nil {
			return Report{}, fmt.Errorf("audit: verify: %w", err)
		}
	}
	n := c.next - 1
	var err error
	switch {
	case v.seq > n:
		err = &VerifyError{Seq: n + 1, Reason: fmt.Sprintf("entry missing: log ends at seq %d but this process wrote up to %d", n, v.seq)}
	case l.damaged == nil && n == v.seq && c.prev != v.hash:
		err = &VerifyError{Seq: n, Reason: "entry differs from the one this process wrote"}
	case l.damaged != nil:
		err = l.damaged // found at Open and not seen again: report it all the same
	}
	if err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	return Report{Entries: n, Head: c.prev}, nil
}

// verifySegment checks one segment's header and records, continuing c.
// For the last segment, only up to end (what this process committed, or
// the size it found at Open) is read.
func (l *Log) verifySegment(seg segment, last bool, end int64, c *chain, buf []byte, progress func(uint64)) error {
	unreadable := func(err error) error {
		return &VerifyError{Seq: c.next, Reason: fmt.Sprintf("the log cannot be read from here: %v", err)}
	}
	if seg.first != c.next {
		if seg.first > c.next {
			return &VerifyError{Seq: c.next, Reason: fmt.Sprintf("entry missing: segment %s starts at seq %d", seg.name, seg.first)}
		}
		return &VerifyError{Seq: seg.first, Reason: fmt.Sprintf("segment %s starts at seq %d, inside the segment before it", seg.name, seg.first)}
	}
	f, err := l.fs.Open(seg.name)
	if err != nil {
		if isNotExist(err) {
			return &VerifyError{Seq: c.next, Reason: fmt.Sprintf("segment %s missing", seg.name)}
		}
		return unreadable(err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return unreadable(err)
	}
	if last {
		if size < end {
			// Cut back underneath this process: what is there is checked,
			// and VerifyProgress reports the entries that are gone.
			end = size
		}
	} else {
		end = size
	}
	hdr := make([]byte, segHeaderLen)
	if n, _ := f.ReadAt(hdr, 0); n < segHeaderLen {
		return &VerifyError{Seq: seg.first, Reason: "segment header truncated"}
	}
	if reason := checkSegHeader(hdr, seg.first); reason != "" {
		return &VerifyError{Seq: seg.first, Reason: reason}
	}
	if !last && end == int64(segHeaderLen) {
		return &VerifyError{Seq: seg.first, Reason: "a segment before the last is empty: its entries are missing"}
	}
	s := newSegScan(f, l.tagger, end, buf)
	for { // bounded: every round consumes a record or ends
		e, _, err := s.next()
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, errTorn):
			if last {
				return nil // only a log cut back mid-record: reported by the caller
			}
			return &VerifyError{Seq: c.next, Reason: fmt.Sprintf("segment %s is truncated inside a record", seg.name)}
		case errors.Is(err, errMalformed):
			return recordError(c.next, err)
		default:
			return unreadable(err)
		}
		if verr := c.add(&e); verr != nil {
			return verr
		}
		if progress != nil && e.Seq%ProgressEvery == 0 {
			progress(e.Seq)
		}
	}
}
