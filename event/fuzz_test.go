package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/keymesh/keymesh/network"
)

// FuzzParse checks that Parse never panics and is non-malleable: whatever
// it accepts marshals back to the same bytes; and that Verify never panics
// and accepts only the vector events.
func FuzzParse(f *testing.F) {
	vf := loadVectors(f)
	// Events are known by ID, which covers everything signed: attachments
	// are unsigned by design (bound by the digests in the payload), so an
	// input with a vector's attachments swapped still verifies.
	known := map[[32]byte]bool{}
	for _, v := range vf.Events {
		raw := unhex(f, v.Event)
		f.Add(raw)
		e, err := Parse(raw)
		if err != nil {
			f.Fatalf("vector %s: %v", v.Name, err)
		}
		known[e.ID()] = true
	}
	f.Add([]byte{})
	f.Add([]byte{FormatVersion})
	f.Add(make([]byte, HeaderSize+SignatureSize))
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := Parse(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || e != nil {
				t.Fatalf("Parse() = %v, %v, want nil, %v", e, err, ErrMalformed)
			}
			return
		}
		if got := e.Marshal(); !bytes.Equal(got, in) {
			t.Fatalf("Parse(%x).Marshal() = %x", in, got)
		}
		if err := e.Verify(); err == nil && !known[e.ID()] {
			t.Fatalf("Verify accepted an event not in the vectors: %x", in)
		} else if err != nil && err != ErrBadSignature {
			t.Fatalf("Verify() = %v, want nil or %v", err, ErrBadSignature)
		}
		// Whatever the payload, decoding it must not panic.
		_, _ = decodePayload(e.Kind, e.Payload)
	})
}

// FuzzDecodeNodeRecord checks that network.DecodeNodeRecord never panics, accepts
// only the one encoding of a valid record, and that what it accepts
// verifies only if it is the vector record.
func FuzzDecodeNodeRecord(f *testing.F) {
	vf := loadVectors(f)
	f.Add([]byte(vf.NodeRecord))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"Org":"Org1MSP","PeerID":"p","SignKey":"","KEMKey":"","Addrs":[],"NotBefore":"2026-01-01T00:00:00Z","NotAfter":"2027-01-01T00:00:00Z","AdminKey":"","AdminSig":""}`))
	g := testGenesis()
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := network.DecodeNodeRecord(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("network.DecodeNodeRecord() = %v, want %v", err, ErrMalformed)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("network.DecodeNodeRecord accepted an invalid record: %v", err)
		}
		again, err := json.Marshal(r)
		if err != nil || !bytes.Equal(again, in) {
			t.Fatalf("json.Marshal(network.DecodeNodeRecord(%q)) = %q, %v", in, again, err)
		}
		if err := g.VerifyNodeRecord(r); err == nil && string(in) != vf.NodeRecord {
			t.Fatalf("VerifyNodeRecord accepted a record that is not the vector's: %q", in)
		}
	})
}

// FuzzDecodeKeyVersion checks the largest payload decoder the same way.
func FuzzDecodeKeyVersion(f *testing.F) {
	vf := loadVectors(f)
	f.Add([]byte(vf.Events[KindKeyVersion-1].Payload))
	f.Add([]byte(vf.Events[KindKeyShare-1].Payload))
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := DecodeKeyVersion(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeKeyVersion() = %v, want %v", err, ErrMalformed)
			}
			return
		}
		if err := v.Validate(); err != nil {
			t.Fatalf("DecodeKeyVersion accepted an invalid value: %v", err)
		}
	})
}

// FuzzParseGenesis checks that network.ParseGenesis never panics and that what it
// accepts is valid and survives a JSON round trip with the same id.
func FuzzParseGenesis(f *testing.F) {
	vf := loadVectors(f)
	f.Add([]byte(vf.Genesis))
	f.Add([]byte(`{"network":"n","created":"2026-01-01T00:00:00Z","orgs":[{"id":"A","admin_keys":["0101010101010101010101010101010101010101010101010101010101010101"]}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		g, err := network.ParseGenesis(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("network.ParseGenesis() = %v, want %v", err, ErrMalformed)
			}
			return
		}
		out, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		g2, err := network.ParseGenesis(out)
		if err != nil || g2.ID() != g.ID() {
			t.Fatalf("network.ParseGenesis(json.Marshal(g)) = %v; id changed", err)
		}
	})
}
