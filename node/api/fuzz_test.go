package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/policy/policystore"
	"github.com/keymesh/keymesh/token"
	"github.com/keymesh/keymesh/vault"
)

// routerFixture is the real Server (the gin engine with every route) over
// an in-memory store, driven in-process without a socket.
type routerFixture struct {
	srv        *Server
	store      *kv.Mem // vault, grants and tokens
	auditStore *kv.Mem
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
	v, err := vault.Open(store, vault.MasterKey(bytes.Repeat([]byte{9}, 32)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(v.Close)
	ps, err := policystore.Open(v.Store(), nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	toks, err := token.Open(v.Store())
	if err != nil {
		tb.Fatal(err)
	}
	auditStore := kv.NewMem()
	al, err := audit.Open(auditStore)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { al.Close() })
	admin, _, err := toks.Create(policy.AdminParty, token.RoleAdmin, "", 0)
	if err != nil {
		tb.Fatal(err)
	}
	app, _, err := toks.Create("token:app", token.RoleClient, "", 0)
	if err != nil {
		tb.Fatal(err)
	}
	for _, name := range []string{"demo/k", "demo/gone"} {
		if _, err := v.Create(name, vault.CreateOptions{Deterministic: true}); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := v.Destroy("demo/gone"); err != nil {
		tb.Fatal(err)
	}
	if _, err := ps.Grant(policy.Grant{Key: "demo/k", Party: "token:app", Ops: policy.OpsAll, Issuer: "test"}); err != nil {
		tb.Fatal(err)
	}
	srv := New(Config{Vault: v, Keys: Standalone{Vault: v, Store: ps}, Tokens: toks, Audit: al, Info: Info{Org: "Org1MSP"}})
	return &routerFixture{srv: srv, store: mem, auditStore: auditStore, admin: admin, app: app}
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

// TestAPI_LongKeyNameIs400NotAudit500 is the regression test of the 500s
// on key names over the audit log's 1,024-byte field limit: each key
// route answers 400 invalid_request, and the audit log stays writable.
func TestAPI_LongKeyNameIs400NotAudit500(t *testing.T) {
	rf := newRouterFixture(t)
	long := "demo/" + strings.Repeat("n", 1100)
	h := http.Header{"Authorization": {"Bearer " + rf.admin}}
	for _, tc := range []struct{ name, method, path, body string }{
		{"create", "POST", "/v1/keys", `{"name":"` + long + `"}`},
		{"revoke", "POST", "/v1/grants/revoke", `{"key":"` + long + `","party":"token:app"}`},
		{"grant", "POST", "/v1/grants", `{"key":"` + long + `","party":"token:app","ops":["decrypt"]}`},
		{"rotate", "POST", "/v1/keys/" + long + "/rotate", ``},
		{"state", "POST", "/v1/keys/" + long + "/state", `{"state":"deactivated"}`},
		{"config", "POST", "/v1/keys/" + long + "/config", `{"min_decryption_version":1}`},
		{"destroy", "POST", "/v1/keys/" + long + "/destroy", `{"confirm":"` + long + `"}`},
		{"encrypt", "POST", "/v1/encrypt", `{"key":"` + long + `","plaintext":"eA=="}`},
	} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			status, resp := rf.serve(tc.method, tc.path, h, []byte(tc.body))
			var e apiv1.ErrorResponse
			_ = json.Unmarshal(resp, &e)
			if status != http.StatusBadRequest || e.Error.Code != apiv1.CodeInvalidRequest {
				t.Errorf("%s %.40s… = %d %s, want 400 %q", tc.method, tc.path, status, resp, apiv1.CodeInvalidRequest)
			}
		})
	}
	if status, resp := rf.serve("POST", "/v1/keys", h, []byte(`{"name":"demo/after"}`)); status != http.StatusCreated {
		t.Errorf("create after the long names = %d %s, want 201", status, resp)
	}
}

// TestAPI_ReservedTokenPartyIs400Not500 is the regression test of the 500s
// on POST /v1/tokens for the admin party with a client role, and for the
// admin role with another party.
func TestAPI_ReservedTokenPartyIs400Not500(t *testing.T) {
	rf := newRouterFixture(t)
	h := http.Header{"Authorization": {"Bearer " + rf.admin}}
	for _, body := range []string{
		`{"party":"token:admin"}`,
		`{"party":"token:admin","role":"client"}`,
		`{"party":"token:admin","role":"chaincode"}`,
		`{"party":"token:svc","role":"admin"}`,
	} {
		status, resp := rf.serve("POST", "/v1/tokens", h, []byte(body))
		var e apiv1.ErrorResponse
		_ = json.Unmarshal(resp, &e)
		if status != http.StatusBadRequest || e.Error.Code != apiv1.CodeInvalidRequest {
			t.Errorf("POST /v1/tokens %s = %d %s, want 400 %q", body, status, resp, apiv1.CodeInvalidRequest)
		}
	}
	status, resp := rf.serve("POST", "/v1/tokens", h, []byte(`{"party":"token:admin","role":"admin"}`))
	if status != http.StatusCreated {
		t.Errorf("POST /v1/tokens for a second admin token = %d %s, want 201", status, resp)
	}
}

// TestAPI_ClientTokensExpireByDefault is the regression test of client
// tokens that never expired unless asked: without "ttl" a client or
// chaincode token lives DefaultTokenTTL, "never" mints one without expiry,
// and an admin token keeps no expiry.
func TestAPI_ClientTokensExpireByDefault(t *testing.T) {
	rf := newRouterFixture(t)
	h := http.Header{"Authorization": {"Bearer " + rf.admin}}
	for _, tc := range []struct {
		name, body string
		want       time.Duration // 0: no expiry
	}{
		{"ok/client-default", `{"party":"token:a"}`, DefaultTokenTTL},
		{"ok/chaincode-default", `{"party":"token:cc","role":"chaincode"}`, DefaultTokenTTL},
		{"ok/client-explicit", `{"party":"token:b","ttl":"24h"}`, 24 * time.Hour},
		{"ok/client-never", `{"party":"token:c","ttl":"never"}`, 0},
		{"ok/client-zero", `{"party":"token:d","ttl":"0"}`, 0},
		{"ok/admin-default", `{"party":"token:admin","role":"admin"}`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, resp := rf.serve("POST", "/v1/tokens", h, []byte(tc.body))
			var ct apiv1.CreatedToken
			if status != http.StatusCreated || json.Unmarshal(resp, &ct) != nil {
				t.Fatalf("POST /v1/tokens %s = %d %s, want 201", tc.body, status, resp)
			}
			switch {
			case tc.want == 0 && ct.Info.Expires != nil:
				t.Errorf("token %s expires %v, want never", tc.body, ct.Info.Expires)
			case tc.want != 0 && (ct.Info.Expires == nil || ct.Info.Expires.Sub(ct.Info.Created) != tc.want):
				t.Errorf("token %s expires %v after %v, want %v later", tc.body, ct.Info.Expires, ct.Info.Created, tc.want)
			}
		})
	}
	if status, _ := rf.serve("POST", "/v1/tokens", h, []byte(`{"party":"token:e","ttl":"-1h"}`)); status != http.StatusBadRequest {
		t.Errorf("negative ttl = %d, want 400", status)
	}
}

// TestAPI_FullDiskIs507AndDecryptGoesOn: a store that refuses writes for
// lack of space answers changes with 507 insufficient_storage (not 500),
// while encrypt within the count lease and decrypt keep working.
func TestAPI_FullDiskIs507AndDecryptGoesOn(t *testing.T) {
	rf := newRouterFixture(t)
	admin := http.Header{"Authorization": {"Bearer " + rf.admin}}
	app := http.Header{"Authorization": {"Bearer " + rf.app}}
	status, resp := rf.serve("POST", "/v1/encrypt", app, []byte(`{"key":"demo/k","plaintext":"aGVsbG8=","context":{"f":"x"}}`))
	var enc apiv1.EncryptResponse
	if status != http.StatusOK || json.Unmarshal(resp, &enc) != nil {
		t.Fatalf("encrypt = %d %s", status, resp)
	}
	rf.store.SetFailure(fmt.Errorf("badgerstore: 3 MiB free: %w", kv.ErrNoSpace))
	for _, tc := range []struct{ path, body string }{
		{"/v1/keys", `{"name":"demo/full"}`},
		{"/v1/keys/demo/k/rotate", ``},
		{"/v1/grants", `{"key":"demo/k","party":"token:x","ops":["decrypt"]}`},
		{"/v1/tokens", `{"party":"token:x"}`},
	} {
		status, resp := rf.serve("POST", tc.path, admin, []byte(tc.body))
		var e apiv1.ErrorResponse
		_ = json.Unmarshal(resp, &e)
		if status != http.StatusInsufficientStorage || e.Error.Code != apiv1.CodeNoSpace {
			t.Errorf("POST %s on a full disk = %d %s, want 507 %q", tc.path, status, resp, apiv1.CodeNoSpace)
		}
	}
	body, _ := json.Marshal(apiv1.DecryptRequest{Ciphertext: enc.Ciphertext, Context: map[string]string{"f": "x"}})
	if status, resp := rf.serve("POST", "/v1/decrypt", app, body); status != http.StatusOK {
		t.Errorf("decrypt on a full disk = %d %s, want 200", status, resp)
	}
	// The audit log's disk full too: requests fail closed with 503.
	rf.auditStore.SetFailure(fmt.Errorf("badgerstore: 1 MiB free: %w", kv.ErrNoSpace))
	status, resp = rf.serve("POST", "/v1/decrypt", app, body)
	var e apiv1.ErrorResponse
	_ = json.Unmarshal(resp, &e)
	if status != http.StatusServiceUnavailable || e.Error.Code != apiv1.CodeUnavailable {
		t.Errorf("decrypt with the audit log's disk full = %d %s, want 503 %q", status, resp, apiv1.CodeUnavailable)
	}
	rf.auditStore.SetFailure(nil)
	rf.store.SetFailure(nil)
	if status, resp := rf.serve("POST", "/v1/keys", admin, []byte(`{"name":"demo/full"}`)); status != http.StatusCreated {
		t.Errorf("create after space returned = %d %s, want 201", status, resp)
	}
}

// failingEraser is a store whose physical erasure fails.
type failingEraser struct{ *kv.Mem }

func (failingEraser) Erase([]byte) error { return errors.New("disk refused the rewrite") }

// TestAPI_DestroyEraseFailureIsReported is the regression test of an erase
// failure that was only logged: the destroy answer carries erase_error,
// and the audit log records the destroy with outcome "error" and why.
func TestAPI_DestroyEraseFailureIsReported(t *testing.T) {
	m := kv.NewMem()
	rf := newRouterFixtureOn(t, failingEraser{m}, m)
	h := http.Header{"Authorization": {"Bearer " + rf.admin}}
	status, resp := rf.serve("POST", "/v1/keys/demo/k/destroy", h, []byte(`{"confirm":"demo/k"}`))
	var k apiv1.Key
	if status != http.StatusOK || json.Unmarshal(resp, &k) != nil || k.State != "destroyed" {
		t.Fatalf("destroy = %d %s, want 200 and a destroyed key", status, resp)
	}
	if !strings.Contains(k.EraseError, "disk refused the rewrite") {
		t.Errorf("destroy answer erase_error = %q, want the erase failure", k.EraseError)
	}
	entries, err := rf.srv.cfg.Audit.Tail(1)
	if err != nil || len(entries) != 1 {
		t.Fatalf("audit tail = %v, %v", entries, err)
	}
	if e := entries[0]; e.Action != "key.destroy" || e.Outcome != audit.OutcomeError || !strings.Contains(e.Reason, "disk refused the rewrite") {
		t.Errorf("audit entry of the destroy = %+v, want outcome error with the erase failure", e)
	}
	if status, resp := rf.serve("GET", "/v1/keys/demo/k", h, nil); status != http.StatusOK || !bytes.Contains(resp, []byte("erase_error")) {
		t.Errorf("GET the key after = %d %s, want erase_error still shown", status, resp)
	}
}

// TestAPI_HostileBodiesBoundedByBudget: a caller with a token but no grant
// sending many large bodies at once never makes the node hold more than
// the body budget of them (the decoded copies scale with it): after 24
// parallel 3 MiB requests the budget's high-water mark is at most its
// limit, and each request got its 403 or the fail-closed 503.
func TestAPI_HostileBodiesBoundedByBudget(t *testing.T) {
	rf := newRouterFixture(t)
	const limit = 2*3<<20 + 1<<20 // room for two of the bodies below
	rf.srv.bodies = newBodyBudget(limit)
	body := []byte(`{"key":"demo/gone","plaintext":"` + strings.Repeat("A", 3<<20-64) + `","context":{"f":"x"}}`)
	h := http.Header{"Authorization": {"Bearer " + rf.app}, "Content-Type": {"application/json"}}
	var wg sync.WaitGroup
	statuses := make([]int, 24)
	for i := range statuses {
		wg.Go(func() { statuses[i], _ = rf.serve("POST", "/v1/encrypt", h, body) })
	}
	wg.Wait()
	for i, st := range statuses {
		if st != http.StatusForbidden && st != http.StatusServiceUnavailable {
			t.Errorf("request %d = %d, want 403 not_granted or 503", i, st)
		}
	}
	if hw := rf.srv.bodies.highWater(); hw > limit || hw == 0 {
		t.Errorf("body budget high-water mark = %d bytes, want in (0, %d]", hw, limit)
	}
}

// TestAPI_MetricSeriesBoundedUnderRandomPaths: the request metrics are
// labelled by route template and status, never by the requested path or
// method, so callers without a token cannot grow the metrics registry
// with made-up paths.
func TestAPI_MetricSeriesBoundedUnderRandomPaths(t *testing.T) {
	rf := newRouterFixture(t)
	cfg := rf.srv.cfg
	reg := prometheus.NewRegistry()
	cfg.Registry = reg
	srv := New(cfg)
	for i := range 500 {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Method = []string{"GET", "POST", "PUT", "BREW"}[i%4]
		req.URL.Path = fmt.Sprintf("/v1/keys/ns%d/k%d/x%d", i, i, i)
		if i%3 == 0 {
			req.URL.Path = fmt.Sprintf("/random/%d", i)
		}
		srv.ServeHTTP(httptest.NewRecorder(), req)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if n := len(mf.GetMetric()); n > 10 {
			t.Errorf("metric %s has %d series after 500 requests to made-up paths, want a handful", mf.GetName(), n)
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "ns") || strings.Contains(l.GetValue(), "random") {
					t.Errorf("metric %s carries the requested path in label %s=%q", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}
