package event

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"testing"
	"time"

	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault/transport"
)

// seed32 returns 32 bytes derived from a label, for fixed test inputs.
func seed32(label string) []byte {
	h := sha256.Sum256([]byte(label))
	return h[:]
}

// pattern returns n fixed bytes derived from a label.
func pattern(label string, n int) []byte {
	var b []byte
	for i := 0; len(b) < n; i++ {
		h := sha256.Sum256(binary.BigEndian.AppendUint32([]byte(label), uint32(i)))
		b = append(b, h[:]...)
	}
	return b[:n]
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

func testGenesis() *network.Genesis {
	return &network.Genesis{
		Network: "vector-net",
		Created: t0,
		Orgs: []network.GenesisOrg{
			{ID: "Org1MSP", AdminKeys: [][32]byte{pub32(adminPriv)}},
			{ID: "Org2MSP", AdminKeys: [][32]byte{pub32(admin2Priv), pub32(edKey("Org2MSP second admin"))}},
		},
		Bootstrap: []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWExample"},
	}
}

// testRecord returns an unsigned, valid node record of nodePriv in Org1MSP.
func testRecord(t testing.TB) network.NodeRecord {
	return network.NodeRecord{
		Org:       "Org1MSP",
		PeerID:    "12D3KooWExamplePeerID",
		SignKey:   network.NodeKey(pub32(nodePriv)),
		KEMKey:    kemPub(t),
		Addrs:     []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/udp/4001/quic-v1"},
		NotBefore: t0,
		NotAfter:  t0.Add(365 * 24 * time.Hour),
	}
}

func signedRecord(t testing.TB) network.NodeRecord {
	t.Helper()
	r, err := network.SignNodeRecord(adminPriv, testGenesis().ID(), testRecord(t))
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

// samplePayloads returns one valid payload of each kind, in Kind order.
func samplePayloads(t testing.TB) []struct {
	Name    string
	Kind    Kind
	Payload []byte
} {
	t.Helper()
	nid := testGenesis().ID()
	dereg, err := network.SignDeregister(adminPriv, nid, network.Deregister{Org: "Org1MSP", SignKey: network.NodeKey(pub32(node2Priv)), LastSeq: 7, At: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	w1 := Wrap{Recipient: network.NodeKey(pub32(nodePriv)), Digest: DigestOf(pattern("blob 1", transport.BlobSizeV1))}
	w2 := Wrap{Recipient: network.NodeKey(pub32(node2Priv)), Digest: DigestOf(pattern("blob 2", transport.BlobSizeV1))}
	party := policy.MustParseParty("org:Org2MSP")
	return []struct {
		Name    string
		Kind    Kind
		Payload []byte
	}{
		{"node-record", KindNodeRecord, mustJSON(t, signedRecord(t))},
		{"deregister", KindDeregister, mustJSON(t, dereg)},
		{"key-create", KindKeyCreate, mustJSON(t, KeyCreate{Key: "trade/price", Exportable: true})},
		{"key-version", KindKeyVersion, mustJSON(t, KeyVersion{Key: "trade/price", Version: 1, ActivateAt: t0.Add(2 * time.Second), Check: DigestOf([]byte("material check")), Wraps: []Wrap{w1, w2}})},
		{"key-share", KindKeyShare, mustJSON(t, KeyShare{Key: "trade/price", Shares: []Share{{Version: 1, ActivateAt: t0.Add(2 * time.Second), Wrap: w2}}})},
		{"key-state", KindKeyState, mustJSON(t, KeyState{Key: "trade/price", State: StateDeactivated, MinDecryptionVersion: 2})},
		{"key-destroy", KindKeyDestroy, mustJSON(t, KeyDestroy{Key: "trade/price"})},
		{"destroy-ack", KindDestroyAck, mustJSON(t, DestroyAck{Key: "trade/price"})},
		{"grant", KindGrant, mustJSON(t, policy.Grant{
			ID: "g-1", Key: "trade/price", Party: party, Ops: policy.OpsAll,
			NotAfter: t0.Add(30 * 24 * time.Hour), Issuer: "node:" + network.NodeKey(pub32(nodePriv)).String(), IssuedAt: t0,
		})},
		{"revoke", KindRevoke, mustJSON(t, policy.Revocation{
			ID: "r-1", Key: "trade/price", Party: party, Issuer: "node:" + network.NodeKey(pub32(nodePriv)).String(), IssuedAt: t0.Add(time.Minute),
		})},
		{"kmip-attrs", KindKMIPAttrs, mustJSON(t, KMIPAttrs{Key: "trade/price", Owner: "kmip:mongodb-prod", Attrs: []KMIPAttr{
			// A KMIP Name attribute "db-master", TTLV-encoded as package kmip stores it.
			{Name: "Name", Index: 0, TTLV: []byte("\x42\x00\x08\x01\x00\x00\x00\x40\x42\x00\x0a\x07\x00\x00\x00\x04Name\x00\x00\x00\x00" +
				"\x42\x00\x0b\x01\x00\x00\x00\x28\x42\x00\x55\x07\x00\x00\x00\x09db-master\x00\x00\x00\x00\x00\x00\x00" +
				"\x42\x00\x54\x05\x00\x00\x00\x04\x00\x00\x00\x01\x00\x00\x00\x00")},
		}})},
	}
}

// decodePayload decodes p with the function of kind k.
func decodePayload(k Kind, p []byte) (any, error) {
	switch k {
	case KindNodeRecord:
		return network.DecodeNodeRecord(p)
	case KindDeregister:
		return network.DecodeDeregister(p)
	case KindKeyCreate:
		return DecodeKeyCreate(p)
	case KindKeyVersion:
		return DecodeKeyVersion(p)
	case KindKeyShare:
		return DecodeKeyShare(p)
	case KindKeyState:
		return DecodeKeyState(p)
	case KindKeyDestroy:
		return DecodeKeyDestroy(p)
	case KindDestroyAck:
		return DecodeDestroyAck(p)
	case KindGrant:
		return DecodeGrant(p)
	case KindRevoke:
		return DecodeRevoke(p)
	case KindKMIPAttrs:
		return DecodeKMIPAttrs(p)
	}
	return nil, ErrMalformed
}

// sampleEvent returns a signed event of the given kind with the sample
// payload, and its encoding.
func sampleEvent(t testing.TB, i int) (Event, []byte) {
	t.Helper()
	p := samplePayloads(t)[i]
	var att [][]byte
	switch p.Kind {
	case KindKeyVersion:
		att = [][]byte{pattern("blob 1", transport.BlobSizeV1), pattern("blob 2", transport.BlobSizeV1)}
	case KindKeyShare:
		att = [][]byte{pattern("blob 2", transport.BlobSizeV1)}
	}
	ev := Event{
		Network: testGenesis().ID(), Seq: uint64(i + 1), Lamport: uint64(10 + i),
		Time: t0.Add(time.Duration(i) * time.Second), Kind: p.Kind, Payload: p.Payload,
		Attachments: att,
	}
	if i > 0 {
		ev.Prev = [32]byte(seed32("prev " + itoa(i)))
	}
	if i >= 2 {
		// Every event from the third on follows one of node 2's.
		ev.Deps = []Dep{{Issuer: network.NodeKey(pub32(node2Priv)), Seq: uint64(i), ID: [32]byte(seed32("dep " + itoa(i)))}}
	}
	e, raw, err := Sign(nodePriv, ev)
	if err != nil {
		t.Fatalf("Sign(%s) = %v", p.Name, err)
	}
	return e, raw
}
