package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/keymesh/keymesh/node"
	"github.com/keymesh/keymesh/node/nodetest"
)

// TestREADMEWalkthrough runs the README's first session with the real CLI
// against a real node on 127.0.0.1: create a key, mint a token, grant,
// encrypt and decrypt, refuse a wrong context and an ungranted token,
// revoke, destroy.
func TestREADMEWalkthrough(t *testing.T) {
	t.Parallel()
	// The node's default rotation grace, as a user's node has it.
	n := nodetest.Start(t, nodetest.WithConfig(func(c *node.Config) { c.RotationGrace = 0 }))
	addr, adminTok := n.Node.Addr(), n.AdminToken

	type result struct {
		code           int
		stdout, stderr string
	}
	cli := func(tok, stdin string, args ...string) result {
		t.Helper()
		env := map[string]string{"KEYMESH_ADDR": addr, "KEYMESH_TOKEN": strings.TrimSpace(tok)}
		var out, errb bytes.Buffer
		code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb, func(k string) string { return env[k] })
		return result{code, out.String(), errb.String()}
	}
	admin := adminTok
	mustOK := func(r result, what string) result {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("%s: exit %d, stderr %q", what, r.code, r.stderr)
		}
		return r
	}

	mustOK(cli(admin, "", "status"), "status")
	mustOK(cli(admin, "", "keys", "create", "demo/ssn"), "keys create")
	var created struct {
		Token string `json:"token"`
	}
	r := mustOK(cli(admin, "", "token", "create", "--party", "token:app", "-o", "json"), "token create")
	if err := json.Unmarshal([]byte(r.stdout), &created); err != nil || !strings.HasPrefix(created.Token, "kmt_") {
		t.Fatalf("token create -o json = %q, %v; want a .token secret", r.stdout, err)
	}
	other := mustOK(cli(admin, "", "token", "create", "--party", "token:other", "-o", "json"), "token create other")
	var otherTok struct {
		Token string `json:"token"`
	}
	_ = json.Unmarshal([]byte(other.stdout), &otherTok)

	app := created.Token
	if r := cli(app, "", "encrypt", "demo/ssn", "--context", "field=ssn", "--value", "123-45-6789"); r.code == 0 {
		t.Fatal("encrypt before the grant succeeded")
	}
	mustOK(cli(admin, "", "grant", "demo/ssn", "token:app", "--ops", "encrypt,decrypt"), "grant")
	r = mustOK(cli(admin, "", "grants", "list", "demo/ssn"), "grants list")
	if !strings.Contains(r.stdout, "token:app") {
		t.Errorf("grants list = %q, want token:app", r.stdout)
	}

	env := strings.TrimSpace(mustOK(cli(app, "", "encrypt", "demo/ssn", "--context", "field=ssn", "--value", "123-45-6789"), "encrypt").stdout)
	if !strings.HasPrefix(env, "km1:") {
		t.Fatalf("encrypt printed %q, want a km1: envelope", env)
	}
	if got := mustOK(cli(app, "", "decrypt", "--context", "field=ssn", "--value", env), "decrypt").stdout; got != "123-45-6789" {
		t.Errorf("decrypt printed %q, want 123-45-6789", got)
	}
	// stdin in, stdin out.
	env2 := strings.TrimSpace(mustOK(cli(app, "secret from stdin", "encrypt", "demo/ssn"), "encrypt stdin").stdout)
	if got := mustOK(cli(app, env2+"\n", "decrypt"), "decrypt stdin").stdout; got != "secret from stdin" {
		t.Errorf("decrypt (stdin) printed %q", got)
	}
	if r := cli(app, "", "decrypt", "--context", "field=email", "--value", env); r.code != 1 || !strings.Contains(r.stderr, "decryption failed") {
		t.Errorf("decrypt with a wrong context: exit %d stderr %q, want 1 and decryption failed", r.code, r.stderr)
	}
	if r := cli(otherTok.Token, "", "decrypt", "--context", "field=ssn", "--value", env); r.code != 1 || !strings.Contains(r.stderr, "no grant") {
		t.Errorf("decrypt without a grant: exit %d stderr %q, want 1 and no grant", r.code, r.stderr)
	}
	if r := cli("", "", "decrypt", "--context", "field=ssn", "--value", env); r.code == 0 {
		t.Errorf("decrypt without a token succeeded")
	}

	mustOK(cli(admin, "", "revoke", "demo/ssn", "token:app"), "revoke")
	if r := cli(app, "", "decrypt", "--context", "field=ssn", "--value", env); r.code != 1 {
		t.Errorf("decrypt after revoke: exit %d, want 1", r.code)
	}
	mustOK(cli(admin, "", "grant", "demo/ssn", "token:app", "--ops", "decrypt"), "grant again")
	if r := cli(admin, "", "keys", "destroy", "demo/ssn"); r.code != 2 {
		t.Errorf("keys destroy without --confirm: exit %d, want 2", r.code)
	}
	mustOK(cli(admin, "", "keys", "destroy", "demo/ssn", "--confirm", "demo/ssn"), "keys destroy")
	if r := cli(app, "", "decrypt", "--context", "field=ssn", "--value", env); r.code != 1 || !strings.Contains(r.stderr, "key destroyed") {
		t.Errorf("decrypt after destroy: exit %d stderr %q, want 1 and key destroyed", r.code, r.stderr)
	}
	r = mustOK(cli(admin, "", "audit", "tail", "-n", "5"), "audit tail")
	if strings.Contains(r.stdout, "123-45-6789") || strings.Contains(r.stdout, app) {
		t.Errorf("audit tail shows a secret: %q", r.stdout)
	}
	mustOK(cli(admin, "", "audit", "verify"), "audit verify")
	mustOK(cli(admin, "", "keys", "show", "demo/ssn"), "keys show")
}
