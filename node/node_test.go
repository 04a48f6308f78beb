package node_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keymesh/keymesh/node"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
	"github.com/keymesh/keymesh/node/nodetest"
)

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if !client.IsCode(err, code) {
		t.Errorf("%s error = %v, want code %q", what, err, code)
	}
}

const canary = "CANARY-7f3a9c41-do-not-store"

// TestEndToEnd walks the README's single-node story against a real node:
// create a key, mint a token, grant, encrypt, decrypt, refuse, revoke,
// destroy; then checks the audit chain, that no file under the data
// directory holds the canary plaintext, and that state survives a restart.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	nd := nodetest.Start(t)
	dir, url, adminTok := nd.DataDir, nd.URL, nd.AdminToken
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := nd.Admin

	if _, err := admin.CreateKey(ctx, apiv1.CreateKeyRequest{Name: "demo/ssn"}); err != nil {
		t.Fatalf("CreateKey error = %v", err)
	}
	_, err := admin.CreateKey(ctx, apiv1.CreateKeyRequest{Name: "demo/ssn"})
	wantCode(t, "CreateKey(duplicate)", err, apiv1.CodeConflict)
	_, err = admin.CreateKey(ctx, apiv1.CreateKeyRequest{Name: "demo/Not_Lower"})
	wantCode(t, "CreateKey(bad name)", err, apiv1.CodeInvalidRequest)

	appTok, err := admin.CreateToken(ctx, apiv1.CreateTokenRequest{Party: "token:app"})
	if err != nil {
		t.Fatalf("CreateToken error = %v", err)
	}
	otherTok, err := admin.CreateToken(ctx, apiv1.CreateTokenRequest{Party: "token:other"})
	if err != nil {
		t.Fatal(err)
	}
	app := nd.NewClient(appTok.Token)
	other := nd.NewClient(otherTok.Token)
	fieldCtx := map[string]string{"field": "ssn"}

	_, _, err = app.EncryptValue(ctx, "demo/ssn", []byte(canary), fieldCtx, "")
	wantCode(t, "Encrypt before grant", err, apiv1.CodeNotGranted)
	_, err = app.CreateKey(ctx, apiv1.CreateKeyRequest{Name: "demo/x"})
	wantCode(t, "CreateKey with a client token", err, apiv1.CodeForbidden)

	if _, err := admin.CreateGrant(ctx, apiv1.CreateGrantRequest{Key: "demo/ssn", Party: "token:app", Ops: []string{"encrypt", "decrypt"}}); err != nil {
		t.Fatalf("CreateGrant error = %v", err)
	}
	env, ver, err := app.EncryptValue(ctx, "demo/ssn", []byte(canary), fieldCtx, "")
	if err != nil || ver != 1 || !strings.HasPrefix(env, "km1:") {
		t.Fatalf("EncryptValue = %q, %d, %v; want a km1: envelope at version 1", env, ver, err)
	}
	pt, err := app.DecryptValue(ctx, env, fieldCtx)
	if err != nil || string(pt) != canary {
		t.Fatalf("DecryptValue = %q, %v, want the canary", pt, err)
	}
	_, err = app.DecryptValue(ctx, env, map[string]string{"field": "email"})
	wantCode(t, "Decrypt(wrong context)", err, apiv1.CodeDecryptionFailed)
	_, err = other.DecryptValue(ctx, env, fieldCtx)
	wantCode(t, "Decrypt(token without grant)", err, apiv1.CodeNotGranted)
	_, err = nd.NewClient("").DecryptValue(ctx, env, fieldCtx)
	wantCode(t, "Decrypt(no token)", err, apiv1.CodeUnauthenticated)
	_, err = nd.NewClient("kmt_0000000000000000_AAAA").DecryptValue(ctx, env, fieldCtx)
	wantCode(t, "Decrypt(unknown token)", err, apiv1.CodeUnauthenticated)
	_, err = admin.DecryptValue(ctx, env, fieldCtx)
	wantCode(t, "Decrypt(admin token, separation of duties)", err, apiv1.CodeNotGranted)
	_, err = app.DecryptValue(ctx, "km1:AAAA", fieldCtx)
	wantCode(t, "Decrypt(malformed)", err, apiv1.CodeInvalidCiphertext)

	// Batch, with one bad item that fails alone.
	br, err := app.Encrypt(ctx, apiv1.EncryptRequest{Key: "demo/ssn", Batch: []apiv1.EncryptItem{
		{Plaintext: []byte("a"), Context: fieldCtx}, {Plaintext: []byte("b"), Context: map[string]string{"": "bad"}},
	}})
	if err != nil || len(br.Batch) != 2 || br.Batch[0].Error != nil || br.Batch[1].Error == nil {
		t.Fatalf("batch Encrypt = %+v, %v; want item 0 ok, item 1 failed", br, err)
	}
	dr, err := app.Decrypt(ctx, apiv1.DecryptRequest{Batch: []apiv1.DecryptItem{
		{Ciphertext: br.Batch[0].Ciphertext, Context: fieldCtx}, {Ciphertext: "nope", Context: fieldCtx},
	}})
	if err != nil || len(dr.Batch) != 2 || string(dr.Batch[0].Plaintext) != "a" || dr.Batch[1].Error == nil {
		t.Fatalf("batch Decrypt = %+v, %v; want item 0 = a, item 1 failed", dr, err)
	}

	// Revoke: decrypt refused. Grant again: allowed again (remove-wins only
	// ends grants issued before the revocation).
	rev, err := admin.Revoke(ctx, "demo/ssn", "token:app")
	if err != nil || rev.Ended != 1 {
		t.Fatalf("Revoke = %+v, %v; want 1 grant ended", rev, err)
	}
	_, err = app.DecryptValue(ctx, env, fieldCtx)
	wantCode(t, "Decrypt after revoke", err, apiv1.CodeNotGranted)
	if _, err := admin.CreateGrant(ctx, apiv1.CreateGrantRequest{Key: "demo/ssn", Party: "token:app", Ops: []string{"decrypt"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := app.DecryptValue(ctx, env, fieldCtx); err != nil {
		t.Errorf("Decrypt after re-grant error = %v", err)
	}

	// Destroy needs the confirmation, then every decrypt fails.
	_, err = admin.DestroyKey(ctx, "demo/ssn", apiv1.DestroyKeyRequest{Confirm: "demo/wrong"})
	wantCode(t, "DestroyKey(wrong confirm)", err, apiv1.CodeInvalidRequest)
	if _, err := admin.DestroyKey(ctx, "demo/ssn", apiv1.DestroyKeyRequest{Confirm: "demo/ssn"}); err != nil {
		t.Fatalf("DestroyKey error = %v", err)
	}
	_, err = app.DecryptValue(ctx, env, fieldCtx)
	wantCode(t, "Decrypt after destroy", err, apiv1.CodeKeyDestroyed)
	if err != nil && !strings.Contains(err.Error(), "key destroyed") {
		t.Errorf("Decrypt after destroy error = %q, want it to say %q", err, "key destroyed")
	}

	// A key for the restart check.
	if _, err := admin.CreateKey(ctx, apiv1.CreateKeyRequest{Name: "demo/kept"}); err != nil {
		t.Fatal(err)
	}
	v, err := admin.AuditVerify(ctx)
	if err != nil || !v.OK || v.Entries < 10 {
		t.Errorf("AuditVerify = %+v, %v; want ok with >= 10 entries", v, err)
	}
	tail, err := admin.AuditTail(ctx, 5)
	if err != nil || len(tail) != 5 {
		t.Errorf("AuditTail(5) = %d entries, %v", len(tail), err)
	}

	// Metrics are public and carry no secret.
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("keymesh_policy_decisions_total")) {
		t.Errorf("GET /metrics = %d, missing keymesh metrics", resp.StatusCode)
	}
	for _, secret := range []string{canary, appTok.Token, adminTok} {
		if bytes.Contains(body, []byte(secret)) {
			t.Errorf("/metrics leaks a secret")
		}
	}
	nd.Stop()

	// No file under the data directory holds the canary or a client token.
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(canary)) {
			t.Errorf("%s contains the canary plaintext", path)
		}
		if bytes.Contains(b, []byte(appTok.Token)) {
			t.Errorf("%s contains a client token", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Restart on the same data: keys, grants and tokens are still there.
	nd.Restart()
	admin = nd.Admin
	if k, err := admin.GetKey(ctx, "demo/kept"); err != nil || k.State != "active" {
		t.Errorf("GetKey after restart = %+v, %v", k, err)
	}
	if k, err := admin.GetKey(ctx, "demo/ssn"); err != nil || k.State != "destroyed" {
		t.Errorf("GetKey(destroyed) after restart = %+v, %v", k, err)
	}
	if v, err := admin.AuditVerify(ctx); err != nil || !v.OK {
		t.Errorf("AuditVerify after restart = %+v, %v", v, err)
	}
}

func TestOpenUninitialised(t *testing.T) {
	t.Parallel()
	_, err := node.Open(node.Config{DataDir: t.TempDir()}, nil)
	if !errors.Is(err, node.ErrNotInitialized) {
		t.Errorf("node.Open(empty dir) error = %v, want %v", err, node.ErrNotInitialized)
	}
}

func TestInitTwice(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := node.Init(node.Config{DataDir: dir}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := node.Init(node.Config{DataDir: dir}, ""); !errors.Is(err, node.ErrAlreadyInitialized) {
		t.Errorf("Init twice error = %v, want %v", err, node.ErrAlreadyInitialized)
	}
}

func TestWrongMasterKeyFailsAtStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := node.Init(node.Config{DataDir: dir}, ""); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.key")
	if err := os.WriteFile(other, bytes.Repeat([]byte{1}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := node.Open(node.Config{DataDir: dir, MasterKeyFile: other}, nil)
	if err == nil || !strings.Contains(err.Error(), "wrong master secret") {
		t.Errorf("node.Open(wrong master key) error = %v, want wrong master secret", err)
	}
}

func TestPassphraseNode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pf := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(pf, []byte("a long enough passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := node.Config{DataDir: dir, PassphraseFile: pf, PBKDF2Iterations: 1000}
	if _, err := node.Init(cfg, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "master.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a passphrase node wrote master.key (stat error %v)", err)
	}
	n, err := node.Open(cfg, nil)
	if err != nil {
		t.Fatalf("node.Open(passphrase) error = %v", err)
	}
	n.Close()
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  node.Config
		ok   bool
	}{
		{"ok/loopback", node.Config{DataDir: "d", Listen: "127.0.0.1:1"}, true},
		{"ok/ipv6-loopback", node.Config{DataDir: "d", Listen: "[::1]:1"}, true},
		{"ok/tls", node.Config{DataDir: "d", Listen: "0.0.0.0:1", TLSCert: "c", TLSKey: "k"}, true},
		{"ok/allow-plaintext", node.Config{DataDir: "d", Listen: "0.0.0.0:1", AllowPlaintext: true}, true},
		{"fail/plaintext-public", node.Config{DataDir: "d", Listen: "0.0.0.0:1"}, false},
		{"fail/no-data", node.Config{Listen: "127.0.0.1:1"}, false},
		{"fail/half-tls", node.Config{DataDir: "d", Listen: "127.0.0.1:1", TLSCert: "c"}, false},
		{"fail/log-level", node.Config{DataDir: "d", LogLevel: "loud"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.cfg.Defaults()
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestRotationActivatesOnTheClock: a rotated version activates when the
// node's clock reaches its activation time, not before: on an injected
// clock the test moves time instead of waiting for it.
func TestRotationActivatesOnTheClock(t *testing.T) {
	clk := nodetest.NewClock()
	n := nodetest.Start(t, nodetest.WithClock(clk))
	ctx := nodetest.Ctx(t)
	n.CreateKeys(t, "demo/clock")
	app := n.Client(t, "token:app")
	n.Grant(t, "token:app", []string{"encrypt", "decrypt"}, "demo/clock")
	if _, err := n.Admin.RotateKey(ctx, "demo/clock", apiv1.RotateKeyRequest{ActivateIn: "1h"}); err != nil {
		t.Fatal(err)
	}
	if _, v, err := app.EncryptValue(ctx, "demo/clock", []byte("x"), nil, ""); err != nil || v != 1 {
		t.Fatalf("encrypt before the activation time = v%d, %v; want v1", v, err)
	}
	clk.Advance(time.Hour + time.Second)
	env, v, err := app.EncryptValue(ctx, "demo/clock", []byte("y"), nil, "")
	if err != nil || v != 2 {
		t.Fatalf("encrypt after the activation time = v%d, %v; want v2", v, err)
	}
	if pt, err := app.DecryptValue(ctx, env, nil); err != nil || string(pt) != "y" {
		t.Errorf("decrypt = %q, %v", pt, err)
	}
	entries, err := n.Admin.AuditTail(ctx, 1)
	if err != nil || len(entries) != 1 || entries[0].Time.Before(clk.Now().Add(-time.Minute)) {
		t.Errorf("the audit log does not keep the node's clock: %+v, %v", entries, err)
	}
}
