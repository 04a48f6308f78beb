package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/fips140"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
)

// TestFIPSFlagRefusesOutsideFIPSOnly checks that --fips, the config file's
// fips: true and KEYMESH_FIPS=1 each refuse to start a process that does not
// run with fips140=only, before anything is opened or created.
func TestFIPSFlagRefusesOutsideFIPSOnly(t *testing.T) {
	t.Parallel()
	if fips140.Enforced() {
		t.Skip("this process runs with fips140=only; TestFIPSDaemon covers it")
	}
	dir := t.TempDir()
	cfgFile := dir + "/keymesh.yaml"
	if err := os.WriteFile(cfgFile, []byte("fips: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"flag", []string{"--fips", "--dev", "--data", dir + "/a", "--listen", "127.0.0.1:0"}, nil},
		{"env", []string{"--dev", "--data", dir + "/b", "--listen", "127.0.0.1:0"}, map[string]string{"KEYMESH_FIPS": "1"}},
		{"config", []string{"--config", cfgFile, "--dev", "--data", dir + "/c", "--listen", "127.0.0.1:0"}, nil},
		{"dev-without-data", []string{"--fips", "--dev", "--listen", "127.0.0.1:0"}, nil},
	} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			code := run(ctx, tc.args, &stdout, &stderr, func(k string) string { return tc.env[k] })
			if code != 1 || !strings.Contains(stderr.String(), "GODEBUG=fips140=only") {
				t.Fatalf("run(%q) = %d, stderr %q; want 1 and a message naming GODEBUG=fips140=only", tc.args, code, stderr.String())
			}
			if strings.Contains(stdout.String(), "API:") {
				t.Fatalf("run(%q) served: %q", tc.args, stdout.String())
			}
		})
	}
	if _, err := os.Stat(dir + "/a"); err == nil {
		t.Error("refused start created its data directory")
	}
}

// TestFIPSDaemon starts a real keymeshd on 127.0.0.1 and drives a key
// through it: status reports the FIPS mode and module, and random and
// deterministic fields seal and open. Under GODEBUG=fips140=only (CI's FIPS
// pass, which the child inherits) it runs with --fips.
func TestFIPSDaemon(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a daemon process")
	}
	dir := t.TempDir()
	args := []string{"--dev", "--data", dir, "--listen", "127.0.0.1:0", "--log-level", "warn"}
	wantMode := "off"
	if fips140.Enforced() {
		args = append(args, "--fips")
		wantMode = "only"
	} else if fips140.Enabled() {
		wantMode = "on"
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "KEYMESH_TEST_DAEMON=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	urlc := make(chan string, 1)
	go func() {
		for sc := bufio.NewScanner(out); sc.Scan(); {
			if m := apiLine.FindStringSubmatch(sc.Text()); m != nil {
				urlc <- m[1]
			}
		}
	}()
	var url string
	select {
	case url = <-urlc:
	case <-time.After(60 * time.Second):
		t.Fatal("keymeshd did not print its API address within 60s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tokb, err := os.ReadFile(dir + "/admin.token")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := client.New(url, strings.TrimSpace(string(tokb)))
	if err != nil {
		t.Fatal(err)
	}
	st, err := admin.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.FIPS.Mode != wantMode || st.FIPS.Module != fips140.Version() || st.FIPS.Required != fips140.Enforced() {
		t.Errorf("Status().FIPS = %+v, want mode %q module %q required %v", st.FIPS, wantMode, fips140.Version(), fips140.Enforced())
	}
	if fips140.Enforced() != (len(st.FIPS.Disabled) == 1 && st.FIPS.Disabled[0] == apiv1.FIPSDisabledEthWallets) {
		t.Errorf("Status().FIPS.Disabled = %q, want [%s] exactly with --fips", st.FIPS.Disabled, apiv1.FIPSDisabledEthWallets)
	}
	wallet, _ := client.New(url, "")
	if _, err := wallet.EthDomain(ctx); fips140.Enforced() != client.IsCode(err, apiv1.CodeFIPSUnsupported) {
		t.Errorf("EthDomain() = %v; want %s exactly with --fips", err, apiv1.CodeFIPSUnsupported)
	}
	if _, err := admin.CreateKey(ctx, apiv1.CreateKeyRequest{Name: "fips/ssn", Deterministic: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateGrant(ctx, apiv1.CreateGrantRequest{Key: "fips/ssn", Party: "token:app", Ops: []string{"encrypt", "decrypt"}}); err != nil {
		t.Fatal(err)
	}
	tok, err := admin.CreateToken(ctx, apiv1.CreateTokenRequest{Party: "token:app"})
	if err != nil {
		t.Fatal(err)
	}
	app, _ := client.New(url, tok.Token)
	aad := map[string]string{"field": "ssn"}
	for _, mode := range []string{"random", "deterministic"} {
		env, _, err := app.EncryptValue(ctx, "fips/ssn", []byte("123-45-6789"), aad, mode)
		if err != nil {
			t.Fatalf("EncryptValue(%s) = %v", mode, err)
		}
		pt, err := app.DecryptValue(ctx, env, aad)
		if err != nil || string(pt) != "123-45-6789" {
			t.Fatalf("DecryptValue(%s) = %q, %v", mode, pt, err)
		}
	}
	t.Logf("keymeshd status fips: %+v", st.FIPS)
}
