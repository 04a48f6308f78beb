package event

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/keymesh/keymesh/network"
)

var update = flag.Bool("update", false, "regenerate testdata/vectors.json")

const vectorsPath = "testdata/vectors.json"

// vectorFile is testdata/vectors.json: the fixed inputs (seeds from which
// the Ed25519 and KEM keys are derived), a genesis and its id, a signed node
// record, and one signed event of each kind. Hex is lower case.
type vectorFile struct {
	Comment    string          `json:"comment"`
	NodeSeed   string          `json:"node_seed"`
	AdminSeed  string          `json:"admin_seed"`
	KEMSeed    string          `json:"kem_seed"`
	Genesis    json.RawMessage `json:"genesis"`
	NetworkID  string          `json:"network_id"`
	NodeRecord string          `json:"node_record"`
	Events     []eventVector   `json:"events"`
}

type eventVector struct {
	Name    string `json:"name"`
	Kind    uint8  `json:"kind"`
	Seq     uint64 `json:"seq"`
	Lamport uint64 `json:"lamport"`
	Time    string `json:"time"`
	Payload string `json:"payload"`
	Event   string `json:"event"`
	ID      string `json:"id"`
}

// generateVectors computes the vector file from the fixed inputs with the
// package code.
func generateVectors(t *testing.T) []byte {
	t.Helper()
	g := testGenesis()
	gj, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	nid := g.ID()
	f := vectorFile{
		Comment: "keymesh event vectors: Ed25519 keys from SHA-256 of the labels in event/fixtures_test.go " +
			"(node_seed and admin_seed are the node's and Org1MSP admin's seeds), KEM key from kem_seed. " +
			"event = hex of the binary form (key-version and key-share carry their wrapped blobs as attachments), id = SHA-256 of it without the attachment trailer. Regenerate with go test ./event -run TestVectors -update.",
		NodeSeed:   hex.EncodeToString(nodePriv.Seed()),
		AdminSeed:  hex.EncodeToString(adminPriv.Seed()),
		KEMSeed:    hex.EncodeToString(kemSeed),
		Genesis:    gj,
		NetworkID:  hex.EncodeToString(nid[:]),
		NodeRecord: string(mustJSON(t, signedRecord(t))),
	}
	for i, p := range samplePayloads(t) {
		e, raw := sampleEvent(t, i)
		id := e.ID()
		f.Events = append(f.Events, eventVector{
			Name: p.Name, Kind: uint8(e.Kind), Seq: e.Seq, Lamport: e.Lamport,
			Time: e.Time.Format(time.RFC3339Nano), Payload: string(e.Payload),
			Event: hex.EncodeToString(raw), ID: hex.EncodeToString(id[:]),
		})
	}
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func loadVectors(t testing.TB) vectorFile {
	t.Helper()
	data, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	var f vectorFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("decoding %s: %v", vectorsPath, err)
	}
	if len(f.Events) != int(KindKMIPAttrs) {
		t.Fatalf("%s holds %d events, want one of each of the %d kinds", vectorsPath, len(f.Events), KindKMIPAttrs)
	}
	return f
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex.DecodeString(%q): %v", s, err)
	}
	return b
}

// TestVectors checks that the package reproduces testdata/vectors.json byte
// for byte, or rewrites it with -update.
func TestVectors(t *testing.T) {
	t.Parallel()
	got := generateVectors(t)
	if *update {
		if err := os.WriteFile(vectorsPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", vectorsPath)
		return
	}
	want, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("generated vectors differ from %s; a wire format changed (run with -update only if that is intended)", vectorsPath)
	}
}

// TestVectorsParse reads the vectors independently of the generator: each
// event parses, verifies, re-encodes to the same bytes, has the recorded id,
// and carries a payload its kind's decoder accepts.
func TestVectorsParse(t *testing.T) {
	t.Parallel()
	f := loadVectors(t)
	g, err := network.ParseGenesis(f.Genesis)
	if err != nil {
		t.Fatalf("network.ParseGenesis(vector) = %v", err)
	}
	if got := g.ID(); hex.EncodeToString(got[:]) != f.NetworkID {
		t.Errorf("network.Genesis.ID() = %x, want %s", got, f.NetworkID)
	}
	r, err := network.DecodeNodeRecord([]byte(f.NodeRecord))
	if err != nil {
		t.Fatalf("network.DecodeNodeRecord(vector) = %v", err)
	}
	if err := g.VerifyNodeRecord(r); err != nil {
		t.Errorf("VerifyNodeRecord(vector) = %v", err)
	}
	if r.AdminKey != pub32(adminPriv) {
		t.Errorf("vector record admin key %x is not the admin seed's", r.AdminKey)
	}
	for i, v := range f.Events {
		t.Run(v.Name, func(t *testing.T) {
			raw := unhex(t, v.Event)
			e, err := Parse(raw)
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			if err := e.Verify(); err != nil {
				t.Errorf("Verify = %v", err)
			}
			if err := e.CheckNetwork(g.ID()); err != nil {
				t.Errorf("CheckNetwork = %v", err)
			}
			if !bytes.Equal(e.Marshal(), raw) {
				t.Errorf("Marshal() differs from the vector")
			}
			if err := e.VerifyAttachments(); err != nil {
				t.Errorf("VerifyAttachments = %v", err)
			}
			core := raw[:e.SignedSize()]
			if id := e.ID(); id != sha256.Sum256(core) || hex.EncodeToString(id[:]) != v.ID {
				t.Errorf("ID() = %x, want %s", id, v.ID)
			}
			if e.Kind != Kind(i+1) || uint8(e.Kind) != v.Kind || e.Seq != v.Seq || e.Lamport != v.Lamport ||
				e.Time.Format(time.RFC3339Nano) != v.Time || string(e.Payload) != v.Payload {
				t.Errorf("Parse = %+v, want the vector's fields", e)
			}
			if e.Issuer != network.NodeKey(pub32(nodePriv)) {
				t.Errorf("Issuer = %s, want the node seed's key", e.Issuer)
			}
			if _, err := decodePayload(e.Kind, e.Payload); err != nil {
				t.Errorf("decoding the %s payload = %v", e.Kind, err)
			}
		})
	}
}
