package node_test

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/kv/badgerstore"
	"github.com/keymesh/keymesh/node"
)

// testdata/badger-audit-main.tgz is a data directory made by keymeshd of
// main at 1ca4664 (--dev, the audit log a tagged badger store under
// audit/, format record "2") after a key was created, five encrypts
// denied, a grant made and four encrypts allowed; verify.json is what POST
// /v1/audit/verify answered before it was stopped.
func unpackBadgerAudit(t *testing.T) (data string, entries uint64, head [32]byte) {
	t.Helper()
	dir := unpackTestdata(t, "badger-audit-main.tgz")
	b, err := os.ReadFile(filepath.Join(dir, "verify.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		OK      bool   `json:"ok"`
		Entries uint64 `json:"entries"`
		Head    string `json:"head"`
	}
	if err := json.Unmarshal(b, &v); err != nil || !v.OK {
		t.Fatalf("verify.json: %s, %v", b, err)
	}
	hb, err := hex.DecodeString(v.Head)
	if err != nil || len(hb) != 32 {
		t.Fatalf("verify.json head %q", v.Head)
	}
	return filepath.Join(dir, "data"), v.Entries, [32]byte(hb)
}

func openNode(t *testing.T, data string) *node.Node {
	t.Helper()
	n, err := node.Open(node.Config{DataDir: data}, nil)
	if err != nil {
		t.Fatalf("node.Open() = %v", err)
	}
	return n
}

// checkMigrated checks that the node's audit log holds the old entries and
// head, verifies, and that an append continues the chain.
func checkMigrated(t *testing.T, n *node.Node, entries uint64, head [32]byte) {
	t.Helper()
	l := node.AuditOf(n)
	rep, err := l.Verify()
	if err != nil {
		t.Fatalf("Verify() after the migration = %v", err)
	}
	if rep.Entries < entries {
		t.Fatalf("Verify() = %d entries, want at least the %d of the badger log", rep.Entries, entries)
	}
	tail, err := l.Tail(int(rep.Entries))
	if err != nil {
		t.Fatal(err)
	}
	if got := tail[entries-1]; got.Seq != entries || got.Hash != head {
		t.Fatalf("entry %d after the migration = seq %d hash %x, want the badger log's head %x", entries, got.Seq, got.Hash, head)
	}
	seq, hash := l.Head()
	e, err := l.Append(t.Context(), audit.Entry{Principal: "token:admin", Action: "test.append", Outcome: audit.OutcomeOK})
	if err != nil || e.Seq != seq+1 || e.Prev != hash {
		t.Fatalf("Append after the migration = seq %d prev %x, %v; want seq %d chained to %x", e.Seq, e.Prev, err, seq+1, hash)
	}
	if _, err := l.Verify(); err != nil {
		t.Fatalf("Verify() after an append = %v", err)
	}
}

func wantGone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s after the migration: %v, want it removed", path, err)
	}
}

// TestAuditUpgradeFromBadger: a data directory written by the badger audit
// log is migrated at open — entries and head preserved and verifying, the
// badger directory removed, the files 0600 in a 0700 directory — and
// appends continue the chain, across restarts.
func TestAuditUpgradeFromBadger(t *testing.T) {
	t.Parallel()
	data, entries, head := unpackBadgerAudit(t)
	n := openNode(t, data)
	checkMigrated(t, n, entries, head)
	n.Close()
	wantGone(t, filepath.Join(data, "audit"))
	wantGone(t, node.AuditLogDir(data)+".tmp")
	st, err := os.Stat(node.AuditLogDir(data))
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("auditlog/ = %v, %v; want a 0700 directory", st, err)
	}
	files, _ := os.ReadDir(node.AuditLogDir(data))
	if len(files) == 0 {
		t.Fatal("auditlog/ is empty after the migration")
	}
	for _, f := range files {
		if info, err := f.Info(); err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("auditlog/%s: %v, %v; want 0600", f.Name(), info, err)
		}
	}
	n = openNode(t, data) // a second start: no migration, the chain goes on
	checkMigrated(t, n, entries, head)
	n.Close()
}

// TestAuditUpgradeInterrupted: a migration stopped at any point is
// finished (or redone) at the next open, with nothing lost.
func TestAuditUpgradeInterrupted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		crash func(t *testing.T, data string)
	}{
		{"ok/before-rename", func(t *testing.T, data string) {
			// auditlog.tmp/ half written: a torn segment.
			tmp := node.AuditLogDir(data) + ".tmp"
			if err := os.MkdirAll(tmp, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(tmp, "00000000000000000001.seg"), []byte("KMAUDLG1\x00\x00"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"ok/after-rename-before-record", func(t *testing.T, data string) {
			// auditlog/ in place (here: not even a sound one) but the
			// store still names the badger log: the copy is redone.
			dir := node.AuditLogDir(data)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.seg"), []byte("garbage"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data, entries, head := unpackBadgerAudit(t)
			tc.crash(t, data)
			n := openNode(t, data)
			checkMigrated(t, n, entries, head)
			n.Close()
			wantGone(t, filepath.Join(data, "audit"))
			wantGone(t, node.AuditLogDir(data)+".tmp")
		})
	}
	t.Run("ok/after-record-before-removal", func(t *testing.T) {
		t.Parallel()
		data, entries, head := unpackBadgerAudit(t)
		keep := t.TempDir()
		if err := os.CopyFS(filepath.Join(keep, "audit"), os.DirFS(filepath.Join(data, "audit"))); err != nil {
			t.Fatal(err)
		}
		n := openNode(t, data)
		n.Close()
		// The badger log is back, as if its removal had not happened.
		if err := os.Rename(filepath.Join(keep, "audit"), filepath.Join(data, "audit")); err != nil {
			t.Fatal(err)
		}
		n = openNode(t, data)
		checkMigrated(t, n, entries, head)
		n.Close()
		wantGone(t, filepath.Join(data, "audit"))
	})
}

// TestAuditUpgradeRefusesForgedBadgerLog: a badger log that does not
// verify is not migrated, and the data directory is left as it was: a
// record altered without the master secret (its tag fails), and a damaged
// table file.
func TestAuditUpgradeRefusesForgedBadgerLog(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		damage   func(t *testing.T, badgerDir string)
		tampered bool // the error wraps kv.ErrTampered
	}{
		{"fail/record-altered", func(t *testing.T, dir string) {
			db, err := badgerstore.Open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			key := append([]byte("audit/e/"), 0, 0, 0, 0, 0, 0, 0, 3)
			err = db.Update(func(tx kv.Txn) error {
				v, err := tx.Get(key)
				if err != nil {
					return err
				}
				v[60] ^= 1 // inside the entry, under its tag
				return tx.Set(key, v)
			})
			if err != nil {
				t.Fatal(err)
			}
		}, true},
		{"fail/table-damaged", func(t *testing.T, dir string) {
			ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
			if len(ssts) == 0 {
				t.Fatal("no table in the badger log")
			}
			b, err := os.ReadFile(ssts[0])
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/3] ^= 0x40
			if err := os.WriteFile(ssts[0], b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data, _, _ := unpackBadgerAudit(t)
			tc.damage(t, filepath.Join(data, "audit"))
			n, err := node.Open(node.Config{DataDir: data}, nil)
			if err == nil {
				n.Close()
				t.Fatal("node.Open() migrated a damaged badger log")
			}
			if tc.tampered && !errors.Is(err, kv.ErrTampered) {
				t.Fatalf("node.Open() with an altered badger log = %v, want kv.ErrTampered", err)
			}
			if _, err := os.Stat(filepath.Join(data, "audit")); err != nil {
				t.Fatalf("the badger log after a refused migration: %v, want it kept", err)
			}
			wantGone(t, node.AuditLogDir(data))
			wantGone(t, node.AuditLogDir(data)+".tmp")
		})
	}
}

// TestAuditLogDeletedAfterMigrationRefused: once the store records the
// file log, a missing or emptied auditlog/ is refused, never restarted.
func TestAuditLogDeletedAfterMigrationRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		del  func(dir string) error
	}{
		{"fail/removed", os.RemoveAll},
		{"fail/emptied", func(dir string) error {
			files, err := os.ReadDir(dir)
			for _, f := range files {
				if err := os.Remove(filepath.Join(dir, f.Name())); err != nil {
					return err
				}
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data, _, _ := unpackBadgerAudit(t)
			n := openNode(t, data)
			n.Close()
			if err := tc.del(node.AuditLogDir(data)); err != nil {
				t.Fatal(err)
			}
			for range 2 { // refused again: the refusal changed nothing
				n, err := node.Open(node.Config{DataDir: data}, nil)
				if err == nil {
					n.Close()
					t.Fatal("node.Open() with the audit log deleted succeeded")
				}
				if !errors.Is(err, node.ErrAuditLogMissing) {
					t.Fatalf("node.Open() with the audit log deleted = %v, want ErrAuditLogMissing", err)
				}
			}
		})
	}
}
