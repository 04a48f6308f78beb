package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/kms/kmstest"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/token"
	"github.com/keymesh/keymesh/vault"
)

// routerFixture is the real Server (the gin engine with every route) over
// an in-memory store, driven in-process without a socket.
type routerFixture struct {
	srv        *Server
	store      *kv.Mem // vault, grants and tokens
	auditFS    *audit.MemFS
	admin, app string
}

func newRouterFixture(tb testing.TB) *routerFixture {
	m := kv.NewMem()
	return newRouterFixtureOn(tb, m, m)
}

// newRouterFixtureOn builds the fixture on store (through which mem, the
// same store or the one it wraps, can inject failures).
func newRouterFixtureOn(tb testing.TB, store kv.Store, mem *kv.Mem) *routerFixture {
	tb.Helper()
	solo := kmstest.New(tb, kmstest.Options{Org: "Org1MSP", Store: store, Reason: ErrorCode})
	v, m := solo.Vault, solo.Member
	toks, err := token.Open(v.Store())
	if err != nil {
		tb.Fatal(err)
	}
	auditFS, al := solo.AuditFS, solo.Audit
	admin, _, err := toks.Create(policy.AdminParty, token.RoleAdmin, "", 0)
	if err != nil {
		tb.Fatal(err)
	}
	app, _, err := toks.Create("token:app", token.RoleClient, "", 0)
	if err != nil {
		tb.Fatal(err)
	}
	for _, name := range []string{"demo/k", "demo/gone"} {
		if _, err := m.CreateKey(name, vault.CreateOptions{Deterministic: true}); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := m.DestroyKey("demo/gone"); err != nil {
		tb.Fatal(err)
	}
	if _, err := m.Grant(policy.Grant{Key: "demo/k", Party: "token:app", Ops: policy.OpsAll, Issuer: "test"}); err != nil {
		tb.Fatal(err)
	}
	srv := New(Config{Core: solo.Core, Mesh: solo.Member, Tokens: toks, Audit: al, Info: Info{Org: "Org1MSP"}})
	return &routerFixture{srv: srv, store: mem, auditFS: auditFS, admin: admin, app: app}
}

// serve sends one request to the router and returns the status and body.
func (f *routerFixture) serve(method, target string, header http.Header, body []byte) (int, []byte) {
	req := httptest.NewRequest(http.MethodGet, "/", bytes.NewReader(body))
	req.Method = method
	req.URL.Path, req.URL.RawQuery, _ = strings.Cut(target, "?")
	req.RequestURI = target
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, req)
	return w.Code, w.Body.Bytes()
}

// failClosed reports whether a 5xx answer is the API's fail-closed 503
// (the audit log or a needed service is unavailable), the only 5xx a
// well-formed or malformed request may get.
func failClosed(status int, body []byte) bool {
	if status != http.StatusServiceUnavailable {
		return false
	}
	var e apiv1.ErrorResponse
	return json.Unmarshal(body, &e) == nil && e.Error.Code == apiv1.CodeUnavailable
}

// routerSeeds are real requests, one or more per route.
var routerSeeds = []struct {
	method, path string
	tok          uint8 // 0 none, 1 admin, 2 app, 3 garbage
	body         string
}{
	{"GET", "/healthz", 0, ""},
	{"GET", "/readyz", 0, ""},
	{"GET", "/v1/status", 2, ""},
	{"POST", "/v1/encrypt", 2, `{"key":"demo/k","plaintext":"aGVsbG8=","context":{"field":"x"}}`},
	{"POST", "/v1/encrypt", 2, `{"key":"demo/k","mode":"deterministic","batch":[{"plaintext":"eA==","context":{"a":"b"}}]}`},
	{"POST", "/v1/decrypt", 2, `{"ciphertext":"km1:AQEIZGVtby9r","context":{"field":"x"}}`},
	{"POST", "/v1/decrypt", 2, `{"batch":[{"ciphertext":"km1:x"},{"ciphertext":"x"}]}`},
	{"POST", "/v1/keys", 1, `{"name":"demo/new","deterministic":true,"state":"pre-active"}`},
	{"POST", "/v1/keys", 1, `{"name":"demo/` + strings.Repeat("n", 1100) + `"}`},
	{"GET", "/v1/keys", 1, ""},
	{"GET", "/v1/keys/demo/k", 1, ""},
	{"POST", "/v1/keys/demo/k/rotate", 1, `{"activate_in":"0s"}`},
	{"POST", "/v1/keys/demo/k/state", 1, `{"state":"deactivated"}`},
	{"POST", "/v1/keys/demo/k/config", 1, `{"min_decryption_version":1}`},
	{"POST", "/v1/keys/demo/gone/destroy", 1, `{"confirm":"demo/gone"}`},
	{"POST", "/v1/grants", 1, `{"key":"demo/k","party":"token:x","ops":["encrypt","decrypt"],"not_after":"2030-01-01T00:00:00Z"}`},
	{"GET", "/v1/grants?key=demo/k", 1, ""},
	{"POST", "/v1/grants/revoke", 1, `{"key":"demo/k","party":"token:x"}`},
	{"POST", "/v1/tokens", 1, `{"party":"token:admin"}`},
	{"POST", "/v1/tokens", 1, `{"party":"token:svc","role":"admin","ttl":"24h","label":"x"}`},
	{"GET", "/v1/tokens", 1, ""},
	{"POST", "/v1/tokens/0123456789abcdef/revoke", 1, ""},
	{"GET", "/v1/audit?limit=3", 1, ""},
	{"POST", "/v1/audit/verify", 1, ""},
	{"GET", "/v1/node", 1, ""},
	{"GET", "/v1/nodes", 1, ""},
	{"POST", "/v1/nodes/register", 1, `{"record":"eA=="}`},
	{"POST", "/v1/nodes/deregister", 1, `{}`},
	{"GET", "/v1/eth/domain", 0, ""},
	{"POST", "/v1/eth/decrypt", 0, `{"account":"0x00000000000000000000000000000000000000aa","ciphertext":"x"}`},
	{"PATCH", "/v1/keys/%zz/x", 3, "\x00"},
}

// FuzzRouter drives the real router with arbitrary methods, paths, query
// strings, headers, tokens and bodies. Every answer must be below 500,
// except the fail-closed 503 with code "unavailable". Header lines in hdr
// are "Name: value", separated by newlines.
func FuzzRouter(f *testing.F) {
	for _, s := range routerSeeds {
		f.Add(s.method, s.path, s.tok, "Content-Type: application/json", []byte(s.body))
	}
	rf := newRouterFixture(f)
	f.Fuzz(func(t *testing.T, method, path string, tok uint8, hdr string, body []byte) {
		if method == "" || !validMethod(method) || !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\x00") {
			return // net/http refuses these before any handler runs
		}
		h := http.Header{}
		for line := range strings.SplitSeq(hdr, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && validHeaderName(k) && !strings.ContainsAny(v, "\r\n\x00") {
				h.Add(k, strings.TrimSpace(v))
			}
		}
		switch tok % 4 {
		case 1:
			h.Set("Authorization", "Bearer "+rf.admin)
		case 2:
			h.Set("Authorization", "Bearer "+rf.app)
		case 3:
			h.Set("Authorization", "Bearer kmt_0123456789abcdef_"+strings.Repeat("A", 43))
		}
		status, resp := rf.serve(method, path, h, body)
		if status >= 500 && !failClosed(status, resp) {
			t.Fatalf("%s %q (token %d, headers %q, body %q) = %d %s; want 4xx or the fail-closed 503", method, path, tok%4, hdr, body, status, resp)
		}
	})
}

func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

func validHeaderName(k string) bool { return k != "" && validMethod(k) }
