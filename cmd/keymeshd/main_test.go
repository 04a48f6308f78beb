package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
)

// The test binary doubles as the daemon: with KEYMESH_TEST_DAEMON=1 it runs
// keymeshd's main with the remaining arguments, so the crash test below
// kills a real keymeshd process without building a second binary.
func TestMain(m *testing.M) {
	if os.Getenv("KEYMESH_TEST_DAEMON") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

var apiLine = regexp.MustCompile(`API:\s+(http://\S+)`)

// startDaemon starts keymeshd --dev on dir in a child process and returns
// the process and its API URL.
func startDaemon(t *testing.T, dir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "--dev", "--data", dir, "--listen", "127.0.0.1:0", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "KEYMESH_TEST_DAEMON=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := apiLine.FindStringSubmatch(sc.Text()); m != nil {
				urlc <- m[1]
			}
		}
	}()
	select {
	case u := <-urlc:
		return cmd, u
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("keymeshd did not print its API address within 30s")
	}
	return nil, ""
}

// TestKill9KeepsAcknowledgedChanges checks that a key, a grant and a token
// acknowledged by the API survive kill -9 and a restart on the same data.
func TestKill9KeepsAcknowledgedChanges(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts daemon processes")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	cmd, url := startDaemon(t, dir)
	tokb, err := os.ReadFile(dir + "/admin.token")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := client.New(url, strings.TrimSpace(string(tokb)))
	if err != nil {
		t.Fatal(err)
	}
	const keys = 20
	for i := range keys {
		name := "crash/k" + string(rune('a'+i))
		if _, err := admin.CreateKey(ctx, apiv1.CreateKeyRequest{Name: name}); err != nil {
			t.Fatalf("CreateKey(%s) error = %v", name, err)
		}
	}
	if _, err := admin.CreateGrant(ctx, apiv1.CreateGrantRequest{Key: "crash/ka", Party: "token:app", Ops: []string{"encrypt"}}); err != nil {
		t.Fatal(err)
	}
	app, err := admin.CreateToken(ctx, apiv1.CreateTokenRequest{Party: "token:app"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	cmd, url = startDaemon(t, dir)
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	admin, _ = client.New(url, strings.TrimSpace(string(tokb)))
	list, err := admin.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != keys {
		t.Errorf("after kill -9: %d keys, want %d", len(list), keys)
	}
	appc, _ := client.New(url, app.Token)
	if _, _, err := appc.EncryptValue(ctx, "crash/ka", []byte("x"), nil, ""); err != nil {
		t.Errorf("after kill -9: encrypt with the granted token error = %v", err)
	}
	if v, err := admin.AuditVerify(ctx); err != nil || !v.OK {
		t.Errorf("after kill -9: AuditVerify = %+v, %v", v, err)
	}
}

// TestGracefulShutdown checks that SIGTERM stops keymeshd with exit 0.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a daemon process")
	}
	cmd, _ := startDaemon(t, t.TempDir())
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("keymeshd after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("keymeshd did not stop within 20s of SIGTERM")
	}
}
