package p2p

import (
	"bytes"
	"encoding/hex"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Known-answer vectors pin the wire format.
func TestFrameVectors(t *testing.T) {
	t.Parallel()
	sum, _ := encodeSummary(map[string]uint64{"b": 300, "a": 1, "zero": 0}, 1<<20)
	vectors := []struct {
		name string
		got  []byte
		want string
	}{
		{"summary", sum, "01 02 01 61 01 01 62 ac02"},
		{"request", encodeRequest("a", 5, 256), "02 01 61 05 8002"},
		{"batch", func() []byte { b, _ := encodeBatch([][]byte{[]byte("xy"), []byte("z")}, 1<<20); return b }(), "03 02 02 7879 01 7a"},
		{"empty batch", func() []byte { b, _ := encodeBatch(nil, 1<<20); return b }(), "03 00"},
	}
	for _, v := range vectors {
		if want := mustHex(t, v.want); !bytes.Equal(v.got, want) {
			t.Errorf("%s = %x, want %x", v.name, v.got, want)
		}
	}
}

func TestDecodeFrame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		hex  string
		ok   bool
	}{
		{"ok/summary", "01 02 01 61 01 01 62 ac02", true},
		{"ok/empty summary", "01 00", true},
		{"ok/request", "02 01 61 05 8002", true},
		{"ok/batch", "03 02 02 7879 01 7a", true},
		{"ok/done", "04", true},
		{"ok/busy", "05", true},
		{"fail/empty", "", false},
		{"fail/unknown type", "06", false},
		{"fail/done trailing", "04 00", false},
		{"fail/summary trailing", "01 00 00", false},
		{"fail/summary truncated", "01 02 01 61 01", false},
		{"fail/summary unsorted", "01 02 01 62 01 01 61 01", false},
		{"fail/summary duplicate", "01 02 01 61 01 01 61 02", false},
		{"fail/summary zero seq", "01 01 01 61 00", false},
		{"fail/summary empty issuer", "01 01 00 01", false},
		{"fail/summary too many", "01 914e", false}, // 10001
		{"fail/summary non-minimal count", "01 8000", false},
		{"fail/request max 0", "02 01 61 05 00", false},
		{"fail/request max 257", "02 01 61 05 8102", false},
		{"fail/request non-minimal after", "02 01 61 8500 01", false},
		{"fail/batch empty event", "03 01 00", false},
		{"fail/batch too many", "03 8102", false},
		{"fail/batch truncated", "03 01 05 61", false},
		{"fail/overlong uvarint", "03 ffffffffffffffffffff01", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeFrame(mustHex(t, tt.hex))
			if (err == nil) != tt.ok {
				t.Fatalf("decodeFrame(%s) = %v, want ok=%v", tt.hex, err, tt.ok)
			}
			if err != nil && !errors.Is(err, errMalformed) {
				t.Errorf("decodeFrame(%s) = %v, want errMalformed", tt.hex, err)
			}
		})
	}
}

func TestEncodeSummaryTruncates(t *testing.T) {
	t.Parallel()
	s := map[string]uint64{}
	for i := range 200 {
		s[strings.Repeat("i", 1+i%50)+string(rune('a'+i%26))+strings.Repeat("x", i)] = uint64(i + 1)
	}
	body, dropped := encodeSummary(s, 1000)
	if len(body) > 1000 {
		t.Fatalf("summary of %d bytes, limit 1000", len(body))
	}
	f, err := decodeFrame(body)
	if err != nil {
		t.Fatal(err)
	}
	if dropped == 0 || len(f.summary)+dropped != len(s) {
		t.Fatalf("kept %d, dropped %d of %d", len(f.summary), dropped, len(s))
	}
	for k, v := range f.summary {
		if s[k] != v {
			t.Errorf("summary[%q] = %d, want %d", k, v, s[k])
		}
	}
}

func TestEncodeBatchCutsBySize(t *testing.T) {
	t.Parallel()
	evs := [][]byte{bytes.Repeat([]byte("a"), 400), bytes.Repeat([]byte("b"), 400), bytes.Repeat([]byte("c"), 400)}
	body, n := encodeBatch(evs, 1000)
	if n != 2 || len(body) > 1000 {
		t.Fatalf("encodeBatch took %d events in %d bytes, want 2 in <= 1000", n, len(body))
	}
	if _, n := encodeBatch(evs, 100); n != 0 {
		t.Fatalf("encodeBatch took %d events larger than the frame", n)
	}
}

func TestFrameIOLimits(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := newFrameIO(&buf, 1<<20)
	if err := w.write(encodeRequest("issuer", 1, 2)); err != nil {
		t.Fatal(err)
	}
	f, err := newFrameIO(&buf, 1<<20).read()
	if err != nil || f.typ != frameRequest || f.issuer != "issuer" || f.after != 1 || f.max != 2 {
		t.Fatalf("read() = %+v, %v", f, err)
	}
	// A length prefix above the limit is refused before reading the body.
	in := bytes.NewReader(mustHex(t, "8108"+strings.Repeat("00", 8))) // 1025 bytes announced
	if _, err := newFrameIO(rw{in, &buf}, 1024).read(); !errors.Is(err, errFrameTooLarge) {
		t.Errorf("read(1025-byte frame) = %v, want errFrameTooLarge", err)
	}
	for _, h := range []string{"00", "8000 01", "ffffffffffffffffffffff"} {
		in := bytes.NewReader(mustHex(t, h))
		if _, err := newFrameIO(rw{in, &buf}, 1024).read(); !errors.Is(err, errMalformed) {
			t.Errorf("read(%s) = %v, want errMalformed", h, err)
		}
	}
	if err := newFrameIO(&buf, 4).write([]byte("12345")); !errors.Is(err, errFrameTooLarge) {
		t.Errorf("write(5 bytes, limit 4) = %v, want errFrameTooLarge", err)
	}
}

type rw struct {
	*bytes.Reader
	w *bytes.Buffer
}

func (r rw) Write(p []byte) (int, error) { return r.w.Write(p) }

// FuzzDecodeFrame checks that the parser never panics and that the encoding is
// canonical: a body that parses re-encodes to the same bytes.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{"01020161010162ac02", "0100", "0201610580 02", "0302027879017a", "04", "05", "03 00"} {
		f.Add(mustHex(f, s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fr, err := decodeFrame(body)
		if err != nil {
			return
		}
		var again []byte
		switch fr.typ {
		case frameSummary:
			var dropped int
			again, dropped = encodeSummary(fr.summary, len(body)+16)
			if dropped != 0 {
				t.Fatalf("re-encoding dropped %d issuers", dropped)
			}
		case frameRequest:
			again = encodeRequest(fr.issuer, fr.after, fr.max)
		case frameBatch:
			var n int
			again, n = encodeBatch(fr.events, len(body)+16)
			if n != len(fr.events) {
				t.Fatalf("re-encoding took %d of %d events", n, len(fr.events))
			}
		default:
			again = []byte{fr.typ}
		}
		if !bytes.Equal(again, body) {
			t.Fatalf("decode(%x) re-encodes to %x", body, again)
		}
		if fr.typ == frameSummary {
			keys := slices.Sorted(maps.Keys(fr.summary))
			if len(keys) != len(fr.summary) {
				t.Fatal("duplicate keys")
			}
		}
	})
}
