package badgerstore

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/keymesh/keymesh/kv"
)

// fakeStatfs reports free bytes as set by the test, in 4 KiB blocks.
type fakeStatfs struct{ free atomic.Uint64 }

func (f *fakeStatfs) statfs(_ string, st *syscall.Statfs_t) error {
	*st = syscall.Statfs_t{Bsize: 4096, Bavail: f.free.Load() / 4096}
	return nil
}

func set(db kv.Store, k, v string) error {
	return db.Update(func(tx kv.Txn) error { return tx.Set([]byte(k), []byte(v)) })
}

// TestBadgerstore_FullDiskRefusesWritesNotReads is the regression test of
// the SIGBUS on a full disk: below the reserve Update fails with
// kv.ErrNoSpace before badger writes anything, reads keep working, and
// writes succeed again once space returns, with nothing acknowledged lost.
func TestBadgerstore_FullDiskRefusesWritesNotReads(t *testing.T) {
	t.Parallel()
	fs := &fakeStatfs{}
	fs.free.Store(1 << 30)
	dir := t.TempDir()
	db, err := Open(dir, nil, WithReserve(64<<20), withStatfs(fs.statfs))
	if err != nil {
		t.Fatal(err)
	}
	if err := set(db, "a", "1"); err != nil {
		t.Fatalf("write with 1 GiB free = %v", err)
	}
	fs.free.Store(63 << 20)
	err = set(db, "b", "2")
	var se *SpaceError
	if !errors.Is(err, kv.ErrNoSpace) || !errors.As(err, &se) || se.Free != 63<<20 || se.Reserve != 64<<20 {
		t.Fatalf("write with 63 MiB free = %v, want a *SpaceError wrapping kv.ErrNoSpace", err)
	}
	if got := db.RefusedWrites(); got != 1 {
		t.Errorf("RefusedWrites() = %d, want 1", got)
	}
	if err := db.CheckSpace(); !errors.Is(err, kv.ErrNoSpace) {
		t.Errorf("CheckSpace() with 63 MiB free = %v, want kv.ErrNoSpace", err)
	}
	if v, err := db.Get([]byte("a")); err != nil || string(v) != "1" {
		t.Errorf("Get(a) on a full disk = %q, %v; want \"1\"", v, err)
	}
	if _, err := db.Get([]byte("b")); !errors.Is(err, kv.ErrNotFound) {
		t.Errorf("Get(b) after the refused write = %v, want kv.ErrNotFound", err)
	}
	fs.free.Store(65 << 20)
	if err := set(db, "b", "2"); err != nil {
		t.Fatalf("write after space returned = %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, nil, withStatfs(fs.statfs))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for k, want := range map[string]string{"a": "1", "b": "2"} {
		if v, err := db.Get([]byte(k)); err != nil || string(v) != want {
			t.Errorf("after reopen Get(%s) = %q, %v; want %q", k, v, err, want)
		}
	}
}

func TestBadgerstore_OpenRefusedOnFullDisk(t *testing.T) {
	t.Parallel()
	fs := &fakeStatfs{}
	fs.free.Store(1 << 20)
	if _, err := Open(t.TempDir(), nil, withStatfs(fs.statfs)); !errors.Is(err, kv.ErrNoSpace) {
		t.Fatalf("Open with 1 MiB free = %v, want kv.ErrNoSpace", err)
	}
}

// TestBadgerstore_FilesOwnerOnly is the regression test of badger's 0644
// files: after writes, flushes and a reopen every file of the store is
// 0600 and every directory 0700, and a file left 0644 by an older version
// is tightened at Open.
//
// Not parallel: it sets the process umask.
func TestBadgerstore_FilesOwnerOnly(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "db")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("left by an older version"), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{7}, 4<<10) // above the value threshold: goes to the value log
	for i := range 200 {
		if err := db.Update(func(tx kv.Txn) error { return tx.Set(fmt.Appendf(nil, "k%03d", i), big) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	files := 0
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			files++
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %04o, want %04o", path, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 3 {
		t.Errorf("only %d files in the store; the test checked nothing", files)
	}
}
