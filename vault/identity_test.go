package vault

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/vault/secret"
	"github.com/keymesh/keymesh/vault/transport"
)

// TestNoExportedMethodReturnsKeyBytes holds the vault's boundary: no
// exported method of the vault or of its Signer returns bytes that could be
// key material, except those named here with what they are. (Wrapped
// copies, [][]byte sealed to a recipient, are not matched.) A new method
// that returns bytes must be one of these kinds and be named here.
func TestNoExportedMethodReturnsKeyBytes(t *testing.T) {
	allowed := map[string]string{
		"Vault.Decrypt":          "a field's plaintext",
		"Vault.Open":             "a field's plaintext",
		"Vault.OpenPrepared":     "a field's plaintext",
		"Vault.GenerateNodeKeys": "the KEM public key",
		"Vault.GenerateVersion":  "the version's commitment (KeyCheck, an HMAC)",
		"Signer.Sign":            "a signature",
		"Signer.MarshalJSON":     "the public key's name",
		"Signer.DeriveKey":       "a per-purpose key derived one way (libp2p's QUIC keys)",
		// Merged from other branches (named before they land, so the
		// merge stays green): the commitment of a held version, the
		// KMIP raw cipher's plaintext, and the one deliberate export —
		// only of a key created exportable, for a caller holding the
		// export grant (KMIP Get).
		"Vault.VersionCheck": "a version's commitment (KeyCheck)",
		"Vault.VersionFrom":  "the version's commitment (KeyCheck)",
		"Vault.RawOpen":      "a plaintext",
		"Vault.Export":       "an exportable key's material, as secret.Bytes",
	}
	secretTypes := []reflect.Type{
		reflect.TypeFor[[]byte](), reflect.TypeFor[ed25519.PrivateKey](), reflect.TypeFor[*transport.PrivateKey](),
		reflect.TypeFor[crypto.PrivateKey](), reflect.TypeFor[[32]byte](), reflect.TypeFor[[64]byte](),
		reflect.TypeFor[*secret.Bytes](),
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[*Vault](), reflect.TypeFor[*Signer]()} {
		for i := range typ.NumMethod() {
			m := typ.Method(i)
			name := typ.Elem().Name() + "." + m.Name
			for j := range m.Type.NumOut() {
				out := m.Type.Out(j)
				for _, st := range secretTypes {
					if out == st && allowed[name] == "" {
						t.Errorf("%s returns %v: the vault hands out no key bytes (share, accept or sign instead)", name, out)
					}
				}
			}
		}
	}
}

// TestSigner: the node keys are made inside the vault once; the signer
// signs what the returned public key verifies, prints as its public key
// only, derives per-purpose keys, and stops working once destroyed.
func TestSigner(t *testing.T) {
	store := kv.NewMem()
	v := openVault(t, store)
	if _, err := v.Signer(); !errors.Is(err, kv.ErrNotFound) {
		t.Errorf("Signer() before GenerateNodeKeys = %v, want %v", err, kv.ErrNotFound)
	}
	pub, kemPub, err := v.GenerateNodeKeys()
	if err != nil {
		t.Fatalf("GenerateNodeKeys() = %v", err)
	}
	if err := transport.CheckPublicKey(kemPub); err != nil {
		t.Errorf("GenerateNodeKeys() KEM public key: %v", err)
	}
	if _, _, err := v.GenerateNodeKeys(); !errors.Is(err, ErrNodeKeysExist) {
		t.Errorf("second GenerateNodeKeys() = %v, want %v", err, ErrNodeKeysExist)
	}
	s, err := v.Signer()
	if err != nil {
		t.Fatalf("Signer() = %v", err)
	}
	if !s.PublicKey().Equal(pub) || !pub.Equal(s.Public()) {
		t.Errorf("Signer().PublicKey() = %x, want %x", s.PublicKey(), pub)
	}
	msg := []byte("keymesh/v1 event")
	sig, err := s.Sign(nil, msg, crypto.Hash(0))
	if err != nil || !ed25519.Verify(pub, msg, sig) {
		t.Errorf("Sign(msg) = %x, %v; want a signature pub verifies", sig, err)
	}
	seed, err := v.openSecret(SecretSignKey)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(struct{ S *Signer }{s})
	printed := fmt.Sprintf("%v %+v %#v %s %x %q", s, s, s, s, s, s) + string(js)
	for _, secret := range []string{hex.EncodeToString(seed), hex.EncodeToString(seed[:8]), string(seed)} {
		if strings.Contains(printed, secret) || strings.Contains(printed, strings.ToUpper(secret)) {
			t.Errorf("printing the signer reveals its seed: %q", printed)
		}
	}
	if !strings.Contains(printed, hex.EncodeToString(pub)) {
		t.Errorf("printing the signer = %q, want its public key", printed)
	}
	k1, err1 := s.DeriveKey("a")
	k1b, _ := s.DeriveKey("a")
	k2, _ := s.DeriveKey("b")
	if err1 != nil || k1 != k1b || k1 == k2 || bytes.Contains(seed, k1[:16]) {
		t.Errorf("DeriveKey: want a deterministic key per purpose, unlike the seed")
	}
	// The formula p2p.Signer documents (libp2p's QUIC key derivation).
	if want, _ := hkdf.Key(sha256.New, ed25519.NewKeyFromSeed(seed), nil, "a", 32); !bytes.Equal(k1[:], want) {
		t.Error("DeriveKey(info) is not HKDF-SHA256(private key, no salt, info)")
	}
	s.Destroy()
	if _, err := s.Sign(nil, msg, crypto.Hash(0)); !errors.Is(err, ErrSignerDestroyed) {
		t.Errorf("Sign after Destroy = %v, want %v", err, ErrSignerDestroyed)
	}
	if _, err := s.DeriveKey("a"); !errors.Is(err, ErrSignerDestroyed) {
		t.Errorf("DeriveKey after Destroy = %v, want %v", err, ErrSignerDestroyed)
	}
	// A reopened vault gives the same signer.
	v.Close()
	v2 := openVault(t, store)
	s2, err := v2.Signer()
	if err != nil || !s2.PublicKey().Equal(pub) {
		t.Errorf("Signer() after reopen = %v, %v; want public key %x", s2, err, pub)
	}
}

// TestShareAcceptWithVaultKeys: a version generated for a node whose keys
// the vault made is accepted there, unwrapped by the vault's own KEM key;
// a copy of other material is refused (constant-time commitment check).
func TestShareAcceptWithVaultKeys(t *testing.T) {
	clk := newClock()
	a := openVault(t, kv.NewMem(), WithClock(clk.Now))
	b := openVault(t, kv.NewMem(), WithClock(clk.Now))
	_, kemA, err := a.GenerateNodeKeys()
	if err != nil {
		t.Fatal(err)
	}
	_, kemB, err := b.GenerateNodeKeys()
	if err != nil {
		t.Fatal(err)
	}
	var nid [32]byte
	nid[0] = 9
	meta := KeyMeta{Name: "trade/price", Owner: "Org1MSP", State: StateActive, Created: clk.Now()}
	bind := func(r byte) transport.Binding {
		var rec [32]byte
		rec[0] = r
		return transport.Binding{Network: nid, Key: meta.Name, Version: 1, Recipient: rec}
	}
	check, blobs, err := a.GenerateVersion(nid, meta.Name, 1, []Recipient{{KEMKey: kemA, Binding: bind(1)}, {KEMKey: kemB, Binding: bind(2)}})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range []*Vault{a, b} {
		if err := v.SyncKey(meta); err != nil {
			t.Fatal(err)
		}
		if err := v.AcceptVersion(bind(byte(i+1)), clk.Now().Add(-time.Second), check, blobs[i]); err != nil {
			t.Fatalf("AcceptVersion at node %d = %v", i+1, err)
		}
	}
	// Both hold the same material: what one seals the other opens.
	env, err := a.Encrypt(EncryptInput{Key: meta.Name, Plaintext: []byte("42")})
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := b.Open(env, nil); err != nil || string(pt) != "42" {
		t.Errorf("b.Open(a's envelope) = %q, %v", pt, err)
	}
	// b shares on to a third node; a copy under another commitment fails.
	c := openVault(t, kv.NewMem(), WithClock(clk.Now))
	_, kemC, err := c.GenerateNodeKeys()
	if err != nil {
		t.Fatal(err)
	}
	shared, err := b.ShareVersion(meta.Name, 1, []Recipient{{KEMKey: kemC, Binding: bind(3)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SyncKey(meta); err != nil {
		t.Fatal(err)
	}
	bad := check
	bad[0] ^= 1
	if err := c.AcceptVersion(bind(3), clk.Now(), bad, shared[0]); !errors.Is(err, ErrMaterialMismatch) {
		t.Errorf("AcceptVersion(wrong commitment) = %v, want %v", err, ErrMaterialMismatch)
	}
	if err := c.AcceptVersion(bind(3), clk.Now(), check, shared[0]); err != nil {
		t.Errorf("AcceptVersion(shared copy) = %v", err)
	}
}
