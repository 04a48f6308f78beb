package network

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/keymesh/keymesh/vault/transport"
)

// Fixed inputs for the tests, as package event's vectors use them.

// seed32 returns 32 bytes derived from a label, for fixed test inputs.
func seed32(label string) []byte {
	h := sha256.Sum256([]byte(label))
	return h[:]
}

func edKey(label string) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(seed32(label)) }

func pub32(k ed25519.PrivateKey) [32]byte { return [32]byte(k.Public().(ed25519.PublicKey)) }

var (
	nodePriv   = edKey("keymesh event vector node")
	node2Priv  = edKey("keymesh event vector node 2")
	adminPriv  = edKey("keymesh event vector admin Org1MSP")
	admin2Priv = edKey("keymesh event vector admin Org2MSP")
	kemSeed    = seed32("keymesh event vector kem")
	t0         = time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
)

func kemPub(t testing.TB) []byte {
	t.Helper()
	pub, err := transport.PublicKey(kemSeed)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func testGenesis() *Genesis {
	return &Genesis{
		Network: "vector-net",
		Created: t0,
		Orgs: []GenesisOrg{
			{ID: "Org1MSP", AdminKeys: [][32]byte{pub32(adminPriv)}},
			{ID: "Org2MSP", AdminKeys: [][32]byte{pub32(admin2Priv), pub32(edKey("Org2MSP second admin"))}},
		},
		Bootstrap: []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWExample"},
	}
}

// testRecord returns an unsigned, valid node record of nodePriv in Org1MSP.
func testRecord(t testing.TB) NodeRecord {
	return NodeRecord{
		Org:       "Org1MSP",
		PeerID:    "12D3KooWExamplePeerID",
		SignKey:   NodeKey(pub32(nodePriv)),
		KEMKey:    kemPub(t),
		Addrs:     []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/udp/4001/quic-v1"},
		NotBefore: t0,
		NotAfter:  t0.Add(365 * 24 * time.Hour),
	}
}

func signedRecord(t testing.TB) NodeRecord {
	t.Helper()
	r, err := SignNodeRecord(adminPriv, testGenesis().ID(), testRecord(t))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func itoa(n int) string { return strconv.Itoa(n) }
