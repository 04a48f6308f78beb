package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestInitCommand: `keymeshd init --json` creates the node and prints the
// result `keymesh init` reads; a second init and a missing --data fail.
func TestInitCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	env := func(string) string { return "" }
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"init", "--json", "--data", dir, "--org", "Org1MSP"}, &out, &errb, env); code != 0 {
		t.Fatalf("keymeshd init = exit %d, stderr %q", code, errb.String())
	}
	var res struct {
		Data, Org  string
		AdminToken string `json:"admin_token"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.Data != dir || res.Org != "Org1MSP" || !strings.HasPrefix(res.AdminToken, "kmt_") {
		t.Errorf("keymeshd init --json = %q (%v), want data, org and a kmt_ token", out.String(), err)
	}
	errb.Reset()
	if code := run(context.Background(), []string{"init", "--data", dir}, &out, &errb, env); code != 1 || !strings.Contains(errb.String(), "already initialised") {
		t.Errorf("second keymeshd init = exit %d, stderr %q; want 1, already initialised", code, errb.String())
	}
	if code := run(context.Background(), []string{"init"}, &out, &errb, env); code != 2 {
		t.Errorf("keymeshd init without --data = exit %d, want 2", code)
	}
}
