package badgerstore

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/keymesh/keymesh/kv"
)

// TestBadgerstore_ScanSkippingIsFilteredScan: ScanSkipping yields exactly
// what Scan yields less the keys under the skipped prefixes, in order,
// including adjacent skipped prefixes, a prefix whose end carries over
// 0xff bytes, and a prefix that runs to the end of the store.
func TestBadgerstore_ScanSkippingIsFilteredScan(t *testing.T) {
	db := mustOpen(t, t.TempDir())
	keys := []string{"a", "a/1", "b/1", "b/2", "b0", "c/1", "c/\xff", "c/\xff\xff", "c0", "d/1", "e/1", "\xff\xff", "\xff\xffz"}
	if err := db.Update(func(tx kv.Txn) error {
		for i, k := range keys {
			if err := tx.Set([]byte(k), fmt.Appendf(nil, "v%d", i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	collect := func(scan func(fn func(k, v []byte) error) error) []string {
		t.Helper()
		var out []string
		if err := scan(func(k, v []byte) error { out = append(out, string(k)+"="+string(v)); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		prefix string
		skip   []string
	}{
		{"ok/none", "", nil},
		{"ok/one", "", []string{"b/"}},
		{"ok/adjacent", "", []string{"b/", "b0", "c/"}},
		{"ok/carry", "", []string{"c/\xff"}},
		{"ok/to-the-end", "", []string{"\xff\xff"}},
		{"ok/within-prefix", "c", []string{"c/"}},
		{"ok/not-present", "", []string{"x/"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var skip [][]byte
			for _, s := range tc.skip {
				skip = append(skip, []byte(s))
			}
			want := collect(func(fn func(k, v []byte) error) error {
				return db.Scan([]byte(tc.prefix), func(k, v []byte) error {
					if slices.ContainsFunc(skip, func(s []byte) bool { return bytes.HasPrefix(k, s) }) {
						return nil
					}
					return fn(k, v)
				})
			})
			got := collect(func(fn func(k, v []byte) error) error { return db.ScanSkipping([]byte(tc.prefix), skip, fn) })
			if !slices.Equal(got, want) {
				t.Errorf("ScanSkipping(%q, %q) = %q, want %q", tc.prefix, tc.skip, got, want)
			}
		})
	}
}
