package vault

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/vault/envelope"
)

// TestVault_EndorsementFloorNotBelowPostRevocationVersion is the
// regression test of issue 10 item 3: after an org revocation rotated a
// key to version 2, a transaction timestamp from before the rotation must
// not select version 1 (held by the revoked org) in endorsement mode, and
// the floor survives a restart and cannot be lowered or forged.
func TestVault_EndorsementFloorNotBelowPostRevocationVersion(t *testing.T) {
	clk := newClock()
	store := kv.NewMem()
	v := openVault(t, store, WithClock(clk.Now))
	if _, err := create(v, "asset/value", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := clk.Now()
	clk.Add(time.Minute)
	grace := time.Hour // the rotated version activates far ahead
	if _, err := rotate(v, "asset/value", &grace); err != nil {
		t.Fatal(err)
	}
	in := EncryptInput{Key: "asset/value", Mode: envelope.ModeEndorsement, TxID: "tx1", TxTime: before, Plaintext: []byte("7")}
	if env := encrypt(t, v, in); env.Version != 1 {
		t.Fatalf("before the floor: version %d, want 1 (newest active at the tx time)", env.Version)
	}
	if err := v.SetEndorsementFloor("asset/value", 2); err != nil {
		t.Fatalf("SetEndorsementFloor() = %v", err)
	}
	if env := encrypt(t, v, in); env.Version != 2 {
		t.Fatalf("after the floor: version %d, want 2", env.Version)
	}
	// Random mode keeps its rule (newest active now).
	if env := encrypt(t, v, EncryptInput{Key: "asset/value", Plaintext: []byte("7")}); env.Version != 1 {
		t.Errorf("random mode: version %d, want 1 (version 2 not active yet)", env.Version)
	}
	if err := v.SetEndorsementFloor("asset/value", 1); err != nil {
		t.Errorf("SetEndorsementFloor(lower) = %v, want a no-op", err)
	}
	if err := v.SetEndorsementFloor("asset/value", 3); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("SetEndorsementFloor(unknown version) = %v, want ErrInvalidRequest", err)
	}
	if err := v.SetEndorsementFloor("asset/none", 1); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("SetEndorsementFloor(unknown key) = %v, want ErrKeyNotFound", err)
	}
	v.Close()
	v2 := openVault(t, store, WithClock(clk.Now))
	if f, err := v2.EndorsementFloor("asset/value"); err != nil || f != 2 {
		t.Fatalf("after reopen EndorsementFloor() = %d, %v, want 2", f, err)
	}
	if env := encrypt(t, v2, in); env.Version != 2 {
		t.Fatalf("after reopen: version %d, want 2", env.Version)
	}
	v2.Close()
	// A floor record not sealed under the KEK stops the vault.
	if err := store.Update(func(tx kv.Txn) error {
		return tx.Set(floorKey("asset/value"), []byte("forged-forged-forged-forged-forged"))
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(store, MasterKey(testMaster), WithClock(clk.Now)); err == nil || !strings.Contains(err.Error(), "does not authenticate") {
		t.Fatalf("Open(forged floor) = %v, want refused", err)
	}
}

// TestVault_EndorserWithoutKeySaysSo is the regression test of issue 10
// item 4: a node that no longer holds the version to encrypt with says so
// (ErrVersionNotHeld), instead of "no version is active", and does not
// fall back to an older version it still holds.
func TestVault_EndorserWithoutKeySaysSo(t *testing.T) {
	clk := newClock()
	v := openVault(t, kv.NewMem(), WithClock(clk.Now))
	meta := KeyMeta{Name: "asset/value", Owner: "Org1MSP", State: StateActive, Created: clk.Now()}
	if err := v.SyncKey(meta); err != nil {
		t.Fatal(err)
	}
	if err := v.importVersion("asset/value", 1, clk.Now(), bytes.Repeat([]byte{1}, 32)); err != nil {
		t.Fatal(err)
	}
	if err := v.importVersion("asset/value", 2, clk.Now(), bytes.Repeat([]byte{2}, 32)); err != nil {
		t.Fatal(err)
	}
	if err := v.ForgetVersion("asset/value", 2); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	for _, mode := range []envelope.Mode{envelope.ModeRandom, envelope.ModeEndorsement} {
		in := EncryptInput{Key: "asset/value", Mode: mode, Plaintext: []byte("7")}
		if mode == envelope.ModeEndorsement {
			in.TxID, in.TxTime = "tx", clk.Now()
		}
		_, err := v.Encrypt(in)
		if !errors.Is(err, ErrVersionNotHeld) || !strings.Contains(err.Error(), "does not hold version 2") {
			t.Errorf("%v: Encrypt() = %v, want ErrVersionNotHeld naming version 2", mode, err)
		}
	}
}

// TestVault_ShownCountAfterCleanRestart is issue 10 item 7: after a clean
// restart a barely used version shows its real count, not the reserved
// lease; after a crash it shows the lease (an upper bound); the guarding
// count stays conservative either way.
func TestVault_ShownCountAfterCleanRestart(t *testing.T) {
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
	v.Close()
	v2 := openVault(t, store, WithCountLease(1000))
	encrypt(t, v2, EncryptInput{Key: "demo/k"})
	ki, _ := v2.Get("demo/k")
	if got := ki.Versions[0].Encryptions; got != 4 {
		t.Fatalf("shown count after a clean restart = %d, want 4", got)
	}
	if r, _ := v2.ring("demo/k"); r.versions[0].count.Load() < 1000 {
		t.Errorf("guarding count = %d, want at least the lease", r.versions[0].count.Load())
	}
	v2.Close() // as after kill -9: no SaveCounts
	v3 := openVault(t, store, WithCountLease(1000))
	ki, _ = v3.Get("demo/k")
	if got := ki.Versions[0].Encryptions; got < 4 {
		t.Fatalf("shown count after a crash = %d, want an upper bound >= 4", got)
	}
}

// setCounter is a kv.Store that counts the writes of key records.
type setCounter struct {
	kv.Store
	mu   sync.Mutex
	recs int
}

func (c *setCounter) Update(fn func(kv.Txn) error) error {
	return c.Store.Update(func(tx kv.Txn) error { return fn(countingTxn{tx, c}) })
}

type countingTxn struct {
	kv.Txn
	c *setCounter
}

func (t countingTxn) Set(k, v []byte) error {
	if bytes.HasPrefix(k, []byte(keyRecordPrefix)) {
		t.c.mu.Lock()
		t.c.recs++
		t.c.mu.Unlock()
	}
	return t.Txn.Set(k, v)
}

func (c *setCounter) written() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.recs
	c.recs = 0
	return n
}

// TestVault_SaveCountsWritesOnlyUsedKeys: a clean shutdown writes the
// records of the keys used since Open, not of every key (a node with 100k
// keys took 8–10 s to stop), and the counts of the others stay exact over
// a run of clean restarts: after each, every key shows its real count. A
// crash still ends the run: every count falls back to the lease, and the
// next clean shutdown writes every record again.
func TestVault_SaveCountsWritesOnlyUsedKeys(t *testing.T) {
	store := &setCounter{Store: kv.NewMem()}
	names := []string{"demo/a", "demo/b", "demo/c"}
	v := openVault(t, store, WithCountLease(1000))
	for _, n := range names {
		if _, err := create(v, n, CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	uses := map[string]uint64{}
	use := func(v *Vault, name string, n int) {
		for range n {
			encrypt(t, v, EncryptInput{Key: name})
		}
		uses[name] += uint64(n)
	}
	shown := func(v *Vault, what string) {
		t.Helper()
		for _, n := range names {
			ki, err := v.Get(n)
			if err != nil {
				t.Fatal(err)
			}
			if got := ki.Versions[0].Encryptions; got != uses[n] {
				t.Errorf("%s: %s shows %d encryptions, want %d", what, n, got, uses[n])
			}
		}
	}
	use(v, "demo/a", 3)
	use(v, "demo/b", 1)
	store.written()
	if err := v.SaveCounts(); err != nil {
		t.Fatal(err)
	}
	if n := store.written(); n != 3 {
		t.Errorf("first clean shutdown wrote %d key records, want 3 (none saved yet)", n)
	}
	v.Close()

	v = openVault(t, store, WithCountLease(1000))
	shown(v, "after a clean restart")
	use(v, "demo/a", 2)
	store.written()
	if err := v.SaveCounts(); err != nil {
		t.Fatal(err)
	}
	if n := store.written(); n != 1 {
		t.Errorf("clean shutdown after using one key wrote %d key records, want 1", n)
	}
	v.Close()

	v = openVault(t, store, WithCountLease(1000))
	shown(v, "after a second clean restart")
	if err := v.SaveCounts(); err != nil {
		t.Fatal(err)
	}
	if n := store.written(); n != 0 {
		t.Errorf("clean shutdown after using nothing wrote %d key records, want 0", n)
	}
	v.Close()

	v = openVault(t, store, WithCountLease(1000))
	shown(v, "after a third clean restart")
	use(v, "demo/c", 1)
	v.Close() // a crash: no SaveCounts

	v = openVault(t, store, WithCountLease(1000))
	for _, n := range names {
		if ki, _ := v.Get(n); ki.Versions[0].Encryptions < 1000 {
			t.Errorf("after a crash %s shows %d, want the lease (an upper bound)", n, ki.Versions[0].Encryptions)
		}
	}
	store.written()
	if err := v.SaveCounts(); err != nil {
		t.Fatal(err)
	}
	if n := store.written(); n != 3 {
		t.Errorf("clean shutdown after a crash wrote %d key records, want all 3", n)
	}
	v.Close()
}
