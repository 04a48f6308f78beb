// Command asset-ccaas runs the keymesh asset-transfer contract as Fabric
// chaincode-as-a-service: a gRPC server the peer connects to.
//
// Environment:
//
//	CHAINCODE_SERVER_ADDRESS  listen address, e.g. 0.0.0.0:9999 (required)
//	CORE_CHAINCODE_ID_NAME    the package id from "peer lifecycle chaincode install" (required)
//	KEYMESH_ADDR              the keymesh node beside the peer (default 127.0.0.1:8420)
//	KEYMESH_TOKEN             a chaincode-role token (required)
//	KEYMESH_CA_FILE           CA bundle for the node's TLS certificate (optional)
//	KEYMESH_CHAINCODE_NAME    chaincode name bound into envelopes (optional; default: from each proposal)
//
// Do not let CORE_PEER_TLS_ENABLED=true leak into this environment unless
// the server's TLS files are configured too: contract-api then reads them
// and fails on empty paths. See ../../README.md for the whole deployment.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"

	"github.com/keymesh/keymesh/chaincode/fabric"
	"github.com/keymesh/keymesh/chaincode/fabric/example"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(); err != nil {
		log.Error("asset chaincode stopped", "err", err)
		os.Exit(1)
	}
}

func run() error {
	for _, v := range []string{"CHAINCODE_SERVER_ADDRESS", "CORE_CHAINCODE_ID_NAME"} {
		if os.Getenv(v) == "" {
			return fmt.Errorf("%s is not set (chaincode-as-a-service needs it)", v)
		}
	}
	km, err := fabric.NewFromEnv()
	if err != nil {
		return err
	}
	// Fail fast on a wrong KEYMESH_ADDR or KEYMESH_TOKEN, not at the
	// first transaction.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := km.Check(ctx); err != nil {
		return err
	}
	cc, err := contractapi.NewChaincode(example.NewContract(km))
	if err != nil {
		return fmt.Errorf("building the chaincode: %w", err)
	}
	return cc.Start()
}
