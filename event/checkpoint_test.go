package event

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/keymesh/keymesh/internal/tamper"
	"github.com/keymesh/keymesh/network"
)

func sampleCheckpoint(t testing.TB) (Checkpoint, []byte) {
	t.Helper()
	c, raw, err := SignCheckpoint(nodePriv, Checkpoint{
		Network: testGenesis().ID(), Time: t0.Add(time.Minute),
		Heads: []Head{{Issuer: network.NodeKey(pub32(nodePriv)), Seq: 7}, {Issuer: network.NodeKey(pub32(node2Priv)), Seq: 3}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, raw
}

func TestCheckpointRoundTrip(t *testing.T) {
	t.Parallel()
	c, raw := sampleCheckpoint(t)
	if !IsCheckpoint(raw) || IsCheckpoint([]byte{FormatVersion}) {
		t.Fatal("IsCheckpoint misjudges")
	}
	got, err := ParseCheckpoint(raw)
	if err != nil {
		t.Fatalf("ParseCheckpoint = %v", err)
	}
	if err := got.Verify(); err != nil {
		t.Errorf("Verify = %v", err)
	}
	if !bytes.Equal(got.Marshal(), raw) || got.Issuer != c.Issuer || !got.Time.Equal(c.Time) || len(got.Heads) != 2 {
		t.Errorf("ParseCheckpoint(Sign) = %+v, want %+v", got, c)
	}
}

// TestCheckpointTamper flips bits and cuts (all of them under
// KEYMESH_EXHAUSTIVE=1, else a sample; see internal/tamper): every flip
// fails to parse or to verify, every prefix to parse.
func TestCheckpointTamper(t *testing.T) {
	t.Parallel()
	_, raw := sampleCheckpoint(t)
	for _, i := range tamper.Bits(t, len(raw)) {
		b := tamper.Flip(raw, i)
		c, err := ParseCheckpoint(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("bit %d: ParseCheckpoint = %v, want %v", i, err, ErrMalformed)
			}
			continue
		}
		if c.Verify() != ErrBadSignature {
			t.Fatalf("bit %d: a tampered checkpoint verifies", i)
		}
	}
	for _, n := range tamper.Bytes(t, len(raw)) {
		if _, err := ParseCheckpoint(raw[:n]); err == nil {
			t.Fatalf("a %d-byte prefix parses", n)
		}
	}
}

func TestCheckpointStrict(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]Checkpoint{
		"unsorted": {Network: testGenesis().ID(), Time: t0, Heads: []Head{{Issuer: network.NodeKey{2}, Seq: 1}, {Issuer: network.NodeKey{1}, Seq: 1}}},
		"seq-0":    {Network: testGenesis().ID(), Time: t0, Heads: []Head{{Issuer: network.NodeKey{1}, Seq: 0}}},
		"no-time":  {Network: testGenesis().ID()},
	} {
		if _, _, err := SignCheckpoint(nodePriv, c); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: SignCheckpoint = %v, want %v", name, err, ErrMalformed)
		}
	}
}

func FuzzParseCheckpoint(f *testing.F) {
	_, raw := sampleCheckpoint(f)
	f.Add(raw)
	f.Add([]byte{CheckpointFormat})
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := ParseCheckpoint(in)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Marshal(), in) {
			t.Fatalf("ParseCheckpoint(%x).Marshal() differs", in)
		}
	})
}

// TestGenesisNamespaces: namespaces are part of the network id only when
// some org lists one (so a genesis without them keeps its id), no
// namespace belongs to two orgs, and ownership follows the rules of
// NamespaceOwner.
func TestGenesisNamespaces(t *testing.T) {
	t.Parallel()
	g := testGenesis()
	before := g.ID()
	withNS := *g
	withNS.Orgs = append([]network.GenesisOrg(nil), g.Orgs...)
	withNS.Orgs[0].Namespaces = []string{"trade"}
	if withNS.ID() == before {
		t.Error("namespaces do not change the network id")
	}
	if err := withNS.Validate(); err != nil {
		t.Fatalf("Validate = %v", err)
	}
	if o, ok := withNS.KeyOwner("trade/price"); !ok || o != withNS.Orgs[0].ID {
		t.Errorf("KeyOwner(trade/price) = %q, %v", o, ok)
	}
	dup := withNS
	dup.Orgs = append([]network.GenesisOrg(nil), withNS.Orgs...)
	if len(dup.Orgs) > 1 {
		dup.Orgs[1].Namespaces = []string{"trade"}
		if err := dup.Validate(); !errors.Is(err, ErrMalformed) {
			t.Errorf("a namespace of two orgs: Validate = %v, want %v", err, ErrMalformed)
		}
	}
	one := network.Genesis{Network: "n", Created: t0, Orgs: g.Orgs[:1]}
	if o, ok := one.KeyOwner("anything/k"); !ok || o != g.Orgs[0].ID {
		t.Errorf("one-org network: KeyOwner = %q, %v", o, ok)
	}
}
