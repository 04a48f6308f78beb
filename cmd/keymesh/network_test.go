package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keymesh/keymesh/network"
)

// runLocal runs a local command (no daemon) and returns exit code, stdout
// and stderr.
func runLocal(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb, func(string) string { return "" })
	return code, out.String(), errb.String()
}

func keygen(t *testing.T, path string) string {
	t.Helper()
	code, out, errs := runLocal(t, "org", "keygen", "--out", path, "-o", "json")
	if code != 0 {
		t.Fatalf("org keygen exit %d, stderr %q", code, errs)
	}
	var res struct {
		PublicKey string `json:"public_key"`
		File      string `json:"file"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("org keygen -o json output %q: %v", out, err)
	}
	if res.File != path {
		t.Errorf("org keygen file = %q, want %q", res.File, path)
	}
	return res.PublicKey
}

func TestOrgKeygen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "org1.key")
	pub := keygen(t, path)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file stat = %v, %v; want mode 0600", fi, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := network.ParseAdminKey(data)
	if err != nil {
		t.Fatalf("ParseAdminKey(written file) = %v", err)
	}
	if got := hex.EncodeToString(priv.Public().(ed25519.PublicKey)); got != pub {
		t.Errorf("printed public key %s, file holds %s", pub, got)
	}
	if _, err := network.ParseKey(pub); err != nil {
		t.Errorf("printed public key is not in the genesis form: %v", err)
	}

	// Refuses to overwrite, and leaves the file alone.
	if code, _, errs := runLocal(t, "org", "keygen", "--out", path); code != 1 || !strings.Contains(errs, "already exists") {
		t.Errorf("second keygen exit %d, stderr %q; want 1, already exists", code, errs)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, data) {
		t.Error("second keygen changed the key file")
	}
	// Table output names the public key.
	code, out, _ := runLocal(t, "org", "keygen", "--out", filepath.Join(dir, "org2.key"))
	if code != 0 || !strings.Contains(out, "public key: ") {
		t.Errorf("keygen table output %q, exit %d", out, code)
	}
	if code, _, _ := runLocal(t, "org", "keygen"); code != 2 {
		t.Errorf("keygen without --out exit %d, want 2", code)
	}
	if code, _, _ := runLocal(t, "org", "keygen", "--out", filepath.Join(dir, "missing", "k")); code != 1 {
		t.Errorf("keygen into a missing directory exit %d, want 1", code)
	}
	if code, _, _ := runLocal(t, "org"); code != 2 {
		t.Errorf("org without a subcommand exit %d, want 2", code)
	}
}

func TestNetworkGenesis(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k1 := keygen(t, filepath.Join(dir, "org1.key"))
	k1b := keygen(t, filepath.Join(dir, "org1b.key"))
	k2 := keygen(t, filepath.Join(dir, "org2.key"))
	out := filepath.Join(dir, "genesis.json")
	args := []string{"network", "genesis", "--name", "trade-net",
		"--org", "Org2MSP=" + k2, "--org", "Org1MSP=" + k1, "--org", "Org1MSP=" + strings.ToUpper(k1b),
		"--bootstrap", "/ip4/127.0.0.1/tcp/4001", "--created", "2026-03-04T05:06:07Z", "--out", out, "-o", "json"}
	code, stdout, errs := runLocal(t, args...)
	if code != 0 {
		t.Fatalf("network genesis exit %d, stderr %q", code, errs)
	}
	var res struct {
		NetworkID string `json:"network_id"`
		Network   string `json:"network"`
		Orgs      int    `json:"orgs"`
		File      string `json:"file"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("output %q: %v", stdout, err)
	}
	g, err := network.LoadGenesis(out)
	if err != nil {
		t.Fatalf("LoadGenesis(written) = %v", err)
	}
	if id := g.ID(); id.String() != res.NetworkID || res.Orgs != 2 || res.Network != "trade-net" || res.File != out {
		t.Errorf("genesis output %+v, file id %s", res, id)
	}
	if g.Orgs[0].ID != "Org1MSP" || len(g.Orgs[0].AdminKeys) != 2 || len(g.Bootstrap) != 1 ||
		!g.Created.Equal(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)) {
		t.Errorf("genesis = %+v", g)
	}
	k, _ := network.ParseKey(k2)
	if !g.IsAdmin("Org2MSP", k) || g.IsAdmin("Org1MSP", k) {
		t.Error("admin keys landed in the wrong org")
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("genesis stat = %v, %v; want 0644", fi, err)
	}

	// Same inputs, other order: same network id. Bootstrap does not count.
	out2 := filepath.Join(dir, "genesis2.json")
	code, stdout, _ = runLocal(t, "network", "genesis", "--name", "trade-net", "--created", "2026-03-04T05:06:07Z",
		"--org", "Org1MSP="+k1b, "--org", "Org1MSP="+k1, "--org", "Org2MSP="+k2, "--out", out2)
	if code != 0 || !strings.Contains(stdout, "network id: "+res.NetworkID) {
		t.Errorf("reordered genesis exit %d, output %q; want network id %s", code, stdout, res.NetworkID)
	}

	if code, _, errs := runLocal(t, args...); code != 1 || !strings.Contains(errs, "already exists") {
		t.Errorf("genesis over an existing file exit %d, stderr %q", code, errs)
	}
	fresh := func() string { return filepath.Join(t.TempDir(), "g.json") }
	for name, bad := range map[string][]string{
		"no-name":       {"--org", "Org1MSP=" + k1, "--out", fresh()},
		"bad-name":      {"--name", "trade net", "--org", "Org1MSP=" + k1, "--out", fresh()},
		"no-org":        {"--name", "n", "--out", fresh()},
		"no-out":        {"--name", "n", "--org", "Org1MSP=" + k1},
		"org-no-key":    {"--name", "n", "--org", "Org1MSP", "--out", fresh()},
		"bad-key":       {"--name", "n", "--org", "Org1MSP=" + k1[:60], "--out", fresh()},
		"bad-org-id":    {"--name", "n", "--org", "Org 1=" + k1, "--out", fresh()},
		"dup-key":       {"--name", "n", "--org", "Org1MSP=" + k1, "--org", "Org1MSP=" + k1, "--out", fresh()},
		"bad-bootstrap": {"--name", "n", "--org", "Org1MSP=" + k1, "--bootstrap", "127.0.0.1:4001", "--out", fresh()},
		"bad-created":   {"--name", "n", "--org", "Org1MSP=" + k1, "--created", "yesterday", "--out", fresh()},
		"positional":    {"--name", "n", "--org", "Org1MSP=" + k1, "--out", fresh(), "extra"},
	} {
		t.Run("fail/"+name, func(t *testing.T) {
			code, _, errs := runLocal(t, append([]string{"network", "genesis"}, bad...)...)
			if code != 2 {
				t.Errorf("exit %d, stderr %q; want 2", code, errs)
			}
		})
	}
	// Nothing was written by the failures above.
	if code, _, _ := runLocal(t, "network", "genesis", "--name", "n", "--org", "Org1MSP="+k1[:60], "--out", filepath.Join(dir, "g3.json")); code != 2 {
		t.Fatal("want a usage error")
	}
	if _, err := os.Stat(filepath.Join(dir, "g3.json")); err == nil {
		t.Error("a failed genesis left a file behind")
	}
}
