package fabric_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keymesh/keymesh/chaincode/fabric"
	"github.com/keymesh/keymesh/chaincode/fabric/fabrictest"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
	"github.com/keymesh/keymesh/node/fabricid/fabricidtest"
	"github.com/keymesh/keymesh/node/nodetest"
)

const canary = "CANARY-3b9d1e-plaintext"

type Trade struct {
	ID       string            `json:"id"`
	Price    int               `json:"price" keymesh:"trade/price"`
	Notes    *string           `json:"notes" keymesh:"trade/price"`
	Party    map[string]string `json:"party,omitempty" keymesh:"trade/pii"`
	Untagged []int             `json:"untagged"`
}

type fixture struct {
	node   *nodetest.Node
	km     *fabric.Client
	ledger *fabrictest.Ledger
	alice  *fabricidtest.Identity // Org1MSP, granted
	bob    *fabricidtest.Identity // Org2MSP, not granted
	rogue  *fabricidtest.Identity // Org1MSP from an unknown CA
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	org1, org2 := nodetest.FabricCA(t, "Org1MSP"), nodetest.FabricCA(t, "Org2MSP")
	n := nodetest.Start(t, nodetest.WithOrg("Org1MSP"), nodetest.WithFabricCAs(org1, org2))
	n.CreateKeys(t, "trade/price", "trade/pii")
	n.Grant(t, "org:Org1MSP", []string{"encrypt", "decrypt"}, "trade/price", "trade/pii")
	km, err := fabric.New(n.URL, n.ChaincodeToken(t, "cc-trade", "trades", "tradecc", "Org1MSP", "Org2MSP"))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{node: n, km: km, ledger: fabrictest.NewLedger(),
		alice: nodetest.FabricClient(t, org1, "alice"), bob: nodetest.FabricClient(t, org2, "bob"),
		rogue: nodetest.FabricClient(t, nodetest.FabricCA(t, "Org1MSP"), "alice")}
}

func (f *fixture) stub(id *fabricidtest.Identity) *fabrictest.Stub {
	return fabrictest.NewStub(f.ledger, fabrictest.NewSignedProposal("trades", "tradecc", id, "Fn"))
}

func TestStateRoundTripAndErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	notes := canary
	in := Trade{ID: "t1", Price: 42, Notes: &notes, Party: map[string]string{"name": canary}, Untagged: []int{1}}

	stub := f.stub(f.alice)
	if err := f.km.PutState(stub, "t1", &in); err != nil {
		t.Fatalf("PutState() = %v", err)
	}
	ws := stub.WriteSet()
	if len(ws.Public) != 1 || bytes.Contains(ws.Bytes(), []byte(canary)) {
		t.Fatalf("write set = %s, want one write without plaintext", ws.Bytes())
	}
	// The tagged number is an envelope, not 42 (searching the bytes for
	// "42" would also find it inside random base64).
	var stored map[string]any
	if err := json.Unmarshal(ws.Public[0].Value, &stored); err != nil {
		t.Fatal(err)
	}
	if p, ok := stored["price"].(string); !ok || !strings.HasPrefix(p, "km1:") {
		t.Fatalf("stored price = %v, want a km1: envelope", stored["price"])
	}
	f.ledger.Commit(ws)

	var out Trade
	if err := f.km.GetState(f.stub(f.alice), "t1", &out); err != nil {
		t.Fatalf("GetState() = %v", err)
	}
	if out.Price != 42 || out.Notes == nil || *out.Notes != canary || out.Party["name"] != canary || out.ID != "t1" || len(out.Untagged) != 1 {
		t.Fatalf("GetState() = %+v", out)
	}

	var got Trade
	err := f.km.GetState(f.stub(f.bob), "t1", &got)
	var fe *fabric.FieldError
	if !errors.Is(err, fabric.ErrNotGranted) || !errors.Is(err, client.ErrNotGranted) || !errors.As(err, &fe) {
		t.Fatalf("GetState(bob) = %v, want ErrNotGranted and a *FieldError", err)
	}
	if fe.Op != "decrypt" || fe.Key != "t1" || fe.Field == "" || got.Price != 0 {
		t.Errorf("GetState(bob): FieldError = %+v, value = %+v", fe, got)
	}
	if strings.Contains(err.Error(), canary) {
		t.Errorf("error %q quotes the plaintext", err)
	}

	err = f.km.GetState(f.stub(f.rogue), "t1", &got)
	if !errors.Is(err, fabric.ErrCreatorRefused) || !errors.Is(err, client.ErrInvalidCreator) {
		t.Fatalf("GetState(unknown CA) = %v, want ErrCreatorRefused", err)
	}
	if err := f.km.PutState(f.stub(f.rogue), "t2", &in); !errors.Is(err, fabric.ErrCreatorRefused) {
		t.Fatalf("PutState(unknown CA) = %v, want ErrCreatorRefused", err)
	}
	if err := f.km.PutState(f.stub(f.bob), "t2", &in); !errors.Is(err, fabric.ErrNotGranted) {
		t.Fatalf("PutState(bob, no encrypt grant) = %v, want ErrNotGranted", err)
	}

	if err := f.km.GetState(f.stub(f.alice), "nope", &got); !errors.Is(err, fabric.ErrNotFound) {
		t.Fatalf("GetState(missing) = %v, want ErrNotFound", err)
	}

	// Plaintext where an envelope belongs, and an envelope moved to another key.
	f.ledger.Set("plain", []byte(`{"id":"p","price":7,"notes":null}`))
	if err := f.km.GetState(f.stub(f.alice), "plain", &got); !errors.Is(err, fabric.ErrNotEncrypted) {
		t.Fatalf("GetState(plaintext field) = %v, want ErrNotEncrypted", err)
	}
	f.ledger.Set("moved", f.ledger.Get("t1"))
	if err := f.km.GetState(f.stub(f.alice), "moved", &got); !errors.Is(err, fabric.ErrDecryptionFailed) || !errors.Is(err, client.ErrDecryptionFailed) {
		t.Fatalf("GetState(moved) = %v, want ErrDecryptionFailed", err)
	}

	// Destroyed keys.
	if _, err := f.node.Admin.DestroyKey(nodetest.Ctx(t), "trade/pii", apiv1.DestroyKeyRequest{Confirm: "trade/pii"}); err != nil {
		t.Fatal(err)
	}
	if err := f.km.GetState(f.stub(f.alice), "t1", &got); !errors.Is(err, fabric.ErrKeyDestroyed) {
		t.Fatalf("GetState(destroyed key) = %v, want ErrKeyDestroyed", err)
	}
}

func TestEndorsementDeterminism(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	notes := "n"
	in := Trade{ID: "t1", Price: 42, Notes: &notes}
	p := fabrictest.NewSignedProposal("trades", "tradecc", f.alice, "Fn")
	b1, err := f.km.Marshal(fabrictest.NewStub(f.ledger, p), fabric.Location{Key: "t1"}, &in)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := f.km.Marshal(fabrictest.NewStub(f.ledger, p), fabric.Location{Key: "t1"}, in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1, b2) {
		t.Fatalf("Marshal() of one proposal differs:\n%s\n%s", b1, b2)
	}
	// omitempty left Party out: it stays out, and the rest opens.
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b1, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["party"]; ok {
		t.Errorf("Marshal() = %s, want no party member", b1)
	}
	var out Trade
	if err := f.km.Unmarshal(fabrictest.NewStub(f.ledger, p), fabric.Location{Key: "t1"}, b1, &out); err != nil || out.Price != 42 {
		t.Fatalf("Unmarshal() = %+v, %v", out, err)
	}
	// The chaincode name is part of the context: a client fixed to
	// another name cannot open it.
	other, err := fabric.New(f.node.URL, f.node.ChaincodeToken(t, "cc-other", "trades", "tradecc", "Org1MSP", "Org2MSP"), fabric.WithChaincodeName("othercc"))
	if err != nil {
		t.Fatal(err)
	}
	// (A new transaction: one transaction is used through one token only.)
	if err := other.Unmarshal(f.stub(f.alice), fabric.Location{Key: "t1"}, b1, &out); !errors.Is(err, fabric.ErrDecryptionFailed) {
		t.Fatalf("Unmarshal() under another chaincode name = %v, want ErrDecryptionFailed", err)
	}
}

func TestValues(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	stub := f.stub(f.alice)
	loc := fabric.Location{Collection: "c1", Key: "k", Field: "ssn"}
	env, err := f.km.EncryptValue(stub, "trade/pii", loc, []byte(canary))
	if err != nil || !strings.HasPrefix(env, "km1:") {
		t.Fatalf("EncryptValue() = %q, %v", env, err)
	}
	pt, err := f.km.DecryptValue(stub, loc, env)
	if err != nil || string(pt) != canary {
		t.Fatalf("DecryptValue() = %q, %v", pt, err)
	}
	for name, l := range map[string]fabric.Location{
		"other-collection": {Collection: "c2", Key: "k", Field: "ssn"},
		"world-state":      {Key: "k", Field: "ssn"},
		"other-key":        {Collection: "c1", Key: "k2", Field: "ssn"},
		"other-field":      {Collection: "c1", Key: "k", Field: "email"},
	} {
		if _, err := f.km.DecryptValue(stub, l, env); !errors.Is(err, fabric.ErrDecryptionFailed) {
			t.Errorf("DecryptValue(%s) = %v, want ErrDecryptionFailed", name, err)
		}
	}
	if _, err := f.km.DecryptValue(f.stub(f.bob), loc, env); !errors.Is(err, fabric.ErrNotGranted) {
		t.Errorf("DecryptValue(bob) = %v, want ErrNotGranted", err)
	}
	if _, err := f.km.DecryptValue(stub, loc, canary); !errors.Is(err, fabric.ErrNotEncrypted) || strings.Contains(err.Error(), canary) {
		t.Errorf("DecryptValue(plaintext) = %v, want ErrNotEncrypted without the value", err)
	}
}

func TestTransient(t *testing.T) {
	t.Parallel()
	p := fabrictest.NewProposal("c", "cc", nil, "Fn").WithTransient("in", map[string]any{"price": canary})
	stub := fabrictest.NewStub(fabrictest.NewLedger(), p)
	var ok struct {
		Price string `json:"price"`
	}
	if err := fabric.Transient(stub, "in", &ok); err != nil || ok.Price != canary {
		t.Fatalf("Transient() = %+v, %v", ok, err)
	}
	var bad struct {
		Price int `json:"price"`
	}
	err := fabric.Transient(stub, "in", &bad)
	if !errors.Is(err, fabric.ErrTransient) || strings.Contains(err.Error(), canary) {
		t.Fatalf("Transient(wrong type) = %v, want ErrTransient without the value", err)
	}
	if err := fabric.Transient(stub, "missing", &ok); !errors.Is(err, fabric.ErrTransient) {
		t.Fatalf("Transient(missing) = %v, want ErrTransient", err)
	}
}

func TestTags(t *testing.T) {
	t.Parallel()
	type inner struct {
		X int `json:"x" keymesh:"a/b"`
	}
	type embedsTagged struct {
		inner
		Y int `json:"y"`
	}
	type ok struct {
		A int    `keymesh:"a/b"`
		B string `json:"b,omitempty" keymesh:"a/c"`
		C int    `json:"c" keymesh:"a/d"`
	}
	for _, tc := range []struct {
		name string
		v    any
		ok   bool
	}{
		{"ok/tags", &ok{A: 1, B: "x", C: 2}, true},
		{"ok/no-tags", &struct{ A int }{1}, true},
		{"fail/not-struct", &[]int{1}, false},
		{"fail/nil", (*ok)(nil), false},
		{"fail/bad-key", &struct {
			A int `keymesh:"nokey"`
		}{}, false},
		{"fail/bad-key-slashes", &struct {
			A int `keymesh:"a/b/c"`
		}{}, false},
		{"fail/json-dash", &struct {
			A int `json:"-" keymesh:"a/b"`
		}{}, false},
		{"fail/unexported", &struct {
			a int `keymesh:"a/b"`
		}{}, false},
		{"fail/duplicate-json-name", &struct {
			A int `json:"X" keymesh:"a/b"`
			X int `keymesh:"a/b"`
		}{}, false},
		{"fail/tag-in-embedded", &embedsTagged{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// No stub is needed to refuse a bad type: a nil stub makes any
			// attempt to reach the node fail, which the ok cases avoid by
			// checking only the error kind.
			_, err := (&fabric.Client{}).Marshal(nil, fabric.Location{Key: "k"}, tc.v)
			refusedType := err != nil && !strings.Contains(err.Error(), "nil stub")
			if refusedType == tc.ok {
				t.Fatalf("Marshal(%T) = %v, want type accepted %v", tc.v, err, tc.ok)
			}
		})
	}
}

func TestNewFromEnv(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	caAuth, err := fabricidtest.NewCA("Org1MSP")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, caAuth.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		ok   bool
	}{
		{"ok/token-only", map[string]string{fabric.EnvToken: "kmt_x"}, true},
		{"ok/all", map[string]string{fabric.EnvToken: "kmt_x", fabric.EnvAddr: "keymesh.local:8443", fabric.EnvCAFile: ca, fabric.EnvChaincodeName: "asset"}, true},
		{"fail/no-token", map[string]string{fabric.EnvAddr: "127.0.0.1:1"}, false},
		{"fail/ca-missing", map[string]string{fabric.EnvToken: "kmt_x", fabric.EnvCAFile: filepath.Join(dir, "nope.pem")}, false},
		{"fail/ca-with-http-url", map[string]string{fabric.EnvToken: "kmt_x", fabric.EnvAddr: "http://127.0.0.1:1", fabric.EnvCAFile: ca}, false},
		{"fail/bad-addr", map[string]string{fabric.EnvToken: "kmt_x", fabric.EnvAddr: "ftp://x"}, false},
		{"fail/token-newline", map[string]string{fabric.EnvToken: "kmt_x\nY"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{fabric.EnvAddr, fabric.EnvToken, fabric.EnvCAFile, fabric.EnvChaincodeName} {
				t.Setenv(k, tc.env[k])
			}
			c, err := fabric.NewFromEnv()
			if (err == nil) != tc.ok {
				t.Fatalf("NewFromEnv() = %v, %v; want ok %v", c, err, tc.ok)
			}
			if c != nil && strings.Contains(c.String(), "kmt_") {
				t.Errorf("String() = %q shows the token", c.String())
			}
		})
	}
}
