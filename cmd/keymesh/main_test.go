package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/keymesh/keymesh/node/apiv1"
)

// reply is a canned answer of the fake daemon.
type reply struct {
	status int
	body   string
}

type request struct {
	Method, Path, Query, Auth string
	Body                      []byte
}

// fakeDaemon answers "METHOD /path" with canned replies and records what it
// received. It is a stand-in for keymeshd in the CLI's own tests.
type fakeDaemon struct {
	*httptest.Server
	mu      sync.Mutex
	replies map[string]reply
	reqs    []request
}

func newFakeDaemon(t *testing.T, replies map[string]reply) *fakeDaemon {
	t.Helper()
	d := &fakeDaemon{replies: replies}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		d.mu.Lock()
		d.reqs = append(d.reqs, request{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"), b})
		rep, ok := d.replies[r.Method+" "+r.URL.EscapedPath()]
		d.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"code":"not_found","message":"no such route"}}`)
			return
		}
		if rep.status == 0 {
			rep.status = http.StatusOK
		}
		w.WriteHeader(rep.status)
		_, _ = io.WriteString(w, rep.body)
	}))
	t.Cleanup(d.Close)
	return d
}

func (d *fakeDaemon) requests() []request {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]request(nil), d.reqs...)
}

type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the CLI in-process with env (a map) and stdin.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut, func(k string) string { return env[k] })
	return result{code, out.String(), errOut.String()}
}

// withDaemon is the environment that points the CLI at d with token "tok".
func withDaemon(d *fakeDaemon) map[string]string {
	return map[string]string{envAddr: d.URL, envToken: "tok"}
}

const (
	keyJSON = `{"name":"demo/ssn","owner":"Org1MSP","state":"active","deterministic":true,"exportable":false,
		"created":"2026-03-01T12:00:00Z","latest_version":2,"min_decryption_version":1,
		"versions":[{"version":1,"created":"2026-03-01T12:00:00Z","activate_at":"2026-03-01T12:00:00Z","encryptions":7,"destroyed":false},
		{"version":2,"created":"2026-03-02T12:00:00Z","activate_at":"2026-03-02T12:05:00Z","encryptions":0,"destroyed":false}]}`
	statusJSON = `{"node":"12D3KooWabc","org":"Org1MSP","network_id":"n1","version":"v0.1.0","started_at":"2026-03-01T12:00:00Z",
		"ready":true,"keys":2,"grants":1,"tokens":3,"audit_head":9,"principal":"token:admin","role":"admin",
		"fips":{"mode":"only","module":"v1.0.0","required":true,"disabled":["eth_wallets"]}}`
)

func TestParseContext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		pairs []string
		want  map[string]string
	}{
		{"ok/none", nil, nil},
		{"ok/one", []string{"channel=trades"}, map[string]string{"channel": "trades"}},
		{"ok/first-equals", []string{"a=b=c", "d=x,y"}, map[string]string{"a": "b=c", "d": "x,y"}},
		{"ok/empty-value", []string{"a="}, map[string]string{"a": ""}},
		{"fail/no-equals", []string{"channel"}, nil},
		{"fail/empty-key", []string{"=v"}, nil},
		{"fail/repeated", []string{"a=1", "a=2"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseContext(tc.pairs)
			if strings.HasPrefix(tc.name, "fail/") {
				var ue usageError
				if !errors.As(err, &ue) {
					t.Fatalf("parseContext(%q) = %v, %v; want a usage error", tc.pairs, got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseContext(%q) = %v, %v; want %v", tc.pairs, got, err, tc.want)
			}
		})
	}
}

func TestTokenAndAddrPrecedence(t *testing.T) {
	t.Parallel()
	envDaemon := newFakeDaemon(t, map[string]reply{"GET /v1/status": {body: statusJSON}})
	flagDaemon := newFakeDaemon(t, map[string]reply{"GET /v1/status": {body: statusJSON}})
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("  file-tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		wantCode   int
		wantDaemon *fakeDaemon
		wantAuth   string
	}{
		{"ok/env", map[string]string{envAddr: envDaemon.URL, envToken: "env-tok"}, nil, 0, envDaemon, "Bearer env-tok"},
		{"ok/flag-token-beats-env", map[string]string{envAddr: envDaemon.URL, envToken: "env-tok"}, []string{"--token", "flag-tok"}, 0, envDaemon, "Bearer flag-tok"},
		{"ok/token-file-beats-env", map[string]string{envAddr: envDaemon.URL, envToken: "env-tok"}, []string{"--token-file", tokenFile}, 0, envDaemon, "Bearer file-tok"},
		{"ok/flag-addr-beats-env", map[string]string{envAddr: envDaemon.URL, envToken: "env-tok"}, []string{"--addr", flagDaemon.URL}, 0, flagDaemon, "Bearer env-tok"},
		{"ok/flags-after-command", map[string]string{envAddr: envDaemon.URL}, []string{"--token=x"}, 0, envDaemon, "Bearer x"},
		{"fail/no-token", map[string]string{envAddr: envDaemon.URL}, nil, exitUsage, nil, ""},
		{"fail/token-and-token-file", map[string]string{envAddr: envDaemon.URL}, []string{"--token", "a", "--token-file", tokenFile}, exitUsage, nil, ""},
		{"fail/empty-token-flag", map[string]string{envAddr: envDaemon.URL, envToken: "env-tok"}, []string{"--token", ""}, exitUsage, nil, ""},
		{"fail/empty-token-file", map[string]string{envAddr: envDaemon.URL}, []string{"--token-file", emptyFile}, exitFailure, nil, ""},
		{"fail/missing-token-file", map[string]string{envAddr: envDaemon.URL}, []string{"--token-file", filepath.Join(dir, "nope")}, exitFailure, nil, ""},
		{"fail/bad-addr", map[string]string{envToken: "t"}, []string{"--addr", "ftp://x"}, exitUsage, nil, ""},
		{"fail/bad-token-chars", map[string]string{envAddr: envDaemon.URL}, []string{"--token", "a b"}, exitUsage, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(envDaemon.requests()) + len(flagDaemon.requests())
			res := runCLI(t, tc.env, "", append([]string{"status"}, tc.args...)...)
			if res.code != tc.wantCode {
				t.Fatalf("status %q = exit %d (stderr %q), want %d", tc.args, res.code, res.stderr, tc.wantCode)
			}
			if tc.wantDaemon == nil {
				if after := len(envDaemon.requests()) + len(flagDaemon.requests()); after != before {
					t.Errorf("a daemon received a request; want none")
				}
				if !strings.HasPrefix(res.stderr, "keymesh: ") || strings.Count(res.stderr, "\n") != 1 {
					t.Errorf("stderr = %q, want one line starting keymesh: ", res.stderr)
				}
				for _, secret := range []string{"env-tok", "flag-tok", "file-tok"} {
					if strings.Contains(res.stderr, secret) {
						t.Errorf("stderr %q shows a token", res.stderr)
					}
				}
				return
			}
			reqs := tc.wantDaemon.requests()
			if len(reqs) == 0 {
				t.Fatalf("the expected daemon received no request")
			}
			if got := reqs[len(reqs)-1].Auth; got != tc.wantAuth {
				t.Errorf("Authorization = %q, want %q", got, tc.wantAuth)
			}
		})
	}
}

func TestStatusOutput(t *testing.T) {
	t.Parallel()
	d := newFakeDaemon(t, map[string]reply{"GET /v1/status": {body: statusJSON}})

	res := runCLI(t, withDaemon(d), "", "status")
	if res.code != 0 {
		t.Fatalf("status = exit %d, stderr %q", res.code, res.stderr)
	}
	for _, want := range []string{"Org1MSP", "token:admin", "Audit head:", "2026-03-01T12:00:00Z", "FIPS 140-3:", "only (module v1.0.0), required by --fips; refuses eth_wallets (outside the FIPS claim)"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("status table = %q, want it to hold %q", res.stdout, want)
		}
	}

	res = runCLI(t, withDaemon(d), "", "status", "-o", "json")
	var s apiv1.Status
	if err := json.Unmarshal([]byte(res.stdout), &s); err != nil || s.Org != "Org1MSP" || s.AuditHead != 9 {
		t.Errorf("status -o json = %q (%v), want apiv1.Status JSON", res.stdout, err)
	}
	if !strings.Contains(res.stdout, "\n  \"node\"") {
		t.Errorf("status -o json = %q, want indented JSON", res.stdout)
	}
}

func TestKeysListOutput(t *testing.T) {
	t.Parallel()
	d := newFakeDaemon(t, map[string]reply{"GET /v1/keys": {body: `{"keys":[` + keyJSON + `]}`}})
	res := runCLI(t, withDaemon(d), "", "keys", "list")
	if res.code != 0 {
		t.Fatalf("keys list = exit %d, stderr %q", res.code, res.stderr)
	}
	lines := strings.Split(strings.TrimRight(res.stdout, "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[1], "demo/ssn") || !strings.Contains(lines[1], "deterministic") {
		t.Errorf("keys list table = %q", res.stdout)
	}
	if got, want := strings.Fields(lines[1])[:5], []string{"demo/ssn", "active", "Org1MSP", "2", "1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("keys list row = %q, want it to start %q", got, want)
	}

	res = runCLI(t, withDaemon(d), "", "-o", "json", "keys", "list")
	var kl apiv1.KeyList
	if err := json.Unmarshal([]byte(res.stdout), &kl); err != nil || len(kl.Keys) != 1 || kl.Keys[0].Versions[0].Encryptions != 7 {
		t.Errorf("keys list -o json = %q (%v)", res.stdout, err)
	}

	empty := newFakeDaemon(t, map[string]reply{"GET /v1/keys": {body: `{"keys":null}`}})
	res = runCLI(t, withDaemon(empty), "", "-o", "json", "keys", "list")
	if !strings.Contains(res.stdout, `"keys": []`) {
		t.Errorf("keys list -o json of no keys = %q, want an empty array", res.stdout)
	}
}

func TestKeysShowSanitizes(t *testing.T) {
	t.Parallel()
	evil := strings.Replace(keyJSON, `"owner":"Org1MSP"`, `"owner":"Org1\u001b[2J\nMSP"`, 1)
	d := newFakeDaemon(t, map[string]reply{"GET /v1/keys/demo/ssn": {body: evil}})
	res := runCLI(t, withDaemon(d), "", "keys", "show", "demo/ssn")
	if res.code != 0 {
		t.Fatalf("keys show = exit %d, stderr %q", res.code, res.stderr)
	}
	if strings.Contains(res.stdout, "\x1b") || !strings.Contains(res.stdout, `"Org1\x1b[2J\nMSP"`) {
		t.Errorf("keys show = %q, want the control characters escaped", res.stdout)
	}
	if !strings.Contains(res.stdout, "VERSION") || !strings.Contains(res.stdout, "2026-03-02T12:05:00Z") {
		t.Errorf("keys show = %q, want the versions table", res.stdout)
	}
}

func TestKeysDestroy(t *testing.T) {
	t.Parallel()
	d := newFakeDaemon(t, map[string]reply{"POST /v1/keys/demo/ssn/destroy": {body: strings.Replace(keyJSON, `"state":"active"`, `"state":"destroyed"`, 1)}})
	for _, args := range [][]string{
		{"keys", "destroy", "demo/ssn"},
		{"keys", "destroy", "demo/ssn", "--confirm", "demo/other"},
		{"keys", "destroy", "demo/ssn", "--confirm", ""},
	} {
		res := runCLI(t, withDaemon(d), "", args...)
		if res.code != exitUsage || !strings.Contains(res.stderr, "refusing to destroy") || !strings.Contains(res.stderr, "--confirm demo/ssn") {
			t.Errorf("%q = exit %d, stderr %q; want exit 2 and a refusal", args, res.code, res.stderr)
		}
	}
	if n := len(d.requests()); n != 0 {
		t.Fatalf("the daemon received %d requests before confirmation, want none", n)
	}

	res := runCLI(t, withDaemon(d), "", "keys", "destroy", "demo/ssn", "--confirm", "demo/ssn")
	if res.code != 0 || !strings.Contains(res.stdout, "destroyed") {
		t.Fatalf("keys destroy --confirm = exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if body := string(d.requests()[0].Body); body != `{"confirm":"demo/ssn"}` {
		t.Errorf("destroy body = %s", body)
	}
}

func TestKeysRequests(t *testing.T) {
	t.Parallel()
	d := newFakeDaemon(t, map[string]reply{
		"POST /v1/keys":                  {status: 201, body: keyJSON},
		"POST /v1/keys/demo/ssn/rotate":  {body: keyJSON},
		"POST /v1/keys/demo/ssn/state":   {body: keyJSON},
		"POST /v1/keys/demo/ssn/config":  {body: keyJSON},
		"GET /v1/grants":                 {body: `{"grants":[]}`},
		"POST /v1/grants":                {status: 201, body: `{"id":"g1","key":"demo/ssn","party":"org:Org2MSP","ops":["decrypt"],"issuer":"Org1MSP","issued_at":"2026-03-01T12:00:00Z","in_force":true,"status":"in force"}`},
		"POST /v1/grants/revoke":         {body: `{"id":"r1","key":"demo/ssn","party":"org:Org2MSP","issuer":"Org1MSP","issued_at":"2026-03-01T12:00:00Z","ended":1}`},
		"POST /v1/tokens/t1/revoke":      {body: `{"id":"t1","party":"token:app","role":"client","created":"2026-03-01T12:00:00Z","revoked":true}`},
		"GET /v1/audit":                  {body: `{"entries":[]}`},
		"GET /v1/tokens":                 {body: `{"tokens":[]}`},
		"POST /v1/keys/demo/ssn/destroy": {body: keyJSON},
	})
	tests := []struct {
		args                []string
		method, path, query string
		body                string
	}{
		{[]string{"keys", "create", "demo/ssn", "--deterministic", "--pre-active"}, "POST", "/v1/keys", "", `{"name":"demo/ssn","deterministic":true,"state":"pre-active"}`},
		{[]string{"keys", "rotate", "demo/ssn", "--activate-in", "5m"}, "POST", "/v1/keys/demo/ssn/rotate", "", `{"activate_in":"5m"}`},
		{[]string{"keys", "state", "demo/ssn", "deactivated"}, "POST", "/v1/keys/demo/ssn/state", "", `{"state":"deactivated"}`},
		{[]string{"keys", "config", "demo/ssn", "--min-decryption-version", "2"}, "POST", "/v1/keys/demo/ssn/config", "", `{"min_decryption_version":2}`},
		{[]string{"grant", "demo/ssn", "org:Org2MSP", "--ops", "encrypt,decrypt", "--until", "2026-12-31T00:00:00Z", "--custodian", "Org1MSP"}, "POST", "/v1/grants", "",
			`{"key":"demo/ssn","party":"org:Org2MSP","ops":["encrypt","decrypt"],"not_after":"2026-12-31T00:00:00Z","custodian":"Org1MSP"}`},
		{[]string{"revoke", "demo/ssn", "org:Org2MSP"}, "POST", "/v1/grants/revoke", "", `{"key":"demo/ssn","party":"org:Org2MSP"}`},
		{[]string{"grants", "list", "demo/ssn"}, "GET", "/v1/grants", "key=demo%2Fssn", ""},
		{[]string{"grants", "list"}, "GET", "/v1/grants", "", ""},
		{[]string{"token", "revoke", "t1"}, "POST", "/v1/tokens/t1/revoke", "", ""},
		{[]string{"token", "list"}, "GET", "/v1/tokens", "", ""},
		{[]string{"audit", "tail", "-n", "5"}, "GET", "/v1/audit", "limit=5", ""},
		{[]string{"audit", "tail"}, "GET", "/v1/audit", "limit=20", ""},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			res := runCLI(t, withDaemon(d), "", tc.args...)
			if res.code != 0 {
				t.Fatalf("%q = exit %d, stderr %q", tc.args, res.code, res.stderr)
			}
			reqs := d.requests()
			r := reqs[len(reqs)-1]
			if r.Method != tc.method || r.Path != tc.path || r.Query != tc.query || string(r.Body) != tc.body {
				t.Errorf("%q sent %s %s?%s %s, want %s %s?%s %s", tc.args, r.Method, r.Path, r.Query, r.Body, tc.method, tc.path, tc.query, tc.body)
			}
		})
	}
}

func TestEncryptDecrypt(t *testing.T) {
	t.Parallel()
	d := newFakeDaemon(t, map[string]reply{
		"POST /v1/encrypt": {body: `{"ciphertext":"km1:QUJD","key":"demo/ssn","version":2}`},
		"POST /v1/decrypt": {body: `{"plaintext":"c2VjcmV0Cg==","key":"demo/ssn","version":2}`}, // "secret\n"
	})
	last := func() request { r := d.requests(); return r[len(r)-1] }

	// Stdin is the plaintext, byte for byte.
	res := runCLI(t, withDaemon(d), "line one\nline two\n", "encrypt", "demo/ssn", "--context", "channel=trades", "--context", "field=a=b")
	if res.code != 0 || res.stdout != "km1:QUJD\n" {
		t.Fatalf("encrypt = exit %d, stdout %q, stderr %q; want the envelope and a newline", res.code, res.stdout, res.stderr)
	}
	var er apiv1.EncryptRequest
	if err := json.Unmarshal(last().Body, &er); err != nil {
		t.Fatal(err)
	}
	if string(er.Plaintext) != "line one\nline two\n" || !reflect.DeepEqual(er.Context, map[string]string{"channel": "trades", "field": "a=b"}) || er.Key != "demo/ssn" {
		t.Errorf("encrypt sent %+v", er)
	}

	// --value, endorsement mode.
	res = runCLI(t, withDaemon(d), "ignored", "encrypt", "demo/ssn", "--value", "v", "--mode", "endorsement", "--tx-id", "tx1", "--tx-time", "2026-03-01T12:00:00Z")
	if res.code != 0 {
		t.Fatalf("encrypt --value = exit %d, stderr %q", res.code, res.stderr)
	}
	er = apiv1.EncryptRequest{}
	if err := json.Unmarshal(last().Body, &er); err != nil {
		t.Fatal(err)
	}
	if string(er.Plaintext) != "v" || er.Mode != "endorsement" || er.TxID != "tx1" || er.TxTime == nil {
		t.Errorf("encrypt --value sent %+v", er)
	}

	// The envelope from stdin is trimmed; the plaintext is printed exactly.
	res = runCLI(t, withDaemon(d), "  km1:QUJD \n", "decrypt", "--context", "field=ssn")
	if res.code != 0 || res.stdout != "secret\n" {
		t.Fatalf("decrypt = exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	var dr apiv1.DecryptRequest
	if err := json.Unmarshal(last().Body, &dr); err != nil {
		t.Fatal(err)
	}
	if dr.Ciphertext != "km1:QUJD" || dr.Context["field"] != "ssn" {
		t.Errorf("decrypt sent %+v", dr)
	}

	res = runCLI(t, withDaemon(d), "", "decrypt", "--value", "km1:QUJD", "-o", "json")
	var resp apiv1.DecryptResponse
	if err := json.Unmarshal([]byte(res.stdout), &resp); err != nil || string(resp.Plaintext) != "secret\n" {
		t.Errorf("decrypt -o json = %q (%v)", res.stdout, err)
	}

	before := len(d.requests())
	for _, args := range [][]string{
		{"encrypt", "demo/ssn", "--value", "v", "--tx-id", "tx1"},
		{"encrypt", "demo/ssn", "--value", "v", "--context", "a=1", "--context", "a=2"},
		{"encrypt", "demo/ssn", "--value", "v", "--context", "novalue"},
		{"encrypt", "demo/ssn", "--value", "v", "--tx-id", "tx1", "--tx-time", "yesterday"},
		{"encrypt"},
		{"decrypt"},
		{"decrypt", "--value", "  "},
	} {
		if res := runCLI(t, withDaemon(d), "", args...); res.code != exitUsage {
			t.Errorf("%q = exit %d (stderr %q), want %d", args, res.code, res.stderr, exitUsage)
		}
	}
	if after := len(d.requests()); after != before {
		t.Errorf("usage errors sent %d requests, want none", after-before)
	}
}

func TestEncryptStdinBounded(t *testing.T) {
	t.Parallel()
	d := newFakeDaemon(t, nil)
	res := runCLI(t, withDaemon(d), strings.Repeat("x", maxStdinBytes+1), "encrypt", "demo/ssn")
	if res.code != exitFailure || !strings.Contains(res.stderr, "over") {
		t.Errorf("encrypt of %d bytes = exit %d, stderr %q; want a refusal", maxStdinBytes+1, res.code, res.stderr)
	}
	if n := len(d.requests()); n != 0 {
		t.Errorf("the daemon received %d requests, want none", n)
	}
}

func TestTokenCreate(t *testing.T) {
	t.Parallel()
	d := newFakeDaemon(t, map[string]reply{"POST /v1/tokens": {status: 201,
		body: `{"token":"km_SECRET123","info":{"id":"t1","party":"token:app","role":"admin","label":"app","created":"2026-03-01T12:00:00Z","revoked":false}}`}})

	res := runCLI(t, withDaemon(d), "", "token", "create", "--party", "token:app", "--role", "admin", "--label", "app", "--ttl", "24h")
	if res.code != 0 || !strings.Contains(res.stdout, "km_SECRET123") || !strings.Contains(res.stderr, "only this once") {
		t.Fatalf("token create = exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if body := string(d.requests()[0].Body); body != `{"party":"token:app","role":"admin","label":"app","ttl":"24h"}` {
		t.Errorf("token create sent %s", body)
	}

	res = runCLI(t, withDaemon(d), "", "token", "create", "--party", "token:app", "-o", "json")
	var ct apiv1.CreatedToken
	if err := json.Unmarshal([]byte(res.stdout), &ct); err != nil || ct.Token != "km_SECRET123" || ct.Info.ID != "t1" {
		t.Errorf("token create -o json = %q (%v)", res.stdout, err)
	}
	if res.stderr != "" {
		t.Errorf("token create -o json stderr = %q, want none", res.stderr)
	}

	for _, args := range [][]string{
		{"token", "create"},
		{"token", "create", "--party", "p", "--role", "root"},
		{"token", "create", "--party", "p", "--ttl", "forever"},
		{"token", "create", "--party", "p", "--ttl", "-1h"},
	} {
		if res := runCLI(t, withDaemon(d), "", args...); res.code != exitUsage {
			t.Errorf("%q = exit %d (stderr %q), want %d", args, res.code, res.stderr, exitUsage)
		}
	}
}

// TestAuditVerify: --sync verifies through POST /v1/audit/verify alone.
func TestAuditVerify(t *testing.T) {
	t.Parallel()
	ok := newFakeDaemon(t, map[string]reply{"POST /v1/audit/verify": {body: `{"ok":true,"entries":10,"head":"abcd"}`}})
	res := runCLI(t, withDaemon(ok), "", "audit", "verify", "--sync")
	if res.code != 0 || !strings.Contains(res.stdout, "OK") {
		t.Errorf("audit verify --sync (ok) = exit %d, stdout %q", res.code, res.stdout)
	}
	if reqs := ok.requests(); len(reqs) != 1 || reqs[0].Method != "POST" || reqs[0].Path != "/v1/audit/verify" {
		t.Errorf("audit verify --sync sent %+v, want POST /v1/audit/verify only", reqs)
	}

	broken := newFakeDaemon(t, map[string]reply{"POST /v1/audit/verify": {body: `{"ok":false,"entries":10,"head":"abcd","seq":4,"reason":"hash mismatch"}`}})
	for _, output := range []string{"table", "json"} {
		res := runCLI(t, withDaemon(broken), "", "audit", "verify", "--sync", "-o", output)
		if res.code != exitFailure || !strings.Contains(res.stderr, "broken at entry 4: hash mismatch") {
			t.Errorf("audit verify -o %s (broken) = exit %d, stderr %q; want exit 1", output, res.code, res.stderr)
		}
		if output == "json" {
			var v apiv1.AuditVerify
			if err := json.Unmarshal([]byte(res.stdout), &v); err != nil || v.OK || v.Seq != 4 {
				t.Errorf("audit verify -o json = %q (%v)", res.stdout, err)
			}
		}
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	d := newFakeDaemon(t, map[string]reply{
		"GET /v1/keys/demo/nope": {status: 404, body: `{"error":{"code":"not_found","message":"key \"demo/nope\" not found"}}`},
		"GET /v1/status":         {status: 401, body: `{"error":{"code":"unauthenticated","message":"unknown token"}}`},
	})
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"ok/help", []string{"--help"}, exitOK, ""},
		{"ok/keys-help", []string{"keys", "destroy", "--help"}, exitOK, ""},
		{"fail/api-not-found", []string{"keys", "show", "demo/nope"}, exitFailure, `keymesh: not_found: key "demo/nope" not found` + "\n"},
		{"fail/api-unauthenticated", []string{"status"}, exitFailure, "keymesh: unauthenticated: unknown token\n"},
		{"fail/no-command", nil, exitUsage, "keymesh: missing command; see 'keymesh --help'\n"},
		{"fail/unknown-command", []string{"kyes", "list"}, exitUsage, `keymesh: unknown command "kyes" for "keymesh"; did you mean "keys"?` + "\n"},
		{"fail/unknown-subcommand", []string{"keys", "lst"}, exitUsage, ""},
		{"fail/group-alone", []string{"keys"}, exitUsage, ""},
		{"fail/unknown-flag", []string{"status", "--bogus"}, exitUsage, "keymesh: unknown flag: --bogus\n"},
		{"fail/arg-count", []string{"keys", "show"}, exitUsage, ""},
		{"fail/too-many-args", []string{"keys", "show", "a/b", "c/d"}, exitUsage, ""},
		{"fail/bad-output", []string{"status", "-o", "yaml"}, exitUsage, ""},
		{"fail/bad-key-name", []string{"keys", "show", "nonamespace"}, exitUsage, ""},
		{"fail/state-destroyed", []string{"keys", "state", "demo/ssn", "destroyed"}, exitUsage, ""},
		{"fail/config-without-flag", []string{"keys", "config", "demo/ssn"}, exitUsage, ""},
		{"fail/rotate-bad-duration", []string{"keys", "rotate", "demo/ssn", "--activate-in", "soon"}, exitUsage, ""},
		{"fail/grant-without-ops", []string{"grant", "demo/ssn", "org:Org2MSP"}, exitUsage, ""},
		{"fail/grant-bad-op", []string{"grant", "demo/ssn", "org:Org2MSP", "--ops", "sign"}, exitUsage, ""},
		{"fail/grant-bad-time", []string{"grant", "demo/ssn", "org:Org2MSP", "--ops", "decrypt", "--from", "tomorrow"}, exitUsage, ""},
		{"fail/grant-until-before-from", []string{"grant", "demo/ssn", "org:Org2MSP", "--ops", "decrypt", "--from", "2026-02-01T00:00:00Z", "--until", "2026-01-01T00:00:00Z"}, exitUsage, ""},
		{"fail/audit-tail-n", []string{"audit", "tail", "-n", "0"}, exitUsage, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := runCLI(t, withDaemon(d), "", tc.args...)
			if res.code != tc.wantCode {
				t.Fatalf("%q = exit %d (stderr %q), want %d", tc.args, res.code, res.stderr, tc.wantCode)
			}
			if tc.wantCode == exitOK {
				if res.stderr != "" || res.stdout == "" {
					t.Errorf("%q: stdout %q, stderr %q; want help on stdout only", tc.args, res.stdout, res.stderr)
				}
				return
			}
			if tc.wantStderr != "" && res.stderr != tc.wantStderr {
				t.Errorf("%q: stderr = %q, want %q", tc.args, res.stderr, tc.wantStderr)
			}
			if !strings.HasPrefix(res.stderr, "keymesh: ") || strings.Count(res.stderr, "\n") != 1 {
				t.Errorf("%q: stderr = %q, want one line starting keymesh: ", tc.args, res.stderr)
			}
			if res.stdout != "" {
				t.Errorf("%q: stdout = %q, want nothing", tc.args, res.stdout)
			}
		})
	}
}
