package event_test

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/policy"
)

// Example issues a grant event at one node and receives it at another.
func Example() {
	admin, _ := network.ParseKey("f735847699ac93f70a02ac85f5a4a45a8dd58789c02b931cf60dcee3753c0bb7")
	g := &network.Genesis{
		Network: "example-net",
		Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Orgs:    []network.GenesisOrg{{ID: "Org1MSP", AdminKeys: [][32]byte{admin}}},
	}
	_, nodeKey, _ := ed25519.GenerateKey(nil)

	// Issuing node: encode the payload with json.Marshal and sign.
	payload, _ := json.Marshal(policy.Grant{
		ID: "g-1", Key: "trade/price", Party: "org:Org2MSP", Ops: policy.OpsAll, Issuer: "node-1",
	})
	_, wire, err := event.Sign(nodeKey, event.Event{
		Network: g.ID(), Seq: 1, Lamport: 1, Time: time.Now(), Kind: event.KindGrant, Payload: payload,
	})
	if err != nil {
		panic(err)
	}

	// Receiving node: parse, check network and signature, decode.
	e, err := event.Parse(wire)
	if err != nil {
		panic(err)
	}
	if err := e.CheckNetwork(g.ID()); err != nil {
		panic(err)
	}
	if err := e.Verify(); err != nil {
		panic(err)
	}
	// … here the caller checks that e.Issuer is registered and may grant.
	grant, err := event.DecodeGrant(e.Payload)
	if err != nil {
		panic(err)
	}
	fmt.Println(e.Kind, grant.Key, grant.Party, grant.Ops)
	// Output: grant trade/price org:Org2MSP encrypt,decrypt
}
