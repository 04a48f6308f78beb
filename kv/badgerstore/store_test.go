package badgerstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/keymesh/keymesh/kv"
)

func mustOpen(t *testing.T, dir string, opts ...Option) *DB {
	t.Helper()
	db, err := Open(dir, nil, opts...)
	if err != nil {
		t.Fatalf("Open(%s) = %v", dir, err)
	}
	return db
}

func mustClose(t *testing.T, db *DB) {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
}

func keysUnder(t *testing.T, r kv.Reader, prefix string) []string {
	t.Helper()
	var out []string
	if err := r.Scan([]byte(prefix), func(k, v []byte) error {
		out = append(out, string(k)+"="+string(v))
		return nil
	}); err != nil {
		t.Fatalf("Scan(%q) = %v", prefix, err)
	}
	return out
}

// TestBadgerstore_ReadsAndWrites checks the kv.Store contract on badger:
// ErrNotFound, copies out, a transaction reading its own writes, prefix
// scans in key order that stop at fn's first error, deletes.
func TestBadgerstore_ReadsAndWrites(t *testing.T) {
	t.Parallel()
	db := mustOpen(t, t.TempDir())
	defer mustClose(t, db)
	if v, err := db.Get([]byte("missing")); !errors.Is(err, kv.ErrNotFound) || v != nil {
		t.Fatalf("Get(missing) = %q, %v; want nil, %v", v, err, kv.ErrNotFound)
	}
	err := db.Update(func(tx kv.Txn) error {
		for _, k := range []string{"p/b", "p/a", "p/c", "q/a", "p"} {
			if err := tx.Set([]byte(k), []byte("v"+k)); err != nil {
				return err
			}
		}
		if v, err := tx.Get([]byte("p/a")); err != nil || string(v) != "vp/a" {
			return fmt.Errorf("Get in the writing transaction = %q, %v", v, err)
		}
		if got := keysUnder(t, tx, "p/"); len(got) != 3 {
			return fmt.Errorf("Scan in the writing transaction = %v, want its 3 writes", got)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update() = %v", err)
	}
	v, err := db.Get([]byte("p/a"))
	if err != nil || string(v) != "vp/a" {
		t.Fatalf("Get(p/a) = %q, %v", v, err)
	}
	v[0] = 'X'
	if again, _ := db.Get([]byte("p/a")); string(again) != "vp/a" {
		t.Errorf("Get returned the store's memory: after changing the result, Get = %q", again)
	}
	if got, want := fmt.Sprint(keysUnder(t, db, "p/")), "[p/a=vp/a p/b=vp/b p/c=vp/c]"; got != want {
		t.Errorf("Scan(p/) = %s, want %s", got, want)
	}
	if got := keysUnder(t, db, ""); len(got) != 5 || got[0] != "p=vp" || got[4] != "q/a=vq/a" {
		t.Errorf("Scan(all) = %v, want the 5 keys in order", got)
	}
	if got := keysUnder(t, db, "r/"); len(got) != 0 {
		t.Errorf("Scan(r/) = %v, want nothing", got)
	}
	stop := errors.New("stop")
	calls := 0
	if err := db.Scan([]byte("p/"), func(k, v []byte) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Scan with fn failing = %v after %d calls, want %v after 1", err, calls, stop)
	}
	if err := db.Update(func(tx kv.Txn) error { return tx.Delete([]byte("p/b")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Get([]byte("p/b")); !errors.Is(err, kv.ErrNotFound) {
		t.Errorf("Get(deleted) = %v, want %v", err, kv.ErrNotFound)
	}
	if err := db.Update(func(tx kv.Txn) error { return tx.Delete([]byte("never-written")) }); err != nil {
		t.Errorf("Delete(never written) = %v, want nil", err)
	}
}

// TestBadgerstore_FailedUpdateWritesNothing: when fn fails, Update
// returns its error and none of its writes.
func TestBadgerstore_FailedUpdateWritesNothing(t *testing.T) {
	t.Parallel()
	db := mustOpen(t, t.TempDir())
	defer mustClose(t, db)
	boom := errors.New("boom")
	err := db.Update(func(tx kv.Txn) error {
		if err := tx.Set([]byte("a"), []byte("1")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update(fn failing) = %v, want an error wrapping %v", err, boom)
	}
	if _, err := db.Get([]byte("a")); !errors.Is(err, kv.ErrNotFound) {
		t.Errorf("Get(a) after the failed Update = %v, want %v", err, kv.ErrNotFound)
	}
}

// TestBadgerstore_ReopenKeepsWrites: what Update acknowledged is there
// after Close and Open.
func TestBadgerstore_ReopenKeepsWrites(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(dir string) (*DB, error)
	}{
		{"ok/sync", func(dir string) (*DB, error) { return Open(dir, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			db, err := tc.open(dir)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				if err := set(db, fmt.Sprintf("k/%02d", i), fmt.Sprint(i)); err != nil {
					t.Fatal(err)
				}
			}
			mustClose(t, db)
			db = mustOpen(t, dir)
			defer mustClose(t, db)
			if got := keysUnder(t, db, "k/"); len(got) != 50 || got[49] != "k/49=49" {
				t.Errorf("after reopen Scan(k/) = %d keys (last %v), want 50", len(got), got[len(got)-1:])
			}
		})
	}
}

// TestBadgerstore_ClosedStoreFails: a closed store answers errors, not
// panics or stale data.
func TestBadgerstore_ClosedStoreFails(t *testing.T) {
	t.Parallel()
	db := mustOpen(t, t.TempDir())
	if err := set(db, "a", "1"); err != nil {
		t.Fatal(err)
	}
	mustClose(t, db)
	for name, f := range map[string]func() error{
		"Get":    func() error { _, err := db.Get([]byte("a")); return err },
		"Scan":   func() error { return db.Scan(nil, func(k, v []byte) error { return nil }) },
		"Update": func() error { return set(db, "b", "2") },
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s on a closed store panicked: %v", name, r)
				}
			}()
			if err := f(); err == nil {
				t.Errorf("%s on a closed store = nil, want an error", name)
			}
		}()
	}
}

// TestBadgerstore_ReserveChecks: a reserve of 0 disables the space check;
// a failing statfs is not a full disk.
func TestBadgerstore_ReserveChecks(t *testing.T) {
	t.Parallel()
	full := &fakeStatfs{} // 0 bytes free
	db := mustOpen(t, t.TempDir(), WithReserve(0), withStatfs(full.statfs))
	if err := set(db, "a", "1"); err != nil {
		t.Errorf("write with the check disabled and 0 bytes free = %v", err)
	}
	if err := db.CheckSpace(); err != nil {
		t.Errorf("CheckSpace() with the check disabled = %v", err)
	}
	mustClose(t, db)

	broken := func(string, *syscall.Statfs_t) error { return syscall.EIO }
	db = mustOpen(t, t.TempDir(), withStatfs(broken))
	defer mustClose(t, db)
	if _, err := db.FreeBytes(); !errors.Is(err, syscall.EIO) {
		t.Errorf("FreeBytes() with statfs failing = %v, want %v", err, syscall.EIO)
	}
	if err := db.CheckSpace(); err != nil {
		t.Errorf("CheckSpace() with statfs failing = %v, want nil", err)
	}
	if err := set(db, "a", "1"); err != nil {
		t.Errorf("write with statfs failing = %v", err)
	}
	if db.RefusedWrites() != 0 {
		t.Errorf("RefusedWrites() = %d, want 0", db.RefusedWrites())
	}
	real := mustOpen(t, t.TempDir())
	defer mustClose(t, real)
	if free, err := real.FreeBytes(); err != nil || free == 0 {
		t.Errorf("FreeBytes() of a real file system = %d, %v", free, err)
	}
}

// TestBadgerstore_EraseRemovesOnlyThePrefix: Erase drops every key under
// the prefix, keeps the others, and the store takes writes afterwards.
func TestBadgerstore_EraseRemovesOnlyThePrefix(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := mustOpen(t, dir)
	big := bytes.Repeat([]byte{9}, 2<<10) // above the value threshold: in the value log
	err := db.Update(func(tx kv.Txn) error {
		for i := range 20 {
			if err := tx.Set(fmt.Appendf(nil, "mat/k/%02d", i), big); err != nil {
				return err
			}
		}
		return tx.Set([]byte("keep"), []byte("1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Erase([]byte("mat/k/")); err != nil {
		t.Fatalf("Erase() = %v", err)
	}
	if got := keysUnder(t, db, "mat/"); len(got) != 0 {
		t.Errorf("after Erase Scan(mat/) = %d keys, want none", len(got))
	}
	if err := set(db, "after", "1"); err != nil {
		t.Errorf("write after Erase = %v", err)
	}
	mustClose(t, db)
	db = mustOpen(t, dir)
	defer mustClose(t, db)
	if got := keysUnder(t, db, ""); fmt.Sprint(got) != "[after=1 keep=1]" {
		t.Errorf("after Erase and reopen the store holds %v, want [after=1 keep=1]", got)
	}
}

// TestBadgerstore_DropPrefixRemovesOnlyThePrefix: DropPrefix removes
// every key under the prefix, from the memtable and from the tables
// flushed before, and keeps every other key, those that sort next to the
// prefix included; the store takes writes afterwards and a reopened store
// holds the same. On a full disk it refuses, as Update does, and drops
// nothing.
func TestBadgerstore_DropPrefixRemovesOnlyThePrefix(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	free := &fakeStatfs{}
	free.free.Store(1 << 40)
	db := mustOpen(t, dir, withStatfs(free.statfs))
	keep := []string{"h", "h/", "h/x", "h.", "h0/x", "hi/x", "g/x"}
	for _, k := range keep {
		if err := set(db, k, "kept"); err != nil {
			t.Fatal(err)
		}
	}
	// More records than a memtable holds: flushed tables as well as the
	// memtable hold the prefix's keys.
	val := bytes.Repeat([]byte{7}, 200)
	for chunk := range 40 {
		err := db.Update(func(tx kv.Txn) error {
			for i := range 1000 {
				if err := tx.Set(fmt.Appendf(nil, "hi/story/%03d/%04d", chunk, i), val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	free.free.Store(0)
	if err := db.DropPrefix([]byte("hi/story/")); !errors.Is(err, kv.ErrNoSpace) {
		t.Errorf("DropPrefix on a full disk = %v, want %v", err, kv.ErrNoSpace)
	}
	if got := keysUnder(t, db, "hi/story/"); len(got) != 40000 {
		t.Errorf("after a refused DropPrefix %d keys are left, want all 40000", len(got))
	}
	free.free.Store(1 << 40)
	if err := db.DropPrefix([]byte("hi/story/")); err != nil {
		t.Fatalf("DropPrefix() = %v", err)
	}
	check := func(db *DB, what string) {
		t.Helper()
		if got := keysUnder(t, db, "hi/story/"); len(got) != 0 {
			t.Errorf("%s: %d keys under the prefix, want none", what, len(got))
		}
		keys := slices.Sorted(slices.Values(keep))
		for i, k := range keys {
			keys[i] = k + "=kept"
		}
		if got := keysUnder(t, db, ""); fmt.Sprint(got) != fmt.Sprint(keys) {
			t.Errorf("%s: the store holds %v, want %v", what, got, keys)
		}
	}
	check(db, "after DropPrefix")
	if err := set(db, "after", "kept"); err != nil {
		t.Errorf("write after DropPrefix = %v", err)
	}
	keep = append(keep, "after")
	mustClose(t, db)
	db = mustOpen(t, dir)
	defer mustClose(t, db)
	check(db, "after DropPrefix and reopen")
}

// TestBadgerstore_ConcurrentUpdates: concurrent writers all land, and
// read-modify-write transactions that conflict are retried, so no
// increment is lost.
func TestBadgerstore_ConcurrentUpdates(t *testing.T) {
	t.Parallel()
	db := mustOpen(t, t.TempDir())
	defer mustClose(t, db)
	const writers, each = 2, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				errs <- db.Update(func(tx kv.Txn) error {
					n := 0
					if v, err := tx.Get([]byte("counter")); err == nil {
						fmt.Sscan(string(v), &n)
					} else if !errors.Is(err, kv.ErrNotFound) {
						return err
					}
					if err := tx.Set(fmt.Appendf(nil, "w/%d/%d", w, i), []byte("x")); err != nil {
						return err
					}
					return tx.Set([]byte("counter"), []byte(fmt.Sprint(n+1)))
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Update = %v", err)
		}
	}
	if v, err := db.Get([]byte("counter")); err != nil || string(v) != fmt.Sprint(writers*each) {
		t.Errorf("counter = %q, %v; want %d", v, err, writers*each)
	}
	if got := keysUnder(t, db, "w/"); len(got) != writers*each {
		t.Errorf("Scan(w/) = %d keys, want %d", len(got), writers*each)
	}
}

// TestBadgerstore_DamagedTableRefused: a table whose footer is damaged
// fails Open with ErrDamaged naming the file, instead of panicking inside
// badger.
func TestBadgerstore_DamagedTableRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := mustOpen(t, dir)
	for i := range 100 {
		if err := set(db, fmt.Sprintf("k%03d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, db) // flushes the memtable into a table
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(tables) == 0 {
		t.Fatal("no table after Close; nothing to damage")
	}
	b, err := os.ReadFile(tables[0])
	if err != nil {
		t.Fatal(err)
	}
	for name, damaged := range map[string][]byte{
		"checksum-length": append(bytes.Clone(b[:len(b)-4]), 0xff, 0xff, 0xff, 0xff),
		"truncated":       b[:3],
		"index":           flipAt(b, len(b)-12),
		"block":           flipAt(b, 10), // in the first data block: checkTables reads every block
	} {
		if err := os.WriteFile(tables[0], damaged, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := Open(dir, nil)
		if err == nil {
			db.Close()
			t.Errorf("%s: Open with a damaged table succeeded", name)
			continue
		}
		if !errors.Is(err, ErrDamaged) || !bytes.Contains([]byte(err.Error()), []byte(filepath.Base(tables[0]))) {
			t.Errorf("%s: Open = %v, want %v naming %s", name, err, ErrDamaged, filepath.Base(tables[0]))
		}
	}
}

// TestBadgerstore_DamagedTableAmongManyRefused: checkTables checks the
// tables on every core; a damaged block in any one of several tables is
// still a refusal naming that table.
func TestBadgerstore_DamagedTableAmongManyRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for round := range 4 { // each Close flushes a table of its own
		db := mustOpen(t, dir)
		for i := range 100 {
			if err := set(db, fmt.Sprintf("r%d/k%03d", round, i), "v"); err != nil {
				t.Fatal(err)
			}
		}
		mustClose(t, db)
	}
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(tables) < 2 {
		t.Fatalf("%d tables after 4 rounds, want several", len(tables))
	}
	victim := tables[len(tables)-1]
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, flipAt(b, 10), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir, nil)
	if err == nil {
		db.Close()
		t.Fatal("Open with a damaged block in one of several tables succeeded")
	}
	if !errors.Is(err, ErrDamaged) || !bytes.Contains([]byte(err.Error()), []byte(filepath.Base(victim))) {
		t.Errorf("Open = %v, want %v naming %s", err, ErrDamaged, filepath.Base(victim))
	}
}

func flipAt(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x40
	return c
}
