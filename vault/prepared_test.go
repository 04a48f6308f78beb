package vault

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/vault/envelope"
)

// TestPreparedContext: Encrypt with a prepared context seals what opens
// with the plain Context and the other way round, in every mode, and the
// failures are those of the plain calls, in the same order.
func TestPreparedContext(t *testing.T) {
	clk := newClock()
	v := openVault(t, kv.NewMem(), WithClock(clk.Now), WithGrace(0))
	if _, err := create(v, "demo/det", CreateOptions{Deterministic: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := create(v, "demo/rnd", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx := envelope.Context{"channel": "trade", "field": "ssn"}
	pc, err := envelope.PrepareContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other, err := envelope.PrepareContext(envelope.Context{"field": "other"})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []EncryptInput{
		{Key: "demo/rnd", Mode: envelope.ModeRandom, Context: ctx, Plaintext: []byte("123-45-6789")},
		{Key: "demo/rnd", Mode: envelope.ModeEndorsement, TxID: "tx1", TxTime: clk.Now(), Context: ctx, Plaintext: []byte("123-45-6789")},
		{Key: "demo/det", Mode: envelope.ModeDeterministic, Context: ctx, Plaintext: []byte("123-45-6789")},
	} {
		t.Run("ok/"+in.Mode.String(), func(t *testing.T) {
			plain := encrypt(t, v, in)
			in.Prepared = pc
			prepared := encrypt(t, v, in)
			if in.Mode != 0 && in.Mode != envelope.ModeRandom && prepared.Text() != plain.Text() {
				t.Errorf("Encrypt(prepared) = %s, Encrypt(context) = %s, want the same", prepared.Text(), plain.Text())
			}
			for _, env := range []*envelope.Envelope{plain, prepared} {
				if got, err := v.Open(env, ctx); err != nil || !bytes.Equal(got, in.Plaintext) {
					t.Errorf("Open(env, context) = %q, %v, want %q", got, err, in.Plaintext)
				}
				if got, err := v.OpenPrepared(env, pc); err != nil || !bytes.Equal(got, in.Plaintext) {
					t.Errorf("OpenPrepared(env) = %q, %v, want %q", got, err, in.Plaintext)
				}
				if _, err := v.OpenPrepared(env, other); !errors.Is(err, ErrDecrypt) {
					t.Errorf("OpenPrepared(env, other context) = %v, want %v", err, ErrDecrypt)
				}
			}
		})
	}
	t.Run("ok/nil-is-empty", func(t *testing.T) {
		env := encrypt(t, v, EncryptInput{Key: "demo/rnd", Plaintext: []byte("x")})
		if got, err := v.OpenPrepared(env, nil); err != nil || string(got) != "x" {
			t.Errorf("OpenPrepared(env, nil) = %q, %v, want %q", got, err, "x")
		}
	})
	// Failures: the plain call's error, whatever the prepared context.
	for _, tc := range []struct {
		name string
		in   EncryptInput
		want error
	}{
		{"fail/unknown-key", EncryptInput{Key: "demo/none"}, ErrKeyNotFound},
		{"fail/deterministic-not-allowed", EncryptInput{Key: "demo/rnd", Mode: envelope.ModeDeterministic}, ErrModeNotAllowed},
		{"fail/txid-in-random", EncryptInput{Key: "demo/rnd", TxID: "tx"}, ErrInvalidRequest},
		{"fail/endorsement-before-key", EncryptInput{Key: "demo/rnd", Mode: envelope.ModeEndorsement, TxID: "tx", TxTime: clk.Now().Add(-time.Hour)}, ErrKeyNotUsable},
		{"fail/too-large", EncryptInput{Key: "demo/rnd", Plaintext: make([]byte, envelope.MaxPlaintextSize+1)}, envelope.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Context = ctx
			_, plainErr := v.Encrypt(tc.in)
			tc.in.Prepared = pc
			_, err := v.Encrypt(tc.in)
			if !errors.Is(err, tc.want) || plainErr == nil || err.Error() != plainErr.Error() {
				t.Errorf("Encrypt(prepared) = %v, Encrypt(context) = %v, want both %v", err, plainErr, tc.want)
			}
		})
	}
	t.Run("fail/open", func(t *testing.T) {
		env := encrypt(t, v, EncryptInput{Key: "demo/rnd", Context: ctx})
		missing := *env
		missing.Key = "demo/none"
		future := *env
		future.Version = 9
		for _, e := range []*envelope.Envelope{&missing, &future} {
			_, plainErr := v.Open(e, ctx)
			if _, err := v.OpenPrepared(e, pc); err == nil || plainErr == nil || err.Error() != plainErr.Error() {
				t.Errorf("OpenPrepared(%s v%d) = %v, Open() = %v, want the same error", e.Key, e.Version, err, plainErr)
			}
		}
		if _, err := v.Destroy("demo/rnd"); err != nil {
			t.Fatal(err)
		}
		_, plainErr := v.Open(env, ctx)
		if _, err := v.OpenPrepared(env, pc); !errors.Is(err, ErrKeyDestroyed) || plainErr == nil || err.Error() != plainErr.Error() {
			t.Errorf("OpenPrepared(destroyed) = %v, Open() = %v, want both %v", err, plainErr, ErrKeyDestroyed)
		}
	})
}
