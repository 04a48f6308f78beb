package badgerstore

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// writeSnappyStore writes n records under prefix into a store at dir the
// way keymesh wrote its stores before it stopped compressing tables:
// badger with Snappy tables. Close flushes them into a table.
func writeSnappyStore(t *testing.T, dir, prefix string, n int) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithCompression(options.Snappy).
		WithBlockCacheSize(1 << 20).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error {
		for i := range n {
			if err := txn.Set(fmt.Appendf(nil, "%s%04d", prefix, i), bytes.Repeat([]byte("v"), 100)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// compressions returns how many of the tables the manifest in dir lists
// use each compression.
func compressions(t *testing.T, dir string) map[options.CompressionType]int {
	t.Helper()
	listed, err := tableCompressions(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[options.CompressionType]int{}
	for _, c := range listed {
		out[c]++
	}
	return out
}

// TestBadgerstore_OpensSnappyAndUncompressedTables: a store written with
// Snappy tables (by an earlier keymesh) opens, reads back, and takes new
// writes into uncompressed tables; the store then holds both, and opens
// again with every record. Checking every table as Snappy, as the
// start-up check did before, refuses the uncompressed ones as damaged.
func TestBadgerstore_OpensSnappyAndUncompressedTables(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeSnappyStore(t, dir, "old/", 200)
	if c := compressions(t, dir); c[options.Snappy] == 0 {
		t.Fatalf("tables by compression %v: no Snappy table to start from", c)
	}
	db := mustOpen(t, dir)
	for i := range 200 {
		if err := set(db, fmt.Sprintf("new/%04d", i), "w"); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, db)
	c := compressions(t, dir)
	if c[options.Snappy] == 0 || c[options.None] == 0 {
		t.Fatalf("tables by compression %v, want both Snappy and none", c)
	}
	db = mustOpen(t, dir)
	defer mustClose(t, db)
	if got := keysUnder(t, db, "old/"); len(got) != 200 {
		t.Errorf("old records = %d, want 200", len(got))
	}
	if got := keysUnder(t, db, "new/"); len(got) != 200 {
		t.Errorf("new records = %d, want 200", len(got))
	}
}

// TestBadgerstore_TablesWithoutManifestRefused: tables without badger's
// manifest are refused as damaged. Badger itself would start an empty
// store and delete them.
func TestBadgerstore_TablesWithoutManifestRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeSnappyStore(t, dir, "k/", 10)
	if err := os.Remove(filepath.Join(dir, badger.ManifestFilename)); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir, nil)
	if err == nil {
		db.Close()
		t.Fatal("Open of tables without a manifest succeeded")
	}
	if !errors.Is(err, ErrDamaged) || !errors.Is(err, errNoManifest) {
		t.Errorf("Open = %v, want %v and %v", err, ErrDamaged, errNoManifest)
	}
	if tables, _ := filepath.Glob(filepath.Join(dir, "*.sst")); len(tables) == 0 {
		t.Error("the tables were deleted")
	}
}

// TestBadgerstore_DamagedManifestRefused: a manifest whose change records
// fail their checksum is refused with ErrDamaged naming it, before badger
// opens anything.
func TestBadgerstore_DamagedManifestRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeSnappyStore(t, dir, "k/", 10)
	path := filepath.Join(dir, badger.ManifestFilename)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 20 {
		t.Fatalf("manifest of %d bytes, want a change record", len(b))
	}
	// 8 bytes of magic, 8 of length and checksum, then the first record.
	if err := os.WriteFile(path, flipAt(b, 18), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir, nil)
	if err == nil {
		db.Close()
		t.Fatal("Open with a damaged manifest succeeded")
	}
	if !errors.Is(err, ErrDamaged) || !bytes.Contains([]byte(err.Error()), []byte(badger.ManifestFilename)) {
		t.Errorf("Open = %v, want %v naming %s", err, ErrDamaged, badger.ManifestFilename)
	}
}

// TestBadgerstore_UnlistedTableNotRead: a table file the manifest does not
// list, as a crash during a compaction can leave (here: garbage), is not
// read at start-up; badger deletes it and the store opens.
func TestBadgerstore_UnlistedTableNotRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeSnappyStore(t, dir, "k/", 10)
	orphan := filepath.Join(dir, "999999.sst")
	if err := os.WriteFile(orphan, []byte("half a table"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := mustOpen(t, dir)
	defer mustClose(t, db)
	if got := keysUnder(t, db, "k/"); len(got) != 10 {
		t.Errorf("records = %d, want 10", len(got))
	}
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the unlisted table is still there: %v", err)
	}
}

func TestTableID(t *testing.T) {
	for _, c := range []struct {
		path string
		want uint64
	}{
		{"/d/000001.sst", 1},
		{"000123.sst", 123},
		{"/d/1234567.sst", 1234567},
		{"/d/-1.sst", math.MaxUint64},
		{"/d/abc.sst", math.MaxUint64},
		{"/d/000001.vlog", math.MaxUint64},
		{"/d/.sst", math.MaxUint64},
		{"/d/99999999999999999999999.sst", math.MaxUint64},
	} {
		if got := tableID(c.path); got != c.want {
			t.Errorf("tableID(%q) = %d, want %d", c.path, got, c.want)
		}
	}
}

// FuzzTableID: tableID never panics, and an ID it returns names the
// table badger would give that ID.
func FuzzTableID(f *testing.F) {
	for _, s := range []string{"000001.sst", "-1.sst", "abc.sst", "18446744073709551615.sst", "+1.sst"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		id := tableID(filepath.Join("/d", name))
		if id == math.MaxUint64 {
			return
		}
		if got := tableID(fmt.Sprintf("/d/%06d.sst", id)); got != id {
			t.Fatalf("tableID(%q) = %d, but %06d.sst gives %d", name, id, id, got)
		}
	})
}
