package node

import (
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/kv/badgerstore"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/token"
)

// TestNode_ForgedAdminTokenRefused: whoever can write the store but does
// not hold the master secret cannot mint an admin token. A token record
// written into a stopped node's store (as the token package encodes it,
// untagged or with a made-up tag) makes the node refuse to start, naming
// the record; the forged token never authenticates.
func TestNode_ForgedAdminTokenRefused(t *testing.T) {
	scratch := kv.NewMem()
	reg, err := token.Open(scratch)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.Create(policy.AdminParty, token.RoleAdmin, "forged", 0); err != nil {
		t.Fatal(err)
	}
	var key, rec []byte
	_ = scratch.Scan([]byte("token/"), func(k, v []byte) error { key, rec = append([]byte(nil), k...), append([]byte(nil), v...); return nil })
	tag := make([]byte, kv.TagSize)
	_, _ = rand.Read(tag)
	for _, tc := range []struct {
		name  string
		value []byte
	}{{"untagged", rec}, {"made-up-tag", append(append([]byte(nil), rec...), tag...)}} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Init(Config{DataDir: dir}, ""); err != nil {
				t.Fatal(err)
			}
			db, err := badgerstore.Open(dbDir(dir), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx kv.Txn) error { return tx.Set(key, tc.value) }); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			n, err := Open(Config{DataDir: dir}, nil)
			if err == nil {
				n.Close()
				t.Fatal("Open() with a forged admin token record succeeded")
			}
			var de *kv.DamageError
			if !errors.As(err, &de) || de.Key != string(key) {
				t.Fatalf("Open() with a forged admin token = %v, want a *kv.DamageError naming %q", err, key)
			}
		})
	}
}

// TestNode_DataDirOwnerOnly is the regression test of the 0644 files in
// the data directory: after init, a start that writes and a stop, every
// file under it is 0600 and every directory 0700.
func TestNode_DataDirOwnerOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	_, _, stop := startNode(t, dir)
	stop()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			files++
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %04o, want %04o", path, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 5 {
		t.Errorf("only %d files under the data directory; the test checked nothing", files)
	}
	if _, err := os.Stat(KeyTableFile(dir)); err != nil {
		t.Errorf("no key table: %v", err)
	}
}
