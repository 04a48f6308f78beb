package api

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/fabricid"
	"github.com/keymesh/keymesh/node/fabricid/fabricidtest"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/policy/policystore"
	"github.com/keymesh/keymesh/token"
	"github.com/keymesh/keymesh/vault"
)

// TestChaincodeToken checks chaincode-token authentication end to end over
// real HTTP: the creator header, its verification against the configured
// MSP CAs, the principal it yields, and every refusal.
func TestChaincodeToken(t *testing.T) {
	org1, err := fabricidtest.NewCA("Org1MSP")
	if err != nil {
		t.Fatal(err)
	}
	org2, _ := fabricidtest.NewCA("Org2MSP")
	rogue, _ := fabricidtest.NewCA("Org1MSP")
	issue := func(ca *fabricidtest.CA, cn string) *fabricidtest.Identity {
		id, err := ca.Issue(pkix.Name{CommonName: cn, OrganizationalUnit: []string{"client"}}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	alice, bob, mallory := issue(org1, "alice"), issue(org2, "bob"), issue(rogue, "alice")
	expired, _ := org1.IssueExpired(pkix.Name{CommonName: "old"})

	pool := func(ca *fabricidtest.CA) *x509.CertPool { p := x509.NewCertPool(); p.AddCert(ca.Cert); return p }
	fv, err := fabricid.New(map[string]fabricid.MSP{"Org1MSP": {Roots: pool(org1)}, "Org2MSP": {Roots: pool(org2)}})
	if err != nil {
		t.Fatal(err)
	}

	store := kv.NewMem()
	v, err := vault.Open(store, vault.MasterKey(bytes.Repeat([]byte{9}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	ps, _ := policystore.Open(store, nil, nil)
	toks, _ := token.Open(store)
	auditStore := kv.NewMem()
	al, _ := audit.Open(auditStore)
	t.Cleanup(func() { al.Close() })
	cc, _, err := toks.Create("token:cc", token.RoleChaincode, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	app, _, _ := toks.Create("token:app", token.RoleClient, "", 0)
	if _, err := v.Create("demo/k", vault.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []policy.Party{"org:Org1MSP", "token:cc"} {
		if _, err := ps.Grant(policy.Grant{Key: "demo/k", Party: p, Ops: policy.OpsAll, Issuer: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(New(Config{Vault: v, Keys: Standalone{Vault: v, Store: ps}, Tokens: toks, Audit: al, Fabric: fv}))
	t.Cleanup(srv.Close)

	b64 := base64.StdEncoding.EncodeToString
	const enc = `{"key":"demo/k","plaintext":"aGVsbG8=","context":{"field":"x"}}`
	for _, tc := range []struct {
		name    string
		tok     string
		creator []string // header values; nil for none
		path    string
		status  int
		code    string
	}{
		{"ok/org1-creator-granted-by-org", cc, []string{b64(alice.Creator())}, "/v1/encrypt", 200, ""},
		{"ok/client-token-without-header", app, nil, "/v1/status", 200, ""},
		{"fail/org2-creator-not-granted", cc, []string{b64(bob.Creator())}, "/v1/encrypt", 403, apiv1.CodeNotGranted},
		{"fail/no-header", cc, nil, "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/empty-header", cc, []string{""}, "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/two-headers", cc, []string{b64(alice.Creator()), b64(alice.Creator())}, "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/not-base64", cc, []string{"%%%"}, "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/too-long", cc, []string{strings.Repeat("A", 64<<10)}, "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/not-protobuf", cc, []string{b64([]byte{0xff, 0xff})}, "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/unknown-msp", cc, []string{b64(fabricidtest.Creator("Org3MSP", alice.CertPEM))}, "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/unknown-ca", cc, []string{b64(mallory.Creator())}, "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/expired", cc, []string{b64(expired.Creator())}, "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/header-with-client-token", app, []string{b64(alice.Creator())}, "/v1/encrypt", 400, apiv1.CodeInvalidRequest},
		{"fail/admin-route", cc, []string{b64(alice.Creator())}, "/v1/keys", 403, apiv1.CodeForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method, body := "POST", strings.NewReader(enc)
			if tc.path != "/v1/encrypt" {
				method, body = "GET", strings.NewReader("")
			}
			req, _ := http.NewRequest(method, srv.URL+tc.path, body)
			req.Header.Set("Authorization", "Bearer "+tc.tok)
			for _, h := range tc.creator {
				req.Header.Add(apiv1.HeaderFabricCreator, h)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e apiv1.ErrorResponse
			_ = json.NewDecoder(resp.Body).Decode(&e)
			if resp.StatusCode != tc.status || e.Error.Code != tc.code {
				t.Fatalf("%s %s = %d %q (%s), want %d %q", method, tc.path, resp.StatusCode, e.Error.Code, e.Error.Message, tc.status, tc.code)
			}
		})
	}

	t.Run("ok/status-names-the-creator", func(t *testing.T) {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/status", nil)
		req.Header.Set("Authorization", "Bearer "+cc)
		req.Header.Set(apiv1.HeaderFabricCreator, b64(alice.Creator()))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st apiv1.Status
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		want := "fabric:Org1MSP/CN=alice,OU=client+org:Org1MSP via token:cc"
		if st.Principal != want || st.Role != "chaincode" {
			t.Errorf("status principal, role = %q, %q; want %q, chaincode", st.Principal, st.Role, want)
		}
	})

	t.Run("ok/refusal-audited", func(t *testing.T) {
		es, err := al.Tail(50)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range es {
			if e.Action == "authenticate" && e.Outcome == audit.OutcomeDeny && e.Principal == "token:cc" {
				n++
			}
		}
		if n < 8 {
			t.Errorf("audit holds %d creator refusals, want at least 8", n)
		}
	})
}
