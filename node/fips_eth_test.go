package node_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/fips140"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/keymesh/keymesh/node"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
	"github.com/keymesh/keymesh/node/ethid"
	"github.com/keymesh/keymesh/node/nodetest"
)

// underFIPSOnly reports whether the test process runs with
// GODEBUG=fips140=only, the only mode in which a node opens with --fips.
// If it does not, it runs the test again in a child process that does
// (the setting cannot change inside a process), fails t if the child does
// not pass, and reports false: the caller returns.
func underFIPSOnly(t *testing.T) bool {
	t.Helper()
	if fips140.Enforced() {
		return true
	}
	if testing.Short() {
		t.Skip("re-runs the test in a child process under GODEBUG=fips140=only")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.timeout=5m", "-test.v")
	cmd.Env = append(os.Environ(), "GODEBUG=fips140=only")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("%s under GODEBUG=fips140=only: %v\n%s", t.Name(), err, out)
	}
	return false
}

// walletKey makes an Ethereum account key. secp256k1 is not the Go
// Cryptographic Module's: the test's wallet, not the node, uses it.
func walletKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	var k *ecdsa.PrivateKey
	var err error
	fips140.WithoutEnforcement(func() { k, err = crypto.GenerateKey() })
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// walletDecrypt returns a decrypt request over env, signed by key for the
// node n (network id and audience from its status) and chain 1337.
func walletDecrypt(t *testing.T, n *nodetest.Node, key *ecdsa.PrivateKey, env string, ctx map[string]string) apiv1.EthDecryptRequest {
	t.Helper()
	st, err := n.Admin.Status(nodetest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var a ethid.Auth
	fips140.WithoutEnforcement(func() {
		var r *ethid.Request
		r, err = ethid.NewRequest(ethid.Domain{NetworkID: st.NetworkID, ChainID: 1337, Audience: st.Node},
			crypto.PubkeyToAddress(key.PublicKey), ethid.ActionDecrypt, []string{env}, time.Now().Add(2*time.Minute))
		if err == nil {
			a, err = r.Sign(key, ethid.SchemeEIP712)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return apiv1.EthDecryptRequest{Ciphertext: env, Context: ctx, Auth: a}
}

// wantFIPSRefusal fails t unless err is the 403 fips_unsupported of a
// --fips node, naming --fips.
func wantFIPSRefusal(t *testing.T, what string, err error) {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden || ae.Code != apiv1.CodeFIPSUnsupported || !strings.Contains(ae.Message, "--fips") {
		t.Errorf("%s = %v, want 403 %s naming --fips", what, err, apiv1.CodeFIPSUnsupported)
	}
}

// TestFIPSNodeRefusesWalletSignedRequests runs, under GODEBUG=fips140=only,
// a mesh of two Org1MSP nodes: a with --fips, b without. Each grants a
// wallet decrypt on one key, and both grants reach both nodes (the mesh
// fold does not depend on a node's flag; a --fips node accepts eth:
// grants). A request that the granted wallet signed correctly for a is
// refused there with 403 fips_unsupported, as is the same request with a
// broken signature and GET /v1/eth/domain: a verifies nothing. b serves
// the wallet both keys. Restarted without --fips on the same data, a
// serves the very request it refused. Before, a served it with --fips.
func TestFIPSNodeRefusesWalletSignedRequests(t *testing.T) {
	t.Parallel()
	if !underFIPSOnly(t) {
		return
	}
	m := nodetest.NewMesh(t, []string{"Org1MSP"})
	a := m.Start("a", "Org1MSP", nodetest.WithConfig(func(c *node.Config) { c.FIPS = true }))
	b := m.Start("b", "Org1MSP")
	m.WaitListed(2, a, b)
	ctx := nodetest.Ctx(t)

	st, err := a.Admin.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.FIPS.Required || len(st.FIPS.Disabled) != 1 || st.FIPS.Disabled[0] != apiv1.FIPSDisabledEthWallets {
		t.Errorf("a: Status().FIPS = %+v, want required and disabled [%s]", st.FIPS, apiv1.FIPSDisabledEthWallets)
	}
	if st, err := b.Admin.Status(ctx); err != nil || st.FIPS.Required || st.FIPS.Disabled != nil {
		t.Errorf("b: Status().FIPS = %+v, %v, want not required, nothing disabled", st.FIPS, err)
	}

	b.CreateKeys(t, "demo/k", "demo/other")
	b.Grant(t, "token:app", []string{"encrypt"}, "demo/k", "demo/other")
	a.WaitVersion(t, 1, "demo/k", "demo/other")
	wallet := walletKey(t)
	party := ethid.Party(crypto.PubkeyToAddress(wallet.PublicKey))
	a.Grant(t, party, []string{"decrypt"}, "demo/k") // accepted on a --fips node
	b.Grant(t, party, []string{"decrypt"}, "demo/other")
	for _, n := range []*nodetest.Node{a, b} {
		nodetest.Eventually(t, 15*time.Second, n.Name+" holds both grants of "+party, func(ctx context.Context) bool {
			gs, err := n.Admin.ListGrants(ctx, "")
			held := 0
			for _, g := range gs {
				if g.Party == party && g.InForce {
					held++
				}
			}
			return err == nil && held == 2
		})
	}

	app := b.Client(t, "token:app")
	ethCtx := map[string]string{"chain_id": "1337", "contract": "0x5fbdb2315678afecb367f032d93f642f64180aa3", "field": "price"}
	envK, _, err := app.EncryptValue(ctx, "demo/k", []byte("42.00 USD"), ethCtx, "")
	if err != nil {
		t.Fatal(err)
	}
	envOther, _, err := app.EncryptValue(ctx, "demo/other", []byte("7 units"), ethCtx, "")
	if err != nil {
		t.Fatal(err)
	}

	wa := a.NewClient("")
	req := walletDecrypt(t, a, wallet, envK, ethCtx)
	_, err = wa.EthDecrypt(ctx, req)
	wantFIPSRefusal(t, "a (--fips): EthDecrypt(correctly signed)", err)
	bad := req
	sig := []byte(bad.Auth.Signature)
	sig[10] ^= 1
	bad.Auth.Signature = string(sig)
	_, err = wa.EthDecrypt(ctx, bad)
	wantFIPSRefusal(t, "a (--fips): EthDecrypt(bad signature)", err)
	_, err = wa.EthDomain(ctx)
	wantFIPSRefusal(t, "a (--fips): EthDomain()", err)

	wb := b.NewClient("")
	for env, want := range map[string]string{envK: "42.00 USD", envOther: "7 units"} {
		r, err := wb.EthDecrypt(ctx, walletDecrypt(t, b, wallet, env, ethCtx))
		if err != nil || string(r.Plaintext) != want {
			t.Errorf("b: EthDecrypt(%s…) = %v, %v; want %q", env[:12], r, err, want)
		}
	}

	a.Config.FIPS = false
	a.Restart()
	r, err := a.NewClient("").EthDecrypt(ctx, req)
	if err != nil || string(r.Plaintext) != "42.00 USD" {
		t.Errorf("a restarted without --fips: EthDecrypt(the refused request) = %v, %v; want the plaintext", r, err)
	}
}
