package api

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/keymesh/keymesh/kms/kmstest"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/ethid"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/token"
	"github.com/keymesh/keymesh/vault"
)

// TestEthRoutesWithoutNetworkID: a node without a valid network id cannot
// check wallet signatures, and says so with 503 rather than 401. (The routes
// with a real node are tested end to end in chaincode/ethereum.)
func TestEthRoutesWithoutNetworkID(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	body := `{"ciphertext":"km1:AAAA","auth":{"chain_id":1,"account":"0x0000000000000000000000000000000000000001","expiry":1,"nonce":"0x00","signature":"0x00"}}`
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
		code                     string
	}{
		{"fail/domain", "GET", "/v1/eth/domain", "", http.StatusServiceUnavailable, apiv1.CodeUnavailable},
		{"fail/decrypt", "POST", "/v1/eth/decrypt", body, http.StatusServiceUnavailable, apiv1.CodeUnavailable},
		{"fail/decrypt-no-ciphertext", "POST", "/v1/eth/decrypt", `{"auth":{}}`, http.StatusBadRequest, apiv1.CodeInvalidRequest},
		{"fail/decrypt-unknown-field", "POST", "/v1/eth/decrypt", `{"token":"x"}`, http.StatusBadRequest, apiv1.CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, e, raw := f.do(t, tc.method, tc.path, "", strings.NewReader(tc.body))
			if status != tc.want || e.Error.Code != tc.code {
				t.Errorf("%s %s = %d %s, want %d %s", tc.method, tc.path, status, raw, tc.want, tc.code)
			}
		})
	}
}

// ethFixture is a node's API with wallet authentication: a network id, a
// node id (the audience), a durable nonce store on an in-memory kv.Store
// that outlives the servers started on it (a restart), a key demo/k that
// token:app may encrypt with and the reader wallet may decrypt.
type ethFixture struct {
	t                         *testing.T
	cfg                       Config
	nonces                    *kv.Mem
	app                       string
	reader, stranger, reader2 *ecdsa.PrivateKey
	total, perAccount         int
}

const (
	ethNetID = "6b65796d657368206574682074657374206e6574776f726b2069642030303031"
	ethNode  = "node-a"
)

func newEthFixture(t *testing.T) *ethFixture {
	t.Helper()
	solo := kmstest.New(t, kmstest.Options{Org: "Org1MSP", Reason: ErrorCode})
	store, v := solo.Vault.Store(), solo.Member
	toks, err := token.Open(store)
	if err != nil {
		t.Fatal(err)
	}
	al := solo.Audit
	app, _, err := toks.Create("token:app", token.RoleClient, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	f := &ethFixture{t: t, nonces: kv.NewMem(), app: app, reader: ethKey(t), stranger: ethKey(t), reader2: ethKey(t)}
	for _, k := range []string{"demo/k", "demo/other"} {
		if _, err := v.CreateKey(k, vault.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Grant(policy.Grant{Key: k, Party: "token:app", Ops: policy.OpsAll, Issuer: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []*ecdsa.PrivateKey{f.reader, f.reader2} {
		if _, err := v.Grant(policy.Grant{Key: "demo/k", Party: policy.Party(ethid.Party(crypto.PubkeyToAddress(r.PublicKey))), Ops: policy.OpsDecrypt, Issuer: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	f.cfg = Config{Core: solo.Core, Mesh: solo.Member, Tokens: toks, Audit: al,
		Info: Info{Node: ethNode, Org: "Org1MSP", NetworkID: ethNetID}}
	return f
}

func ethKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// start serves a fresh Server (as a restarted node would build it) on the
// fixture's stores; it returns the server's nonce store and its URL.
func (f *ethFixture) start() (*ethid.StoreNonces, string) {
	f.t.Helper()
	nonces, err := ethid.OpenStoreNonces(f.nonces, f.total, f.perAccount, time.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	cfg := f.cfg
	cfg.EthNonces = nonces
	srv := httptest.NewServer(New(cfg))
	f.t.Cleanup(srv.Close)
	return nonces, srv.URL
}

func (f *ethFixture) encrypt(url, key, plaintext string, ctx map[string]string) string {
	f.t.Helper()
	b, _ := json.Marshal(apiv1.EncryptRequest{Key: key, Plaintext: []byte(plaintext), Context: ctx})
	status, body := post(f.t, url+"/v1/encrypt", f.app, b)
	var r apiv1.EncryptResponse
	if err := json.Unmarshal(body, &r); status != http.StatusOK || err != nil {
		f.t.Fatalf("POST /v1/encrypt = %d %s", status, body)
	}
	return r.Ciphertext
}

// signed returns a decrypt request over items, signed by key for chain
// chainID and audience ethNode.
func signed(t *testing.T, key *ecdsa.PrivateKey, chainID uint64, items []apiv1.DecryptItem) []byte {
	t.Helper()
	texts := make([]string, len(items))
	for i, it := range items {
		texts[i] = it.Ciphertext
	}
	r, err := ethid.NewRequest(ethid.Domain{NetworkID: ethNetID, ChainID: chainID, Audience: ethNode},
		crypto.PubkeyToAddress(key.PublicKey), ethid.ActionDecrypt, texts, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	a, err := r.Sign(key, ethid.SchemeEIP712)
	if err != nil {
		t.Fatal(err)
	}
	req := apiv1.EthDecryptRequest{Auth: a}
	if len(items) == 1 {
		req.Ciphertext, req.Context = items[0].Ciphertext, items[0].Context
	} else {
		req.Batch = items
	}
	b, _ := json.Marshal(req)
	return b
}

func post(t *testing.T, url, tok string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
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
	return resp.StatusCode, b
}

func errCode(body []byte) string {
	var e apiv1.ErrorResponse
	_ = json.Unmarshal(body, &e)
	return e.Error.Code
}

var ethCtx = map[string]string{"chain_id": "1337", "contract": "0x5fbdb2315678afecb367f032d93f642f64180aa3", "field": "price"}

// TestEthDecrypt_FloodByUngrantedWalletDoesNotLockOut is issue 13's
// lock-out: a wallet with no grant signs many fresh requests (over junk and
// over real envelopes it may not open). None of them spends a nonce (the
// store holds nothing afterwards: the structural memory bound), so a
// granted wallet is served at once. Before, every verified signature
// entered a bounded cache first, and a full cache answered everyone 503.
func TestEthDecrypt_FloodByUngrantedWalletDoesNotLockOut(t *testing.T) {
	t.Parallel()
	f := newEthFixture(t)
	f.total, f.perAccount = 50, 10 // small bounds, so that the flood is far over them
	nonces, url := f.start()
	env := f.encrypt(url, "demo/k", "42.00 USD", ethCtx)
	const flood = 200
	for i := range flood {
		item := apiv1.DecryptItem{Ciphertext: "x"}
		want := http.StatusBadRequest
		if i%2 == 1 {
			item = apiv1.DecryptItem{Ciphertext: env, Context: ethCtx}
			want = http.StatusForbidden
		}
		if status, body := post(t, url+"/v1/eth/decrypt", "", signed(t, f.stranger, 1337, []apiv1.DecryptItem{item})); status != want {
			t.Fatalf("flood request %d = %d %s, want %d", i, status, body, want)
		}
	}
	if n := nonces.Len(); n != 0 {
		t.Errorf("after %d requests of an ungranted wallet the nonce store holds %d nonces, want 0", flood, n)
	}
	status, body := post(t, url+"/v1/eth/decrypt", "", signed(t, f.reader, 1337, []apiv1.DecryptItem{{Ciphertext: env, Context: ethCtx}}))
	if status != http.StatusOK {
		t.Fatalf("granted wallet after the flood = %d %s, want 200", status, body)
	}
}

// TestEthDecrypt_GrantedFloodBoundedPerAccount: a granted wallet that
// floods fills at most its own bound (then gets 503 itself); the store
// stays within the bound, and another granted wallet is still served.
func TestEthDecrypt_GrantedFloodBoundedPerAccount(t *testing.T) {
	t.Parallel()
	f := newEthFixture(t)
	f.total, f.perAccount = 50, 10
	nonces, url := f.start()
	env := f.encrypt(url, "demo/k", "42.00 USD", ethCtx)
	item := []apiv1.DecryptItem{{Ciphertext: env, Context: ethCtx}}
	ok, busy := 0, 0
	for i := range 3 * f.perAccount {
		status, body := post(t, url+"/v1/eth/decrypt", "", signed(t, f.reader, 1337, item))
		switch {
		case status == http.StatusOK:
			ok++
		case status == http.StatusServiceUnavailable && errCode(body) == apiv1.CodeUnavailable:
			busy++
		default:
			t.Fatalf("request %d = %d %s", i, status, body)
		}
	}
	if ok != f.perAccount || busy != 2*f.perAccount {
		t.Errorf("flooding wallet: %d served, %d refused; want %d, %d", ok, busy, f.perAccount, 2*f.perAccount)
	}
	if n := nonces.Len(); n > f.perAccount {
		t.Errorf("nonce store holds %d nonces, over the per-account bound %d", n, f.perAccount)
	}
	if status, body := post(t, url+"/v1/eth/decrypt", "", signed(t, f.reader2, 1337, item)); status != http.StatusOK {
		t.Errorf("another granted wallet = %d %s, want 200", status, body)
	}
}

// TestEthDecrypt_ReplayAfterRestartRefused: a used signature stays used
// when the node restarts on the same store. Before, the replay cache was in
// memory only, and the replay after a restart answered 200 with the
// plaintext.
func TestEthDecrypt_ReplayAfterRestartRefused(t *testing.T) {
	t.Parallel()
	f := newEthFixture(t)
	_, url := f.start()
	env := f.encrypt(url, "demo/k", "42.00 USD", ethCtx)
	req := signed(t, f.reader, 1337, []apiv1.DecryptItem{{Ciphertext: env, Context: ethCtx}})
	if status, body := post(t, url+"/v1/eth/decrypt", "", req); status != http.StatusOK {
		t.Fatalf("first use = %d %s, want 200", status, body)
	}
	_, url2 := f.start() // the restarted node
	status, body := post(t, url2+"/v1/eth/decrypt", "", req)
	if status != http.StatusUnauthorized || errCode(body) != apiv1.CodeUnauthenticated || bytes.Contains(body, []byte("plaintext")) {
		t.Errorf("replay after a restart = %d %s, want 401 unauthenticated", status, body)
	}
}

// TestEthDecrypt_OtherNodeRefused: a request signed for one node (its
// audience) is refused by another node of the same network, so a
// signature cannot be spent once per node of the custodian org.
func TestEthDecrypt_OtherNodeRefused(t *testing.T) {
	t.Parallel()
	f := newEthFixture(t)
	_, url := f.start()
	env := f.encrypt(url, "demo/k", "42.00 USD", ethCtx)
	req := signed(t, f.reader, 1337, []apiv1.DecryptItem{{Ciphertext: env, Context: ethCtx}})
	f.cfg.Info.Node = "node-b"
	_, urlB := f.start()
	if status, body := post(t, urlB+"/v1/eth/decrypt", "", req); status != http.StatusUnauthorized {
		t.Errorf("node-b, signed for %s = %d %s, want 401", ethNode, status, body)
	}
	if status, body := post(t, url+"/v1/eth/decrypt", "", req); status != http.StatusOK {
		t.Errorf("%s, signed for it = %d %s, want 200", ethNode, status, body)
	}
}

// TestEthDecrypt_ChainIDMismatchRefused: a wallet that signs for one chain
// does not open envelopes of another chain's context. Before, the signed
// chain id was never compared with the context, and this answered 200.
func TestEthDecrypt_ChainIDMismatchRefused(t *testing.T) {
	t.Parallel()
	f := newEthFixture(t)
	_, url := f.start()
	env := f.encrypt(url, "demo/k", "42.00 USD", ethCtx)
	items := []apiv1.DecryptItem{{Ciphertext: env, Context: ethCtx}}
	status, body := post(t, url+"/v1/eth/decrypt", "", signed(t, f.reader, 1, items))
	if status != http.StatusBadRequest || errCode(body) != apiv1.CodeInvalidRequest || !bytes.Contains(body, []byte("signed chain id")) {
		t.Errorf("signed for chain 1, context chain 1337 = %d %s, want 400 invalid_request", status, body)
	}
	batch := []apiv1.DecryptItem{items[0], {Ciphertext: env, Context: map[string]string{"chain_id": "5", "contract": ethCtx["contract"], "field": "price"}}}
	status, body = post(t, url+"/v1/eth/decrypt", "", signed(t, f.reader, 1337, batch))
	if status != http.StatusBadRequest || !bytes.Contains(body, []byte("batch item 1")) {
		t.Errorf("batch with item 1 of chain 5, signed for 1337 = %d %s, want 400 naming item 1", status, body)
	}
	// The refused requests spent no nonce: the right request is served.
	if status, body := post(t, url+"/v1/eth/decrypt", "", signed(t, f.reader, 1337, items)); status != http.StatusOK {
		t.Errorf("signed for chain 1337 = %d %s, want 200", status, body)
	}
}

// TestEthDecrypt_ConcurrentCopiesOneSucceeds: of 20 simultaneous copies of
// one signed request exactly one is served; the others are replays.
func TestEthDecrypt_ConcurrentCopiesOneSucceeds(t *testing.T) {
	t.Parallel()
	f := newEthFixture(t)
	_, url := f.start()
	env := f.encrypt(url, "demo/k", "42.00 USD", ethCtx)
	req := signed(t, f.reader, 1337, []apiv1.DecryptItem{{Ciphertext: env, Context: ethCtx}})
	const copies = 20
	statuses := make(chan int, copies)
	var wg sync.WaitGroup
	for range copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _ := post(t, url+"/v1/eth/decrypt", "", req)
			statuses <- status
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[http.StatusOK] != 1 || count[http.StatusUnauthorized] != copies-1 {
		t.Errorf("%d copies: statuses %v, want one 200 and %d 401", copies, count, copies-1)
	}
}

// TestCanonicalEthContext is issue 14's silent never-decrypts case: an
// envelope sealed with a hex chain id and a checksummed address (what
// ethers hands out) opens when asked with the canonical forms, and the
// other way round; a value that is neither is refused with 400 naming the
// expected form. Before, the first decrypt failed with decryption_failed
// forever.
func TestCanonicalEthContext(t *testing.T) {
	t.Parallel()
	f := newEthFixture(t)
	_, url := f.start()
	ethersCtx := map[string]string{"chain_id": "0x539", "contract": "0x5FbDB2315678afecb367f032d93F642f64180aa3", "field": "price"}
	env := f.encrypt(url, "demo/k", "42.00 USD", ethersCtx)
	for name, ctx := range map[string]map[string]string{"canonical": ethCtx, "ethers-style": ethersCtx} {
		b, _ := json.Marshal(apiv1.DecryptRequest{Ciphertext: env, Context: ctx})
		status, body := post(t, url+"/v1/decrypt", f.app, b)
		var r apiv1.DecryptResponse
		if err := json.Unmarshal(body, &r); status != http.StatusOK || err != nil || string(r.Plaintext) != "42.00 USD" {
			t.Errorf("POST /v1/decrypt, %s context = %d %s, want 200", name, status, body)
		}
		status, body = post(t, url+"/v1/eth/decrypt", "", signed(t, f.reader, 1337, []apiv1.DecryptItem{{Ciphertext: env, Context: ctx}}))
		if status != http.StatusOK {
			t.Errorf("POST /v1/eth/decrypt, %s context = %d %s, want 200", name, status, body)
		}
	}
	for _, tc := range []struct {
		name, path string
		body       any
		want       string
	}{
		{"fail/encrypt-chain-name", "/v1/encrypt", apiv1.EncryptRequest{Key: "demo/k", Plaintext: []byte("x"), Context: map[string]string{"chain_id": "mainnet"}}, `context \"chain_id\" must be a chain id`},
		{"fail/encrypt-bad-checksum", "/v1/encrypt", apiv1.EncryptRequest{Key: "demo/k", Batch: []apiv1.EncryptItem{{Plaintext: []byte("x")}, {Plaintext: []byte("y"), Context: map[string]string{"contract": "0x5FbDB2315678afecb367f032d93F642f64180aA3"}}}}, `batch item 1: context \"contract\" must be a contract address`},
		{"fail/decrypt-short-address", "/v1/decrypt", apiv1.DecryptRequest{Ciphertext: env, Context: map[string]string{"contract": "0x5fbdb"}}, `must be a contract address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := json.Marshal(tc.body)
			status, body := post(t, url+tc.path, f.app, b)
			if status != http.StatusBadRequest || errCode(body) != apiv1.CodeInvalidRequest || !bytes.Contains(body, []byte(tc.want)) {
				t.Errorf("POST %s = %d %s, want 400 invalid_request containing %s", tc.path, status, body, tc.want)
			}
		})
	}
}

// TestAPIImportsNoChaincode holds issue 9's arrow: the node's REST API
// verifies wallets with node/ethid and imports nothing of chaincode/.
func TestAPIImportsNoChaincode(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs go list")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go toolchain not on PATH")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/keymesh/keymesh/chaincode/") {
			t.Errorf("node/api depends on %s", p)
		}
	}
}
