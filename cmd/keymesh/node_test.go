package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/node"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/nodetest"
	"github.com/keymesh/keymesh/vault/transport"
)

const (
	signKeyA = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
	signKeyB = "8f9e0d1c2b3a49586776859403a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4"
	nodesDoc = `{"nodes":[
		{"org":"Org1MSP","peer_id":"12D3KooWself","sign_key":"` + signKeyA + `","addrs":["/ip4/127.0.0.1/tcp/19001/p2p/12D3KooWself"],
		 "not_after":"2027-03-01T12:00:00Z","deregistered":false,"self":true,"connected":false},
		{"org":"Org2MSP","peer_id":"12D3KooWother","sign_key":"` + signKeyB + `","addrs":[],
		 "not_after":"2027-03-01T12:00:00Z","deregistered":true,"self":false,"connected":true,"last_seen":"2026-03-01T12:00:05Z"}]}`
)

// meshFixture is an org admin key (in a 0600 file), a genesis naming it,
// and the identity of a node of that network, as GET /v1/node answers.
type meshFixture struct {
	g        *network.Genesis
	adminKey string // file
	identity string // JSON
	signKey  string
}

func newMeshFixture(t *testing.T) *meshFixture {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "org1.key")
	pub := keygen(t, keyFile)
	k, err := network.ParseKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	g := &network.Genesis{Network: "test-net", Created: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Orgs: []network.GenesisOrg{{ID: "Org1MSP", AdminKeys: [][32]byte{k}}}}
	_, kem, err := transport.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	nid := g.ID()
	id, _ := json.Marshal(apiv1.NodeIdentity{
		Org: "Org1MSP", NetworkID: nid.String(), PeerID: "12D3KooWself", SignKey: signKeyA, KEMKey: kem,
		Addrs: []string{"/ip4/127.0.0.1/tcp/19001/p2p/12D3KooWself"}, Mesh: true,
	})
	return &meshFixture{g: g, adminKey: keyFile, identity: string(id), signKey: signKeyA}
}

// squash folds each line's runs of blanks into one space, for matching
// table rows whatever their column widths.
func squash(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

func TestNodeShow(t *testing.T) {
	t.Parallel()
	f := newMeshFixture(t)
	d := newFakeDaemon(t, map[string]reply{"GET /v1/node": {body: f.identity}})
	res := runCLI(t, withDaemon(d), "", "node", "show")
	if res.code != 0 {
		t.Fatalf("node show = exit %d, stderr %q", res.code, res.stderr)
	}
	for _, want := range []string{"Org1MSP", "12D3KooWself", signKeyA, "/ip4/127.0.0.1/tcp/19001/p2p/12D3KooWself", "Registered:", "KEM key:"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("node show = %q, want it to hold %q", res.stdout, want)
		}
	}
	res = runCLI(t, withDaemon(d), "", "node", "show", "-o", "json")
	var id apiv1.NodeIdentity
	if err := json.Unmarshal([]byte(res.stdout), &id); err != nil || id.PeerID != "12D3KooWself" || len(id.Addrs) != 1 {
		t.Errorf("node show -o json = %q (%v)", res.stdout, err)
	}

	standalone := newFakeDaemon(t, map[string]reply{"GET /v1/node": {status: 409, body: `{"error":{"code":"conflict","message":"this node belongs to no network"}}`}})
	if res := runCLI(t, withDaemon(standalone), "", "node", "show"); res.code != 1 || !strings.Contains(res.stderr, "no network") {
		t.Errorf("node show on a standalone node = exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestNodesList(t *testing.T) {
	t.Parallel()
	d := newFakeDaemon(t, map[string]reply{"GET /v1/nodes": {body: nodesDoc}})
	res := runCLI(t, withDaemon(d), "", "nodes", "list")
	if res.code != 0 {
		t.Fatalf("nodes list = exit %d, stderr %q", res.code, res.stderr)
	}
	lines := strings.Split(strings.TrimRight(res.stdout, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("nodes list = %q, want a header and two rows", res.stdout)
	}
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "ORG PEER-ID SIGN-KEY CONNECTED LAST-SEEN DEREGISTERED SELF" {
		t.Errorf("header = %q", lines[0])
	}
	if got, want := strings.Fields(lines[1]), []string{"Org1MSP", "12D3KooWself", signKeyA[:16] + "…", "-", "-", "no", "yes"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("self row = %q, want %q", got, want)
	}
	if got, want := strings.Fields(lines[2]), []string{"Org2MSP", "12D3KooWother", signKeyB[:16] + "…", "yes", "2026-03-01T12:00:05Z", "yes", "no"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("other row = %q, want %q", got, want)
	}

	res = runCLI(t, withDaemon(d), "", "nodes", "list", "-o", "json")
	var l apiv1.NetworkNodeList
	if err := json.Unmarshal([]byte(res.stdout), &l); err != nil || len(l.Nodes) != 2 || l.Nodes[1].SignKey != signKeyB {
		t.Errorf("nodes list -o json = %q (%v)", res.stdout, err)
	}
	empty := newFakeDaemon(t, map[string]reply{"GET /v1/nodes": {body: `{"nodes":null}`}})
	if res := runCLI(t, withDaemon(empty), "", "nodes", "list", "-o", "json"); !strings.Contains(res.stdout, `"nodes": []`) {
		t.Errorf("nodes list -o json of none = %q, want an empty array", res.stdout)
	}
}

func TestStatusMesh(t *testing.T) {
	t.Parallel()
	withMesh := strings.TrimSuffix(statusJSON, "}") + `,"mesh":{"peers":3,"events":42,"last_sync":"2026-03-01T12:00:09Z","nodes":4,"dropped":1,"addrs":["/ip4/127.0.0.1/tcp/19001/p2p/12D3KooWabc"]}}`
	d := newFakeDaemon(t, map[string]reply{"GET /v1/status": {body: withMesh}})
	res := runCLI(t, withDaemon(d), "", "status")
	if res.code != 0 {
		t.Fatalf("status = exit %d, stderr %q", res.code, res.stderr)
	}
	res.stdout = squash(res.stdout)
	for _, want := range []string{"Network:", "Mesh peers: 3", "Mesh nodes: 4", "Event log height: 42", "Last anti-entropy: 2026-03-01T12:00:09Z", "/tcp/19001/"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("status table = %q, want it to hold %q", res.stdout, want)
		}
	}
	// A standalone node shows no mesh rows.
	plain := newFakeDaemon(t, map[string]reply{"GET /v1/status": {body: statusJSON}})
	if res := runCLI(t, withDaemon(plain), "", "status"); strings.Contains(res.stdout, "Mesh") {
		t.Errorf("standalone status = %q, want no mesh rows", res.stdout)
	}
}

func TestKeysShowHolders(t *testing.T) {
	t.Parallel()
	destroyed := strings.Replace(keyJSON, `"state":"active"`, `"state":"destroyed"`, 1)
	pending := strings.TrimSuffix(strings.TrimSpace(destroyed), "}") + `,"holders":["` + signKeyA + `","` + signKeyB + `"],"pending_acks":["` + signKeyB + `"]}`
	acked := strings.TrimSuffix(strings.TrimSpace(destroyed), "}") + `,"holders":["` + signKeyA + `","` + signKeyB + `"]}`
	d := newFakeDaemon(t, map[string]reply{
		"GET /v1/keys/demo/ssn":   {body: pending},
		"GET /v1/keys/demo/acked": {body: acked},
		"GET /v1/keys/demo/plain": {body: keyJSON},
	})
	res := runCLI(t, withDaemon(d), "", "keys", "show", "demo/ssn")
	if !strings.Contains(res.stdout, "Holders:") || !strings.Contains(res.stdout, signKeyA[:16]+"…,"+signKeyB[:16]+"…") ||
		!strings.Contains(res.stdout, "Pending acks:") || strings.Contains(squash(res.stdout), "Pending acks: "+signKeyA[:16]) {
		t.Errorf("keys show (pending) = %q", res.stdout)
	}
	res = runCLI(t, withDaemon(d), "", "keys", "show", "demo/acked")
	if !strings.Contains(squash(res.stdout), "Pending acks: none") {
		t.Errorf("keys show (all acknowledged) = %q, want Pending acks: none", res.stdout)
	}
	res = runCLI(t, withDaemon(d), "", "keys", "show", "demo/plain")
	if strings.Contains(res.stdout, "Holders") || strings.Contains(res.stdout, "Pending") {
		t.Errorf("keys show (standalone) = %q, want no mesh rows", res.stdout)
	}
}

func TestNodeRegister(t *testing.T) {
	t.Parallel()
	f := newMeshFixture(t)
	d := newFakeDaemon(t, map[string]reply{
		"GET /v1/node":            {body: f.identity},
		"POST /v1/nodes/register": {body: strings.Replace(f.identity, `"registered":false`, `"registered":true`, 1)},
	})
	res := runCLI(t, withDaemon(d), "", "node", "register", "--admin-key", f.adminKey, "--valid-for", "48h")
	if res.code != 0 {
		t.Fatalf("node register = exit %d, stderr %q", res.code, res.stderr)
	}
	for _, want := range []string{"registered node of Org1MSP", "12D3KooWself", signKeyA} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("node register = %q, want it to hold %q", res.stdout, want)
		}
	}
	reqs := d.requests()
	if len(reqs) != 2 || reqs[1].Path != "/v1/nodes/register" {
		t.Fatalf("requests = %+v, want GET /v1/node then POST /v1/nodes/register", reqs)
	}
	var body apiv1.RegisterRequest
	if err := json.Unmarshal(reqs[1].Body, &body); err != nil {
		t.Fatal(err)
	}
	r, err := network.DecodeNodeRecord(body.Record)
	if err != nil {
		t.Fatalf("posted record: %v", err)
	}
	if err := f.g.VerifyNodeRecord(r); err != nil {
		t.Errorf("posted record does not verify under the genesis: %v", err)
	}
	if r.Org != "Org1MSP" || r.SignKey.Hex() != signKeyA || len(r.Addrs) != 1 || !r.ValidAt(time.Now()) || r.ValidAt(time.Now().Add(49*time.Hour)) {
		t.Errorf("posted record = %+v", r)
	}
	if strings.Contains(string(reqs[1].Body), "PRIVATE") {
		t.Error("the admin private key was sent to the node")
	}
}

func TestNodeRegisterRefusesBadKeyFiles(t *testing.T) {
	t.Parallel()
	f := newMeshFixture(t)
	d := newFakeDaemon(t, map[string]reply{"GET /v1/node": {body: f.identity}})
	dir := t.TempDir()
	data, err := os.ReadFile(f.adminKey)
	if err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open.key")
	if err := os.WriteFile(open, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o640); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.key")
	if err := os.WriteFile(garbage, []byte("not a key: s3cr3t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		args []string
		code int
		want string
	}{
		"group-readable": {[]string{"--admin-key", open}, exitFailure, "chmod 600"},
		"garbage":        {[]string{"--admin-key", garbage}, exitFailure, "admin key"},
		"missing":        {[]string{"--admin-key", filepath.Join(dir, "nope")}, exitFailure, "admin key"},
		"no-flag":        {nil, exitUsage, "--admin-key is required"},
		"bad-validity":   {[]string{"--admin-key", f.adminKey, "--valid-for", "-1h"}, exitUsage, "--valid-for"},
	} {
		t.Run(name, func(t *testing.T) {
			res := runCLI(t, withDaemon(d), "", append([]string{"node", "register"}, tc.args...)...)
			if res.code != tc.code || !strings.Contains(res.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", res.code, res.stderr, tc.code, tc.want)
			}
			if strings.Contains(res.stderr, "s3cr3t") {
				t.Errorf("stderr %q quotes the key file", res.stderr)
			}
		})
	}
	if n := len(d.requests()); n != 0 {
		t.Errorf("the daemon received %d requests, want none", n)
	}
}

func TestNodeDeregister(t *testing.T) {
	t.Parallel()
	f := newMeshFixture(t)
	d := newFakeDaemon(t, map[string]reply{
		"GET /v1/node":              {body: f.identity},
		"GET /v1/nodes":             {body: nodesDoc},
		"POST /v1/nodes/deregister": {body: nodesDoc},
	})
	res := runCLI(t, withDaemon(d), "", "node", "deregister", "--admin-key", f.adminKey, "--org", "Org1MSP", "--node", strings.ToUpper(signKeyB))
	if res.code != 0 {
		t.Fatalf("node deregister = exit %d, stderr %q", res.code, res.stderr)
	}
	if !strings.Contains(res.stdout, "deregistered node "+signKeyB[:16]) || !strings.Contains(res.stdout, "DEREGISTERED") {
		t.Errorf("node deregister = %q", res.stdout)
	}
	reqs := d.requests()
	var body apiv1.DeregisterRequest
	if err := json.Unmarshal(reqs[len(reqs)-1].Body, &body); err != nil {
		t.Fatal(err)
	}
	dr, err := network.DecodeDeregister(body.Deregister)
	if err != nil {
		t.Fatalf("posted deregister: %v", err)
	}
	if err := f.g.VerifyDeregister(dr); err != nil {
		t.Errorf("posted deregister does not verify under the genesis: %v", err)
	}
	if dr.Org != "Org1MSP" || dr.SignKey.Hex() != signKeyB || time.Since(dr.At) > time.Minute {
		t.Errorf("posted deregister = %+v", dr)
	}

	for name, args := range map[string][]string{
		"no-node":  {"--admin-key", f.adminKey, "--org", "Org1MSP"},
		"no-org":   {"--admin-key", f.adminKey, "--node", signKeyB},
		"no-key":   {"--org", "Org1MSP", "--node", signKeyB},
		"bad-node": {"--admin-key", f.adminKey, "--org", "Org1MSP", "--node", signKeyB[:40]},
	} {
		before := len(d.requests())
		if res := runCLI(t, withDaemon(d), "", append([]string{"node", "deregister"}, args...)...); res.code != exitUsage {
			t.Errorf("%s: exit %d, stderr %q; want 2", name, res.code, res.stderr)
		}
		if len(d.requests()) != before {
			t.Errorf("%s: the daemon received a request", name)
		}
	}
}

// TestMeshEndToEnd runs the operator's path with the real CLI against two
// real mesh nodes on 127.0.0.1: org keygen, network genesis, init
// --genesis, node register, nodes list at both nodes, status, and a
// deregistration.
func TestMeshEndToEnd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts mesh nodes")
	}
	dir := t.TempDir()
	orgs := []string{"Org1MSP", "Org2MSP"}
	genArgs := []string{"network", "genesis", "--name", "cli-e2e", "--out", filepath.Join(dir, "genesis.json")}
	for _, o := range orgs {
		pub := keygen(t, filepath.Join(dir, o+".key"))
		genArgs = append(genArgs, "--org", o+"="+pub)
	}
	if code, _, errs := runLocal(t, genArgs...); code != 0 {
		t.Fatalf("network genesis exit %d, stderr %q", code, errs)
	}

	type member struct {
		org, data, url, tok string
	}
	var members []*member
	var boot []string
	cli := func(m *member, args ...string) result {
		t.Helper()
		return runCLI(t, map[string]string{envAddr: m.url, envToken: m.tok}, "", args...)
	}
	for i, o := range orgs {
		m := &member{org: o, data: filepath.Join(dir, "node"+o)}
		code, out, errs := runLocal(t, "init", "--data", m.data, "--org", o, "--genesis", filepath.Join(dir, "genesis.json"),
			"--admin-token-file", filepath.Join(m.data, "admin.token"), "-o", "json")
		if code != 0 {
			t.Fatalf("init --genesis exit %d, stderr %q", code, errs)
		}
		var ir struct {
			NetworkID string `json:"network_id"`
		}
		if err := json.Unmarshal([]byte(out), &ir); err != nil || len(ir.NetworkID) != 64 {
			t.Errorf("init --genesis -o json = %q, want the network id", out)
		}
		tok, err := os.ReadFile(filepath.Join(m.data, "admin.token"))
		if err != nil {
			t.Fatal(err)
		}
		m.tok = strings.TrimSpace(string(tok))
		bootstrap := boot
		n := nodetest.Start(t, nodetest.WithName(o), nodetest.WithDataDir(m.data), nodetest.WithConfig(func(c *node.Config) {
			c.Org, c.Bootstrap = o, bootstrap
		}))
		m.url = n.URL
		members = append(members, m)

		var id apiv1.NodeIdentity
		nodetest.Eventually(t, 15*time.Second, fmt.Sprintf("node %d: a p2p address", i), func(context.Context) bool {
			r := cli(m, "node", "show", "-o", "json")
			return r.code == 0 && json.Unmarshal([]byte(r.stdout), &id) == nil && len(id.Addrs) > 0
		})
		if i == 0 {
			boot = id.Addrs
		}
		r := cli(m, "node", "register", "--admin-key", filepath.Join(dir, o+".key"))
		if r.code != 0 || !strings.Contains(r.stdout, "registered node of "+o) || !strings.Contains(r.stdout, id.PeerID) {
			t.Fatalf("node register: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	}
	// Another org's admin key does not register a node.
	if r := cli(members[0], "node", "register", "--admin-key", filepath.Join(dir, "Org2MSP.key")); r.code != 1 || !strings.Contains(r.stderr, "registration refused") {
		t.Errorf("register with another org's key: exit %d, stderr %q; want 1, registration refused", r.code, r.stderr)
	}

	listed := func(m *member) apiv1.NetworkNodeList {
		var l apiv1.NetworkNodeList
		r := cli(m, "nodes", "list", "-o", "json")
		if r.code == 0 {
			_ = json.Unmarshal([]byte(r.stdout), &l)
		}
		return l
	}
	for _, m := range members {
		nodetest.Eventually(t, 20*time.Second, m.org+": nodes list shows both nodes", func(context.Context) bool {
			return len(listed(m).Nodes) == 2
		})
	}
	if r := cli(members[0], "status"); r.code != 0 || !strings.Contains(r.stdout, "Event log height:") || !strings.Contains(squash(r.stdout), "Mesh nodes: 2") {
		t.Errorf("status = exit %d, %q; want the mesh rows", r.code, r.stdout)
	}
	if r := cli(members[0], "nodes", "list"); !strings.Contains(r.stdout, "Org2MSP") || !strings.Contains(r.stdout, "PEER-ID") {
		t.Errorf("nodes list = %q", r.stdout)
	}

	// Org2's admin deregisters Org2's node, published through Org1's node.
	var org2 apiv1.NodeIdentity
	_ = json.Unmarshal([]byte(cli(members[1], "node", "show", "-o", "json").stdout), &org2)
	if r := cli(members[0], "node", "deregister", "--admin-key", filepath.Join(dir, "Org1MSP.key"), "--org", "Org2MSP", "--node", org2.SignKey); r.code != 1 {
		t.Errorf("deregister with another org's key: exit %d, stderr %q; want 1", r.code, r.stderr)
	}
	if r := cli(members[0], "node", "deregister", "--admin-key", filepath.Join(dir, "Org2MSP.key"), "--org", "Org2MSP", "--node", org2.SignKey); r.code != 0 {
		t.Fatalf("node deregister: exit %d, stderr %q", r.code, r.stderr)
	}
	nodetest.Eventually(t, 20*time.Second, "Org2's node unregistered after the deregistration", func(context.Context) bool {
		r := cli(members[1], "node", "show", "-o", "json")
		var id apiv1.NodeIdentity
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &id) == nil && !id.Registered
	})
}
