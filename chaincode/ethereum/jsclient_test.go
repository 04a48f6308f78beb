package ethereum_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/eth/ethconfig"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
	"github.com/ethereum/go-ethereum/node"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/keymesh/keymesh/chaincode/ethereum/example"
	"github.com/keymesh/keymesh/node/nodetest"
)

// TestJSClient runs the tests of the TypeScript client (clients/js, built
// with its own tsc) with Node's test runner, against a real keymesh node
// and go-ethereum's simulated backend, both started here on 127.0.0.1: the
// chain is served over HTTP JSON-RPC (simRPC) so that ethers deploys the
// OrderBook, places an order and reads its event as it would on any node.
// It needs node and clients/js/node_modules (npm ci in clients/js); without
// them it skips and says so (TestMain), unless KEYMESH_REQUIRE_JSTEST=1.
func TestJSClient(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: starts keymeshd and Node.js")
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		jsMissing(t, "node is not installed; install Node 18+ and run `npm ci` in clients/js to run the TypeScript client's tests")
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "clients", "js"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"ethers", "typescript"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", p, "package.json")); err != nil {
			jsMissing(t, "clients/js/node_modules has no "+p+"; run `npm ci` in clients/js to run the TypeScript client's tests")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	build := exec.CommandContext(ctx, nodeBin, filepath.Join("node_modules", "typescript", "bin", "tsc"), "-p", ".")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("tsc -p clients/js: %v\n%s", err, out)
	}

	nd := nodetest.Start(t)
	url := nd.URL
	reader, stranger, deployer := mustKey(t), mustKey(t), mustKey(t)
	admin := nd.Admin
	appTok, err := example.Provision(ctx, admin, "dapp", example.Address(reader))
	if err != nil {
		t.Fatal(err)
	}
	// The backend's own RPC, over a unix socket in the test's directory (no
	// port to pick); simRPC serves it over HTTP for ethers.
	ipc := filepath.Join(t.TempDir(), "sim.ipc")
	sim := simulated.NewBackend(types.GenesisAlloc{example.Address(deployer): {Balance: new(big.Int).Lsh(big.NewInt(1), 80)}},
		func(nc *node.Config, _ *ethconfig.Config) { nc.IPCPath = ipc })
	t.Cleanup(func() { _ = sim.Close() })
	rc, err := rpc.Dial(ipc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	rpcURL := simRPC(t, sim, rc)

	abiPath, err := filepath.Abs(filepath.Join("example", "OrderBook.abi"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, nodeBin, "--test", "--test-reporter=spec", "test/")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"KEYMESH_URL="+url,
		"KEYMESH_APP_TOKEN="+appTok,
		"KEYMESH_RPC_URL="+rpcURL,
		"KEYMESH_DEPLOYER_KEY="+hexutil.Encode(crypto.FromECDSA(deployer)),
		"KEYMESH_READER_KEY="+hexutil.Encode(crypto.FromECDSA(reader)),
		"KEYMESH_STRANGER_KEY="+hexutil.Encode(crypto.FromECDSA(stranger)),
		"KEYMESH_ORDERBOOK_ABI="+abiPath,
		"KEYMESH_ORDERBOOK_BIN="+filepath.Join(filepath.Dir(abiPath), "OrderBook.bin"),
	)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test clients/js/test: %v\n%s", err, out)
	}
	t.Logf("node --test:\n%s", out)
}

// simRPC serves the simulated backend's JSON-RPC over HTTP on 127.0.0.1
// (single and batch calls), and mines a block after each accepted
// eth_sendRawTransaction, as an automining dev chain would.
func simRPC(t *testing.T, sim *simulated.Backend, rc *rpc.Client) string {
	t.Helper()
	var mu sync.Mutex // one call at a time: Commit must follow its transaction
	type call struct {
		ID     json.RawMessage   `json:"id"`
		Method string            `json:"method"`
		Params []json.RawMessage `json:"params"`
	}
	type rpcErr struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    any    `json:"data,omitempty"`
	}
	type reply struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  json.RawMessage `json:"result,omitempty"`
		Error   *rpcErr         `json:"error,omitempty"`
	}
	do := func(ctx context.Context, c call) reply {
		mu.Lock()
		defer mu.Unlock()
		params := make([]any, len(c.Params))
		for i, p := range c.Params {
			params[i] = p
		}
		var res json.RawMessage
		if err := rc.CallContext(ctx, &res, c.Method, params...); err != nil {
			e := &rpcErr{Code: -32000, Message: err.Error()}
			var re rpc.Error
			if errors.As(err, &re) {
				e.Code = re.ErrorCode()
			}
			var de rpc.DataError
			if errors.As(err, &de) {
				e.Data = de.ErrorData()
			}
			return reply{JSONRPC: "2.0", ID: c.ID, Error: e}
		}
		if c.Method == "eth_sendRawTransaction" {
			sim.Commit()
		}
		if res == nil {
			res = json.RawMessage("null")
		}
		return reply{JSONRPC: "2.0", ID: c.ID, Result: res}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if b := bytes.TrimSpace(body); len(b) > 0 && b[0] == '[' {
			var calls []call
			if err := json.Unmarshal(b, &calls); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			out := make([]reply, len(calls))
			for i, c := range calls {
				out[i] = do(r.Context(), c)
			}
			_ = json.NewEncoder(w).Encode(out)
			return
		}
		var c call
		if err := json.Unmarshal(body, &c); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(do(r.Context(), c))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
