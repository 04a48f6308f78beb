package vault

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keymesh/keymesh/kv"
)

func TestReadSecretFile_SymlinkRefused(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "pass")
	if err := os.WriteFile(real, []byte("a long enough passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPassphraseFile(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("ReadPassphraseFile(symlink) = %v, want a symbolic-link refusal", err)
	}
	key := filepath.Join(dir, "master.key")
	if err := WriteKeyFile(key, nil); err != nil {
		t.Fatal(err)
	}
	keyLink := filepath.Join(dir, "key-link")
	if err := os.Symlink(key, keyLink); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(keyLink); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("ReadKeyFile(symlink) = %v, want a symbolic-link refusal", err)
	}
	m, err := ReadPassphraseFile(real)
	if err != nil {
		t.Fatalf("ReadPassphraseFile(regular 0600 file) = %v", err)
	}
	defer m.Clear()
	if m.Len() != len("a long enough passphrase") {
		t.Errorf("passphrase length %d, want %d (trailing newline trimmed)", m.Len(), len("a long enough passphrase"))
	}
}

func TestReadSecretFile_ModeCheckedOnOpenedFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		mode os.FileMode
	}{{"group-readable", 0o640}, {"world-readable", 0o604}, {"group-writable", 0o620}} {
		p := filepath.Join(dir, tc.name)
		if err := os.WriteFile(p, []byte("a long enough passphrase"), tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tc.mode); err != nil { // umask-proof
			t.Fatal(err)
		}
		if _, err := ReadPassphraseFile(p); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("ReadPassphraseFile(%s, %04o) = %v, want a mode refusal", tc.name, tc.mode, err)
		}
	}
	if _, err := ReadPassphraseFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("ReadPassphraseFile(directory) = %v, want a not-regular refusal", err)
	}
}

// TestUnseal_StoredPBKDF2IterationsCapped is the regression test of the
// unbounded iteration count read from the store: a seal record asking for
// more than 10,000,000 iterations is refused at once as tampering.
func TestUnseal_StoredPBKDF2IterationsCapped(t *testing.T) {
	store := kv.NewMem()
	pass := func() Master { return MasterPassphrase([]byte("a long enough passphrase")) }
	v, err := Open(store, pass(), WithPBKDF2Iterations(minPBKDF2Iterations))
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	raw, err := store.Get(sealKey)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	rec["iterations"] = 2_000_000_000
	raw, _ = json.Marshal(rec)
	if err := store.Update(func(tx kv.Txn) error { return tx.Set(sealKey, raw) }); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(store, pass()); err == nil || !strings.Contains(err.Error(), "tampered") {
		t.Fatalf("Open with 2e9 stored iterations = %v, want a tampering refusal", err)
	}
	if _, err := Open(kv.NewMem(), pass(), WithPBKDF2Iterations(maxPBKDF2Iterations+1)); err == nil {
		t.Errorf("Open(WithPBKDF2Iterations(%d)) succeeded, want a refusal", maxPBKDF2Iterations+1)
	}
}
