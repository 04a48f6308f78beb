// Package nodetest starts real keymesh nodes for tests: a real badger store
// in t.TempDir(), the real REST API on 127.0.0.1:0, and — for members of a
// mesh — a real libp2p host on 127.0.0.1 registered with its org's admin
// key. It is the one harness behind every test that needs a running node
// (package node's own external tests, the CLI's, the Fabric and Ethereum
// integrations').
//
// Start serves a standalone node; NewMesh writes a genesis for a set of
// orgs and Mesh.Start adds nodes to it. A Node can be stopped and
// restarted on the same data, mints client tokens (Node.Client) and
// exposes the running *node.Node for in-process inspection. The harness
// uses only node's exported lifecycle (Init, Open, Listen, Serve, URL) and
// the Go client, so it keeps working while the node's insides change.
//
// Nothing here sleeps for a fixed time. A test that waits for time to pass
// (a rotated version to activate, a grant to expire) gives the node a
// Clock (WithClock) and advances it; a test that waits for the network
// polls with Eventually, bounded by time and by count. Everything stops
// when the test ends.
package nodetest

import (
	"context"
	"crypto/ed25519"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/node"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
	"github.com/keymesh/keymesh/node/enroll"
	"github.com/keymesh/keymesh/node/fabricid"
	"github.com/keymesh/keymesh/node/fabricid/fabricidtest"
)

// StopTimeout bounds how long a node may take to stop.
const StopTimeout = 20 * time.Second

// Option adjusts a node before it starts.
type Option func(*options)

type options struct {
	name       string
	dataDir    string
	cfg        []func(*node.Config)
	cas        []*fabricidtest.CA
	noRegister bool
	logger     *slog.Logger
}

// WithName names the node in failure messages (default its org).
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithOrg sets the node's org (a standalone node's default is "local").
func WithOrg(org string) Option {
	return WithConfig(func(c *node.Config) { c.Org = org })
}

// WithDataDir runs the node on dir instead of a fresh temporary directory;
// dir is initialised unless it already holds a node (as `keymesh init`
// leaves it).
func WithDataDir(dir string) Option { return func(o *options) { o.dataDir = dir } }

// WithConfig lets f change the node's configuration after the harness has
// filled it in (data directory, loopback addresses, short grace periods).
// Options apply in order.
func WithConfig(f func(*node.Config)) Option {
	return func(o *options) { o.cfg = append(o.cfg, f) }
}

// WithFabricCAs makes the node trust the CAs for their MSPs (fabric_msps).
func WithFabricCAs(cas ...*fabricidtest.CA) Option {
	return func(o *options) { o.cas = append(o.cas, cas...) }
}

// WithoutRegistration leaves a mesh node unregistered (the test registers
// it itself, e.g. through the CLI).
func WithoutRegistration() Option { return func(o *options) { o.noRegister = true } }

// Clock is a test clock a node runs on (WithClock): it starts at the real
// time and moves only when the test advances it. Safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at the current time.
func NewClock() *Clock { return &Clock{t: time.Now()} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// WithClock runs the node on c for its decisions, key activation, events
// and audit times (node.Config.Clock); its network traffic keeps real time.
func WithClock(c *Clock) Option {
	return WithConfig(func(cfg *node.Config) { cfg.Clock = c.Now })
}

// WithLogger gives the node a logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Node is a node started by the harness.
type Node struct {
	Name    string
	Org     string
	DataDir string
	// Config is what the node was opened with (Restart reuses it).
	Config node.Config
	// URL is the REST API's base URL; it changes on Restart.
	URL string
	// AdminToken is the node's admin token; Admin is a client holding it.
	AdminToken string
	Admin      *client.Client
	// Node is the running node for in-process inspection (nil while
	// stopped).
	Node *node.Node

	t      testing.TB
	mesh   *Mesh
	opts   options
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan error
}

// Start initialises and serves a standalone node of org "local" (or as
// configured); it stops when the test ends.
func Start(t testing.TB, opts ...Option) *Node {
	t.Helper()
	n := newNode(t, nil, "", opts)
	n.start()
	return n
}

func newNode(t testing.TB, m *Mesh, org string, opts []Option) *Node {
	t.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	dir := o.dataDir
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "data")
	}
	cfg := node.Config{
		DataDir: dir, Org: org, Listen: "127.0.0.1:0",
		P2PListen:     []string{"/ip4/127.0.0.1/tcp/0"},
		RotationGrace: time.Millisecond, AntiEntropyInterval: time.Second,
	}
	if m != nil {
		cfg.Genesis = m.GenesisFile
		cfg.RotationGrace = 100 * time.Millisecond
	}
	if len(o.cas) > 0 {
		cfg.FabricMSPs = trust(t, filepath.Dir(dir), o.cas)
	}
	for _, f := range o.cfg {
		f(&cfg)
	}
	name := o.name
	if name == "" {
		name = cfg.Org
	}
	if name == "" {
		name = "node"
	}
	return &Node{Name: name, Org: cfg.Org, DataDir: dir, Config: cfg, t: t, mesh: m, opts: o}
}

// trust writes the CAs' certificates into dir and returns the fabric_msps
// configuration naming them.
func trust(t testing.TB, dir string, cas []*fabricidtest.CA) map[string]fabricid.MSPConfig {
	t.Helper()
	msps := map[string]fabricid.MSPConfig{}
	for _, ca := range cas {
		p, err := ca.WriteFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		msps[ca.MSPID] = fabricid.MSPConfig{CAs: append(msps[ca.MSPID].CAs, p)}
	}
	return msps
}

// start initialises the data directory if needed, opens and serves the
// node, and (in a mesh) waits for its p2p host and registers it.
func (n *Node) start() {
	t := n.t
	t.Helper()
	cfg := n.Config
	if n.mesh != nil {
		cfg.Bootstrap = append(append([]string(nil), n.mesh.Boot...), n.Config.Bootstrap...)
	}
	if !node.Initialized(cfg.DataDir) {
		if _, err := node.Init(cfg, node.AdminTokenFile(cfg.DataDir)); err != nil {
			t.Fatalf("%s: node.Init() = %v", n.Name, err)
		}
	}
	tok, err := os.ReadFile(node.AdminTokenFile(cfg.DataDir))
	if err != nil {
		t.Fatalf("%s: admin token: %v", n.Name, err)
	}
	nd, err := node.Open(cfg, n.opts.logger)
	if err != nil {
		t.Fatalf("%s: node.Open() = %v", n.Name, err)
	}
	if err := nd.Listen(); err != nil {
		nd.Close()
		t.Fatalf("%s: Listen() = %v", n.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- nd.Serve(ctx) }()
	n.mu.Lock()
	n.Node, n.URL, n.cancel, n.done = nd, nd.URL(), cancel, done
	n.AdminToken = strings.TrimSpace(string(tok))
	n.mu.Unlock()
	t.Cleanup(n.Stop)
	n.Admin = n.NewClient(n.AdminToken)
	if n.mesh != nil {
		n.mesh.joined(n)
	}
}

// Stop stops the node and waits (at most StopTimeout) until it has
// released its store. It is safe to call more than once.
func (n *Node) Stop() {
	n.mu.Lock()
	cancel, done := n.cancel, n.done
	n.cancel, n.done, n.Node = nil, nil, nil
	n.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			n.t.Errorf("%s: Serve() = %v", n.Name, err)
		}
	case <-time.After(StopTimeout):
		n.t.Errorf("%s: did not stop within %s", n.Name, StopTimeout)
	}
}

// Restart stops the node (if it runs) and starts it again on the same
// data; in a mesh it dials the mesh's current bootstrap addresses.
func (n *Node) Restart() *Node {
	n.t.Helper()
	n.Stop()
	n.start()
	return n
}

// NewClient returns a client of the node holding token ("" for none).
func (n *Node) NewClient(token string) *client.Client {
	n.t.Helper()
	c, err := client.New(n.URL, token)
	if err != nil {
		n.t.Fatalf("%s: client.New() = %v", n.Name, err)
	}
	return c
}

// Token mints a token with the admin client.
func (n *Node) Token(t testing.TB, req apiv1.CreateTokenRequest) string {
	t.Helper()
	ct, err := n.Admin.CreateToken(Ctx(t), req)
	if err != nil {
		t.Fatalf("%s: CreateToken(%s) = %v", n.Name, req.Party, err)
	}
	return ct.Token
}

// Client mints a client token for party and returns a client holding it.
func (n *Node) Client(t testing.TB, party string) *client.Client {
	t.Helper()
	return n.NewClient(n.Token(t, apiv1.CreateTokenRequest{Party: party}))
}

// ChaincodeToken mints a chaincode-role token for token:<name>, bound to
// channel, chaincode and msps.
func (n *Node) ChaincodeToken(t testing.TB, name, channel, chaincode string, msps ...string) string {
	t.Helper()
	return n.Token(t, apiv1.CreateTokenRequest{Party: "token:" + name, Role: "chaincode",
		Channels: []string{channel}, Chaincode: chaincode, MSPs: msps})
}

// Metrics returns the node's /metrics page.
func (n *Node) Metrics(t testing.TB) string {
	t.Helper()
	req, err := http.NewRequestWithContext(Ctx(t), http.MethodGet, n.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: GET /metrics: %v", n.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: GET /metrics = %d, %v", n.Name, resp.StatusCode, err)
	}
	return string(b)
}

// CreateKeys creates the keys.
func (n *Node) CreateKeys(t testing.TB, names ...string) {
	t.Helper()
	for _, k := range names {
		if _, err := n.Admin.CreateKey(Ctx(t), apiv1.CreateKeyRequest{Name: k}); err != nil {
			t.Fatalf("%s: CreateKey(%s) = %v", n.Name, k, err)
		}
	}
}

// Grant grants party ops on each key.
func (n *Node) Grant(t testing.TB, party string, ops []string, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, err := n.Admin.CreateGrant(Ctx(t), apiv1.CreateGrantRequest{Key: k, Party: party, Ops: ops}); err != nil {
			t.Fatalf("%s: CreateGrant(%s, %s) = %v", n.Name, k, party, err)
		}
	}
}

// Revoke revokes party on each key.
func (n *Node) Revoke(t testing.TB, party string, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, err := n.Admin.Revoke(Ctx(t), k, party); err != nil {
			t.Fatalf("%s: Revoke(%s, %s) = %v", n.Name, k, party, err)
		}
	}
}

// WaitVersion waits (at most 15 s) until the node holds version v of each
// key, and returns what it knows of that version per key.
func (n *Node) WaitVersion(t testing.TB, v uint32, keys ...string) map[string]apiv1.KeyVersion {
	t.Helper()
	out := map[string]apiv1.KeyVersion{}
	for _, k := range keys {
		Eventually(t, 15*time.Second, fmt.Sprintf("%s holds %s version %d", n.Name, k, v), func(ctx context.Context) bool {
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

// Mesh is a test network: a genesis naming orgs with one admin key each,
// and the nodes started in it.
type Mesh struct {
	t           testing.TB
	Dir         string
	GenesisFile string
	Genesis     *network.Genesis
	// AdminKeys are the orgs' admin keys, as named in the genesis.
	AdminKeys map[string]ed25519.PrivateKey
	// Boot are the p2p addresses of the first node: every node started
	// later dials them.
	Boot []string

	opts  []Option
	mu    sync.Mutex
	nodes []*Node
}

// Namespaces are the key namespaces the genesis gives the first org.
var Namespaces = []string{"trade", "demo", "asset", "orders"}

// NewMesh writes a genesis naming orgs, each with a fresh admin key; the
// first owns Namespaces. opts apply to every node of the mesh.
func NewMesh(t testing.TB, orgs []string, opts ...Option) *Mesh {
	t.Helper()
	m := &Mesh{t: t, Dir: t.TempDir(), AdminKeys: map[string]ed25519.PrivateKey{}, opts: opts}
	g := &network.Genesis{Network: "nodetest", Created: time.Now().UTC().Truncate(time.Second)}
	for _, o := range orgs {
		pub, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		m.AdminKeys[o] = priv
		g.Orgs = append(g.Orgs, network.GenesisOrg{ID: o, AdminKeys: [][32]byte{[32]byte(pub)}})
	}
	if len(g.Orgs) > 0 {
		g.Orgs[0].Namespaces = append([]string(nil), Namespaces...)
	}
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	m.GenesisFile = filepath.Join(m.Dir, "genesis.json")
	if err := os.WriteFile(m.GenesisFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	m.Genesis = g
	return m
}

// Start starts a node of org in the mesh, named name, in its own data
// directory under the mesh's: it waits for the node's p2p host (the first
// node's addresses become everyone's bootstrap) and registers it with the
// org's admin key unless WithoutRegistration.
func (m *Mesh) Start(name, org string, opts ...Option) *Node {
	m.t.Helper()
	all := append([]Option{WithName(name), WithDataDir(filepath.Join(m.Dir, name))}, m.opts...)
	n := newNode(m.t, m, org, append(all, opts...))
	n.start()
	return n
}

// joined waits for a (re)started node's p2p host and registers it.
func (m *Mesh) joined(n *Node) {
	t := m.t
	t.Helper()
	var id *apiv1.NodeIdentity
	Eventually(t, 15*time.Second, n.Name+": p2p host up", func(ctx context.Context) bool {
		var err error
		id, err = n.Admin.NodeIdentity(ctx)
		return err == nil && len(id.Addrs) > 0
	})
	m.mu.Lock()
	if len(m.Boot) == 0 {
		m.Boot = id.Addrs
	}
	known := false
	for _, o := range m.nodes {
		known = known || o == n
	}
	if !known {
		m.nodes = append(m.nodes, n)
	}
	m.mu.Unlock()
	if !id.Registered && !n.opts.noRegister {
		if _, err := enroll.Register(Ctx(t), n.Admin, m.AdminKeys[n.Org], 24*time.Hour); err != nil {
			t.Fatalf("%s: enroll.Register() = %v", n.Name, err)
		}
	}
}

// Nodes returns the nodes started in the mesh, in order.
func (m *Mesh) Nodes() []*Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*Node(nil), m.nodes...)
}

// WaitListed waits until every given node lists want registered nodes.
func (m *Mesh) WaitListed(want int, nodes ...*Node) {
	m.t.Helper()
	for _, n := range nodes {
		Eventually(m.t, 15*time.Second, fmt.Sprintf("%s lists %d registered nodes", n.Name, want), func(ctx context.Context) bool {
			ns, err := n.Admin.ListNodes(ctx)
			return err == nil && len(ns) == want
		})
	}
}

// StartMesh starts a network with one node per org (named after it), each
// registered, and returns once every node lists every node.
func StartMesh(t testing.TB, orgs []string, opts ...Option) []*Node {
	t.Helper()
	m := NewMesh(t, orgs, opts...)
	var nodes []*Node
	for i, o := range orgs {
		nodes = append(nodes, m.Start(fmt.Sprintf("node%d", i+1), o))
	}
	m.WaitListed(len(nodes), nodes...)
	return nodes
}

// Poll is the interval at which Eventually checks its condition.
const Poll = 50 * time.Millisecond

// Eventually calls f until it reports true, and fails the test if that
// does not happen within d (checked at most d/Poll+1 times). Each call gets
// a context bounded by what is left of d.
func Eventually(t testing.TB, d time.Duration, what string, f func(context.Context) bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for i := int64(0); ; i++ {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		ok := f(ctx)
		cancel()
		if ok {
			return
		}
		if time.Now().After(deadline) || i > int64(d/Poll) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(Poll)
	}
}

// Ctx returns a context for calls to a node, cancelled after 30 s or when
// the test ends.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// FabricCA makes a test CA for mspID.
func FabricCA(t testing.TB, mspID string) *fabricidtest.CA {
	t.Helper()
	ca, err := fabricidtest.NewCA(mspID)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// FabricClient issues a client identity "CN=<cn>,OU=client,O=<MSP>" from
// ca.
func FabricClient(t testing.TB, ca *fabricidtest.CA, cn string) *fabricidtest.Identity {
	t.Helper()
	id, err := ca.Issue(pkix.Name{CommonName: cn, OrganizationalUnit: []string{"client"}, Organization: []string{ca.MSPID}}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return id
}
