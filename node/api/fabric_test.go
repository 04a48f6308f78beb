package api

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/kms/kmstest"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/fabricid"
	"github.com/keymesh/keymesh/node/fabricid/fabricidtest"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/token"
	"github.com/keymesh/keymesh/vault"
	"github.com/keymesh/keymesh/vault/envelope"
)

type fabricWorld struct {
	srv                  *httptest.Server
	v                    *vault.Vault
	al                   *audit.Log
	toks                 *token.Registry
	alice, bob, mallory  *fabricidtest.Identity
	expired              *fabricidtest.Identity
	cc, ccOrg1, cc2, app string // tokens
	legacy               string // a chaincode token without a binding
}

func newFabricWorld(t *testing.T) *fabricWorld {
	t.Helper()
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
	w := &fabricWorld{alice: issue(org1, "alice"), bob: issue(org2, "bob"), mallory: issue(rogue, "alice")}
	w.expired, _ = org1.IssueExpired(pkix.Name{CommonName: "old"})

	pool := func(ca *fabricidtest.CA) *x509.CertPool { p := x509.NewCertPool(); p.AddCert(ca.Cert); return p }
	fv, err := fabricid.New(map[string]fabricid.MSP{"Org1MSP": {Roots: pool(org1)}, "Org2MSP": {Roots: pool(org2)}})
	if err != nil {
		t.Fatal(err)
	}
	solo := kmstest.New(t, kmstest.Options{Reason: ErrorCode})
	store := solo.Vault.Store()
	w.v = solo.Vault
	w.toks, _ = token.Open(store)
	w.al = solo.Audit
	bind := func(msps ...string) token.CreateOption {
		b, err := token.NewBinding([]string{"mychannel"}, "asset", msps)
		if err != nil {
			t.Fatal(err)
		}
		return token.WithBinding(b)
	}
	w.cc, _, _ = w.toks.Create("token:cc", token.RoleChaincode, "", 0, bind("Org1MSP", "Org2MSP"))
	w.cc2, _, _ = w.toks.Create("token:cc2", token.RoleChaincode, "", 0, bind("Org1MSP", "Org2MSP"))
	w.ccOrg1, _, _ = w.toks.Create("token:cc-org1", token.RoleChaincode, "", 0, bind("Org1MSP"))
	w.legacy, _, _ = w.toks.Create("token:cc-old", token.RoleChaincode, "", 0)
	w.app, _, _ = w.toks.Create("token:app", token.RoleClient, "", 0)
	if _, err := solo.Member.CreateKey("demo/k", vault.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []policy.Party{"org:Org1MSP", "token:cc", "token:app"} {
		if _, err := solo.Member.Grant(policy.Grant{Key: "demo/k", Party: p, Ops: policy.OpsAll, Issuer: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	w.srv = httptest.NewServer(New(Config{Core: solo.Core, Mesh: solo.Member, Tokens: w.toks, Audit: w.al, Fabric: fv}))
	t.Cleanup(w.srv.Close)
	return w
}

var b64 = base64.StdEncoding.EncodeToString

func proposalSpec(ts time.Time) fabricidtest.ProposalSpec {
	return fabricidtest.ProposalSpec{Channel: "mychannel", Chaincode: "asset", Timestamp: ts, Args: [][]byte{[]byte("Fn")}}
}

// signed returns the header value of a proposal signed by id, and its tx.
func signedProposal(id *fabricidtest.Identity, f func(*fabricidtest.ProposalSpec)) (string, fabricidtest.ProposalSpec) {
	s := proposalSpec(time.Now().UTC())
	if f != nil {
		f(&s)
	}
	s, b := id.SignProposal(s)
	return b64(b), s
}

// do sends body to path with tok and headers, and returns status, code
// and the raw body.
func (w *fabricWorld) do(t *testing.T, method, path, tok, body string, headers map[string][]string) (int, string, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, w.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	for k, vs := range headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e apiv1.ErrorResponse
	_ = json.Unmarshal(raw, &e)
	return resp.StatusCode, e.Error.Code, raw
}

func prop(v string) map[string][]string { return map[string][]string{apiv1.HeaderFabricProposal: {v}} }

// TestChaincodeToken checks chaincode-token authentication end to end over
// real HTTP: the signed proposal, its verification, the token's binding,
// the replay cache, the principal it yields, and every refusal.
func TestChaincodeToken(t *testing.T) {
	t.Parallel()
	w := newFabricWorld(t)
	const enc = `{"key":"demo/k","plaintext":"aGVsbG8=","context":{"field":"x"}}`
	alice, _ := signedProposal(w.alice, nil)
	bob, _ := signedProposal(w.bob, nil)
	replayed, _ := signedProposal(w.alice, nil)
	_, forgedBytes := fabricidtest.Unsigned(proposalSpec(time.Now()).WithCreator(w.alice.Creator()), nil)
	otherChannel, _ := signedProposal(w.alice, func(s *fabricidtest.ProposalSpec) { s.Channel = "otherchannel" })
	otherCC, _ := signedProposal(w.alice, func(s *fabricidtest.ProposalSpec) { s.Chaincode = "other" })
	stale, _ := signedProposal(w.alice, func(s *fabricidtest.ProposalSpec) { s.Timestamp = time.Now().Add(-time.Hour) })
	mallory, _ := signedProposal(w.mallory, nil)
	expired, _ := signedProposal(w.expired, nil)

	for _, tc := range []struct {
		name    string
		tok     string
		headers map[string][]string
		path    string
		status  int
		code    string
	}{
		{"ok/org1-creator-granted-by-org", w.cc, prop(alice), "/v1/encrypt", 200, ""},
		{"ok/same-proposal-again", w.cc, prop(alice), "/v1/encrypt", 200, ""},
		{"ok/creator-header-matching", w.cc, map[string][]string{apiv1.HeaderFabricProposal: {alice}, apiv1.HeaderFabricCreator: {b64(w.alice.Creator())}}, "/v1/encrypt", 200, ""},
		{"ok/client-token-without-header", w.app, nil, "/v1/status", 200, ""},
		{"fail/org2-creator-not-granted", w.cc, prop(bob), "/v1/encrypt", 403, apiv1.CodeNotGranted},
		{"fail/creator-header-alone", w.cc, map[string][]string{apiv1.HeaderFabricCreator: {b64(w.alice.Creator())}}, "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/forged-unsigned-proposal", w.cc, prop(b64(forgedBytes)), "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/creator-header-mismatch", w.cc, map[string][]string{apiv1.HeaderFabricProposal: {alice}, apiv1.HeaderFabricCreator: {b64(w.bob.Creator())}}, "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/no-header", w.cc, nil, "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/empty-header", w.cc, prop(""), "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/two-headers", w.cc, map[string][]string{apiv1.HeaderFabricProposal: {alice, alice}}, "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/not-base64", w.cc, prop("%%%"), "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/not-protobuf", w.cc, prop(b64([]byte{0xff, 0xff})), "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/other-channel", w.cc, prop(otherChannel), "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/other-chaincode", w.cc, prop(otherCC), "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/msp-outside-binding", w.ccOrg1, prop(bob), "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/unbound-token", w.legacy, prop(alice), "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/stale", w.cc, prop(stale), "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"ok/replay-first-use", w.cc, prop(replayed), "/v1/encrypt", 200, ""},
		{"fail/replay-other-token", w.cc2, prop(replayed), "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/unknown-ca", w.cc, prop(mallory), "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/expired", w.cc, prop(expired), "/v1/encrypt", 401, apiv1.CodeInvalidCreator},
		{"fail/header-with-client-token", w.app, prop(alice), "/v1/encrypt", 400, apiv1.CodeInvalidRequest},
		{"fail/creator-header-with-client-token", w.app, map[string][]string{apiv1.HeaderFabricCreator: {b64(w.alice.Creator())}}, "/v1/encrypt", 400, apiv1.CodeInvalidRequest},
		{"fail/admin-route", w.cc, prop(alice), "/v1/keys", 403, apiv1.CodeForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method, body := "POST", enc
			if tc.path != "/v1/encrypt" {
				method, body = "GET", ""
			}
			status, code, raw := w.do(t, method, tc.path, tc.tok, body, tc.headers)
			if status != tc.status || code != tc.code {
				t.Fatalf("%s %s = %d %q (%s), want %d %q", method, tc.path, status, code, raw, tc.status, tc.code)
			}
		})
	}

	t.Run("ok/status-names-the-creator-and-tx", func(t *testing.T) {
		h, s := signedProposal(w.alice, nil)
		status, _, raw := w.do(t, "GET", "/v1/status", w.cc, "", prop(h))
		var st apiv1.Status
		if err := json.Unmarshal(raw, &st); err != nil || status != 200 {
			t.Fatalf("status = %d %s", status, raw)
		}
		want := "fabric:Org1MSP/CN=alice,OU=client+org:Org1MSP via token:cc tx " + s.TxID
		if st.Principal != want || st.Role != "chaincode" {
			t.Errorf("status principal, role = %q, %q; want %q, chaincode", st.Principal, st.Role, want)
		}
	})

	t.Run("ok/refusal-audited", func(t *testing.T) {
		es, err := w.al.Tail(100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range es {
			if e.Action == "authenticate" && e.Outcome == audit.OutcomeDeny && strings.HasPrefix(e.Principal, "token:cc") {
				n++
			}
		}
		if n < 15 {
			t.Errorf("audit holds %d creator refusals, want at least 15", n)
		}
	})
}

// TestFabric_ForgedCreatorWithoutSignatureRefused is the API-level
// regression test of issue 10 item 1: a chaincode token holder who names a
// real creator certificate (public on the ledger) without that creator's
// signature over a proposal cannot decrypt as that creator.
func TestFabric_ForgedCreatorWithoutSignatureRefused(t *testing.T) {
	t.Parallel()
	w := newFabricWorld(t)
	// A value alice's org may read.
	status, _, raw := w.do(t, "POST", "/v1/encrypt", w.app, `{"key":"demo/k","plaintext":"c2VjcmV0","context":{"f":"x"}}`, nil)
	if status != 200 {
		t.Fatalf("encrypt = %d %s", status, raw)
	}
	var er apiv1.EncryptResponse
	_ = json.Unmarshal(raw, &er)
	dec := `{"ciphertext":"` + er.Ciphertext + `","context":{"f":"x"}}`
	for name, h := range map[string]map[string][]string{
		"creator header only": {apiv1.HeaderFabricCreator: {b64(w.alice.Creator())}},
		"unsigned proposal": prop(func() string {
			_, b := fabricidtest.Unsigned(proposalSpec(time.Now()).WithCreator(w.alice.Creator()), nil)
			return b64(b)
		}()),
		"proposal signed by another key": prop(func() string {
			s, pb := proposalSpec(time.Now()).WithCreator(w.alice.Creator()).Build()
			_, b := fabricidtest.Unsigned(s, w.mallory.Sign(pb))
			return b64(b)
		}()),
	} {
		if status, code, raw := w.do(t, "POST", "/v1/decrypt", w.cc, dec, h); status != 401 || code != apiv1.CodeInvalidCreator {
			t.Errorf("%s: decrypt = %d %s, want 401 invalid_creator", name, status, raw)
		}
	}
	h, _ := signedProposal(w.alice, nil)
	if status, _, raw := w.do(t, "POST", "/v1/decrypt", w.cc, dec, prop(h)); status != 200 {
		t.Errorf("decrypt with alice's signed proposal = %d %s, want 200", status, raw)
	}
}

// TestFabric_EndorsementModeNeedsVerifiedProposal is the regression test
// of issue 10 item 2: endorsement mode is not an oracle. A caller with
// encrypt but no verified proposal cannot use it; with one, tx id and time
// are the proposal's, and a second plaintext for the same key, context
// and transaction is refused.
func TestFabric_EndorsementModeNeedsVerifiedProposal(t *testing.T) {
	t.Parallel()
	w := newFabricWorld(t)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	guess := func(pt string) string {
		return `{"key":"demo/k","mode":"endorsement","plaintext":"` + base64.StdEncoding.EncodeToString([]byte(pt)) +
			`","context":{"field":"price"},"tx_id":"abc","tx_time":"` + now + `"}`
	}
	if status, code, raw := w.do(t, "POST", "/v1/encrypt", w.app, guess("100"), nil); status != 403 || code != apiv1.CodeForbidden {
		t.Fatalf("client token, endorsement mode = %d %s, want 403 forbidden", status, raw)
	}
	if es, _ := w.al.Tail(1); len(es) != 1 || es[0].Outcome != audit.OutcomeDeny || es[0].Principal != "token:app" || es[0].Action != "encrypt" {
		t.Errorf("the refusal is not audited: %+v", es)
	}
	batch := `{"key":"demo/k","mode":"endorsement","batch":[{"plaintext":"MQ==","context":{"f":"a"},"tx_id":"t","tx_time":"` + now + `"}]}`
	if status, code, raw := w.do(t, "POST", "/v1/encrypt", w.app, batch, nil); status != 403 || code != apiv1.CodeForbidden {
		t.Fatalf("client token, endorsement batch = %d %s, want 403 forbidden", status, raw)
	}

	h, s := signedProposal(w.alice, nil)
	pt := func(p string) string { return base64.StdEncoding.EncodeToString([]byte(p)) }
	body := func(p, ctx, extra string) string {
		return `{"key":"demo/k","mode":"endorsement","plaintext":"` + pt(p) + `","context":{"field":"` + ctx + `"}` + extra + `}`
	}
	var first apiv1.EncryptResponse
	status, _, raw := w.do(t, "POST", "/v1/encrypt", w.cc, body("100", "price", ""), prop(h))
	if status != 200 || json.Unmarshal(raw, &first) != nil {
		t.Fatalf("chaincode endorsement = %d %s", status, raw)
	}
	// The same plaintext again (another endorsement, a retry): same bytes.
	var again apiv1.EncryptResponse
	status, _, raw = w.do(t, "POST", "/v1/encrypt", w.cc, body("100", "price", `,"tx_id":"`+s.TxID+`"`), prop(h))
	if status != 200 || json.Unmarshal(raw, &again) != nil || again.Ciphertext != first.Ciphertext {
		t.Fatalf("repeat = %d %s, want the same envelope", status, raw)
	}
	// A second plaintext for the same key, context and tx: refused.
	if status, code, raw := w.do(t, "POST", "/v1/encrypt", w.cc, body("101", "price", ""), prop(h)); status != 409 || code != apiv1.CodeConflict {
		t.Fatalf("second plaintext = %d %s, want 409 conflict", status, raw)
	}
	// Another field of the same tx is fine.
	if status, _, raw := w.do(t, "POST", "/v1/encrypt", w.cc, body("101", "qty", ""), prop(h)); status != 200 {
		t.Fatalf("other field = %d %s, want 200", status, raw)
	}
	// Tx id or time other than the proposal's: refused.
	if status, code, raw := w.do(t, "POST", "/v1/encrypt", w.cc, body("100", "price", `,"tx_id":"abc"`), prop(h)); status != 403 || code != apiv1.CodeForbidden {
		t.Fatalf("foreign tx_id = %d %s, want 403", status, raw)
	}
	if status, code, raw := w.do(t, "POST", "/v1/encrypt", w.cc, body("100", "price", `,"tx_time":"2020-01-01T00:00:00Z"`), prop(h)); status != 403 || code != apiv1.CodeForbidden {
		t.Fatalf("foreign tx_time = %d %s, want 403", status, raw)
	}
	// The creator enters the derivation: the envelope is not the one the
	// bare tx id would give.
	bare, err := w.v.Encrypt(vault.EncryptInput{Key: "demo/k", Mode: envelope.ModeEndorsement, Context: envelope.Context{"field": "price"}, TxID: s.TxID, TxTime: s.Timestamp, Plaintext: []byte("100")})
	if err != nil {
		t.Fatal(err)
	}
	if bare.Text() == first.Ciphertext {
		t.Error("the endorsement nonce does not depend on the creator")
	}
	// Decisions and audit entries carry the tx id.
	es, _ := w.al.Tail(50)
	found := false
	for _, e := range es {
		if e.Action == "encrypt" && strings.HasSuffix(e.Principal, " tx "+s.TxID) {
			found = true
		}
	}
	if !found {
		t.Error("no encrypt audit entry names the transaction id")
	}
}

// TestFabric_GrantCanonicalisesSubject: a fabric: party given in a
// certificate's attribute order is stored in the form a verified creator
// yields; one that is not a distinguished name is refused at grant time.
func TestFabric_GrantCanonicalisesSubject(t *testing.T) {
	t.Parallel()
	w := newFabricWorld(t)
	admin, _, err := w.toks.Create(policy.AdminParty, token.RoleAdmin, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	status, _, raw := w.do(t, "POST", "/v1/grants", admin,
		`{"key":"demo/k","party":"fabric:Org1MSP/C=US,L=San Francisco,OU=client,CN=alice","ops":["decrypt"]}`, nil)
	var g apiv1.Grant
	if status != 201 && status != 200 || json.Unmarshal(raw, &g) != nil {
		t.Fatalf("grant = %d %s", status, raw)
	}
	if want := "fabric:Org1MSP/CN=alice,OU=client,L=San Francisco,C=US"; g.Party != want {
		t.Errorf("granted party = %q, want %q", g.Party, want)
	}
	status, code, raw := w.do(t, "POST", "/v1/grants", admin,
		`{"key":"demo/k","party":"fabric:Org1MSP/CN=alice,OU=client,L=San,Francisco","ops":["decrypt"]}`, nil)
	if status != 400 || code != apiv1.CodeInvalidRequest {
		t.Errorf("grant of a cut subject = %d %s, want 400 invalid_request", status, raw)
	}
}
