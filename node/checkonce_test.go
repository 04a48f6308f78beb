package node_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/kv/badgerstore"
	"github.com/keymesh/keymesh/node"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/nodetest"
)

// TestNode_MeshRecordsCheckedOnceStillRefused: the vault's check of the
// store at start-up leaves the mesh events and attachments to the event
// log's load (vault.WithCheckedOnLoad, mesh.LoadChecked), which checks
// each one's tag as it reads it. A flipped byte in the first or last of
// them, or a validly tagged one moved to another key, still makes
// node.Open fail with a *kv.DamageError naming the record.
func TestNode_MeshRecordsCheckedOnceStillRefused(t *testing.T) {
	t.Parallel()
	nd := nodetest.Start(t)
	base := nd.DataDir
	for _, k := range []string{"demo/a", "demo/b"} {
		if _, err := nd.Admin.CreateKey(t.Context(), apiv1.CreateKeyRequest{Name: k}); err != nil {
			t.Fatal(err)
		}
	}
	nd.Stop()

	// records reads the raw (tagged) records under prefix, in key order.
	records := func(t *testing.T, dir, prefix string) (keys, vals [][]byte) {
		t.Helper()
		db, err := badgerstore.Open(node.DBDir(dir), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Scan([]byte(prefix), func(k, v []byte) error {
			keys, vals = append(keys, bytes.Clone(k)), append(vals, bytes.Clone(v))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return keys, vals
	}
	set := func(t *testing.T, dir string, k, v []byte) {
		t.Helper()
		db, err := badgerstore.Open(node.DBDir(dir), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx kv.Txn) error { return tx.Set(k, v) }); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, prefix := range []string{"mesh/ev/", "mesh/att/"} {
		for _, tc := range []struct {
			name   string
			damage func(keys, vals [][]byte) (k, v []byte)
		}{
			{"fail/first-flipped", func(keys, vals [][]byte) ([]byte, []byte) {
				v := bytes.Clone(vals[0])
				v[len(v)/2] ^= 0x01
				return keys[0], v
			}},
			{"fail/last-flipped", func(keys, vals [][]byte) ([]byte, []byte) {
				n := len(keys) - 1
				v := bytes.Clone(vals[n])
				v[len(v)-1] ^= 0x80 // the tag
				return keys[n], v
			}},
			{"fail/moved", func(keys, vals [][]byte) ([]byte, []byte) {
				return append(bytes.Clone(keys[len(keys)-1]), 'x'), vals[0]
			}},
		} {
			t.Run(prefix+tc.name, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "data")
				copyDir(t, base, dir)
				keys, vals := records(t, dir, prefix)
				if len(keys) < 2 {
					t.Fatalf("%d records under %q, want at least 2", len(keys), prefix)
				}
				k, v := tc.damage(keys, vals)
				set(t, dir, k, v)
				n, err := node.Open(node.Config{DataDir: dir}, nil)
				if err == nil {
					n.Close()
					t.Fatalf("node.Open with %q damaged succeeded", k)
				}
				var de *kv.DamageError
				if !errors.Is(err, kv.ErrTampered) || !errors.As(err, &de) || de.Key != string(k) {
					t.Fatalf("node.Open with %q damaged = %v, want a *kv.DamageError naming it", k, err)
				}
			})
		}
	}
	t.Run("ok/intact", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		copyDir(t, base, dir)
		n, err := node.Open(node.Config{DataDir: dir}, nil)
		if err != nil {
			t.Fatalf("node.Open of the intact copy = %v, want nil", err)
		}
		if got := len(n.Vault().List()); got != 2 {
			t.Errorf("started with %d keys, want 2", got)
		}
		n.Close()
	})
}
