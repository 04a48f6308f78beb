package audit

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/keymesh/keymesh/internal/tamper"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/kv/kvtest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var (
	testKey  = kvtest.HMACTagger(bytes.Repeat([]byte{7}, 32))
	otherKey = kvtest.HMACTagger(bytes.Repeat([]byte{8}, 32)) // an attacker's: not the vault's
)

// stepClock returns a clock that starts at a fixed instant and advances one
// millisecond per call.
func stepClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Millisecond)
		return t
	}
}

func tempFS(t testing.TB) FS {
	t.Helper()
	d, err := DirFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func openLog(t testing.TB, fsys FS, opts ...Option) *Log {
	t.Helper()
	l, err := Open(fsys, testKey, append([]Option{WithClock(stepClock()), WithLogger(quiet)}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func testEntry(i int) Entry {
	return Entry{
		Principal: "token:app",
		Action:    "decrypt",
		Key:       "trade/price",
		Version:   uint32(i%3 + 1),
		Outcome:   OutcomeAllow,
		Reason:    fmt.Sprintf("grant g%d", i),
		Count:     i%4 + 1,
	}
}

func appendN(t testing.TB, l *Log, n int) []Entry {
	t.Helper()
	out := make([]Entry, 0, n)
	for i := range n {
		e, err := l.Append(context.Background(), testEntry(i))
		if err != nil {
			t.Fatalf("Append #%d: %v", i, err)
		}
		out = append(out, e)
	}
	return out
}

func mustVerify(t testing.TB, l *Log, want uint64) Report {
	t.Helper()
	r, err := l.Verify()
	if err != nil {
		t.Fatalf("Verify() = %v, want nil", err)
	}
	if r.Entries != want {
		t.Fatalf("Verify().Entries = %d, want %d", r.Entries, want)
	}
	return r
}

// wantTampered checks that err is a *VerifyError at seq that unwraps to
// ErrTampered.
func wantTampered(t *testing.T, what string, err error, seq uint64) {
	t.Helper()
	var verr *VerifyError
	if !errors.As(err, &verr) || !errors.Is(err, ErrTampered) {
		t.Fatalf("%s = %v, want *VerifyError wrapping ErrTampered", what, err)
	}
	if verr.Seq != seq {
		t.Fatalf("%s = %v, want VerifyError.Seq %d", what, err, seq)
	}
}

func TestAppendChain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		fs   func(t *testing.T) FS
	}{
		{"mem", func(*testing.T) FS { return NewMemFS() }},
		{"dir", func(t *testing.T) FS { return tempFS(t) }},
		{"dir-buffered", func(t *testing.T) FS { return tempFS(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []Option
			if tc.name == "dir-buffered" {
				opts = append(opts, WithSyncInterval(time.Millisecond))
			}
			l := openLog(t, tc.fs(t), opts...)
			if r := mustVerify(t, l, 0); r.Head != ([32]byte{}) {
				t.Fatalf("empty log Verify().Head = %x, want zero", r.Head)
			}
			got := appendN(t, l, 10)
			var prev [32]byte
			var last time.Time
			for i, e := range got {
				want := testEntry(i)
				if e.Seq != uint64(i+1) || e.Prev != prev || e.Principal != want.Principal ||
					e.Reason != want.Reason || e.Count != want.Count || e.Version != want.Version {
					t.Fatalf("Append #%d = %+v, want seq %d chained to %x", i, e, i+1, prev)
				}
				if e.Time.Location() != time.UTC || e.Time.Before(last) || e.Time.IsZero() {
					t.Fatalf("Append #%d Time = %v, want UTC, not before %v", i, e.Time, last)
				}
				prev, last = e.Hash, e.Time
			}
			r := mustVerify(t, l, 10)
			seq, hash := l.Head()
			if seq != 10 || hash != prev || r.Head != prev {
				t.Fatalf("Head() = %d, %x; Verify().Head = %x; want 10, %x", seq, hash, r.Head, prev)
			}
			tail, err := l.Tail(10)
			if err != nil {
				t.Fatalf("Tail(10) = %v", err)
			}
			if !slices.Equal(tail, got) {
				t.Fatalf("Tail(10) = %+v, want the appended entries %+v", tail, got)
			}
		})
	}
}

// segFile returns the name and contents of the only (or last) segment.
func lastSeg(t *testing.T, m *MemFS) (string, []byte) {
	t.Helper()
	names, _ := m.List()
	var segs []string
	for _, n := range names {
		if _, ok := parseSegName(n); ok {
			segs = append(segs, n)
		}
	}
	if len(segs) == 0 {
		t.Fatal("no segment")
	}
	b, err := m.ReadFile(segs[len(segs)-1])
	if err != nil {
		t.Fatal(err)
	}
	return segs[len(segs)-1], b
}

// recordSpans returns the [start, end) offsets of every record of a
// segment, parsed with the trailing lengths as the log does.
func recordSpans(t *testing.T, seg []byte) [][2]int {
	t.Helper()
	var out [][2]int
	for off := segHeaderLen; off < len(seg); {
		n := int(binary.BigEndian.Uint32(seg[off:]))
		end := off + n + recOverhead
		out = append(out, [2]int{off, end})
		off = end
	}
	return out
}

// retag rewrites a record's tag and lengths for its (possibly edited)
// entry bytes v under key, as someone holding that key could.
func recordBytes(v []byte, seq uint64, key kv.Tagger) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(v)))
	b = append(b, v...)
	tag := recordTag(key, seq, v)
	b = append(b, tag[:]...)
	return binary.BigEndian.AppendUint32(b, uint32(len(v)))
}

func entryOf(t *testing.T, seg []byte, span [2]int) Entry {
	t.Helper()
	e, _, err := parseRecord(seg[span[0]:span[1]], testKey)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func splice(seg []byte, span [2]int, rec []byte) []byte {
	out := slices.Clone(seg[:span[0]])
	out = append(out, rec...)
	return append(out, seg[span[1]:]...)
}

// TestVerifyTamper changes the segment files as someone with write access
// to the disk but without the vault's key would, and as someone with the
// key would (altered-rehashed): Verify, and a fresh process, report each.
func TestVerifyTamper(t *testing.T) {
	t.Parallel()
	const n = 10
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, seg []byte) []byte
		seq    uint64
		forged bool // the error also wraps kv.ErrTampered
	}{
		{"fail/alter-field", func(t *testing.T, seg []byte) []byte {
			sp := recordSpans(t, seg)[4]
			e := entryOf(t, seg, sp)
			e.Outcome = OutcomeDeny // rewritten in place, keeping hash and tag
			v := append(appendBody(nil, &e), e.Hash[:]...)
			rec := slices.Clone(seg[sp[0]:sp[1]])
			copy(rec[4:], v)
			return splice(seg, sp, rec)
		}, 5, true},
		{"fail/alter-field-rehashed-retagged-without-key", func(t *testing.T, seg []byte) []byte {
			sp := recordSpans(t, seg)[4]
			e := entryOf(t, seg, sp)
			e.Principal = "token:mallory"
			return splice(seg, sp, recordBytes(appendEntry(nil, &e), e.Seq, otherKey))
		}, 5, true},
		{"fail/alter-field-rehashed-retagged-with-key", func(t *testing.T, seg []byte) []byte {
			sp := recordSpans(t, seg)[4]
			e := entryOf(t, seg, sp)
			e.Principal = "token:mallory" // a consistent entry 5; entry 6 no longer links to it
			return splice(seg, sp, recordBytes(appendEntry(nil, &e), e.Seq, testKey))
		}, 6, false},
		{"fail/delete-record", func(t *testing.T, seg []byte) []byte {
			return splice(seg, recordSpans(t, seg)[4], nil)
		}, 5, false},
		{"fail/swap", func(t *testing.T, seg []byte) []byte {
			sp := recordSpans(t, seg)
			r4, r5 := slices.Clone(seg[sp[3][0]:sp[3][1]]), slices.Clone(seg[sp[4][0]:sp[4][1]])
			out := slices.Clone(seg[:sp[3][0]])
			out = append(append(append(out, r5...), r4...), seg[sp[4][1]:]...)
			return out
		}, 4, false},
		{"fail/record-copied-to-another-seq", func(t *testing.T, seg []byte) []byte {
			sp := recordSpans(t, seg)
			return splice(seg, sp[6], seg[sp[2][0]:sp[2][1]]) // record 3 where record 7 was
		}, 7, false},
		{"fail/forged-record-appended", func(t *testing.T, seg []byte) []byte {
			sp := recordSpans(t, seg)
			last := entryOf(t, seg, sp[len(sp)-1])
			e := testEntry(99)
			e.Seq, e.Prev, e.Time = last.Seq+1, last.Hash, last.Time
			return append(slices.Clone(seg), recordBytes(appendEntry(nil, &e), e.Seq, otherKey)...)
		}, n + 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMemFS()
			l := openLog(t, m)
			appendN(t, l, n)
			mustVerify(t, l, n)
			name, seg := lastSeg(t, m)
			m.WriteFile(name, tc.tamper(t, seg))
			_, err := l.Verify()
			if tc.name != "fail/forged-record-appended" { // beyond what this process wrote: its Verify stops at its head
				wantTampered(t, "Verify()", err, tc.seq)
			}

			// A fresh process sees the same damage, and refuses to extend it.
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			before := snapshotFS(t, m)
			l2 := openLog(t, m)
			_, err = l2.Verify()
			wantTampered(t, "Verify() after reopen", err, tc.seq)
			if got := errors.Is(err, kv.ErrTampered); got != tc.forged {
				t.Fatalf("Verify() after reopen = %v: wraps kv.ErrTampered = %v, want %v", err, got, tc.forged)
			}
			_, err = l2.Append(context.Background(), testEntry(0))
			wantTampered(t, "Append on the damaged log", err, tc.seq)
			if after := snapshotFS(t, m); !mapsEqual(before, after) {
				t.Fatal("a damaged log was modified by Open or Append")
			}
		})
	}
}

// TestAuditFileForgedRecordRefused: a log written entirely without the
// vault's key — well chained, well formed — is refused: Open marks it
// damaged (appends refused), Verify and Tail report the forged record.
func TestAuditFileForgedRecordRefused(t *testing.T) {
	t.Parallel()
	m := NewMemFS()
	forger, err := Open(m, otherKey, WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, forger, 3)
	mustVerify(t, forger, 3) // a sound chain under the forger's key
	if err := forger.Close(); err != nil {
		t.Fatal(err)
	}
	l := openLog(t, m)
	_, err = l.Append(context.Background(), testEntry(1))
	wantTampered(t, "Append on a forged log", err, 1)
	if !errors.Is(err, kv.ErrTampered) {
		t.Fatalf("Append on a forged log = %v, want it to wrap kv.ErrTampered", err)
	}
	_, err = l.Verify()
	wantTampered(t, "Verify() of a forged log", err, 1)
	if _, err := l.Tail(3); !errors.Is(err, ErrTampered) {
		t.Fatalf("Tail(3) of a forged log = %v, want ErrTampered", err)
	}
}

// TestTruncatedMiddleSegment: a segment before the last cut short (at a
// record boundary, or inside a record) is damage, not a torn tail.
func TestTruncatedMiddleSegment(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cut  func(seg []byte, spans [][2]int) []byte
	}{
		{"fail/at-record-boundary", func(seg []byte, sp [][2]int) []byte { return seg[:sp[len(sp)-2][1]] }},
		{"fail/inside-a-record", func(seg []byte, sp [][2]int) []byte { return seg[:sp[len(sp)-1][0]+7] }},
		{"fail/emptied", func(seg []byte, _ [][2]int) []byte { return seg[:segHeaderLen] }},
		{"fail/removed", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMemFS()
			l := openLog(t, m, WithSegmentSize(4<<10))
			appendN(t, l, 120)
			mustVerify(t, l, 120)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			names, _ := m.List()
			if len(names) < 3 {
				t.Fatalf("%d segments, want at least 3", len(names))
			}
			mid := names[1]
			first, _ := parseSegName(names[2])
			if tc.cut == nil {
				if err := m.Remove(mid); err != nil {
					t.Fatal(err)
				}
			} else {
				b, _ := m.ReadFile(mid)
				m.WriteFile(mid, tc.cut(b, recordSpans(t, b)))
			}
			l2 := openLog(t, m)
			_, err := l2.Append(context.Background(), testEntry(0))
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("Append after a middle segment was cut = %v, want ErrTampered", err)
			}
			_, err = l2.Verify()
			var verr *VerifyError
			if !errors.As(err, &verr) || verr.Seq >= first {
				t.Fatalf("Verify() = %v, want a *VerifyError before seq %d", err, first)
			}
		})
	}
}

// TestTornTail: a final record cut short (a crash during its write) is
// dropped at Open with the chain intact, and appends continue from the
// entry before it.
func TestTornTail(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		tear func(seg []byte, last [2]int) []byte
	}{
		{"ok/inside-length", func(seg []byte, sp [2]int) []byte { return seg[:sp[0]+2] }},
		{"ok/inside-entry", func(seg []byte, sp [2]int) []byte { return seg[:sp[0]+40] }},
		{"ok/inside-tag", func(seg []byte, sp [2]int) []byte { return seg[:sp[1]-10] }},
		{"ok/zero-filled", func(seg []byte, sp [2]int) []byte {
			out := slices.Clone(seg[:sp[0]])
			return append(out, make([]byte, sp[1]-sp[0])...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMemFS()
			l := openLog(t, m)
			got := appendN(t, l, 6)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			name, seg := lastSeg(t, m)
			sp := recordSpans(t, seg)
			m.WriteFile(name, tc.tear(seg, sp[len(sp)-1]))
			var logged bytes.Buffer
			l2, err := Open(m, testKey, WithClock(stepClock()), WithLogger(slog.New(slog.NewTextHandler(&logged, nil))))
			if err != nil {
				t.Fatal(err)
			}
			defer l2.Close()
			if !strings.Contains(logged.String(), "torn final record") {
				t.Fatalf("Open with a torn tail logged %q, want a warning", logged.String())
			}
			if seq, hash := l2.Head(); seq != 5 || hash != got[4].Hash {
				t.Fatalf("Head() after a torn tail = %d, %x; want 5, %x", seq, hash, got[4].Hash)
			}
			e, err := l2.Append(context.Background(), testEntry(7))
			if err != nil || e.Seq != 6 || e.Prev != got[4].Hash {
				t.Fatalf("Append after a torn tail = seq %d prev %x, %v; want seq 6 chained to entry 5", e.Seq, e.Prev, err)
			}
			mustVerify(t, l2, 6)
		})
	}
}

// TestRollbackAtBatchBoundary: the files cut back to the end of a batch
// still verify — every remaining record is tag-valid — and a fresh process
// cannot tell. Only Head compared with a copy kept elsewhere shows it (see
// the package doc); a running process notices, since it remembers its head.
func TestRollbackAtBatchBoundary(t *testing.T) {
	t.Parallel()
	m := NewMemFS()
	l := openLog(t, m)
	appendN(t, l, 8)
	keptSeq, keptHash := l.Head() // the operator's copy, kept elsewhere
	name, seg := lastSeg(t, m)
	sp := recordSpans(t, seg)
	m.WriteFile(name, seg[:sp[4][1]]) // back to entry 5, a batch boundary (one entry per batch here)

	_, err := l.Verify()
	wantTampered(t, "Verify() in the process that wrote entry 8", err, 6)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l2 := openLog(t, m)
	mustVerify(t, l2, 5) // a fresh process: the rolled-back log verifies
	seq, hash := l2.Head()
	if seq == keptSeq || hash == keptHash {
		t.Fatalf("Head() after rollback = %d, %x: want it to differ from the kept copy %d, %x", seq, hash, keptSeq, keptHash)
	}
	if seq != 5 {
		t.Fatalf("Head() after rollback = %d, want 5", seq)
	}
}

// TestVerifyBitFlips flips bits of the segment (every bit under
// KEYMESH_EXHAUSTIVE=1, else a sample; see internal/tamper); Verify in the
// running process and a fresh Open must reject each, never with another
// error than a *VerifyError, never silently, never by panicking.
func TestVerifyBitFlips(t *testing.T) {
	t.Parallel()
	m := NewMemFS()
	l := openLog(t, m)
	appendN(t, l, 6)
	name, orig := lastSeg(t, m)
	for _, bit := range tamper.Bits(t, len(orig)) {
		m.WriteFile(name, tamper.Flip(orig, bit))
		_, err := l.Verify()
		var verr *VerifyError
		if !errors.As(err, &verr) {
			t.Fatalf("bit %d: Verify() = %v, want *VerifyError", bit, err)
		}
	}
	m.WriteFile(name, orig)
	mustVerify(t, l, 6)
}

// TestOpenDamaged: a log damaged in its last segment opens for inspection
// but refuses appends, and is never modified.
func TestOpenDamaged(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		tamper func(seg []byte, sp [][2]int) []byte
		seq    uint64
	}{
		{"fail/last-record-altered", func(seg []byte, sp [][2]int) []byte {
			out := slices.Clone(seg)
			out[sp[4][0]+50] ^= 1
			return out
		}, 5},
		{"fail/header-garbage", func(seg []byte, _ [][2]int) []byte {
			out := slices.Clone(seg)
			out[0] ^= 0x80
			return out
		}, 1},
		{"fail/header-first-seq-altered", func(seg []byte, _ [][2]int) []byte {
			out := slices.Clone(seg)
			out[segHeaderLen-1] ^= 2
			return out
		}, 1},
		{"fail/length-runs-past-the-end", func(seg []byte, sp [][2]int) []byte {
			// Not a torn record (that would drop entries 3 to 5 silently):
			// whole records follow it.
			out := slices.Clone(seg)
			n := binary.BigEndian.Uint32(out[sp[2][0]:])
			binary.BigEndian.PutUint32(out[sp[2][0]:], n+4096)
			return out
		}, 3},
		{"fail/length-out-of-range", func(seg []byte, sp [][2]int) []byte {
			out := slices.Clone(seg)
			binary.BigEndian.PutUint32(out[sp[2][0]:], 1<<30)
			return out
		}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMemFS()
			l := openLog(t, m)
			appendN(t, l, 5)
			l.Close()
			name, seg := lastSeg(t, m)
			m.WriteFile(name, tc.tamper(seg, recordSpans(t, seg)))
			before := snapshotFS(t, m)

			l2 := openLog(t, m)
			_, err := l2.Append(context.Background(), testEntry(0))
			wantTampered(t, "Append on a damaged log", err, tc.seq)
			if _, err := l2.Verify(); !errors.Is(err, ErrTampered) {
				t.Fatalf("Verify() = %v, want ErrTampered", err)
			}
			if err := l2.Close(); err != nil {
				t.Fatal(err)
			}
			if after := snapshotFS(t, m); !mapsEqual(before, after) {
				t.Fatalf("damaged log was modified by Open, Append or Close")
			}
		})
	}
}

func snapshotFS(t *testing.T, m *MemFS) map[string]string {
	t.Helper()
	out := map[string]string{}
	names, _ := m.List()
	for _, n := range names {
		b, err := m.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = string(b)
	}
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// TestAppendWriteFailure: writes that fail (after writing part of the
// batch) are not acknowledged, leave nothing in the file, and the chain
// continues from the last durable entry once writes work again.
func TestAppendWriteFailure(t *testing.T) {
	t.Parallel()
	for _, partial := range []int{0, 7, 1 << 20} { // nothing, a torn record, everything (the reply lost)
		t.Run(fmt.Sprintf("partial-%d", partial), func(t *testing.T) {
			m := NewMemFS()
			l := openLog(t, m)
			appendN(t, l, 3)
			seq0, hash0 := l.Head()
			name, seg0 := lastSeg(t, m)

			errDisk := errors.New("disk on fire")
			m.SetWriteFailure(errDisk, partial)
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Go(func() {
					_, err := l.Append(context.Background(), testEntry(i))
					if !errors.Is(err, ErrUnavailable) || !errors.Is(err, errDisk) {
						t.Errorf("Append with failing writes = %v, want ErrUnavailable wrapping the cause", err)
					}
				})
			}
			wg.Wait()
			if seq, hash := l.Head(); seq != seq0 || hash != hash0 {
				t.Fatalf("Head() after failed appends = %d, %x; want %d, %x", seq, hash, seq0, hash0)
			}
			if b, _ := m.ReadFile(name); !bytes.Equal(b, seg0) {
				t.Fatalf("a failed write left %d bytes in the segment (want them truncated back)", len(b)-len(seg0))
			}
			if tail, err := l.Tail(10); err != nil || len(tail) != 3 {
				t.Fatalf("Tail(10) after failed appends = %d entries, %v; want 3", len(tail), err)
			}

			m.SetWriteFailure(nil, 0)
			e, err := l.Append(context.Background(), testEntry(9))
			if err != nil {
				t.Fatalf("Append after recovery = %v", err)
			}
			if e.Seq != seq0+1 || e.Prev != hash0 {
				t.Fatalf("Append after recovery = seq %d prev %x, want seq %d prev %x", e.Seq, e.Prev, seq0+1, hash0)
			}
			mustVerify(t, l, 4)
			l.Close()
			mustVerify(t, openLog(t, m), 4)
		})
	}
}

// TestNoSpace: under the reserve, appends are refused with an error
// wrapping kv.ErrNoSpace and nothing is written; CheckSpace and
// RefusedWrites say so; appends work again once space is freed.
func TestNoSpace(t *testing.T) {
	t.Parallel()
	m := NewMemFS()
	l := openLog(t, m, WithReserve(10<<20), func(o *options) { o.spaceRecheck = 0 })
	appendN(t, l, 2)
	m.SetFree(1 << 20)
	if err := l.CheckSpace(); !errors.Is(err, kv.ErrNoSpace) {
		t.Fatalf("CheckSpace() under the reserve = %v, want kv.ErrNoSpace", err)
	}
	_, err := l.Append(context.Background(), testEntry(3))
	if !errors.Is(err, kv.ErrNoSpace) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Append under the reserve = %v, want ErrUnavailable and kv.ErrNoSpace", err)
	}
	if got := l.RefusedWrites(); got != 1 {
		t.Fatalf("RefusedWrites() = %d, want 1", got)
	}
	m.SetFree(1 << 30)
	if err := l.CheckSpace(); err != nil {
		t.Fatalf("CheckSpace() with space = %v", err)
	}
	if e, err := l.Append(context.Background(), testEntry(4)); err != nil || e.Seq != 3 {
		t.Fatalf("Append once space is freed = seq %d, %v; want 3", e.Seq, err)
	}
	mustVerify(t, l, 3)
}

// TestNoSpaceCachedCheck: a passed space check is trusted for a while
// (a statfs per write costs as much as the write), but never for more than
// an eighth of the reserve written.
func TestNoSpaceCachedCheck(t *testing.T) {
	t.Parallel()
	m := NewMemFS()
	l := openLog(t, m, WithReserve(8<<10), func(o *options) { o.spaceRecheck = time.Hour })
	appendN(t, l, 1)
	m.SetFree(1 << 10)
	var err error
	for i := range 100 { // an entry is ~120 bytes: well before 100 entries, 1 KiB is written
		if _, err = l.Append(context.Background(), testEntry(i)); err != nil {
			break
		}
	}
	if !errors.Is(err, kv.ErrNoSpace) {
		t.Fatalf("Append after an eighth of the reserve was written under the reserve = %v, want kv.ErrNoSpace", err)
	}
	if seq, _ := l.Head(); seq > 1+(8<<10)/8/100 {
		t.Fatalf("%d entries written after the disk filled, want at most ~10", seq-1)
	}
}

func TestReopenContinuesChain(t *testing.T) {
	t.Parallel()
	dir := tempFS(t)
	l := openLog(t, dir, WithSyncInterval(time.Millisecond))
	got := appendN(t, l, 5)
	if err := l.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	// A clock that went backwards: times must not decrease along the chain.
	l = openLog(t, dir, WithClock(func() time.Time { return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) }))
	if seq, hash := l.Head(); seq != 5 || hash != got[4].Hash {
		t.Fatalf("Head() after reopen = %d, %x; want 5, %x", seq, hash, got[4].Hash)
	}
	e, err := l.Append(context.Background(), testEntry(5))
	if err != nil {
		t.Fatalf("Append after reopen = %v", err)
	}
	if e.Seq != 6 || e.Prev != got[4].Hash {
		t.Fatalf("Append after reopen = seq %d prev %x, want 6, %x", e.Seq, e.Prev, got[4].Hash)
	}
	if !e.Time.Equal(got[4].Time) {
		t.Fatalf("Append with a clock behind the log: Time = %v, want %v", e.Time, got[4].Time)
	}
	mustVerify(t, l, 6)
}

// TestRotation: segments are started at the size limit, named by their
// first entry; Verify, Tail and a reopened log read across them.
func TestRotation(t *testing.T) {
	t.Parallel()
	dir := tempFS(t)
	l := openLog(t, dir, WithSegmentSize(4<<10))
	all := appendN(t, l, 200)
	names, err := dir.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 4 {
		t.Fatalf("%d segment files for 200 entries of 4 KiB segments, want several", len(names))
	}
	mustVerify(t, l, 200)
	tail, err := l.Tail(150)
	if err != nil || !slices.Equal(tail, all[50:]) {
		t.Fatalf("Tail(150) across segments = %d entries, %v; want the last 150", len(tail), err)
	}
	l.Close()
	l2 := openLog(t, dir, WithSegmentSize(4<<10))
	if seq, hash := l2.Head(); seq != 200 || hash != all[199].Hash {
		t.Fatalf("Head() after reopen = %d, want 200", seq)
	}
	appendN(t, l2, 30)
	mustVerify(t, l2, 230)
}

func TestConcurrentAppend(t *testing.T) {
	t.Parallel()
	l := openLog(t, tempFS(t), WithMaxBatch(16), WithSyncInterval(time.Millisecond), WithSegmentSize(16<<10))
	const workers, each = 32, 40
	var (
		mu   sync.Mutex
		seqs []uint64
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				e, err := l.Append(context.Background(), testEntry(w*each+i))
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				seqs = append(seqs, e.Seq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("sorted seqs[%d] = %d, want %d (not contiguous)", i, s, i+1)
		}
	}
	mustVerify(t, l, workers*each)
}

func TestTail(t *testing.T) {
	t.Parallel()
	l := openLog(t, NewMemFS())
	if tail, err := l.Tail(5); err != nil || len(tail) != 0 {
		t.Fatalf("Tail(5) on an empty log = %v, %v; want none", tail, err)
	}
	all := appendN(t, l, MaxTail+20)
	for _, tc := range []struct{ n, want int }{{0, 0}, {-1, 0}, {1, 1}, {5, 5}, {MaxTail, MaxTail}, {MaxTail + 5, MaxTail}, {1 << 30, MaxTail}} {
		tail, err := l.Tail(tc.n)
		if err != nil {
			t.Fatalf("Tail(%d) = %v", tc.n, err)
		}
		if want := all[len(all)-tc.want:]; !slices.Equal(tail, want) {
			t.Fatalf("Tail(%d) returned %d entries, want the last %d oldest first", tc.n, len(tail), tc.want)
		}
	}
}

func TestTailTampered(t *testing.T) {
	t.Parallel()
	m := NewMemFS()
	l := openLog(t, m)
	appendN(t, l, 5)
	name, seg := lastSeg(t, m)
	sp := recordSpans(t, seg)
	seg = slices.Clone(seg)
	seg[sp[3][1]-45] ^= 1 // inside entry 4's hash
	m.WriteFile(name, seg)
	_, err := l.Tail(3)
	wantTampered(t, "Tail(3)", err, 4)
}

// gateFS holds the next write in flight until released, and counts writes.
type gateFS struct {
	*MemFS
	mu     sync.Mutex
	hold   chan struct{} // if non-nil, the next write waits for it to close
	held   chan struct{} // closed when that write is waiting
	writes atomic.Int64
}

func (g *gateFS) arm() (release chan struct{}, held chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold, g.held = make(chan struct{}), make(chan struct{})
	return g.hold, g.held
}

func (g *gateFS) Open(name string) (File, error) {
	f, err := g.MemFS.Open(name)
	return &gateFile{File: f, g: g}, err
}

func (g *gateFS) Create(name string) (File, error) {
	f, err := g.MemFS.Create(name)
	return &gateFile{File: f, g: g}, err
}

type gateFile struct {
	File
	g *gateFS
}

func (f *gateFile) WriteAt(p []byte, off int64) (int, error) {
	if off >= int64(segHeaderLen) { // a batch, not a segment header
		f.g.writes.Add(1)
		f.g.mu.Lock()
		hold, held := f.g.hold, f.g.held
		f.g.hold = nil
		f.g.mu.Unlock()
		if hold != nil {
			close(held)
			<-hold
		}
	}
	return f.File.WriteAt(p, off)
}

// waitQueued waits until n appends are queued behind the write in flight.
func waitQueued(t *testing.T, l *Log, n int) {
	t.Helper()
	for range 10000 { // up to 10 s; the test does not depend on the timing, only waits
		l.mu.Lock()
		q := len(l.pending)
		l.mu.Unlock()
		if q >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("fewer than %d appends queued", n)
}

// syncGateFS holds the next fdatasync of a segment until released.
type syncGateFS struct {
	*MemFS
	mu   sync.Mutex
	hold chan struct{} // if non-nil, the next Sync waits for it to close
	held chan struct{} // closed when that Sync is waiting
}

func (g *syncGateFS) Open(name string) (File, error) {
	f, err := g.MemFS.Open(name)
	return &syncGateFile{File: f, g: g}, err
}

func (g *syncGateFS) Create(name string) (File, error) {
	f, err := g.MemFS.Create(name)
	return &syncGateFile{File: f, g: g}, err
}

type syncGateFile struct {
	File
	g *syncGateFS
}

func (f *syncGateFile) Sync() error {
	f.g.mu.Lock()
	hold, held := f.g.hold, f.g.held
	f.g.hold = nil
	f.g.mu.Unlock()
	if hold != nil {
		close(held)
		<-hold
	}
	return f.File.Sync()
}

// TestBackgroundSyncDoesNotHoldWrites: while the background fdatasync
// runs (it takes milliseconds on a disk), appends are written and
// acknowledged: the test releases the fdatasync only after an append
// returned, so a log whose writes waited for it would never finish.
func TestBackgroundSyncDoesNotHoldWrites(t *testing.T) {
	t.Parallel()
	g := &syncGateFS{MemFS: NewMemFS()}
	l := openLog(t, g, WithSyncInterval(time.Millisecond))
	g.mu.Lock()
	g.hold, g.held = make(chan struct{}), make(chan struct{})
	release, held := g.hold, g.held
	g.mu.Unlock()
	appendN(t, l, 1) // dirty: the syncer syncs within a tick
	<-held
	appendN(t, l, 3) // written while the fdatasync is in flight
	close(release)
	mustVerify(t, l, 4)
}

func TestClose(t *testing.T) {
	t.Parallel()
	l := openLog(t, NewMemFS())
	var (
		wg sync.WaitGroup
		ok atomic.Uint64
	)
	for i := range 50 {
		wg.Go(func() {
			_, err := l.Append(context.Background(), testEntry(i))
			switch {
			case err == nil:
				ok.Add(1)
			case !errors.Is(err, ErrClosed):
				t.Errorf("Append racing Close = %v, want nil or ErrClosed", err)
			}
		})
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatalf("second Close() = %v", err)
	}
	if _, err := l.Append(context.Background(), testEntry(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	mustVerify(t, l, ok.Load())
}

// TestCloseWaitsForQueued: Close lets the appends queued behind a write in
// flight be written before it returns.
func TestCloseWaitsForQueued(t *testing.T) {
	t.Parallel()
	g := &gateFS{MemFS: NewMemFS()}
	l := openLog(t, g)
	release, held := g.arm()
	errs := make(chan error, 4)
	go func() { _, err := l.Append(context.Background(), testEntry(0)); errs <- err }()
	<-held
	for i := range 3 {
		go func() { _, err := l.Append(context.Background(), testEntry(i)); errs <- err }()
	}
	waitQueued(t, l, 3)
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	close(release)
	if err := <-closed; err != nil {
		t.Fatalf("Close() = %v", err)
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("Append queued before Close = %v, want nil", err)
		}
	}
	mustVerify(t, l, 4)
}

func TestContextCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g := &gateFS{MemFS: NewMemFS()}
	l := openLog(t, g)
	if _, err := l.Append(ctx, testEntry(0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append(cancelled ctx) = %v, want context.Canceled", err)
	}

	// Cancel an append while it waits behind a write in flight: it returns
	// at once, is not written, and the chain stays intact.
	release, held := g.arm()
	first := make(chan error, 1)
	go func() { _, err := l.Append(context.Background(), testEntry(1)); first <- err }()
	<-held
	ctx, cancel = context.WithCancel(context.Background())
	queued := make(chan error, 1)
	go func() { _, err := l.Append(ctx, testEntry(2)); queued <- err }()
	waitQueued(t, l, 1)
	cancel()
	if err := <-queued; !errors.Is(err, context.Canceled) {
		t.Fatalf("Append cancelled while queued = %v, want context.Canceled", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("held Append = %v", err)
	}
	e, err := l.Append(context.Background(), testEntry(3))
	if err != nil || e.Seq != 2 {
		t.Fatalf("Append after a cancelled one = seq %d, %v; want seq 2", e.Seq, err)
	}
	mustVerify(t, l, 2)
}

// TestContextCancelHandedBaton: an append whose ctx ends once it has been
// handed the next batch still writes that batch for the others (its own
// entry is skipped), so no append behind it is stranded.
func TestContextCancelHandedBaton(t *testing.T) {
	t.Parallel()
	g := &gateFS{MemFS: NewMemFS()}
	l := openLog(t, g)
	release, held := g.arm()
	first := make(chan error, 1)
	go func() { _, err := l.Append(context.Background(), testEntry(0)); first <- err }()
	<-held
	ctx, cancel := context.WithCancel(context.Background())
	mine := make(chan error, 1)
	go func() { _, err := l.Append(ctx, testEntry(1)); mine <- err }()
	waitQueued(t, l, 1) // this one is next: it will be handed the baton
	others := make(chan error, 3)
	for i := range 3 {
		go func() { _, err := l.Append(context.Background(), testEntry(2+i)); others <- err }()
	}
	waitQueued(t, l, 4)
	l.mu.Lock()
	cancel() // ends before its batch is formed (the baton is handed under mu, after the held write)
	l.mu.Unlock()
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("held Append = %v", err)
	}
	if err := <-mine; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Append = %v, want context.Canceled", err)
	}
	for range 3 {
		if err := <-others; err != nil {
			t.Fatalf("Append behind a cancelled one = %v", err)
		}
	}
	mustVerify(t, l, 4)
}

func TestAppendValidate(t *testing.T) {
	t.Parallel()
	long := string(make([]byte, MaxFieldLen+1))
	for _, tc := range []struct {
		name string
		edit func(*Entry)
		ok   bool
	}{
		{"ok/count-zero-stored-as-one", func(e *Entry) { e.Count = 0 }, true},
		{"ok/empty-principal", func(e *Entry) { e.Principal = "" }, true},
		{"ok/caller-seq-ignored", func(e *Entry) { e.Seq, e.Hash = 99, [32]byte{1} }, true},
		{"fail/no-action", func(e *Entry) { e.Action = "" }, false},
		{"fail/unknown-outcome", func(e *Entry) { e.Outcome = "maybe" }, false},
		{"fail/negative-count", func(e *Entry) { e.Count = -1 }, false},
		{"ok/long-reason-cut", func(e *Entry) { e.Reason = strings.Repeat("é", MaxFieldLen) }, true},
		{"fail/long-principal", func(e *Entry) { e.Principal = long }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openLog(t, NewMemFS())
			e := testEntry(0)
			tc.edit(&e)
			got, err := l.Append(context.Background(), e)
			if tc.ok != (err == nil) {
				t.Fatalf("Append() = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (got.Seq != 1 || got.Count < 1 || len(got.Reason) > MaxFieldLen || !utf8.ValidString(got.Reason)) {
				t.Fatalf("Append() = %+v, want seq 1, count >= 1", got)
			}
			if !tc.ok {
				mustVerify(t, l, 0)
			}
		})
	}
}

// TestLongestEntries: entries with every field at its longest fit the
// record format and read back.
func TestLongestEntries(t *testing.T) {
	t.Parallel()
	l := openLog(t, NewMemFS(), WithSegmentSize(4<<10))
	f := strings.Repeat("x", MaxFieldLen)
	for range 5 {
		if _, err := l.Append(context.Background(), Entry{Principal: f, Action: f, Key: f, Outcome: OutcomeOK, Reason: f}); err != nil {
			t.Fatal(err)
		}
	}
	mustVerify(t, l, 5)
	if tail, err := l.Tail(5); err != nil || len(tail) != 5 || tail[4].Key != f {
		t.Fatalf("Tail(5) of the longest entries = %d, %v", len(tail), err)
	}
}

func TestMaxBatch(t *testing.T) {
	t.Parallel()
	if _, err := Open(NewMemFS(), testKey, WithMaxBatch(0)); err == nil {
		t.Fatalf("Open(WithMaxBatch(0)) = nil error, want error")
	}
	if _, err := Open(NewMemFS(), testKey, WithMaxBatch(MaxBatchLimit+1)); err == nil {
		t.Fatalf("Open(WithMaxBatch(%d)) = nil error, want error", MaxBatchLimit+1)
	}
	if _, err := Open(NewMemFS(), nil); err == nil {
		t.Fatalf("Open without a tagger = nil error, want error")
	}
	g := &gateFS{MemFS: NewMemFS()}
	l := openLog(t, g, WithMaxBatch(3))
	release, held := g.arm()
	var wg sync.WaitGroup
	wg.Go(func() { l.Append(context.Background(), testEntry(0)) })
	<-held
	for i := range 9 {
		wg.Go(func() { l.Append(context.Background(), testEntry(i)) })
	}
	waitQueued(t, l, 9)
	close(release)
	wg.Wait()
	if got := g.writes.Load(); got != 4 {
		t.Fatalf("10 appends with max batch 3, 9 of them queued together, took %d writes, want 4 (1 + 3 batches of 3)", got)
	}
	mustVerify(t, l, 10)
}

// TestLoneAppendWritesItself: an append that finds no write in flight
// writes its own entry, on its own goroutine: one write per lone append.
func TestLoneAppendWritesItself(t *testing.T) {
	t.Parallel()
	g := &gateFS{MemFS: NewMemFS()}
	l := openLog(t, g)
	appendN(t, l, 5)
	if got := g.writes.Load(); got != 5 {
		t.Fatalf("5 sequential appends took %d writes, want 5", got)
	}
	l.mu.Lock()
	committing, pending := l.committing, len(l.pending)
	l.mu.Unlock()
	if committing || pending != 0 {
		t.Fatalf("after the appends returned: committing %v, %d pending; want the baton put down", committing, pending)
	}
}

// BenchmarkAppendParallel measures group commit: 64 concurrent appenders on
// a directory, fdatasynced in the background as keymeshd runs it.
func BenchmarkAppendParallel(b *testing.B) {
	l := openLog(b, tempFS(b), WithSyncInterval(5*time.Millisecond))
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((64 + procs - 1) / procs)
	start, _ := l.Head()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		e := testEntry(1)
		for pb.Next() {
			if _, err := l.Append(context.Background(), e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	end, _ := l.Head()
	b.ReportMetric(float64(end-start)/b.Elapsed().Seconds(), "appends/s")
}

// BenchmarkAppendSerial measures one append with no concurrency, written
// (not fdatasynced) before it returns.
func BenchmarkAppendSerial(b *testing.B) {
	l := openLog(b, tempFS(b), WithSyncInterval(5*time.Millisecond))
	e := testEntry(1)
	b.ResetTimer()
	for b.Loop() {
		if _, err := l.Append(context.Background(), e); err != nil {
			b.Fatal(err)
		}
	}
}

// TestConcurrentAppendAnswers: with requests recycled between appends, and
// some appends giving up (their ctx ends) while queued or being written,
// every append that succeeds gets its own entry back, and the log holds at
// least the entries acknowledged.
func TestConcurrentAppendAnswers(t *testing.T) {
	t.Parallel()
	l := openLog(t, NewMemFS(), WithMaxBatch(8))
	const workers, each = 16, 60
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		acks int
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				want := testEntry(w*each + i)
				want.Principal = fmt.Sprintf("token:w%d-%d", w, i)
				ctx, cancel := context.WithCancel(context.Background())
				if i%7 == 3 {
					cancel() // some give up at once
				}
				if i%5 == 1 {
					go cancel() // some while queued, handed the baton or written
				}
				got, err := l.Append(ctx, want)
				cancel()
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						t.Errorf("Append: %v", err)
					}
					continue
				}
				if got.Principal != want.Principal || got.Seq == 0 {
					t.Errorf("Append(%q) = entry %d of %q; want its own entry", want.Principal, got.Seq, got.Principal)
				}
				mu.Lock()
				acks++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r, err := l.Verify()
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if r.Entries < uint64(acks) {
		t.Fatalf("log holds %d entries; %d appends were acknowledged", r.Entries, acks)
	}
}
