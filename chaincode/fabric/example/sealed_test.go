package example_test

import (
	"context"
	"strings"
	"testing"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"

	"github.com/keymesh/keymesh/chaincode/fabric"
	"github.com/keymesh/keymesh/chaincode/fabric/example"
	"github.com/keymesh/keymesh/chaincode/fabric/fabrictest"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
	"github.com/keymesh/keymesh/node/nodetest"
)

// TestFabric_ClientSealedAssetEndorsedWithoutKeys: under an AND policy an
// endorsing org whose node holds no key (here: no node at all) endorses a
// client-sealed create byte for byte like the key owner's peer; the
// granted reader opens the fields (issue 10 item 4).
func TestFabric_ClientSealedAssetEndorsedWithoutKeys(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ct, err := w.node.Admin.CreateToken(nodetest.Ctx(t), apiv1.CreateTokenRequest{Party: "token:org1-app"})
	if err != nil {
		t.Fatal(err)
	}
	w.node.Grant(t, "token:org1-app", []string{"encrypt"}, example.KeyAppraisedValue, example.KeyOwnerPII)
	app, err := client.New(w.node.URL, ct.Token)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := fabric.SealRecord(context.Background(), app, channel, chaincode, "asset9",
		example.SealedProperties{AppraisedValue: 400, Owner: example.Person{Name: "Carol", TaxID: canaryPII}})
	if err != nil {
		t.Fatal(err)
	}
	p := w.proposal(w.alice, "CreateAssetSealed", "asset9", "green", "7")
	p.Transient = map[string][]byte{example.TransientSealed: sealed}

	// Org2's endorser: its chaincode's keymesh client points nowhere.
	nowhere, err := fabric.New("127.0.0.1:1", "kmt_unused")
	if err != nil {
		t.Fatal(err)
	}
	cc2, err := contractapi.NewChaincode(example.NewContract(nowhere))
	if err != nil {
		t.Fatal(err)
	}
	resp1, ws1 := w.endorse(p)
	stub2 := fabrictest.NewStub(w.ledger, p)
	resp2 := cc2.Invoke(stub2)
	if resp1.Status != 200 || resp2.Status != 200 {
		t.Fatalf("CreateAssetSealed = %d %q / %d %q, want 200", resp1.Status, resp1.Message, resp2.Status, resp2.Message)
	}
	if string(ws1.Bytes()) != string(stub2.WriteSet().Bytes()) {
		t.Fatalf("endorsers disagree:\n%s\n%s", ws1.Bytes(), stub2.WriteSet().Bytes())
	}
	if strings.Contains(string(ws1.Bytes()), canaryPII) {
		t.Fatal("the write set holds a plaintext")
	}
	w.ledger.Commit(ws1)
	a, resp := readPrivate(t, w, w.alice, "asset9")
	if resp.Status != 200 || a.AppraisedValue != 400 || a.Owner.TaxID != canaryPII || a.OwnerOrg != "Org1MSP" {
		t.Fatalf("ReadAssetPrivate = %+v (%d %q)", a, resp.Status, resp.Message)
	}
}
