package member

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/mesh"
	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault"
	"github.com/keymesh/keymesh/vault/envelope"
	"github.com/keymesh/keymesh/vault/transport"
)

// clock is a test clock all members share.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// net is a synchronous in-memory network: what one member publishes is
// delivered to every other member's log at once, unless cut.
type net struct {
	mu      sync.Mutex
	members []*testMember
	cut     map[*testMember]bool
}

func (n *net) publisher(from *testMember) func([]byte) {
	return func(raw []byte) {
		n.mu.Lock()
		to := make([]*testMember, 0, len(n.members))
		for _, m := range n.members {
			if m != from && !n.cut[m] && !n.cut[from] {
				to = append(to, m)
			}
		}
		n.mu.Unlock()
		for _, m := range to {
			m.log.Deliver(raw)
		}
	}
}

type testMember struct {
	*Member
	log   *mesh.Log
	vault *vault.Vault
	org   string
}

type world struct {
	t      *testing.T
	g      *network.Genesis
	admins map[string]ed25519.PrivateKey
	clk    *clock
	net    *net
	seed   byte
}

func newWorld(t *testing.T, orgs ...string) *world {
	w := &world{t: t, admins: map[string]ed25519.PrivateKey{}, clk: &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)},
		net: &net{cut: map[*testMember]bool{}}, seed: 1}
	w.g = &network.Genesis{Network: "member-test", Created: w.clk.Now()}
	for i, o := range orgs {
		priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{w.seed}, 32))
		w.seed++
		w.admins[o] = priv
		org := network.GenesisOrg{ID: o, AdminKeys: [][32]byte{[32]byte(priv.Public().(ed25519.PublicKey))}}
		if i == 0 {
			org.Namespaces = []string{"trade"}
		}
		w.g.Orgs = append(w.g.Orgs, org)
	}
	return w
}

// join starts a registered member of org on a fresh in-memory store.
func (w *world) join(org string) *testMember {
	w.t.Helper()
	sign := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{w.seed}, 32))
	w.seed++
	store := kv.NewMem()
	v, err := vault.Open(store, vault.MasterKey(bytes.Repeat([]byte{w.seed}, 32)), vault.WithClock(w.clk.Now),
		vault.WithNetwork(envelope.NetworkID(w.g.ID())), vault.WithOwner(org))
	if err != nil {
		w.t.Fatal(err)
	}
	_, kemPub, err := v.GenerateNodeKeys()
	if err != nil {
		w.t.Fatal(err)
	}
	l, err := mesh.OpenLog(store, w.g, sign, mesh.LogOptions{Clock: w.clk.Now, Staleness: 10 * time.Second})
	if err != nil {
		w.t.Fatal(err)
	}
	l.Policy().SetGate(l.Fresh)
	tm := &testMember{log: l, vault: v, org: org}
	tm.Member = New(Config{Log: l, Vault: v, Org: org, PeerID: "12D3KooWtest", KEMKey: kemPub,
		Grace: time.Second, Publish: w.net.publisher(tm), Clock: w.clk.Now})
	w.net.mu.Lock()
	w.net.members = append(w.net.members, tm)
	w.net.mu.Unlock()
	// Catch up on what the others hold, then register.
	for _, o := range w.net.members {
		if o != tm {
			sync2(o.log, tm.log)
		}
	}
	rec, err := network.SignNodeRecord(w.admins[org], w.g.ID(), network.NodeRecord{
		Org: org, PeerID: "12D3KooWtest", SignKey: l.Self(), KEMKey: kemPub, Addrs: []string{"/ip4/127.0.0.1/tcp/1"},
		NotBefore: w.clk.Now().Add(-time.Hour), NotAfter: w.clk.Now().Add(24 * time.Hour),
	})
	if err != nil {
		w.t.Fatal(err)
	}
	raw, _ := json.Marshal(rec)
	if err := tm.Register(raw); err != nil {
		w.t.Fatal(err)
	}
	w.settle()
	return tm
}

// sync2 copies everything from's log holds into to's, as anti-entropy would.
func sync2(from, to *mesh.Log) {
	for range 4 {
		for issuer := range from.Summary() {
			evs, _ := from.Events(issuer, 0, 1<<20)
			to.DeliverBatch(evs)
		}
	}
}

// settle reconciles every member until nothing changes (bounded).
func (w *world) settle() {
	for range 4 {
		for _, m := range w.net.members {
			m.Reconcile()
		}
	}
}

func TestGrantSharesAndRevokeRotates(t *testing.T) {
	w := newWorld(t, "Org1MSP", "Org2MSP")
	a := w.join("Org1MSP")
	b := w.join("Org2MSP")
	if _, err := a.CreateKey("trade/price", vault.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if b.vault.Holds("trade/price", 1) {
		t.Fatal("Org2's node holds the key before any grant")
	}
	if _, err := a.Grant(policy.Grant{Key: "trade/price", Party: "org:Org2MSP", Ops: policy.OpsAll, Issuer: "admin"}); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if !b.vault.Holds("trade/price", 1) {
		t.Fatal("Org2's node does not hold v1 after the org grant")
	}
	if _, _, err := b.Revoke("trade/price", "org:Org2MSP", "admin"); !errors.Is(err, ErrNotOwner) {
		t.Errorf("Org2 revoking on Org1's key = %v, want %v", err, ErrNotOwner)
	}
	if _, n, err := a.Revoke("trade/price", "org:Org2MSP", "admin"); err != nil || n != 1 {
		t.Fatalf("Revoke = %d, %v", n, err)
	}
	w.settle()
	var versions int
	a.log.View(func(s *mesh.State) { versions = len(s.Keys["trade/price"].Versions) })
	if versions != 2 {
		t.Fatalf("key has %d versions after revoking an org, want 2 (rotated)", versions)
	}
	if b.vault.Holds("trade/price", 1) || b.vault.Holds("trade/price", 2) {
		t.Error("Org2's node still holds versions after its org was revoked")
	}
	if !a.vault.Holds("trade/price", 2) {
		t.Error("the owner does not hold the rotated version")
	}
	// The rotation is the endorsement floor at every holder (issue 10
	// item 3): no proposal timestamp selects the version Org2 held.
	if f, err := a.vault.EndorsementFloor("trade/price"); err != nil || f != 2 {
		t.Errorf("endorsement floor = %d, %v after revoking an org, want 2", f, err)
	}
}

func TestNamespaceOwnership(t *testing.T) {
	w := newWorld(t, "Org1MSP", "Org2MSP")
	b := w.join("Org2MSP")
	if _, err := b.CreateKey("trade/x", vault.CreateOptions{}); !errors.Is(err, ErrNotOwner) {
		t.Errorf("Org2 creating a trade/ key = %v, want %v", err, ErrNotOwner)
	}
	if _, err := b.CreateKey("org2msp/x", vault.CreateOptions{}); err != nil {
		t.Errorf("Org2 creating an org2msp/ key = %v", err)
	}
}

// TestForgedShareIsRefused: a share whose material does not match the
// version's commitment is refused by the recipient's vault; the recipient
// keeps waiting for a genuine copy (issue 8, finding 5).
func TestForgedShareIsRefused(t *testing.T) {
	w := newWorld(t, "Org1MSP", "Org2MSP")
	a := w.join("Org1MSP")
	b := w.join("Org2MSP")
	if _, err := a.CreateKey("trade/k", vault.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var check event.Digest
	var kemB []byte
	a.log.View(func(s *mesh.State) {
		check = s.Keys["trade/k"].Versions[0].Check
		kemB = s.Nodes[b.log.Self()].Record.KEMKey
	})
	planted := bytes.Repeat([]byte{0x5A}, 32)
	blob, err := transport.Wrap(kemB, transport.Binding{Network: w.g.ID(), Key: "trade/k", Version: 1, Recipient: b.log.Self()}, planted)
	if err != nil {
		t.Fatal(err)
	}
	err = b.vault.AcceptVersion(transport.Binding{Network: w.g.ID(), Key: "trade/k", Version: 1, Recipient: b.log.Self()}, w.clk.Now(), check, blob)
	if !errors.Is(err, vault.ErrMaterialMismatch) {
		t.Fatalf("AcceptVersion(planted material) = %v, want %v", err, vault.ErrMaterialMismatch)
	}
	if b.vault.Holds("trade/k", 1) {
		t.Error("the planted material was kept")
	}
}

// TestStaleOwnerRefusesKey: a node of another org cut off from the owner
// refuses the key after the staleness bound (stale_policy), and serves it
// again once it hears from the owner (issue 8, finding 7).
func TestStaleOwnerRefusesKey(t *testing.T) {
	w := newWorld(t, "Org1MSP", "Org2MSP")
	a := w.join("Org1MSP")
	b := w.join("Org2MSP")
	if _, err := a.CreateKey("trade/k", vault.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Grant(policy.Grant{Key: "trade/k", Party: "org:Org2MSP", Ops: policy.OpsAll, Issuer: "admin"}); err != nil {
		t.Fatal(err)
	}
	w.settle()
	p := policy.Principal{Parties: []policy.Party{"org:Org2MSP"}}
	if d := b.log.Policy().Decide(p, "trade/k", policy.OpDecrypt, w.clk.Now()); !d.Allowed {
		t.Fatalf("Org2 decide right after the grant = %+v, want allowed (a checkpoint follows every event)", d)
	}
	w.net.mu.Lock()
	w.net.cut[b] = true
	w.net.mu.Unlock()
	w.clk.Add(11 * time.Second)
	d := b.log.Policy().Decide(p, "trade/k", policy.OpDecrypt, w.clk.Now())
	if d.Allowed || !errors.Is(d.Err(), policy.ErrStalePolicy) {
		t.Fatalf("Org2 decide after 11 s cut off = %+v, want %v", d, policy.ErrStalePolicy)
	}
	if got := b.StaleOrgs(); len(got) != 1 || got[0] != "Org1MSP" {
		t.Errorf("StaleOrgs = %v, want [Org1MSP]", got)
	}
	// The owner's own node is never stale for its own keys.
	if d := a.log.Policy().Decide(policy.Principal{Parties: []policy.Party{"org:Org1MSP"}}, "trade/k", policy.OpDecrypt, w.clk.Now()); errors.Is(d.Err(), policy.ErrStalePolicy) {
		t.Error("the owner's node refuses its own key as stale")
	}
	w.net.mu.Lock()
	w.net.cut[b] = false
	w.net.mu.Unlock()
	if raw := a.log.Checkpoint(); raw != nil {
		b.log.Deliver(raw)
	}
	if d := b.log.Policy().Decide(p, "trade/k", policy.OpDecrypt, w.clk.Now()); !d.Allowed {
		t.Errorf("Org2 decide after hearing from Org1 again = %+v, want allowed", d)
	}
}

func TestDestroyReachesEveryHolder(t *testing.T) {
	w := newWorld(t, "Org1MSP", "Org2MSP")
	a := w.join("Org1MSP")
	b := w.join("Org2MSP")
	if _, err := a.CreateKey("trade/gone", vault.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Grant(policy.Grant{Key: "trade/gone", Party: "org:Org2MSP", Ops: policy.OpsAll, Issuer: "admin"}); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if _, err := a.DestroyKey("trade/gone"); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if b.vault.Holds("trade/gone", 1) {
		t.Error("Org2's node still holds a destroyed key")
	}
	holders, pending := a.DescribeKey("trade/gone")
	if len(holders) != 2 || len(pending) != 0 {
		t.Errorf("DescribeKey = %d holders, %d pending; want 2 and 0 (every holder acknowledged)", len(holders), len(pending))
	}
}

// TestSetMinDecryptionVersion: raising a key's minimum decryption version
// is an event of its own (a key-state payload with no state change); it
// was refused as malformed, so the route answered 500.
func TestSetMinDecryptionVersion(t *testing.T) {
	w := newWorld(t, "Org1MSP")
	a := w.join("Org1MSP")
	if _, err := a.CreateKey("trade/price", vault.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RotateKey("trade/price", new(time.Duration)); err != nil {
		t.Fatal(err)
	}
	k, err := a.SetMinDecryptionVersion("trade/price", 2)
	if err != nil {
		t.Fatalf("SetMinDecryptionVersion = %v", err)
	}
	if k.MinDecryptionVersion != 2 || k.State != vault.StateActive {
		t.Errorf("after it: min %d state %s, want 2 active", k.MinDecryptionVersion, k.State)
	}
}

// TestGrantSizeDoesNotGrowWithRevocations: a pair granted and revoked
// again and again, by two nodes of the owner org, keeps its grants small.
// Each grant's event follows the chains of the pair's revocations, so its
// Observed stays empty, and every node judges it the same way. (Before,
// the n-th grant listed every earlier revocation's ID: O(n) bytes per
// grant, O(n²) for the pair, on disk and in every fold.)
func TestGrantSizeDoesNotGrowWithRevocations(t *testing.T) {
	w := newWorld(t, "Org1MSP")
	a := w.join("Org1MSP")
	b := w.join("Org1MSP")
	if _, err := a.CreateKey("trade/price", vault.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.settle()
	const party = policy.Party("token:app")
	p := policy.Principal{Parties: []policy.Party{party}, Custodian: "Org1MSP"}
	decide := func(m *testMember) policy.Decision {
		return m.log.Policy().Decide(p, "trade/price", policy.OpDecrypt, w.clk.Now())
	}
	var first int
	for i := range 40 {
		w.clk.Add(time.Second)
		granter, revoker := a, b
		if i%3 == 2 {
			granter, revoker = b, a
		}
		g, err := granter.Grant(policy.Grant{Key: "trade/price", Party: party, Ops: policy.OpsAll, Issuer: "admin"})
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Observed) != 0 {
			t.Fatalf("grant %d lists %d revocations in Observed, want none", i, len(g.Observed))
		}
		enc, _ := json.Marshal(g)
		if i == 0 {
			first = len(enc)
		} else if len(enc) > first+8 {
			t.Fatalf("grant %d is %d bytes, the first was %d", i, len(enc), first)
		}
		for _, m := range []*testMember{a, b} {
			if d := decide(m); !d.Allowed || d.GrantID != g.ID {
				t.Fatalf("after grant %d: %+v, want allowed by %s", i, d, g.ID)
			}
		}
		w.clk.Add(time.Second)
		if _, _, err := revoker.Revoke("trade/price", party, "admin"); err != nil {
			t.Fatal(err)
		}
		for _, m := range []*testMember{a, b} {
			if d := decide(m); d.Allowed {
				t.Fatalf("after revocation %d: allowed by %s", i, d.GrantID)
			}
		}
	}
	if !bytes.Equal(a.log.Policy().Canonical(), b.log.Policy().Canonical()) {
		t.Error("the two nodes hold different policy states")
	}
}

// countingStore counts the reads of wrapped copies (mesh/att/).
type countingStore struct {
	kv.Store
	attReads atomic.Int64
}

func (s *countingStore) Get(key []byte) ([]byte, error) {
	if bytes.HasPrefix(key, []byte("mesh/att/")) {
		s.attReads.Add(1)
	}
	return s.Store.Get(key)
}

// TestReconcileReadsNoHeldCopy: a reconciliation of every key (as the
// first one after a start) reads no wrapped copy of a version the vault
// already holds: it counts copies without their blobs (State.HasCopies).
// A version the vault lacks is still read and accepted.
func TestReconcileReadsNoHeldCopy(t *testing.T) {
	w := newWorld(t, "Org1MSP")
	a := w.join("Org1MSP")
	store := &countingStore{Store: kv.NewMem()}
	sign := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x77}, 32))
	v, err := vault.Open(store, vault.MasterKey(bytes.Repeat([]byte{0x78}, 32)), vault.WithClock(w.clk.Now),
		vault.WithNetwork(envelope.NetworkID(w.g.ID())), vault.WithOwner("Org1MSP"))
	if err != nil {
		t.Fatal(err)
	}
	_, kemPub, err := v.GenerateNodeKeys()
	if err != nil {
		t.Fatal(err)
	}
	l, err := mesh.OpenLog(store, w.g, sign, mesh.LogOptions{Clock: w.clk.Now, Staleness: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b := &testMember{log: l, vault: v, org: "Org1MSP"}
	b.Member = New(Config{Log: l, Vault: v, Org: "Org1MSP", PeerID: "12D3KooWtest", KEMKey: kemPub,
		Grace: time.Second, Publish: w.net.publisher(b), Clock: w.clk.Now})
	w.net.mu.Lock()
	w.net.members = append(w.net.members, b)
	w.net.mu.Unlock()
	rec, err := network.SignNodeRecord(w.admins["Org1MSP"], w.g.ID(), network.NodeRecord{
		Org: "Org1MSP", PeerID: "12D3KooWtest", SignKey: l.Self(), KEMKey: kemPub, Addrs: []string{"/ip4/127.0.0.1/tcp/1"},
		NotBefore: w.clk.Now().Add(-time.Hour), NotAfter: w.clk.Now().Add(24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(rec)
	sync2(a.log, l)
	if err := b.Register(raw); err != nil {
		t.Fatal(err)
	}
	w.settle()
	// a creates keys: versions wrapped for b too, which b accepts (it reads
	// each copy once).
	for _, name := range []string{"trade/x", "trade/y"} {
		if _, err := a.CreateKey(name, vault.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w.settle()
	for _, name := range []string{"trade/x", "trade/y"} {
		if !b.vault.Holds(name, 1) {
			t.Fatalf("b does not hold %s v1", name)
		}
	}
	if store.attReads.Load() == 0 {
		t.Fatalf("b accepted its copies without reading them: the counter counts nothing")
	}
	before := store.attReads.Load()
	b.Reconcile()
	if got := store.attReads.Load() - before; got != 0 {
		t.Errorf("a reconciliation of held versions read %d wrapped copies, want 0", got)
	}
	// A version b lacks is read back and accepted.
	if _, err := a.RotateKey("trade/x", nil); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if !b.vault.Holds("trade/x", 2) {
		t.Errorf("b does not hold trade/x v2 after a rotation")
	}
}

// TestReconcileChunksEveryKey: a member that joins a mesh holding more
// keys than one reconciliation plans at once (reconcileChunk) gets a copy
// of every one of them: its first reconciliation, which covers every
// key, and the sharing node's both work through the keys chunk by chunk.
func TestReconcileChunksEveryKey(t *testing.T) {
	w := newWorld(t, "Org1MSP")
	a := w.join("Org1MSP")
	n := reconcileChunk + 3 // two chunks
	for i := range n {
		if _, err := a.CreateKey(fmt.Sprintf("trade/k%04d", i), vault.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w.settle()
	b := w.join("Org1MSP")
	w.settle()
	missing := 0
	for i := range n {
		if !b.vault.Holds(fmt.Sprintf("trade/k%04d", i), 1) {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("the joining member holds %d of %d keys, want all", n-missing, n)
	}
}
