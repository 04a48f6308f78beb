package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault/transport"
)

func TestDecodeSamples(t *testing.T) {
	t.Parallel()
	for _, p := range samplePayloads(t) {
		t.Run("ok/"+p.Name, func(t *testing.T) {
			v, err := decodePayload(p.Kind, p.Payload)
			if err != nil {
				t.Fatalf("decode = %v", err)
			}
			if got := mustJSON(t, v); !bytes.Equal(got, p.Payload) {
				t.Errorf("json.Marshal(decode(p)) = %s, want %s", got, p.Payload)
			}
		})
	}
}

// TestDecodeStrict checks each decoder against non-canonical and invalid
// variants of its sample payload.
func TestDecodeStrict(t *testing.T) {
	t.Parallel()
	for _, p := range samplePayloads(t) {
		s := string(p.Payload)
		first := s[2 : strings.Index(s[2:], `"`)+2] // the first field name
		variants := map[string]string{
			"empty":          "",
			"null":           "null",
			"array":          "[]",
			"empty-object":   "{}",
			"unknown-field":  s[:len(s)-1] + `,"Extra":1}`,
			"trailing-data":  s + "{}",
			"trailing-space": s + " ",
			"leading-space":  " " + s,
			"indented":       indent(t, p.Payload),
			"repeated-field": `{"` + first + `":` + firstValue(t, p.Payload, first) + "," + s[1:],
			"lower-case":     strings.Replace(s, `"`+first+`"`, `"`+strings.ToLower(first)+`"`, 1),
			"missing-field":  "{" + s[strings.Index(s, ",")+1:],
		}
		for name, in := range variants {
			t.Run("fail/"+p.Name+"/"+name, func(t *testing.T) {
				if _, err := decodePayload(p.Kind, []byte(in)); !errors.Is(err, ErrMalformed) {
					t.Errorf("decode(%.80q) = %v, want %v", in, err, ErrMalformed)
				}
			})
		}
		t.Run("fail/"+p.Name+"/oversize", func(t *testing.T) {
			big := s[:len(s)-1] + `,"Pad":"` + strings.Repeat("x", MaxPayload) + `"}`
			if _, err := decodePayload(p.Kind, []byte(big)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "exceeds") {
				t.Errorf("decode(oversize) = %v, want a size error", err)
			}
		})
	}
}

func indent(t *testing.T, b []byte) string {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", " "); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func firstValue(t *testing.T, b []byte, field string) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return string(m[field])
}

func TestDecodeInvalidValues(t *testing.T) {
	t.Parallel()
	w := Wrap{Recipient: network.NodeKey{1}, Digest: DigestOf(make([]byte, transport.BlobSize))}
	at := t0
	party := policy.MustParseParty("org:Org2MSP")
	grant := policy.Grant{ID: "g", Key: "a/b", Party: party, Ops: policy.OpsAll, Issuer: "n"}
	for _, tc := range []struct {
		name string
		kind Kind
		v    any
	}{
		{"key-create/bad-key", KindKeyCreate, KeyCreate{Key: "Trade/Price"}},
		{"key-create/no-namespace", KindKeyCreate, KeyCreate{Key: "price"}},
		{"key-version/version-0", KindKeyVersion, KeyVersion{Key: "a/b", ActivateAt: at, Wraps: []Wrap{w}}},
		{"key-version/no-activation", KindKeyVersion, KeyVersion{Key: "a/b", Version: 1, Wraps: []Wrap{w}}},
		{"key-version/dup-recipient", KindKeyVersion, KeyVersion{Key: "a/b", Version: 1, ActivateAt: at, Wraps: []Wrap{w, w}}},
		{"key-version/zero-recipient", KindKeyVersion, KeyVersion{Key: "a/b", Version: 1, ActivateAt: at, Wraps: []Wrap{{Digest: w.Digest}}}},
		{"key-version/zero-digest", KindKeyVersion, KeyVersion{Key: "a/b", Version: 1, ActivateAt: at, Wraps: []Wrap{{Recipient: network.NodeKey{1}}}}},
		{"key-version/too-many-wraps", KindKeyVersion, KeyVersion{Key: "a/b", Version: 1, ActivateAt: at, Wraps: manyWraps(MaxWraps+1, 8)}},
		{"key-share/version-0", KindKeyShare, KeyShare{Key: "a/b", Shares: []Share{{ActivateAt: at, Wrap: w}}}},
		{"key-share/no-wrap", KindKeyShare, KeyShare{Key: "a/b", Shares: []Share{{Version: 1, ActivateAt: at}}}},
		{"key-share/no-shares", KindKeyShare, KeyShare{Key: "a/b"}},
		{"key-share/dup", KindKeyShare, KeyShare{Key: "a/b", Shares: []Share{{Version: 1, ActivateAt: at, Wrap: w}, {Version: 1, ActivateAt: at, Wrap: w}}}},
		{"key-state/unknown-state", KindKeyState, KeyState{Key: "a/b", State: "destroyed"}},
		{"key-state/empty-state", KindKeyState, KeyState{Key: "a/b"}},
		{"key-destroy/empty-key", KindKeyDestroy, KeyDestroy{}},
		{"destroy-ack/bad-key", KindDestroyAck, DestroyAck{Key: "a/b/c"}},
		{"grant/bad-key-name", KindGrant, func() policy.Grant { g := grant; g.Key = "Not A Key"; return g }()},
	} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			if _, err := decodePayload(tc.kind, mustJSON(t, tc.v)); !errors.Is(err, ErrMalformed) {
				t.Errorf("decode = %v, want %v", err, ErrMalformed)
			}
		})
	}
	for _, tc := range []struct {
		name string
		kind Kind
		v    any
	}{
		{"grant/no-ops", KindGrant, func() policy.Grant { g := grant; g.Ops = 0; return g }()},
		{"grant/no-issuer", KindGrant, func() policy.Grant { g := grant; g.Issuer = ""; return g }()},
		{"revoke/no-id", KindRevoke, policy.Revocation{Key: "a/b", Party: party, Issuer: "n"}},
	} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			if _, err := decodePayload(tc.kind, mustJSON(t, tc.v)); !errors.Is(err, policy.ErrInvalidGrant) {
				t.Errorf("decode = %v, want %v", err, policy.ErrInvalidGrant)
			}
		})
	}
	// A party that is not canonical fails in the JSON decoding itself.
	bad := strings.Replace(string(mustJSON(t, grant)), "org:Org2MSP", "org:Org2 MSP", 1)
	if _, err := DecodeGrant([]byte(bad)); !errors.Is(err, ErrMalformed) {
		t.Errorf("DecodeGrant(bad party) = %v, want %v", err, ErrMalformed)
	}
}

func manyWraps(n, blobLen int) []Wrap {
	ws := make([]Wrap, n)
	for i := range ws {
		ws[i].Recipient = network.NodeKey{byte(i >> 8), byte(i), 1}
		ws[i].Digest = DigestOf(pattern("wrap", blobLen))
	}
	return ws
}

// TestKeyVersionLimits checks that the largest valid KeyVersion (MaxWraps
// wraps of MaxWrapBlob bytes, the longest key name) fits in MaxPayload.
func TestKeyVersionLimits(t *testing.T) {
	t.Parallel()
	key := strings.Repeat("a", 63) + "/" + strings.Repeat("b", 63)
	v := KeyVersion{Key: key, Version: 1<<32 - 1, ActivateAt: time.Date(2262, 1, 1, 0, 0, 0, 999999999, time.FixedZone("", -11*3600)), Check: DigestOf([]byte("check")), Wraps: manyWraps(MaxWraps, MaxWrapBlob)}
	p := mustJSON(t, v)
	if len(p) > MaxPayload {
		t.Fatalf("largest KeyVersion payload is %d bytes, over MaxPayload %d", len(p), MaxPayload)
	}
	got, err := DecodeKeyVersion(p)
	if err != nil {
		t.Fatalf("DecodeKeyVersion(largest) = %v", err)
	}
	if len(got.Wraps) != MaxWraps || !got.ActivateAt.Equal(v.ActivateAt) || got.ActivateAt.Location() != time.UTC {
		t.Errorf("DecodeKeyVersion(largest) = %d wraps, activation %v", len(got.Wraps), got.ActivateAt)
	}
	t.Logf("largest KeyVersion payload: %d bytes of %d", len(p), MaxPayload)
}

// TestKeyStateMinDecryptionOnly: a key-state payload may change the
// minimum decryption version alone (State ""), and must change something.
func TestKeyStateMinDecryptionOnly(t *testing.T) {
	if _, err := DecodeKeyState(mustJSON(t, KeyState{Key: "a/b", MinDecryptionVersion: 2})); err != nil {
		t.Errorf("min decryption version only: %v", err)
	}
	if _, err := DecodeKeyState(mustJSON(t, KeyState{Key: "a/b"})); !errors.Is(err, ErrMalformed) {
		t.Errorf("no change at all: %v, want ErrMalformed", err)
	}
}
