package audit

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/keymesh/keymesh/internal/tamper"
	"github.com/keymesh/keymesh/kv"
)

// TestVerify_EveryFlippedByteIsReportedNotAnError flips every bit of
// sampled bytes (every byte under KEYMESH_EXHAUSTIVE=1; see
// internal/tamper) of a small log's segment, one at a time, and reopens
// the log on the damaged files: Open must not fail, Verify must report the
// damage as a *VerifyError (the API's "ok": false with the first bad
// entry) — never another error, never a pass, never a panic — and Append
// must refuse. A flip inside a record's length that makes it reach past
// the end of the file is damage too, not a torn record: a whole,
// authenticated record still ends the file.
func TestVerify_EveryFlippedByteIsReportedNotAnError(t *testing.T) {
	t.Parallel()
	base := NewMemFS()
	l := openLog(t, base)
	appendN(t, l, 4)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	name, seg := lastSeg(t, base)
	trials := 0
	for _, i := range tamper.Bytes(t, len(seg)) {
		for bit := range 8 {
			m := NewMemFS()
			b := bytes.Clone(seg)
			b[i] ^= 1 << bit
			m.WriteFile(name, b)
			trials++
			l, err := Open(m, testKey, WithClock(stepClock()), WithLogger(quiet))
			if err != nil {
				t.Fatalf("Open with bit %d of byte %d flipped = %v; want the damage reported by Verify", bit, i, err)
			}
			_, err = l.Verify()
			var ve *VerifyError
			switch {
			case err == nil:
				t.Fatalf("Verify with bit %d of byte %d flipped = nil; want a *VerifyError", bit, i)
			case !errors.As(err, &ve):
				t.Fatalf("Verify with bit %d of byte %d flipped = %v, want a *VerifyError", bit, i, err)
			default:
				if _, err := l.Append(context.Background(), testEntry(0)); !errors.Is(err, ErrTampered) {
					t.Fatalf("Append with bit %d of byte %d flipped = %v, want ErrTampered", bit, i, err)
				}
			}
			l.Close()
		}
	}
	if trials < 100 {
		t.Fatalf("only %d trials", trials)
	}
}

// TestVerify_ReadErrorIsReported: a file that fails while Verify reads it
// (a disk error) is reported as damage at the next entry, not as an error
// the API would answer with a 5xx.
func TestVerify_ReadErrorIsReported(t *testing.T) {
	t.Parallel()
	m := NewMemFS()
	appendN(t, openLog(t, m), 3)
	_, seg := lastSeg(t, m)
	spans := recordSpans(t, seg)
	l := openLog(t, &failingRead{MemFS: m, after: int64(spans[2][0]), err: errors.New("EIO")})
	_, err := l.Verify()
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Seq != 3 {
		t.Fatalf("Verify over a file failing after 2 entries = %v, want a *VerifyError at seq 3", err)
	}
}

// failingRead fails reads at or beyond an offset once the log is open.
type failingRead struct {
	*MemFS
	after int64
	err   error
	armed bool
}

func (f *failingRead) Open(name string) (File, error) {
	file, err := f.MemFS.Open(name)
	if err != nil {
		return nil, err
	}
	if !f.armed {
		f.armed = true // the first opening is Open's own, which must succeed
		return file, nil
	}
	return &failingFile{File: file, after: f.after, err: f.err}, nil
}

type failingFile struct {
	File
	after int64
	err   error
}

func (f *failingFile) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.after && off >= int64(segHeaderLen) {
		n, _ := f.File.ReadAt(p[:max(0, f.after-off)], off)
		return n, f.err
	}
	return f.File.ReadAt(p, off)
}

var _ kv.Tagger = testKey
