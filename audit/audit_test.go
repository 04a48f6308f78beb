package audit

import (
	"context"
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
	"github.com/keymesh/keymesh/kv/badgerstore"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

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

func openBadger(t testing.TB, dir string) *badgerstore.DB {
	t.Helper()
	db, err := badgerstore.Open(dir, nil)
	if err != nil {
		t.Fatalf("badgerstore.Open: %v", err)
	}
	return db
}

func openLog(t testing.TB, store kv.Store, opts ...Option) *Log {
	t.Helper()
	l, err := Open(store, append([]Option{WithClock(stepClock()), WithLogger(quiet)}, opts...)...)
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

func TestAppendChain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) kv.Store
	}{
		{"mem", func(*testing.T) kv.Store { return kv.NewMem() }},
		{"badger", func(t *testing.T) kv.Store {
			db := openBadger(t, t.TempDir())
			t.Cleanup(func() { db.Close() })
			return db
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openLog(t, tc.store(t))
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

// rawUpdate writes directly to the store, as an attacker with disk access
// would.
func rawUpdate(t *testing.T, s kv.Store, fn func(kv.Txn) error) {
	t.Helper()
	if err := s.Update(fn); err != nil {
		t.Fatalf("raw store update: %v", err)
	}
}

func rawGet(t *testing.T, s kv.Reader, key []byte) []byte {
	t.Helper()
	v, err := s.Get(key)
	if err != nil {
		t.Fatalf("raw Get(%q): %v", key, err)
	}
	return v
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

func TestVerifyTamper(t *testing.T) {
	t.Parallel()
	const n = 10
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, s kv.Store)
		seq    uint64
	}{
		{"fail/alter-field", func(t *testing.T, s kv.Store) {
			v := rawGet(t, s, entryKey(5))
			e, err := decodeEntry(v)
			if err != nil {
				t.Fatal(err)
			}
			// Rewrite the outcome in place, keeping the stored hash.
			e.Outcome = OutcomeDeny
			nv := appendBody(nil, &e)
			nv = append(nv, e.Hash[:]...)
			rawUpdate(t, s, func(txn kv.Txn) error { return txn.Set(entryKey(5), nv) })
		}, 5},
		{"fail/alter-field-rehashed", func(t *testing.T, s kv.Store) {
			e, err := decodeEntry(rawGet(t, s, entryKey(5)))
			if err != nil {
				t.Fatal(err)
			}
			e.Principal = "token:mallory"
			nv := appendEntry(nil, &e) // a consistent entry 5; entry 6 no longer links to it
			rawUpdate(t, s, func(txn kv.Txn) error { return txn.Set(entryKey(5), nv) })
		}, 6},
		{"fail/delete", func(t *testing.T, s kv.Store) {
			rawUpdate(t, s, func(txn kv.Txn) error { return txn.Delete(entryKey(5)) })
		}, 5},
		{"fail/swap", func(t *testing.T, s kv.Store) {
			v4, v5 := rawGet(t, s, entryKey(4)), rawGet(t, s, entryKey(5))
			rawUpdate(t, s, func(txn kv.Txn) error {
				if err := txn.Set(entryKey(4), v5); err != nil {
					return err
				}
				return txn.Set(entryKey(5), v4)
			})
		}, 4},
		{"fail/delete-last", func(t *testing.T, s kv.Store) {
			rawUpdate(t, s, func(txn kv.Txn) error { return txn.Delete(entryKey(n)) })
		}, n},
		{"fail/alter-head-hash", func(t *testing.T, s kv.Store) {
			v := rawGet(t, s, []byte(headKey))
			v[len(v)-1] ^= 1
			rawUpdate(t, s, func(txn kv.Txn) error { return txn.Set([]byte(headKey), v) })
		}, n},
		{"fail/head-rolled-back", func(t *testing.T, s kv.Store) {
			e, err := decodeEntry(rawGet(t, s, entryKey(7)))
			if err != nil {
				t.Fatal(err)
			}
			rawUpdate(t, s, func(txn kv.Txn) error { return txn.Set([]byte(headKey), encodeHead(7, e.Hash)) })
		}, 8},
		{"fail/head-deleted", func(t *testing.T, s kv.Store) {
			rawUpdate(t, s, func(txn kv.Txn) error { return txn.Delete([]byte(headKey)) })
		}, n},
		{"fail/insert-beyond-head", func(t *testing.T, s kv.Store) {
			seq, hash, err := decodeHead(rawGet(t, s, []byte(headKey)))
			if err != nil {
				t.Fatal(err)
			}
			e := testEntry(99)
			e.Seq, e.Prev, e.Time = seq+1, hash, time.Unix(0, 0).UTC()
			rawUpdate(t, s, func(txn kv.Txn) error { return txn.Set(entryKey(seq+1), appendEntry(nil, &e)) })
		}, n + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openBadger(t, t.TempDir())
			defer db.Close()
			l := openLog(t, db)
			appendN(t, l, n)
			mustVerify(t, l, n)
			tc.tamper(t, db)
			_, err := l.Verify()
			wantTampered(t, "Verify()", err, tc.seq)

			// A fresh process sees the same damage.
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l2 := openLog(t, db)
			_, err = l2.Verify()
			wantTampered(t, "Verify() after reopen", err, tc.seq)
		})
	}
}

// TestVerifyBitFlips flips bits of a stored entry and of the head record
// (every bit under KEYMESH_EXHAUSTIVE=1, else a sample; see
// internal/tamper); Verify must reject each.
func TestVerifyBitFlips(t *testing.T) {
	t.Parallel()
	s := kv.NewMem()
	l := openLog(t, s)
	appendN(t, l, 6)
	for _, tc := range []struct {
		key    []byte
		seq    uint64
		anySeq bool // a flipped head seq is reported where head and log diverge
	}{{entryKey(3), 3, false}, {entryKey(6), 6, false}, {[]byte(headKey), 6, true}} {
		orig := rawGet(t, s, tc.key)
		for _, bit := range tamper.Bits(t, len(orig)) {
			v := tamper.Flip(orig, bit)
			rawUpdate(t, s, func(txn kv.Txn) error { return txn.Set(tc.key, v) })
			_, err := l.Verify()
			var verr *VerifyError
			if !errors.As(err, &verr) {
				t.Fatalf("key %q bit %d: Verify() = %v, want *VerifyError", tc.key, bit, err)
			}
			if !tc.anySeq && verr.Seq != tc.seq {
				t.Fatalf("key %q bit %d: Verify() = %v, want seq %d", tc.key, bit, err, tc.seq)
			}
		}
		rawUpdate(t, s, func(txn kv.Txn) error { return txn.Set(tc.key, orig) })
		mustVerify(t, l, 6)
	}
}

// TestOpenDamaged checks that a log whose head does not match its entries
// opens for inspection but refuses appends, and never overwrites entries.
func TestOpenDamaged(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, s kv.Store)
		seq    uint64
	}{
		{"fail/last-entry-deleted", func(t *testing.T, s kv.Store) {
			rawUpdate(t, s, func(txn kv.Txn) error { return txn.Delete(entryKey(5)) })
		}, 5},
		{"fail/head-rolled-back", func(t *testing.T, s kv.Store) {
			e, _ := decodeEntry(rawGet(t, s, entryKey(3)))
			rawUpdate(t, s, func(txn kv.Txn) error { return txn.Set([]byte(headKey), encodeHead(3, e.Hash)) })
		}, 4},
		{"fail/head-deleted", func(t *testing.T, s kv.Store) {
			rawUpdate(t, s, func(txn kv.Txn) error { return txn.Delete([]byte(headKey)) })
		}, 1},
		{"fail/head-garbage", func(t *testing.T, s kv.Store) {
			rawUpdate(t, s, func(txn kv.Txn) error { return txn.Set([]byte(headKey), []byte("x")) })
		}, 0},
		{"fail/head-hash-altered", func(t *testing.T, s kv.Store) {
			v := rawGet(t, s, []byte(headKey))
			v[len(v)-1] ^= 0x80
			rawUpdate(t, s, func(txn kv.Txn) error { return txn.Set([]byte(headKey), v) })
		}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := kv.NewMem()
			l := openLog(t, s)
			appendN(t, l, 5)
			l.Close()
			tc.tamper(t, s)
			before := snapshot(t, s)

			l2 := openLog(t, s)
			_, err := l2.Append(context.Background(), testEntry(0))
			wantTampered(t, "Append on a damaged log", err, tc.seq)
			if _, err := l2.Verify(); !errors.Is(err, ErrTampered) {
				t.Fatalf("Verify() = %v, want ErrTampered", err)
			}
			if after := snapshot(t, s); !mapsEqual(before, after) {
				t.Fatalf("damaged log was modified by Append")
			}
		})
	}
}

func snapshot(t *testing.T, s kv.Reader) map[string]string {
	t.Helper()
	m := map[string]string{}
	if err := s.Scan(nil, func(k, v []byte) error { m[string(k)] = string(v); return nil }); err != nil {
		t.Fatal(err)
	}
	return m
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

func TestAppendStoreFailure(t *testing.T) {
	t.Parallel()
	s := kv.NewMem()
	l := openLog(t, s)
	appendN(t, l, 3)
	seq0, hash0 := l.Head()

	errDisk := errors.New("disk on fire")
	s.SetFailure(errDisk)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			_, err := l.Append(context.Background(), testEntry(i))
			if !errors.Is(err, ErrUnavailable) || !errors.Is(err, errDisk) {
				t.Errorf("Append with a failing store = %v, want ErrUnavailable wrapping the cause", err)
			}
		})
	}
	wg.Wait()
	if seq, hash := l.Head(); seq != seq0 || hash != hash0 {
		t.Fatalf("Head() after failed appends = %d, %x; want %d, %x", seq, hash, seq0, hash0)
	}
	if tail, err := l.Tail(10); err != nil || len(tail) != 3 {
		t.Fatalf("Tail(10) after failed appends = %d entries, %v; want 3", len(tail), err)
	}

	s.SetFailure(nil)
	e, err := l.Append(context.Background(), testEntry(9))
	if err != nil {
		t.Fatalf("Append after recovery = %v", err)
	}
	if e.Seq != seq0+1 || e.Prev != hash0 {
		t.Fatalf("Append after recovery = seq %d prev %x, want seq %d prev %x", e.Seq, e.Prev, seq0+1, hash0)
	}
	mustVerify(t, l, 4)
}

// gateStore wraps a store so tests can hold a commit in flight and make a
// commit fail after its writes reached the store (an ambiguous failure).
type gateStore struct {
	kv.Store
	updates atomic.Int64
	hold    chan struct{} // if non-nil, the next Update waits for it to close
	held    chan struct{} // closed when that Update is waiting
	failAt  atomic.Int64  // if non-zero, Update number failAt applies its writes, then fails
}

var errLost = errors.New("commit reply lost")

func (g *gateStore) Update(fn func(kv.Txn) error) error {
	n := g.updates.Add(1)
	if g.hold != nil {
		hold := g.hold
		g.hold = nil
		close(g.held)
		<-hold
	}
	err := g.Store.Update(fn)
	if err == nil && n == g.failAt.Load() {
		return errLost
	}
	return err
}

// waitQueued waits until n appends are queued behind the committer.
func waitQueued(t *testing.T, l *Log, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(l.reqs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d appends queued, want %d", len(l.reqs), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestAmbiguousFailure: a batch whose commit reported an error although its
// writes landed is not acknowledged, and the next, shorter batch removes its
// leftovers so the log still verifies.
func TestAmbiguousFailure(t *testing.T) {
	t.Parallel()
	g := &gateStore{Store: kv.NewMem()}
	l := openLog(t, g)
	appendN(t, l, 1)

	g.hold, g.held = make(chan struct{}), make(chan struct{})
	release := g.hold
	first := make(chan error, 1)
	go func() { _, err := l.Append(context.Background(), testEntry(1)); first <- err }()
	<-g.held // entry 2 is being committed (update 2); the next five queue up as one batch

	g.failAt.Store(3)
	errs := make(chan error, 5)
	for i := range 5 {
		go func() { _, err := l.Append(context.Background(), testEntry(10+i)); errs <- err }()
	}
	waitQueued(t, l, 5)
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("Append (held) = %v", err)
	}
	for range 5 {
		if err := <-errs; !errors.Is(err, ErrUnavailable) || !errors.Is(err, errLost) {
			t.Fatalf("Append in the failed batch = %v, want ErrUnavailable", err)
		}
	}
	if _, err := g.Get(entryKey(7)); err != nil {
		t.Fatalf("the failed batch's writes should have reached the store: Get(7) = %v", err)
	}
	if seq, _ := l.Head(); seq != 2 {
		t.Fatalf("Head() seq = %d, want 2", seq)
	}
	e, err := l.Append(context.Background(), testEntry(20))
	if err != nil || e.Seq != 3 {
		t.Fatalf("Append after failure = seq %d, %v; want seq 3", e.Seq, err)
	}
	mustVerify(t, l, 3)
	if _, err := g.Get(entryKey(4)); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("leftover entry 4 of the failed batch: Get = %v, want ErrNotFound", err)
	}
}

func TestReopenContinuesChain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := openBadger(t, dir)
	l := openLog(t, db)
	got := appendN(t, l, 5)
	if err := l.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("store Close() = %v", err)
	}

	db = openBadger(t, dir)
	defer db.Close()
	// A clock that went backwards: times must not decrease along the chain.
	l = openLog(t, db, WithClock(func() time.Time { return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) }))
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

func TestConcurrentAppend(t *testing.T) {
	t.Parallel()
	db := openBadger(t, t.TempDir())
	defer db.Close()
	l := openLog(t, db, WithMaxBatch(16))
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
	l := openLog(t, kv.NewMem())
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
	s := kv.NewMem()
	l := openLog(t, s)
	appendN(t, l, 5)
	v := rawGet(t, s, entryKey(4))
	v[len(v)-40] ^= 1
	rawUpdate(t, s, func(txn kv.Txn) error { return txn.Set(entryKey(4), v) })
	_, err := l.Tail(3)
	wantTampered(t, "Tail(3)", err, 4)
}

func TestClose(t *testing.T) {
	t.Parallel()
	l := openLog(t, kv.NewMem())
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

func TestContextCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g := &gateStore{Store: kv.NewMem()}
	l := openLog(t, g)
	if _, err := l.Append(ctx, testEntry(0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append(cancelled ctx) = %v, want context.Canceled", err)
	}

	// Cancel an append while it waits behind a commit in flight: it returns
	// at once, is not written, and the chain stays intact.
	g.hold, g.held = make(chan struct{}), make(chan struct{})
	release := g.hold
	first := make(chan error, 1)
	go func() { _, err := l.Append(context.Background(), testEntry(1)); first <- err }()
	<-g.held
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
			l := openLog(t, kv.NewMem())
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

func TestMaxBatch(t *testing.T) {
	t.Parallel()
	if _, err := Open(kv.NewMem(), WithMaxBatch(0)); err == nil {
		t.Fatalf("Open(WithMaxBatch(0)) = nil error, want error")
	}
	if _, err := Open(kv.NewMem(), WithMaxBatch(MaxBatchLimit+1)); err == nil {
		t.Fatalf("Open(WithMaxBatch(%d)) = nil error, want error", MaxBatchLimit+1)
	}
	g := &gateStore{Store: kv.NewMem()}
	l := openLog(t, g, WithMaxBatch(3))
	g.hold, g.held = make(chan struct{}), make(chan struct{})
	release := g.hold
	var wg sync.WaitGroup
	wg.Go(func() { l.Append(context.Background(), testEntry(0)) })
	<-g.held
	for i := range 9 {
		wg.Go(func() { l.Append(context.Background(), testEntry(i)) })
	}
	waitQueued(t, l, 3) // the channel holds at most maxBatch; the rest wait to send
	close(release)
	wg.Wait()
	if got := g.updates.Load(); got < 4 {
		t.Fatalf("10 appends with max batch 3 took %d commits, want at least 4", got)
	}
	mustVerify(t, l, 10)
}

// countingStore counts commits.
type countingStore struct {
	kv.Store
	updates atomic.Int64
}

func (c *countingStore) Update(fn func(kv.Txn) error) error {
	c.updates.Add(1)
	return c.Store.Update(fn)
}

// BenchmarkAppendParallel measures group commit: 64 concurrent appenders on
// the real (synchronous) badger store.
func BenchmarkAppendParallel(b *testing.B) {
	db := openBadger(b, b.TempDir())
	defer db.Close()
	cs := &countingStore{Store: db}
	l := openLog(b, cs)
	// 64 concurrent appenders whatever GOMAXPROCS is.
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
	b.ReportMetric(float64(end-start)/float64(cs.updates.Load()), "entries/commit")
}

// BenchmarkAppendSerial measures the latency of one append with no
// concurrency: one synchronous commit per entry.
func BenchmarkAppendSerial(b *testing.B) {
	db := openBadger(b, b.TempDir())
	defer db.Close()
	l := openLog(b, db)
	e := testEntry(1)
	b.ResetTimer()
	for b.Loop() {
		if _, err := l.Append(context.Background(), e); err != nil {
			b.Fatal(err)
		}
	}
}

// TestConcurrentAppendAnswers: with requests recycled between appends, and
// some appends giving up (their ctx ends) while the committer still holds
// their request, every append that succeeds gets its own entry back, and
// the log holds exactly the entries acknowledged or abandoned.
func TestConcurrentAppendAnswers(t *testing.T) {
	t.Parallel()
	l := openLog(t, kv.NewMem(), WithMaxBatch(8))
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
					cancel() // some give up at once, some while queued
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
