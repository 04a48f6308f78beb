package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/entry-v1.txt")

const vectorFile = "testdata/entry-v1.txt"

// vectorEntry is the entry of the known-answer vector.
func vectorEntry() Entry {
	var prev [32]byte
	for i := range prev {
		prev[i] = byte(i + 1)
	}
	return Entry{
		Seq:       7,
		Time:      time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		Principal: "token:app",
		Action:    "decrypt",
		Key:       "trade/price",
		Version:   3,
		Outcome:   "allow",
		Reason:    "",
		Count:     2,
		Prev:      prev,
	}
}

// handEncoded builds the vector's encoding byte by byte, independently of
// appendEntry, as the format comment in entry.go describes it.
func handEncoded() (body []byte, hash [32]byte) {
	var b bytes.Buffer
	b.WriteByte(1)
	for i := range 32 {
		b.WriteByte(byte(i + 1))
	}
	b.Write([]byte{0, 0, 0, 0, 0, 0, 0, 7})             // seq
	b.Write([]byte{0, 0, 0, 0, 0x67, 0x76, 0x02, 0x25}) // 2025-01-02T03:04:05Z = 1735787045
	b.Write([]byte{0, 0, 0, 6})                         // ns
	for _, s := range []string{"token:app", "decrypt", "trade/price"} {
		b.Write([]byte{0, 0, 0, byte(len(s))})
		b.WriteString(s)
	}
	b.Write([]byte{0, 0, 0, 3}) // key version
	b.Write([]byte{0, 0, 0, 5})
	b.WriteString("allow")
	b.Write([]byte{0, 0, 0, 0}) // empty reason
	b.Write([]byte{0, 0, 0, 2}) // count
	hash = sha256.Sum256(append([]byte("keymesh audit entry v1\x00"), b.Bytes()...))
	return b.Bytes(), hash
}

func readVectors(t testing.TB) map[string][]byte {
	t.Helper()
	f, err := os.Open(vectorFile)
	if err != nil {
		t.Fatalf("open vectors: %v", err)
	}
	defer f.Close()
	out := map[string][]byte{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, h, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("bad vector line %q", line)
		}
		v, err := hex.DecodeString(strings.TrimSpace(h))
		if err != nil {
			t.Fatalf("bad vector %s: %v", name, err)
		}
		out[name] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEntryKnownAnswer(t *testing.T) {
	t.Parallel()
	e := vectorEntry()
	got := appendEntry(nil, &e)
	body, hash := handEncoded()
	want := append(body, hash[:]...)
	if !bytes.Equal(got, want) {
		t.Fatalf("appendEntry(vector) =\n%x\nwant\n%x", got, want)
	}
	if e.Hash != hash {
		t.Fatalf("appendEntry(vector) hash = %x, want %x", e.Hash, hash)
	}
	head := encodeHead(e.Seq, e.Hash)

	if *update {
		content := fmt.Sprintf("# Known-answer vector for the audit entry encoding, format version 1.\n"+
			"# entry: seq 7, time 2025-01-02T03:04:05.000000006Z, prev 01..20, principal \"token:app\",\n"+
			"# action \"decrypt\", key \"trade/price\" version 3, outcome \"allow\", reason \"\", count 2.\n"+
			"# hash = SHA-256(\"keymesh audit entry v1\\x00\" || entry without its last 32 bytes).\n"+
			"entry %x\nhash %x\nhead %x\n", got, e.Hash, head)
		if err := os.WriteFile(vectorFile, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	vec := readVectors(t)
	if !bytes.Equal(vec["entry"], got) || !bytes.Equal(vec["hash"], e.Hash[:]) || !bytes.Equal(vec["head"], head) {
		t.Fatalf("encoding differs from %s (format change? bump formatV1)", vectorFile)
	}

	d, err := decodeEntry(vec["entry"])
	if err != nil {
		t.Fatalf("decodeEntry(vector) = %v", err)
	}
	if d != e {
		t.Fatalf("decodeEntry(vector) = %+v, want %+v", d, e)
	}
	if entryHash(vec["entry"]) != e.Hash {
		t.Fatalf("entryHash(vector) mismatch")
	}
}

func TestDecodeEntryRejects(t *testing.T) {
	t.Parallel()
	vec := appendEntry(nil, &[]Entry{vectorEntry()}[0])
	mut := func(f func([]byte) []byte) []byte { return f(bytes.Clone(vec)) }
	for name, v := range map[string][]byte{
		"fail/empty":          nil,
		"fail/version":        mut(func(b []byte) []byte { b[0] = 2; return b }),
		"fail/truncated":      vec[:len(vec)-1],
		"fail/trailing":       append(bytes.Clone(vec), 0),
		"fail/nanoseconds":    mut(func(b []byte) []byte { copy(b[49:53], []byte{0x3b, 0x9a, 0xca, 0x00}); return b }),
		"fail/count-zero":     mut(func(b []byte) []byte { copy(b[len(b)-36:], []byte{0, 0, 0, 0}); return b }),
		"fail/count-negative": mut(func(b []byte) []byte { copy(b[len(b)-36:], []byte{0x80, 0, 0, 0}); return b }),
		"fail/huge-length":    mut(func(b []byte) []byte { copy(b[53:57], []byte{0xff, 0xff, 0xff, 0xff}); return b }),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeEntry(v); err == nil {
				t.Fatalf("decodeEntry(%x) = nil error, want error", v)
			}
		})
	}
	for name, v := range map[string][]byte{
		"fail/short": make([]byte, headLen-1),
		"fail/long":  make([]byte, headLen+1),
		"fail/ver":   make([]byte, headLen),
	} {
		t.Run("head/"+name, func(t *testing.T) {
			if _, _, err := decodeHead(v); err == nil {
				t.Fatalf("decodeHead(%x) = nil error, want error", v)
			}
		})
	}
}

// FuzzDecodeEntry checks that decodeEntry never panics and that whatever
// it accepts re-encodes to the same bytes (the format is not malleable).
func FuzzDecodeEntry(f *testing.F) {
	vec := readVectors(f)
	f.Add(vec["entry"])
	f.Add(vec["head"])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		e, err := decodeEntry(v)
		if err != nil {
			return
		}
		re := appendBody(nil, &e)
		re = append(re, e.Hash[:]...)
		if !bytes.Equal(re, v) {
			t.Fatalf("decodeEntry(%x) re-encodes to %x", v, re)
		}
	})
}
