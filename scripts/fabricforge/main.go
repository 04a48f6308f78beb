// Command fabricforge makes, for scripts/fabric-e2e.sh, what a real Fabric
// network's tools do not:
//
//   - the forgery issue 10 was about: a signed proposal that names a real,
//     trusted creator certificate (public on the ledger) but is not signed
//     by its key — the standard base64 of the marshalled
//     peer.SignedProposal, the value of the X-Keymesh-Fabric-Proposal
//     header (-print proposal, the default), or the creator alone, the
//     value of X-Keymesh-Fabric-Creator (-print creator);
//
//   - a CRL, signed by an MSP's CA (cryptogen's ca/*-cert.pem and
//     ca/priv_sk), revoking a certificate (-print crl).
//
//     go run ./scripts/fabricforge -msp Org1MSP -cert signcerts/cert.pem -channel mychannel -chaincode asset
//     go run ./scripts/fabricforge -print crl -ca-cert ca/ca.org2.example.com-cert.pem -ca-key ca/priv_sk -cert user3.pem
//
// A keymesh node must refuse the forgery with 401 invalid_creator.
package main

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"time"

	"github.com/keymesh/keymesh/node/fabricid/fabricidtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fabricforge:", err)
		os.Exit(1)
	}
}

func run() error {
	what := flag.String("print", "proposal", "proposal, creator or crl")
	msp := flag.String("msp", "", "the creator's MSP id")
	cert := flag.String("cert", "", "the creator's (or, for -print crl, the revoked) PEM certificate file")
	channel := flag.String("channel", "mychannel", "channel")
	chaincode := flag.String("chaincode", "asset", "chaincode")
	caCert := flag.String("ca-cert", "", "-print crl: the CA certificate PEM file")
	caKey := flag.String("ca-key", "", "-print crl: the CA private key PEM file (PKCS #8)")
	flag.Parse()
	if *cert == "" {
		return errors.New("-cert is required")
	}
	pemBytes, err := os.ReadFile(*cert)
	if err != nil {
		return err
	}
	switch *what {
	case "crl":
		return printCRL(pemBytes, *caCert, *caKey)
	case "creator", "proposal":
	default:
		return fmt.Errorf("-print %q: want proposal, creator or crl", *what)
	}
	if *msp == "" {
		return errors.New("-msp is required")
	}
	creator := fabricidtest.Creator(*msp, pemBytes)
	if *what == "creator" {
		fmt.Println(base64.StdEncoding.EncodeToString(creator))
		return nil
	}
	spec := fabricidtest.ProposalSpec{Channel: *channel, Chaincode: *chaincode, Timestamp: time.Now(),
		Creator: creator, Args: [][]byte{[]byte("ReadAssetPrivate"), []byte("asset1")}}
	_, signed := fabricidtest.Unsigned(spec, nil)
	fmt.Println(base64.StdEncoding.EncodeToString(signed))
	return nil
}

func parsePEM(file, typ string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != typ {
		return nil, fmt.Errorf("%s: no PEM %s block", file, typ)
	}
	return blk.Bytes, nil
}

func printCRL(revokedPEM []byte, caCertFile, caKeyFile string) error {
	blk, _ := pem.Decode(revokedPEM)
	if blk == nil {
		return errors.New("-cert: no PEM block")
	}
	revoked, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return err
	}
	der, err := parsePEM(caCertFile, "CERTIFICATE")
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	kder, err := parsePEM(caKeyFile, "PRIVATE KEY")
	if err != nil {
		return err
	}
	k, err := x509.ParsePKCS8PrivateKey(kder)
	if err != nil {
		return err
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return errors.New("-ca-key: not a signing key")
	}
	now := time.Now()
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(now.Unix()), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(24 * time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: revoked.SerialNumber, RevocationTime: now.Add(-time.Minute)}},
	}, ca, signer)
	if err != nil {
		return err
	}
	return pem.Encode(os.Stdout, &pem.Block{Type: "X509 CRL", Bytes: crl})
}
