package transport

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "regenerate testdata/vectors.json")

const vectorsPath = "testdata/vectors.json"

func seed32(label string) []byte {
	h := sha256.Sum256([]byte(label))
	return h[:]
}

var (
	testBinding = Binding{
		Network:   [32]byte(seed32("network")),
		Key:       "trade/price",
		Version:   3,
		Recipient: [32]byte(seed32("recipient node key")),
	}
	testMaterial = seed32("key version material")
)

func testKey(t testing.TB) (priv, pub []byte) {
	t.Helper()
	priv = seed32("recipient KEM seed")
	pub, err := PublicKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

func wrap(t testing.TB, pub []byte) []byte {
	t.Helper()
	blob, err := Wrap(pub, testBinding, testMaterial)
	if err != nil {
		t.Fatalf("Wrap = %v", err)
	}
	return blob
}

// vectorFile is testdata/vectors.json. HPKE encapsulation is randomised, so
// a blob cannot be reproduced from its inputs; the vectors instead pin the
// receiving side: Unwrap must open each recorded blob with the recorded key
// and binding and yield the recorded material. Any change to the blob
// layout, the info string, the additional data or the suite breaks them.
// -update writes new blobs (it does not change what the old ones tested).
type vectorFile struct {
	Comment string   `json:"comment"`
	Vectors []vector `json:"vectors"`
}

type vector struct {
	Name      string `json:"name"`
	PrivSeed  string `json:"private_key"`
	PubSHA256 string `json:"public_key_sha256"`
	Network   string `json:"network"`
	Key       string `json:"key"`
	Version   uint32 `json:"version"`
	Recipient string `json:"recipient"`
	Material  string `json:"material"`
	Blob      string `json:"blob"`
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (v vector) binding(t testing.TB) Binding {
	return Binding{Network: [32]byte(unhex(t, v.Network)), Key: v.Key, Version: v.Version, Recipient: [32]byte(unhex(t, v.Recipient))}
}

func makeVectors(t *testing.T) []byte {
	priv, pub := testKey(t)
	pubHash := sha256.Sum256(pub)
	f := vectorFile{Comment: "keymesh key transport vectors: Unwrap(private_key, binding, blob) = material. " +
		"Suite MLKEM768-P256 / HKDF-SHA256 / AES-256-GCM. private_key is the 32-byte KEM seed; public_key_sha256 pins its public key."}
	for _, b := range []Binding{
		testBinding,
		{Network: [32]byte(seed32("other network")), Key: "a/b", Version: 1, Recipient: [32]byte(seed32("other node"))},
		{Key: "n-1.x/" + string(bytes.Repeat([]byte("k"), 63)), Version: 1<<32 - 1},
	} {
		m := seed32("material " + b.Key)
		blob, err := Wrap(pub, b, m)
		if err != nil {
			t.Fatal(err)
		}
		f.Vectors = append(f.Vectors, vector{
			Name: b.Key, PrivSeed: hex.EncodeToString(priv), PubSHA256: hex.EncodeToString(pubHash[:]),
			Network: hex.EncodeToString(b.Network[:]), Key: b.Key, Version: b.Version,
			Recipient: hex.EncodeToString(b.Recipient[:]), Material: hex.EncodeToString(m), Blob: hex.EncodeToString(blob),
		})
	}
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	data, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	var f vectorFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil || len(f.Vectors) == 0 {
		t.Fatalf("decoding %s: %v, %d vectors", vectorsPath, err, len(f.Vectors))
	}
	return f.Vectors
}

func TestVectors(t *testing.T) {
	if *update {
		if err := os.WriteFile(vectorsPath, makeVectors(t), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			priv := unhex(t, v.PrivSeed)
			pub, err := PublicKey(priv)
			if err != nil {
				t.Fatal(err)
			}
			if h := sha256.Sum256(pub); hex.EncodeToString(h[:]) != v.PubSHA256 {
				t.Errorf("SHA-256(PublicKey(seed)) = %x, want %s", h, v.PubSHA256)
			}
			blob := unhex(t, v.Blob)
			got, err := Unwrap(priv, v.binding(t), blob)
			if err != nil || hex.EncodeToString(got) != v.Material {
				t.Errorf("Unwrap(vector) = %x, %v, want %s", got, err, v.Material)
			}
		})
	}
}

// TestBlobLayout pins the layout. There is no byte-for-byte known answer for
// Wrap: HPKE draws a fresh ephemeral key for every blob, so the same inputs
// never give the same bytes (TestVectors pins the receiving side instead).
func TestBlobLayout(t *testing.T) {
	_, pub := testKey(t)
	blob := wrap(t, pub)
	const want = 1 + 6 + 1169 + 32 // format, suite id, HPKE overhead (enc 1153 + tag 16), material
	if len(blob) != want || BlobSize != want {
		t.Errorf("len(blob) = %d, BlobSize = %d, want %d", len(blob), BlobSize, want)
	}
	if want := []byte{0x01, 0x00, 0x50, 0x00, 0x01, 0x00, 0x02}; !bytes.Equal(blob[:HeaderSize], want) {
		t.Errorf("blob header = %x, want %x", blob[:HeaderSize], want)
	}
	if len(pub) != PublicKeySize || PublicKeySize != 1249 {
		t.Errorf("len(pub) = %d, want 1249", len(pub))
	}
	if again := wrap(t, pub); bytes.Equal(again, blob) {
		t.Error("two Wraps of the same material gave the same blob")
	}
}

func TestRoundTrip(t *testing.T) {
	priv, pub, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(priv) != PrivateKeySize || len(pub) != PublicKeySize {
		t.Fatalf("GenerateKey sizes %d, %d", len(priv), len(pub))
	}
	if p2, err := PublicKey(priv); err != nil || !bytes.Equal(p2, pub) {
		t.Errorf("PublicKey(priv) differs from GenerateKey's public key")
	}
	if err := CheckPublicKey(pub); err != nil {
		t.Errorf("CheckPublicKey = %v", err)
	}
	blob := wrap(t, pub)
	got, err := Unwrap(priv, testBinding, blob)
	if err != nil || !bytes.Equal(got, testMaterial) {
		t.Errorf("Unwrap(Wrap(m)) = %x, %v, want %x", got, err, testMaterial)
	}
}

func TestParsedKey(t *testing.T) {
	priv, pub := testKey(t)
	k, err := ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.PublicKey(), pub) {
		t.Error("PrivateKey.PublicKey differs")
	}
	blob := wrap(t, pub)
	if got, err := k.Unwrap(testBinding, blob); err != nil || !bytes.Equal(got, testMaterial) {
		t.Errorf("PrivateKey.Unwrap = %x, %v", got, err)
	}
	if _, err := k.Unwrap(Binding{Key: "a/b", Version: 1}, blob); err != ErrUnwrap {
		t.Errorf("PrivateKey.Unwrap(other binding) = %v, want %v", err, ErrUnwrap)
	}
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%+v %#v %x %s", k, k, k, k)} {
		if strings.Contains(s, hex.EncodeToString(priv)[:8]) || !strings.Contains(s, "redacted") {
			t.Errorf("formatted key %q", s)
		}
	}
	var zero PrivateKey
	if _, err := zero.Unwrap(testBinding, blob); err != ErrUnwrap {
		t.Errorf("zero PrivateKey.Unwrap = %v, want %v", err, ErrUnwrap)
	}
}

func TestNonRecipient(t *testing.T) {
	_, pub := testKey(t)
	blob := wrap(t, pub)
	other, _, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Unwrap(other, testBinding, blob); err != ErrUnwrap || got != nil {
		t.Errorf("Unwrap(non-recipient key) = %x, %v, want nil, %v", got, err, ErrUnwrap)
	}
}

func TestBindingMismatch(t *testing.T) {
	priv, pub := testKey(t)
	blob := wrap(t, pub)
	for _, tc := range []struct {
		name string
		mod  func(*Binding)
	}{
		{"network", func(b *Binding) { b.Network[0] ^= 1 }},
		{"key", func(b *Binding) { b.Key = "trade/qty" }},
		{"key-prefix", func(b *Binding) { b.Key = "trade/pric" }},
		{"version", func(b *Binding) { b.Version++ }},
		{"recipient", func(b *Binding) { b.Recipient[31] ^= 1 }},
		{"invalid-key", func(b *Binding) { b.Key = "" }},
		{"version-0", func(b *Binding) { b.Version = 0 }},
	} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			b := testBinding
			tc.mod(&b)
			if got, err := Unwrap(priv, b, blob); err != ErrUnwrap || got != nil {
				t.Errorf("Unwrap(other %s) = %x, %v, want nil, %v", tc.name, got, err, ErrUnwrap)
			}
		})
	}
}

// TestBitFlips flips every bit of a blob: none may open. Header bits give
// ErrSuite, the rest ErrUnwrap.
func TestBitFlips(t *testing.T) {
	priv, pub := testKey(t)
	blob := wrap(t, pub)
	step := 1
	if testing.Short() {
		step = 7
	}
	for i := 0; i < len(blob)*8; i += step {
		b := bytes.Clone(blob)
		b[i/8] ^= 1 << (i % 8)
		want := ErrUnwrap
		if i/8 < HeaderSize {
			want = ErrSuite
		}
		if got, err := Unwrap(priv, testBinding, b); err != want || got != nil {
			t.Fatalf("Unwrap(bit %d flipped) = %x, %v, want nil, %v", i, got, err, want)
		}
	}
}

func TestSizesAndSuite(t *testing.T) {
	priv, pub := testKey(t)
	blob := wrap(t, pub)
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrUnwrap},
		{"header-only", blob[:HeaderSize], ErrUnwrap},
		{"truncated", blob[:BlobSize-1], ErrUnwrap},
		{"extended", append(bytes.Clone(blob), 0), ErrUnwrap},
		{"format-2", append([]byte{2}, blob[1:]...), ErrSuite},
		{"format-0-short", []byte{0}, ErrUnwrap},
		{"x25519-suite", append([]byte{1, 0x64, 0x7a, 0, 1, 0, 2}, blob[HeaderSize:]...), ErrSuite},
		{"chacha-suite", append([]byte{1, 0, 0x50, 0, 1, 0, 3}, blob[HeaderSize:]...), ErrSuite},
		{"sha384-suite", append([]byte{1, 0, 0x50, 0, 2, 0, 2}, blob[HeaderSize:]...), ErrSuite},
	} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			if got, err := Unwrap(priv, testBinding, tc.in); err != tc.want || got != nil {
				t.Errorf("Unwrap() = %x, %v, want nil, %v", got, err, tc.want)
			}
		})
	}
	for i := range BlobSize {
		if _, err := Unwrap(priv, testBinding, blob[:i]); err == nil {
			t.Fatalf("Unwrap(first %d bytes) succeeded", i)
		}
	}
}

func TestBadInputs(t *testing.T) {
	priv, pub := testKey(t)
	blob := wrap(t, pub)
	for name, k := range map[string][]byte{"nil": nil, "short": priv[:31], "long": append(bytes.Clone(priv), 0)} {
		if got, err := Unwrap(k, testBinding, blob); err != ErrUnwrap || got != nil {
			t.Errorf("Unwrap(%s private key) = %x, %v, want nil, %v", name, got, err, ErrUnwrap)
		}
		if _, err := PublicKey(k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("PublicKey(%s) = %v, want %v", name, err, ErrInvalidKey)
		}
	}
	badPoint := bytes.Clone(pub)
	copy(badPoint[PublicKeySize-65:], bytes.Repeat([]byte{0xff}, 65))
	for name, k := range map[string][]byte{"nil": nil, "short": pub[:PublicKeySize-1], "long": append(bytes.Clone(pub), 0), "bad-point": badPoint} {
		if _, err := Wrap(k, testBinding, testMaterial); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Wrap(%s public key) = %v, want %v", name, err, ErrInvalidKey)
		}
		if err := CheckPublicKey(k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("CheckPublicKey(%s) = %v, want %v", name, err, ErrInvalidKey)
		}
	}
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := Wrap(pub, testBinding, make([]byte, n)); err == nil {
			t.Errorf("Wrap(%d-byte material) succeeded", n)
		}
	}
	for name, b := range map[string]Binding{
		"empty-key":    {Key: "", Version: 1},
		"bad-key":      {Key: "Trade/Price", Version: 1},
		"zero-version": {Key: "a/b"},
	} {
		if _, err := Wrap(pub, b, testMaterial); !errors.Is(err, ErrInvalidBinding) {
			t.Errorf("Wrap(%s binding) = %v, want %v", name, err, ErrInvalidBinding)
		}
	}
}

// FuzzUnwrap feeds arbitrary blobs to Unwrap with a fixed key and binding:
// it must never panic, fail only with ErrUnwrap or ErrSuite, and open
// nothing but the vector blob.
func FuzzUnwrap(f *testing.F) {
	vs := loadVectors(f)
	v := vs[0]
	priv, b := unhex(f, v.PrivSeed), v.binding(f)
	for _, v := range vs {
		f.Add(unhex(f, v.Blob))
	}
	f.Add([]byte{})
	f.Add([]byte(SuiteID))
	f.Add(append([]byte{FormatVersion}, SuiteID...))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := Unwrap(priv, b, in)
		switch {
		case err == nil:
			if hex.EncodeToString(in) != v.Blob || hex.EncodeToString(got) != v.Material {
				t.Fatalf("Unwrap(%x) = %x, opened a blob that is not the vector's", in, got)
			}
		case err != ErrUnwrap && err != ErrSuite:
			t.Fatalf("Unwrap() = %v, want %v or %v", err, ErrUnwrap, ErrSuite)
		case got != nil:
			t.Fatalf("Unwrap() returned material with error %v", err)
		}
	})
}

func BenchmarkUnwrapParsed(b *testing.B) {
	priv, pub := testKey(b)
	blob := wrap(b, pub)
	k, err := ParsePrivateKey(priv)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := k.Unwrap(testBinding, blob); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGenerateKey(b *testing.B) {
	for b.Loop() {
		if _, _, err := GenerateKey(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWrap(b *testing.B) {
	_, pub := testKey(b)
	for b.Loop() {
		if _, err := Wrap(pub, testBinding, testMaterial); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnwrap(b *testing.B) {
	priv, pub := testKey(b)
	blob := wrap(b, pub)
	for b.Loop() {
		if _, err := Unwrap(priv, testBinding, blob); err != nil {
			b.Fatal(err)
		}
	}
}
