package vault

import (
	"bytes"
	"crypto/fips140"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/keymesh/keymesh/internal/tamper"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/vault/envelope"
)

// TestLegacyStoreOpens opens a store written by keymesh before module nonces
// (testdata/store-v1.json, made at 20c008f: KEK seals with caller-drawn
// nonces, envelopes of format 1) and decrypts what it wrote. It runs under
// GODEBUG=fips140=only too: opening with a given nonce is decryption, which
// the module allows.
func TestLegacyStoreOpens(t *testing.T) {
	data, err := os.ReadFile("testdata/store-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Comment   string            `json:"comment"`
		Secret    map[string]string `json:"secret"`
		Store     map[string]string `json:"store"`
		Envelopes []struct {
			Text      string            `json:"text"`
			Plaintext string            `json:"plaintext"`
			Context   map[string]string `json:"context"`
		} `json:"envelopes"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	store := kv.NewMem()
	err = store.Update(func(tx kv.Txn) error {
		for k, v := range f.Store {
			kb, _ := hex.DecodeString(k)
			vb, _ := hex.DecodeString(v)
			if err := tx.Set(kb, vb); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	nid := envelope.NetworkID(bytes.Repeat([]byte{0x4e}, 32))
	v, err := Open(store, MasterKey(bytes.Repeat([]byte{0x6b}, 32)), WithNetwork(nid))
	if err != nil {
		t.Fatalf("Open(legacy store) = %v (fips140 enforced: %v)", err, fips140.Enforced())
	}
	defer v.Close()
	if len(f.Envelopes) < 3 {
		t.Fatalf("%d legacy envelopes, want 3", len(f.Envelopes))
	}
	for _, e := range f.Envelopes {
		pt, err := v.Decrypt(e.Text, e.Context)
		if err != nil || string(pt) != e.Plaintext {
			t.Errorf("Decrypt(legacy %.20s...) = %q, %v, want %q", e.Text, pt, err, e.Plaintext)
		}
	}
	for name, want := range f.Secret {
		got, err := v.openSecret(name)
		if err != nil || string(got) != want {
			t.Errorf("openSecret(%q) = %q, %v, want %q", name, got, err, want)
		}
	}
	// The old store takes new writes: a new envelope is of format 2,
	// names this vault's sealer id, and opens.
	env, err := v.Encrypt(EncryptInput{Key: "legacy/random", Context: envelope.Context{"field": "price"}, Plaintext: []byte("new")})
	if err != nil {
		t.Fatal(err)
	}
	if env.Format != envelope.FormatVersion || env.Sealer != v.SealerID() {
		t.Errorf("new envelope format %d sealer %x, want %d, %x", env.Format, env.Sealer, envelope.FormatVersion, v.SealerID())
	}
	if pt, err := v.Open(env, envelope.Context{"field": "price"}); err != nil || string(pt) != "new" {
		t.Errorf("Open(new) = %q, %v", pt, err)
	}
}

func TestSealerID(t *testing.T) {
	store := kv.NewMem()
	v := openVault(t, store)
	id := v.SealerID()
	if id == (envelope.SealerID{}) {
		t.Fatal("SealerID() is zero")
	}
	v.Close()
	// Persistent.
	v = openVault(t, store)
	if got := v.SealerID(); got != id {
		t.Fatalf("SealerID() after reopen = %x, want %x", got, id)
	}
	v.Close()
	// Pinned on a new store; a store that holds another refuses.
	pin := envelope.SealerID{1, 2, 3, 4, 5, 6, 7, 8}
	v2 := openVault(t, kv.NewMem(), WithSealerID(pin))
	if got := v2.SealerID(); got != pin {
		t.Fatalf("SealerID() with WithSealerID = %x, want %x", got, pin)
	}
	if _, err := Open(store, MasterKey(testMaster), WithSealerID(pin)); !errors.Is(err, ErrSealerID) {
		t.Fatalf("Open(other pinned id) = %v, want %v", err, ErrSealerID)
	}
	// Authenticated: a changed stored id fails Open (bits sampled unless
	// KEYMESH_EXHAUSTIVE=1; see internal/tamper).
	sealed, _ := store.Get(sealerIDKey)
	for _, i := range tamper.Bits(t, len(sealed)) {
		b := tamper.Flip(sealed, i)
		s := kv.NewMem()
		_ = store.Scan(nil, func(k, val []byte) error {
			return s.Update(func(tx kv.Txn) error { return tx.Set(k, val) })
		})
		_ = s.Update(func(tx kv.Txn) error { return tx.Set(sealerIDKey, b) })
		// The record's tag (kv.ErrTampered) or its seal (ErrSealerID)
		// refuses it, whichever is checked first.
		if _, err := Open(s, MasterKey(testMaster)); !errors.Is(err, ErrSealerID) && !errors.Is(err, kv.ErrTampered) {
			t.Fatalf("Open(sealer id bit %d flipped) = %v, want %v or %v", i, err, ErrSealerID, kv.ErrTampered)
		}
	}
}

// TestSealerSubkeysAcrossHolders checks that two holders of one key version
// seal under different subkeys and open each other's envelopes.
func TestSealerSubkeysAcrossHolders(t *testing.T) {
	a := openVault(t, kv.NewMem(), WithSealerID(envelope.SealerID{'a'}))
	b := openVault(t, kv.NewMem(), WithSealerID(envelope.SealerID{'b'}))
	material := bytes.Repeat([]byte{0x33}, envelope.KeySize)
	for _, v := range []*Vault{a, b} {
		if err := v.SyncKey(KeyMeta{Name: "demo/shared", Owner: "Org1MSP", State: StateActive, Deterministic: true}); err != nil {
			t.Fatal(err)
		}
		if err := v.importVersion("demo/shared", 1, time.Now().Add(-time.Minute), material); err != nil {
			t.Fatal(err)
		}
	}
	ctx := envelope.Context{"field": "x"}
	ea, err := a.Encrypt(EncryptInput{Key: "demo/shared", Context: ctx, Plaintext: []byte("from a")})
	if err != nil {
		t.Fatal(err)
	}
	if ea.Sealer != a.SealerID() {
		t.Fatalf("envelope sealer %x, want %x", ea.Sealer, a.SealerID())
	}
	if pt, err := b.Open(ea, ctx); err != nil || string(pt) != "from a" {
		t.Fatalf("b.Open(a's envelope) = %q, %v", pt, err)
	}
	// The derived modes name no sealer: two holders give the same bytes,
	// so Fabric endorsements match across orgs' nodes.
	txTime := time.Now()
	for _, in := range []EncryptInput{
		{Key: "demo/shared", Mode: envelope.ModeEndorsement, TxID: "tx-9", TxTime: txTime, Context: ctx, Plaintext: []byte("v")},
		{Key: "demo/shared", Mode: envelope.ModeDeterministic, Context: ctx, Plaintext: []byte("v")},
	} {
		e1, err1 := a.Encrypt(in)
		e2, err2 := b.Encrypt(in)
		if err1 != nil || err2 != nil {
			t.Fatalf("Encrypt(%v) = %v, %v", in.Mode, err1, err2)
		}
		if e1.Text() != e2.Text() || e1.Sealer != (envelope.SealerID{}) {
			t.Fatalf("%v: holders disagree: %s vs %s", in.Mode, e1.Text(), e2.Text())
		}
	}
}
