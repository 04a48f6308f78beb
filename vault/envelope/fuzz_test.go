package envelope

import (
	"bytes"
	"errors"
	"testing"
)

func addVectorSeeds(f *testing.F, text bool) {
	vs := append(loadVectors(f), loadVectorFile(f, vectorsV1Path)...)
	for _, v := range vs {
		if text {
			f.Add(v.Text)
		} else {
			f.Add(string(v.envelope(f)))
		}
	}
	e := sampleEnvelope()
	for _, b := range [][]byte{nil, {1}, {1, 1, 3, 'a', '/', 'b'}, e.Marshal()} {
		if text {
			f.Add(TextPrefix + b64.EncodeToString(b))
		} else {
			f.Add(string(b))
		}
	}
}

// FuzzParse checks that Parse never panics and is non-malleable: whatever it
// accepts marshals back to the same bytes, in both forms.
func FuzzParse(f *testing.F) {
	addVectorSeeds(f, false)
	f.Fuzz(func(t *testing.T, in string) {
		b := []byte(in)
		e, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || e != nil {
				t.Fatalf("Parse() = %v, %v, want nil, %v", e, err, ErrMalformed)
			}
			return
		}
		if got := e.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("Parse(%x).Marshal() = %x", b, got)
		}
		e2, err := ParseText(e.Text())
		if err != nil {
			t.Fatalf("ParseText(Text()) = %v", err)
		}
		if got := e2.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("ParseText(Text()).Marshal() = %x, want %x", got, b)
		}
	})
}

// FuzzParseText checks that ParseText never panics and accepts exactly one
// text form per envelope.
func FuzzParseText(f *testing.F) {
	addVectorSeeds(f, true)
	f.Add("km1:")
	f.Add("km1:AQ=")
	f.Add("km1:AQMI\nZGVtby9zc24")
	f.Fuzz(func(t *testing.T, in string) {
		e, err := ParseText(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || e != nil {
				t.Fatalf("ParseText() = %v, %v, want nil, %v", e, err, ErrMalformed)
			}
			return
		}
		if got := e.Text(); got != in {
			t.Fatalf("ParseText(%q).Text() = %q", in, got)
		}
		if _, err := Parse(e.Marshal()); err != nil {
			t.Fatalf("Parse(Marshal()) = %v", err)
		}
	})
}

// FuzzOpen feeds arbitrary bytes, as an envelope, to a Sealer with a fixed
// key: it must never panic, and every failure is ErrDecrypt.
func FuzzOpen(f *testing.F) {
	vs := loadVectors(f)
	v := vs[1] // random/64B/fabric-context
	s, err := NewSealer(v.key(f))
	if err != nil {
		f.Fatal(err)
	}
	known := map[string]bool{}
	for _, v := range append(vs, loadVectorFile(f, vectorsV1Path)...) {
		f.Add(v.envelope(f))
		known[string(v.envelope(f))] = true
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := Parse(in)
		if err != nil {
			return
		}
		pt, err := s.Open(e, v.nid(t), v.Context)
		if err != nil {
			if err != ErrDecrypt || pt != nil {
				t.Fatalf("Open(env) = %x, %v, want nil, %v", pt, err, ErrDecrypt)
			}
			return
		}
		if !known[string(in)] {
			t.Fatalf("Open(%x) succeeded on an envelope not in the vectors", in)
		}
	})
}
