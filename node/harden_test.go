package node_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/internal/tamper"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/kv/badgerstore"
	"github.com/keymesh/keymesh/kv/kvtest"
	"github.com/keymesh/keymesh/node"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/nodetest"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/token"
)

// TestNode_ForgedAdminTokenRefused: whoever can write the store but does
// not hold the master secret cannot mint an admin token. A token record
// written into a stopped node's store (as the token package encodes it,
// untagged or with a made-up tag) makes the node refuse to start, naming
// the record; the forged token never authenticates.
func TestNode_ForgedAdminTokenRefused(t *testing.T) {
	t.Parallel()
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
			if _, err := node.Init(node.Config{DataDir: dir}, ""); err != nil {
				t.Fatal(err)
			}
			db, err := badgerstore.Open(node.DBDir(dir), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx kv.Txn) error { return tx.Set(key, tc.value) }); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			n, err := node.Open(node.Config{DataDir: dir}, nil)
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
	t.Parallel()
	nd := nodetest.Start(t)
	nd.Stop()
	dir := nd.DataDir
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
	if _, err := os.Stat(node.KeyTableFile(dir)); err != nil {
		t.Errorf("no key table: %v", err)
	}
}

// copyDir copies the regular files of a small data directory.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestNode_FlippedByteNeverStartsSilentlyDamaged is the regression test of
// nodes that started "without any warning having lost every grant or the
// admin token" after one byte of a stopped node's files was flipped: over
// 12 seeded trials (48 under KEYMESH_EXHAUSTIVE=1; a random byte of a
// random file of the store, the audit log or the key table), the node either refuses to start or starts with
// every key, grant and token intact, the admin token working, and an audit
// verification that reports damage as a *VerifyError, never another error.
func TestNode_FlippedByteNeverStartsSilentlyDamaged(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("opens a dozen stores")
	}
	nd := nodetest.Start(t)
	base, adminTok, admin := nd.DataDir, nd.AdminToken, nd.Admin
	ctx := t.Context()
	for _, k := range []string{"demo/a", "demo/b"} {
		if _, err := admin.CreateKey(ctx, apiv1.CreateKeyRequest{Name: k}); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.CreateGrant(ctx, apiv1.CreateGrantRequest{Key: k, Party: "token:app", Ops: []string{"decrypt"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.CreateToken(ctx, apiv1.CreateTokenRequest{Party: "token:app"}); err != nil {
		t.Fatal(err)
	}
	nd.Stop()
	var files []string
	_ = filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && d.Name() != "LOCK" && d.Name() != "master.key" && d.Name() != "admin.token" {
			if fi, _ := d.Info(); fi != nil && fi.Size() > 0 {
				files = append(files, path)
			}
		}
		return nil
	})
	rng := mrand.New(mrand.NewPCG(13, 13))
	refused, intact := 0, 0
	trials := tamper.Count(12, 48)
	for trial := range trials {
		dir := filepath.Join(t.TempDir(), "data")
		copyDir(t, base, dir)
		victim := files[rng.IntN(len(files))]
		rel, _ := filepath.Rel(base, victim)
		p := filepath.Join(dir, rel)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		off := rng.IntN(len(b))
		b[off] ^= byte(1 + rng.IntN(255))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		n, err := node.Open(node.Config{DataDir: dir}, nil)
		if err != nil {
			refused++
			continue
		}
		what := fmt.Sprintf("trial %d (%s byte %d)", trial, rel, off)
		if got := len(n.Vault().List()); got != 2 {
			t.Errorf("%s: started with %d keys, want 2", what, got)
		}
		if got := node.GrantCount(n); got != 2 {
			t.Errorf("%s: started with %d grants, want 2", what, got)
		}
		if got := len(node.TokensOf(n).List()); got != 2 {
			t.Errorf("%s: started with %d tokens, want 2", what, got)
		}
		if _, err := node.TokensOf(n).Authenticate(adminTok); err != nil {
			t.Errorf("%s: the admin token no longer authenticates: %v", what, err)
		}
		var ve *audit.VerifyError
		if _, err := node.AuditOf(n).Verify(); err != nil && !errors.As(err, &ve) {
			t.Errorf("%s: audit verify = %v, want a report (*VerifyError)", what, err)
		}
		n.Close()
		intact++
	}
	t.Logf("%d flipped bytes: %d refused to start, %d started intact, 0 started damaged", trials, refused, intact)
}

// TestNode_ForgedAuditLogRefused: the audit log's hash chain alone can be
// rewritten consistently by whoever can write its files. A complete,
// well-chained log made without the master secret (under another key), put
// in place of a stopped node's segment files, is refused at start;
// removing the record that says where and how the log is kept is refused
// too.
func TestNode_ForgedAuditLogRefused(t *testing.T) {
	t.Parallel()
	scratch := audit.NewMemFS()
	forged, err := audit.Open(scratch, kvtest.HMACTagger(bytes.Repeat([]byte{1}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := forged.Append(t.Context(), audit.Entry{Principal: "token:admin", Action: "key.create", Key: "demo/x", Outcome: audit.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := forged.Verify(); err != nil {
		t.Fatalf("the forged log does not verify as a chain: %v", err)
	}
	if err := forged.Close(); err != nil {
		t.Fatal(err)
	}
	prepare := func(t *testing.T) string {
		nd := nodetest.Start(t)
		nd.Stop()
		return nd.DataDir
	}
	t.Run("fail/forged-chain", func(t *testing.T) {
		dir := prepare(t)
		logDir := node.AuditLogDir(dir)
		old, err := os.ReadDir(logDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range old {
			if err := os.Remove(filepath.Join(logDir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
		names, _ := scratch.List()
		for _, name := range names {
			b, err := scratch.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(logDir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		n, err := node.Open(node.Config{DataDir: dir}, nil)
		if err == nil {
			n.Close()
			t.Fatal("Open() with a forged audit log succeeded")
		}
		if !errors.Is(err, kv.ErrTampered) {
			t.Fatalf("Open() with a forged audit log = %v, want an error wrapping kv.ErrTampered", err)
		}
	})
	t.Run("fail/format-record-removed", func(t *testing.T) {
		dir := prepare(t)
		db, err := badgerstore.Open(node.DBDir(dir), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx kv.Txn) error { return tx.Delete(node.AuditFormatKey) }); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		n, err := node.Open(node.Config{DataDir: dir}, nil)
		if err == nil {
			n.Close()
			t.Fatal("Open() without the audit format record succeeded")
		}
		var de *kv.DamageError
		if !errors.As(err, &de) || de.Key != "node/" {
			t.Fatalf("Open() without the audit format record = %v, want a *kv.DamageError naming node/", err)
		}
	})
}
