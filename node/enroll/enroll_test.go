package enroll

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/vault/transport"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// TestRecord checks that the record Register signs verifies for the
// node's network under the genesis, and that a standalone node is refused.
func TestRecord(t *testing.T) {
	pub, admin, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	g := &network.Genesis{Network: "n", Created: t0, Orgs: []network.GenesisOrg{{ID: "Org1MSP", AdminKeys: [][32]byte{[32]byte(pub)}}}}
	nid := g.ID()
	signPub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, kemPub, err := transport.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	id := &apiv1.NodeIdentity{Org: "Org1MSP", NetworkID: nid.String(), PeerID: "12D3KooWtest", SignKey: network.NodeKey(signPub).Hex(), KEMKey: kemPub, Mesh: true}
	raw, err := Record(id, admin, t0, time.Hour)
	if err != nil {
		t.Fatalf("Record() error = %v", err)
	}
	r, err := network.DecodeNodeRecord(raw)
	if err != nil {
		t.Fatalf("DecodeNodeRecord(signed record) error = %v", err)
	}
	if err := g.VerifyNodeRecord(r); err != nil {
		t.Errorf("VerifyNodeRecord(signed record) = %v", err)
	}
	if !r.ValidAt(t0) || r.ValidAt(t0.Add(time.Hour)) {
		t.Errorf("record valid %s..%s, want from before %s for an hour", r.NotBefore, r.NotAfter, t0)
	}
	if _, err := Record(&apiv1.NodeIdentity{}, admin, t0, time.Hour); err == nil {
		t.Error("Record of a standalone node succeeded")
	}
}
