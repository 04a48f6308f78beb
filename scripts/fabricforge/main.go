// Command fabricforge builds the forgery that issue 10 was about, for
// scripts/fabric-e2e.sh: a Fabric signed proposal that names a real,
// trusted creator certificate (public on the ledger) but is not signed by
// its key. It prints the standard base64 of the marshalled
// peer.SignedProposal, the value of the X-Keymesh-Fabric-Proposal header.
//
//	go run ./scripts/fabricforge -msp Org1MSP -cert signcerts/cert.pem -channel mychannel -chaincode asset
//
// A keymesh node must refuse it with 401 invalid_creator.
package main

import (
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/keymesh/keymesh/node/fabricid/fabricidtest"
)

func main() {
	msp := flag.String("msp", "", "the creator's MSP id")
	cert := flag.String("cert", "", "the creator's PEM certificate file")
	channel := flag.String("channel", "mychannel", "channel")
	chaincode := flag.String("chaincode", "asset", "chaincode")
	what := flag.String("print", "proposal", "what to print: proposal (X-Keymesh-Fabric-Proposal) or creator (X-Keymesh-Fabric-Creator)")
	flag.Parse()
	if *msp == "" || *cert == "" {
		fmt.Fprintln(os.Stderr, "usage: fabricforge -msp MSPID -cert FILE [-channel C] [-chaincode N]")
		os.Exit(2)
	}
	pemBytes, err := os.ReadFile(*cert)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fabricforge:", err)
		os.Exit(1)
	}
	creator := fabricidtest.Creator(*msp, pemBytes)
	if *what == "creator" {
		fmt.Println(base64.StdEncoding.EncodeToString(creator))
		return
	}
	spec := fabricidtest.ProposalSpec{Channel: *channel, Chaincode: *chaincode, Timestamp: time.Now(),
		Creator: creator, Args: [][]byte{[]byte("ReadAssetPrivate"), []byte("asset1")}}
	_, signed := fabricidtest.Unsigned(spec, nil)
	fmt.Println(base64.StdEncoding.EncodeToString(signed))
}
