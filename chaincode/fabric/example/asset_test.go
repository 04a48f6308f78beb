package example_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"

	"github.com/keymesh/keymesh/chaincode/fabric"
	"github.com/keymesh/keymesh/chaincode/fabric/example"
	"github.com/keymesh/keymesh/chaincode/fabric/fabrictest"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
	"github.com/keymesh/keymesh/node/fabricid/fabricidtest"
	"github.com/keymesh/keymesh/node/nodetest"
	"github.com/keymesh/keymesh/vault/envelope"
)

const (
	channel    = "mychannel"
	chaincode  = "asset"
	collection = "Org1MSPPrivateCollection"
	canaryPII  = "CANARY-PII-5c1e0b"
	canaryTerm = "CANARY-TERMS-91aa2f"
)

var keys = []string{example.KeyAppraisedValue, example.KeyOwnerPII, example.KeyTerms}

// world is one channel: a ledger, the chaincode as every endorsing peer
// runs it, the custodian keymesh node of Org1MSP (which trusts the CAs of
// Org1MSP and Org2MSP), and client identities.
type world struct {
	node              *nodetest.Node
	cc                *contractapi.ContractChaincode
	ledger            *fabrictest.Ledger
	alice             *fabricidtest.Identity // Org1MSP
	bob, carol        *fabricidtest.Identity // Org2MSP
	mallory, stranger *fabricidtest.Identity // an Org1MSP cert from an unknown CA; an Org3MSP client
}

func newWorld(t *testing.T) *world {
	t.Helper()
	org1, org2 := nodetest.FabricCA(t, "Org1MSP"), nodetest.FabricCA(t, "Org2MSP")
	n := nodetest.Start(t, nodetest.WithOrg("Org1MSP"), nodetest.WithFabricCAs(org1, org2))
	n.CreateKeys(t, keys...)
	n.Grant(t, "org:Org1MSP", []string{"encrypt", "decrypt"}, keys...)
	km, err := fabric.New(n.URL, n.ChaincodeToken(t, "cc-asset", channel, chaincode, "Org1MSP", "Org2MSP"))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := contractapi.NewChaincode(example.NewContract(km))
	if err != nil {
		t.Fatalf("NewChaincode() = %v", err)
	}
	return &world{
		node: n, cc: cc, ledger: fabrictest.NewLedger(),
		alice: nodetest.FabricClient(t, org1, "alice"),
		bob:   nodetest.FabricClient(t, org2, "bob"), carol: nodetest.FabricClient(t, org2, "carol"),
		mallory:  nodetest.FabricClient(t, nodetest.FabricCA(t, "Org1MSP"), "alice"),
		stranger: nodetest.FabricClient(t, nodetest.FabricCA(t, "Org3MSP"), "eve"),
	}
}

func props(value int, name string) example.AssetProperties {
	return example.AssetProperties{AppraisedValue: value, Owner: example.Person{Name: name, Email: name + "@example.com", TaxID: canaryPII}}
}

func (w *world) proposal(id *fabricidtest.Identity, fn string, args ...string) fabrictest.Proposal {
	return fabrictest.NewSignedProposal(channel, chaincode, id, fn, args...)
}

// endorse runs p on one endorsing peer.
func (w *world) endorse(p fabrictest.Proposal) (*peer.Response, fabrictest.WriteSet) {
	stub := fabrictest.NewStub(w.ledger, p)
	resp := w.cc.Invoke(stub)
	return resp, stub.WriteSet()
}

// submit endorses p, requires success, and commits the write set.
func (w *world) submit(t *testing.T, p fabrictest.Proposal) []byte {
	t.Helper()
	resp, ws := w.endorse(p)
	if resp.Status != 200 {
		t.Fatalf("%s = %d %q, want 200", p.Args[0], resp.Status, resp.Message)
	}
	w.ledger.Commit(ws)
	return resp.Payload
}

// query evaluates p and returns the response.
func (w *world) query(p fabrictest.Proposal) *peer.Response {
	resp, _ := w.endorse(p)
	return resp
}

func (w *world) create(t *testing.T, id string, value int, name string) {
	t.Helper()
	w.submit(t, w.proposal(w.alice, "CreateAsset", id, "blue", "5").WithTransient(example.TransientAssetProperties, props(value, name)))
}

func wantRefused(t *testing.T, what string, resp *peer.Response, substr string) {
	t.Helper()
	if resp.Status == 200 || !strings.Contains(resp.Message, substr) {
		t.Fatalf("%s = %d %q, want a failure mentioning %q", what, resp.Status, resp.Message, substr)
	}
	t.Logf("%s: refused: %s", what, resp.Message)
}

func readPrivate(t *testing.T, w *world, who *fabricidtest.Identity, id string) (*example.Asset, *peer.Response) {
	t.Helper()
	resp := w.query(w.proposal(who, "ReadAssetPrivate", id))
	if resp.Status != 200 {
		return nil, resp
	}
	var a example.Asset
	if err := json.Unmarshal(resp.Payload, &a); err != nil {
		t.Fatal(err)
	}
	return &a, resp
}

// envelopeOf returns the envelope stored in field of the world-state JSON.
func envelopeOf(t *testing.T, stored []byte, field string) *envelope.Envelope {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(stored, &m); err != nil {
		t.Fatal(err)
	}
	var s string
	if err := json.Unmarshal(m[field], &s); err != nil {
		t.Fatalf("field %q = %s, want an envelope string", field, m[field])
	}
	env, err := envelope.ParseText(s)
	if err != nil {
		t.Fatalf("field %q: ParseText() = %v", field, err)
	}
	return env
}

// envelopeText matches an envelope in its text form.
var envelopeText = regexp.MustCompile(`km1:[A-Za-z0-9_-]*`)

// outsideEnvelopes is b without the envelopes in it: where a short
// plaintext ("300") must not appear. An envelope's base64 may hold any
// short string by chance (one in ~1,700 write sets held "300").
func outsideEnvelopes(b []byte) []byte { return envelopeText.ReplaceAll(b, []byte("km1:")) }

// TestEndorsersAgree runs one proposal on two endorsing peers and requires
// byte-identical write sets, also when a key rotation activates between
// the two simulations (its activation time is after the transaction
// timestamp). Both endorsers call the same custodian node;
// TestEndorsersAgreeAcrossNodes (mesh_test.go) gives each its own org's.
func TestEndorsersAgree(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p := w.proposal(w.alice, "CreateAsset", "asset1", "blue", "5").WithTransient(example.TransientAssetProperties, props(300, "Alice"))

	r1, ws1 := w.endorse(p)
	if r1.Status != 200 {
		t.Fatalf("endorser 1: CreateAsset = %d %q", r1.Status, r1.Message)
	}
	// Rotate every key; the new versions activate after p's timestamp.
	probe := w.node.Client(t, "token:probe")
	w.node.Grant(t, "token:probe", []string{"encrypt"}, keys...)
	for _, k := range keys {
		if _, err := w.node.Admin.RotateKey(nodetest.Ctx(t), k, apiv1.RotateKeyRequest{ActivateIn: "200ms"}); err != nil {
			t.Fatalf("RotateKey(%s) = %v", k, err)
		}
	}
	waitActive(t, probe, 2, keys...)
	r2, ws2 := w.endorse(p)
	if r2.Status != 200 {
		t.Fatalf("endorser 2: CreateAsset = %d %q", r2.Status, r2.Message)
	}
	if !bytes.Equal(ws1.Bytes(), ws2.Bytes()) {
		t.Fatalf("write sets differ:\n%s\n%s", ws1.Bytes(), ws2.Bytes())
	}
	if len(ws1.Public) != 1 || ws1.Public[0].Key != "asset1" {
		t.Fatalf("write set = %s, want one write of asset1", ws1.Bytes())
	}
	stored := ws1.Public[0].Value
	if bytes.Contains(ws1.Bytes(), []byte(canaryPII)) || bytes.Contains(outsideEnvelopes(stored), []byte("Alice")) || bytes.Contains(outsideEnvelopes(stored), []byte("300")) {
		t.Fatalf("write set holds plaintext: %s", stored)
	}
	for _, f := range []string{"appraisedValue", "owner"} {
		if v := envelopeOf(t, stored, f).Version; v != 1 {
			t.Errorf("%s sealed under version %d, want 1 (newest active at the tx timestamp)", f, v)
		}
	}

	// A proposal made after the activation uses version 2, and its
	// endorsers agree as well.
	p2 := w.proposal(w.alice, "CreateAsset", "asset2", "red", "7").WithTransient(example.TransientAssetProperties, props(400, "Alan"))
	_, wsA := w.endorse(p2)
	_, wsB := w.endorse(p2)
	if !bytes.Equal(wsA.Bytes(), wsB.Bytes()) || len(wsA.Public) != 1 {
		t.Fatalf("write sets of the second proposal differ or are empty:\n%s\n%s", wsA.Bytes(), wsB.Bytes())
	}
	if v := envelopeOf(t, wsA.Public[0].Value, "appraisedValue").Version; v != 2 {
		t.Errorf("second proposal sealed under version %d, want 2", v)
	}

	// Another transaction with the same content yields other bytes (the
	// nonce derives from the transaction id).
	p3 := p
	p3.TxID = strings.Repeat("ab", 32)
	_, ws3 := w.endorse(p3)
	if bytes.Equal(ws1.Bytes(), ws3.Bytes()) {
		t.Error("two transactions with equal content produced identical envelopes")
	}

	w.ledger.Commit(ws1)
	a, resp := readPrivate(t, w, w.alice, "asset1")
	if a == nil {
		t.Fatalf("ReadAssetPrivate = %d %q", resp.Status, resp.Message)
	}
	if a.AppraisedValue != 300 || a.Owner.Name != "Alice" || a.Owner.TaxID != canaryPII || a.OwnerOrg != "Org1MSP" {
		t.Errorf("ReadAssetPrivate = %+v", a)
	}
}

// TestOrg2ReadsOnlyWhileGranted: org2's clients read the private fields
// only while a grant names their org or their identity, and values written
// after a revocation are refused to them.
func TestOrg2ReadsOnlyWhileGranted(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.create(t, "asset1", 300, "Alice")

	if resp := w.query(w.proposal(w.bob, "ReadAsset", "asset1")); resp.Status != 200 || !strings.Contains(string(resp.Payload), `"ownerOrg":"Org1MSP"`) {
		t.Fatalf("ReadAsset (public) by org2 = %d %q %s", resp.Status, resp.Message, resp.Payload)
	}
	_, resp := readPrivate(t, w, w.bob, "asset1")
	wantRefused(t, "ReadAssetPrivate by org2 before any grant", resp, "not granted")

	// Granted as an organisation.
	w.node.Grant(t, "org:Org2MSP", []string{"decrypt"}, example.KeyAppraisedValue, example.KeyOwnerPII)
	for _, who := range []*fabricidtest.Identity{w.bob, w.carol} {
		a, resp := readPrivate(t, w, who, "asset1")
		if a == nil || a.AppraisedValue != 300 || a.Owner.TaxID != canaryPII {
			t.Fatalf("ReadAssetPrivate by %s with org:Org2MSP granted = %+v, %d %q", who.Cert.Subject, a, resp.Status, resp.Message)
		}
	}
	w.node.Revoke(t, "org:Org2MSP", example.KeyAppraisedValue, example.KeyOwnerPII)
	_, resp = readPrivate(t, w, w.bob, "asset1")
	wantRefused(t, "ReadAssetPrivate by org2 after revoking org:Org2MSP", resp, "not granted")

	// Granted as one identity: bob, not carol.
	w.node.Grant(t, w.bob.Party(), []string{"decrypt"}, example.KeyAppraisedValue, example.KeyOwnerPII)
	if a, resp := readPrivate(t, w, w.bob, "asset1"); a == nil || a.AppraisedValue != 300 {
		t.Fatalf("ReadAssetPrivate by bob with %s granted = %d %q", w.bob.Party(), resp.Status, resp.Message)
	}
	_, resp = readPrivate(t, w, w.carol, "asset1")
	wantRefused(t, "ReadAssetPrivate by carol (not named)", resp, "not granted")

	// After the revocation, new values are refused to bob.
	w.node.Revoke(t, w.bob.Party(), example.KeyAppraisedValue, example.KeyOwnerPII)
	w.create(t, "asset2", 500, "Alice")
	_, resp = readPrivate(t, w, w.bob, "asset2")
	wantRefused(t, "ReadAssetPrivate by bob of a value written after the revoke", resp, "not granted")
	if a, resp := readPrivate(t, w, w.alice, "asset2"); a == nil || a.AppraisedValue != 500 {
		t.Fatalf("ReadAssetPrivate by alice = %d %q", resp.Status, resp.Message)
	}
}

// TestCreatorRefused: a creator whose certificate does not chain to a CA
// the node trusts for its MSP, or of an MSP the node does not know, can
// neither write nor read.
func TestCreatorRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.create(t, "asset1", 300, "Alice")
	for name, who := range map[string]*fabricidtest.Identity{"unknown CA": w.mallory, "unknown MSP": w.stranger} {
		resp, ws := w.endorse(w.proposal(who, "CreateAsset", "asset9", "blue", "5").WithTransient(example.TransientAssetProperties, props(1, "M")))
		wantRefused(t, "CreateAsset by a creator of an "+name, resp, "creator refused")
		if len(ws.Public) != 0 {
			t.Errorf("CreateAsset by a creator of an %s wrote %s", name, ws.Bytes())
		}
		_, resp = readPrivate(t, w, who, "asset1")
		wantRefused(t, "ReadAssetPrivate by a creator of an "+name, resp, "creator refused")
	}
}

// TestCiphertextMoved: an envelope copied to another asset, another field
// or another collection does not open.
func TestCiphertextMoved(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.create(t, "asset1", 300, "Alice")
	w.create(t, "asset2", 999, "Bea")
	a1, a2 := w.ledger.Get("asset1"), w.ledger.Get("asset2")

	field := func(stored []byte, f string) json.RawMessage {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(stored, &m); err != nil {
			t.Fatal(err)
		}
		return m[f]
	}
	with := func(stored []byte, f string, v json.RawMessage) []byte {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(stored, &m); err != nil {
			t.Fatal(err)
		}
		m[f] = v
		b, _ := json.Marshal(m)
		return b
	}

	// Into another asset, same field.
	w.ledger.Set("asset2", with(a2, "appraisedValue", field(a1, "appraisedValue")))
	_, resp := readPrivate(t, w, w.alice, "asset2")
	wantRefused(t, "ReadAssetPrivate of asset2 holding asset1's appraisedValue", resp, "decryption failed")
	w.ledger.Set("asset2", a2)
	if a, resp := readPrivate(t, w, w.alice, "asset2"); a == nil || a.AppraisedValue != 999 {
		t.Fatalf("ReadAssetPrivate of the restored asset2 = %d %q", resp.Status, resp.Message)
	}

	// Into another field of the same asset (other key).
	w.ledger.Set("asset1", with(a1, "owner", field(a1, "appraisedValue")))
	_, resp = readPrivate(t, w, w.alice, "asset1")
	wantRefused(t, "ReadAssetPrivate of asset1 with appraisedValue copied into owner", resp, "decryption failed")
	w.ledger.Set("asset1", a1)

	// Private data: between two fields under the same key, and from the
	// collection into another one.
	terms := example.PurchaseTerms{Price: 1234, Conditions: canaryTerm}
	w.submit(t, w.proposal(w.alice, "SetPurchaseTerms", collection, "asset1").WithTransient(example.TransientTerms, terms))
	pd := w.ledger.GetPrivate(collection, "asset1")
	if bytes.Contains(pd, []byte(canaryTerm)) || bytes.Contains(outsideEnvelopes(pd), []byte("1234")) {
		t.Fatalf("private data holds plaintext: %s", pd)
	}
	resp = w.query(w.proposal(w.alice, "ReadPurchaseTerms", collection, "asset1"))
	if resp.Status != 200 || !strings.Contains(string(resp.Payload), canaryTerm) {
		t.Fatalf("ReadPurchaseTerms = %d %q", resp.Status, resp.Message)
	}
	w.ledger.SetPrivate(collection, "asset1", with(pd, "conditions", field(pd, "price")))
	resp = w.query(w.proposal(w.alice, "ReadPurchaseTerms", collection, "asset1"))
	wantRefused(t, "ReadPurchaseTerms with price copied into conditions", resp, "decryption failed")
	w.ledger.SetPrivate("OtherCollection", "asset1", pd)
	resp = w.query(w.proposal(w.alice, "ReadPurchaseTerms", "OtherCollection", "asset1"))
	wantRefused(t, "ReadPurchaseTerms from another collection", resp, "decryption failed")
}

// TestPrivateDataAndTransfer: purchase terms in a collection (endorsers
// agree on the private write set; org2 is refused) and a transfer that
// re-encrypts the owner's data.
func TestPrivateDataAndTransfer(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.create(t, "asset1", 300, "Alice")

	p := w.proposal(w.alice, "SetPurchaseTerms", collection, "asset1").WithTransient(example.TransientTerms, example.PurchaseTerms{Price: 42, Conditions: canaryTerm})
	r1, ws1 := w.endorse(p)
	_, ws2 := w.endorse(p)
	if r1.Status != 200 || !bytes.Equal(ws1.Bytes(), ws2.Bytes()) || len(ws1.Private[collection]) != 1 {
		t.Fatalf("SetPurchaseTerms: %d %q; write sets equal %v:\n%s", r1.Status, r1.Message, bytes.Equal(ws1.Bytes(), ws2.Bytes()), ws1.Bytes())
	}
	w.ledger.Commit(ws1)
	wantRefused(t, "ReadPurchaseTerms by org2", w.query(w.proposal(w.bob, "ReadPurchaseTerms", collection, "asset1")), "not granted")

	resp := w.query(w.proposal(w.alice, "TransferAsset", "asset1", "Org2MSP"))
	wantRefused(t, "TransferAsset without the transient new_owner", resp, "new_owner")
	w.submit(t, w.proposal(w.alice, "TransferAsset", "asset1", "Org2MSP").WithTransient(example.TransientNewOwner, example.Person{Name: "Bob", TaxID: canaryPII}))
	a, resp := readPrivate(t, w, w.alice, "asset1")
	if a == nil || a.OwnerOrg != "Org2MSP" || a.Owner.Name != "Bob" || a.AppraisedValue != 300 {
		t.Fatalf("after transfer ReadAssetPrivate = %+v (%d %q)", a, resp.Status, resp.Message)
	}
	wantRefused(t, "TransferAsset by the former owner org", w.query(w.proposal(w.alice, "TransferAsset", "asset1", "Org1MSP").
		WithTransient(example.TransientNewOwner, example.Person{Name: "X"})), "cannot transfer")
}

// waitActive waits until a fresh encrypt through c uses version v of each
// key: the node's clock has passed the version's activation.
func waitActive(t *testing.T, c *client.Client, v uint32, keys ...string) {
	t.Helper()
	for _, k := range keys {
		nodetest.Eventually(t, 15*time.Second, fmt.Sprintf("%s version %d active", k, v), func(ctx context.Context) bool {
			_, got, err := c.EncryptValue(ctx, k, []byte("probe"), nil, "")
			return err == nil && got == v
		})
	}
}
