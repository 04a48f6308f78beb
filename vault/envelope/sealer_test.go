package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/keymesh/keymesh/internal/tamper"
)

// fixture is a sealed envelope with everything needed to open it.
type fixture struct {
	key []byte
	s   *Sealer
	nid NetworkID
	ctx Context
	pt  []byte
	env *Envelope
}

func newFixture(t testing.TB, mode Mode) *fixture {
	t.Helper()
	f := &fixture{
		key: unhex(t, label32("fixture-key")),
		nid: NetworkID(unhex(t, label32("fixture-network"))),
		ctx: Context{"channel": "trade", "chaincode": "settlement", "state_key": "order~7", "field": "price"},
		pt:  []byte("4200.50 EUR"),
	}
	f.s = mustSealer(t, f.key)
	txID := ""
	if mode == ModeEndorsement {
		txID = "tx-fixture"
	}
	var err error
	f.env, err = f.s.Seal(Header{Mode: mode, Key: "trade/price", Version: 2}, f.nid, f.ctx, txID, f.pt, nil)
	if err != nil {
		t.Fatalf("Seal() = %v", err)
	}
	return f
}

func mustSealer(t testing.TB, key []byte) *Sealer {
	t.Helper()
	s, err := NewSealer(key)
	if err != nil {
		t.Fatalf("NewSealer() = %v", err)
	}
	return s
}

var allModes = []Mode{ModeRandom, ModeEndorsement, ModeDeterministic}

func TestSealOpen(t *testing.T) {
	for _, mode := range allModes {
		for _, n := range []int{0, 1, 15, 16, 17, 64, 1024, MaxPlaintextSize} {
			t.Run(fmt.Sprintf("ok/%v/%d", mode, n), func(t *testing.T) {
				f := newFixture(t, mode)
				pt := bytes.Repeat([]byte{0x5a}, n)
				txID := ""
				if mode == ModeEndorsement {
					txID = "tx"
				}
				env, err := f.s.Seal(Header{Mode: mode, Key: "a/b", Version: 1}, f.nid, f.ctx, txID, pt, nil)
				if err != nil {
					t.Fatalf("Seal() = %v", err)
				}
				if len(env.Ciphertext) != n+TagSize {
					t.Fatalf("len(Ciphertext) = %d, want %d", len(env.Ciphertext), n+TagSize)
				}
				got, err := f.s.Open(env, f.nid, f.ctx)
				if err != nil || !bytes.Equal(got, pt) || got == nil {
					t.Fatalf("Open(env) = %.16x, %v, want %.16x, nil", got, err, pt)
				}
				// Through the text form as well.
				parsed, err := ParseText(env.Text())
				if err != nil {
					t.Fatalf("ParseText(Text()) = %v", err)
				}
				if got, err := f.s.Open(parsed, f.nid, f.ctx); err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("Open(ParseText(Text())) = %.16x, %v, want %.16x, nil", got, err, pt)
				}
			})
		}
	}
}

// TestNilAndEmptyContext checks that a nil Context and an empty one are the
// same context.
func TestNilAndEmptyContext(t *testing.T) {
	f := newFixture(t, ModeDeterministic)
	h := Header{Mode: ModeDeterministic, Key: "a/b", Version: 1}
	e1, err := f.s.Seal(h, f.nid, nil, "", f.pt, nil)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := f.s.Seal(h, f.nid, Context{}, "", f.pt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e1.Marshal(), e2.Marshal()) {
		t.Fatalf("Seal with nil and empty Context differ")
	}
	if _, err := f.s.Open(e1, f.nid, Context{}); err != nil {
		t.Fatalf("Open(env) = %v, want nil", err)
	}
}

// TestTamper flips bits of every vector's binary envelope and cuts it (at
// every bit and length under KEYMESH_EXHAUSTIVE=1, else at a sample
// covering the header, nonce and tag; see internal/tamper): each result is rejected by Parse with ErrMalformed or by
// Open with ErrDecrypt, never returns plaintext, and never panics.
func TestTamper(t *testing.T) {
	vs := loadVectors(t)
	for _, v := range loadVectorFile(t, vectorsV1Path) {
		v.Name = "v1/" + v.Name
		vs = append(vs, v)
	}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			s := mustSealer(t, v.key(t))
			orig := v.envelope(t)
			check := func(what string, b []byte) {
				t.Helper()
				e, err := Parse(b)
				if err != nil {
					if !errors.Is(err, ErrMalformed) {
						t.Fatalf("%s: Parse() = %v, want %v", what, err, ErrMalformed)
					}
					return
				}
				pt, err := s.Open(e, v.nid(t), v.Context)
				if err != ErrDecrypt || pt != nil {
					t.Fatalf("%s: Open(env) = %x, %v, want nil, %v", what, pt, err, ErrDecrypt)
				}
			}
			for _, i := range tamper.Bits(t, len(orig)) {
				check(fmt.Sprintf("bit %d flipped", i), tamper.Flip(orig, i))
			}
			for _, n := range tamper.Bytes(t, len(orig)) {
				check(fmt.Sprintf("cut to %d bytes", n), orig[:n:n])
			}
			check("one byte appended", append(append([]byte(nil), orig...), 0))

			// The text form, cut at every length.
			for _, n := range tamper.Bytes(t, len(v.Text)) {
				e, err := ParseText(v.Text[:n])
				if err != nil {
					if !errors.Is(err, ErrMalformed) {
						t.Fatalf("text cut to %d: ParseText() = %v, want %v", n, err, ErrMalformed)
					}
					continue
				}
				if pt, err := s.Open(e, v.nid(t), v.Context); err != ErrDecrypt || pt != nil {
					t.Fatalf("text cut to %d: Open(env) = %x, %v, want nil, %v", n, pt, err, ErrDecrypt)
				}
			}
		})
	}
}

// TestOpenWrongBinding checks that an envelope opens only with its own key,
// network id, context and header.
func TestOpenWrongBinding(t *testing.T) {
	otherKey := mustSealer(t, unhex(t, label32("other-key")))
	for _, mode := range allModes {
		for _, tc := range []struct {
			name string
			open func(f *fixture) ([]byte, error)
		}{
			{"fail/changed-context-value", func(f *fixture) ([]byte, error) {
				c := cloneContext(f.ctx)
				c["field"] = "amount"
				return f.s.Open(f.env, f.nid, c)
			}},
			{"fail/extra-context-entry", func(f *fixture) ([]byte, error) {
				c := cloneContext(f.ctx)
				c["extra"] = ""
				return f.s.Open(f.env, f.nid, c)
			}},
			{"fail/missing-context-entry", func(f *fixture) ([]byte, error) {
				c := cloneContext(f.ctx)
				delete(c, "state_key")
				return f.s.Open(f.env, f.nid, c)
			}},
			{"fail/renamed-context-key", func(f *fixture) ([]byte, error) {
				c := cloneContext(f.ctx)
				c["Field"] = c["field"]
				delete(c, "field")
				return f.s.Open(f.env, f.nid, c)
			}},
			{"fail/nil-context", func(f *fixture) ([]byte, error) {
				return f.s.Open(f.env, f.nid, nil)
			}},
			{"fail/wrong-network", func(f *fixture) ([]byte, error) {
				nid := f.nid
				nid[31] ^= 1
				return f.s.Open(f.env, nid, f.ctx)
			}},
			{"fail/zero-network", func(f *fixture) ([]byte, error) {
				return f.s.Open(f.env, NetworkID{}, f.ctx)
			}},
			{"fail/wrong-key", func(f *fixture) ([]byte, error) {
				return otherKey.Open(f.env, f.nid, f.ctx)
			}},
			{"fail/relabelled-key-name", func(f *fixture) ([]byte, error) {
				e := *f.env
				e.Key = "trade/amount"
				return f.s.Open(&e, f.nid, f.ctx)
			}},
			{"fail/relabelled-version", func(f *fixture) ([]byte, error) {
				e := *f.env
				e.Version++
				return f.s.Open(&e, f.nid, f.ctx)
			}},
			{"fail/relabelled-mode", func(f *fixture) ([]byte, error) {
				e := *f.env
				e.Mode = e.Mode%3 + 1
				return f.s.Open(&e, f.nid, f.ctx)
			}},
			{"fail/changed-nonce", func(f *fixture) ([]byte, error) {
				e := *f.env
				e.Nonce[0] ^= 0x80
				return f.s.Open(&e, f.nid, f.ctx)
			}},
			{"fail/invalid-mode", func(f *fixture) ([]byte, error) {
				e := *f.env
				e.Mode = 0
				return f.s.Open(&e, f.nid, f.ctx)
			}},
			{"fail/invalid-key-name", func(f *fixture) ([]byte, error) {
				e := *f.env
				e.Key = "TRADE/price"
				return f.s.Open(&e, f.nid, f.ctx)
			}},
			{"fail/version-0", func(f *fixture) ([]byte, error) {
				e := *f.env
				e.Version = 0
				return f.s.Open(&e, f.nid, f.ctx)
			}},
			{"fail/short-ciphertext", func(f *fixture) ([]byte, error) {
				e := *f.env
				e.Ciphertext = e.Ciphertext[:TagSize-1]
				return f.s.Open(&e, f.nid, f.ctx)
			}},
			{"fail/nil-envelope", func(f *fixture) ([]byte, error) {
				return f.s.Open(nil, f.nid, f.ctx)
			}},
		} {
			t.Run(mode.String()+"/"+tc.name, func(t *testing.T) {
				f := newFixture(t, mode)
				if got, err := f.s.Open(f.env, f.nid, f.ctx); err != nil || !bytes.Equal(got, f.pt) {
					t.Fatalf("Open(env) = %q, %v, want %q, nil", got, err, f.pt)
				}
				got, err := tc.open(f)
				if err != ErrDecrypt || got != nil {
					t.Fatalf("Open(env) = %q, %v, want nil, %v", got, err, ErrDecrypt)
				}
				if err.Error() != "envelope: decryption failed" {
					t.Fatalf("Open(env) error = %q, want %q", err, "envelope: decryption failed")
				}
			})
		}
	}
}

func cloneContext(c Context) Context {
	out := Context{}
	for k, v := range c {
		out[k] = v
	}
	return out
}

// TestHandBuiltEnvelope checks that an Envelope's fields are authoritative:
// one built by hand from a sealed envelope's fields opens and marshals alike.
func TestHandBuiltEnvelope(t *testing.T) {
	f := newFixture(t, ModeRandom)
	e := &Envelope{
		Header:     Header{Mode: f.env.Mode, Key: f.env.Key, Version: f.env.Version},
		Nonce:      f.env.Nonce,
		Ciphertext: append([]byte(nil), f.env.Ciphertext...),
	}
	if !bytes.Equal(e.Marshal(), f.env.Marshal()) || e.Text() != f.env.Text() {
		t.Fatalf("hand-built envelope marshals differently")
	}
	if got, err := f.s.Open(e, f.nid, f.ctx); err != nil || !bytes.Equal(got, f.pt) {
		t.Fatalf("Open(env) = %q, %v, want %q, nil", got, err, f.pt)
	}
	// Changing a sealed envelope's field changes what it marshals to.
	f.env.Version = 9
	parsed, err := Parse(f.env.Marshal())
	if err != nil || parsed.Version != 9 {
		t.Fatalf("Parse(Marshal()) after setting Version = %+v, %v, want version 9", parsed, err)
	}
}

func TestEndorsementMatchesAcrossSealers(t *testing.T) {
	key := unhex(t, label32("shared-key"))
	nid := NetworkID(unhex(t, label32("net")))
	ctx := Context{"channel": "c", "chaincode": "cc", "state_key": "k", "field": "f"}
	h := Header{Mode: ModeEndorsement, Key: "trade/price", Version: 5}
	pt := []byte("1234")

	// Two peers' nodes, each with its own copy of the key.
	peer1 := mustSealer(t, append([]byte(nil), key...))
	peer2 := mustSealer(t, append([]byte(nil), key...))
	e1, err := peer1.Seal(h, nid, ctx, "tx-1", pt, nil)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := peer2.Seal(h, nid, cloneContext(ctx), "tx-1", pt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e1.Marshal(), e2.Marshal()) {
		t.Fatalf("endorsing peers disagree: %x vs %x", e1.Marshal(), e2.Marshal())
	}
	if got, err := peer2.Open(e1, nid, ctx); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Open(env) = %q, %v, want %q, nil", got, err, pt)
	}
	for _, tc := range []struct {
		name string
		seal func() (*Envelope, error)
	}{
		{"other-tx", func() (*Envelope, error) { return peer1.Seal(h, nid, ctx, "tx-2", pt, nil) }},
		{"other-plaintext", func() (*Envelope, error) { return peer1.Seal(h, nid, ctx, "tx-1", []byte("1235"), nil) }},
		{"other-context", func() (*Envelope, error) {
			return peer1.Seal(h, nid, Context{"channel": "c2", "chaincode": "cc", "state_key": "k", "field": "f"}, "tx-1", pt, nil)
		}},
		{"other-version", func() (*Envelope, error) {
			return peer1.Seal(Header{Mode: ModeEndorsement, Key: "trade/price", Version: 6}, nid, ctx, "tx-1", pt, nil)
		}},
		{"tx-id-boundary", func() (*Envelope, error) { return peer1.Seal(h, nid, ctx, "tx-12", pt[1:], nil) }},
	} {
		t.Run("ok/"+tc.name+"-changes-nonce", func(t *testing.T) {
			e3, err := tc.seal()
			if err != nil {
				t.Fatal(err)
			}
			if e3.SIV == e1.SIV {
				t.Fatalf("SIV %x repeated", e3.SIV)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	key := unhex(t, label32("det-key"))
	nid := NetworkID(unhex(t, label32("net")))
	ctx := Context{"chain_id": "1", "contract": "0xabc", "field": "ssn"}
	h := Header{Mode: ModeDeterministic, Key: "kyc/ssn", Version: 1}
	s1, s2 := mustSealer(t, key), mustSealer(t, key)
	e1, err := s1.Seal(h, nid, ctx, "", []byte("123-45-6789"), nil)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := s2.Seal(h, nid, ctx, "", []byte("123-45-6789"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e1.Marshal(), e2.Marshal()) {
		t.Fatalf("deterministic Seal differs for equal inputs")
	}
	e3, err := s1.Seal(h, nid, Context{"chain_id": "1", "contract": "0xabc", "field": "tin"}, "", []byte("123-45-6789"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if e3.SIV == e1.SIV || bytes.Equal(e3.Ciphertext, e1.Ciphertext) {
		t.Fatalf("deterministic Seal equal across contexts")
	}
	e4, err := s1.Seal(h, nid, ctx, "", []byte("123-45-6780"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if e4.SIV == e1.SIV {
		t.Fatalf("deterministic Seal SIV equal across plaintexts")
	}
}

func TestRandomNonce(t *testing.T) {
	f := newFixture(t, ModeRandom)
	h := f.env.Header
	seen := map[[NonceSize]byte]bool{f.env.Nonce: true}
	for i := 0; i < 100; i++ {
		e, err := f.s.Seal(h, f.nid, f.ctx, "", f.pt, nil)
		if err != nil {
			t.Fatal(err)
		}
		if seen[e.Nonce] {
			t.Fatalf("random nonce %x repeated", e.Nonce)
		}
		seen[e.Nonce] = true
	}
}

type failingReader struct{}

var errEntropy = errors.New("entropy source failed")

func (failingReader) Read([]byte) (int, error) { return 0, errEntropy }

func TestSealErrors(t *testing.T) {
	f := newFixture(t, ModeRandom)
	ok := Header{Mode: ModeRandom, Key: "a/b", Version: 1}
	withMode := func(m Mode) Header { h := ok; h.Mode = m; return h }
	for _, tc := range []struct {
		name string
		h    Header
		ctx  Context
		txID string
		pt   []byte
		rand io.Reader
		want error
	}{
		{"fail/mode-0", withMode(0), nil, "", nil, nil, ErrMalformed},
		{"fail/mode-4", withMode(4), nil, "", nil, nil, ErrMalformed},
		{"fail/version-0", Header{Mode: ModeRandom, Key: "a/b"}, nil, "", nil, nil, ErrMalformed},
		{"fail/empty-key-name", Header{Mode: ModeRandom, Version: 1}, nil, "", nil, nil, ErrInvalidKeyName},
		{"fail/bad-key-name", Header{Mode: ModeRandom, Key: "a/../b", Version: 1}, nil, "", nil, nil, ErrInvalidKeyName},
		{"fail/too-large", ok, nil, "", make([]byte, MaxPlaintextSize+1), nil, ErrTooLarge},
		{"fail/bad-context", ok, Context{"": "x"}, "", nil, nil, ErrInvalidContext},
		{"fail/endorsement-no-tx", withMode(ModeEndorsement), nil, "", nil, nil, ErrInvalidTxID},
		{"fail/endorsement-long-tx", withMode(ModeEndorsement), nil, strings.Repeat("t", MaxTxIDLen+1), nil, nil, ErrInvalidTxID},
		{"fail/deterministic-tx", withMode(ModeDeterministic), nil, "tx", nil, nil, ErrInvalidTxID},
		{"fail/random-tx", ok, nil, "tx", nil, nil, ErrInvalidTxID},
		{"fail/rand-error", ok, nil, "", nil, failingReader{}, errEntropy},
		{"fail/rand-short", ok, nil, "", nil, bytes.NewReader(make([]byte, NonceSize-1)), io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, err := f.s.Seal(tc.h, f.nid, tc.ctx, tc.txID, tc.pt, tc.rand)
			if !errors.Is(err, tc.want) || env != nil {
				t.Fatalf("Seal() = %v, %v, want nil, %v", env, err, tc.want)
			}
		})
	}
	t.Run("ok/endorsement-max-tx", func(t *testing.T) {
		if _, err := f.s.Seal(withMode(ModeEndorsement), f.nid, nil, strings.Repeat("t", MaxTxIDLen), nil, nil); err != nil {
			t.Fatalf("Seal() = %v, want nil", err)
		}
	})
}

func TestOpenInvalidContext(t *testing.T) {
	f := newFixture(t, ModeRandom)
	if _, err := f.s.Open(f.env, f.nid, Context{"k\x00": "v"}); !errors.Is(err, ErrInvalidContext) {
		t.Fatalf("Open(env) = %v, want %v", err, ErrInvalidContext)
	}
}

func TestNewSealer(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := NewSealer(make([]byte, n)); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("NewSealer(%d bytes) = %v, want %v", n, err, ErrInvalidKey)
		}
	}
	// The Sealer does not keep the caller's slice.
	f := newFixture(t, ModeRandom)
	clear(f.key)
	if got, err := f.s.Open(f.env, f.nid, f.ctx); err != nil || !bytes.Equal(got, f.pt) {
		t.Fatalf("Open(env) after clearing the caller's key = %q, %v, want %q, nil", got, err, f.pt)
	}
	// Printing a Sealer shows no key material.
	for _, verb := range []string{"%v", "%+v", "%#v"} {
		if s := fmt.Sprintf(verb, f.s); strings.Contains(s, "prfKey") || strings.Contains(s, "aead") {
			t.Errorf("Sprintf(%q, sealer) = %s, shows key bytes", verb, s)
		}
	}
}

func TestDestroy(t *testing.T) {
	f := newFixture(t, ModeDeterministic)
	prfKey := f.s.st.prfKey
	f.s.Destroy()
	if !bytes.Equal(prfKey, make([]byte, len(prfKey))) {
		t.Errorf("Destroy() left the PRF key uncleared")
	}
	if _, err := f.s.Seal(f.env.Header, f.nid, f.ctx, "", f.pt, nil); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Seal() after Destroy = %v, want %v", err, ErrInvalidKey)
	}
	if _, err := f.s.Open(f.env, f.nid, f.ctx); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Open(env) after Destroy = %v, want %v", err, ErrInvalidKey)
	}
	f.s.Destroy() // idempotent

	var zero Sealer
	if _, err := zero.Open(f.env, f.nid, f.ctx); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("zero Sealer Open(env) = %v, want %v", err, ErrInvalidKey)
	}
}

// TestConcurrent uses one Sealer from many goroutines, then destroys it while
// they run; run with -race.
func TestConcurrent(t *testing.T) {
	f := newFixture(t, ModeRandom)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			mode := allModes[g%3]
			txID := ""
			if mode == ModeEndorsement {
				txID = fmt.Sprint("tx-", g)
			}
			for i := 0; i < 200; i++ {
				pt := []byte(fmt.Sprint(g, "/", i))
				env, err := f.s.Seal(Header{Mode: mode, Key: "a/b", Version: 1}, f.nid, f.ctx, txID, pt, nil)
				if errors.Is(err, ErrInvalidKey) {
					return // destroyed
				}
				if err != nil {
					t.Errorf("Seal() = %v", err)
					return
				}
				got, err := f.s.Open(env, f.nid, f.ctx)
				if errors.Is(err, ErrInvalidKey) {
					return
				}
				if err != nil || !bytes.Equal(got, pt) {
					t.Errorf("Open(env) = %q, %v, want %q, nil", got, err, pt)
					return
				}
			}
		}()
	}
	close(start)
	f.s.Destroy()
	wg.Wait()
}

func TestAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts need a non-race, non-short run")
	}
	f := newFixture(t, ModeDeterministic)
	pt := make([]byte, 64)
	h := Header{Mode: ModeDeterministic, Key: "trade/price", Version: 2}
	// Warm the pool.
	if _, err := f.s.Seal(h, f.nid, f.ctx, "", pt, nil); err != nil {
		t.Fatal(err)
	}
	var env *Envelope
	rh := Header{Mode: ModeRandom, Key: "trade/price", Version: 2, Sealer: SealerID{1}}
	renv, err := f.s.Seal(rh, f.nid, f.ctx, "", pt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Open(renv, f.nid, f.ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		max  float64
		fn   func()
	}{
		// Envelope with its ciphertext (one allocation up to
		// inlinePlaintext bytes), and cipher.NewCTR's stream and IV.
		{"Seal", 3, func() { env, _ = f.s.Seal(h, f.nid, f.ctx, "", pt, nil) }},
		// Plaintext and the CTR stream.
		{"Open", 2, func() { _, _ = f.s.Open(env, f.nid, f.ctx) }},
		// Envelope with nonce || ciphertext || tag.
		{"SealRandom", 1, func() { renv, _ = f.s.Seal(rh, f.nid, f.ctx, "", pt, nil) }},
		{"OpenRandom", 1, func() { _, _ = f.s.Open(renv, f.nid, f.ctx) }},
		{"Marshal", 1, func() { _ = env.Marshal() }},
		{"Text", 1, func() { _ = env.Text() }},
	} {
		// sync.Pool may drop entries at GC, so allow a little slack.
		if got := testing.AllocsPerRun(200, tc.fn); got > tc.max+0.1 {
			t.Errorf("%s: %v allocations, want at most %v", tc.name, got, tc.max)
		}
	}
}

// TestContextCacheConcurrent seals and opens from several goroutines with
// contexts of different key sets, so that the Sealer's key-set cache is
// replaced while others read it (run it with -race).
func TestContextCacheConcurrent(t *testing.T) {
	f := newFixture(t, ModeRandom)
	ctxs := []Context{
		{"channel": "trade", "chaincode": "settlement", "state_key": "order~1", "field": "price"},
		{"channel": "trade", "chaincode": "settlement", "state_key": "order~2", "field": "price"},
		{"chain_id": "1337", "contract": "0x5fbdb2315678afecb367f032d93f642f64180aa3", "field": "amount"},
		{"field": "price"},
		nil,
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				c := ctxs[(g+i)%len(ctxs)]
				other := ctxs[(g+i+2)%len(ctxs)]
				for _, mode := range []Mode{ModeRandom, ModeDeterministic} {
					h := Header{Mode: mode, Key: "trade/price", Version: 2}
					e, err := f.s.Seal(h, f.nid, c, "", f.pt, nil)
					if err != nil {
						t.Error(err)
						return
					}
					if pt, err := f.s.Open(e, f.nid, c); err != nil || !bytes.Equal(pt, f.pt) {
						t.Errorf("Open(env, own context) = %q, %v", pt, err)
						return
					}
					if _, err := f.s.Open(e, f.nid, other); err != ErrDecrypt {
						t.Errorf("Open(env, other context) = %v, want %v", err, ErrDecrypt)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}
