package transport

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/keymesh/keymesh/internal/tamper"
)

var update = flag.Bool("update", false, "regenerate testdata/vectors.json (format 2; the format 1 file is frozen)")

const (
	vectorsPath   = "testdata/vectors.json"    // format 2
	vectorsV1Path = "testdata/vectors-v1.json" // format 1, written by earlier releases
)

// v1Supported reports whether this build can open format 1 blobs: HPKE's
// AES-256-GCM, which the certified v1.0.0 module refuses under fips140=only.
func v1Supported() bool {
	k, err := kem.GenerateKey()
	if err != nil {
		return false
	}
	_, _, err = hpke.NewSender(k.PublicKey(), kdf, aeadV1, nil)
	return err == nil
}

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
	f := vectorFile{Comment: "keymesh key transport vectors, format 2: Unwrap(private_key, binding, blob) = material. " +
		"HPKE MLKEM768-P256 / HKDF-SHA256 / export-only, then AES-256-GCM (module nonce) under Export(\"keymesh/v2 key-transport dem\", 32). " +
		"private_key is the 32-byte KEM seed; public_key_sha256 pins its public key."}
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

func loadVectors(t testing.TB) []vector { return loadVectorFile(t, vectorsPath) }

func loadVectorFile(t testing.TB, vectorsPath string) []vector {
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
	t.Parallel()
	if *update {
		if err := os.WriteFile(vectorsPath, makeVectors(t), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, file := range []string{vectorsPath, vectorsV1Path} {
		for _, v := range loadVectorFile(t, file) {
			t.Run(file+"/"+v.Name, func(t *testing.T) {
				priv := unhex(t, v.PrivSeed)
				pub, err := PublicKey(priv)
				if err != nil {
					t.Fatal(err)
				}
				if h := sha256.Sum256(pub); hex.EncodeToString(h[:]) != v.PubSHA256 {
					t.Errorf("SHA-256(PublicKey(seed)) = %x, want %s", h, v.PubSHA256)
				}
				blob := unhex(t, v.Blob)
				if file == vectorsV1Path && !v1Supported() {
					if _, err := Unwrap(priv, v.binding(t), blob); err != ErrUnwrap {
						t.Errorf("Unwrap(format 1) without HPKE AES-GCM = %v, want %v", err, ErrUnwrap)
					}
					t.Skipf("format 1 needs HPKE's AES-256-GCM, which module %s refuses in FIPS 140-only mode", fips140.Version())
				}
				got, err := Unwrap(priv, v.binding(t), blob)
				if err != nil || hex.EncodeToString(got) != v.Material {
					t.Errorf("Unwrap(vector) = %x, %v, want %s", got, err, v.Material)
				}
			})
		}
	}
}

// TestVectorDEM checks the second half of a format 2 vector from the spec:
// with the key HPKE exports, the material opens with a plain AES-256-GCM
// whose nonce is the 12 bytes after enc and whose additional data is the
// header.
func TestVectorDEM(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)[0]
	blob := unhex(t, v.Blob)
	k, err := ParsePrivateKey(unhex(t, v.PrivSeed))
	if err != nil {
		t.Fatal(err)
	}
	r, err := hpke.NewRecipient(blob[7:7+1153], k.k, hpke.HKDFSHA256(), hpke.ExportOnly(), v.binding(t).info())
	if err != nil {
		t.Fatal(err)
	}
	key, err := r.Export("keymesh/v2 key-transport dem", 32)
	if err != nil {
		t.Fatal(err)
	}
	fips140.WithoutEnforcement(func() {
		block, _ := aes.NewCipher(key)
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			t.Fatal(err)
		}
		got, err := gcm.Open(nil, blob[1160:1172], blob[1172:], blob[:7])
		if err != nil || hex.EncodeToString(got) != v.Material {
			t.Fatalf("reference GCM Open = %x, %v, want %s", got, err, v.Material)
		}
	})
}

// TestBlobLayout pins the layout. There is no byte-for-byte known answer for
// Wrap: HPKE draws a fresh ephemeral key for every blob, so the same inputs
// never give the same bytes (TestVectors pins the receiving side instead).
func TestBlobLayout(t *testing.T) {
	_, pub := testKey(t)
	blob := wrap(t, pub)
	const want = 1 + 6 + 1153 + 12 + 32 + 16 // format, suite id, enc, GCM nonce, material, tag
	if len(blob) != want || BlobSize != want || BlobSizeV1 != 1208 {
		t.Errorf("len(blob) = %d, BlobSize = %d, BlobSizeV1 = %d, want %d, 1208", len(blob), BlobSize, BlobSizeV1, want)
	}
	for _, v := range loadVectorFile(t, vectorsV1Path) {
		if b := unhex(t, v.Blob); len(b) != BlobSizeV1 || !bytes.Equal(b[:HeaderSize], []byte{0x01, 0x00, 0x50, 0x00, 0x01, 0x00, 0x02}) {
			t.Errorf("format 1 vector: %d bytes, header %x", len(b), b[:HeaderSize])
		}
	}
	if want := []byte{0x02, 0x00, 0x50, 0x00, 0x01, 0xff, 0xff}; !bytes.Equal(blob[:HeaderSize], want) {
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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

// TestBitFlips flips bits of a blob (every bit under KEYMESH_EXHAUSTIVE=1,
// else a sample covering the header, the KEM ciphertext's ends and the
// tag; see internal/tamper): none may open. Header bits give ErrSuite, the
// rest ErrUnwrap.
func TestBitFlips(t *testing.T) {
	t.Parallel()
	priv, pub := testKey(t)
	blob := wrap(t, pub)
	for _, i := range tamper.Bits(t, len(blob), HeaderSize) {
		b := tamper.Flip(blob, i)
		want := ErrUnwrap
		if i/8 < HeaderSize {
			want = ErrSuite
		}
		if got, err := Unwrap(priv, testBinding, b); err != want || got != nil {
			t.Fatalf("Unwrap(bit %d flipped) = %x, %v, want nil, %v", i, got, err, want)
		}
	}
}

// TestBitFlipsV1 flips bits of a format 1 vector blob (every bit under
// KEYMESH_EXHAUSTIVE=1): format 1 opens through its own path, which must
// be as strict.
func TestBitFlipsV1(t *testing.T) {
	t.Parallel()
	if !v1Supported() {
		t.Skipf("format 1 needs HPKE's AES-256-GCM, which module %s refuses in FIPS 140-only mode", fips140.Version())
	}
	v := loadVectorFile(t, vectorsV1Path)[0]
	k, err := ParsePrivateKey(unhex(t, v.PrivSeed))
	if err != nil {
		t.Fatal(err)
	}
	blob := unhex(t, v.Blob)
	for _, i := range tamper.Bits(t, len(blob), HeaderSize) {
		b := tamper.Flip(blob, i)
		want := ErrUnwrap
		if i/8 < HeaderSize {
			want = ErrSuite
		}
		if got, err := k.Unwrap(v.binding(t), b); err != want || got != nil {
			t.Fatalf("Unwrap(format 1, bit %d flipped) = %x, %v, want nil, %v", i, got, err, want)
		}
	}
}

func TestSizesAndSuite(t *testing.T) {
	t.Parallel()
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
		{"format-3", append([]byte{3}, blob[1:]...), ErrSuite},
		{"format-1-with-export-suite", append([]byte{1}, blob[1:]...), ErrSuite},
		{"format-2-with-gcm-suite", append([]byte{2, 0, 0x50, 0, 1, 0, 2}, blob[HeaderSize:]...), ErrSuite},
		{"format-1-at-format-2-size", append(bytes.Clone(headerV1[:]), blob[HeaderSize:]...), ErrUnwrap},
		{"format-0-short", []byte{0}, ErrUnwrap},
		{"x25519-suite", append([]byte{2, 0x64, 0x7a, 0, 1, 0xff, 0xff}, blob[HeaderSize:]...), ErrSuite},
		{"chacha-suite", append([]byte{1, 0, 0x50, 0, 1, 0, 3}, blob[HeaderSize:]...), ErrSuite},
		{"sha384-suite", append([]byte{2, 0, 0x50, 0, 2, 0xff, 0xff}, blob[HeaderSize:]...), ErrSuite},
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
	t.Parallel()
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

// FuzzParseBlob fuzzes the strict blob parser alone, with no key: it must
// never panic, fail only with ErrUnwrap or ErrSuite, and accept exactly the
// two blob sizes with their headers, splitting them without loss.
func FuzzParseBlob(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := parseBlob(in)
		if err != nil {
			if err != ErrUnwrap && err != ErrSuite {
				t.Fatalf("parseBlob() = %v, want %v or %v", err, ErrUnwrap, ErrSuite)
			}
			return
		}
		want, h := BlobSize, header[:]
		if p.v1 {
			want, h = BlobSizeV1, headerV1[:]
		}
		if len(in) != want || !bytes.Equal(p.header, h) || len(p.enc) != EncSize {
			t.Fatalf("parseBlob(%d bytes) accepted: v1 %v, header %x, enc %d bytes", len(in), p.v1, p.header, len(p.enc))
		}
		if got := append(append(bytes.Clone(p.header), p.enc...), p.sealed...); !bytes.Equal(got, in) {
			t.Fatal("parseBlob parts do not reassemble the input")
		}
	})
}

// FuzzOpenDEM fuzzes the second half of Unwrap for format 2, AES-256-GCM
// under the exported key, without a decapsulation per input: it must
// never panic and open nothing but the vector's sealed material.
func FuzzOpenDEM(f *testing.F) {
	v := loadVectors(f)[0]
	k, err := ParsePrivateKey(unhex(f, v.PrivSeed))
	if err != nil {
		f.Fatal(err)
	}
	p, err := parseBlob(unhex(f, v.Blob))
	if err != nil {
		f.Fatal(err)
	}
	r, err := hpke.NewRecipient(p.enc, k.k, kdf, export, v.binding(f).info())
	if err != nil {
		f.Fatal(err)
	}
	key, err := r.Export(demContext, 32)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(bytes.Clone(p.header), bytes.Clone(p.sealed))
	f.Add(bytes.Clone(p.header), []byte{})
	f.Fuzz(func(t *testing.T, hdr, sealed []byte) {
		got, err := openDEM(key, blob{header: hdr, sealed: sealed})
		if err == nil && (!bytes.Equal(hdr, p.header) || !bytes.Equal(sealed, p.sealed) || hex.EncodeToString(got) != v.Material) {
			t.Fatalf("openDEM opened something other than the vector: %x", got)
		}
	})
}

func addSeeds(f *testing.F) {
	for _, file := range []string{vectorsPath, vectorsV1Path} {
		for _, v := range loadVectorFile(f, file) {
			f.Add(unhex(f, v.Blob))
		}
	}
	f.Add([]byte{})
	f.Add([]byte(SuiteID))
	f.Add(append([]byte{FormatVersion}, SuiteID...))
	f.Add(append([]byte{FormatVersionV1}, SuiteIDV1...))
}

// FuzzUnwrap feeds arbitrary blobs to Unwrap end to end with a fixed, parsed
// key and binding: it must never panic, fail only with ErrUnwrap or
// ErrSuite, and open nothing but the vector blobs. Structurally invalid
// input is refused by the parser before any decapsulation, the cheap path;
// input of a valid size and header costs a full ML-KEM-768 + P-256
// decapsulation, so the parser and the DEM have their own fast targets
// above.
func FuzzUnwrap(f *testing.F) {
	vs := loadVectors(f)
	v := vs[0]
	k, err := ParsePrivateKey(unhex(f, v.PrivSeed))
	if err != nil {
		f.Fatal(err)
	}
	b := v.binding(f)
	addSeeds(f)
	known := map[string]string{} // blob -> material, of the vectors with this binding
	for _, file := range []string{vectorsPath, vectorsV1Path} {
		for _, w := range loadVectorFile(f, file) {
			if w.binding(f) == b {
				known[w.Blob] = w.Material
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := k.Unwrap(b, in)
		switch {
		case err == nil:
			if m, ok := known[hex.EncodeToString(in)]; !ok || hex.EncodeToString(got) != m {
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
