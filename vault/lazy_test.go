package vault

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/vault/envelope"
)

// TestVault_LazyUnwrap: Open unwraps no version; the first use unwraps
// it once, however many callers race to it, and Close and Destroy clear
// it again.
func TestVault_LazyUnwrap(t *testing.T) {
	store := kv.NewMem()
	v := openVault(t, store)
	for i := range 3 {
		if _, err := create(v, fmt.Sprintf("demo/k%d", i), CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := envelope.Context{"f": "x"}
	env := encrypt(t, v, EncryptInput{Key: "demo/k0", Context: ctx, Plaintext: []byte("hello")})
	v.Close()

	v2 := openVault(t, store)
	defer v2.Close()
	for i := range 3 {
		r, err := v2.ring(fmt.Sprintf("demo/k%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if !r.versions[0].held || r.versions[0].sealer.Load() != nil {
			t.Fatalf("after Open, demo/k%d v1 held=%v unwrapped=%v, want held and not unwrapped", i, r.versions[0].held, r.versions[0].sealer.Load() != nil)
		}
	}
	r0, _ := v2.ring("demo/k0")
	var wg sync.WaitGroup
	seen := make([]*envelope.Sealer, 16)
	errs := make([]error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if g%2 == 0 {
				_, errs[g] = v2.Open(env, ctx)
			} else {
				_, errs[g] = v2.Encrypt(EncryptInput{Key: "demo/k0", Context: ctx, Plaintext: []byte("x")})
			}
			seen[g] = r0.versions[0].sealer.Load()
		}()
	}
	wg.Wait()
	for g := range 16 {
		if errs[g] != nil {
			t.Fatalf("caller %d: %v", g, errs[g])
		}
		if seen[g] == nil || seen[g] != seen[0] {
			t.Fatalf("caller %d saw sealer %p, want the one unwrapped once (%p)", g, seen[g], seen[0])
		}
	}
	if pt, err := v2.Open(env, ctx); err != nil || string(pt) != "hello" {
		t.Fatalf("Open after reopen = %q, %v", pt, err)
	}
	if r1, _ := v2.ring("demo/k1"); r1.versions[0].sealer.Load() != nil {
		t.Error("an unused key was unwrapped")
	}
	if _, err := v2.Destroy("demo/k0"); err != nil {
		t.Fatal(err)
	}
	if r0.versions[0].held || r0.versions[0].sealer.Load() != nil {
		t.Error("a destroyed version is still held or unwrapped")
	}
	v2.Close()
	r2, _ := v2.ring("demo/k2")
	if r2 != nil {
		t.Error("Close kept a ring")
	}
}

// TestVault_OpenChecksMaterial: Open still refuses a store whose held
// version has no wrapped material, though it unwraps nothing.
func TestVault_OpenChecksMaterial(t *testing.T) {
	store := kv.NewMem()
	v := openVault(t, store)
	if _, err := create(v, "demo/k", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	v.Close()
	if err := v.Store().Update(func(tx kv.Txn) error { return tx.Delete(materialKey("demo/k", 1)) }); err != nil {
		t.Fatal(err)
	}
	_, err := Open(store, MasterKey(testMaster))
	if err == nil || !strings.Contains(err.Error(), `"demo/k" version 1`) {
		t.Fatalf("Open without the material = %v, want a refusal naming the version", err)
	}
}

// TestVault_LegacySavedCounts: counts a build before counts epochs saved
// (no epoch, no epoch record) are shown once and cleared at Open, so a
// crash after that shows the lease again.
func TestVault_LegacySavedCounts(t *testing.T) {
	store := kv.NewMem()
	v := openVault(t, store, WithCountLease(1000))
	if _, err := create(v, "demo/k", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		encrypt(t, v, EncryptInput{Key: "demo/k"})
	}
	if err := v.SaveCounts(); err != nil {
		t.Fatal(err)
	}
	r, _ := v.ring("demo/k")
	rec := r.rec
	rec.Versions = slices.Clone(rec.Versions)
	rec.Versions[0].UsedEpoch = 0
	b, _ := json.Marshal(rec)
	auth := v.Store()
	v.Close()
	if err := auth.Update(func(tx kv.Txn) error {
		if err := tx.Set(recordKey("demo/k"), b); err != nil {
			return err
		}
		return tx.Delete(countsKey)
	}); err != nil {
		t.Fatal(err)
	}
	v2 := openVault(t, store, WithCountLease(1000))
	if ki, _ := v2.Get("demo/k"); ki.Versions[0].Encryptions != 3 {
		t.Fatalf("shown count from a legacy save = %d, want 3", ki.Versions[0].Encryptions)
	}
	v2.Close() // a crash: no SaveCounts
	v3 := openVault(t, store, WithCountLease(1000))
	defer v3.Close()
	if ki, _ := v3.Get("demo/k"); ki.Versions[0].Encryptions < 1000 {
		t.Fatalf("shown count after a crash = %d, want the lease", ki.Versions[0].Encryptions)
	}
}
