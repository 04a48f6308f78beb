package envelope

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/keymesh/keymesh/internal/tamper"
)

// gcmVector is one AES-256-GCM known answer of testdata/nist-gcm.json.
type gcmVector struct {
	Name string `json:"name"`
	Key  string `json:"key"`
	IV   string `json:"iv"`
	PT   string `json:"pt"`
	AAD  string `json:"aad"`
	CT   string `json:"ct"`
	Tag  string `json:"tag"`
}

func loadGCMVectors(t *testing.T) []gcmVector {
	t.Helper()
	data, err := os.ReadFile("testdata/nist-gcm.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Comment string      `json:"comment"`
		GCM     []gcmVector `json:"gcm"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	if len(f.GCM) < 5 {
		t.Fatalf("nist-gcm.json holds %d vectors, want at least 5", len(f.GCM))
	}
	return f.GCM
}

// TestNISTGCM drives NIST's AES-256-GCM known answers through the sealer's
// own GCM paths with the vectors' additional data built by hand: the
// module-nonce AEAD that opens every GCM envelope (both formats), and the
// caller-nonce seal of the known-answer tests.
func TestNISTGCM(t *testing.T) {
	for _, v := range loadGCMVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			key, iv, pt, aad := unhex(t, v.Key), unhex(t, v.IV), unhex(t, v.PT), unhex(t, v.AAD)
			want := unhex(t, v.CT+v.Tag)
			aead, err := randomNonceGCM(key)
			if err != nil {
				t.Fatal(err)
			}
			sc := &scratch{}
			e := &Envelope{Nonce: [NonceSize]byte(iv), Ciphertext: want}
			got, err := openGCM(sc, aead, e, aad)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("openGCM(vector) = %x, %v, want %x", got, err, pt)
			}
			// Every bit of nonce, ciphertext and tag (sampled unless
			// KEYMESH_EXHAUSTIVE=1; see internal/tamper), and of the
			// additional data, is authenticated.
			msg := append(append([]byte{}, iv...), want...)
			for _, i := range tamper.Bits(t, len(msg), NonceSize, len(msg)-16) {
				b := tamper.Flip(msg, i)
				e := &Envelope{Nonce: [NonceSize]byte(b[:NonceSize]), Ciphertext: b[NonceSize:]}
				if _, err := openGCM(sc, aead, e, aad); err == nil {
					t.Fatalf("openGCM with bit %d flipped = nil, want an error", i)
				}
			}
			if len(aad) > 0 {
				bad := append([]byte{}, aad...)
				bad[0] ^= 1
				if _, err := openGCM(sc, aead, e, bad); err == nil {
					t.Fatal("openGCM with other additional data = nil, want an error")
				}
			}
			var sealed []byte
			fips140.WithoutEnforcement(func() {
				sealed, err = sealWithNonce(nil, key, bytes.NewReader(iv), pt, aad)
			})
			if err != nil || !bytes.Equal(sealed, append(append([]byte{}, iv...), want...)) {
				t.Fatalf("sealWithNonce(vector) = %x, %v, want %x || %x", sealed, err, iv, want)
			}
			// The module's nonces: the output opens under the vector's
			// key with a reference GCM.
			out := aead.Seal(nil, nil, pt, aad)
			fips140.WithoutEnforcement(func() {
				block, _ := aes.NewCipher(key)
				ref, err := cipher.NewGCM(block)
				if err != nil {
					t.Fatal(err)
				}
				if got, err := ref.Open(nil, out[:NonceSize], out[NonceSize:], aad); err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("reference Open(module Seal) = %x, %v, want %x", got, err, pt)
				}
			})
		})
	}
}

// TestVectorsPython runs testdata/check_vectors.py, an implementation of
// the spec in Python's cryptography (OpenSSL), over every vector file. It
// skips when no python3 with cryptography is installed, unless
// KEYMESH_REQUIRE_PYCRYPTO=1 (CI).
func TestVectorsPython(t *testing.T) {
	py := ""
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import cryptography").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		if os.Getenv("KEYMESH_REQUIRE_PYCRYPTO") == "1" {
			t.Fatal("no python3 with the cryptography package (Debian: python3-cryptography)")
		}
		t.Skip("no python3 with the cryptography package")
	}
	out, err := exec.Command(py, "testdata/check_vectors.py", vectorsPath, vectorsV1Path, "testdata/nist-gcm.json").CombinedOutput()
	if err != nil {
		t.Fatalf("check_vectors.py: %v\n%s", err, out)
	}
	last := ""
	for sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan(); {
		last = sc.Text()
	}
	if !strings.HasSuffix(last, " 0 failures") {
		t.Fatalf("check_vectors.py: %s", out)
	}
	t.Log(last)
}

// TestFIPSPaths checks what FIPS 140-only mode allows: module nonces in
// random mode and the derived modes seal; a caller's nonce does not.
func TestFIPSPaths(t *testing.T) {
	f := newFixture(t, ModeRandom)
	h := Header{Mode: ModeRandom, Key: "trade/price", Version: 2, Sealer: SealerID{7}}
	_, err := f.s.Seal(h, f.nid, f.ctx, "", f.pt, bytes.NewReader(make([]byte, NonceSize)))
	if fips140.Enforced() {
		if err == nil {
			t.Fatal("Seal with a caller's nonce under fips140=only = nil, want an error")
		}
	} else if err != nil {
		t.Fatalf("Seal with a caller's nonce = %v, want nil", err)
	}
	for _, mode := range allModes {
		g := newFixture(t, mode)
		if got, err := g.s.Open(g.env, g.nid, g.ctx); err != nil || !bytes.Equal(got, g.pt) {
			t.Errorf("%v: Open(Seal()) = %q, %v, want %q (fips140 enforced: %v)", mode, got, err, g.pt, fips140.Enforced())
		}
	}
	t.Logf("fips140: enabled %v, enforced %v, module %s", fips140.Enabled(), fips140.Enforced(), fips140.Version())
}

// TestSealerSubkeys checks the per-sealer subkeys of random mode: another
// sealer id gives another key, every holder opens every sealer's
// envelopes, and the sealer id is authenticated.
func TestSealerSubkeys(t *testing.T) {
	f := newFixture(t, ModeRandom)
	other := mustSealer(t, f.key)
	nonce := make([]byte, NonceSize)
	ha := Header{Mode: ModeRandom, Key: "trade/price", Version: 2, Sealer: SealerID{'a'}}
	hb := ha
	hb.Sealer = SealerID{'b'}
	var ea, eb *Envelope
	var err error
	fips140.WithoutEnforcement(func() {
		ea, err = f.s.Seal(ha, f.nid, f.ctx, "", f.pt, bytes.NewReader(nonce))
		if err == nil {
			eb, err = f.s.Seal(hb, f.nid, f.ctx, "", f.pt, bytes.NewReader(nonce))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// Same nonce, same plaintext, same key version: different keys.
	if bytes.Equal(ea.Ciphertext, eb.Ciphertext) {
		t.Fatal("two sealers with one nonce gave one ciphertext: the subkeys are equal")
	}
	for _, e := range []*Envelope{ea, eb} {
		if got, err := other.Open(e, f.nid, f.ctx); err != nil || !bytes.Equal(got, f.pt) {
			t.Fatalf("Open(sealer %x) = %q, %v", e.Sealer, got, err)
		}
	}
	swapped := *ea
	swapped.Sealer = hb.Sealer
	if _, err := other.Open(&swapped, f.nid, f.ctx); err != ErrDecrypt {
		t.Fatalf("Open(sealer id swapped) = %v, want %v", err, ErrDecrypt)
	}
	// Many sealers: the cache stays bounded and every envelope opens.
	for i := range 3 * maxSubkeys / 2 {
		h := ha
		h.Sealer = SealerID{byte(i), byte(i >> 8), 'm'}
		e, err := f.s.Seal(h, f.nid, f.ctx, "", f.pt, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Open(e, f.nid, f.ctx); err != nil {
			t.Fatalf("Open(sealer %d) = %v", i, err)
		}
	}
	other.st.subMu.Lock()
	n := len(other.st.subkeys)
	other.st.subMu.Unlock()
	if n > maxSubkeys {
		t.Fatalf("%d subkeys cached, want at most %d", n, maxSubkeys)
	}
}

// TestDeterministicOpenChecksIV is the regression test for a holder
// minting a second valid envelope of a deterministic value (issue 13, item
// 7): Open must refuse an envelope whose IV is not the one derived from its
// plaintext, in format 1 (GCM with a derived nonce) and in format 2 (SIV).
// Before the fix, both forgeries below opened.
func TestDeterministicOpenChecksIV(t *testing.T) {
	f := newFixture(t, ModeDeterministic)
	_, aad := mustLayout(t, &Header{Mode: ModeDeterministic, Key: "trade/price", Version: 2, Format: FormatVersion1}, &f.nid, f.ctx)

	t.Run("fail/v1-other-nonce", func(t *testing.T) {
		h := Header{Mode: ModeDeterministic, Key: "trade/price", Version: 2, Format: FormatVersion1}
		forged := &Envelope{Header: h, Nonce: [NonceSize]byte{1, 2, 3}}
		fips140.WithoutEnforcement(func() {
			block, _ := aes.NewCipher(f.key)
			g, err := cipher.NewGCM(block)
			if err != nil {
				t.Fatal(err)
			}
			forged.Ciphertext = g.Seal(nil, forged.Nonce[:], f.pt, aad)
		})
		// The forgery authenticates under GCM ...
		if _, err := openGCM(&scratch{}, f.s.st.v1, forged, aad); err != nil {
			t.Fatalf("forgery does not authenticate: %v", err)
		}
		// ... and Open refuses it.
		if pt, err := f.s.Open(forged, f.nid, f.ctx); err != ErrDecrypt {
			t.Fatalf("Open(forged v1) = %q, %v, want %v", pt, err, ErrDecrypt)
		}
	})
	t.Run("fail/v2-other-siv", func(t *testing.T) {
		h := Header{Mode: ModeDeterministic, Key: "trade/price", Version: 2, Format: FormatVersion}
		_, aad2 := mustLayout(t, &h, &f.nid, f.ctx)
		forged := &Envelope{Header: h, SIV: [SIVSize]byte{9, 9, 9}}
		ct := make([]byte, len(f.pt))
		cipher.NewCTR(f.s.st.sivBlock, forged.SIV[:]).XORKeyStream(ct, f.pt)
		sc := &scratch{mac: hmac.New(sha256.New, f.s.st.sivMACKey)}
		forged.Ciphertext = append(ct, sc.sivTag(aad2, forged.SIV[:], ct)...)
		if pt, err := f.s.Open(forged, f.nid, f.ctx); err != ErrDecrypt {
			t.Fatalf("Open(forged v2) = %q, %v, want %v", pt, err, ErrDecrypt)
		}
		// The same construction with the derived SIV is the real one.
		if got, err := f.s.Open(f.env, f.nid, f.ctx); err != nil || !bytes.Equal(got, f.pt) {
			t.Fatalf("Open(real) = %q, %v", got, err)
		}
	})
}

// mustLayout returns the PRF input of random mode (the header alone) and
// the additional data of h, nid and ctx.
func mustLayout(t *testing.T, h *Header, nid *NetworkID, ctx Context) (prfInput, aad []byte) {
	t.Helper()
	prfInput, aad, err := (&scratch{}).layout(ModeRandom, "", h, nid, ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return prfInput, aad
}

// TestSealRefusesFormat1 checks that format 1 is read-only and a sealer id
// outside random mode is refused.
func TestSealRefusesFormat1(t *testing.T) {
	f := newFixture(t, ModeRandom)
	if _, err := f.s.Seal(Header{Mode: ModeRandom, Key: "a/b", Version: 1, Format: FormatVersion1}, f.nid, nil, "", nil, nil); !errors.Is(err, ErrFormat) {
		t.Errorf("Seal(format 1) = %v, want %v", err, ErrFormat)
	}
	if _, err := f.s.Seal(Header{Mode: ModeDeterministic, Key: "a/b", Version: 1, Sealer: SealerID{1}}, f.nid, nil, "", nil, nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("Seal(deterministic with a sealer id) = %v, want %v", err, ErrMalformed)
	}
}
