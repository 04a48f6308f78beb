// Package tamper chooses the positions that tamper tests flip or cut at.
//
// By default a test visits a deterministic sample that still covers what
// parsers and authenticators treat specially: the first and last Edge
// bytes (headers, lengths, tags and signatures), every boundary the test
// marks and its neighbours, and Rest bytes of the middle drawn with a
// generator seeded by the test's name and the message length, so every
// run visits the same positions. Exhaustive mode visits every position:
//
//	KEYMESH_EXHAUSTIVE=1 go test ./...
//	go test ./event -exhaustive
//
// (the flag exists in the test binaries of packages that import tamper;
// for `go test ./...` use the environment variable, since a flag unknown
// to one package's test binary fails that package).
package tamper

import (
	"flag"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
)

// Edge is how many bytes at each end of a message the sample always
// covers; Rest is how many bytes of the middle it draws.
const (
	Edge = 16
	Rest = 32
)

var exhaustive = flag.Bool("exhaustive", false, "tamper tests visit every bit and byte, not a seeded sample (or KEYMESH_EXHAUSTIVE=1)")

// Exhaustive reports whether tamper tests visit every position.
func Exhaustive() bool {
	return *exhaustive || os.Getenv("KEYMESH_EXHAUSTIVE") == "1"
}

// Bytes returns, in increasing order, the byte offsets 0..n-1 a tamper
// test visits in an n-byte message: all of them when Exhaustive, otherwise
// the sample described in the package doc. marks are boundaries inside the
// message (the end of a header, the start of a tag); out-of-range marks
// are ignored.
func Bytes(tb testing.TB, n int, marks ...int) []int {
	if n <= 0 {
		return nil
	}
	if Exhaustive() || n <= 2*Edge+Rest {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	pick := map[int]bool{}
	add := func(i int) {
		if i >= 0 && i < n {
			pick[i] = true
		}
	}
	for i := range Edge {
		add(i)
		add(n - 1 - i)
	}
	for _, m := range marks {
		add(m - 1)
		add(m)
		add(m + 1)
	}
	h := fnv.New64a()
	h.Write([]byte(tb.Name()))
	r := rand.New(rand.NewPCG(h.Sum64(), uint64(n)))
	for range Rest {
		add(Edge + r.IntN(n-2*Edge))
	}
	out := make([]int, 0, len(pick))
	for i := range pick {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

// Bits returns, in increasing order, the bit offsets (byte*8 + bit) a
// bit-flip test visits in an n-byte message: every bit of each byte Bytes
// returns.
func Bits(tb testing.TB, n int, marks ...int) []int {
	bytes := Bytes(tb, n, marks...)
	out := make([]int, 0, 8*len(bytes))
	for _, b := range bytes {
		for bit := range 8 {
			out = append(out, 8*b+bit)
		}
	}
	return out
}

// Flip returns a copy of b with bit i (byte i/8, bit i%8) flipped.
func Flip(b []byte, i int) []byte {
	c := slices.Clone(b)
	c[i/8] ^= 1 << (i % 8)
	return c
}

// Count returns n when Exhaustive and sampled otherwise: the number of
// seeded random trials a test runs.
func Count(sampled, n int) int {
	if Exhaustive() {
		return n
	}
	return sampled
}
