// Package testnode starts real keymesh nodes (package node, serving its
// REST API over HTTP on 127.0.0.1) for the tests of chaincode/fabric and
// its example — one standalone node, or a mesh of one node per
// organisation gossiping over libp2p on 127.0.0.1 — and makes the Fabric
// test CAs they trust.
package testnode

import (
	"context"
	"crypto/ed25519"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/node"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
	"github.com/keymesh/keymesh/node/enroll"
	"github.com/keymesh/keymesh/node/fabricid"
	"github.com/keymesh/keymesh/node/fabricid/fabricidtest"
)

// Node is a running node.
type Node struct {
	Org   string
	URL   string
	Admin *client.Client
}

// Start initialises and serves a node of org in a temporary directory that
// trusts the given CAs for their MSPs; it stops when the test ends.
func Start(t testing.TB, org string, cas ...*fabricidtest.CA) *Node {
	t.Helper()
	dir := t.TempDir()
	cfg := node.Config{DataDir: dir + "/data", Listen: "127.0.0.1:0", Org: org, RotationGrace: time.Millisecond, FabricMSPs: trust(t, dir, cas)}
	return serve(t, cfg, dir+"/admin.token")
}

// trust writes the CAs' certificates into dir and returns the node's
// fabric_msps configuration for them.
func trust(t testing.TB, dir string, cas []*fabricidtest.CA) map[string]fabricid.MSPConfig {
	t.Helper()
	msps := map[string]fabricid.MSPConfig{}
	for _, ca := range cas {
		p, err := ca.WriteFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		msps[ca.MSPID] = fabricid.MSPConfig{CAs: []string{p}}
	}
	return msps
}

// serve initialises a node with cfg, serves it until the test ends and
// returns it with an admin client.
func serve(t testing.TB, cfg node.Config, tokFile string) *Node {
	t.Helper()
	if _, err := node.Init(cfg, tokFile); err != nil {
		t.Fatalf("node.Init(%s) = %v", cfg.Org, err)
	}
	admin, err := os.ReadFile(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(cfg, nil)
	if err != nil {
		t.Fatalf("node.Open(%s) = %v", cfg.Org, err)
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
				t.Errorf("Serve(%s) = %v", cfg.Org, err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("node of %s did not stop within 15s", cfg.Org)
		}
	})
	c, err := client.New(n.URL(), strings.TrimSpace(string(admin)))
	if err != nil {
		t.Fatal(err)
	}
	return &Node{Org: cfg.Org, URL: n.URL(), Admin: c}
}

// StartMesh starts a network with one node per org, each with a real
// libp2p host on 127.0.0.1 and trusting the given CAs for their MSPs (as
// fabric_msps): it writes a genesis naming the orgs and an admin key for
// each, registers every node with its org's admin key (the first node is
// the others' bootstrap peer), and returns once every node lists every
// node. The nodes stop when the test ends.
func StartMesh(t testing.TB, orgs []string, cas ...*fabricidtest.CA) []*Node {
	t.Helper()
	dir := t.TempDir()
	g := event.Genesis{Network: "fabric-test", Created: time.Now().UTC().Truncate(time.Second)}
	admins := map[string]ed25519.PrivateKey{}
	for _, o := range orgs {
		pub, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		admins[o] = priv
		var k [32]byte
		copy(k[:], pub)
		g.Orgs = append(g.Orgs, event.GenesisOrg{ID: o, AdminKeys: [][32]byte{k}})
		if len(g.Orgs) == 1 {
			g.Orgs[0].Namespaces = []string{"trade", "demo", "asset", "orders"}
		}
	}
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	genesis := filepath.Join(dir, "genesis.json")
	if err := os.WriteFile(genesis, b, 0o644); err != nil {
		t.Fatal(err)
	}
	msps := trust(t, dir, cas)

	var nodes []*Node
	var boot []string
	for i, o := range orgs {
		data := filepath.Join(dir, fmt.Sprintf("node%d", i+1))
		cfg := node.Config{
			DataDir: data, Listen: "127.0.0.1:0", Org: o, Genesis: genesis, FabricMSPs: msps,
			P2PListen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: boot,
			RotationGrace: 100 * time.Millisecond, AntiEntropyInterval: time.Second,
		}
		n := serve(t, cfg, node.AdminTokenFile(data))
		var id *apiv1.NodeIdentity
		poll(t, 10*time.Second, o+": p2p host up", func(ctx context.Context) bool {
			id, err = n.Admin.NodeIdentity(ctx)
			return err == nil && len(id.Addrs) > 0
		})
		if boot == nil {
			boot = id.Addrs
		}
		if _, err := enroll.Register(Ctx(t), n.Admin, admins[o], 24*time.Hour); err != nil {
			t.Fatalf("%s: Register() = %v", o, err)
		}
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		poll(t, 15*time.Second, fmt.Sprintf("%s lists %d registered nodes", n.Org, len(nodes)), func(ctx context.Context) bool {
			ns, err := n.Admin.ListNodes(ctx)
			return err == nil && len(ns) == len(nodes)
		})
	}
	return nodes
}

// poll calls f every 50 ms until it reports true, and fails the test if
// that does not happen within d. Each call gets a context bounded by what
// is left of d.
func poll(t testing.TB, d time.Duration, what string, f func(context.Context) bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		ok := f(ctx)
		cancel()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitVersion waits (at most 15 s) until the node holds version v of each
// key, and returns what it knows of that version per key.
func (n *Node) WaitVersion(t testing.TB, v uint32, keys ...string) map[string]apiv1.KeyVersion {
	t.Helper()
	out := map[string]apiv1.KeyVersion{}
	for _, k := range keys {
		poll(t, 15*time.Second, fmt.Sprintf("%s holds %s version %d", n.Org, k, v), func(ctx context.Context) bool {
			ki, err := n.Admin.GetKey(ctx, k)
			if err != nil || ki.LatestVersion < v || len(ki.Versions) < int(v) {
				return false
			}
			kv := ki.Versions[v-1]
			out[k] = kv
			return kv.Version == v && !kv.Destroyed
		})
	}
	return out
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

// ChaincodeToken mints a chaincode-role token for token:<name>, bound to
// channel, chaincode and msps.
func (n *Node) ChaincodeToken(t testing.TB, name, channel, chaincode string, msps ...string) string {
	t.Helper()
	ct, err := n.Admin.CreateToken(Ctx(t), apiv1.CreateTokenRequest{Party: "token:" + name, Role: "chaincode",
		Channels: []string{channel}, Chaincode: chaincode, MSPs: msps})
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
