package example_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"

	"github.com/keymesh/keymesh/chaincode/fabric"
	"github.com/keymesh/keymesh/chaincode/fabric/example"
	"github.com/keymesh/keymesh/chaincode/fabric/fabrictest"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/nodetest"
)

// endorser is one org's endorsing peer: the chaincode, configured with a
// chaincode token of that org's keymesh node.
type endorser struct {
	org string
	cc  *contractapi.ContractChaincode
}

func newEndorser(t *testing.T, n *nodetest.Node) *endorser {
	t.Helper()
	km, err := fabric.New(n.URL, n.ChaincodeToken(t, "cc-asset", channel, chaincode, "Org1MSP", "Org2MSP"))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := contractapi.NewChaincode(example.NewContract(km))
	if err != nil {
		t.Fatalf("NewChaincode() = %v", err)
	}
	return &endorser{org: n.Org, cc: cc}
}

// endorse simulates p against the committed state of ledger.
func (e *endorser) endorse(ledger *fabrictest.Ledger, p fabrictest.Proposal) (*peer.Response, fabrictest.WriteSet) {
	stub := fabrictest.NewStub(ledger, p)
	resp := e.cc.Invoke(stub)
	return resp, stub.WriteSet()
}

// endorseAll runs p on every endorser, requires success and byte-identical
// write sets, and returns the write set.
func endorseAll(t *testing.T, what string, ledger *fabrictest.Ledger, p fabrictest.Proposal, es ...*endorser) fabrictest.WriteSet {
	t.Helper()
	var first fabrictest.WriteSet
	for i, e := range es {
		resp, ws := e.endorse(ledger, p)
		if resp.Status != 200 {
			t.Fatalf("%s at %s's endorser = %d %q, want 200", what, e.org, resp.Status, resp.Message)
		}
		if i == 0 {
			first = ws
			continue
		}
		if !bytes.Equal(first.Bytes(), ws.Bytes()) {
			t.Fatalf("%s: the write sets of %s and %s differ:\n%s\n%s", what, es[0].org, e.org, first.Bytes(), ws.Bytes())
		}
	}
	return first
}

// wantVersion requires each field of the stored JSON to be an envelope
// sealed under version v.
func wantVersion(t *testing.T, what string, stored []byte, v uint32, fields ...string) {
	t.Helper()
	for _, f := range fields {
		if got := envelopeOf(t, stored, f).Version; got != v {
			t.Errorf("%s: %s sealed under version %d, want %d", what, f, got, v)
		}
	}
}

// TestEndorsersAgreeAcrossNodes: Org1's and Org2's endorsing peers each
// call their own org's keymesh node, which hold the same key versions
// through the mesh (Org1 owns the keys and grants org:Org2MSP). One
// proposal endorsed at both yields byte-identical write sets, world state
// and private data alike; after a rotation at Org1 that activates after
// the proposal's timestamp — and has activated by the time the proposal is
// endorsed again, at both nodes — it still does, under version 1, while a
// proposal made after the activation gets version 2 at both.
func TestEndorsersAgreeAcrossNodes(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a two-organisation mesh of nodes")
	}
	org1CA, org2CA := nodetest.FabricCA(t, "Org1MSP"), nodetest.FabricCA(t, "Org2MSP")
	nodes := nodetest.StartMesh(t, []string{"Org1MSP", "Org2MSP"}, nodetest.WithFabricCAs(org1CA, org2CA))
	n1, n2 := nodes[0], nodes[1]
	n1.CreateKeys(t, keys...)
	n1.Grant(t, "org:Org1MSP", []string{"encrypt", "decrypt"}, keys...)
	n1.Grant(t, "org:Org2MSP", []string{"encrypt", "decrypt"}, keys...)
	probe1, probe2 := n1.Client(t, "token:probe"), n2.Client(t, "token:probe")
	n1.Grant(t, "token:probe", []string{"encrypt"}, keys...)
	v1 := n2.WaitVersion(t, 1, keys...)
	for _, k := range keys {
		if v1[k].ActivateAt.IsZero() {
			t.Fatalf("Org2's node: %s version 1 has no activation time", k)
		}
	}
	e1, e2 := newEndorser(t, n1), newEndorser(t, n2)
	alice := nodetest.FabricClient(t, org1CA, "alice")
	proposal := func(fn string, args ...string) fabrictest.Proposal {
		return fabrictest.NewSignedProposal(channel, chaincode, alice, fn, args...)
	}

	// World state: CreateAsset against an empty ledger.
	empty := fabrictest.NewLedger()
	create := proposal("CreateAsset", "asset1", "blue", "5").WithTransient(example.TransientAssetProperties, props(300, "Alice"))
	wsCreate := endorseAll(t, "CreateAsset", empty, create, e1, e2)
	if len(wsCreate.Public) != 1 || wsCreate.Public[0].Key != "asset1" {
		t.Fatalf("CreateAsset write set = %s, want one write of asset1", wsCreate.Bytes())
	}
	if bytes.Contains(wsCreate.Bytes(), []byte(canaryPII)) {
		t.Fatalf("CreateAsset write set holds plaintext: %s", wsCreate.Bytes())
	}
	wantVersion(t, "CreateAsset", wsCreate.Public[0].Value, 1, "appraisedValue", "owner")

	// Private data: SetPurchaseTerms once asset1 is committed.
	withAsset := fabrictest.NewLedger()
	withAsset.Commit(wsCreate)
	terms := proposal("SetPurchaseTerms", collection, "asset1").WithTransient(example.TransientTerms, example.PurchaseTerms{Price: 42, Conditions: canaryTerm})
	wsTerms := endorseAll(t, "SetPurchaseTerms", withAsset, terms, e1, e2)
	if pd := wsTerms.Private[collection]; len(pd) != 1 || pd[0].Key != "asset1" || bytes.Contains(pd[0].Value, []byte(canaryTerm)) {
		t.Fatalf("SetPurchaseTerms write set = %s, want one encrypted private write of asset1", wsTerms.Bytes())
	}
	wantVersion(t, "SetPurchaseTerms", wsTerms.Private[collection][0].Value, 1, "price", "conditions")

	// Rotate at Org1: version 2 activates after the proposals' timestamps.
	// Wait until Org2's node holds it, with the same activation time, and
	// until it is active.
	const activateIn = 1500 * time.Millisecond
	var activateAt time.Time
	for _, k := range keys {
		ki, err := n1.Admin.RotateKey(nodetest.Ctx(t), k, apiv1.RotateKeyRequest{ActivateIn: activateIn.String()})
		if err != nil {
			t.Fatalf("RotateKey(%s) = %v", k, err)
		}
		if ki.LatestVersion != 2 || len(ki.Versions) != 2 {
			t.Fatalf("RotateKey(%s) = latest version %d, want 2", k, ki.LatestVersion)
		}
		at := ki.Versions[1].ActivateAt
		if !at.After(create.Timestamp) || !at.After(terms.Timestamp) {
			t.Fatalf("%s version 2 activates at %s, not after the proposals' timestamps", k, at)
		}
		if at.After(activateAt) {
			activateAt = at
		}
	}
	v2 := n2.WaitVersion(t, 2, keys...)
	for _, k := range keys {
		if k1, _ := n1.Admin.GetKey(nodetest.Ctx(t), k); k1 == nil || len(k1.Versions) < 2 || !v2[k].ActivateAt.Equal(k1.Versions[1].ActivateAt) {
			t.Fatalf("%s version 2 at Org2's node activates at %s, not as at Org1's", k, v2[k].ActivateAt)
		}
	}
	waitActive(t, probe1, 2, keys...)
	waitActive(t, probe2, 2, keys...)

	// The same proposals, endorsed again at both nodes (Org2 first), give
	// the same bytes as before the rotation.
	for _, c := range []struct {
		what   string
		ledger *fabrictest.Ledger
		p      fabrictest.Proposal
		want   fabrictest.WriteSet
	}{
		{"CreateAsset after the rotation", empty, create, wsCreate},
		{"SetPurchaseTerms after the rotation", withAsset, terms, wsTerms},
	} {
		ws := endorseAll(t, c.what, c.ledger, c.p, e2, e1)
		if !bytes.Equal(ws.Bytes(), c.want.Bytes()) {
			t.Fatalf("%s: write set differs from before the rotation:\n%s\n%s", c.what, ws.Bytes(), c.want.Bytes())
		}
	}

	// Proposals made now, after the activation, use version 2 at both.
	create2 := proposal("CreateAsset", "asset2", "red", "7").WithTransient(example.TransientAssetProperties, props(400, "Alan"))
	if !create2.Timestamp.After(activateAt) {
		t.Fatalf("proposal timestamp %s is not after the activation %s", create2.Timestamp, activateAt)
	}
	ws := endorseAll(t, "CreateAsset after the activation", empty, create2, e1, e2)
	wantVersion(t, "CreateAsset after the activation", ws.Public[0].Value, 2, "appraisedValue", "owner")
	terms2 := proposal("SetPurchaseTerms", collection, "asset1").WithTransient(example.TransientTerms, example.PurchaseTerms{Price: 43, Conditions: canaryTerm})
	ws = endorseAll(t, "SetPurchaseTerms after the activation", withAsset, terms2, e1, e2)
	wantVersion(t, "SetPurchaseTerms after the activation", ws.Private[collection][0].Value, 2, "price", "conditions")

	// What either node sealed, the other opens: Org2's endorser reads the
	// asset and terms Org1's endorser wrote.
	withAsset.Commit(ws)
	for _, c := range []struct {
		p    fabrictest.Proposal
		want string
	}{
		{proposal("ReadAssetPrivate", "asset1"), canaryPII},
		{proposal("ReadPurchaseTerms", collection, "asset1"), canaryTerm},
	} {
		resp, _ := e2.endorse(withAsset, c.p)
		if resp.Status != 200 || !bytes.Contains(resp.Payload, []byte(c.want)) {
			t.Fatalf("%s at Org2's endorser = %d %q", c.p.Args[0], resp.Status, resp.Message)
		}
	}
}
