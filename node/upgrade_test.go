package node_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/kv/badgerstore"
	"github.com/keymesh/keymesh/node"
	"github.com/keymesh/keymesh/node/nodetest"
)

// testdata/standalone-0.1.tgz is a data directory made by keymesh 0.1.0-dev
// (commit 9e8cde3) as a standalone node of org Org1MSP — its test-only
// master key included — with:
//
//	trade/price  active, 2 versions (v2 active); token:app may encrypt, decrypt
//	trade/ssn    active, deterministic; token:app may decrypt;
//	             token:bob was granted decrypt and revoked
//	trade/old    deactivated
//	trade/gone   destroyed
//
// and app.token (token:app's secret) and price.env, the envelope of "4200"
// under trade/price v2 with context field=price.
func unpackLegacy(t *testing.T) (data, app, env string) {
	t.Helper()
	dir := unpackTestdata(t, "standalone-0.1.tgz")
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	return filepath.Join(dir, "data"), read("app.token"), read("price.env")
}

// TestUpgradeStandaloneDataDirectory: a standalone data directory of
// keymesh 0.1 starts as a network of one, with nothing lost: every key with
// its versions, options and state; the envelopes it made still open; the
// grants in force still allow, the revoked one still does not; the old
// policy records are gone; and starting again changes nothing.
func TestUpgradeStandaloneDataDirectory(t *testing.T) {
	data, appTok, env := unpackLegacy(t)
	ctx := context.Background()
	n := nodetest.Start(t, nodetest.WithDataDir(data), nodetest.WithOrg("Org1MSP"))
	for run := range 2 {
		if run > 0 {
			n.Restart()
		}
		admin, app := n.Admin, n.NewClient(appTok)

		pt, err := app.DecryptValue(ctx, env, map[string]string{"field": "price"})
		if err != nil || string(pt) != "4200" {
			t.Fatalf("run %d: decrypt the 0.1 envelope = %q, %v; want 4200", run, pt, err)
		}
		keys, err := admin.ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"trade/price": "active", "trade/ssn": "active", "trade/old": "deactivated", "trade/gone": "destroyed"}
		if len(keys) != len(want) {
			t.Errorf("run %d: %d keys, want %d", run, len(keys), len(want))
		}
		for _, k := range keys {
			if want[k.Name] != k.State {
				t.Errorf("run %d: key %s is %s, want %s", run, k.Name, k.State, want[k.Name])
			}
			if k.Name == "trade/price" && k.LatestVersion != 2 {
				t.Errorf("run %d: trade/price has %d versions, want 2", run, k.LatestVersion)
			}
			if k.Name == "trade/ssn" && !k.Deterministic {
				t.Errorf("run %d: trade/ssn lost its deterministic option", run)
			}
		}
		grants, err := admin.ListGrants(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		inForce := map[string]bool{}
		for _, g := range grants {
			if g.InForce {
				inForce[g.Key+" "+g.Party] = true
			}
		}
		if len(grants) != 2 || !inForce["trade/price token:app"] || !inForce["trade/ssn token:app"] {
			t.Errorf("run %d: grants after the upgrade = %+v, want token:app's two, once each", run, grants)
		}
		if _, _, err := app.EncryptValue(ctx, "trade/price", []byte("4300"), map[string]string{"field": "price"}, ""); err != nil {
			t.Errorf("run %d: encrypt after the upgrade: %v", run, err)
		}
	}
	n.Stop()
	for _, f := range []string{"genesis.json", "admin.key"} {
		if st, err := os.Stat(filepath.Join(data, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s after the upgrade: %v, %v; want a 0600 file", f, st, err)
		}
	}
	db, err := badgerstore.Open(node.DBDir(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	left := 0
	if err := db.Scan([]byte("policy/"), func(k, _ []byte) error { left++; return nil }); err != nil && !errors.Is(err, kv.ErrNotFound) {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d old policy records left in the store", left)
	}
}

// unpackTestdata unpacks testdata/name, a gzipped tar of a data directory,
// into a new temporary directory and returns it. Entries may not escape
// it and none is read past 4 MiB.
func unpackTestdata(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for range 64 {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Clean(h.Name))
		if !strings.HasPrefix(p, dir+string(os.PathSeparator)) {
			t.Fatalf("archive entry %q escapes", h.Name)
		}
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o700); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, 4<<20))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
