package envelope

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestModeValuesPinned pins the persisted Mode values: they are written into
// every envelope and must never change.
func TestModeValuesPinned(t *testing.T) {
	for _, tc := range []struct {
		mode Mode
		want uint8
		name string
	}{
		{ModeRandom, 1, "random"},
		{ModeEndorsement, 2, "endorsement"},
		{ModeDeterministic, 3, "deterministic"},
	} {
		if uint8(tc.mode) != tc.want {
			t.Errorf("Mode %s = %d, want %d", tc.name, uint8(tc.mode), tc.want)
		}
		if got := tc.mode.String(); got != tc.name {
			t.Errorf("Mode(%d).String() = %q, want %q", tc.want, got, tc.name)
		}
	}
	if FormatVersion != 2 || FormatVersion1 != 1 || TextPrefix != "km1:" {
		t.Errorf("FormatVersion, FormatVersion1, TextPrefix = %d, %d, %q, want 2, 1, \"km1:\"", FormatVersion, FormatVersion1, TextPrefix)
	}
}

func TestModeString(t *testing.T) {
	for _, tc := range []struct {
		mode Mode
		want string
	}{
		{0, "mode(0)"},
		{9, "mode(9)"},
		{255, "mode(255)"},
	} {
		if got := tc.mode.String(); got != tc.want {
			t.Errorf("Mode(%d).String() = %q, want %q", uint8(tc.mode), got, tc.want)
		}
	}
}

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want Mode
		ok   bool
	}{
		{"ok/empty-is-random", "", ModeRandom, true},
		{"ok/random", "random", ModeRandom, true},
		{"ok/endorsement", "endorsement", ModeEndorsement, true},
		{"ok/deterministic", "deterministic", ModeDeterministic, true},
		{"fail/upper", "Random", 0, false},
		{"fail/number", "1", 0, false},
		{"fail/unknown", "siv", 0, false},
		{"fail/mode-string", "mode(4)", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMode(tc.in)
			if tc.ok {
				if err != nil || got != tc.want {
					t.Fatalf("ParseMode(%q) = %v, %v, want %v, nil", tc.in, got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseMode(%q) = %v, nil, want error", tc.in, got)
			}
			if !strings.Contains(err.Error(), `"`+tc.in+`"`) {
				t.Errorf("ParseMode(%q) error %q does not quote the input", tc.in, err)
			}
		})
	}
}

func TestCheckKeyName(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"ok/simple", "demo/ssn", true},
		{"ok/dash-digit", "trade/price-v2", true},
		{"ok/dot-underscore", "hr.eu/cv_text", true},
		{"ok/digits-first", "0org/1key", true},
		{"ok/63-byte-segments", strings.Repeat("a", 63) + "/" + strings.Repeat("b", 63), true},
		{"fail/empty", "", false},
		{"fail/no-slash", "demo", false},
		{"fail/two-slashes", "a/b/c", false},
		{"fail/dotdot-namespace", "../x", false},
		{"fail/dotdot-path", "demo/../x", false},
		{"fail/upper", "Demo/x", false},
		{"fail/leading-dot", "demo/.x", false},
		{"fail/leading-dash", "demo/-x", false},
		{"fail/empty-namespace", "/x", false},
		{"fail/empty-name", "x/", false},
		{"fail/64-byte-segment", strings.Repeat("a", 64) + "/x", false},
		{"fail/129-bytes", strings.Repeat("a", 63) + "/" + strings.Repeat("b", 65), false},
		{"fail/nul", "demo/s\x00n", false},
		{"fail/space", "demo/s n", false},
		{"fail/unicode", "demo/ßsn", false},
		{"fail/backslash", "demo\\ssn", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckKeyName(tc.in)
			if tc.ok {
				if err != nil {
					t.Fatalf("CheckKeyName(%q) = %v, want nil", tc.in, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidKeyName) {
				t.Fatalf("CheckKeyName(%q) = %v, want %v", tc.in, err, ErrInvalidKeyName)
			}
			if len(tc.in) <= 64 && !strings.Contains(err.Error(), quote(tc.in)) {
				t.Errorf("CheckKeyName(%q) = %q, does not quote the name", tc.in, err)
			}
		})
	}
}

func TestContextValidate(t *testing.T) {
	many := func(n int) Context {
		c := Context{}
		for i := 0; i < n; i++ {
			c[strings.Repeat("k", i+1)] = "v"
		}
		return c
	}
	for _, tc := range []struct {
		name string
		ctx  Context
		ok   bool
	}{
		{"ok/nil", nil, true},
		{"ok/empty", Context{}, true},
		{"ok/fabric", Context{"channel": "c", "chaincode": "cc", "state_key": "k", "field": "f"}, true},
		{"ok/32-entries", many(32), true},
		{"ok/unicode-key", Context{"champ-é": "v"}, true},
		{"ok/replacement-char-key", Context{"\uFFFD": "v"}, true},
		{"ok/empty-value", Context{"k": ""}, true},
		{"ok/128-byte-key", Context{strings.Repeat("k", 128): "v"}, true},
		{"ok/4096-byte-value", Context{"k": strings.Repeat("v", 4096)}, true},
		{"ok/control-in-value", Context{"k": "a\nb"}, true},
		{"fail/33-entries", many(33), false},
		{"fail/empty-key", Context{"": "v"}, false},
		{"fail/129-byte-key", Context{strings.Repeat("k", 129): "v"}, false},
		{"fail/nul-key", Context{"a\x00": "v"}, false},
		{"fail/newline-key", Context{"a\n": "v"}, false},
		{"fail/del-key", Context{"a\x7f": "v"}, false},
		{"fail/c1-key", Context{"a\u0085": "v"}, false},
		{"fail/invalid-utf8-key", Context{"a\xff": "v"}, false},
		{"fail/4097-byte-value", Context{"k": strings.Repeat("v", 4097)}, false},
		{"fail/invalid-utf8-value", Context{"k": "\xc3"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ctx.Validate()
			// Seal and Open check through appendContext, and through the
			// Sealer's cache once it knows the keys: the same verdict and
			// the same error.
			_, aerr := appendContext(nil, tc.ctx)
			cc := &contextCache{}
			primed := Context{}
			for k := range tc.ctx {
				primed[k] = "v"
			}
			if primed.Validate() == nil {
				if _, err := cc.appendContext(nil, primed); err != nil {
					t.Fatal(err)
				}
			}
			_, cerr := cc.appendContext(nil, tc.ctx)
			if fmt.Sprint(aerr) != fmt.Sprint(err) || fmt.Sprint(cerr) != fmt.Sprint(err) {
				t.Fatalf("appendContext() = %v, cached = %v, want %v as Validate()", aerr, cerr, err)
			}
			if tc.ok {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidContext) {
				t.Fatalf("Validate() = %v, want %v", err, ErrInvalidContext)
			}
		})
	}
}

// TestContextCache checks that a Sealer's context cache gives the encoding
// and the errors of the full path, as contexts keep their keys, change
// them, shrink, grow and alternate.
func TestContextCache(t *testing.T) {
	fabric := func(key string) Context {
		return Context{"channel": "trade", "chaincode": "settlement", "state_key": key, "field": "price"}
	}
	many := func(n int, v string) Context {
		c := Context{}
		for i := range n {
			c[fmt.Sprint("key-", i)] = v
		}
		return c
	}
	manyBad := many(16, "b")
	manyBad["key-3"] = "\xff"
	other := Context{"chain_id": "1337", "contract": "0x5fbdb2315678afecb367f032d93f642f64180aa3", "field": "amount", "x": "y"}
	cs := []Context{
		fabric("order~1"), fabric("order~2"), fabric("ordre~é"), fabric(""),
		other, fabric("order~3"), other, fabric("order~4"),
		{"channel": "trade", "chaincode": "settlement", "state_key": "order~5"}, // a key fewer
		{"channel": "trade", "chaincode": "settlement", "state_key": "order~5", "field": "price", "extra": "1"},
		{"channel": "trade", "chaincode": "settlement", "state_key": "order~5", "fieldx": "price"}, // a key renamed
		fabric("bad \xff utf-8"), fabric("\xc3"), fabric(strings.Repeat("v", 4097)), fabric(strings.Repeat("v", 4096)),
		{"": "v", "channel": "trade", "chaincode": "settlement", "state_key": "order~6"},
		nil, {}, fabric("order~7"),
		many(16, "a"), many(16, "b"), manyBad, many(32, "c"), many(32, "d"), many(33, "e"),
	}
	cc := &contextCache{}
	for round := range 3 * learnEvery {
		for i, c := range cs {
			want, werr := appendContext([]byte("prefix"), c)
			got, err := cc.appendContext([]byte("prefix"), c)
			if !bytes.Equal(got, want) || fmt.Sprint(err) != fmt.Sprint(werr) {
				t.Fatalf("round %d, context %d: cached appendContext() = %x, %v, want %x, %v", round, i, got, err, want, werr)
			}
		}
	}
	// A stable key set is learnt at once and then hits.
	cc = &contextCache{}
	for i := range 100 {
		if _, err := cc.appendContext(nil, fabric(fmt.Sprint("order~", i))); err != nil {
			t.Fatal(err)
		}
	}
	if got := cc.misses.Load(); got != 1 {
		t.Errorf("%d misses for one key set, want 1", got)
	}

	// End to end: one Sealer, contexts of the same keys and of others;
	// each envelope opens with its own context only.
	f := newFixture(t, ModeRandom)
	for _, mode := range allModes {
		txID := ""
		if mode == ModeEndorsement {
			txID = "tx"
		}
		h := Header{Mode: mode, Key: "trade/price", Version: 2}
		var envs []*Envelope
		var ctxs []Context
		for _, c := range cs {
			if c.Validate() != nil {
				continue
			}
			e, err := f.s.Seal(h, f.nid, c, txID, f.pt, nil)
			if err != nil {
				t.Fatal(err)
			}
			envs, ctxs = append(envs, e), append(ctxs, c)
		}
		for i, e := range envs {
			for j, c := range ctxs {
				pt, err := f.s.Open(e, f.nid, c)
				same, _ := appendContext(nil, ctxs[i])
				this, _ := appendContext(nil, c)
				if bytes.Equal(same, this) {
					if err != nil || !bytes.Equal(pt, f.pt) {
						t.Fatalf("%v: Open(env %d, context %d) = %q, %v, want %q", mode, i, j, pt, err, f.pt)
					}
				} else if err != ErrDecrypt {
					t.Fatalf("%v: Open(env %d, context %d) = %q, %v, want %v", mode, i, j, pt, err, ErrDecrypt)
				}
			}
		}
	}
}

// TestASCIIChecks checks the word-at-a-time checks against byte-by-byte
// ones, for every byte value at every position of strings up to 24 bytes.
func TestASCIIChecks(t *testing.T) {
	for n := 0; n <= 24; n++ {
		for pos := 0; pos < max(n, 1); pos++ {
			for c := 0; c < 256; c++ {
				b := bytes.Repeat([]byte{'a'}, n)
				if n > 0 {
					b[pos] = byte(c)
				}
				s := string(b)
				printable, ascii := true, true
				for i := 0; i < len(s); i++ {
					printable = printable && s[i] >= 0x20 && s[i] <= 0x7e
					ascii = ascii && s[i] < 0x80
				}
				if got := printableASCII(s); got != printable {
					t.Fatalf("printableASCII(%q) = %v, want %v", s, got, printable)
				}
				if got := orBytes(s)&highBits == 0; got != ascii {
					t.Fatalf("orBytes(%q) ASCII = %v, want %v", s, got, ascii)
				}
			}
		}
	}
}

// TestContextEncodingUnambiguous checks that contexts differing only in
// where the boundaries fall encode differently.
func TestContextEncodingUnambiguous(t *testing.T) {
	cs := []Context{nil, {"a": "bc"}, {"ab": "c"}, {"a": "b", "c": ""}, {"a": "", "bc": ""}, {"a": "b\x00\x01c"}}
	seen := map[string]int{}
	for i, c := range cs {
		b, err := appendContext(nil, c)
		if err != nil {
			t.Fatal(err)
		}
		enc := string(b)
		if j, ok := seen[enc]; ok {
			t.Errorf("contexts %v and %v encode alike: %x", cs[j], c, enc)
		}
		seen[enc] = i
	}
	if got, _ := appendContext(nil, nil); !bytes.Equal(got, []byte{0, 0}) {
		t.Errorf("appendContext(nil, nil) = %x, want 0000", got)
	}
}

// TestContextEncoding checks the encoding against one built from the spec,
// for contexts that fit the stack buffer and contexts that spill.
func TestContextEncoding(t *testing.T) {
	for _, n := range []int{0, 1, 2, 7, 8, 9, 16, 32} {
		c := Context{}
		for i := 0; i < n; i++ {
			// Keys in no particular order, sharing prefixes.
			k := pattern(fmt.Sprint("ctx-key-", i), 1+i%5)
			c[k] = strings.Repeat("v", i)
			c[k+"x"] = ""
		}
		for len(c) > n {
			for k := range c {
				delete(c, k)
				break
			}
		}
		_, refAAD := refAAD(t, &vector{Context: c, KeyName: "a/b", NetworkID: strings.Repeat("00", 32)})
		want := refAAD[len("keymesh/v1 envelope")+10+32:]
		if got, err := appendContext(nil, c); err != nil || !bytes.Equal(got, want) {
			t.Errorf("appendContext(%d entries) = %x, %v, want %x", n, got, err, want)
		}
		// Appended after what b holds, and b unchanged on error.
		prefix := []byte("prefix")
		if got, err := appendContext(prefix, c); err != nil || !bytes.Equal(got, append(prefix, want...)) {
			t.Errorf("appendContext(prefix, %d entries) = %x, %v, want prefix || %x", n, got, err, want)
		}
		c[""] = "bad"
		if got, err := appendContext(prefix, c); !errors.Is(err, ErrInvalidContext) || !bytes.Equal(got, prefix) {
			t.Errorf("appendContext(prefix, bad %d-entry context) = %q, %v, want %q, %v", n+1, got, err, prefix, ErrInvalidContext)
		}
	}
}

// sampleEnvelope returns a valid envelope of format 1 without sealing it.
func sampleEnvelope() *Envelope {
	return &Envelope{
		Header:     Header{Mode: ModeDeterministic, Key: "demo/ssn", Version: 0x01020304, Format: FormatVersion1},
		Nonce:      [NonceSize]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
		Ciphertext: bytes.Repeat([]byte{0xee}, TagSize+5),
	}
}

func TestMarshalLayout(t *testing.T) {
	e := sampleEnvelope()
	want := []byte{0x01, 0x03, 0x08}
	want = append(want, "demo/ssn"...)
	want = append(want, 0x01, 0x02, 0x03, 0x04)
	want = append(want, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	want = append(want, e.Ciphertext...)
	if got := e.Marshal(); !bytes.Equal(got, want) {
		t.Fatalf("Marshal() = %x, want %x", got, want)
	}
	if got, want := e.Text(), TextPrefix+base64.RawURLEncoding.EncodeToString(want); got != want {
		t.Fatalf("Text() = %q, want %q", got, want)
	}
}

// TestTextLengths checks Text against the reference encoder for every
// alignment of header and ciphertext, including ciphertexts shorter than the
// alignment top-up and longer than one encoding chunk.
func TestTextLengths(t *testing.T) {
	for _, name := range []string{"a/b", "ab/c", "ab/cd"} {
		for _, n := range []int{0, 1, 2, 3, 16, 17, 18, 767, 768, 769, 770, 1536, 3000} {
			e := sampleEnvelope()
			e.Key = name
			e.Ciphertext = []byte(pattern("ct", n))[:n]
			want := TextPrefix + strings.TrimRight(refBase64(e.Marshal()), "=")
			if got := e.Text(); got != want {
				t.Errorf("Text() with key %q and %d-byte ciphertext = %q, want %q", name, n, got, want)
			}
		}
	}
}

// TestMarshalInvalid checks that an envelope built by hand that is not valid
// marshals to bytes Parse rejects, whatever field is wrong.
func TestMarshalInvalid(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*Envelope)
	}{
		{"fail/mode-0", func(e *Envelope) { e.Mode = 0 }},
		{"fail/mode-4", func(e *Envelope) { e.Mode = 4 }},
		{"fail/empty-key", func(e *Envelope) { e.Key = "" }},
		{"fail/bad-key", func(e *Envelope) { e.Key = "Demo/x" }},
		{"fail/129-byte-key", func(e *Envelope) { e.Key = "a/" + strings.Repeat("b", 127) }},
		// A name of 256+8 bytes would wrap the length byte to 8.
		{"fail/264-byte-key", func(e *Envelope) { e.Key = "demo/ssn" + strings.Repeat("\x00", 256) }},
		{"fail/version-0", func(e *Envelope) { e.Version = 0 }},
		{"fail/short-ciphertext", func(e *Envelope) { e.Ciphertext = e.Ciphertext[:TagSize-1] }},
		{"fail/nil-ciphertext", func(e *Envelope) { e.Ciphertext = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := sampleEnvelope()
			tc.modify(e)
			if _, err := Parse(e.Marshal()); !errors.Is(err, ErrMalformed) {
				t.Errorf("Parse(Marshal()) = %v, want %v", err, ErrMalformed)
			}
			if _, err := ParseText(e.Text()); !errors.Is(err, ErrMalformed) {
				t.Errorf("ParseText(Text()) = %v, want %v", err, ErrMalformed)
			}
		})
	}
}

func TestParse(t *testing.T) {
	valid := sampleEnvelope().Marshal()
	with := func(edit func(b []byte) []byte) []byte {
		return edit(append([]byte(nil), valid...))
	}
	header := func(mode byte, name string, version uint32) []byte {
		return (&Header{Mode: Mode(mode), Key: name, Version: version, Format: FormatVersion1}).appendTo(nil)
	}
	header2 := func(mode byte, name string, version uint32) []byte {
		return (&Header{Mode: Mode(mode), Key: name, Version: version}).appendTo(nil)
	}
	sealer := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	body2 := append(make([]byte, SIVSize), make([]byte, TagSize)...)
	body := append(make([]byte, NonceSize), make([]byte, TagSize)...)
	for _, tc := range []struct {
		name   string
		in     []byte
		reason string // in the error message; "" for ok
	}{
		{"ok/sample", valid, ""},
		{"ok/empty-plaintext", append(header(1, "a/b", 1), body...), ""},
		{"ok/max-key-name", append(header(2, strings.Repeat("a", 63)+"/"+strings.Repeat("b", 63), 1<<32-1), body...), ""},
		{"ok/max-size", append(header(1, "a/b", 1), make([]byte, NonceSize+MaxPlaintextSize+TagSize)...), ""},
		{"ok/v2-random", append(append(header2(1, "a/b", 1)[:10], sealer...), body...), ""},
		{"ok/v2-endorsement-empty", append(header2(2, "a/b", 1), body2...), ""},
		{"ok/v2-deterministic-1B", append(header2(3, "a/b", 1), append(body2, 7)...), ""},
		{"ok/v2-max-size", append(header2(3, "a/b", 1), make([]byte, SIVSize+MaxPlaintextSize+TagSize)...), ""},
		{"fail/v2-random-truncated-sealer", append(header2(1, "a/b", 1)[:10], 1, 2, 3), "truncated header"},
		{"fail/v2-random-short-tag", append(append(header2(1, "a/b", 1)[:10], sealer...), body[:NonceSize+TagSize-1]...), "ciphertext shorter than tag"},
		{"fail/v2-siv-truncated", append(header2(3, "a/b", 1), make([]byte, SIVSize-1)...), "truncated header"},
		{"fail/v2-siv-short-tag", append(header2(3, "a/b", 1), body2[:SIVSize+TagSize-1]...), "ciphertext shorter than tag"},
		{"fail/v2-over-max-size", append(header2(3, "a/b", 1), make([]byte, SIVSize+MaxPlaintextSize+TagSize+1)...), "ciphertext longer than"},
		{"fail/empty", nil, "truncated header"},
		{"fail/one-byte", []byte{1}, "truncated header"},
		{"fail/two-bytes", []byte{1, 1}, "truncated header"},
		{"fail/format-0", with(func(b []byte) []byte { b[0] = 0; return b }), "unknown format version 0"},
		{"fail/format-7", with(func(b []byte) []byte { b[0] = 7; return b }), "unknown format version 7"},
		{"fail/format-only", []byte{7}, "unknown format version 7"},
		{"fail/mode-0", with(func(b []byte) []byte { b[1] = 0; return b }), "unknown mode 0"},
		{"fail/mode-9", with(func(b []byte) []byte { b[1] = 9; return b }), "unknown mode 9"},
		{"fail/name-length-0", with(func(b []byte) []byte { b[2] = 0; return b }), "invalid key name length 0"},
		{"fail/name-length-129", append(append([]byte{1, 1, 129}, strings.Repeat("a", 129)...), make([]byte, 4+NonceSize+TagSize)...), "invalid key name length 129"},
		{"fail/bad-name", append(header(1, "a/B", 1), body...), "invalid key name"},
		{"fail/name-no-slash", append(header(1, "ab", 1), body...), "invalid key name"},
		{"fail/version-0", append(header(1, "a/b", 0), body...), "version 0"},
		{"fail/truncated-name", valid[:6], "truncated header"},
		{"fail/truncated-version", valid[:3+8+2], "truncated header"},
		{"fail/truncated-nonce", valid[:3+8+4+11], "truncated header"},
		{"fail/no-ciphertext", valid[:3+8+4+12], "ciphertext shorter than tag"},
		{"fail/short-tag", valid[:3+8+4+12+TagSize-1], "ciphertext shorter than tag"},
		{"fail/over-max-size", append(header(1, "a/b", 1), make([]byte, NonceSize+MaxPlaintextSize+TagSize+1)...), "ciphertext longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Parse(tc.in)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Parse() = %v, want nil", err)
				}
				if got := e.Marshal(); !bytes.Equal(got, tc.in) {
					t.Fatalf("Parse().Marshal() = %x, want %x", got, tc.in)
				}
				return
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse() = %v, want %v", err, ErrMalformed)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("Parse() = %q, want reason %q", err, tc.reason)
			}
		})
	}
}

func TestParseDoesNotAlias(t *testing.T) {
	b := sampleEnvelope().Marshal()
	orig := append([]byte(nil), b...)
	e, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0xff
	}
	if got := e.Marshal(); !bytes.Equal(got, orig) {
		t.Fatalf("after changing the input, Parse(b).Marshal() = %x, want %x", got, orig)
	}
	// Nor does Marshal hand out the envelope's memory.
	m := e.Marshal()
	m[len(m)-1] ^= 1
	if got := e.Marshal(); !bytes.Equal(got, orig) {
		t.Fatalf("after changing Marshal's result, Marshal() = %x, want %x", got, orig)
	}
}

func TestParseText(t *testing.T) {
	e := sampleEnvelope()
	valid := e.Text()
	data := strings.TrimPrefix(valid, TextPrefix)
	// The binary form is 3+8+4+12+21 = 48 bytes, a multiple of 3: append
	// one byte so the text ends in a partial group with spare bits.
	e2 := sampleEnvelope()
	e2.Ciphertext = append(e2.Ciphertext, 0x00)
	partial := e2.Text() // ends in 2 characters encoding 1 byte: 4 spare bits
	last := partial[len(partial)-1]
	nonCanonical := partial[:len(partial)-1] + string(last+1)
	// Swap a ciphertext character for its standard-alphabet twin.
	at := len(valid) - 5
	swap := func(c string) string { return valid[:at] + c + valid[at+1:] }
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"ok/sample", valid, true},
		{"ok/partial-group", partial, true},
		{"fail/empty", "", false},
		{"fail/prefix-only", TextPrefix, false},
		{"fail/no-prefix", data, false},
		{"fail/wrong-prefix", "km2:" + data, false},
		{"fail/upper-prefix", "KM1:" + data, false},
		{"fail/prefix-twice", TextPrefix + valid, false},
		{"fail/padding", TextPrefix + base64.URLEncoding.EncodeToString(e2.Marshal()), false},
		{"fail/padding-on-full-group", valid + "=", false},
		{"fail/non-canonical-trailing-bits", nonCanonical, false},
		{"ok/url-alphabet", swap("-"), true},
		{"ok/url-alphabet-underscore", swap("_"), true},
		{"fail/plus", swap("+"), false},
		{"fail/slash", swap("/"), false},
		{"fail/newline", valid[:10] + "\n" + valid[10:], false},
		{"fail/carriage-return", valid[:10] + "\r" + valid[10:], false},
		{"fail/trailing-newline", valid + "\n", false},
		{"fail/space", valid[:10] + " " + valid[10:], false},
		{"fail/leading-space", " " + valid, false},
		{"fail/one-char-group", valid + "A", false},
		{"fail/oversize", TextPrefix + strings.Repeat("A", maxTextLen), false},
		{"fail/truncated-in-nonce", valid[:len(TextPrefix)+32], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseText(tc.in)
			if tc.ok {
				if err != nil {
					t.Fatalf("ParseText() = %v, want nil", err)
				}
				if got.Text() != tc.in {
					t.Fatalf("ParseText().Text() = %q, want %q", got.Text(), tc.in)
				}
				return
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseText(%.40q) = %v, want %v", tc.in, err, ErrMalformed)
			}
		})
	}
}

func TestMaxTextLen(t *testing.T) {
	if want := len(TextPrefix) + base64.RawURLEncoding.EncodedLen(maxBinaryLen); maxTextLen != want {
		t.Fatalf("maxTextLen = %d, want %d", maxTextLen, want)
	}
	// The largest envelope's text form parses. (The longest valid key name
	// is 127 bytes, so the bound has a byte to spare.)
	e := &Envelope{
		Header:     Header{Mode: ModeRandom, Key: strings.Repeat("a", 63) + "/" + strings.Repeat("b", 63), Version: 1},
		Ciphertext: make([]byte, MaxPlaintextSize+TagSize),
	}
	s := e.Text()
	if len(s) > maxTextLen {
		t.Fatalf("len(Text()) of the largest envelope = %d, want at most %d", len(s), maxTextLen)
	}
	if _, err := ParseText(s); err != nil {
		t.Fatalf("ParseText(largest) = %v, want nil", err)
	}
}
