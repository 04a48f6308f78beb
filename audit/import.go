package audit

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/keymesh/keymesh/kv"
)

// Storage keys of the log an older keymesh kept in a kv.Store (read by
// Import only).
const (
	entryPrefix = "audit/e/"
	headKey     = "audit/head"
)

// importBatch is how many entries Import writes at a time.
const importBatch = 512

// Import copies the log an older keymesh kept in a kv.Store — entries
// under "audit/e/" ‖ u64 seq, the head record under "audit/head", as src
// returns them (the caller passes the store as the vault authenticates
// it, so that every record's tag is checked) — into fsys, which must hold
// no entry, and returns the report of what it copied. Entries keep their
// Seq, Time, Prev and Hash.
//
// Import checks what it copies as Verify did on the old store: entries
// numbered 1…n without gaps, each stored under its own seq, its hash and
// link sound, and the head record naming the last. A log that does not
// verify is refused with an error wrapping [ErrTampered] (a
// [*VerifyError]); a record whose tag does not verify fails src's read
// with an error wrapping [kv.ErrTampered]. Nothing is acknowledged until
// Import returns nil: the segments are fdatasynced (and the directory
// synced) by then, and a failed Import leaves fsys to be discarded.
func Import(fsys FS, tagger kv.Tagger, src kv.Reader, opts ...Option) (Report, error) {
	l, err := Open(fsys, tagger, opts...)
	if err != nil {
		return Report{}, fmt.Errorf("audit: import: %w", err)
	}
	l.opts.syncInterval = -1 // fdatasync at rotation and Close: Import is acknowledged as a whole
	rep, err := l.importFrom(src)
	if cerr := l.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("audit: import: %w", cerr)
	}
	if err != nil {
		return Report{}, err
	}
	return rep, nil
}

func (l *Log) importFrom(src kv.Reader) (Report, error) {
	if l.damaged != nil || l.headSeq != 0 {
		return Report{}, errors.New("audit: import: the target directory already holds a log")
	}
	var (
		c        = chain{next: 1}
		batch    = make([]Entry, 0, importBatch)
		headSeen bool
		headSeq  uint64
		headHash [32]byte
		headErr  error
	)
	fail := func(seq uint64, format string, args ...any) error {
		return &VerifyError{Seq: seq, Reason: fmt.Sprintf(format, args...)}
	}
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		want := batch[len(batch)-1].Hash
		if err := l.write(batch); err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if l.headHash != want {
			return fmt.Errorf("internal error: entry %d re-encoded to another hash", l.headSeq) // decodeEntry is strict: unreachable
		}
		batch = batch[:0]
		return nil
	}
	err := src.Scan([]byte("audit/"), func(k, v []byte) error {
		switch {
		case bytes.HasPrefix(k, []byte(entryPrefix)):
			if len(k) != len(entryPrefix)+8 {
				return fail(c.next, "malformed entry key %q", k)
			}
			seq := beUint64(k[len(entryPrefix):])
			if seq != c.next {
				return fail(c.next, "entry missing (next stored entry is %d)", seq)
			}
			e, err := decodeEntry(v)
			if err != nil {
				return fail(seq, "%v", err)
			}
			if reason := checkEntry(v, &e, seq); reason != "" {
				return fail(seq, "%s", reason)
			}
			if verr := c.add(&e); verr != nil {
				return verr
			}
			batch = append(batch, e)
			if len(batch) == importBatch {
				return flush()
			}
		case string(k) == headKey:
			headSeen = true
			headSeq, headHash, headErr = decodeHead(v)
		}
		return nil
	})
	var verr *VerifyError
	switch {
	case errors.As(err, &verr):
		return Report{}, fmt.Errorf("audit: import: the old log does not verify: %w", verr)
	case err != nil:
		return Report{}, fmt.Errorf("audit: import: %w", err)
	}
	n := c.next - 1
	switch {
	case !headSeen && n > 0:
		err = fail(n, "head record missing")
	case headErr != nil:
		err = fail(n, "%v", headErr)
	case headSeen && headSeq != n:
		err = fail(min(headSeq, n)+1, "the head record names seq %d but the log ends at seq %d", headSeq, n)
	case headSeen && headHash != c.prev:
		err = fail(n, "head record hash does not match the last entry")
	}
	if err != nil {
		return Report{}, fmt.Errorf("audit: import: the old log does not verify: %w", err)
	}
	if err := flush(); err != nil {
		return Report{}, fmt.Errorf("audit: import: %w", err)
	}
	return Report{Entries: n, Head: c.prev}, nil
}
