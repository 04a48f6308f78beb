package ethereum_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/keymesh/keymesh/chaincode/ethereum/example"
	"github.com/keymesh/keymesh/node/nodetest"
)

// TestEthersClient has a client no one here wrote sign the requests: the
// ethers v6 test in jstest/ (node --test) runs against a real node started
// here. It needs node and jstest/node_modules (npm ci in jstest/); without
// them it skips, and says so (TestMain), unless KEYMESH_REQUIRE_JSTEST=1
// (set by .ci/run, which installs them) makes that a failure.
func TestEthersClient(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: starts keymeshd and Node.js")
	}
	missing := func(what string) {
		jsMissing(t, what+"; run `npm ci` in chaincode/ethereum/jstest (Node 18+) to run the ethers wallet test")
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed")
	}
	dir, err := filepath.Abs("jstest")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ethers", "package.json")); err != nil {
		missing("jstest/node_modules has no ethers")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nd := nodetest.Start(t)
	url := nd.URL
	reader, stranger := mustKey(t), mustKey(t)
	appTok, err := example.Provision(ctx, nd.Admin, "dapp", example.Address(reader))
	if err != nil {
		t.Fatal(err)
	}
	const chainID, plaintext = 1337, "42.00 USD from ethers"
	aad := map[string]string{"chain_id": fmt.Sprint(chainID), "contract": "0x00000000000000000000000000000000000000aa", "field": "price"}
	env, _, err := nd.NewClient(appTok).EncryptValue(ctx, example.PriceKey, []byte(plaintext), aad, "")
	if err != nil {
		t.Fatal(err)
	}
	aadJSON, _ := json.Marshal(aad)

	cmd := exec.CommandContext(ctx, nodeBin, "--test", "eth-decrypt.test.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"KEYMESH_URL="+url,
		"KEYMESH_ETH_PRIVATE_KEY="+hexutil.Encode(crypto.FromECDSA(reader)),
		"KEYMESH_STRANGER_KEY="+hexutil.Encode(crypto.FromECDSA(stranger)),
		"KEYMESH_CHAIN_ID="+fmt.Sprint(chainID),
		"KEYMESH_CIPHERTEXT="+env,
		"KEYMESH_CONTEXT="+string(aadJSON),
		"KEYMESH_PLAINTEXT="+plaintext,
	)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test eth-decrypt.test.mjs: %v\n%s", err, out)
	}
	t.Logf("node --test:\n%s", out)
}
