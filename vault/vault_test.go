package vault

import (
	"bytes"
	"errors"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/kv/badgerstore"
	"github.com/keymesh/keymesh/vault/envelope"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)} }

var testMaster = bytes.Repeat([]byte{0x42}, MasterKeySize)

func openBadger(t *testing.T, dir string) *badgerstore.DB {
	t.Helper()
	db, err := badgerstore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func openVault(t *testing.T, store kv.Store, opts ...Option) *Vault {
	t.Helper()
	v, err := Open(store, MasterKey(testMaster), opts...)
	if err != nil {
		t.Fatalf("Open() error = %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

func TestPinnedStates(t *testing.T) {
	want := map[State]uint8{StatePreActive: 1, StateActive: 2, StateDeactivated: 3, StateCompromised: 4, StateDestroyed: 5}
	for s, n := range want {
		if uint8(s) != n {
			t.Errorf("%s = %d, want %d (persisted value)", s, uint8(s), n)
		}
		got, err := ParseState(s.String())
		if err != nil || got != s {
			t.Errorf("ParseState(%q) = %v, %v, want %v", s.String(), got, err, s)
		}
	}
}

func TestMasterSecret(t *testing.T) {
	dir := t.TempDir()
	store := openBadger(t, dir)
	defer store.Close()
	v := openVault(t, store)
	if _, err := create(v, "demo/ssn", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	v.Close()

	wrong := bytes.Repeat([]byte{0x43}, MasterKeySize)
	if _, err := Open(store, MasterKey(wrong)); !errors.Is(err, ErrWrongMasterSecret) {
		t.Errorf("Open(wrong key) error = %v, want %v", err, ErrWrongMasterSecret)
	}
	if _, err := Open(store, MasterPassphrase([]byte("correct horse battery"))); !errors.Is(err, ErrWrongMasterSecret) {
		t.Errorf("Open(passphrase on key-file vault) error = %v, want %v", err, ErrWrongMasterSecret)
	}
	v2 := openVault(t, store)
	if _, err := v2.Get("demo/ssn"); err != nil {
		t.Errorf("Get after reopen error = %v", err)
	}
}

func TestPassphrase(t *testing.T) {
	store := kv.NewMem()
	pass := []byte("correct horse battery staple")
	v, err := Open(store, MasterPassphrase(pass), WithPBKDF2Iterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	if _, err := Open(store, MasterPassphrase([]byte("wrong horse battery staple"))); !errors.Is(err, ErrWrongMasterSecret) {
		t.Errorf("Open(wrong passphrase) error = %v, want %v", err, ErrWrongMasterSecret)
	}
	v, err = Open(store, MasterPassphrase(pass))
	if err != nil {
		t.Fatalf("Open(right passphrase) error = %v (iterations must come from the seal record)", err)
	}
	v.Close()
	if _, err := Open(kv.NewMem(), MasterPassphrase(pass), WithPBKDF2Iterations(10)); err == nil {
		t.Error("Open with 10 PBKDF2 iterations succeeded, want refusal")
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "master.key")
	if err := WriteKeyFile(path, nil); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(path, nil); err == nil {
		t.Error("WriteKeyFile over an existing file succeeded, want error")
	}
	if _, err := ReadKeyFile(path); err != nil {
		t.Errorf("ReadKeyFile() error = %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(path); err == nil {
		t.Error("ReadKeyFile(mode 0644) succeeded, want refusal")
	}
	short := filepath.Join(dir, "short.key")
	if err := os.WriteFile(short, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(short); err == nil {
		t.Error("ReadKeyFile(3 bytes) succeeded, want error")
	}
}

func encrypt(t *testing.T, v *Vault, in EncryptInput) *envelope.Envelope {
	t.Helper()
	env, err := v.Encrypt(in)
	if err != nil {
		t.Fatalf("Encrypt(%q) error = %v", in.Key, err)
	}
	return env
}

func TestRoundTripModes(t *testing.T) {
	clk := newClock()
	v := openVault(t, kv.NewMem(), WithClock(clk.Now))
	if _, err := create(v, "demo/det", CreateOptions{Deterministic: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := create(v, "demo/rnd", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx := envelope.Context{"field": "ssn"}
	tests := []struct {
		name string
		in   EncryptInput
	}{
		{"ok/random", EncryptInput{Key: "demo/rnd", Context: ctx, Plaintext: []byte("123-45-6789")}},
		{"ok/endorsement", EncryptInput{Key: "demo/rnd", Mode: envelope.ModeEndorsement, TxID: "tx1", TxTime: clk.Now(), Context: ctx, Plaintext: []byte("123-45-6789")}},
		{"ok/deterministic", EncryptInput{Key: "demo/det", Mode: envelope.ModeDeterministic, Context: ctx, Plaintext: []byte("123-45-6789")}},
		{"ok/empty", EncryptInput{Key: "demo/rnd", Plaintext: nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := encrypt(t, v, tt.in)
			got, err := v.Decrypt(env.Text(), tt.in.Context)
			if err != nil || !bytes.Equal(got, tt.in.Plaintext) {
				t.Fatalf("Decrypt(env) = %q, %v, want %q", got, err, tt.in.Plaintext)
			}
			if _, err := v.Decrypt(env.Text(), envelope.Context{"field": "other"}); !errors.Is(err, ErrDecrypt) {
				t.Errorf("Decrypt(wrong context) error = %v, want %v", err, ErrDecrypt)
			}
			if tt.in.Mode != envelope.ModeRandom && tt.in.Mode != 0 {
				again := encrypt(t, v, tt.in)
				if again.Text() != env.Text() {
					t.Errorf("%s mode gave different envelopes for the same input", tt.in.Mode)
				}
			}
		})
	}
	failures := []struct {
		name string
		in   EncryptInput
		want error
	}{
		{"fail/deterministic-not-allowed", EncryptInput{Key: "demo/rnd", Mode: envelope.ModeDeterministic}, ErrModeNotAllowed},
		{"fail/endorsement-no-time", EncryptInput{Key: "demo/rnd", Mode: envelope.ModeEndorsement, TxID: "tx"}, ErrInvalidRequest},
		{"fail/endorsement-before-key", EncryptInput{Key: "demo/rnd", Mode: envelope.ModeEndorsement, TxID: "tx", TxTime: clk.Now().Add(-time.Hour)}, ErrKeyNotUsable},
		{"fail/unknown-key", EncryptInput{Key: "demo/none"}, ErrKeyNotFound},
		{"fail/bad-name", EncryptInput{Key: "../etc"}, envelope.ErrInvalidKeyName},
		{"fail/txid-in-random", EncryptInput{Key: "demo/rnd", TxID: "tx"}, ErrInvalidRequest},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := v.Encrypt(tt.in); !errors.Is(err, tt.want) {
				t.Errorf("Encrypt() error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRotationActivation(t *testing.T) {
	clk := newClock()
	v := openVault(t, kv.NewMem(), WithClock(clk.Now), WithGrace(10*time.Second))
	if _, err := create(v, "trade/price", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	old := encrypt(t, v, EncryptInput{Key: "trade/price", Plaintext: []byte("100")})
	created := clk.Now()
	clk.Add(time.Second)
	ki, err := rotate(v, "trade/price", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ki.LatestVersion != 2 || !ki.Versions[1].ActivateAt.Equal(clk.Now().Add(10*time.Second)) {
		t.Fatalf("Rotate() = latest %d activate %v, want 2 at now+10s", ki.LatestVersion, ki.Versions[1].ActivateAt)
	}
	if env := encrypt(t, v, EncryptInput{Key: "trade/price", Plaintext: []byte("x")}); env.Version != 1 {
		t.Errorf("Encrypt during grace used version %d, want 1", env.Version)
	}
	// An endorsement with a transaction time before the activation uses
	// version 1 even after the activation: endorsers agree.
	txTime := clk.Now()
	clk.Add(11 * time.Second)
	in := EncryptInput{Key: "trade/price", Mode: envelope.ModeEndorsement, TxID: "tx-9", TxTime: txTime, Plaintext: []byte("x")}
	if env := encrypt(t, v, in); env.Version != 1 {
		t.Errorf("endorsement at tx time before activation used version %d, want 1", env.Version)
	}
	in.TxTime = clk.Now()
	if env := encrypt(t, v, in); env.Version != 2 {
		t.Errorf("endorsement at tx time after activation used version %d, want 2", env.Version)
	}
	if env := encrypt(t, v, EncryptInput{Key: "trade/price", Plaintext: []byte("x")}); env.Version != 2 {
		t.Errorf("Encrypt after activation used version %d, want 2", env.Version)
	}
	if got, err := v.Open(old, nil); err != nil || string(got) != "100" {
		t.Errorf("Open(v1 envelope) = %q, %v, want 100", got, err)
	}
	if _, err := setMinDecrypt(v, "trade/price", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Open(old, nil); !errors.Is(err, ErrKeyNotUsable) {
		t.Errorf("Open(v1) below min decryption version error = %v, want %v", err, ErrKeyNotUsable)
	}
	in.TxTime = created
	if _, err := v.Encrypt(in); !errors.Is(err, ErrKeyNotUsable) {
		t.Errorf("endorsement needing a version below the minimum error = %v, want %v", err, ErrKeyNotUsable)
	}
	if _, err := setMinDecrypt(v, "trade/price", 3); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("SetMinDecryptionVersion(3 of 2) error = %v, want %v", err, ErrInvalidRequest)
	}
}

func TestLifecycle(t *testing.T) {
	tests := []struct {
		name          string
		path          []State
		encrypt, open bool
		wantErr       error
	}{
		{"ok/active", nil, true, true, nil},
		{"ok/deactivated", []State{StateDeactivated}, false, true, nil},
		{"ok/compromised", []State{StateCompromised}, false, true, nil},
		{"ok/deactivated-compromised", []State{StateDeactivated, StateCompromised}, false, true, nil},
		{"fail/deactivated-to-active", []State{StateDeactivated, StateActive}, false, true, ErrInvalidTransition},
		{"fail/compromised-to-active", []State{StateCompromised, StateActive}, false, true, ErrInvalidTransition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := openVault(t, kv.NewMem())
			if _, err := create(v, "demo/k", CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			env := encrypt(t, v, EncryptInput{Key: "demo/k", Plaintext: []byte("v")})
			var err error
			for _, s := range tt.path {
				if _, err = setState(v, "demo/k", s); err != nil {
					break
				}
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("SetState path %v error = %v, want %v", tt.path, err, tt.wantErr)
			}
			_, err = v.Encrypt(EncryptInput{Key: "demo/k", Plaintext: []byte("v")})
			if (err == nil) != tt.encrypt {
				t.Errorf("Encrypt error = %v, want allowed=%v", err, tt.encrypt)
			}
			_, err = v.Open(env, nil)
			if (err == nil) != tt.open {
				t.Errorf("Open error = %v, want allowed=%v", err, tt.open)
			}
		})
	}
	t.Run("ok/pre-active", func(t *testing.T) {
		v := openVault(t, kv.NewMem())
		if _, err := create(v, "demo/k", CreateOptions{PreActive: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Encrypt(EncryptInput{Key: "demo/k"}); !errors.Is(err, ErrKeyNotUsable) {
			t.Errorf("Encrypt(pre-active) error = %v, want %v", err, ErrKeyNotUsable)
		}
		if _, err := setState(v, "demo/k", StateActive); err != nil {
			t.Fatal(err)
		}
		encrypt(t, v, EncryptInput{Key: "demo/k"})
	})
}

func TestDestroy(t *testing.T) {
	dir := t.TempDir()
	store := openBadger(t, dir)
	defer store.Close()
	v := openVault(t, store, WithGrace(0))
	if _, err := create(v, "gdpr/email", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rotate(v, "gdpr/email", nil); err != nil {
		t.Fatal(err)
	}
	env := encrypt(t, v, EncryptInput{Key: "gdpr/email", Plaintext: []byte("alice@example.com")})
	if _, err := v.Destroy("gdpr/email"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Open(env, nil); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("Open after destroy error = %v, want %v", err, ErrKeyDestroyed)
	}
	if _, err := v.Encrypt(EncryptInput{Key: "gdpr/email"}); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("Encrypt after destroy error = %v, want %v", err, ErrKeyDestroyed)
	}
	if _, err := create(v, "gdpr/email", CreateOptions{}); !errors.Is(err, ErrKeyExists) {
		t.Errorf("Create(destroyed name) error = %v, want %v", err, ErrKeyExists)
	}
	n := 0
	_ = store.Scan(materialPrefix("gdpr/email"), func(k, _ []byte) error { n++; return nil })
	if n != 0 {
		t.Errorf("store holds %d wrapped versions after destroy, want 0", n)
	}
	v.Close()
	v2 := openVault(t, store)
	if _, err := v2.Open(env, nil); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("Open after destroy and reopen error = %v, want %v", err, ErrKeyDestroyed)
	}
	if ki, _ := v2.Get("gdpr/email"); ki.State != StateDestroyed {
		t.Errorf("state after reopen = %s, want destroyed", ki.State)
	}
}

// TestRotateRollback checks that a rotation whose store write fails leaves
// the key exactly as it was.
func TestRotateRollback(t *testing.T) {
	store := kv.NewMem()
	v := openVault(t, store, WithGrace(0))
	if _, err := create(v, "demo/k", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	store.SetFailure(errors.New("disk full"))
	if _, err := rotate(v, "demo/k", nil); err == nil {
		t.Fatal("Rotate with a failing store succeeded")
	}
	if _, err := v.Destroy("demo/k"); err == nil {
		t.Fatal("Destroy with a failing store succeeded")
	}
	if _, err := create(v, "demo/other", CreateOptions{}); err == nil {
		t.Fatal("Create with a failing store succeeded")
	}
	store.SetFailure(nil)
	ki, _ := v.Get("demo/k")
	if ki.LatestVersion != 1 || ki.State != StateActive {
		t.Errorf("after failed rotate and destroy: latest %d state %s, want 1 active", ki.LatestVersion, ki.State)
	}
	if _, err := v.Get("demo/other"); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("Get(failed create) error = %v, want %v", err, ErrKeyNotFound)
	}
	env := encrypt(t, v, EncryptInput{Key: "demo/k", Plaintext: []byte("x")})
	if env.Version != 1 {
		t.Errorf("Encrypt used version %d, want 1", env.Version)
	}
}

func TestAutoRotationAndLimit(t *testing.T) {
	clk := newClock()
	store := kv.NewMem()
	var v *Vault
	v = openVault(t, store, WithClock(clk.Now), WithRotation(10, 20), WithCountLease(4), WithGrace(time.Hour), rotateHook(&v))
	if _, err := create(v, "demo/k", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := v.Encrypt(EncryptInput{Key: "demo/k"}); err != nil {
			t.Fatalf("Encrypt #%d error = %v", i+1, err)
		}
	}
	ki, _ := v.Get("demo/k")
	if ki.LatestVersion != 2 {
		t.Fatalf("after 20 encryptions with threshold 10: latest version %d, want 2", ki.LatestVersion)
	}
	// Version 2 is not active for an hour, and version 1 is at its limit.
	if _, err := v.Encrypt(EncryptInput{Key: "demo/k"}); !errors.Is(err, ErrKeyNotUsable) {
		t.Errorf("Encrypt past the hard limit error = %v, want %v", err, ErrKeyNotUsable)
	}
	clk.Add(time.Hour)
	if env := encrypt(t, v, EncryptInput{Key: "demo/k"}); env.Version != 2 {
		t.Errorf("Encrypt after activation used version %d, want 2", env.Version)
	}
}

// TestCountSurvivesRestart checks that the persisted count never
// understates the encryptions made before a restart.
func TestCountSurvivesRestart(t *testing.T) {
	store := kv.NewMem()
	v, err := Open(store, MasterKey(testMaster), WithCountLease(4))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := create(v, "demo/k", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		encrypt(t, v, EncryptInput{Key: "demo/k"})
	}
	v.Close() // no flush: as after kill -9
	v2 := openVault(t, store, WithCountLease(4))
	ki, _ := v2.Get("demo/k")
	if got := ki.Versions[0].Encryptions; got < 5 {
		t.Errorf("count after restart = %d, want >= 5", got)
	}
}

// TestNoPlaintextKeyAtRest generates keys from a known random stream and
// checks that no stored value contains any of them.
func TestNoPlaintextKeyAtRest(t *testing.T) {
	seed := [32]byte{7}
	store := kv.NewMem()
	v := openVault(t, store, WithRand(mrand.NewChaCha8(seed)), WithGrace(0))
	for _, name := range []string{"a/one", "a/two", "b/three"} {
		if _, err := create(v, name, CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := rotate(v, name, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Replay the stream: every 32-byte window of it that the vault could
	// have used as a key must be absent from the store.
	stream := make([]byte, 4096)
	_, _ = mrand.NewChaCha8(seed).Read(stream)
	_ = store.Scan(nil, func(k, val []byte) error {
		for i := 0; i+32 <= len(stream); i++ {
			if bytes.Contains(val, stream[i:i+32]) {
				t.Errorf("store value %q contains 32 bytes of the key stream at offset %d", k, i)
				return nil
			}
		}
		return nil
	})
}

func TestConcurrentEncrypt(t *testing.T) {
	var v *Vault
	v = openVault(t, kv.NewMem(), WithCountLease(16), WithRotation(1000, 2000), WithGrace(0), rotateHook(&v))
	if _, err := create(v, "demo/k", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				env, err := v.Encrypt(EncryptInput{Key: "demo/k", Plaintext: []byte{byte(g), byte(i)}})
				if err != nil {
					t.Errorf("Encrypt error = %v", err)
					return
				}
				if pt, err := v.Open(env, nil); err != nil || !bytes.Equal(pt, []byte{byte(g), byte(i)}) {
					t.Errorf("Open = %v, %v", pt, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	ki, _ := v.Get("demo/k")
	var total uint64
	for _, ver := range ki.Versions {
		total += ver.Encryptions
	}
	if total != 1600 || ki.LatestVersion < 2 {
		t.Errorf("total encryptions %d over %d versions, want 1600 over >= 2", total, ki.LatestVersion)
	}
}
