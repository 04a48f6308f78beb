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
)

// Regression tests of issue 13 ("Hardening") findings on the REST API.

// TestAPI_LongKeyNameIs400NotAudit500 is the regression test of the 500s
// on key names over the audit log's 1,024-byte field limit: each key
// route answers 400 invalid_request, and the audit log stays writable.
func TestAPI_LongKeyNameIs400NotAudit500(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
	rf := newRouterFixture(t)
	h := http.Header{"Authorization": {"Bearer " + rf.admin}}
	for _, tc := range []struct {
		name, body string
		want       time.Duration // 0: no expiry
	}{
		{"ok/client-default", `{"party":"token:a"}`, DefaultTokenTTL},
		{"ok/chaincode-default", `{"party":"token:cc","role":"chaincode","channels":["mychannel"],"chaincode":"asset","msps":["Org1MSP"]}`, DefaultTokenTTL},
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
	t.Parallel()
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
	rf.auditFS.SetWriteFailure(fmt.Errorf("audit: 1 MiB free: %w", kv.ErrNoSpace), 0)
	status, resp = rf.serve("POST", "/v1/decrypt", app, body)
	var e apiv1.ErrorResponse
	_ = json.Unmarshal(resp, &e)
	if status != http.StatusServiceUnavailable || e.Error.Code != apiv1.CodeUnavailable {
		t.Errorf("decrypt with the audit log's disk full = %d %s, want 503 %q", status, resp, apiv1.CodeUnavailable)
	}
	rf.auditFS.SetWriteFailure(nil, 0)
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
	t.Parallel()
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
// limit, and each request got its refusal (410: the key is destroyed) or
// the fail-closed 503.
func TestAPI_HostileBodiesBoundedByBudget(t *testing.T) {
	t.Parallel()
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
		if st != http.StatusGone && st != http.StatusServiceUnavailable {
			t.Errorf("request %d = %d, want 410 key_destroyed (the key it names is destroyed) or 503", i, st)
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
	t.Parallel()
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
