package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"maps"
	"strings"
	"testing"
)

var benchSizes = []int{64, 1024}

// benchContext is a typical Fabric context.
var benchContext = Context{
	"channel":   "trade-channel",
	"chaincode": "settlement",
	"state_key": "order~000000001042",
	"field":     "price",
}

func benchFixture(b *testing.B, mode Mode, size int) (*Sealer, Header, NetworkID, string, []byte) {
	s := mustSealer(b, unhex(b, label32("bench-key")))
	txID := ""
	if mode == ModeEndorsement {
		txID = "8d1f4c6e0b7a3e9d2c5f1a0b6e4d8c3f7a2b9e1d0c5f4a3b8e7d6c1f0a9b2e3d"
	}
	h := Header{Mode: mode, Key: "trade/price", Version: 3}
	if mode == ModeRandom {
		h.Sealer = SealerID{0x5e, 0xa1}
	}
	return s, h, NetworkID(unhex(b, label32("bench-net"))), txID, make([]byte, size)
}

func BenchmarkSeal(b *testing.B) {
	for _, mode := range allModes {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", mode, size), func(b *testing.B) {
				s, h, nid, txID, pt := benchFixture(b, mode, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				done := threadCPU(b)
				for b.Loop() {
					if _, err := s.Seal(h, nid, benchContext, txID, pt, nil); err != nil {
						b.Fatal(err)
					}
				}
				done()
			})
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, mode := range allModes {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", mode, size), func(b *testing.B) {
				s, h, nid, txID, pt := benchFixture(b, mode, size)
				env, err := s.Seal(h, nid, benchContext, txID, pt, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				done := threadCPU(b)
				for b.Loop() {
					if _, err := s.Open(env, nid, benchContext); err != nil {
						b.Fatal(err)
					}
				}
				done()
			})
		}
	}
}

// BenchmarkRawGCM is the baseline: AES-256-GCM seal with a module-generated
// nonce (cipher.NewGCMWithRandomNonce, the one GCM FIPS 140-only mode
// allows) and no additional data.
func BenchmarkRawGCM(b *testing.B) {
	block, err := aes.NewCipher(unhex(b, label32("bench-key")))
	if err != nil {
		b.Fatal(err)
	}
	gcm, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range benchSizes {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			pt := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			done := threadCPU(b)
			for b.Loop() {
				_ = gcm.Seal(nil, nil, pt, nil)
			}
			done()
		})
	}
}

// BenchmarkOpenV1 opens a format 1 envelope (written by earlier releases)
// of each mode, 64 bytes, from the vectors.
func BenchmarkOpenV1(b *testing.B) {
	for _, v := range loadVectorFile(b, vectorsV1Path) {
		if !strings.Contains(v.Name, "/64B/") {
			continue
		}
		b.Run(v.Mode, func(b *testing.B) {
			s := mustSealer(b, v.key(b))
			env, err := Parse(v.envelope(b))
			if err != nil {
				b.Fatal(err)
			}
			nid := v.nid(b)
			b.SetBytes(64)
			b.ReportAllocs()
			done := threadCPU(b)
			for b.Loop() {
				if _, err := s.Open(env, nid, v.Context); err != nil {
					b.Fatal(err)
				}
			}
			done()
		})
	}
}

func BenchmarkText(b *testing.B) {
	for _, size := range benchSizes {
		s, h, nid, _, pt := benchFixture(b, ModeRandom, size)
		env, err := s.Seal(h, nid, benchContext, "", pt, nil)
		if err != nil {
			b.Fatal(err)
		}
		text := env.Text()
		b.Run(fmt.Sprint("Text/", size), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = env.Text()
			}
		})
		b.Run(fmt.Sprint("ParseText/", size), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseText(text); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSealContext shows the cost of the context (validation, sorting,
// encoding, GHASH) for a 64-byte random-mode seal; compare with RawGCM/64.
// The Sealer remembers the key set of its contexts: entries-4 repeats one
// context, entries-4/values a new state_key value on every call (the usual
// case: the same keys), entries-4/alternating two contexts with different
// keys in turn (the worst case for that cache).
func BenchmarkSealContext(b *testing.B) {
	s, h, nid, _, pt := benchFixture(b, ModeRandom, 64)
	sixteen := Context{}
	for i := range 16 {
		sixteen[fmt.Sprint("key-", i)] = fmt.Sprint("value-", i)
	}
	values := make([]Context, 64)
	for i := range values {
		values[i] = Context{
			"channel":   "trade-channel",
			"chaincode": "settlement",
			"state_key": fmt.Sprintf("order~%012d", i),
			"field":     "price",
		}
	}
	eth := Context{
		"chain_id": "1337",
		"contract": "0x5fbdb2315678afecb367f032d93f642f64180aa3",
		"field":    "amount",
		"tx":       "transfer",
	}
	alternating := []Context{benchContext, eth}
	for _, tc := range []struct {
		name string
		ctxs []Context
	}{
		{"entries-0", []Context{nil}},
		{"entries-1", []Context{{"field": "price"}}},
		{"entries-4", []Context{benchContext}},
		{"entries-4/values", values},
		{"entries-4/alternating", alternating},
		{"entries-16", []Context{sixteen}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(pt)))
			b.ReportAllocs()
			i := 0
			done := threadCPU(b)
			for b.Loop() {
				if _, err := s.Seal(h, nid, tc.ctxs[i%len(tc.ctxs)], "", pt, nil); err != nil {
					b.Fatal(err)
				}
				i++
			}
			done()
		})
	}
}

// benchContexts are the contexts of BenchmarkSealPrepared, by name.
func benchContexts() []struct {
	name string
	ctx  Context
} {
	sixteen := Context{}
	for i := range 16 {
		sixteen[fmt.Sprint("key-", i)] = fmt.Sprint("value-", i)
	}
	return []struct {
		name string
		ctx  Context
	}{
		{"entries-0", nil},
		{"entries-1", Context{"field": "price"}},
		{"entries-4", benchContext},
		{"entries-16", sixteen},
	}
}

// BenchmarkSealPrepared is BenchmarkSealContext with the context prepared
// once (PrepareContext): SealPrepared returns a new Envelope each call, as
// Seal does; To/ seals into one reused Envelope (SealPreparedTo), the
// way a caller sealing a batch into one slab does. Compare with RawGCM/64.
func BenchmarkSealPrepared(b *testing.B) {
	s, h, nid, _, pt := benchFixture(b, ModeRandom, 64)
	for _, tc := range benchContexts() {
		pc, err := PrepareContext(tc.ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(pt)))
			b.ReportAllocs()
			done := threadCPU(b)
			for b.Loop() {
				if _, err := s.SealPrepared(h, nid, pc, "", pt, nil); err != nil {
					b.Fatal(err)
				}
			}
			done()
		})
		b.Run("To/"+tc.name, func(b *testing.B) {
			var e Envelope
			b.SetBytes(int64(len(pt)))
			b.ReportAllocs()
			done := threadCPU(b)
			for b.Loop() {
				if err := s.SealPreparedTo(&e, h, nid, pc, "", pt, nil); err != nil {
					b.Fatal(err)
				}
			}
			done()
		})
	}
}

// BenchmarkOpenPrepared opens a 64-byte random-mode envelope with a
// prepared context; compare with Open/random/64.
func BenchmarkOpenPrepared(b *testing.B) {
	s, h, nid, _, pt := benchFixture(b, ModeRandom, 64)
	for _, tc := range benchContexts() {
		pc, err := PrepareContext(tc.ctx)
		if err != nil {
			b.Fatal(err)
		}
		env, err := s.Seal(h, nid, tc.ctx, "", pt, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(pt)))
			b.ReportAllocs()
			done := threadCPU(b)
			for b.Loop() {
				if _, err := s.OpenPrepared(env, nid, pc); err != nil {
					b.Fatal(err)
				}
			}
			done()
		})
	}
}

// BenchmarkPrepareContext is what preparing a context costs, and checking
// that another map holds the same entries (PreparedContext.Matches), as a
// batch does to find items that share one.
func BenchmarkPrepareContext(b *testing.B) {
	for _, tc := range benchContexts() {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := PrepareContext(tc.ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		pc, err := PrepareContext(tc.ctx)
		if err != nil {
			b.Fatal(err)
		}
		same := maps.Clone(tc.ctx)
		b.Run("Matches/"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !pc.Matches(same) {
					b.Fatal("Matches(clone) = false")
				}
			}
		})
	}
}
