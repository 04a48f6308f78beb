package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
)

// startDaemonEnv is startDaemon with extra environment variables.
func startDaemonEnv(t *testing.T, dir string, env ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "--dev", "--data", dir, "--listen", "127.0.0.1:0", "--log-level", "warn")
	cmd.Env = append(append(os.Environ(), "KEYMESH_TEST_DAEMON=1"), env...)
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

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestFullDisk_RefusesWritesKeepsServingAndLosesNothing is the end-to-end
// regression test of the SIGBUS on a full disk. A real keymeshd runs on a
// 160 MiB tmpfs that a filler file brings close to the store's reserve;
// writers then create keys until the node refuses with 507
// insufficient_storage. The process must stay up, decryption of an
// existing envelope must keep working, /readyz and the metrics must say
// why; once the filler is removed writes succeed again, and after kill -9
// and a restart every acknowledged key is there. It needs root (to mount
// the tmpfs) and skips cleanly otherwise.
func TestFullDisk_RefusesWritesKeepsServingAndLosesNothing(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts daemon processes on a tmpfs")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a size-limited tmpfs")
	}
	disk := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=160m,mode=0700", "tmpfs", disk).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", disk).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", disk, err, out)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	dir := filepath.Join(disk, "data")
	const reserveMB = 16
	env := []string{fmt.Sprintf("KEYMESH_DISK_RESERVE_MB=%d", reserveMB)}
	cmd, url := startDaemonEnv(t, dir, env...)
	stopped := false
	stop := func(sig syscall.Signal) {
		if !stopped {
			_ = cmd.Process.Signal(sig)
			_ = cmd.Wait()
			stopped = true
		}
	}
	t.Cleanup(func() { stop(syscall.SIGKILL) })
	tokb, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := client.New(url, strings.TrimSpace(string(tokb)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateKey(ctx, apiv1.CreateKeyRequest{Name: "disk/k"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateGrant(ctx, apiv1.CreateGrantRequest{Key: "disk/k", Party: "token:admin", Ops: []string{"encrypt", "decrypt"}}); err != nil {
		t.Fatal(err)
	}
	env0, _, err := admin.EncryptValue(ctx, "disk/k", []byte("written before the disk filled"), map[string]string{"f": "x"}, "")
	if err != nil {
		t.Fatal(err)
	}

	// Fill the disk to 2 MiB above the reserve.
	filler := filepath.Join(disk, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for freeBytes(t, disk) > (reserveMB+2)<<20 {
		if _, err := f.Write(chunk); err != nil {
			t.Fatalf("filling the tmpfs: %v", err)
		}
	}
	f.Close()

	// Writers create keys until the node refuses, bounded by count.
	var (
		mu     sync.Mutex
		acked  []string
		full   int
		others []string
	)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 20000 {
				name := fmt.Sprintf("fill/w%d-%05d", w, i)
				_, err := admin.CreateKey(ctx, apiv1.CreateKeyRequest{Name: name})
				mu.Lock()
				switch {
				case err == nil:
					acked = append(acked, name)
				case client.IsCode(err, apiv1.CodeNoSpace):
					full++
				default:
					others = append(others, err.Error())
				}
				stop := full >= 8 || len(others) > 0 || ctx.Err() != nil
				mu.Unlock()
				if stop {
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d keys acknowledged, %d refusals with 507 before the writers stopped", len(acked), full)
	if len(others) > 0 {
		t.Fatalf("writes on a full disk failed otherwise than with 507 %s: %v", apiv1.CodeNoSpace, others[:min(3, len(others))])
	}
	if full == 0 {
		t.Fatal("the node never refused a write with 507")
	}
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("keymeshd is gone after the disk filled: %v", err)
	}
	if pt, err := admin.DecryptValue(ctx, env0, map[string]string{"f": "x"}); err != nil || string(pt) != "written before the disk filled" {
		t.Errorf("decrypt on a full disk = %q, %v; want the plaintext", pt, err)
	}
	if code, body := get(t, url+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "reserve") {
		t.Errorf("/readyz on a full disk = %d %s, want 503 with the reason", code, body)
	}
	if _, body := get(t, url+"/metrics"); !strings.Contains(body, `keymesh_store_no_space{store="main"} 1`) {
		t.Errorf("/metrics on a full disk lacks keymesh_store_no_space{store=\"main\"} 1")
	}

	// Space returns: the next write succeeds, with nothing to reset.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateKey(ctx, apiv1.CreateKeyRequest{Name: "disk/after"}); err != nil {
		t.Fatalf("create after space returned: %v", err)
	}
	acked = append(acked, "disk/after")
	if code, body := get(t, url+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after space returned = %d %s, want 200", code, body)
	}

	// Nothing acknowledged is lost across kill -9.
	stop(syscall.SIGKILL)
	cmd, url = startDaemonEnv(t, dir, env...)
	stopped = false
	admin, _ = client.New(url, strings.TrimSpace(string(tokb)))
	list, err := admin.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, k := range list {
		have[k.Name] = true
	}
	lost := 0
	for _, name := range acked {
		if !have[name] {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("after kill -9: %d of %d acknowledged keys lost", lost, len(acked))
	}
	if v, err := admin.AuditVerify(ctx); err != nil || !v.OK {
		t.Errorf("after kill -9: AuditVerify = %+v, %v", v, err)
	}
	stop(syscall.SIGTERM)
}
