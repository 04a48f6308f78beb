package vault

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/keymesh/keymesh/kv"
)

// TestMeshImport checks that two vaults given the same material for a
// version produce envelopes each other can open, that versions not held
// leave holes that refuse clearly, and that a forgotten version is gone
// from the store.
func TestMeshImport(t *testing.T) {
	clk := newClock()
	storeA, storeB := kv.NewMem(), kv.NewMem()
	a := openVault(t, storeA, WithClock(clk.Now))
	b, err := Open(storeB, MasterKey(bytes.Repeat([]byte{7}, 32)), WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	meta := KeyMeta{Name: "trade/price", Owner: "Org1MSP", State: StateActive, Created: clk.Now()}
	m1 := bytes.Repeat([]byte{1}, 32)
	m3 := bytes.Repeat([]byte{3}, 32)
	for _, v := range []*Vault{a, b} {
		if err := v.SyncKey(meta); err != nil {
			t.Fatal(err)
		}
		if err := v.importVersion("trade/price", 1, clk.Now(), m1); err != nil {
			t.Fatal(err)
		}
	}
	// b skips version 2 and holds version 3.
	if err := a.importVersion("trade/price", 3, clk.Now(), m3); err != nil {
		t.Fatal(err)
	}
	if err := b.importVersion("trade/price", 3, clk.Now(), m3); err != nil {
		t.Fatal(err)
	}
	env := encrypt(t, a, EncryptInput{Key: "trade/price", Plaintext: []byte("42")})
	if env.Version != 3 {
		t.Fatalf("Encrypt used version %d, want 3", env.Version)
	}
	if got, err := b.Open(env, nil); err != nil || string(got) != "42" {
		t.Fatalf("other vault Open = %q, %v, want 42", got, err)
	}
	if !b.Holds("trade/price", 1) || b.Holds("trade/price", 2) || !b.Holds("trade/price", 3) {
		t.Error("Holds() does not reflect versions 1 and 3 held, 2 not")
	}
	// Re-import is a no-op; a conflicting import after use is refused.
	if err := a.importVersion("trade/price", 3, clk.Now(), m3); err != nil {
		t.Errorf("re-import error = %v", err)
	}
	if err := a.importVersion("trade/price", 3, clk.Now(), m1); !errors.Is(err, ErrMaterialConflict) {
		t.Errorf("conflicting import after use error = %v, want %v", err, ErrMaterialConflict)
	}
	got, err := a.heldMaterial("trade/price", 3)
	if err != nil || !bytes.Equal(got, m3) {
		t.Errorf("Material = %x, %v", got, err)
	}
	if err := b.ForgetVersion("trade/price", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Open(env, nil); !errors.Is(err, ErrVersionNotHeld) {
		t.Errorf("Open after ForgetVersion error = %v, want %v", err, ErrVersionNotHeld)
	}
	if _, err := storeB.Get(materialKey("trade/price", 3)); !errors.Is(err, kv.ErrNotFound) {
		t.Errorf("forgotten material still in the store (Get error %v)", err)
	}
	// State follows the network; reopening keeps holes and material.
	meta.State = StateDeactivated
	if err := b.SyncKey(meta); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b2, err := Open(storeB, MasterKey(bytes.Repeat([]byte{7}, 32)), WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	ki, _ := b2.Get("trade/price")
	if ki.State != StateDeactivated || ki.LatestVersion != 3 || b2.Holds("trade/price", 3) || !b2.Holds("trade/price", 1) {
		t.Errorf("after reopen: %+v", ki)
	}
	clk.Add(time.Second)
}
