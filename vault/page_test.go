package vault

import (
	"fmt"
	"testing"

	"github.com/keymesh/keymesh/kv"
)

// BenchmarkOpen: opening a vault of 2,000 keys (one version each) on an
// in-memory store, after a clean shutdown (SaveCounts).
func BenchmarkOpen(b *testing.B) {
	store := kv.NewMem()
	v, err := Open(store, MasterKey(testMaster))
	if err != nil {
		b.Fatal(err)
	}
	for i := range 2000 {
		if _, err := create(v, fmt.Sprintf("bench/k%d", i), CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	v.Close()
	b.ResetTimer()
	for b.Loop() {
		v, err := Open(store, MasterKey(testMaster))
		if err != nil {
			b.Fatal(err)
		}
		if err := v.SaveCounts(); err != nil {
			b.Fatal(err)
		}
		v.Close()
	}
}

// TestListPage: pages cover List in order.
func TestListPage(t *testing.T) {
	store := kv.NewMem()
	v0 := openVault(t, store)
	// Names created out of order, some before a reopen (loaded) and some
	// after (inserted into the sorted names).
	for _, i := range []int{5, 1, 3} {
		if _, err := create(v0, fmt.Sprintf("demo/k%d", i), CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	v0.Close()
	v, err := Open(store, MasterKey(testMaster))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for _, i := range []int{6, 0, 4, 2} {
		if _, err := create(v, fmt.Sprintf("demo/k%d", i), CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if v.Count() != 7 {
		t.Fatalf("Count() = %d, want 7", v.Count())
	}
	if page, more := v.ListPage("demo/k3", 2); len(page) != 2 || page[0].Name != "demo/k4" || page[1].Name != "demo/k5" || !more {
		t.Errorf("ListPage(after demo/k3, 2) = %v, %v; want k4, k5 and more", page, more)
	}
	if page, more := v.ListPage("demo/k35", 10); len(page) != 3 || page[0].Name != "demo/k4" || more {
		t.Errorf("ListPage(after a name between keys) = %d keys, %v; want k4..k6 and no more", len(page), more)
	}
	var got []string
	after := ""
	for {
		page, more := v.ListPage(after, 3)
		for _, k := range page {
			got = append(got, k.Name)
		}
		if !more {
			break
		}
		after = page[len(page)-1].Name
	}
	all := v.List()
	if len(got) != len(all) {
		t.Fatalf("pages hold %d keys, want %d", len(got), len(all))
	}
	for i := range all {
		if got[i] != all[i].Name {
			t.Fatalf("page key %d = %s, want %s", i, got[i], all[i].Name)
		}
	}
}

// BenchmarkTag: one record tag (kv.Tagger), as every audit entry costs.
func BenchmarkTag(b *testing.B) {
	s, err := deriveSubkeys(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	key, val := []byte("audit/e/00000001"), make([]byte, 200)
	b.ReportAllocs()
	for b.Loop() {
		s.Tag(1, key, val)
	}
}
