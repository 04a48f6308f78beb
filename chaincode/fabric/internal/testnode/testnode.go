// Package testnode starts real keymesh nodes (package node, serving its
// REST API over HTTP on 127.0.0.1) for the tests of chaincode/fabric and
// its example, and makes the Fabric test CAs they trust.
package testnode

import (
	"context"
	"crypto/x509/pkix"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keymesh/keymesh/node"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
	"github.com/keymesh/keymesh/node/fabricid"
	"github.com/keymesh/keymesh/node/fabricid/fabricidtest"
)

// Node is a running node.
type Node struct {
	URL   string
	Admin *client.Client
}

// Start initialises and serves a node of org in a temporary directory that
// trusts the given CAs for their MSPs; it stops when the test ends.
func Start(t testing.TB, org string, cas ...*fabricidtest.CA) *Node {
	t.Helper()
	dir := t.TempDir()
	msps := map[string]fabricid.MSPConfig{}
	for _, ca := range cas {
		p, err := ca.WriteFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		msps[ca.MSPID] = fabricid.MSPConfig{CAs: []string{p}}
	}
	cfg := node.Config{DataDir: dir + "/data", Listen: "127.0.0.1:0", Org: org, RotationGrace: time.Millisecond, FabricMSPs: msps}
	tokFile := dir + "/admin.token"
	if _, err := node.Init(cfg, tokFile); err != nil {
		t.Fatalf("node.Init() = %v", err)
	}
	admin, err := os.ReadFile(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(cfg, nil)
	if err != nil {
		t.Fatalf("node.Open() = %v", err)
	}
	if err := n.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve() = %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("node did not stop within 15s")
		}
	})
	c, err := client.New(n.URL(), strings.TrimSpace(string(admin)))
	if err != nil {
		t.Fatal(err)
	}
	return &Node{URL: n.URL(), Admin: c}
}

// Ctx returns a context bounded to 30 s for one admin call.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// CreateKeys creates the keys.
func (n *Node) CreateKeys(t testing.TB, names ...string) {
	t.Helper()
	for _, k := range names {
		if _, err := n.Admin.CreateKey(Ctx(t), apiv1.CreateKeyRequest{Name: k}); err != nil {
			t.Fatalf("CreateKey(%s) = %v", k, err)
		}
	}
}

// Grant grants party ops on each key.
func (n *Node) Grant(t testing.TB, party string, ops []string, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, err := n.Admin.CreateGrant(Ctx(t), apiv1.CreateGrantRequest{Key: k, Party: party, Ops: ops}); err != nil {
			t.Fatalf("CreateGrant(%s, %s) = %v", k, party, err)
		}
	}
}

// Revoke revokes party on each key.
func (n *Node) Revoke(t testing.TB, party string, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, err := n.Admin.Revoke(Ctx(t), k, party); err != nil {
			t.Fatalf("Revoke(%s, %s) = %v", k, party, err)
		}
	}
}

// ChaincodeToken mints a chaincode-role token for token:<name>.
func (n *Node) ChaincodeToken(t testing.TB, name string) string {
	t.Helper()
	ct, err := n.Admin.CreateToken(Ctx(t), apiv1.CreateTokenRequest{Party: "token:" + name, Role: "chaincode"})
	if err != nil {
		t.Fatalf("CreateToken(chaincode) = %v", err)
	}
	return ct.Token
}

// CA makes a test CA for mspID.
func CA(t testing.TB, mspID string) *fabricidtest.CA {
	t.Helper()
	ca, err := fabricidtest.NewCA(mspID)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// Client issues a client identity "CN=<cn>,OU=client,O=<MSP>" from ca.
func Client(t testing.TB, ca *fabricidtest.CA, cn string) *fabricidtest.Identity {
	t.Helper()
	id, err := ca.Issue(pkix.Name{CommonName: cn, OrganizationalUnit: []string{"client"}, Organization: []string{ca.MSPID}}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return id
}
