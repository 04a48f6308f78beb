package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keymesh/keymesh/node/apiv1"
)

const testToken = "km_s3cr3t-t0ken.value"

// recorded is one request as the fake server saw it.
type recorded struct {
	Method      string
	Path        string // escaped, as on the wire
	Query       string
	Auth        string
	ContentType string
	UserAgent   string
	Body        []byte
}

// fake is an httptest server that records requests and answers each with
// status and body.
type fake struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []recorded
	status int
	body   string
}

func newFake(t *testing.T, status int, body string) *fake {
	t.Helper()
	f := &fake{status: status, body: body}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, recorded{
			Method:      r.Method,
			Path:        r.URL.EscapedPath(),
			Query:       r.URL.RawQuery,
			Auth:        r.Header.Get("Authorization"),
			ContentType: r.Header.Get("Content-Type"),
			UserAgent:   r.Header.Get("User-Agent"),
			Body:        b,
		})
		status, body := f.status, f.body
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fake) last(t *testing.T) recorded {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		t.Fatal("the server received no request")
	}
	return f.reqs[len(f.reqs)-1]
}

func (f *fake) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func newTestClient(t *testing.T, addr string, opts ...Option) *Client {
	t.Helper()
	c, err := New(addr, testToken, opts...)
	if err != nil {
		t.Fatalf("New(%q) = %v", addr, err)
	}
	return c
}

// sameJSON reports whether a and b are equal JSON values.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("unmarshal %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return bytes.Equal(ja, jb)
}

var (
	t0     = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	t1     = t0.Add(24 * time.Hour)
	keyDoc = `{"name":"demo/ssn","owner":"Org1MSP","state":"active","deterministic":false,"exportable":false,
		"created":"2026-03-01T12:00:00Z","latest_version":2,"min_decryption_version":1,
		"versions":[{"version":1,"created":"2026-03-01T12:00:00Z","activate_at":"2026-03-01T12:00:00Z","encryptions":3,"destroyed":false}]}`
)

// routeCase calls one client method; the fake answers with resp and the
// case checks what was sent and what came back.
type routeCase struct {
	name      string
	route     string // "METHOD /template", as in docs/openapi.yaml
	call      func(ctx context.Context, c *Client) (any, error)
	resp      string
	status    int
	wantPath  string // escaped
	wantQuery string
	wantBody  string // JSON, or "" for no body
	check     func(t *testing.T, got any)
}

// routeCases exercises every method of Client, one case or more per route.
var routeCases = []routeCase{
	{
		name: "Health", route: "GET /healthz", resp: `{"status":"ok"}`, wantPath: "/healthz",
		call: func(ctx context.Context, c *Client) (any, error) { return c.Health(ctx) },
		check: func(t *testing.T, got any) {
			if h := got.(*apiv1.Health); h.Status != "ok" {
				t.Errorf("Health() = %+v, want status ok", h)
			}
		},
	},
	{
		name: "Ready", route: "GET /readyz", resp: `{"status":"ready"}`, wantPath: "/readyz",
		call: func(ctx context.Context, c *Client) (any, error) { return c.Ready(ctx) },
	},
	{
		name: "Metrics", route: "GET /metrics", resp: "# HELP x\nx 1\n", wantPath: "/metrics",
		call: func(ctx context.Context, c *Client) (any, error) { return c.Metrics(ctx) },
		check: func(t *testing.T, got any) {
			if string(got.([]byte)) != "# HELP x\nx 1\n" {
				t.Errorf("Metrics() = %q", got)
			}
		},
	},
	{
		name: "Status", route: "GET /v1/status", wantPath: "/v1/status",
		resp: `{"node":"12D3Koo","org":"Org1MSP","network_id":"n1","version":"v0","started_at":"2026-03-01T12:00:00Z","ready":true,"keys":2,"grants":1,"tokens":3,"audit_head":9,"principal":"token:admin","role":"admin"}`,
		call: func(ctx context.Context, c *Client) (any, error) { return c.Status(ctx) },
		check: func(t *testing.T, got any) {
			s := got.(*apiv1.Status)
			if s.Org != "Org1MSP" || !s.Ready || s.AuditHead != 9 || !s.StartedAt.Equal(t0) {
				t.Errorf("Status() = %+v", s)
			}
		},
	},
	{
		name: "CreateKey", route: "POST /v1/keys", status: 201, resp: keyDoc, wantPath: "/v1/keys",
		wantBody: `{"name":"demo/ssn","deterministic":true,"state":"pre-active"}`,
		call: func(ctx context.Context, c *Client) (any, error) {
			return c.CreateKey(ctx, apiv1.CreateKeyRequest{Name: "demo/ssn", Deterministic: true, State: "pre-active"})
		},
		check: func(t *testing.T, got any) {
			k := got.(*apiv1.Key)
			if k.Name != "demo/ssn" || k.LatestVersion != 2 || len(k.Versions) != 1 || k.Versions[0].Encryptions != 3 {
				t.Errorf("CreateKey() = %+v", k)
			}
		},
	},
	{
		name: "ListKeys", route: "GET /v1/keys", resp: `{"keys":[` + keyDoc + `]}`, wantPath: "/v1/keys",
		call: func(ctx context.Context, c *Client) (any, error) { return c.ListKeys(ctx) },
		check: func(t *testing.T, got any) {
			if ks := got.([]apiv1.Key); len(ks) != 1 || ks[0].Name != "demo/ssn" {
				t.Errorf("ListKeys() = %+v", ks)
			}
		},
	},
	{
		name: "GetKey", route: "GET /v1/keys/{ns}/{name}", resp: keyDoc, wantPath: "/v1/keys/demo/ssn",
		call: func(ctx context.Context, c *Client) (any, error) { return c.GetKey(ctx, "demo/ssn") },
	},
	{
		name: "GetKey/escaped", route: "GET /v1/keys/{ns}/{name}", resp: keyDoc, wantPath: "/v1/keys/my%20ns/a%3Fb%23c%25",
		call: func(ctx context.Context, c *Client) (any, error) { return c.GetKey(ctx, "my ns/a?b#c%") },
	},
	{
		name: "RotateKey", route: "POST /v1/keys/{ns}/{name}/rotate", resp: keyDoc, wantPath: "/v1/keys/demo/ssn/rotate",
		wantBody: `{"activate_in":"5m"}`,
		call: func(ctx context.Context, c *Client) (any, error) {
			return c.RotateKey(ctx, "demo/ssn", apiv1.RotateKeyRequest{ActivateIn: "5m"})
		},
	},
	{
		name: "RotateKey/default-grace", route: "POST /v1/keys/{ns}/{name}/rotate", resp: keyDoc, wantPath: "/v1/keys/demo/ssn/rotate",
		wantBody: `{}`,
		call: func(ctx context.Context, c *Client) (any, error) {
			return c.RotateKey(ctx, "demo/ssn", apiv1.RotateKeyRequest{})
		},
	},
	{
		name: "SetKeyState", route: "POST /v1/keys/{ns}/{name}/state", resp: keyDoc, wantPath: "/v1/keys/demo/ssn/state",
		wantBody: `{"state":"deactivated"}`,
		call: func(ctx context.Context, c *Client) (any, error) {
			return c.SetKeyState(ctx, "demo/ssn", apiv1.SetKeyStateRequest{State: "deactivated"})
		},
	},
	{
		name: "SetKeyConfig", route: "POST /v1/keys/{ns}/{name}/config", resp: keyDoc, wantPath: "/v1/keys/demo/ssn/config",
		wantBody: `{"min_decryption_version":2}`,
		call: func(ctx context.Context, c *Client) (any, error) {
			return c.SetKeyConfig(ctx, "demo/ssn", apiv1.KeyConfigRequest{MinDecryptionVersion: 2})
		},
	},
	{
		name: "DestroyKey", route: "POST /v1/keys/{ns}/{name}/destroy", resp: keyDoc, wantPath: "/v1/keys/demo/ssn/destroy",
		wantBody: `{"confirm":"demo/ssn"}`,
		call: func(ctx context.Context, c *Client) (any, error) {
			return c.DestroyKey(ctx, "demo/ssn", apiv1.DestroyKeyRequest{Confirm: "demo/ssn"})
		},
	},
	{
		name: "Encrypt/batch", route: "POST /v1/encrypt", wantPath: "/v1/encrypt",
		resp:     `{"key":"demo/ssn","batch":[{"ciphertext":"km1:AA","version":2},{"error":{"code":"too_large","message":"big"}}]}`,
		wantBody: `{"key":"demo/ssn","mode":"endorsement","batch":[{"plaintext":"aGk=","tx_id":"tx1","tx_time":"2026-03-01T12:00:00Z"},{"plaintext":""}]}`,
		call: func(ctx context.Context, c *Client) (any, error) {
			return c.Encrypt(ctx, apiv1.EncryptRequest{Key: "demo/ssn", Mode: "endorsement", Batch: []apiv1.EncryptItem{
				{Plaintext: []byte("hi"), TxID: "tx1", TxTime: &t0}, {Plaintext: []byte{}},
			}})
		},
		check: func(t *testing.T, got any) {
			r := got.(*apiv1.EncryptResponse)
			if len(r.Batch) != 2 || r.Batch[0].Ciphertext != "km1:AA" || r.Batch[1].Error == nil || r.Batch[1].Error.Code != apiv1.CodeTooLarge {
				t.Errorf("Encrypt() = %+v", r)
			}
		},
	},
	{
		name: "EncryptValue", route: "POST /v1/encrypt", wantPath: "/v1/encrypt",
		resp:     `{"ciphertext":"km1:AAAA","key":"demo/ssn","version":3}`,
		wantBody: `{"key":"demo/ssn","plaintext":"MTIzLTQ1LTY3ODk=","context":{"field":"ssn"},"mode":"deterministic"}`,
		call: func(ctx context.Context, c *Client) (any, error) {
			env, v, err := c.EncryptValue(ctx, "demo/ssn", []byte("123-45-6789"), map[string]string{"field": "ssn"}, "deterministic")
			return fmt.Sprintf("%s v%d", env, v), err
		},
		check: func(t *testing.T, got any) {
			if got != "km1:AAAA v3" {
				t.Errorf("EncryptValue() = %v, want km1:AAAA v3", got)
			}
		},
	},
	{
		name: "Decrypt", route: "POST /v1/decrypt", wantPath: "/v1/decrypt",
		resp:     `{"batch":[{"plaintext":"aGk="},{}]}`,
		wantBody: `{"batch":[{"ciphertext":"km1:AA"},{"ciphertext":"km1:BB","context":{"a":"b"}}]}`,
		call: func(ctx context.Context, c *Client) (any, error) {
			return c.Decrypt(ctx, apiv1.DecryptRequest{Batch: []apiv1.DecryptItem{{Ciphertext: "km1:AA"}, {Ciphertext: "km1:BB", Context: map[string]string{"a": "b"}}}})
		},
	},
	{
		name: "DecryptValue", route: "POST /v1/decrypt", wantPath: "/v1/decrypt",
		resp:     `{"plaintext":"MTIzLTQ1LTY3ODk=","key":"demo/ssn","version":3}`,
		wantBody: `{"ciphertext":"km1:AAAA","context":{"field":"ssn"}}`,
		call: func(ctx context.Context, c *Client) (any, error) {
			return c.DecryptValue(ctx, "km1:AAAA", map[string]string{"field": "ssn"})
		},
		check: func(t *testing.T, got any) {
			if string(got.([]byte)) != "123-45-6789" {
				t.Errorf("DecryptValue() = %q", got)
			}
		},
	},
	{
		name: "DecryptValue/empty", route: "POST /v1/decrypt", wantPath: "/v1/decrypt",
		resp:     `{"key":"demo/ssn","version":3}`,
		wantBody: `{"ciphertext":"km1:AAAA"}`,
		call: func(ctx context.Context, c *Client) (any, error) {
			return c.DecryptValue(ctx, "km1:AAAA", nil)
		},
		check: func(t *testing.T, got any) {
			if p := got.([]byte); p == nil || len(p) != 0 {
				t.Errorf("DecryptValue() = %#v, want empty non-nil", p)
			}
		},
	},
	{
		name: "CreateGrant", route: "POST /v1/grants", status: 201, wantPath: "/v1/grants",
		resp:     `{"id":"g1","key":"demo/ssn","party":"org:Org2MSP","ops":["decrypt"],"issuer":"Org1MSP","issued_at":"2026-03-01T12:00:00Z","in_force":true,"status":"in force"}`,
		wantBody: `{"key":"demo/ssn","party":"org:Org2MSP","ops":["encrypt","decrypt"],"not_before":"2026-03-01T12:00:00Z","not_after":"2026-03-02T12:00:00Z","custodian":"Org1MSP"}`,
		call: func(ctx context.Context, c *Client) (any, error) {
			return c.CreateGrant(ctx, apiv1.CreateGrantRequest{Key: "demo/ssn", Party: "org:Org2MSP", Ops: []string{"encrypt", "decrypt"}, NotBefore: &t0, NotAfter: &t1, Custodian: "Org1MSP"})
		},
		check: func(t *testing.T, got any) {
			if g := got.(*apiv1.Grant); g.ID != "g1" || !g.InForce {
				t.Errorf("CreateGrant() = %+v", g)
			}
		},
	},
	{
		name: "ListGrants/all", route: "GET /v1/grants", resp: `{"grants":[]}`, wantPath: "/v1/grants",
		call: func(ctx context.Context, c *Client) (any, error) { return c.ListGrants(ctx, "") },
	},
	{
		name: "ListGrants/key", route: "GET /v1/grants", resp: `{"grants":[]}`, wantPath: "/v1/grants", wantQuery: "key=demo%2Fssn",
		call: func(ctx context.Context, c *Client) (any, error) { return c.ListGrants(ctx, "demo/ssn") },
	},
	{
		name: "Revoke", route: "POST /v1/grants/revoke", wantPath: "/v1/grants/revoke",
		resp:     `{"id":"r1","key":"demo/ssn","party":"org:Org2MSP","issuer":"Org1MSP","issued_at":"2026-03-01T12:00:00Z","ended":2}`,
		wantBody: `{"key":"demo/ssn","party":"org:Org2MSP"}`,
		call:     func(ctx context.Context, c *Client) (any, error) { return c.Revoke(ctx, "demo/ssn", "org:Org2MSP") },
		check: func(t *testing.T, got any) {
			if r := got.(*apiv1.Revocation); r.Ended != 2 {
				t.Errorf("Revoke() = %+v", r)
			}
		},
	},
	{
		name: "CreateToken", route: "POST /v1/tokens", status: 201, wantPath: "/v1/tokens",
		resp:     `{"token":"km_new","info":{"id":"t1","party":"token:app","role":"client","created":"2026-03-01T12:00:00Z","revoked":false}}`,
		wantBody: `{"party":"token:app","label":"app","ttl":"24h"}`,
		call: func(ctx context.Context, c *Client) (any, error) {
			return c.CreateToken(ctx, apiv1.CreateTokenRequest{Party: "token:app", Label: "app", TTL: "24h"})
		},
		check: func(t *testing.T, got any) {
			if ct := got.(*apiv1.CreatedToken); ct.Token != "km_new" || ct.Info.ID != "t1" {
				t.Errorf("CreateToken() = %+v", ct)
			}
		},
	},
	{
		name: "ListTokens", route: "GET /v1/tokens", resp: `{"tokens":[{"id":"t1","party":"token:app","role":"client","created":"2026-03-01T12:00:00Z","revoked":false}]}`, wantPath: "/v1/tokens",
		call: func(ctx context.Context, c *Client) (any, error) { return c.ListTokens(ctx) },
	},
	{
		name: "RevokeToken", route: "POST /v1/tokens/{id}/revoke", resp: `{"id":"t 1","party":"token:app","role":"client","created":"2026-03-01T12:00:00Z","revoked":true}`,
		wantPath: "/v1/tokens/t%201/revoke",
		call:     func(ctx context.Context, c *Client) (any, error) { return c.RevokeToken(ctx, "t 1") },
	},
	{
		name: "AuditTail", route: "GET /v1/audit", wantPath: "/v1/audit", wantQuery: "limit=5",
		resp: `{"entries":[{"seq":1,"time":"2026-03-01T12:00:00Z","principal":"token:admin","action":"key.create","key":"demo/ssn","outcome":"ok","count":1,"prev":"","hash":"ab"}]}`,
		call: func(ctx context.Context, c *Client) (any, error) { return c.AuditTail(ctx, 5) },
		check: func(t *testing.T, got any) {
			if es := got.([]apiv1.AuditEntry); len(es) != 1 || es[0].Action != "key.create" {
				t.Errorf("AuditTail() = %+v", es)
			}
		},
	},
	{
		name: "AuditTail/default", route: "GET /v1/audit", wantPath: "/v1/audit", resp: `{"entries":[]}`,
		call: func(ctx context.Context, c *Client) (any, error) { return c.AuditTail(ctx, 0) },
	},
	{
		name: "AuditVerify", route: "POST /v1/audit/verify", wantPath: "/v1/audit/verify",
		resp: `{"ok":false,"entries":10,"head":"ff","seq":4,"reason":"hash mismatch"}`,
		call: func(ctx context.Context, c *Client) (any, error) { return c.AuditVerify(ctx) },
		check: func(t *testing.T, got any) {
			if v := got.(*apiv1.AuditVerify); v.OK || v.Seq != 4 {
				t.Errorf("AuditVerify() = %+v", v)
			}
		},
	},
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	for _, tc := range routeCases {
		t.Run("ok/"+tc.name, func(t *testing.T) {
			status := tc.status
			if status == 0 {
				status = 200
			}
			f := newFake(t, status, tc.resp)
			c := newTestClient(t, f.URL, WithUserAgent("test-agent/1"))
			got, err := tc.call(context.Background(), c)
			if err != nil {
				t.Fatalf("%s = %v", tc.name, err)
			}
			r := f.last(t)
			method, _, _ := strings.Cut(tc.route, " ")
			if r.Method != method || r.Path != tc.wantPath || r.Query != tc.wantQuery {
				t.Errorf("request = %s %s?%s, want %s %s?%s", r.Method, r.Path, r.Query, method, tc.wantPath, tc.wantQuery)
			}
			if r.Auth != "Bearer "+testToken {
				t.Errorf("Authorization = %q, want the bearer token", r.Auth)
			}
			if r.UserAgent != "test-agent/1" {
				t.Errorf("User-Agent = %q, want test-agent/1", r.UserAgent)
			}
			if !sameJSON(t, r.Body, []byte(tc.wantBody)) {
				t.Errorf("body = %s, want %s", r.Body, tc.wantBody)
			}
			if len(r.Body) > 0 && r.ContentType != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", r.ContentType)
			}
			if tc.check != nil {
				tc.check(t, got)
			}
		})
	}
}

func TestNoTokenNoAuthorization(t *testing.T) {
	t.Parallel()
	f := newFake(t, 200, `{"status":"ok"}`)
	c, err := New(f.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := f.last(t); r.Auth != "" || r.UserAgent != DefaultUserAgent {
		t.Errorf("Authorization = %q, User-Agent = %q; want none and %q", r.Auth, r.UserAgent, DefaultUserAgent)
	}
}

func TestAPIError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		body       string
		wantCode   string
		wantMsg    string // substring of Message
		wantSentry error
	}{
		{"keymesh/not_found", 404, `{"error":{"code":"not_found","message":"key \"demo/x\" not found"}}`, apiv1.CodeNotFound, `key "demo/x" not found`, ErrNotFound},
		{"keymesh/not_granted", 403, `{"error":{"code":"not_granted","message":"no grant"}}`, apiv1.CodeNotGranted, "no grant", ErrNotGranted},
		{"keymesh/decryption_failed", 400, `{"error":{"code":"decryption_failed","message":"decryption failed"}}`, apiv1.CodeDecryptionFailed, "decryption failed", ErrDecryptionFailed},
		{"keymesh/unknown-code", 418, `{"error":{"code":"teapot","message":"short and stout"}}`, "teapot", "short and stout", nil},
		{"proxy/html-502", 502, "<html>\n<body>Bad\tGateway\x1b[31m</body></html>", "", `"<html> <body>Bad Gateway\x1b[31m</body></html>"`, nil},
		{"proxy/text-404", 404, "404 page not found\n", apiv1.CodeNotFound, "Not Found", ErrNotFound},
		{"proxy/empty-503", 503, "", apiv1.CodeUnavailable, "Service Unavailable", ErrUnavailable},
		{"proxy/json-without-code", 401, `{"message":"nope"}`, apiv1.CodeUnauthenticated, "nope", ErrUnauthenticated},
		{"redirect", 302, "", "", "Found", nil},
		{"readyz-not-ready", 503, `{"status":"not ready"}`, apiv1.CodeUnavailable, `Service Unavailable: "not ready"`, ErrUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.status, tc.body)
			c := newTestClient(t, f.URL)
			_, err := c.GetKey(context.Background(), "demo/x")
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("GetKey() = %v, want *APIError", err)
			}
			if ae.Status != tc.status || ae.Code != tc.wantCode || !strings.Contains(ae.Message, tc.wantMsg) {
				t.Errorf("GetKey() = %#v, want status %d code %q message containing %q", ae, tc.status, tc.wantCode, tc.wantMsg)
			}
			if tc.wantCode != "" && (!IsCode(err, tc.wantCode) || Code(err) != tc.wantCode) {
				t.Errorf("IsCode(err, %q) = false or Code(err) = %q", tc.wantCode, Code(err))
			}
			if IsCode(err, "") || IsCode(err, "conflict") {
				t.Errorf("IsCode(err, \"\" or \"conflict\") = true")
			}
			if tc.wantSentry != nil && !errors.Is(err, tc.wantSentry) {
				t.Errorf("errors.Is(err, %v) = false", tc.wantSentry)
			}
			if errors.Is(err, ErrConflict) {
				t.Errorf("errors.Is(err, ErrConflict) = true")
			}
			if strings.ContainsAny(err.Error(), "\n\t") {
				t.Errorf("Error() = %q holds a newline or tab", err)
			}
		})
	}
}

func TestErrorBodyBounded(t *testing.T) {
	t.Parallel()
	// A huge error body is read only in part and still gives an error.
	big := `{"error":{"code":"internal","message":"` + strings.Repeat("x", 2*maxErrorBytes) + `"}}`
	f := newFake(t, 500, big)
	_, err := newTestClient(t, f.URL).Status(context.Background())
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 500 || ae.Code != apiv1.CodeInternal {
		t.Fatalf("Status() = %v, want an *APIError 500 internal", err)
	}
	if len(ae.Message) > 1024 {
		t.Errorf("Message is %d bytes, want a short snippet", len(ae.Message))
	}
}

func TestResponseBodyBounded(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A valid JSON document that is one byte over the limit.
		pad := MaxResponseBytes + 1 - len(`{"status":""}`)
		_, _ = io.WriteString(w, `{"status":"`+strings.Repeat("a", pad)+`"}`)
	}))
	defer srv.Close()
	_, err := newTestClient(t, srv.URL).Health(context.Background())
	if !errors.Is(err, ErrResponseTooLarge) {
		t.Fatalf("Health() = %v, want ErrResponseTooLarge", err)
	}
}

func TestRequestBodyBounded(t *testing.T) {
	t.Parallel()
	f := newFake(t, 200, `{}`)
	c := newTestClient(t, f.URL)
	_, _, err := c.EncryptValue(context.Background(), "demo/ssn", make([]byte, apiv1.MaxBodyBytes), nil, "")
	if !errors.Is(err, ErrTooLarge) || !IsCode(err, apiv1.CodeTooLarge) {
		t.Fatalf("EncryptValue(4 MiB) = %v, want ErrTooLarge", err)
	}
	if n := f.count(); n != 0 {
		t.Errorf("the server received %d requests, want none", n)
	}
}

func TestKeyNames(t *testing.T) {
	t.Parallel()
	f := newFake(t, 200, keyDoc)
	c := newTestClient(t, f.URL)
	for _, name := range []string{"", "demo", "/ssn", "demo/", "a/b/c", "../ssn", "demo/..", "./x", "demo//ssn"} {
		t.Run("fail/"+name, func(t *testing.T) {
			if _, err := c.GetKey(context.Background(), name); !errors.Is(err, ErrInvalidName) {
				t.Errorf("GetKey(%q) = %v, want ErrInvalidName", name, err)
			}
			if _, err := c.CreateKey(context.Background(), apiv1.CreateKeyRequest{Name: name}); !errors.Is(err, ErrInvalidName) {
				t.Errorf("CreateKey(%q) = %v, want ErrInvalidName", name, err)
			}
		})
	}
	for _, id := range []string{"", ".", "..", "a/b"} {
		if _, err := c.RevokeToken(context.Background(), id); !errors.Is(err, ErrInvalidName) {
			t.Errorf("RevokeToken(%q) = %v, want ErrInvalidName", id, err)
		}
	}
	if n := f.count(); n != 0 {
		t.Errorf("the server received %d requests, want none", n)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, addr, want string
		opts             []Option
	}{
		{"ok/host-port", "127.0.0.1:8420", "http://127.0.0.1:8420", nil},
		{"ok/hostname", "localhost:8420", "http://localhost:8420", nil},
		{"ok/ipv6", "[::1]:8420", "http://[::1]:8420", nil},
		{"ok/http", "http://127.0.0.1:8420/", "http://127.0.0.1:8420", nil},
		{"ok/https", "https://keymesh.example:443", "https://keymesh.example:443", nil},
		{"ok/prefix", "https://gw.example/keymesh/", "https://gw.example/keymesh", nil},
		{"ok/tls-implies-https", "127.0.0.1:8420", "https://127.0.0.1:8420", []Option{WithTLSConfig(&tls.Config{})}},
		{"fail/empty", "", "", nil},
		{"fail/scheme", "ftp://127.0.0.1:8420", "", nil},
		{"fail/userinfo", "http://admin:pw@127.0.0.1:8420", "", nil},
		{"fail/userinfo-bad-scheme", "ftp://admin:pw@127.0.0.1:8420", "", nil},
		{"fail/userinfo-unparsable", "http://admin:pw@127.0.0.1:port", "", nil},
		{"fail/query", "http://127.0.0.1:8420/?x=1", "", nil},
		{"fail/fragment", "http://127.0.0.1:8420/#x", "", nil},
		{"fail/no-host", "http://:8420", "", nil},
		{"fail/port", "127.0.0.1:99999", "", nil},
		{"fail/http-client-and-tls", "127.0.0.1:8420", "", []Option{WithHTTPClient(http.DefaultClient), WithTLSConfig(&tls.Config{})}},
		{"fail/tls-with-http-url", "http://127.0.0.1:8420", "", []Option{WithTLSConfig(&tls.Config{})}},
		{"fail/nil-http-client", "127.0.0.1:8420", "", []Option{WithHTTPClient(nil)}},
		{"fail/user-agent", "127.0.0.1:8420", "", []Option{WithUserAgent("a\nb")}},
		{"fail/ca-file", "127.0.0.1:8420", "", []Option{WithCAFile(filepath.Join(t.TempDir(), "missing.pem"))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.addr, testToken, tc.opts...)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("New(%q) = %v, want an error", tc.addr, c)
				}
				if strings.Contains(err.Error(), "pw") {
					t.Errorf("New(%q) = %v: the error shows the URL's password", tc.addr, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%q) = %v", tc.addr, err)
			}
			if c.Addr() != tc.want {
				t.Errorf("New(%q).Addr() = %q, want %q", tc.addr, c.Addr(), tc.want)
			}
		})
	}
}

func TestTokenNeverShown(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{testToken + "\n", "km bad", "km\x00x", "kmé"} {
		_, err := New("127.0.0.1:8420", bad)
		if err == nil || strings.Contains(err.Error(), strings.TrimSpace(bad)) {
			t.Errorf("New(token %q) = %v, want an error that does not show the token", bad, err)
		}
	}

	f := newFake(t, 401, `{"error":{"code":"unauthenticated","message":"unknown token"}}`)
	c := newTestClient(t, f.URL)
	_, err := c.Status(context.Background())
	var logBuf bytes.Buffer
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("client", "c", c)
	shown := []string{
		c.String(), fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s %q %x", c, c, c, c, c, c),
		fmt.Sprintf("%v %+v %#v", *c, *c, *c), err.Error(), logBuf.String(),
	}
	for _, s := range shown {
		if strings.Contains(s, testToken) || strings.Contains(s, fmt.Sprintf("%x", testToken)) {
			t.Errorf("the token shows in %q", s)
		}
	}
	if !strings.Contains(c.String(), f.URL) {
		t.Errorf("String() = %q, want the address %s", c.String(), f.URL)
	}

	// A network error names the URL, not the token.
	f.Close()
	if _, err := c.Status(context.Background()); err == nil || strings.Contains(err.Error(), testToken) {
		t.Errorf("Status() on a closed server = %v, want an error without the token", err)
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	other := newFake(t, 200, `{"status":"ok"}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	_, err := newTestClient(t, srv.URL).Status(context.Background())
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusTemporaryRedirect {
		t.Fatalf("Status() = %v, want an *APIError 307", err)
	}
	if n := other.count(); n != 0 {
		t.Errorf("the redirect target received %d requests, want none", n)
	}
}

func TestCAFile(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake the test fails on purpose
	srv.StartTLS()
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	hostPort := strings.TrimPrefix(srv.URL, "https://")

	c := newTestClient(t, hostPort, WithCAFile(caFile))
	if !strings.HasPrefix(c.Addr(), "https://") {
		t.Errorf("Addr() = %q, want https", c.Addr())
	}
	if _, err := c.Health(context.Background()); err != nil {
		t.Errorf("Health() with the CA file = %v", err)
	}
	if _, err := newTestClient(t, srv.URL).Health(context.Background()); err == nil {
		t.Errorf("Health() without the CA = nil, want a certificate error")
	}

	empty := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(empty, []byte("not a cert"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(hostPort, testToken, WithCAFile(empty)); err == nil {
		t.Errorf("New(WithCAFile(no certificate)) = nil error")
	}
}

func TestContextCanceled(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := newTestClient(t, srv.URL).Status(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Status(expired ctx) = %v, want context.DeadlineExceeded", err)
	}
}

func TestBadSuccessBody(t *testing.T) {
	t.Parallel()
	for _, body := range []string{"", "not json", `{"status":`} {
		f := newFake(t, 200, body)
		if _, err := newTestClient(t, f.URL).Health(context.Background()); err == nil {
			t.Errorf("Health() with body %q = nil error", body)
		}
	}
}

func TestPathPrefix(t *testing.T) {
	t.Parallel()
	f := newFake(t, 200, keyDoc)
	c := newTestClient(t, f.URL+"/gw%20x/")
	if _, err := c.GetKey(context.Background(), "demo/a b"); err != nil {
		t.Fatal(err)
	}
	if p := f.last(t).Path; p != "/gw%20x/v1/keys/demo/a%20b" {
		t.Errorf("path = %q, want /gw%%20x/v1/keys/demo/a%%20b", p)
	}
}
