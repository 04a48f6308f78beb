package envelope

import (
	"bytes"
	"crypto/fips140"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
)

// sealBoth seals the same inputs with Seal, SealPrepared and SealPreparedTo
// (into dst), with the same nonce in random mode, outside FIPS enforcement
// when a nonce is given (as vector.seal does), and returns the three
// envelopes and errors.
func sealBoth(s *Sealer, h Header, nid NetworkID, c Context, pc *PreparedContext, txID string, pt, nonce []byte, dst *Envelope) (envs [3]*Envelope, errs [3]error) {
	rd := func() io.Reader {
		if nonce == nil {
			return nil
		}
		return bytes.NewReader(nonce)
	}
	run := func(f func()) {
		if nonce == nil {
			f()
			return
		}
		fips140.WithoutEnforcement(f)
	}
	run(func() {
		envs[0], errs[0] = s.Seal(h, nid, c, txID, pt, rd())
		envs[1], errs[1] = s.SealPrepared(h, nid, pc, txID, pt, rd())
		if errs[2] = s.SealPreparedTo(dst, h, nid, pc, txID, pt, rd()); errs[2] == nil {
			envs[2] = dst
		}
	})
	return envs, errs
}

// TestPreparedVectors seals every format 2 vector with a prepared context,
// both ways, and gets the vector's bytes; every vector of both formats
// opens with its prepared context.
func TestPreparedVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			pc, err := PrepareContext(v.Context)
			if err != nil {
				t.Fatalf("PrepareContext(%s) = %v", v.Name, err)
			}
			if !pc.Matches(v.Context) {
				t.Errorf("PrepareContext(ctx).Matches(ctx) = false")
			}
			s := mustSealer(t, v.key(t))
			var nonce []byte
			if v.Mode == "random" {
				nonce = unhex(t, v.Nonce)
			}
			// A reused Envelope whose storage holds an earlier value.
			dst := &Envelope{Ciphertext: bytes.Repeat([]byte{0xee}, 256)[:7], SIV: [SIVSize]byte{1}, Nonce: [NonceSize]byte{2}}
			envs, errs := sealBoth(s, v.header(t), v.nid(t), v.Context, pc, v.TxID, v.plaintext(t), nonce, dst)
			want := v.envelope(t)
			for i, name := range []string{"Seal", "SealPrepared", "SealPreparedTo"} {
				if errs[i] != nil {
					t.Fatalf("%s(%s) = %v", name, v.Name, errs[i])
				}
				if got := envs[i].Marshal(); !bytes.Equal(got, want) {
					t.Errorf("%s(...).Marshal() = %x, want %x", name, got, want)
				}
				if got := envs[i].Text(); got != v.Text {
					t.Errorf("%s(...).Text() = %q, want %q", name, got, v.Text)
				}
			}
		})
	}
	for _, v := range append(loadVectors(t), loadVectorFile(t, vectorsV1Path)...) {
		t.Run("open/"+v.Name, func(t *testing.T) {
			pc, err := PrepareContext(v.Context)
			if err != nil {
				t.Fatal(err)
			}
			env, err := Parse(v.envelope(t))
			if err != nil {
				t.Fatal(err)
			}
			s := mustSealer(t, v.key(t))
			if got, err := s.OpenPrepared(env, v.nid(t), pc); err != nil || !bytes.Equal(got, v.plaintext(t)) || got == nil {
				t.Errorf("OpenPrepared(env) = %x, %v, want %x", got, err, v.plaintext(t))
			}
			other, err := PrepareContext(Context{"field": "elsewhere"})
			if err != nil {
				t.Fatal(err)
			}
			if got, err := s.OpenPrepared(env, v.nid(t), other); err != ErrDecrypt || got != nil {
				t.Errorf("OpenPrepared(env, other context) = %x, %v, want nil, %v", got, err, ErrDecrypt)
			}
		})
	}
}

func TestPrepareContext(t *testing.T) {
	many := Context{}
	for i := range maxContextEntries + 1 {
		many[fmt.Sprint("k", i)] = "v"
	}
	most := maps.Clone(many)
	delete(most, "k0")
	for _, tc := range []struct {
		name string
		ctx  Context
		ok   bool
	}{
		{"ok/nil", nil, true},
		{"ok/empty", Context{}, true},
		{"ok/one", Context{"field": "price"}, true},
		{"ok/fabric", benchContext, true},
		{"ok/empty-value", Context{"a": ""}, true},
		{"ok/unicode", Context{"champ-é": "résumé"}, true},
		{"ok/32-entries", most, true},
		{"fail/33-entries", many, false},
		{"fail/empty-key", Context{"": "x"}, false},
		{"fail/long-key", Context{strings.Repeat("k", maxContextKeyLen+1): "x"}, false},
		{"fail/control-key", Context{"k\x00": "x"}, false},
		{"fail/del-key", Context{"k\x7f": "x"}, false},
		{"fail/c1-control-key", Context{"k\u0085": "x"}, false},
		{"fail/invalid-utf8-key", Context{"k\xc3": "x"}, false},
		{"fail/long-value", Context{"k": strings.Repeat("v", maxContextValueLen+1)}, false},
		{"fail/invalid-utf8-value", Context{"k": "\xff"}, false},
		{"fail/one-bad-of-four", Context{"channel": "trade", "chaincode": "cc", "state_key": "\xc3", "field": "price"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc, err := PrepareContext(tc.ctx)
			verr := tc.ctx.Validate()
			if tc.ok {
				if err != nil || pc == nil {
					t.Fatalf("PrepareContext() = %v, %v, want a context, nil", pc, err)
				}
				if !pc.Matches(tc.ctx) {
					t.Errorf("PrepareContext(ctx).Matches(ctx) = false")
				}
				want, _ := appendContext(nil, tc.ctx)
				if !bytes.Equal(pc.enc, want) {
					t.Errorf("PrepareContext() encodes %x, want %x", pc.enc, want)
				}
				return
			}
			if pc != nil || !errors.Is(err, ErrInvalidContext) {
				t.Fatalf("PrepareContext() = %v, %v, want nil, %v", pc, err, ErrInvalidContext)
			}
			// One invalid entry: the very error Validate and Seal report.
			if err.Error() != verr.Error() {
				t.Errorf("PrepareContext() = %q, Validate() = %q, want the same", err, verr)
			}
			f := newFixture(t, ModeRandom)
			if _, serr := f.s.Seal(Header{Mode: ModeRandom, Key: "a/b", Version: 1}, f.nid, tc.ctx, "", nil, nil); serr == nil || serr.Error() != err.Error() {
				t.Errorf("Seal() = %v, PrepareContext() = %v, want the same", serr, err)
			}
			if _, oerr := f.s.Open(f.env, f.nid, tc.ctx); oerr == nil || oerr.Error() != err.Error() {
				t.Errorf("Open() = %v, PrepareContext() = %v, want the same", oerr, err)
			}
		})
	}
}

func TestPreparedMatches(t *testing.T) {
	pc, err := PrepareContext(benchContext)
	if err != nil {
		t.Fatal(err)
	}
	empty, err := PrepareContext(nil)
	if err != nil {
		t.Fatal(err)
	}
	with := func(k, v string) Context { c := maps.Clone(benchContext); c[k] = v; return c }
	without := func(k string) Context { c := maps.Clone(benchContext); delete(c, k); return c }
	renamed := without("field")
	renamed["Field"] = "price"
	for _, tc := range []struct {
		name string
		pc   *PreparedContext
		ctx  Context
		want bool
	}{
		{"ok/same-map", pc, benchContext, true},
		{"ok/clone", pc, maps.Clone(benchContext), true},
		{"ok/nil-prepared-nil", nil, nil, true},
		{"ok/nil-prepared-empty", nil, Context{}, true},
		{"ok/empty-nil", empty, nil, true},
		{"fail/other-value", pc, with("state_key", "order~000000001043"), false},
		{"fail/value-prefix", pc, with("field", "pric"), false},
		{"fail/value-empty", pc, with("field", ""), false},
		{"fail/extra-entry", pc, with("extra", "x"), false},
		{"fail/missing-entry", pc, without("field"), false},
		{"fail/renamed-key", pc, renamed, false},
		{"fail/nil", pc, nil, false},
		{"fail/empty-prepared", empty, benchContext, false},
		{"fail/nil-prepared", nil, benchContext, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.pc.Matches(tc.ctx); got != tc.want {
				t.Errorf("Matches(%v) = %v, want %v", tc.ctx, got, tc.want)
			}
		})
	}
	// The prepared context does not alias the map it came from.
	c := maps.Clone(benchContext)
	p2, err := PrepareContext(c)
	if err != nil {
		t.Fatal(err)
	}
	c["field"] = "quantity"
	if !p2.Matches(benchContext) || p2.Matches(c) {
		t.Errorf("PreparedContext changed with its source map")
	}
}

func TestPreparedString(t *testing.T) {
	pc, err := PrepareContext(Context{"state_key": "secret-order", "channel": "trade"})
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%s", "%+v"} {
		if got := fmt.Sprintf(verb, pc); got != "PreparedContext[channel state_key]" {
			t.Errorf("Sprintf(%q, pc) = %q, want %q", verb, got, "PreparedContext[channel state_key]")
		}
	}
	if got := fmt.Sprint((*PreparedContext)(nil)); got != "PreparedContext[]" {
		t.Errorf("Sprint(nil) = %q, want %q", got, "PreparedContext[]")
	}
}

// TestSealPreparedErrors checks that the prepared calls fail as Seal and
// Open do, with the same errors, for every input but the context.
func TestSealPreparedErrors(t *testing.T) {
	f := newFixture(t, ModeRandom)
	pc, err := PrepareContext(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	ok := Header{Mode: ModeRandom, Key: "a/b", Version: 1}
	withMode := func(m Mode) Header { h := ok; h.Mode = m; return h }
	for _, tc := range []struct {
		name string
		h    Header
		txID string
		pt   []byte
		rand io.Reader
		want error
	}{
		{"fail/mode-0", withMode(0), "", nil, nil, ErrMalformed},
		{"fail/version-0", Header{Mode: ModeRandom, Key: "a/b"}, "", nil, nil, ErrMalformed},
		{"fail/format-1", Header{Mode: ModeRandom, Key: "a/b", Version: 1, Format: FormatVersion1}, "", nil, nil, ErrFormat},
		{"fail/sealer-id-derived", Header{Mode: ModeDeterministic, Key: "a/b", Version: 1, Sealer: SealerID{1}}, "", nil, nil, ErrMalformed},
		{"fail/bad-key-name", Header{Mode: ModeRandom, Key: "a/../b", Version: 1}, "", nil, nil, ErrInvalidKeyName},
		{"fail/too-large", ok, "", make([]byte, MaxPlaintextSize+1), nil, ErrTooLarge},
		{"fail/endorsement-no-tx", withMode(ModeEndorsement), "", nil, nil, ErrInvalidTxID},
		{"fail/random-tx", ok, "tx", nil, nil, ErrInvalidTxID},
		{"fail/rand-error", ok, "", nil, failingReader{}, errEntropy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, serr := f.s.Seal(tc.h, f.nid, f.ctx, tc.txID, tc.pt, tc.rand)
			env, err := f.s.SealPrepared(tc.h, f.nid, pc, tc.txID, tc.pt, tc.rand)
			if !errors.Is(err, tc.want) || env != nil || serr == nil || err.Error() != serr.Error() {
				t.Fatalf("SealPrepared() = %v, %v, want nil, %v as Seal() = %v", env, err, tc.want, serr)
			}
			dst := &Envelope{}
			if err := f.s.SealPreparedTo(dst, tc.h, f.nid, pc, tc.txID, tc.pt, tc.rand); !errors.Is(err, tc.want) || err.Error() != serr.Error() {
				t.Fatalf("SealPreparedTo() = %v, want %v as Seal() = %v", err, tc.want, serr)
			}
			if dst.Key != "" || dst.Ciphertext != nil {
				t.Errorf("SealPreparedTo() failed and changed its Envelope: %+v", dst)
			}
		})
	}
	t.Run("fail/nil-envelope", func(t *testing.T) {
		if err := f.s.SealPreparedTo(nil, ok, f.nid, pc, "", nil, nil); err == nil {
			t.Fatal("SealPreparedTo(nil) = nil, want an error")
		}
	})
	t.Run("fail/open-wrong-context", func(t *testing.T) {
		other, err := PrepareContext(Context{"field": "price"})
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := f.s.OpenPrepared(f.env, f.nid, other); err != ErrDecrypt || pt != nil {
			t.Fatalf("OpenPrepared(env, other) = %q, %v, want nil, %v", pt, err, ErrDecrypt)
		}
		if pt, err := f.s.OpenPrepared(f.env, f.nid, nil); err != ErrDecrypt || pt != nil {
			t.Fatalf("OpenPrepared(env, nil) = %q, %v, want nil, %v", pt, err, ErrDecrypt)
		}
	})
	t.Run("fail/open-invalid-envelope", func(t *testing.T) {
		bad := *f.env
		bad.Version = 0
		for _, e := range []*Envelope{nil, &bad} {
			if pt, err := f.s.OpenPrepared(e, f.nid, pc); err != ErrDecrypt || pt != nil {
				t.Fatalf("OpenPrepared(%v) = %q, %v, want nil, %v", e, pt, err, ErrDecrypt)
			}
		}
	})
	t.Run("fail/destroyed", func(t *testing.T) {
		g := newFixture(t, ModeRandom)
		g.s.Destroy()
		if _, err := g.s.SealPrepared(ok, g.nid, pc, "", nil, nil); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("SealPrepared() after Destroy = %v, want %v", err, ErrInvalidKey)
		}
		if err := g.s.SealPreparedTo(&Envelope{}, ok, g.nid, pc, "", nil, nil); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("SealPreparedTo() after Destroy = %v, want %v", err, ErrInvalidKey)
		}
		if _, err := g.s.OpenPrepared(g.env, g.nid, pc); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("OpenPrepared() after Destroy = %v, want %v", err, ErrInvalidKey)
		}
	})
}

// TestSealPreparedTo checks how SealPreparedTo uses the caller's storage:
// reused when it is large enough, replaced when it is too small or
// overlaps the plaintext, in every mode.
func TestSealPreparedTo(t *testing.T) {
	f := newFixture(t, ModeRandom)
	pc, err := PrepareContext(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range allModes {
		h := Header{Mode: mode, Key: "trade/price", Version: 2}
		txID := ""
		if mode == ModeEndorsement {
			txID = "tx-1"
		}
		if mode == ModeRandom {
			h.Sealer = SealerID{9}
		}
		sealed := h
		sealed.Format = FormatVersion // what Seal writes for format 0
		open := func(t *testing.T, e *Envelope, want []byte) {
			t.Helper()
			if got, err := f.s.Open(e, f.nid, f.ctx); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("Open(SealPreparedTo()) = %q, %v, want %q", got, err, want)
			}
			if _, err := Parse(e.Marshal()); err != nil {
				t.Fatalf("Parse(SealPreparedTo().Marshal()) = %v", err)
			}
		}
		t.Run(fmt.Sprintf("ok/%v/reused", mode), func(t *testing.T) {
			store := make([]byte, 0, 200)
			e := &Envelope{Ciphertext: store}
			for i := range 3 {
				pt := []byte(fmt.Sprint("value ", i))
				if err := f.s.SealPreparedTo(e, h, f.nid, pc, txID, pt, nil); err != nil {
					t.Fatal(err)
				}
				if cap(e.Ciphertext) != cap(store) || &e.Ciphertext[:1][0] != &store[:1][0] {
					t.Fatalf("SealPreparedTo() did not reuse the storage (cap %d, want %d)", cap(e.Ciphertext), cap(store))
				}
				if len(e.Ciphertext) != len(pt)+TagSize || e.Header != sealed {
					t.Fatalf("SealPreparedTo() = %d ciphertext bytes, header %+v, want %d, %+v", len(e.Ciphertext), e.Header, len(pt)+TagSize, sealed)
				}
				open(t, e, pt)
			}
		})
		t.Run(fmt.Sprintf("ok/%v/too-small", mode), func(t *testing.T) {
			small := make([]byte, 0, 8)
			e := &Envelope{Ciphertext: small}
			pt := []byte("a value longer than the storage")
			if err := f.s.SealPreparedTo(e, h, f.nid, pc, txID, pt, nil); err != nil {
				t.Fatal(err)
			}
			if cap(e.Ciphertext) < len(pt)+TagSize {
				t.Fatalf("cap(Ciphertext) = %d, want at least %d", cap(e.Ciphertext), len(pt)+TagSize)
			}
			open(t, e, pt)
		})
		t.Run(fmt.Sprintf("ok/%v/overlapping-plaintext", mode), func(t *testing.T) {
			buf := make([]byte, 256)
			copy(buf, "the plaintext lives in the envelope's own storage")
			pt := buf[3:40]
			want := bytes.Clone(pt)
			e := &Envelope{Ciphertext: buf[:0]}
			if err := f.s.SealPreparedTo(e, h, f.nid, pc, txID, pt, nil); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pt, want) {
				t.Fatalf("SealPreparedTo() overwrote its plaintext: %q, want %q", pt, want)
			}
			if overlaps(e.Ciphertext[:cap(e.Ciphertext)], buf) {
				t.Fatal("SealPreparedTo() sealed into storage overlapping its plaintext")
			}
			open(t, e, want)
		})
		t.Run(fmt.Sprintf("ok/%v/same-as-seal", mode), func(t *testing.T) {
			if mode == ModeRandom {
				t.Skip("random mode: compared with a given nonce in TestPreparedVectors and FuzzSealPrepared")
			}
			e := &Envelope{}
			if err := f.s.SealPreparedTo(e, h, f.nid, pc, txID, f.pt, nil); err != nil {
				t.Fatal(err)
			}
			want, err := f.s.Seal(h, f.nid, f.ctx, txID, f.pt, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(e.Marshal(), want.Marshal()) {
				t.Fatalf("SealPreparedTo() = %x, Seal() = %x", e.Marshal(), want.Marshal())
			}
		})
	}
}

func TestOverlaps(t *testing.T) {
	b := make([]byte, 10)
	for _, tc := range []struct {
		a, b []byte
		want bool
	}{
		{b[:5], b[5:], false},
		{b[:6], b[5:], true},
		{b[2:3], b, true},
		{b, b[9:], true},
		{b[:0], b, false},
		{nil, b, false},
		{b, make([]byte, 10), false},
	} {
		if got := overlaps(tc.a, tc.b); got != tc.want {
			t.Errorf("overlaps(%p+%d, %p+%d) = %v, want %v", tc.a, len(tc.a), tc.b, len(tc.b), got, tc.want)
		}
	}
}

func TestPreparedAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts need a non-race, non-short run")
	}
	f := newFixture(t, ModeRandom)
	pc, err := PrepareContext(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := Header{Mode: ModeRandom, Key: "trade/price", Version: 2, Sealer: SealerID{1}}
	pt := make([]byte, 64)
	e := &Envelope{}
	if err := f.s.SealPreparedTo(e, h, f.nid, pc, "", pt, nil); err != nil {
		t.Fatal(err)
	}
	renv, err := f.s.SealPrepared(h, f.nid, pc, "", pt, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		max  float64
		fn   func()
	}{
		{"SealPrepared", 1, func() { renv, _ = f.s.SealPrepared(h, f.nid, pc, "", pt, nil) }},
		{"SealPreparedTo", 0, func() { _ = f.s.SealPreparedTo(e, h, f.nid, pc, "", pt, nil) }},
		{"OpenPrepared", 1, func() { _, _ = f.s.OpenPrepared(renv, f.nid, pc) }},
		{"Matches", 0, func() { _ = pc.Matches(f.ctx) }},
	} {
		// sync.Pool may drop entries at GC, so allow a little slack.
		if got := testing.AllocsPerRun(200, tc.fn); got > tc.max+0.1 {
			t.Errorf("%s: %v allocations, want at most %v", tc.name, got, tc.max)
		}
	}
}

// fuzzContext splits in into a Context as FuzzContext does: entries at
// 0x1e, key and value at the first 0x1f.
func fuzzContext(in string) Context {
	c := Context{}
	if in != "" {
		for _, e := range strings.Split(in, "\x1e") {
			k, v, _ := strings.Cut(e, "\x1f")
			c[k] = v
		}
	}
	return c
}

// joinContext is fuzzContext's inverse for contexts without 0x1e or 0x1f.
func joinContext(c Context) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(c)) {
		parts = append(parts, k+"\x1f"+c[k])
	}
	return strings.Join(parts, "\x1e")
}

// FuzzSealPrepared checks that a prepared context and the map it came from
// are interchangeable: PrepareContext refuses exactly the contexts Seal
// refuses, with an error Seal may give (one of the invalid entries'); for a
// valid one, SealPrepared and SealPreparedTo write Seal's bytes for the
// same inputs and nonce, and Open and OpenPrepared both open all three.
// Seeded from the vectors (context, plaintext, mode, transaction id and
// nonce) and from FuzzContext's seeds.
func FuzzSealPrepared(f *testing.F) {
	modes := map[string]byte{"random": 1, "endorsement": 2, "deterministic": 3}
	for _, v := range loadVectors(f) {
		f.Add(joinContext(v.Context), v.plaintext(f), modes[v.Mode], v.TxID, unhex(f, v.Nonce))
	}
	f.Add("a\x1f\x1eb\x1f\xc3\x1ec\x7f\x1fv", []byte("x"), byte(1), "", make([]byte, NonceSize))
	f.Add("champ-\u00e9\x1fr\u00e9sum\u00e9\x1e\u0085\x1fv", []byte{}, byte(3), "", []byte(nil))
	f.Add("", []byte("empty context"), byte(2), "tx", []byte(nil))
	key := unhex(f, label32("fuzz-prepared-key"))
	nid := NetworkID(unhex(f, label32("fuzz-prepared-net")))
	s := mustSealer(f, key)
	f.Fuzz(func(t *testing.T, ctxIn string, pt []byte, modeIn byte, txID string, nonce []byte) {
		c := fuzzContext(ctxIn)
		mode := Mode(modeIn%3 + 1)
		h := Header{Mode: mode, Key: "fuzz/prepared", Version: 1}
		switch mode {
		case ModeRandom:
			h.Sealer = SealerID{0xf0, 0x22}
			txID = ""
			if len(nonce) < NonceSize {
				nonce = nil // the module draws it: compare by opening only
			} else {
				nonce = nonce[:NonceSize]
			}
		case ModeEndorsement:
			if txID == "" || len(txID) > MaxTxIDLen {
				txID = "tx"
			}
			nonce = nil
		default:
			txID, nonce = "", nil
		}
		pc, perr := PrepareContext(c)
		verr := c.Validate()
		if (perr == nil) != (verr == nil) {
			t.Fatalf("PrepareContext(%q) = %v, Validate() = %v", c, perr, verr)
		}
		if perr != nil {
			if pc != nil || !errors.Is(perr, ErrInvalidContext) {
				t.Fatalf("PrepareContext(%q) = %v, %v, want nil, %v", c, pc, perr, ErrInvalidContext)
			}
			_, serr := s.Seal(h, nid, c, txID, pt, nil)
			_, oerr := s.Open(&Envelope{}, nid, c)
			// With several invalid entries, the one reported depends on
			// the map's order, for Seal as for PrepareContext: each
			// error must be one of those the entries have.
			possible := map[string]bool{}
			if len(c) > maxContextEntries {
				possible[tooManyEntries(len(c)).Error()] = true
			} else {
				for k, v := range c {
					if err := checkContextEntry(k, v); err != nil {
						possible[err.Error()] = true
					}
				}
			}
			for name, err := range map[string]error{"PrepareContext": perr, "Seal": serr, "Open": oerr, "Validate": verr} {
				if err == nil || !possible[err.Error()] {
					t.Fatalf("%s(%q) = %v, want one of %v", name, c, err, slices.Sorted(maps.Keys(possible)))
				}
			}
			return
		}
		if !pc.Matches(c) || !pc.Matches(maps.Clone(c)) {
			t.Fatalf("PrepareContext(%q).Matches(itself) = false", c)
		}
		if len(c) > 0 {
			moved := maps.Clone(c)
			for k := range moved {
				moved[k] += "!"
				break
			}
			if pc.Matches(moved) {
				t.Fatalf("PrepareContext(%q).Matches(%q) = true", c, moved)
			}
		}
		if len(pt) > MaxPlaintextSize {
			pt = pt[:MaxPlaintextSize]
		}
		dst := &Envelope{Ciphertext: make([]byte, 0, len(pt)/2)}
		envs, errs := sealBoth(s, h, nid, c, pc, txID, pt, nonce, dst)
		for i, err := range errs {
			if err != nil {
				t.Fatalf("seal %d (%v, %q) = %v", i, mode, c, err)
			}
		}
		want := envs[0].Marshal()
		for i, e := range envs {
			if nonce != nil || mode != ModeRandom {
				if got := e.Marshal(); !bytes.Equal(got, want) {
					t.Fatalf("seal %d = %x, Seal = %x", i, got, want)
				}
			}
			for _, open := range []func() ([]byte, error){
				func() ([]byte, error) { return s.Open(e, nid, c) },
				func() ([]byte, error) { return s.OpenPrepared(e, nid, pc) },
			} {
				if got, err := open(); err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("open seal %d = %x, %v, want %x", i, got, err, pt)
				}
			}
		}
	})
}

// TestPreparedAAD checks the additional data a PreparedContext keeps for
// the subkey it was last sealed under: right for every subkey and Sealer it
// is used with in turn, and from several goroutines at once (run with
// -race).
func TestPreparedAAD(t *testing.T) {
	f := newFixture(t, ModeRandom)
	g := mustSealer(t, unhex(t, label32("another-key")))
	pc, err := PrepareContext(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	ha := Header{Mode: ModeRandom, Key: "trade/price", Version: 2, Sealer: SealerID{'a'}}
	hb := ha
	hb.Sealer = SealerID{'b'}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				s, h := f.s, ha
				if (i+w)%3 == 1 {
					h = hb
				}
				if (i+w)%4 == 2 {
					s = g
				}
				e := &Envelope{}
				var err error
				if i%2 == 0 {
					e, err = s.SealPrepared(h, f.nid, pc, "", f.pt, nil)
				} else {
					err = s.SealPreparedTo(e, h, f.nid, pc, "", f.pt, nil)
				}
				if err != nil {
					t.Error(err)
					return
				}
				if got, err := s.Open(e, f.nid, f.ctx); err != nil || !bytes.Equal(got, f.pt) {
					t.Errorf("Open(SealPrepared(sealer %x)) = %q, %v, want %q", h.Sealer[:1], got, err, f.pt)
					return
				}
			}
		}()
	}
	wg.Wait()
	if a := pc.aad.Load(); a == nil {
		t.Error("no additional data kept after sealing with a prepared context")
	}
	empty, err := PrepareContext(nil)
	if err != nil {
		t.Fatal(err)
	}
	sk := &subkey{id: 1, aad0: []byte("prefix\x00\x00")}
	if got := empty.randomAAD(sk); &got[0] != &sk.aad0[0] || empty.aad.Load() != nil {
		t.Error("the shared empty context keeps additional data of its own")
	}
}
