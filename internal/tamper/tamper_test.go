package tamper

import (
	"slices"
	"testing"
)

func TestBytesCoversEdgesAndMarks(t *testing.T) {
	if Exhaustive() {
		t.Skip("the sample is the point of this test")
	}
	const n = 1000
	got := Bytes(t, n, 500, 2000, -3)
	if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Fatalf("Bytes = %v, want sorted and distinct", got)
	}
	for _, i := range []int{0, Edge - 1, n - Edge, n - 1, 499, 500, 501} {
		if !slices.Contains(got, i) {
			t.Errorf("Bytes(%d, mark 500) lacks offset %d", n, i)
		}
	}
	if len(got) > 2*Edge+3+Rest || len(got) < 2*Edge+3 {
		t.Errorf("Bytes(%d) = %d offsets, want between %d and %d", n, len(got), 2*Edge+3, 2*Edge+3+Rest)
	}
	if again := Bytes(t, n, 500); !slices.Equal(got, again) {
		t.Error("Bytes is not deterministic")
	}
	if short := Bytes(t, 10); len(short) != 10 {
		t.Errorf("Bytes(10) = %v, want every offset of a short message", short)
	}
	if bits := Bits(t, n, 500); len(bits) != 8*len(got) || bits[0] != 0 || bits[len(bits)-1] != 8*n-1 {
		t.Errorf("Bits(%d) = %d bits from %d to %d", n, len(bits), bits[0], bits[len(bits)-1])
	}
}

func TestFlipCopies(t *testing.T) {
	b := []byte{0, 0}
	if got := Flip(b, 9); got[1] != 2 || b[1] != 0 {
		t.Errorf("Flip(%x, 9) = %x (input now %x)", []byte{0, 0}, got, b)
	}
}
