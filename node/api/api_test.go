package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/kms/kmstest"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/token"
	"github.com/keymesh/keymesh/vault"
)

type fixture struct {
	srv        *httptest.Server
	auditFS    *audit.MemFS
	admin, app string
}

// newFixture serves the real API over real HTTP on 127.0.0.1, with the
// audit log on an in-memory store whose writes the test can make fail.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	solo := kmstest.New(t, kmstest.Options{Reason: ErrorCode})
	store, v := solo.Vault.Store(), solo.Member
	toks, err := token.Open(store)
	if err != nil {
		t.Fatal(err)
	}
	auditFS, al := solo.AuditFS, solo.Audit
	admin, _, err := toks.Create(policy.AdminParty, token.RoleAdmin, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	app, _, err := toks.Create("token:app", token.RoleClient, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.CreateKey("demo/k", vault.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Grant(policy.Grant{Key: "demo/k", Party: "token:app", Ops: policy.OpsAll, Issuer: "test"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Config{Core: solo.Core, Mesh: solo.Member, Tokens: toks, Audit: al}))
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, auditFS: auditFS, admin: admin, app: app}
}

func (f *fixture) do(t *testing.T, method, path, tok string, body io.Reader) (int, apiv1.ErrorResponse, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e apiv1.ErrorResponse
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, e, b
}

func TestAuditFailureFailsClosed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	body := `{"key":"demo/k","plaintext":"aGVsbG8=","context":{"field":"x"}}`
	if code, _, _ := f.do(t, "POST", "/v1/encrypt", f.app, strings.NewReader(body)); code != 200 {
		t.Fatalf("encrypt with a working audit log = %d, want 200", code)
	}
	f.auditFS.SetWriteFailure(errors.New("disk on fire"), 0)
	code, e, raw := f.do(t, "POST", "/v1/encrypt", f.app, strings.NewReader(body))
	if code != http.StatusServiceUnavailable || e.Error.Code != apiv1.CodeUnavailable {
		t.Errorf("encrypt with a failing audit log = %d %q, want 503 %q", code, e.Error.Code, apiv1.CodeUnavailable)
	}
	if bytes.Contains(raw, []byte("km1:")) || bytes.Contains(raw, []byte("disk on fire")) {
		t.Errorf("503 body %s leaks a ciphertext or the internal cause", raw)
	}
	code, _, _ = f.do(t, "POST", "/v1/keys", f.admin, strings.NewReader(`{"name":"demo/new"}`))
	if code != http.StatusServiceUnavailable {
		t.Errorf("create key with a failing audit log = %d, want 503", code)
	}
	f.auditFS.SetWriteFailure(nil, 0)
	if code, _, _ := f.do(t, "POST", "/v1/encrypt", f.app, strings.NewReader(body)); code != 200 {
		t.Errorf("encrypt after the audit log recovered = %d, want 200", code)
	}
}

func TestRequestLimitsAndErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	big := `{"key":"demo/k","plaintext":"` + strings.Repeat("A", apiv1.MaxBodyBytes) + `"}`
	items := make([]apiv1.EncryptItem, apiv1.MaxBatchItems+1)
	for i := range items {
		items[i].Plaintext = []byte("x")
	}
	overBatch, _ := json.Marshal(apiv1.EncryptRequest{Key: "demo/k", Batch: items})
	tests := []struct {
		name, method, path, tok, body string
		status                        int
		code                          string
	}{
		{"fail/no-token", "POST", "/v1/encrypt", "", `{}`, 401, apiv1.CodeUnauthenticated},
		{"fail/bad-token", "POST", "/v1/encrypt", "kmt_0123456789abcdef_" + strings.Repeat("A", 43), `{}`, 401, apiv1.CodeUnauthenticated},
		{"fail/client-on-admin-route", "GET", "/v1/keys", "app", ``, 403, apiv1.CodeForbidden},
		{"fail/body-too-large", "POST", "/v1/encrypt", "app", big, 413, apiv1.CodeTooLarge},
		{"fail/batch-too-large", "POST", "/v1/encrypt", "app", string(overBatch), 413, apiv1.CodeTooLarge},
		{"fail/unknown-field", "POST", "/v1/encrypt", "app", `{"key":"demo/k","plain_text":"eA=="}`, 400, apiv1.CodeInvalidRequest},
		{"fail/trailing-data", "POST", "/v1/encrypt", "app", `{"key":"demo/k"} {}`, 400, apiv1.CodeInvalidRequest},
		{"fail/empty-body", "POST", "/v1/encrypt", "app", ``, 400, apiv1.CodeInvalidRequest},
		{"fail/bad-json", "POST", "/v1/encrypt", "app", `{"key":`, 400, apiv1.CodeInvalidRequest},
		{"fail/bad-mode", "POST", "/v1/encrypt", "app", `{"key":"demo/k","mode":"ecb"}`, 400, apiv1.CodeInvalidRequest},
		{"fail/bad-key-name", "POST", "/v1/encrypt", "app", `{"key":"../k"}`, 400, apiv1.CodeInvalidRequest},
		{"fail/not-granted-key", "POST", "/v1/encrypt", "app", `{"key":"demo/other"}`, 403, apiv1.CodeNotGranted},
		{"fail/deterministic-not-allowed", "POST", "/v1/encrypt", "app", `{"key":"demo/k","mode":"deterministic"}`, 400, apiv1.CodeInvalidRequest},
		{"fail/no-route", "GET", "/v1/nope", "app", ``, 404, apiv1.CodeNotFound},
		{"fail/wrong-method", "DELETE", "/v1/encrypt", "app", ``, 405, apiv1.CodeInvalidRequest},
		{"fail/admin-token-bound-elsewhere", "POST", "/v1/tokens", "admin", `{"party":"eth:0x00000000000000000000000000000000000000aa"}`, 400, apiv1.CodeInvalidRequest},
		{"fail/destroy-without-confirm", "POST", "/v1/keys/demo/k/destroy", "admin", `{}`, 400, apiv1.CodeInvalidRequest},
		{"fail/bad-state", "POST", "/v1/keys/demo/k/state", "admin", `{"state":"destroyed"}`, 400, apiv1.CodeInvalidRequest},
		{"fail/audit-limit", "GET", "/v1/audit?limit=100000", "admin", ``, 400, apiv1.CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := map[string]string{"app": f.app, "admin": f.admin}[tt.tok]
			if tok == "" {
				tok = tt.tok
			}
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			code, e, raw := f.do(t, tt.method, tt.path, tok, body)
			if code != tt.status || e.Error.Code != tt.code {
				t.Errorf("%s %s = %d %q, want %d %q (body %.200s)", tt.method, tt.path, code, e.Error.Code, tt.status, tt.code, raw)
			}
			if e.Error.Message == "" {
				t.Errorf("error response without a message: %.200s", raw)
			}
			if bytes.Contains(raw, []byte("goroutine")) || bytes.Contains(raw, []byte(".go:")) {
				t.Errorf("response carries a stack trace: %.200s", raw)
			}
		})
	}
}

func TestHealthUnauthenticated(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _, _ := f.do(t, "GET", p, "", nil); code != 200 {
			t.Errorf("GET %s = %d, want 200", p, code)
		}
	}
}

// TestMetricsObserve: the hot routes' cached series count the same as the
// labelled ones they stand for, and other statuses and routes still count.
func TestMetricsObserve(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry())
	m.observe("/v1/encrypt", 200, time.Millisecond)
	m.observe("/v1/encrypt", 200, time.Millisecond)
	m.observe("/v1/encrypt", 403, time.Millisecond)
	m.observe("/v1/keys", 200, time.Millisecond)
	for _, tc := range []struct {
		route, code string
		want        float64
	}{{"/v1/encrypt", "200", 2}, {"/v1/encrypt", "403", 1}, {"/v1/keys", "200", 1}, {"/v1/decrypt", "200", 0}} {
		var got dto.Metric
		if err := m.requests.WithLabelValues(tc.route, tc.code).Write(&got); err != nil || got.GetCounter().GetValue() != tc.want {
			t.Errorf("requests{route=%q,code=%q} = %v (%v), want %v", tc.route, tc.code, got.GetCounter().GetValue(), err, tc.want)
		}
	}
	ch := make(chan prometheus.Metric, 10)
	m.latency.Collect(ch)
	if got := len(ch); got != 2 { // encrypt and keys
		t.Errorf("latency series = %d, want 2", got)
	}
}
