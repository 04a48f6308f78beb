package token

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/record-v1.txt")

const vectorFile = "testdata/record-v1.txt"

// vectorRecord is the record of the known-answer vector.
func vectorRecord() *record {
	rec := &record{tok: Token{
		ID:      "0123456789abcdef",
		Party:   "token:app",
		Role:    RoleAdmin, // pins the persisted value 2
		Label:   "ops",
		Created: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		Expires: time.Date(2025, 1, 2, 4, 4, 5, 6, time.UTC),
		Revoked: true,
	}}
	for i := range rec.hash {
		rec.hash[i] = byte(0xa0 + i)
	}
	return rec
}

// handEncoded builds the vector's encoding byte by byte, independently of
// encodeRecord.
func handEncoded() []byte {
	var b bytes.Buffer
	b.WriteByte(1)
	b.Write([]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef})
	for i := range 32 {
		b.WriteByte(byte(0xa0 + i))
	}
	b.WriteByte(2)                                      // RoleAdmin
	b.WriteByte(1)                                      // revoked
	b.Write([]byte{0, 0, 0, 0, 0x67, 0x76, 0x02, 0x25}) // 1735787045
	b.Write([]byte{0, 0, 0, 6})
	b.WriteByte(1)                                      // expires
	b.Write([]byte{0, 0, 0, 0, 0x67, 0x76, 0x10, 0x35}) // +3600
	b.Write([]byte{0, 0, 0, 6})
	b.Write([]byte{0, 9})
	b.WriteString("token:app")
	b.Write([]byte{0, 3})
	b.WriteString("ops")
	return b.Bytes()
}

func readVector(t testing.TB) []byte {
	t.Helper()
	f, err := os.Open(vectorFile)
	if err != nil {
		t.Fatalf("open vectors: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if h, ok := strings.CutPrefix(sc.Text(), "record "); ok {
			v, err := hex.DecodeString(strings.TrimSpace(h))
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no record in %s", vectorFile)
	return nil
}

func TestRecordKnownAnswer(t *testing.T) {
	rec := vectorRecord()
	got := encodeRecord(rec)
	if want := handEncoded(); !bytes.Equal(got, want) {
		t.Fatalf("encodeRecord(vector) =\n%x\nwant\n%x", got, want)
	}
	if *update {
		content := fmt.Sprintf("# Known-answer vector for the stored token record, format version 1.\n"+
			"# id 0123456789abcdef, hash a0..bf, role admin (2), revoked, created 2025-01-02T03:04:05.000000006Z,\n"+
			"# expires one hour later, party \"token:app\", label \"ops\".\n"+
			"record %x\n", got)
		if err := os.WriteFile(vectorFile, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	vec := readVector(t)
	if !bytes.Equal(vec, got) {
		t.Fatalf("encoding differs from %s (format change? bump recordV1)", vectorFile)
	}
	dec, err := decodeRecord(vec)
	if err != nil {
		t.Fatalf("decodeRecord(vector) = %v", err)
	}
	if *dec != *rec {
		t.Fatalf("decodeRecord(vector) = %+v, want %+v", dec, rec)
	}

	rec.tok.Expires, rec.tok.Revoked = time.Time{}, false
	if dec, err := decodeRecord(encodeRecord(rec)); err != nil || *dec != *rec {
		t.Fatalf("round trip without expiry = %+v, %v; want %+v", dec, err, rec)
	}
}

func TestDecodeRecordRejects(t *testing.T) {
	vec := encodeRecord(vectorRecord())
	mut := func(i int, c byte) []byte { b := bytes.Clone(vec); b[i] = c; return b }
	for name, v := range map[string][]byte{
		"fail/empty":          nil,
		"fail/version":        mut(0, 2),
		"fail/role":           mut(41, 0),
		"fail/revoked-flag":   mut(42, 2),
		"fail/created-ns":     mut(51, 0xff),
		"fail/expiry-flag":    mut(55, 2),
		"fail/expiry-no-flag": mut(55, 0),
		"fail/truncated":      vec[:len(vec)-1],
		"fail/trailing":       append(bytes.Clone(vec), 0),
		"fail/party-len":      mut(68, 0xff),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeRecord(v); err == nil {
				t.Fatalf("decodeRecord(%x) = nil error, want error", v)
			}
		})
	}
}

// FuzzDecodeRecord checks that decodeRecord never panics and that whatever
// it accepts re-encodes to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(readVector(f))
	rec := vectorRecord()
	rec.tok.Expires = time.Time{}
	f.Add(encodeRecord(rec))
	f.Fuzz(func(t *testing.T, v []byte) {
		rec, err := decodeRecord(v)
		if err != nil {
			return
		}
		if re := encodeRecord(rec); !bytes.Equal(re, v) {
			t.Fatalf("decodeRecord(%x) re-encodes to %x", v, re)
		}
	})
}
