package audit

import (
	"bytes"
	"errors"
	"testing"
)

// realSegment returns a segment written by the log: n entries.
func realSegment(t testing.TB, n int) []byte {
	t.Helper()
	m := NewMemFS()
	l, err := Open(m, testKey, WithClock(stepClock()), WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, n)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := m.ReadFile(segName(1))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRecordRejects(t *testing.T) {
	t.Parallel()
	seg := realSegment(t, 1)
	rec := seg[segHeaderLen:]
	if _, n, err := parseRecord(rec, testKey); err != nil || n != len(rec) {
		t.Fatalf("parseRecord(real record) = %d, %v", n, err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		torn bool
	}{
		{"fail/empty", nil, true},
		{"fail/short-length", rec[:3], true},
		{"fail/short-body", rec[:len(rec)-1], true},
		{"fail/trailer-differs", append(bytes.Clone(rec[:len(rec)-1]), rec[len(rec)-1]^1), false},
		{"fail/tag-flipped", func() []byte { b := bytes.Clone(rec); b[len(b)-10] ^= 1; return b }(), false},
		{"fail/zero-length", make([]byte, 64), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseRecord(tc.b, testKey)
			if got := errors.Is(err, errTorn); got != tc.torn || err == nil {
				t.Fatalf("parseRecord() = %v, want an error (torn %v)", err, tc.torn)
			}
		})
	}
	if _, _, err := parseRecord(rec, otherKey); !errors.Is(err, errForged) {
		t.Fatalf("parseRecord under another key = %v, want errForged", err)
	}
}

// FuzzParseRecord checks that parseRecord never panics, and that what it
// accepts re-encodes to the same bytes (the format is not malleable).
func FuzzParseRecord(f *testing.F) {
	seg := realSegment(f, 3)
	f.Add(seg[segHeaderLen:])
	f.Add(seg[segHeaderLen : segHeaderLen+10])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, n, err := parseRecord(b, testKey)
		if err != nil {
			return
		}
		if re := appendRecord(nil, &e, testKey); !bytes.Equal(re, b[:n]) {
			t.Fatalf("parseRecord(%x) re-encodes to %x", b[:n], re)
		}
	})
}

// FuzzSegment opens a log whose only segment is the fuzzed bytes (seeded
// with a real one): Open, Verify, Tail and Append never panic, Open fails
// only for a read error, and a log that Open found sound verifies.
func FuzzSegment(f *testing.F) {
	seg := realSegment(f, 4)
	f.Add(seg)
	f.Add(seg[:len(seg)-5])
	f.Add(seg[:segHeaderLen])
	f.Fuzz(func(t *testing.T, b []byte) {
		m := NewMemFS()
		m.WriteFile(segName(1), b)
		l, err := Open(m, testKey, WithClock(stepClock()), WithLogger(quiet))
		if err != nil {
			t.Fatalf("Open() = %v; damage must be reported by Verify", err)
		}
		defer l.Close()
		_, verr := l.Verify()
		if verr != nil && !errors.Is(verr, ErrTampered) {
			t.Fatalf("Verify() = %v, want nil or ErrTampered", verr)
		}
		if (l.Damaged() == nil) != (verr == nil) {
			t.Fatalf("Open found damage %v but Verify says %v", l.Damaged(), verr)
		}
		_, _ = l.Tail(10)
		if l.Damaged() == nil {
			if _, err := l.Append(t.Context(), testEntry(1)); err != nil {
				t.Fatalf("Append on a sound log = %v", err)
			}
			if _, err := l.Verify(); err != nil {
				t.Fatalf("Verify() after Append = %v", err)
			}
		}
	})
}
