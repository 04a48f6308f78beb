package audit

import (
	"errors"
	"testing"

	"github.com/keymesh/keymesh/kv"
)

// legacyStore writes n entries in the layout an older keymesh kept in a
// kv.Store: entries under "audit/e/" ‖ seq and a head record.
func legacyStore(t *testing.T, n int) (*kv.Mem, []Entry) {
	t.Helper()
	s := kv.NewMem()
	clock := stepClock()
	var prev [32]byte
	var out []Entry
	err := s.Update(func(tx kv.Txn) error {
		for i := range n {
			e := testEntry(i)
			e.Seq, e.Time, e.Prev = uint64(i+1), clock(), prev
			v := appendEntry(nil, &e)
			if err := tx.Set(entryKey(e.Seq), v); err != nil {
				return err
			}
			prev = e.Hash
			out = append(out, e)
		}
		return tx.Set([]byte(headKey), encodeHead(uint64(n), prev))
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, out
}

func TestImport(t *testing.T) {
	t.Parallel()
	src, want := legacyStore(t, 1300) // more than two import batches
	m := NewMemFS()
	rep, err := Import(m, testKey, src, WithLogger(quiet), WithSegmentSize(64<<10))
	if err != nil {
		t.Fatalf("Import() = %v", err)
	}
	if rep.Entries != 1300 || rep.Head != want[1299].Hash {
		t.Fatalf("Import() = %d entries, head %x; want 1300, %x", rep.Entries, rep.Head, want[1299].Hash)
	}
	l := openLog(t, m, WithExisting())
	mustVerify(t, l, 1300)
	tail, err := l.Tail(1000)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range tail {
		if w := want[300+i]; e != w {
			t.Fatalf("imported entry %d = %+v, want %+v", e.Seq, e, w)
		}
	}
	e, err := l.Append(t.Context(), testEntry(0))
	if err != nil || e.Seq != 1301 || e.Prev != want[1299].Hash {
		t.Fatalf("Append after Import = seq %d, %v; want 1301 chained to the imported head", e.Seq, err)
	}
	if _, err := Import(m, testKey, src, WithLogger(quiet)); err == nil {
		t.Fatal("Import into a directory that holds a log = nil error, want error")
	}
}

func TestImportRefusesDamage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		tamper func(tx kv.Txn) error
	}{
		{"fail/entry-deleted", func(tx kv.Txn) error { return tx.Delete(entryKey(3)) }},
		{"fail/last-deleted", func(tx kv.Txn) error { return tx.Delete(entryKey(5)) }},
		{"fail/head-deleted", func(tx kv.Txn) error { return tx.Delete([]byte(headKey)) }},
		{"fail/entry-altered", func(tx kv.Txn) error {
			v, err := tx.Get(entryKey(2))
			if err != nil {
				return err
			}
			v[60] ^= 1
			return tx.Set(entryKey(2), v)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, _ := legacyStore(t, 5)
			if err := src.Update(tc.tamper); err != nil {
				t.Fatal(err)
			}
			_, err := Import(NewMemFS(), testKey, src, WithLogger(quiet))
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("Import() of a damaged old log = %v, want ErrTampered", err)
			}
		})
	}
}

func TestOpenExisting(t *testing.T) {
	t.Parallel()
	if _, err := Open(NewMemFS(), testKey, WithExisting()); !errors.Is(err, ErrMissing) {
		t.Fatalf("Open(empty, WithExisting()) = %v, want ErrMissing", err)
	}
}
