package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInit(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "node")
	var out, errb bytes.Buffer
	env := func(string) string { return "" }
	code := run(context.Background(), []string{"init", "--data", dir, "--org", "Org1MSP", "-o", "json"}, strings.NewReader(""), &out, &errb, env)
	if code != 0 {
		t.Fatalf("init exit %d, stderr %q", code, errb.String())
	}
	var res struct {
		AdminToken string `json:"admin_token"`
		Org        string `json:"org"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("init -o json output %q: %v", out.String(), err)
	}
	if !strings.HasPrefix(res.AdminToken, "kmt_") || res.Org != "Org1MSP" {
		t.Errorf("init = %+v, want a kmt_ admin token for Org1MSP", res)
	}
	fi, err := os.Stat(filepath.Join(dir, "master.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("master.key stat = %v, %v; want mode 0600", fi, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "admin.token")); err == nil {
		t.Error("init wrote admin.token without --admin-token-file")
	}
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"init", "--data", dir}, strings.NewReader(""), &out, &errb, env); code != 1 {
		t.Errorf("second init exit %d, want 1 (already initialised); stderr %q", code, errb.String())
	}
	if code := run(context.Background(), []string{"init"}, strings.NewReader(""), &out, &errb, env); code != 2 {
		t.Errorf("init without --data exit %d, want 2", code)
	}
}
