package vault

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/keymesh/keymesh/kv"
)

// snapshot copies every raw record of a store.
func snapshot(t *testing.T, s kv.Store) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	if err := s.Scan(nil, func(k, v []byte) error {
		out[string(k)] = bytes.Clone(v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func setRaw(t *testing.T, s kv.Store, k string, v []byte) {
	t.Helper()
	if err := s.Update(func(tx kv.Txn) error { return tx.Set([]byte(k), v) }); err != nil {
		t.Fatal(err)
	}
}

func openErr(store kv.Store, opts ...Option) error {
	v, err := Open(store, MasterKey(testMaster), opts...)
	if err == nil {
		v.Close()
	}
	return err
}

// TestStore_FlippedByteRefusesStart is the regression test of nodes that
// started without a warning on a damaged store: flipping any of several
// bytes of any record (key records, wrapped versions, sealed secrets, key
// table slots, summaries) makes Open fail with an error that wraps
// kv.ErrTampered and names the record.
func TestStore_FlippedByteRefusesStart(t *testing.T) {
	base := kv.NewMem()
	v := openVault(t, base, WithGrace(0))
	for _, name := range []string{"a/one", "b/two"} {
		if _, err := create(v, name, CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rotate(v, "a/one", nil); err != nil {
		t.Fatal(err)
	}
	if err := v.sealSecret("sign", []byte("0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	v.Close()
	recs := snapshot(t, base)
	trials := 0
	for k, val := range recs {
		if k == string(sealKey) {
			continue // self-authenticating: a flip there is a wrong master secret
		}
		for _, i := range []int{0, len(val) / 2, len(val) - 1} {
			store := kv.NewMem()
			for k2, v2 := range recs {
				if k2 == k {
					v2 = bytes.Clone(v2)
					v2[i] ^= 0x01
				}
				setRaw(t, store, k2, v2)
			}
			trials++
			err := openErr(store)
			if !errors.Is(err, kv.ErrTampered) {
				t.Errorf("Open with byte %d of %q flipped = %v, want an error wrapping kv.ErrTampered", i, k, err)
				continue
			}
			if name := strconv.QuoteToASCII(k); !strings.Contains(err.Error(), name) && !strings.Contains(err.Error(), `"vault/key/"`) {
				t.Errorf("Open with byte %d of %q flipped = %v; the error does not name the record", i, k, err)
			}
		}
	}
	if trials < 20 {
		t.Fatalf("only %d trials", trials)
	}
}

// TestStore_CannotResetEncryptionCounter: replaying an older, validly
// tagged key record (a lower encryption count lease) is refused at Open.
func TestStore_CannotResetEncryptionCounter(t *testing.T) {
	store := kv.NewMem()
	v := openVault(t, store, WithCountLease(4))
	if _, err := create(v, "demo/k", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	encrypt(t, v, EncryptInput{Key: "demo/k"})
	early := snapshot(t, store)[string(recordKey("demo/k"))]
	for range 20 {
		encrypt(t, v, EncryptInput{Key: "demo/k"})
	}
	v.Close()
	setRaw(t, store, string(recordKey("demo/k")), early)
	if err := openErr(store, WithCountLease(4)); !errors.Is(err, kv.ErrTampered) || !strings.Contains(err.Error(), "vault/key/") {
		t.Fatalf("Open with the key record's count rolled back = %v, want kv.ErrTampered naming vault/key/", err)
	}
}

// TestStore_CannotReactivateDestroyedKey: without the master secret a
// destroyed key cannot be brought back, neither by editing its record
// (no valid tag), nor by replaying its old record and material (the
// summary differs), nor by replaying every vault record and the summary
// together (the key table no longer holds the version's salt).
func TestStore_CannotReactivateDestroyedKey(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "keytable")
	store := kv.NewMem()
	v := openVault(t, store, WithKeyTable(table))
	if _, err := create(v, "gdpr/email", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	env := encrypt(t, v, EncryptInput{Key: "gdpr/email", Plaintext: []byte("alice@example.com")})
	before := snapshot(t, store)
	if _, err := v.Destroy("gdpr/email"); err != nil {
		t.Fatal(err)
	}
	v.Close()
	after := snapshot(t, store)

	t.Run("fail/edit-state", func(t *testing.T) {
		s := kv.NewMem()
		for k, val := range after {
			setRaw(t, s, k, val)
		}
		rk := string(recordKey("gdpr/email"))
		raw := after[rk]
		body := raw[:len(raw)-kv.TagSize]
		edited := bytes.Replace(body, []byte(`"state":5`), []byte(`"state":2`), 1)
		if bytes.Equal(edited, body) {
			t.Fatal("test bug: state not found in the record")
		}
		setRaw(t, s, rk, append(edited, raw[len(raw)-kv.TagSize:]...))
		if err := openErr(s, WithKeyTable(table)); !errors.Is(err, kv.ErrTampered) {
			t.Fatalf("Open with the state edited = %v, want kv.ErrTampered", err)
		}
	})
	t.Run("fail/replay-record-and-material", func(t *testing.T) {
		s := kv.NewMem()
		for k, val := range after {
			setRaw(t, s, k, val)
		}
		for k, val := range before {
			if strings.HasPrefix(k, "vault/key/") || strings.HasPrefix(k, "vault/mat/") {
				setRaw(t, s, k, val)
			}
		}
		if err := openErr(s, WithKeyTable(table)); !errors.Is(err, kv.ErrTampered) {
			t.Fatalf("Open with the pre-destroy record and material replayed = %v, want kv.ErrTampered", err)
		}
	})
	t.Run("fail/replay-whole-store", func(t *testing.T) {
		s := kv.NewMem()
		for k, val := range before {
			setRaw(t, s, k, val)
		}
		v2, err := Open(s, MasterKey(testMaster), WithKeyTable(table))
		if err == nil {
			defer v2.Close()
			if pt, err := v2.Open(env, nil); err == nil {
				t.Fatalf("the destroyed key opened its envelope again (%q) after the store was rolled back", pt)
			}
			return
		}
		if !strings.Contains(err.Error(), "key table") {
			t.Fatalf("Open of the pre-destroy store = %v, want a refusal naming the key table", err)
		}
	})
}

// TestStore_MigratesFormat1 turns a store into the format written before
// records were authenticated (no tags, no summaries, versions wrapped
// directly under the KEK, the v1 check value) and opens it: the vault
// migrates it, the old envelope opens, and the store is format 2 after.
func TestStore_MigratesFormat1(t *testing.T) {
	store := kv.NewMem()
	table := filepath.Join(t.TempDir(), "keytable")
	v := openVault(t, store, WithGrace(0))
	if _, err := create(v, "a/one", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rotate(v, "a/one", nil); err != nil {
		t.Fatal(err)
	}
	env := encrypt(t, v, EncryptInput{Key: "a/one", Plaintext: []byte("old secret")})
	legacy := kv.NewMem()
	for k, val := range snapshot(t, store) {
		switch {
		case k == string(sealKey):
			var sr sealRecord
			if err := json.Unmarshal(val, &sr); err != nil {
				t.Fatal(err)
			}
			check, err := v.sealKEK([]byte(checkText), []byte(checkAAD))
			if err != nil {
				t.Fatal(err)
			}
			sr.Check = check
			val, _ = json.Marshal(sr)
		case strings.HasPrefix(k, kv.SummaryPrefix), strings.HasPrefix(k, slotRecordPrefix):
			continue
		case strings.HasPrefix(k, "vault/mat/"):
			name, ver := "a/one", uint32(k[len(k)-1])
			m, err := v.unwrapMaterial(name, ver, val[:len(val)-kv.TagSize])
			if err != nil {
				t.Fatal(err)
			}
			val, err = v.sealKEK(m, wrapAAD(name, ver))
			if err != nil {
				t.Fatal(err)
			}
		default:
			val = val[:len(val)-kv.TagSize]
		}
		setRaw(t, legacy, k, val)
	}
	v.Close()

	v2 := openVault(t, legacy, WithKeyTable(table))
	if pt, err := v2.Open(env, nil); err != nil || string(pt) != "old secret" {
		t.Fatalf("Open(old envelope) after migration = %q, %v", pt, err)
	}
	v2.Close()
	raw, _ := legacy.Get(sealKey)
	if _, _, format, err := unseal(legacy, MasterKey(testMaster), DefaultPBKDF2Iterations, nil); err != nil || format != 2 {
		t.Fatalf("after migration unseal = format %d, %v (seal %s); want format 2", format, err, raw)
	}
	mat, _ := legacy.Get(materialKey("a/one", 1))
	if _, ok := v2.openKEK(mat[:len(mat)-kv.TagSize], wrapAAD("a/one", 1)); ok {
		t.Error("after migration version 1 is still wrapped directly under the KEK")
	}
	// A second open is a plain format-2 open.
	v3 := openVault(t, legacy, WithKeyTable(table))
	if pt, err := v3.Open(env, nil); err != nil || string(pt) != "old secret" {
		t.Fatalf("Open(old envelope) after a second open = %q, %v", pt, err)
	}
}

// TestStore_SealDowngradeRefused: replacing a format-2 seal record by its
// format-1 form (to have the vault tag forged records in a "migration") is
// refused once the key table is in use.
func TestStore_SealDowngradeRefused(t *testing.T) {
	store := kv.NewMem()
	table := filepath.Join(t.TempDir(), "keytable")
	v := openVault(t, store, WithKeyTable(table))
	if _, err := create(v, "a/one", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	raw, _ := store.Get(sealKey)
	var sr sealRecord
	if err := json.Unmarshal(raw, &sr); err != nil {
		t.Fatal(err)
	}
	check, err := v.sealKEK([]byte(checkText), []byte(checkAAD))
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	sr.Check = check
	b, _ := json.Marshal(sr)
	setRaw(t, store, string(sealKey), b)
	if err := openErr(store, WithKeyTable(table)); !errors.Is(err, kv.ErrTampered) {
		t.Fatalf("Open with a format-1 seal record beside a used key table = %v, want kv.ErrTampered", err)
	}
}

// TestDestroy_NoCopyOnDiskOpensTheVersion is the regression test of the
// destroyed key recovered from badger's write-ahead and table files with
// master.key: after destroy, no file of the data directory (raw bytes,
// .mem, .vlog and .sst included) holds a version's key-table salt, and
// every copy of a wrapped version found in those files fails to open with
// the master secret, whether as a format-2 wrapping or directly under the
// KEK (the old format, which the old code used).
func TestDestroy_NoCopyOnDiskOpensTheVersion(t *testing.T) {
	dir := t.TempDir()
	dbDir := filepath.Join(dir, "db")
	table := filepath.Join(dir, "keytable")
	store := openBadger(t, dbDir)
	v := openVault(t, store, WithGrace(0), WithKeyTable(table))
	const name = "gdpr/email"
	if _, err := create(v, name, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rotate(v, name, nil); err != nil {
		t.Fatal(err)
	}
	var wrapped, salts [][]byte
	for ver := uint32(1); ver <= 2; ver++ {
		w, err := store.Get(materialKey(name, ver))
		if err != nil {
			t.Fatal(err)
		}
		w = w[:len(w)-kv.TagSize]
		wrapped = append(wrapped, w)
		salt, ok := v.table.salt(binaryUint32(w), name, ver)
		if !ok {
			t.Fatalf("no salt for version %d", ver)
		}
		salts = append(salts, salt)
	}
	if _, err := v.Destroy(name); err != nil {
		t.Fatal(err)
	}
	if ki, _ := v.Get(name); ki.EraseError != "" {
		t.Fatalf("Destroy erase error: %s", ki.EraseError)
	}
	v.Close()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	// The attacker: every file, the master key, the current code.
	store2 := openBadger(t, dbDir)
	defer store2.Close()
	v2 := openVault(t, store2, WithKeyTable(table))
	found := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, salt := range salts {
			if bytes.Contains(b, salt) {
				t.Errorf("%s still holds the key-table salt of version %d", path, i+1)
			}
		}
		for i, w := range wrapped {
			ver := uint32(i + 1)
			for off := 0; ; {
				j := bytes.Index(b[off:], w[4:20])
				if j < 0 {
					break
				}
				found++
				at := off + j
				if m, err := v2.unwrapMaterial(name, ver, append(bytes.Clone(w[:4]), b[at:min(len(b), at+len(w)-4)]...)); err == nil {
					t.Errorf("%s: a copy of version %d opens after destroy (%d bytes)", path, ver, len(m))
				}
				if _, ok := v2.openKEK(b[at:min(len(b), at+len(w)-4)], wrapAAD(name, ver)); ok {
					t.Errorf("%s: a copy of version %d opens under the KEK alone", path, ver)
				}
				off = at + 1
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d copies of the wrapped versions remain in the data directory's files; none opens", found)
}

func binaryUint32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// TestForgetVersion_ErasesItsSalt: a node whose organisation lost its
// grant forgets a version; its salt is overwritten in the key table file,
// so the wrapped copy it held no longer opens, while the other versions
// still do.
func TestForgetVersion_ErasesItsSalt(t *testing.T) {
	table := filepath.Join(t.TempDir(), "keytable")
	store := kv.NewMem()
	v := openVault(t, store, WithGrace(0), WithKeyTable(table))
	if _, err := create(v, "trade/price", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rotate(v, "trade/price", nil); err != nil {
		t.Fatal(err)
	}
	raw, err := store.Get(materialKey("trade/price", 1))
	if err != nil {
		t.Fatal(err)
	}
	wrapped := raw[:len(raw)-kv.TagSize]
	salt, ok := v.table.salt(binaryUint32(wrapped), "trade/price", 1)
	if !ok {
		t.Fatal("no salt for version 1")
	}
	if err := v.ForgetVersion("trade/price", 1); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(table)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, salt) {
		t.Error("the key table still holds the forgotten version's salt")
	}
	if _, err := v.unwrapMaterial("trade/price", 1, wrapped); err == nil {
		t.Error("the forgotten version's wrapped copy still opens")
	}
	if !v.Holds("trade/price", 2) || v.Holds("trade/price", 1) {
		t.Errorf("after ForgetVersion(1): holds v1 %v, v2 %v; want false, true", v.Holds("trade/price", 1), v.Holds("trade/price", 2))
	}
	v.Close()
	v2 := openVault(t, store, WithKeyTable(table))
	if !v2.Holds("trade/price", 2) {
		t.Error("after reopen version 2 is not held")
	}
}
