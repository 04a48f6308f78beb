package vault

import (
	"bytes"
	"testing"
	"time"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/vault/envelope"
)

// TestFinding8_NonceBudgetIsPerSealer is the regression test of issue 8's
// eighth finding (each holder counted its own random-nonce encryptions up
// to 2^31 under the one version key, so N holders could reach N × 2^31
// nonces under one GCM key, past NIST SP 800-38D's 2^32): two holders of
// the same version seal under different subkeys — each envelope names its
// sealer, whose id enters the subkey derivation — so each holder's own
// count (rotate at 2^30, refuse at 2^31) bounds the nonces under its
// subkey. Each holder still opens the other's envelopes, and an envelope
// whose sealer id is changed does not open.
func TestFinding8_NonceBudgetIsPerSealer(t *testing.T) {
	material := bytes.Repeat([]byte{0x3C}, envelope.KeySize)
	open := func(id byte) *Vault {
		v, err := Open(kv.NewMem(), MasterKey(bytes.Repeat([]byte{id}, MasterKeySize)),
			WithSealerID(envelope.SealerID{id, id, id, id, id, id, id, id}))
		if err != nil {
			t.Fatal(err)
		}
		if err := v.SyncKey(KeyMeta{Name: "trade/price", Owner: "Org1MSP", State: StateActive, MinDecryptionVersion: 1}); err != nil {
			t.Fatal(err)
		}
		if err := v.importVersion("trade/price", 1, time.Now().Add(-time.Minute), material); err != nil {
			t.Fatal(err)
		}
		return v
	}
	a, b := open(1), open(2)
	ctx := envelope.Context{"field": "price"}
	ea, err := a.Encrypt(EncryptInput{Key: "trade/price", Context: ctx, Plaintext: []byte("101.25")})
	if err != nil {
		t.Fatal(err)
	}
	eb, err := b.Encrypt(EncryptInput{Key: "trade/price", Context: ctx, Plaintext: []byte("101.25")})
	if err != nil {
		t.Fatal(err)
	}
	if ea.Header.Sealer == eb.Header.Sealer || ea.Header.Sealer != a.SealerID() || eb.Header.Sealer != b.SealerID() {
		t.Fatalf("sealers %x and %x, want each holder's own id (%x, %x)", ea.Header.Sealer, eb.Header.Sealer, a.SealerID(), b.SealerID())
	}
	for _, c := range []struct {
		v   *Vault
		env *envelope.Envelope
	}{{a, eb}, {b, ea}} {
		if pt, err := c.v.Decrypt(c.env.Text(), ctx); err != nil || string(pt) != "101.25" {
			t.Errorf("cross-holder Decrypt = %q, %v", pt, err)
		}
	}
	forged := *ea
	forged.Header.Sealer = b.SealerID() // claim the other holder's subkey
	if _, err := b.Decrypt(forged.Text(), ctx); err == nil {
		t.Error("an envelope opened under another sealer's subkey")
	}
}
