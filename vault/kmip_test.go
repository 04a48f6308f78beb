package vault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"errors"
	"testing"
	"time"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/vault/secret"
)

// TestRawSealOpen checks KMIP's raw AES-256-GCM: a round trip, one uniform
// error for every bit flip and truncation of nonce, ciphertext and tag and
// for wrong additional data, the lifecycle rules, and that the material
// Export returns is the very key RawSeal used.
func TestRawSealOpen(t *testing.T) {
	v := openVault(t, kv.NewMem(), WithGrace(0))
	if _, err := create(v, "kmip/a", CreateOptions{Exportable: true}); err != nil {
		t.Fatal(err)
	}
	pt, aad := []byte("a field of a database"), []byte("collection=users")
	ct, err := v.RawSeal("kmip/a", pt, aad)
	if err != nil {
		t.Fatal(err)
	}
	if ct.Version != 1 || len(ct.Nonce) != RawNonceSize || len(ct.Tag) != RawTagSize || len(ct.Ciphertext) != len(pt) {
		t.Fatalf("RawSeal = %+v", ct)
	}
	got, n, err := v.RawOpen("kmip/a", ct.Nonce, ct.Ciphertext, ct.Tag, aad)
	if err != nil || n != 1 || !bytes.Equal(got, pt) {
		t.Fatalf("RawOpen = %q, %d, %v", got, n, err)
	}
	flip := func(b []byte, i int) []byte { c := bytes.Clone(b); c[i] ^= 1; return c }
	for name, in := range map[string][4][]byte{
		"nonce bit":   {flip(ct.Nonce, 3), ct.Ciphertext, ct.Tag, aad},
		"data bit":    {ct.Nonce, flip(ct.Ciphertext, 0), ct.Tag, aad},
		"tag bit":     {ct.Nonce, ct.Ciphertext, flip(ct.Tag, 15), aad},
		"short data":  {ct.Nonce, ct.Ciphertext[1:], ct.Tag, aad},
		"short tag":   {ct.Nonce, ct.Ciphertext, ct.Tag[:15], aad},
		"short nonce": {ct.Nonce[:11], ct.Ciphertext, ct.Tag, aad},
		"wrong aad":   {ct.Nonce, ct.Ciphertext, ct.Tag, []byte("collection=orders")},
		"no aad":      {ct.Nonce, ct.Ciphertext, ct.Tag, nil},
	} {
		if _, _, err := v.RawOpen("kmip/a", in[0], in[1], in[2], in[3]); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: RawOpen error = %v, want ErrDecrypt", name, err)
		}
	}
	// The exported material is the GCM key.
	m, n, err := v.Export("kmip/a")
	if err != nil || n != 1 {
		t.Fatalf("Export = %d, %v", n, err)
	}
	defer m.Clear()
	if s := m.String(); s != secret.Redacted {
		t.Errorf("exported material prints as %q", s)
	}
	raw, _ := m.Copy()
	// An independent open with crypto/cipher: a GCM with a caller's nonce,
	// which FIPS 140-only mode refuses outside the module's own use.
	fips140.WithoutEnforcement(func() {
		block, err := aes.NewCipher(raw)
		if err != nil {
			t.Fatal(err)
		}
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := gcm.Open(nil, ct.Nonce, append(bytes.Clone(ct.Ciphertext), ct.Tag...), aad); err != nil || !bytes.Equal(out, pt) {
			t.Errorf("local open with the exported key = %q, %v", out, err)
		}
	})
	clear(raw)
	if same, err := v.SameMaterial("kmip/a", 1, m); err != nil || !same {
		t.Errorf("SameMaterial = %v, %v", same, err)
	}
	// After a rotation, ciphertexts of version 1 still open, new ones use 2.
	if _, err := rotate(v, "kmip/a", new(time.Duration)); err != nil {
		t.Fatal(err)
	}
	ct2, err := v.RawSeal("kmip/a", pt, nil)
	if err != nil || ct2.Version != 2 {
		t.Fatalf("RawSeal after rotation = v%d, %v", ct2.Version, err)
	}
	if _, n, err := v.RawOpen("kmip/a", ct.Nonce, ct.Ciphertext, ct.Tag, aad); err != nil || n != 1 {
		t.Errorf("RawOpen of a version 1 ciphertext = %d, %v", n, err)
	}
	// Compromised: decrypt only. Destroyed: nothing.
	if _, err := setState(v, "kmip/a", StateCompromised); err != nil {
		t.Fatal(err)
	}
	if _, err := v.RawSeal("kmip/a", pt, nil); !errors.Is(err, ErrKeyNotUsable) {
		t.Errorf("RawSeal compromised error = %v", err)
	}
	if _, _, err := v.RawOpen("kmip/a", ct2.Nonce, ct2.Ciphertext, ct2.Tag, nil); err != nil {
		t.Errorf("RawOpen compromised = %v", err)
	}
	if _, err := v.Destroy("kmip/a"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.RawOpen("kmip/a", ct.Nonce, ct.Ciphertext, ct.Tag, aad); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("RawOpen destroyed error = %v", err)
	}
	if _, _, err := v.Export("kmip/a"); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("Export destroyed error = %v", err)
	}
}

// TestExportRefusesNonExportable checks that only a key created exportable
// ever exports.
func TestExportRefusesNonExportable(t *testing.T) {
	v := openVault(t, kv.NewMem())
	if _, err := create(v, "kmip/b", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if m, _, err := v.Export("kmip/b"); !errors.Is(err, ErrNotExportable) || m != nil {
		t.Errorf("Export of a non-exportable key = %v, %v", m, err)
	}
	if _, err := v.RawSeal("kmip/none", nil, nil); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("RawSeal of an unknown key error = %v", err)
	}
}
