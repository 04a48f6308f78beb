package badgerstore

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/keymesh/keymesh/kv"
)

// TestBadgerstore_ReleaseMappedHandsPagesBack: after a full scan has
// faulted in the store's tables and value log, ReleaseMapped hands their
// pages back (the process's resident pages of those files fall), and
// every record still reads back the same.
func TestBadgerstore_ReleaseMappedHandsPagesBack(t *testing.T) {
	dir := t.TempDir()
	want := map[string][]byte{}
	db := mustOpen(t, dir)
	for i := range 3000 { // values below and above the value threshold: tables and value log
		v := make([]byte, 200+i%3*900)
		rand.Read(v)
		want[fmt.Sprintf("k%05d", i)] = v
	}
	if err := db.Update(func(tx kv.Txn) error {
		for k, v := range want {
			if err := tx.Set([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustClose(t, db) // flushes the memtable into a table
	db = mustOpen(t, dir)
	defer mustClose(t, db)
	readAll := func() {
		t.Helper()
		n := 0
		if err := db.Scan([]byte("k"), func(k, v []byte) error {
			n++
			if !bytes.Equal(v, want[string(k)]) {
				return fmt.Errorf("%s reads back different", k)
			}
			return nil
		}); err != nil || n != len(want) {
			t.Fatalf("Scan = %d records, %v; want %d", n, err, len(want))
		}
	}
	readAll()
	before := resident(t, db)
	advised, err := db.ReleaseMapped()
	if errors.Is(err, ErrUnsupported) {
		t.Skip("this kernel cannot release mapped pages (MADV_PAGEOUT, Linux 5.4)")
	}
	if err != nil || advised == 0 {
		t.Fatalf("ReleaseMapped = %d, %v; want the store's mappings advised", advised, err)
	}
	after := resident(t, db)
	t.Logf("store files resident: %d KiB before, %d KiB after; %d mappings advised", before, after, advised)
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err == nil && st.Type == 0x01021994 {
		// tmpfs: its pages are the files themselves and, without swap,
		// cannot be reclaimed.
		t.Log("the store is on tmpfs: its pages stay")
	} else if before < 512 || after > before/4 {
		t.Errorf("store files resident: %d KiB before, %d KiB after ReleaseMapped; want most of them handed back", before, after)
	}
	readAll()
}

// resident is how many KiB of db's tables and value log (the files
// ReleaseMapped releases) are mapped into the process and resident, from
// /proc/self/smaps.
func resident(t *testing.T, db *DB) int64 {
	t.Helper()
	r, err := mappedResident(db.realDir)
	if err != nil {
		t.Fatalf("mappedResident = %v", err)
	}
	return r >> 10
}

func mappedResident(dir string) (int64, error) {
	var kib int64
	in := false
	err := eachLine("/proc/self/smaps", func(line string) error {
		if m, ok := parseMapsLine(line); ok {
			in = storeFile(dir, m.path)
			return nil
		}
		if rest, ok := strings.CutPrefix(line, "Rss:"); ok && in {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return fmt.Errorf("smaps line %q", line)
			}
			kib += n
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("badgerstore: resident mapped pages: %w", err)
	}
	return kib << 10, nil
}

// TestFileResidentCountsMappedFiles: FileResident grows by the pages of a
// file mapped and read, as the kernel counts them.
func TestFileResidentCountsMappedFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	const size = 8 << 20
	if err := os.WriteFile(path, bytes.Repeat([]byte{1}, size), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	before, err := FileResident()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0
	for i := 0; i < size; i += os.Getpagesize() {
		sum += int(m[i])
	}
	after, err := FileResident()
	if err != nil {
		t.Fatal(err)
	}
	if sum != size/os.Getpagesize() {
		t.Fatalf("read %d pages, want %d", sum, size/os.Getpagesize())
	}
	if after-before < size/2 {
		t.Errorf("FileResident grew by %d bytes reading %d mapped bytes, want most of them", after-before, size)
	}
}
