package fabric_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/keymesh/keymesh/chaincode/fabric"
	"github.com/keymesh/keymesh/chaincode/fabric/fabrictest"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
	"github.com/keymesh/keymesh/node/nodetest"
)

// TestFabric_ChaincodeForgedCreatorRefused: a stub whose proposal carries
// a real, trusted creator but no signature by its key (what anyone holding
// a chaincode token and a certificate from the ledger could build) is
// refused by the node, for writes and reads.
func TestFabric_ChaincodeForgedCreatorRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	forged := fabrictest.NewStub(f.ledger, fabrictest.NewProposal("trades", "tradecc", f.alice.Creator(), "Fn"))
	_, err := f.km.Marshal(forged, fabric.Location{Key: "t1"}, Trade{ID: "t1", Price: 1})
	if !errors.Is(err, fabric.ErrCreatorRefused) || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("Marshal(forged creator) = %v, want ErrCreatorRefused about the signature", err)
	}
	b, err := f.km.Marshal(f.stub(f.alice), fabric.Location{Key: "t1"}, Trade{ID: "t1", Price: 1})
	if err != nil {
		t.Fatal(err)
	}
	var out Trade
	forged = fabrictest.NewStub(f.ledger, fabrictest.NewProposal("trades", "tradecc", f.alice.Creator(), "Fn"))
	if err := f.km.Unmarshal(forged, fabric.Location{Key: "t1"}, b, &out); !errors.Is(err, fabric.ErrCreatorRefused) {
		t.Fatalf("Unmarshal(forged creator) = %v, want ErrCreatorRefused", err)
	}
}

// TestFabric_ClientSealedNeedsNoKeyAtEndorsers is issue 10 item 4's
// client-sealed pattern: the client seals through its own org's node, the
// chaincode stores the envelopes from the transient map without any
// keymesh call (endorsers need no key and agree byte for byte), and a
// granted reader opens them as usual.
func TestFabric_ClientSealedNeedsNoKeyAtEndorsers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ct, err := f.node.Admin.CreateToken(nodetest.Ctx(t), apiv1.CreateTokenRequest{Party: "token:org1-app"})
	if err != nil {
		t.Fatal(err)
	}
	f.node.Grant(t, "token:org1-app", []string{"encrypt"}, "trade/price", "trade/pii")
	app, err := client.New(f.node.URL, ct.Token)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := fabric.SealRecord(context.Background(), app, "trades", "tradecc", "t9", Trade{ID: "t9", Price: 77, Untagged: []int{1}})
	if err != nil {
		t.Fatalf("SealRecord() = %v", err)
	}
	// The tagged field is an envelope, not the value (a search for "77"
	// in the whole record would also match random envelope text).
	var fields map[string]any
	if err := json.Unmarshal(sealed, &fields); err != nil {
		t.Fatal(err)
	}
	if env, ok := fields["price"].(string); !ok || !strings.HasPrefix(env, "km1:") || strings.Contains(string(sealed), `"price":77`) {
		t.Fatalf("sealed record holds the plaintext: %s", sealed)
	}
	p := fabrictest.NewSignedProposal("trades", "tradecc", f.alice, "Create")
	p.Transient = map[string][]byte{"trade": sealed}
	var sets [2][]byte
	for i := range sets {
		stub := fabrictest.NewStub(f.ledger, p) // no keymesh client at all: an endorser without keys
		rec, err := fabric.SealedTransient(stub, "trade", Trade{})
		if err != nil {
			t.Fatalf("SealedTransient() = %v", err)
		}
		if err := fabric.PutSealedState(stub, "t9", rec); err != nil {
			t.Fatal(err)
		}
		sets[i] = stub.WriteSet().Bytes()
		if i == 1 {
			f.ledger.Commit(stub.WriteSet())
		}
	}
	if string(sets[0]) != string(sets[1]) {
		t.Fatalf("endorsers disagree:\n%s\n%s", sets[0], sets[1])
	}
	var out Trade
	if err := f.km.GetState(f.stub(f.alice), "t9", &out); err != nil || out.Price != 77 {
		t.Fatalf("GetState() = %+v, %v, want price 77", out, err)
	}
	// A tagged field that holds a plaintext, or an envelope of another key.
	pii, err := fabric.SealRecord(context.Background(), app, "trades", "tradecc", "t9", struct {
		Party map[string]string `json:"party" keymesh:"trade/pii"`
	}{map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	var m, pm map[string]json.RawMessage
	_ = json.Unmarshal(sealed, &m)
	_ = json.Unmarshal(pii, &pm)
	m["price"] = pm["party"]
	foreign, _ := json.Marshal(m)
	for name, rec := range map[string]string{"plaintext": `{"id":"t9","price":77}`, "foreign key": string(foreign)} {
		q := fabrictest.NewSignedProposal("trades", "tradecc", f.alice, "Create")
		q.Transient = map[string][]byte{"trade": []byte(rec)}
		if _, err := fabric.SealedTransient(fabrictest.NewStub(f.ledger, q), "trade", Trade{}); err == nil {
			t.Errorf("SealedTransient(%s) = nil error", name)
		}
	}
}

// TestFabric_CheckFailsFast: a chaincode checks KEYMESH_ADDR and
// KEYMESH_TOKEN at start (issue 10 item 7).
func TestFabric_CheckFailsFast(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	if err := f.km.Check(ctx); err != nil {
		t.Fatalf("Check(chaincode token) = %v, want nil", err)
	}
	bad, _ := fabric.New(f.node.URL, "kmt_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	if err := bad.Check(ctx); err == nil || !strings.Contains(err.Error(), fabric.EnvToken) {
		t.Errorf("Check(unknown token) = %v, want an error naming %s", err, fabric.EnvToken)
	}
	ct, _ := f.node.Admin.CreateToken(nodetest.Ctx(t), apiv1.CreateTokenRequest{Party: "token:app"})
	notCC, _ := fabric.New(f.node.URL, ct.Token)
	if err := notCC.Check(ctx); err == nil || !strings.Contains(err.Error(), "not a chaincode token") {
		t.Errorf("Check(client token) = %v, want not a chaincode token", err)
	}
	gone, _ := fabric.New("127.0.0.1:1", "kmt_x")
	if err := gone.Check(ctx); err == nil || !strings.Contains(err.Error(), fabric.EnvAddr) {
		t.Errorf("Check(unreachable) = %v, want an error naming %s", err, fabric.EnvAddr)
	}
}

// TestFabric_ValueErrorsReadLikeFieldErrors: an error about a whole value
// names its key as an error about a field does (issue 10 item 7).
func TestFabric_ValueErrorsReadLikeFieldErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	loc := fabric.Location{Key: "t1", Field: "price"}
	env, err := f.km.EncryptValue(f.stub(f.alice), "trade/price", loc, []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	_, verr := f.km.DecryptValue(f.stub(f.bob), loc, env)
	b, err := f.km.Marshal(f.stub(f.alice), fabric.Location{Key: "t1"}, Trade{ID: "t1", Price: 1})
	if err != nil {
		t.Fatal(err)
	}
	var out Trade
	ferr := f.km.Unmarshal(f.stub(f.bob), fabric.Location{Key: "t1"}, b, &out)
	want := `keymesh: decrypt field "price" of "t1" (key trade/price): not granted`
	if verr == nil || verr.Error() != want {
		t.Errorf("DecryptValue() = %v, want %q", verr, want)
	}
	if ferr == nil || !strings.Contains(ferr.Error(), want) {
		t.Errorf("Unmarshal() = %v, want it to contain %q", ferr, want)
	}
}
