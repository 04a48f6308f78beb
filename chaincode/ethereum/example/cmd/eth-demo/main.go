// Command eth-demo runs keymesh's Ethereum example (package example) against
// a real chain and a real keymesh node: it funds a fresh deployer from the
// chain's unlocked dev account (geth --dev), provisions the node as its
// operator, then deploys OrderBook, places an order with an encrypted price
// and counterparty, reads the event back, decrypts it for a granted wallet
// and shows a stranger's wallet refused. With -js it then runs the
// OrderBook tests of the TypeScript client (clients/js, built) against the
// same chain and node, as a dApp back end with ethers v6 would.
// scripts/eth-demo.sh starts geth and keymeshd and runs it.
package main

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi/bind/v2"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/keymesh/keymesh/chaincode/ethereum/example"
	"github.com/keymesh/keymesh/node/client"
)

func main() {
	rpcURL := flag.String("rpc", "http://127.0.0.1:8545", "the chain's JSON-RPC `URL` (geth --dev)")
	addr := flag.String("keymesh", "127.0.0.1:8420", "the keymesh node's `address`")
	tokenFile := flag.String("admin-token-file", "", "`file` holding the node's admin token (keymeshd --dev writes <data>/admin.token)")
	timeout := flag.Duration("timeout", 2*time.Minute, "give up after this long")
	jsDir := flag.String("js", "", "also run the TypeScript client's OrderBook tests from this `directory` (clients/js, built, with node_modules)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *rpcURL, *addr, *tokenFile, *jsDir); err != nil {
		slog.Error("eth-demo failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, rpcURL, addr, tokenFile, jsDir string) error {
	if tokenFile == "" {
		return errors.New("-admin-token-file is required")
	}
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return fmt.Errorf("reading the admin token: %w", err)
	}
	admin, err := client.New(addr, strings.TrimSpace(string(tok)))
	if err != nil {
		return err
	}
	wallet, err := client.New(addr, "")
	if err != nil {
		return err
	}
	ec, err := ethclient.DialContext(ctx, rpcURL)
	if err != nil {
		return fmt.Errorf("dialing %s: %w", rpcURL, err)
	}
	defer ec.Close()
	chainID, err := ec.ChainID(ctx)
	if err != nil {
		return fmt.Errorf("reading the chain id: %w", err)
	}

	deployer, reader, stranger := mustKey(), mustKey(), mustKey()
	if err := fund(ctx, ec, example.Address(deployer)); err != nil {
		return err
	}
	appTok, err := example.Provision(ctx, admin, fmt.Sprintf("eth-demo-%d", time.Now().Unix()), example.Address(reader))
	if err != nil {
		return err
	}
	app, err := client.New(addr, appTok)
	if err != nil {
		return err
	}
	chain := example.Chain{Backend: ec, ChainID: chainID, Sender: bind.NewKeyedTransactor(deployer, chainID)}
	if err := example.Run(ctx, chain, app, wallet, reader, stranger, os.Stdout); err != nil {
		return err
	}
	if jsDir == "" {
		return nil
	}
	return runJS(ctx, ec, admin, rpcURL, "http://"+addr, jsDir)
}

// runJS runs clients/js/test/orderbook.test.mjs with Node against the chain
// and the node, with a freshly funded deployer, a fresh app token and a
// fresh granted reader.
func runJS(ctx context.Context, ec *ethclient.Client, admin *client.Client, rpcURL, nodeURL, dir string) error {
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return errors.New("-js needs node (Node.js 18+) on PATH")
	}
	deployer, reader, stranger := mustKey(), mustKey(), mustKey()
	if err := fund(ctx, ec, example.Address(deployer)); err != nil {
		return err
	}
	appTok, err := example.Provision(ctx, admin, fmt.Sprintf("eth-demo-js-%d", time.Now().Unix()), example.Address(reader))
	if err != nil {
		return err
	}
	abiPath, err := filepath.Abs(filepath.Join("chaincode", "ethereum", "example", "OrderBook.abi"))
	if err != nil {
		return err
	}
	key := func(k *ecdsa.PrivateKey) string { return hexutil.Encode(crypto.FromECDSA(k)) }
	cmd := exec.CommandContext(ctx, nodeBin, "--test", "--test-reporter=spec", filepath.Join("test", "orderbook.test.mjs"))
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(),
		"KEYMESH_URL="+nodeURL,
		"KEYMESH_APP_TOKEN="+appTok,
		"KEYMESH_RPC_URL="+rpcURL,
		"KEYMESH_DEPLOYER_KEY="+key(deployer),
		"KEYMESH_READER_KEY="+key(reader),
		"KEYMESH_STRANGER_KEY="+key(stranger),
		"KEYMESH_ORDERBOOK_ABI="+abiPath,
		"KEYMESH_ORDERBOOK_BIN="+filepath.Join(filepath.Dir(abiPath), "OrderBook.bin"),
	)
	cmd.WaitDelay = 5 * time.Second
	fmt.Println("running the TypeScript client's OrderBook tests (clients/js) against this chain and node")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("node --test clients/js/test/orderbook.test.mjs: %w", err)
	}
	return nil
}

func mustKey() *ecdsa.PrivateKey {
	k, err := crypto.GenerateKey()
	if err != nil {
		panic(err)
	}
	return k
}

// fund sends 10 ether to to from the node's first (unlocked) account and
// waits until it arrives.
func fund(ctx context.Context, ec *ethclient.Client, to common.Address) error {
	var accounts []common.Address
	if err := ec.Client().CallContext(ctx, &accounts, "eth_accounts"); err != nil || len(accounts) == 0 {
		return fmt.Errorf("the chain has no unlocked dev account (is it geth --dev?): %v", err)
	}
	value := new(big.Int).Mul(big.NewInt(10), big.NewInt(1e18))
	var hash common.Hash
	tx := map[string]any{"from": accounts[0], "to": to, "value": (*hexutil.Big)(value)}
	if err := ec.Client().CallContext(ctx, &hash, "eth_sendTransaction", tx); err != nil {
		return fmt.Errorf("funding the deployer: %w", err)
	}
	if _, err := bind.WaitMined(ctx, ec, hash); err != nil {
		return fmt.Errorf("funding the deployer: %w", err)
	}
	fmt.Printf("funded deployer %s from dev account %s\n", to.Hex(), accounts[0].Hex())
	return nil
}
