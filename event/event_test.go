package event

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keymesh/keymesh/internal/tamper"
	"github.com/keymesh/keymesh/network"
)

// TestKindValues pins the persisted kind values: changing one would make
// stored and gossiped events mean something else.
func TestKindValues(t *testing.T) {
	t.Parallel()
	want := map[Kind]uint8{
		KindNodeRecord: 1, KindDeregister: 2, KindKeyCreate: 3, KindKeyVersion: 4, KindKeyShare: 5,
		KindKeyState: 6, KindKeyDestroy: 7, KindDestroyAck: 8, KindGrant: 9, KindRevoke: 10, KindKMIPAttrs: 11,
	}
	for k, v := range want {
		if uint8(k) != v {
			t.Errorf("%s = %d, want %d", k, uint8(k), v)
		}
		if !k.Valid() || strings.HasPrefix(k.String(), "kind(") {
			t.Errorf("Kind(%d) is not valid or has no name: %q", v, k)
		}
	}
	for _, k := range []Kind{0, 12, 255} {
		if k.Valid() || k.String() != "kind("+itoa(int(k))+")" {
			t.Errorf("Kind(%d): Valid() = %v, String() = %q", uint8(k), k.Valid(), k)
		}
	}
	if KindGrant.String() != "grant" || KindKeyVersion.String() != "key-version" {
		t.Errorf("names: %q %q", KindGrant, KindKeyVersion)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestNodeKeyText(t *testing.T) {
	t.Parallel()
	k := network.NodeKey(pub32(nodePriv))
	if len(k.String()) != 16 || !strings.HasPrefix(k.Hex(), k.String()) || len(k.Hex()) != 64 {
		t.Errorf("String() = %q, Hex() = %q", k, k.Hex())
	}
	text, _ := k.MarshalText()
	var back network.NodeKey
	if err := back.UnmarshalText(text); err != nil || back != k {
		t.Errorf("UnmarshalText(MarshalText()) = %v, %v", back, err)
	}
	if got, err := network.ParseKey(k.Hex()); err != nil || network.NodeKey(got) != k {
		t.Errorf("network.ParseKey(Hex()) = %x, %v", got, err)
	}
	for _, bad := range []string{"", k.Hex()[:62], k.Hex() + "00", strings.ToUpper(k.Hex()), " " + k.Hex()[1:], "zz" + k.Hex()[2:]} {
		if err := back.UnmarshalText([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("UnmarshalText(%q) = %v, want %v", bad, err, ErrMalformed)
		}
	}
}

func TestSignParseVerify(t *testing.T) {
	t.Parallel()
	for i := range samplePayloads(t) {
		e, raw := sampleEvent(t, i)
		if e.Issuer != network.NodeKey(pub32(nodePriv)) {
			t.Errorf("Sign set Issuer %s, want the signer's key", e.Issuer)
		}
		att := 2
		for _, a := range e.Attachments {
			att += 4 + len(a)
		}
		if !bytes.Equal(e.Marshal(), raw) || len(raw) != e.SignedSize()+att {
			t.Errorf("Sign returned an encoding that is not Marshal()")
		}
		p, err := Parse(raw)
		if err != nil {
			t.Fatalf("Parse(Sign()) = %v", err)
		}
		if err := p.Verify(); err != nil {
			t.Errorf("Verify() = %v", err)
		}
		if p.Network != e.Network || p.Issuer != e.Issuer || p.Seq != e.Seq || p.Lamport != e.Lamport ||
			!p.Time.Equal(e.Time) || p.Kind != e.Kind || !bytes.Equal(p.Payload, e.Payload) || p.Sig != e.Sig {
			t.Errorf("Parse(Sign(e)) = %+v, want %+v", p, e)
		}
		if p.ID() != e.ID() {
			t.Errorf("ID differs after Parse")
		}
	}
}

func TestSignNormalises(t *testing.T) {
	t.Parallel()
	payload := []byte(`{"Key":"a/b"}`)
	local := time.FixedZone("X", 3600)
	e, _, err := Sign(nodePriv, Event{Seq: 1, Lamport: 1, Time: t0.In(local), Kind: KindKeyDestroy, Payload: payload, Issuer: network.NodeKey{1}})
	if err != nil {
		t.Fatal(err)
	}
	payload[0] = 'X'
	if e.Payload[0] != '{' {
		t.Error("Sign's event aliases the caller's payload")
	}
	if e.Time.Location() != time.UTC || !e.Time.Equal(t0) {
		t.Errorf("Sign Time = %v, want %v in UTC", e.Time, t0)
	}
	if e.Issuer != network.NodeKey(pub32(nodePriv)) {
		t.Error("Sign did not overwrite Issuer")
	}
	// An empty payload is a valid event (payload decoders reject it).
	if _, raw, err := Sign(nodePriv, Event{Seq: 1, Lamport: 1, Time: t0, Kind: KindKeyDestroy}); err != nil {
		t.Errorf("Sign(empty payload) = %v", err)
	} else if p, err := Parse(raw); err != nil || p.Verify() != nil || p.Payload == nil {
		t.Errorf("Parse(empty payload) = %+v, %v", p, err)
	}
}

func TestSignRejects(t *testing.T) {
	t.Parallel()
	ok := Event{Seq: 1, Lamport: 1, Time: t0, Kind: KindGrant, Payload: []byte("{}")}
	for _, tc := range []struct {
		name string
		mod  func(*Event)
	}{
		{"seq-0", func(e *Event) { e.Seq = 0 }},
		{"lamport-0", func(e *Event) { e.Lamport = 0 }},
		{"kind-0", func(e *Event) { e.Kind = 0 }},
		{"kind-12", func(e *Event) { e.Kind = 12 }},
		{"zero-time", func(e *Event) { e.Time = time.Time{} }},
		{"epoch", func(e *Event) { e.Time = time.Unix(0, 0) }},
		{"before-1970", func(e *Event) { e.Time = time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"after-2262", func(e *Event) { e.Time = time.Date(2263, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"payload-too-large", func(e *Event) { e.Payload = make([]byte, MaxPayload+1) }},
	} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			e := ok
			tc.mod(&e)
			if _, raw, err := Sign(nodePriv, e); !errors.Is(err, ErrMalformed) || raw != nil {
				t.Errorf("Sign() = %x, %v, want %v", raw, err, ErrMalformed)
			}
		})
	}
	if _, _, err := Sign(nodePriv[:31], ok); err == nil {
		t.Error("Sign(short key) succeeded")
	}
	e := ok
	e.Payload = make([]byte, MaxPayload)
	if _, raw, err := Sign(nodePriv, e); err != nil || len(raw) != HeaderSize+MaxPayload+SignatureSize+2 {
		t.Errorf("Sign(MaxPayload) = %d bytes, %v; want %d bytes", len(raw), err, HeaderSize+MaxPayload+SignatureSize+2)
	} else if _, err := Parse(raw); err != nil {
		t.Errorf("Parse(MaxSize event) = %v", err)
	}
}

// TestBitFlips flips bits of every vector event (every bit under
// KEYMESH_EXHAUSTIVE=1, else a sample covering the header, the end of the
// signed part and the attachments, see internal/tamper): each must fail to
// parse or fail to verify.
func TestBitFlips(t *testing.T) {
	t.Parallel()
	f := loadVectors(t)
	for _, v := range f.Events {
		raw := unhex(t, v.Event)
		orig, err := Parse(raw)
		if err != nil {
			t.Fatalf("%s: Parse = %v", v.Name, err)
		}
		for _, i := range tamper.Bits(t, len(raw), orig.SignedSize(), orig.SignedSize()+2) {
			b := tamper.Flip(raw, i)
			e, err := Parse(b)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("%s bit %d: Parse = %v, want %v", v.Name, i, err, ErrMalformed)
				}
				continue
			}
			if i/8 >= e.SignedSize()+2 {
				// An attachment: unsigned, bound by the digests in the
				// signed payload.
				if err := e.VerifyAttachments(); !errors.Is(err, ErrMalformed) {
					t.Fatalf("%s bit %d: VerifyAttachments = %v, want %v", v.Name, i, err, ErrMalformed)
				}
				continue
			}
			if err := e.Verify(); err != ErrBadSignature {
				t.Fatalf("%s bit %d: Verify = %v, want %v", v.Name, i, err, ErrBadSignature)
			}
		}
	}
}

// TestTruncation checks that proper prefixes of an event (every one under
// KEYMESH_EXHAUSTIVE=1, else a sample; see internal/tamper), and the event
// with a byte appended, fail to parse.
func TestTruncation(t *testing.T) {
	t.Parallel()
	_, raw := sampleEvent(t, int(KindKeyCreate)-1)
	for _, n := range tamper.Bytes(t, len(raw)) {
		if e, err := Parse(raw[:n]); !errors.Is(err, ErrMalformed) || e != nil {
			t.Fatalf("Parse(first %d of %d bytes) = %v, %v, want %v", n, len(raw), e, err, ErrMalformed)
		}
	}
	if _, err := Parse(append(bytes.Clone(raw), 0)); !errors.Is(err, ErrMalformed) {
		t.Errorf("Parse(event || 0) = %v, want %v", err, ErrMalformed)
	}
}

func TestParseStrict(t *testing.T) {
	t.Parallel()
	_, raw := sampleEvent(t, int(KindKeyCreate)-1)
	set := func(off int, v []byte) []byte {
		b := bytes.Clone(raw)
		copy(b[off:], v)
		return b
	}
	u64 := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	plen := HeaderSize - 4 + DepSize // the sample has one dependency
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"version-0", set(0, []byte{0})},
		{"version-1", set(0, []byte{1})},
		{"version-3", set(0, []byte{3})},
		{"seq-0", set(65, u64(0))},
		{"prev-zero", set(73, make([]byte, 32))},
		{"lamport-0", set(105, u64(0))},
		{"lamport-below-seq", set(105, u64(2))},
		{"time-0", set(113, u64(0))},
		{"time-negative", set(113, u64(math.MaxUint64))},
		{"kind-0", set(121, []byte{0})},
		{"kind-12", set(121, []byte{12})},
		{"deps-over-max", set(122, []byte{MaxDeps + 1})},
		{"deps-count-long", set(122, []byte{2})},
		{"dep-self", set(123, raw[33:65])},
		{"dep-seq-0", set(123+32, u64(0))},
		{"dep-seq-not-below-lamport", set(123+32, u64(12))},
		{"payload-len-short", set(plen, u32(uint32(len(raw)-HeaderSize-DepSize-SignatureSize-3)))},
		{"payload-len-long", set(plen, u32(uint32(len(raw)-HeaderSize-DepSize-SignatureSize-1)))},
		{"payload-len-max", set(plen, u32(math.MaxUint32))},
		{"payload-len-over", set(plen, u32(MaxPayload+1))},
	} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			if e, err := Parse(tc.in); !errors.Is(err, ErrMalformed) || e != nil {
				t.Errorf("Parse() = %v, %v, want nil, %v", e, err, ErrMalformed)
			}
		})
	}
}

func TestParseCopies(t *testing.T) {
	t.Parallel()
	_, raw := sampleEvent(t, 0)
	e, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	clear(raw)
	if err := e.Verify(); err != nil {
		t.Errorf("Verify after clearing the input = %v; Parse aliases its input", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	e, _ := sampleEvent(t, int(KindGrant)-1)
	other := network.NodeKey(pub32(node2Priv))
	for _, tc := range []struct {
		name string
		mod  func(*Event)
	}{
		{"other-issuer", func(e *Event) { e.Issuer = other }},
		{"zero-issuer", func(e *Event) { e.Issuer = network.NodeKey{} }},
		{"other-network", func(e *Event) { e.Network[0] ^= 1 }},
		{"seq", func(e *Event) { e.Seq++ }},
		{"lamport", func(e *Event) { e.Lamport++ }},
		{"time", func(e *Event) { e.Time = e.Time.Add(time.Nanosecond) }},
		{"kind", func(e *Event) { e.Kind = KindRevoke }},
		{"payload", func(e *Event) { e.Payload = append(bytes.Clone(e.Payload), ' ') }},
		{"sig", func(e *Event) { e.Sig[63] ^= 0x80 }},
		{"zero-sig", func(e *Event) { e.Sig = [64]byte{} }},
		{"invalid-seq", func(e *Event) { e.Seq = 0 }},
	} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			e := e
			e.Payload = bytes.Clone(e.Payload)
			tc.mod(&e)
			if err := e.Verify(); err != ErrBadSignature {
				t.Errorf("Verify() = %v, want %v", err, ErrBadSignature)
			}
		})
	}
	// A signature by another key over the same bytes.
	forged := e
	forged.Sig = [64]byte(ed25519.Sign(node2Priv, e.signedMessage()))
	if err := forged.Verify(); err != ErrBadSignature {
		t.Errorf("Verify(signed by another key) = %v, want %v", err, ErrBadSignature)
	}
}

func TestCheckNetwork(t *testing.T) {
	t.Parallel()
	e, _ := sampleEvent(t, 0)
	if err := e.CheckNetwork(testGenesis().ID()); err != nil {
		t.Errorf("CheckNetwork(own) = %v", err)
	}
	if err := e.CheckNetwork(network.NetworkID{1}); err != ErrForeignNetwork {
		t.Errorf("CheckNetwork(other) = %v, want %v", err, ErrForeignNetwork)
	}
}
