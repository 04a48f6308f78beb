package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
	"github.com/keymesh/keymesh/node/enroll"
	"github.com/keymesh/keymesh/policy"
)

// testMesh is a test network: a genesis with orgs and their admin keys.
type testMesh struct {
	t       *testing.T
	dir     string
	genesis string
	g       *event.Genesis
	admins  map[string]ed25519.PrivateKey
	boot    []string
}

func newTestMesh(t *testing.T, orgs ...string) *testMesh {
	t.Helper()
	m := &testMesh{t: t, dir: t.TempDir(), admins: map[string]ed25519.PrivateKey{}}
	g := &event.Genesis{Network: "test-mesh", Created: time.Now().UTC().Truncate(time.Second)}
	for _, o := range orgs {
		pub, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		m.admins[o] = priv
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
	m.genesis = filepath.Join(m.dir, "genesis.json")
	if err := os.WriteFile(m.genesis, b, 0o644); err != nil {
		t.Fatal(err)
	}
	m.g = g
	return m
}

// meshMember is one running node of a testMesh.
type meshMember struct {
	name, org, data string
	n               *Node
	kmip            KMIPConfig // kmip_failover_test.go
	admin           *client.Client
	adminTok        string
	stop            func()
}

func (m *testMesh) start(name, org string) *meshMember {
	m.t.Helper()
	mm := &meshMember{name: name, org: org, data: filepath.Join(m.dir, name)}
	return m.restart(mm)
}

func (m *testMesh) restart(mm *meshMember) *meshMember {
	t := m.t
	t.Helper()
	cfg := Config{
		DataDir: mm.data, Org: mm.org, Genesis: m.genesis, Listen: "127.0.0.1:0",
		P2PListen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: m.boot,
		RotationGrace: 100 * time.Millisecond, AntiEntropyInterval: time.Second, KMIP: mm.kmip,
	}
	if !Initialized(mm.data) {
		if _, err := Init(cfg, AdminTokenFile(mm.data)); err != nil {
			t.Fatalf("%s: Init() error = %v", mm.name, err)
		}
	}
	tok, err := os.ReadFile(AdminTokenFile(mm.data))
	if err != nil {
		t.Fatal(err)
	}
	mm.adminTok = strings.TrimSpace(string(tok))
	n, err := Open(cfg, nil)
	if err != nil {
		t.Fatalf("%s: Open() error = %v", mm.name, err)
	}
	if err := n.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx) }()
	mm.n = n
	var once sync.Once
	mm.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Errorf("%s did not stop", mm.name)
			}
		})
	}
	t.Cleanup(mm.stop)
	mm.admin, _ = client.New(n.URL(), mm.adminTok)
	// Wait for the p2p host; the first node becomes everyone's bootstrap.
	var id *apiv1.NodeIdentity
	eventually(t, 10*time.Second, mm.name+" p2p host up", func() bool {
		id, err = mm.admin.NodeIdentity(context.Background())
		return err == nil && len(id.Addrs) > 0
	})
	if len(m.boot) == 0 {
		m.boot = id.Addrs
	}
	if !id.Registered {
		if _, err := enroll.Register(context.Background(), mm.admin, m.admins[mm.org], 24*time.Hour); err != nil {
			t.Fatalf("%s: Register() error = %v", mm.name, err)
		}
	}
	return mm
}

func (mm *meshMember) client(t *testing.T, party string) *client.Client {
	t.Helper()
	ct, err := mm.admin.CreateToken(context.Background(), apiv1.CreateTokenRequest{Party: party})
	if err != nil {
		t.Fatalf("%s: CreateToken(%s) error = %v", mm.name, party, err)
	}
	c, _ := client.New(mm.n.URL(), ct.Token)
	return c
}

func eventually(t *testing.T, within time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if f() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func metricsOf(t *testing.T, mm *meshMember) string {
	t.Helper()
	resp, err := http.Get(mm.n.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestMesh runs three organisations (and a second node of Org1) with real
// libp2p hosts on 127.0.0.1: a grant at Org1 lets Org2 decrypt Org1's
// envelope; after revoking Org2, envelopes written after the revoke are
// refused at Org2; a node stopped during a grant and a revoke converges
// after restart; forged, replayed, unregistered and foreign events from a
// rogue gossip peer are refused and counted; a destroy reaches every node
// and is acknowledged.
func TestMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a network of nodes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	net := newTestMesh(t, "Org1MSP", "Org2MSP", "Org3MSP")
	org1 := net.start("org1", "Org1MSP")
	org2 := net.start("org2", "Org2MSP")
	org3 := net.start("org3", "Org3MSP")
	all := []*meshMember{org1, org2, org3}
	for _, mm := range all {
		eventually(t, 15*time.Second, mm.name+" sees 3 registered nodes", func() bool {
			ns, err := mm.admin.ListNodes(ctx)
			return err == nil && len(ns) == 3
		})
	}

	// Every node dials every registered node, not only the bootstrap node:
	// no single node is a point of failure for the spread of events.
	for _, mm := range all {
		eventually(t, 15*time.Second, mm.name+" connected to both other nodes", func() bool {
			st, err := mm.admin.Status(ctx)
			return err == nil && st.Mesh != nil && st.Mesh.Peers >= 2
		})
	}

	// Org1 creates a key, its app encrypts.
	if _, err := org1.admin.CreateKey(ctx, apiv1.CreateKeyRequest{Name: "trade/price"}); err != nil {
		t.Fatal(err)
	}
	if _, err := org1.admin.CreateGrant(ctx, apiv1.CreateGrantRequest{Key: "trade/price", Party: "token:app", Ops: []string{"encrypt", "decrypt"}}); err != nil {
		t.Fatal(err)
	}
	app1 := org1.client(t, "token:app")
	fctx := map[string]string{"field": "price"}
	env1, _, err := app1.EncryptValue(ctx, "trade/price", []byte("100.25"), fctx, "")
	if err != nil {
		t.Fatal(err)
	}
	// Org2's own token:app is not Org1's token:app: the grant's custodian
	// is Org1, so Org2's node does not honour it.
	app2 := org2.client(t, "token:app")
	if _, err := app2.DecryptValue(ctx, env1, fctx); !client.IsCode(err, apiv1.CodeNotGranted) {
		t.Errorf("Org2 decrypt before its grant error = %v, want not_granted", err)
	}

	// Org1 grants Org2: Org2's node receives the key and its app decrypts.
	if _, err := org1.admin.CreateGrant(ctx, apiv1.CreateGrantRequest{Key: "trade/price", Party: "org:Org2MSP", Ops: []string{"decrypt"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "Org2 decrypts Org1's envelope after the grant", func() bool {
		pt, err := app2.DecryptValue(ctx, env1, fctx)
		return err == nil && string(pt) == "100.25"
	})
	app3 := org3.client(t, "token:app")
	if _, err := app3.DecryptValue(ctx, env1, fctx); err == nil {
		t.Error("Org3 (no grant) decrypted Org1's envelope")
	}

	// A second Org1 node joins: Org1's versions are mirrored to it.
	org1b := net.start("org1b", "Org1MSP")
	app1b := org1b.client(t, "token:app")
	eventually(t, 10*time.Second, "the second Org1 node decrypts after mirroring", func() bool {
		pt, err := app1b.DecryptValue(ctx, env1, fctx)
		return err == nil && string(pt) == "100.25"
	})

	// Revoke Org2: the key rotates at once; what Org1 writes after it is
	// refused at Org2.
	if _, err := org1.admin.Revoke(ctx, "trade/price", "org:Org2MSP"); err != nil {
		t.Fatal(err)
	}
	env2, ver2, err := app1.EncryptValue(ctx, "trade/price", []byte("101.00"), fctx, "")
	if err != nil || ver2 != 2 {
		t.Fatalf("encrypt after revoke = v%d, %v; want version 2", ver2, err)
	}
	eventually(t, 10*time.Second, "Org2 refuses the envelope written after the revoke", func() bool {
		_, err := app2.DecryptValue(ctx, env2, fctx)
		return err != nil
	})
	eventually(t, 10*time.Second, "the second Org1 node holds the new version", func() bool {
		pt, err := app1b.DecryptValue(ctx, env2, fctx)
		return err == nil && string(pt) == "101.00"
	})

	// Org3's node is down while Org1 grants it and revokes another party;
	// after restart it converges.
	org3.stop()
	if _, err := org1.admin.CreateGrant(ctx, apiv1.CreateGrantRequest{Key: "trade/price", Party: "org:Org3MSP", Ops: []string{"decrypt"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := org1.admin.Revoke(ctx, "trade/price", "token:other"); err != nil {
		t.Fatal(err)
	}
	org3 = net.restart(org3)
	app3 = org3.client(t, "token:app3")
	eventually(t, 15*time.Second, "Org3 decrypts after restarting", func() bool {
		pt, err := app3.DecryptValue(ctx, env2, fctx)
		return err == nil && string(pt) == "101.00"
	})

	// A rogue gossip peer publishes a forged grant (signed by Org2's node
	// on Org1's key), a replayed event, an event from an unregistered node
	// and one from another network.
	rogueAttack(t, ctx, net, org1, org2)
	// The rogue host is not registered: the connection gater holds it on
	// probation, gossip filters it out, so nothing it publishes reaches
	// Org1's log (and nothing of Org1's reaches it; p2p's tests check the
	// anti-entropy side). Org1's verdicts are counted in /metrics.
	if m := metricsOf(t, org1); !strings.Contains(m, `keymesh_mesh_events_total{reason="ok",verdict="accept"}`) {
		t.Error("/metrics counts no accepted mesh event")
	}
	for _, st := range org1.n.mesh.log.Policy().Grants("trade/price") {
		if st.Grant.Party == "token:evil" {
			t.Error("the forged grant reached Org1's policy")
		}
	}

	// Org1's first node goes down: its second node keeps serving Org1's
	// applications, and administers the key (failover without a shared
	// database). The destroy it issues reaches the first node when it
	// returns.
	org1.stop()
	if pt, err := app1b.DecryptValue(ctx, env2, fctx); err != nil || string(pt) != "101.00" {
		t.Fatalf("Org1's second node with the first down: decrypt = %q, %v", pt, err)
	}
	if _, _, err := app1b.EncryptValue(ctx, "trade/price", []byte("102"), fctx, ""); err != nil {
		t.Fatalf("Org1's second node with the first down: encrypt error = %v", err)
	}
	if _, err := org1b.admin.DestroyKey(ctx, "trade/price", apiv1.DestroyKeyRequest{Confirm: "trade/price"}); err != nil {
		t.Fatal(err)
	}
	org1 = net.restart(org1)
	app1 = org1.client(t, "token:app")
	for _, c := range []*client.Client{app1, app1b, app3} {
		eventually(t, 10*time.Second, "every node refuses after destroy", func() bool {
			_, err := c.DecryptValue(ctx, env2, fctx)
			return client.IsCode(err, apiv1.CodeKeyDestroyed) || client.IsCode(err, apiv1.CodeNotGranted) || client.IsCode(err, apiv1.CodeNotFound)
		})
	}
	eventually(t, 15*time.Second, "every holder acknowledges the destroy", func() bool {
		k, err := org1b.admin.GetKey(ctx, "trade/price")
		return err == nil && k.State == "destroyed" && len(k.PendingAcks) == 0 && len(k.Holders) >= 3
	})
	// Crypto-shredding reaches the event logs: no node keeps a wrapped copy
	// of the destroyed key, and no vault keeps its material.
	for _, mm := range []*meshMember{org1, org1b, org2, org3} {
		eventually(t, 10*time.Second, mm.name+" erased the destroyed key's copies", func() bool {
			n := 0
			_ = mm.n.store.Scan([]byte("mesh/att/trade/price/"), func(k, v []byte) error { n++; return nil })
			_ = mm.n.store.Scan([]byte("vault/mat/trade/price/"), func(k, v []byte) error { n++; return nil })
			return n == 0
		})
	}
	st, err := org1.admin.Status(ctx)
	if err != nil || st.Mesh == nil || st.Mesh.Events == 0 || st.Mesh.Peers == 0 {
		t.Errorf("Status = %+v, %v; want mesh peers and events", st, err)
	}
}

// rogueAttack joins the gossip topic with a libp2p host that runs no
// validator and publishes bad events to Org1.
func rogueAttack(t *testing.T, ctx context.Context, net *testMesh, org1, org2 *meshMember) {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ps, err := pubsub.NewGossipSub(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	nid := net.g.ID()
	topic, err := ps.Join("/keymesh/" + nid.String() + "/events/1")
	if err != nil {
		t.Fatal(err)
	}
	id, err := org1.admin.NodeIdentity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ma, err := multiaddr.NewMultiaddr(id.Addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(ma)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, *ai); err != nil {
		t.Fatal(err)
	}
	sign := func(priv ed25519.PrivateKey, net event.NetworkID, seq uint64, kind event.Kind, payload any) []byte {
		b, _ := json.Marshal(payload)
		ev := event.Event{Network: net, Seq: seq, Lamport: 1 << 40, Time: time.Now(), Kind: kind, Payload: b}
		if seq > 1 {
			ev.Prev[0] = 1
		}
		_, raw, err := event.Sign(priv, ev)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	org2Key := org2.n.mesh.sign
	forged := sign(org2Key, nid, 1<<30, event.KindGrant, policy.Grant{ID: "forged", Key: "trade/price", Party: "token:evil", Ops: policy.OpsAll, Issuer: "x", IssuedAt: time.Now().UTC()})
	// A replay: Org2's first event (its node record) with its sequence
	// number reused for other content.
	replay := sign(org2Key, nid, 1, event.KindKeyCreate, event.KeyCreate{Key: "evil/key"})
	_, stranger, _ := ed25519.GenerateKey(nil)
	unregistered := sign(stranger, nid, 1, event.KindKeyCreate, event.KeyCreate{Key: "evil/other"})
	var otherNet event.NetworkID
	otherNet[0] = 1
	foreign := sign(org2Key, otherNet, 2, event.KindKeyCreate, event.KeyCreate{Key: "evil/net"})
	deadline := time.Now().Add(2 * time.Second)
	for len(topic.ListPeers()) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for range 3 { // gossip may drop the first publishes while the mesh forms
		for _, raw := range [][]byte{forged, replay, unregistered, foreign} {
			_ = topic.Publish(ctx, bytes.Clone(raw))
		}
		time.Sleep(300 * time.Millisecond)
	}
}
