package envelope

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sort"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
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

// FuzzContext checks the context checks and encoding against a plain
// implementation of the spec (see Context.Validate and the package doc), on
// both paths: the full one and the Sealer's cache of key sets. The input is
// split at 0x1e into entries and each entry at its first 0x1f into key and
// value.
func FuzzContext(f *testing.F) {
	f.Add("channel\x1ftrade\x1echaincode\x1fsettlement\x1estate_key\x1forder~1\x1efield\x1fprice")
	f.Add("a\x1f\x1eb\x1f\xc3\x1ec\x7f\x1fv")
	f.Add("champ-\u00e9\x1fr\u00e9sum\u00e9\x1e\u0085\x1fv")
	f.Add("")
	f.Fuzz(func(t *testing.T, in string) {
		c := Context{}
		if in != "" {
			for _, e := range strings.Split(in, "\x1e") {
				k, v, _ := strings.Cut(e, "\x1f")
				c[k] = v
			}
		}
		valid := len(c) <= maxContextEntries
		keys := make([]string, 0, len(c))
		for k, v := range c {
			keys = append(keys, k)
			valid = valid && len(k) >= 1 && len(k) <= maxContextKeyLen && utf8.ValidString(k) &&
				len(v) <= maxContextValueLen && utf8.ValidString(v)
			for _, r := range k {
				valid = valid && !unicode.IsControl(r)
			}
		}
		sort.Strings(keys)
		want := binary.BigEndian.AppendUint16([]byte("p"), uint16(len(keys)))
		for _, k := range keys {
			want = binary.BigEndian.AppendUint16(want, uint16(len(k)))
			want = append(want, k...)
			want = binary.BigEndian.AppendUint32(want, uint32(len(c[k])))
			want = append(want, c[k]...)
		}
		if !valid {
			want = []byte("p")
		}
		verr := c.Validate()
		if (verr == nil) != valid || (verr != nil && !errors.Is(verr, ErrInvalidContext)) {
			t.Fatalf("Validate(%q) = %v, want valid = %v", c, verr, valid)
		}
		cc := &contextCache{}
		// The same keys with valid values, so that the cache knows them.
		primed := Context{}
		for k := range c {
			primed[k] = "v"
		}
		cc.appendContext(nil, primed)
		for i, enc := range []func([]byte, Context) ([]byte, error){appendContext, cc.appendContext, cc.appendContext} {
			// With several invalid entries, which one is reported
			// depends on the map's order, on every path.
			got, err := enc([]byte("p"), c)
			if (err == nil) != (verr == nil) || (err != nil && !errors.Is(err, ErrInvalidContext)) || !bytes.Equal(got, want) {
				t.Fatalf("path %d: appendContext(%q) = %x, %v, want %x, %v", i, c, got, err, want, verr)
			}
		}
	})
}
