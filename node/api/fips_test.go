package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/ethid"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/token"
)

// countingNonces is a nonce store that counts the nonces it is asked to
// spend: a --fips node must never reach it.
type countingNonces struct{ uses atomic.Int64 }

func (c *countingNonces) Use(common.Address, [32]byte, time.Time, time.Time) error {
	c.uses.Add(1)
	return nil
}

// startFIPS serves the fixture's node as started with --fips.
func (f *ethFixture) startFIPS() (*countingNonces, string) {
	f.t.Helper()
	nonces := &countingNonces{}
	cfg := f.cfg
	cfg.Info.FIPS = true
	cfg.EthNonces = nonces
	srv := httptest.NewServer(New(cfg))
	f.t.Cleanup(srv.Close)
	return nonces, srv.URL
}

// TestFIPSRefusesWalletSignedRequests: a node started with --fips refuses
// a correctly wallet-signed decrypt of a granted wallet with 403
// fips_unsupported, naming --fips, and answers the same to a bad or
// expired signature, an EIP-191 one, a malformed body and the domain
// route: nothing is verified (no signature error) and no nonce is spent.
// The very same signed request is then served by the node without --fips.
// Before, --fips changed nothing here and the first request answered 200
// with the plaintext.
func TestFIPSRefusesWalletSignedRequests(t *testing.T) {
	t.Parallel()
	f := newEthFixture(t)
	nonces, fipsURL := f.startFIPS()
	_, url := f.start()
	env := f.encrypt(url, "demo/k", "42.00 USD", ethCtx)
	items := []apiv1.DecryptItem{{Ciphertext: env, Context: ethCtx}}
	good := signed(t, f.reader, 1337, items)

	var req apiv1.EthDecryptRequest
	if err := json.Unmarshal(good, &req); err != nil {
		t.Fatal(err)
	}
	sig := []byte(req.Auth.Signature)
	sig[10] ^= 1 // '0'-'9' and 'a'-'f' stay hex digits: a well-formed, wrong signature
	req.Auth.Signature = string(sig)
	badSig, _ := json.Marshal(req)
	req.Auth.Signature = string(sig[:len(sig)-2]) // 64 bytes: malformed
	shortSig, _ := json.Marshal(req)

	texts := []string{env}
	r, err := ethid.NewRequest(ethid.Domain{NetworkID: ethNetID, ChainID: 1337, Audience: ethNode},
		crypto.PubkeyToAddress(f.reader.PublicKey), ethid.ActionDecrypt, texts, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	a, err := r.Sign(f.reader, ethid.SchemeEIP712)
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := json.Marshal(apiv1.EthDecryptRequest{Ciphertext: env, Context: ethCtx, Auth: a})
	r.Expiry = uint64(time.Now().Add(time.Minute).Unix())
	if a, err = r.Sign(f.reader, ethid.SchemeEIP191); err != nil {
		t.Fatal(err)
	}
	eip191, _ := json.Marshal(apiv1.EthDecryptRequest{Ciphertext: env, Context: ethCtx, Auth: a})

	for _, tc := range []struct {
		name, method, path string
		body               []byte
	}{
		{"fail/valid-signature", "POST", "/v1/eth/decrypt", good},
		{"fail/valid-eip191-signature", "POST", "/v1/eth/decrypt", eip191},
		{"fail/bad-signature", "POST", "/v1/eth/decrypt", badSig},
		{"fail/short-signature", "POST", "/v1/eth/decrypt", shortSig},
		{"fail/expired", "POST", "/v1/eth/decrypt", expired},
		{"fail/batch", "POST", "/v1/eth/decrypt", signed(t, f.reader, 1337, append(items, items[0]))},
		{"fail/unknown-field", "POST", "/v1/eth/decrypt", []byte(`{"token":"x"}`)},
		{"fail/not-json", "POST", "/v1/eth/decrypt", []byte(`not json`)},
		{"fail/domain", "GET", "/v1/eth/domain", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hr, err := http.NewRequest(tc.method, fipsURL+tc.path, bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e apiv1.ErrorResponse
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusForbidden || e.Error.Code != apiv1.CodeFIPSUnsupported || !strings.Contains(e.Error.Message, "--fips") {
				t.Errorf("%s %s on a --fips node = %d %+v, want 403 %s naming --fips", tc.method, tc.path, resp.StatusCode, e.Error, apiv1.CodeFIPSUnsupported)
			}
		})
	}
	if n := nonces.uses.Load(); n != 0 {
		t.Errorf("the --fips node spent %d wallet nonces, want 0", n)
	}

	status, body := post(t, url+"/v1/eth/decrypt", "", good)
	var dr apiv1.DecryptResponse
	if err := json.Unmarshal(body, &dr); status != http.StatusOK || err != nil || string(dr.Plaintext) != "42.00 USD" {
		t.Errorf("the same request without --fips = %d %s, want 200 with the plaintext", status, body)
	}
}

// TestFIPSStatusListsDisabled: GET /v1/status of a --fips node lists
// eth_wallets under fips.disabled; without --fips the field is absent.
func TestFIPSStatusListsDisabled(t *testing.T) {
	t.Parallel()
	f := newEthFixture(t)
	_, fipsURL := f.startFIPS()
	_, url := f.start()
	for _, tc := range []struct {
		name, url string
		fips      bool
	}{{"ok/fips", fipsURL, true}, {"ok/default", url, false}} {
		t.Run(tc.name, func(t *testing.T) {
			hr, _ := http.NewRequest("GET", tc.url+"/v1/status", nil)
			hr.Header.Set("Authorization", "Bearer "+f.app)
			resp, err := http.DefaultClient.Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var raw struct {
				FIPS map[string]json.RawMessage `json:"fips"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /v1/status = %d, %v", resp.StatusCode, err)
			}
			got, ok := raw.FIPS["disabled"]
			switch {
			case tc.fips && string(got) != `["`+apiv1.FIPSDisabledEthWallets+`"]`:
				t.Errorf("fips.disabled = %s, want [%q]", got, apiv1.FIPSDisabledEthWallets)
			case !tc.fips && ok:
				t.Errorf("fips.disabled = %s without --fips, want it absent", got)
			case string(raw.FIPS["required"]) != map[bool]string{true: "true", false: "false"}[tc.fips]:
				t.Errorf("fips.required = %s, want %v", raw.FIPS["required"], tc.fips)
			}
		})
	}
}

// TestFIPSAcceptsEthGrants: a --fips node's admin still grants and revokes
// for eth: parties (a grant is an Ed25519-signed event naming a party, and
// serves at its custodian's nodes, which may run without --fips); on this
// node the grant is inert: the wallet it names is refused fips_unsupported.
func TestFIPSAcceptsEthGrants(t *testing.T) {
	t.Parallel()
	f := newEthFixture(t)
	admin, _, err := f.cfg.Tokens.Create(policy.AdminParty, token.RoleAdmin, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	_, fipsURL := f.startFIPS()
	party := ethid.Party(crypto.PubkeyToAddress(f.stranger.PublicKey))
	b, _ := json.Marshal(apiv1.CreateGrantRequest{Key: "demo/k", Party: party, Ops: []string{"decrypt"}})
	if status, body := post(t, fipsURL+"/v1/grants", admin, b); status != http.StatusCreated {
		t.Fatalf("POST /v1/grants for %s on a --fips node = %d %s, want 201", party, status, body)
	}
	env := f.encrypt(fipsURL, "demo/k", "42.00 USD", ethCtx)
	status, body := post(t, fipsURL+"/v1/eth/decrypt", "", signed(t, f.stranger, 1337, []apiv1.DecryptItem{{Ciphertext: env, Context: ethCtx}}))
	if status != http.StatusForbidden || errCode(body) != apiv1.CodeFIPSUnsupported {
		t.Errorf("the newly granted wallet on a --fips node = %d %s, want 403 %s", status, body, apiv1.CodeFIPSUnsupported)
	}
	b, _ = json.Marshal(apiv1.RevokeRequest{Key: "demo/k", Party: party})
	if status, body := post(t, fipsURL+"/v1/grants/revoke", admin, b); status != http.StatusOK && status != http.StatusCreated {
		t.Errorf("POST /v1/grants/revoke for %s on a --fips node = %d %s, want success", party, status, body)
	}
}
