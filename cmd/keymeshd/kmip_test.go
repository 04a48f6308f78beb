package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keymesh/keymesh/kmip/kmiptest"
	"github.com/keymesh/keymesh/node"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
)

const systemPython = "/usr/bin/python3" // Debian's python3-pykmip installs for it only

// needPyKMIP skips the test when PyKMIP is not installed, and fails it
// instead when CI is set: CI installs python3-pykmip (.ci/run).
func needPyKMIP(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs keymeshd and PyKMIP")
	}
	out, err := exec.Command(systemPython, "-c", "import kmip.pie.client, cryptography").CombinedOutput()
	if err == nil {
		return
	}
	msg := "PyKMIP is not installed (apt-get install python3-pykmip): " + strings.TrimSpace(string(out))
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// pykmipEnv is the configuration the script's steps share.
type pykmipEnv map[string]any

func (e pykmipEnv) with(kv ...any) pykmipEnv {
	out := pykmipEnv{}
	for k, v := range e {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// pykmip runs one step of testdata/pykmip_e2e.py and decodes its result.
func pykmip(t *testing.T, step string, cfg pykmipEnv) map[string]any {
	t.Helper()
	b, _ := json.Marshal(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, systemPython, "testdata/pykmip_e2e.py", step, string(b))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pykmip %s: %v\n%s", step, err, stderr.String())
	}
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("pykmip %s: output %q: %v", step, out, err)
	}
	t.Logf("pykmip %s: %s", step, out)
	return res
}

func wantField(t *testing.T, step string, res map[string]any, field string, want any) {
	t.Helper()
	got := res[field]
	if f, ok := got.(float64); ok {
		got = int(f)
	}
	if got != want {
		t.Errorf("pykmip %s: %s = %v, want %v", step, field, got, want)
	}
}

var kmipLine = regexp.MustCompile(`keymeshd KMIP on (\S+)`)

// kmipDaemon is a keymeshd process serving KMIP.
type kmipDaemon struct {
	cmd       *exec.Cmd
	url, kmip string
}

func (d *kmipDaemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	_ = d.cmd.Wait()
}

// startKMIPDaemon runs keymeshd with args plus the KMIP flags and waits for
// its REST and KMIP addresses.
func startKMIPDaemon(t *testing.T, pki *kmipTestPKI, kmipListen string, args ...string) *kmipDaemon {
	t.Helper()
	args = append(args, "--listen", "127.0.0.1:0", "--log-level", "warn",
		"--kmip-listen", kmipListen, "--kmip-cert", pki.server.CertFile, "--kmip-key", pki.server.KeyFile, "--kmip-client-ca", pki.clientCA.File)
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
	d := &kmipDaemon{cmd: cmd}
	got := make(chan [2]string, 2)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := kmipLine.FindStringSubmatch(sc.Text()); m != nil {
				got <- [2]string{"kmip", m[1]}
			}
			if m := apiLine.FindStringSubmatch(sc.Text()); m != nil {
				got <- [2]string{"url", m[1]}
			}
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				got <- [2]string{"url", m[1]}
			}
		}
	}()
	deadline := time.After(60 * time.Second)
	for d.url == "" || d.kmip == "" {
		select {
		case kv := <-got:
			if kv[0] == "kmip" {
				d.kmip = kv[1]
			} else {
				d.url = kv[1]
			}
		case <-deadline:
			d.stop()
			t.Fatal("keymeshd did not print its REST and KMIP addresses within 60s")
		}
	}
	return d
}

type kmipTestPKI struct {
	serverCA, clientCA, untrusted *kmiptest.CA
	server, mongo, other, rogue   kmiptest.Pair
	conf                          string
}

func newKMIPTestPKI(t *testing.T) *kmipTestPKI {
	t.Helper()
	dir := t.TempDir()
	p := &kmipTestPKI{}
	var err error
	check := func(e error) {
		if e != nil {
			t.Fatal(e)
		}
	}
	p.serverCA, err = kmiptest.NewCA(dir, "server")
	check(err)
	p.server, err = p.serverCA.Server(dir, "server")
	check(err)
	p.clientCA, err = kmiptest.NewCA(dir, "clients")
	check(err)
	p.mongo, err = p.clientCA.Client(dir, "mongo", "mongodb-prod")
	check(err)
	p.other, err = p.clientCA.Client(dir, "other", "backup-job")
	check(err)
	p.untrusted, err = kmiptest.NewCA(dir, "untrusted")
	check(err)
	p.rogue, err = p.untrusted.Client(dir, "rogue", "mongodb-prod")
	check(err)
	// PyKMIP reads /etc/pykmip/pykmip.conf unless given a file: an empty
	// client section keeps it to the arguments.
	p.conf = filepath.Join(dir, "pykmip.conf")
	check(os.WriteFile(p.conf, []byte("[client]\n"), 0o600))
	return p
}

func (p *kmipTestPKI) env(hosts string, port string) pykmipEnv {
	return pykmipEnv{"hosts": hosts, "port": port, "ca": p.serverCA.File, "conf": p.conf,
		"cert": p.mongo.CertFile, "key": p.mongo.KeyFile,
		"other_cert": p.other.CertFile, "other_key": p.other.KeyFile,
		"rogue_cert": p.rogue.CertFile, "rogue_key": p.rogue.KeyFile}
}

// TestPyKMIP drives a real keymeshd with PyKMIP 0.10 (KMIP 1.2), the
// client Debian ships: the key's life and the refusals.
func TestPyKMIP(t *testing.T) {
	needPyKMIP(t)
	pki := newKMIPTestPKI(t)
	dir := t.TempDir()
	d := startKMIPDaemon(t, pki, "127.0.0.1:0", "--dev", "--data", dir)
	defer d.stop()
	host, port, _ := strings.Cut(d.kmip, ":")
	env := pki.env(host, port).with("name", "mongodb-cmk")

	res := pykmip(t, "create", env)
	uid, _ := res["uid"].(string)
	if !strings.HasPrefix(uid, "kmip/") {
		t.Fatalf("uid %q", uid)
	}
	wantField(t, "create", res, "state_created", "PRE_ACTIVE")
	wantField(t, "create", res, "state_activated", "ACTIVE")
	if loc, _ := res["located"].([]any); !slices.Equal(loc, []any{uid}) {
		t.Errorf("locate by name = %v, want [%s]", loc, uid)
	}
	attrs, _ := res["attributes"].(map[string]any)
	if a, _ := attrs["Cryptographic Algorithm"].(string); !strings.Contains(a, "AES") {
		t.Errorf("attributes = %v", attrs)
	}
	wantField(t, "create", res, "get_refused", "PERMISSION_DENIED")
	wantField(t, "create", res, "decrypted", "pykmip plaintext")
	wantField(t, "create", res, "tampered_refused", "CRYPTOGRAPHIC_FAILURE")

	// The operator grants export; PyKMIP's Get then returns the key Encrypt used.
	tok, err := os.ReadFile(node.AdminTokenFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	rest, err := client.New(d.url, strings.TrimSpace(string(tok)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, k := range []string{uid, res["uid2"].(string)} {
		if _, err := rest.CreateGrant(ctx, apiv1.CreateGrantRequest{Key: k, Party: "kmip:mongodb-prod", Ops: []string{"export"}}); err != nil {
			t.Fatal(err)
		}
	}
	env = env.with("uid", uid, "uid2", res["uid2"], "ciphertext", res["ciphertext"], "iv", res["iv"])
	g := pykmip(t, "get", env)
	wantField(t, "get", g, "length", 32)
	wantField(t, "get", g, "local_decrypt", "pykmip plaintext")
	wantField(t, "get", g, "get2_refused", "PERMISSION_DENIED") // created without Export

	den := pykmip(t, "denied", env)
	wantField(t, "denied", den, "encrypt_refused", "PERMISSION_DENIED")
	wantField(t, "denied", den, "get_attributes_refused", "ITEM_NOT_FOUND")
	if loc, _ := den["located"].([]any); len(loc) != 0 {
		t.Errorf("another client located %v", loc)
	}
	pykmip(t, "untrusted", env)

	fin := pykmip(t, "finish", env)
	wantField(t, "finish", fin, "destroy_active_refused", "ILLEGAL_OPERATION")
	wantField(t, "finish", fin, "state_revoked", "COMPROMISED")
	wantField(t, "finish", fin, "encrypt_revoked_refused", "ILLEGAL_OPERATION")
	wantField(t, "finish", fin, "decrypt_revoked", "pykmip plaintext")
	wantField(t, "finish", fin, "state_destroyed", "DESTROYED")
	wantField(t, "finish", fin, "decrypt_destroyed_refused", "ILLEGAL_OPERATION")

	// The REST API and the audit log saw the same key.
	k, err := rest.GetKey(ctx, uid)
	if err != nil || k.State != "destroyed" {
		t.Errorf("REST GetKey = %+v, %v", k, err)
	}
	entries, err := rest.AuditTail(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var denies int
	for _, e := range entries {
		if e.Principal == "kmip:backup-job" && e.Outcome == "deny" {
			denies++
		}
	}
	if denies == 0 {
		t.Error("the audit log has no denial for kmip:backup-job")
	}
}
