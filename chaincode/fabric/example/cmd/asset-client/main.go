// Command asset-client is a sketch of an application that uses the keymesh
// asset-transfer contract through the Fabric Gateway
// (github.com/hyperledger/fabric-gateway). Plaintext travels only in the
// proposal's transient map, which the peer hands to the chaincode but never
// writes to the ledger; the chaincode has it encrypted by the keymesh node
// before it is written.
//
//	asset-client -gateway peer0.org1.example.com:7051 -tls-ca tlsca.pem \
//	  -msp Org1MSP -cert user1-cert.pem -key user1-key.pem \
//	  -channel mychannel -chaincode asset create asset1
//	asset-client … read asset1            # public fields: anyone on the channel
//	asset-client … read-private asset1    # private fields: needs a keymesh grant
//
// The signing key must be an ECDSA key in PKCS#8 PEM, as Fabric CA and
// cryptogen write them.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hyperledger/fabric-gateway/pkg/client"
	"github.com/hyperledger/fabric-gateway/pkg/identity"
	"github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/keymesh/keymesh/chaincode/fabric"
	"github.com/keymesh/keymesh/chaincode/fabric/example"
	kmclient "github.com/keymesh/keymesh/node/client"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "asset-client:", err)
		// The gateway puts each endorser's answer in the status details.
		for _, d := range status.Convert(err).Details() {
			if ed, ok := d.(*gateway.ErrorDetail); ok {
				fmt.Fprintf(os.Stderr, "  %s (%s): %s\n", ed.GetAddress(), ed.GetMspId(), ed.GetMessage())
			}
		}
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("asset-client", flag.ContinueOnError)
	gateway := fs.String("gateway", "localhost:7051", "peer gateway `address`")
	tlsCA := fs.String("tls-ca", "", "PEM `file` of the peer's TLS CA (required)")
	serverName := fs.String("tls-server-name", "", "TLS server name override")
	mspID := fs.String("msp", "Org1MSP", "client's MSP id")
	certFile := fs.String("cert", "", "client certificate PEM `file` (required)")
	keyFile := fs.String("key", "", "client private key PEM `file` (required)")
	channel := fs.String("channel", "mychannel", "channel")
	chaincode := fs.String("chaincode", "asset", "chaincode name")
	endorsers := fs.String("endorsers", "", "comma-separated MSP ids whose peers endorse (default: the gateway picks them from the endorsement policy)")
	kmAddr := fs.String("keymesh-addr", "127.0.0.1:8420", "create-sealed: the client's own org's keymesh node")
	kmToken := fs.String("keymesh-token", os.Getenv("KEYMESH_TOKEN"), "create-sealed: a client token with encrypt on the asset keys (default $KEYMESH_TOKEN)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *tlsCA == "" || *certFile == "" || *keyFile == "" || fs.NArg() < 2 {
		return errors.New("usage: asset-client -tls-ca F -cert F -key F [flags] create|create-sealed|read|read-private|transfer ID [NEW-OWNER-ORG]")
	}
	endorse := endorseOptions(*endorsers)

	conn, err := dial(*gateway, *tlsCA, *serverName)
	if err != nil {
		return err
	}
	defer conn.Close()
	id, sign, err := signer(*mspID, *certFile, *keyFile)
	if err != nil {
		return err
	}
	gw, err := client.Connect(id, client.WithSign(sign), client.WithClientConnection(conn),
		client.WithEvaluateTimeout(10*time.Second), client.WithEndorseTimeout(30*time.Second),
		client.WithSubmitTimeout(10*time.Second), client.WithCommitStatusTimeout(time.Minute))
	if err != nil {
		return fmt.Errorf("connecting to the gateway: %w", err)
	}
	defer gw.Close()
	contract := gw.GetNetwork(*channel).GetContract(*chaincode)

	cmd, assetID := fs.Arg(0), fs.Arg(1)
	switch cmd {
	case "create":
		// The private fields go in the transient map, never in the arguments.
		props, err := json.Marshal(example.AssetProperties{
			AppraisedValue: 300,
			Owner:          example.Person{Name: "Alice", Email: "alice@example.com", TaxID: "123-45-6789"},
		})
		if err != nil {
			return err
		}
		_, err = contract.Submit("CreateAsset", append([]client.ProposalOption{
			client.WithArguments(assetID, "blue", "5"),
			client.WithTransient(map[string][]byte{example.TransientAssetProperties: props})}, endorse...)...)
		if err != nil {
			return fmt.Errorf("CreateAsset: %w", err)
		}
		fmt.Println("created", assetID)
	case "create-sealed":
		// The client-sealed pattern: seal through this org's keymesh node
		// (random mode), pass envelopes; endorsers need no key.
		if *kmToken == "" {
			return errors.New("create-sealed needs -keymesh-token (or KEYMESH_TOKEN)")
		}
		api, err := kmclient.New(*kmAddr, *kmToken)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sealed, err := fabric.SealRecord(ctx, api, *channel, *chaincode, assetID, example.SealedProperties{
			AppraisedValue: 400,
			Owner:          example.Person{Name: "Carol", Email: "carol@example.com", TaxID: "987-65-4321"},
		})
		if err != nil {
			return err
		}
		_, err = contract.Submit("CreateAssetSealed", append([]client.ProposalOption{
			client.WithArguments(assetID, "green", "7"),
			client.WithTransient(map[string][]byte{example.TransientSealed: sealed})}, endorse...)...)
		if err != nil {
			return fmt.Errorf("CreateAssetSealed: %w", err)
		}
		fmt.Println("created", assetID, "(client-sealed)")
	case "read", "read-private":
		fn := "ReadAsset"
		if cmd == "read-private" {
			fn = "ReadAssetPrivate" // fails with "not granted" unless keymesh grants this client
		}
		out, err := contract.EvaluateTransaction(fn, assetID)
		if err != nil {
			return fmt.Errorf("%s: %w", fn, err)
		}
		fmt.Println(string(out))
	case "transfer":
		if fs.NArg() < 3 {
			return errors.New("transfer needs ID and NEW-OWNER-ORG")
		}
		owner, err := json.Marshal(example.Person{Name: "Bob", Email: "bob@example.com"})
		if err != nil {
			return err
		}
		if _, err := contract.Submit("TransferAsset", append([]client.ProposalOption{
			client.WithArguments(assetID, fs.Arg(2)),
			client.WithTransient(map[string][]byte{example.TransientNewOwner: owner})}, endorse...)...); err != nil {
			return fmt.Errorf("TransferAsset: %w", err)
		}
		fmt.Println("transferred", assetID, "to", fs.Arg(2))
	default:
		return fmt.Errorf("unknown command %q", cmd)
	}
	return nil
}

// endorseOptions returns the proposal options that fix the endorsing
// organisations: none without -endorsers, so that the gateway chooses the
// endorsing peers from the chaincode's endorsement policy (e.g.
// AND('Org1MSP.peer','Org2MSP.peer')); fixing them to the caller's org
// fails such a policy after ordering (ENDORSEMENT_POLICY_FAILURE).
func endorseOptions(endorsers string) []client.ProposalOption {
	var orgs []string
	for o := range strings.SplitSeq(endorsers, ",") {
		if o = strings.TrimSpace(o); o != "" {
			orgs = append(orgs, o)
		}
	}
	if len(orgs) == 0 {
		return nil
	}
	return []client.ProposalOption{client.WithEndorsingOrganizations(orgs...)}
}

func dial(addr, caFile, serverName string) (*grpc.ClientConn, error) {
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading the TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	creds := credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("gateway connection: %w", err)
	}
	return conn, nil
}

func signer(mspID, certFile, keyFile string) (*identity.X509Identity, identity.Sign, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the certificate: %w", err)
	}
	cert, err := identity.CertificateFromPEM(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing the certificate: %w", err)
	}
	id, err := identity.NewX509Identity(mspID, cert)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the private key: %w", err)
	}
	key, err := identity.PrivateKeyFromPEM(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing the private key: %w", err)
	}
	sign, err := identity.NewPrivateKeySign(key)
	if err != nil {
		return nil, nil, err
	}
	return id, sign, nil
}
