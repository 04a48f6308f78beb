package ethid

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/binary"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/keymesh/keymesh/internal/tamper"
)

var (
	netID = strings.Repeat("ab", 32)
	t0    = time.Unix(1_800_000_000, 0)
)

func testKey(t *testing.T, seed byte) *ecdsa.PrivateKey {
	t.Helper()
	k, err := crypto.ToECDSA(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newVerifier(t *testing.T, opts ...Option) *Verifier {
	t.Helper()
	v, err := NewVerifier(netID, append([]Option{WithClock(func() time.Time { return t0 })}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func signed(t *testing.T, key *ecdsa.PrivateKey, scheme Scheme, action string, envs []string, expiry time.Time, nonce byte) Auth {
	t.Helper()
	r, err := newRequest(Domain{NetworkID: netID, ChainID: 1337}, crypto.PubkeyToAddress(key.PublicKey), action, envs, expiry, bytes.NewReader(bytes.Repeat([]byte{nonce}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	a, err := r.Sign(key, scheme)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestVerify(t *testing.T) {
	key, other := testKey(t, 1), testKey(t, 2)
	envs := []string{"km1:AAAA", "km1:BBBB"}
	exp := t0.Add(time.Minute)
	for _, tc := range []struct {
		name    string
		auth    func() Auth
		action  string
		envs    []string
		opts    []Option
		wantErr error
	}{
		{name: "ok/eip712", auth: func() Auth { return signed(t, key, SchemeEIP712, "decrypt", envs, exp, 1) }},
		{name: "ok/eip191", auth: func() Auth { return signed(t, key, SchemeEIP191, "decrypt", envs, exp, 1) }},
		{name: "ok/default-scheme", auth: func() Auth { a := signed(t, key, SchemeEIP712, "decrypt", envs, exp, 1); a.Scheme = ""; return a }},
		{name: "ok/v-0-1", auth: func() Auth {
			a := signed(t, key, SchemeEIP712, "decrypt", envs, exp, 1)
			sig := hexutil.MustDecode(a.Signature)
			sig[64] -= 27
			a.Signature = hexutil.Encode(sig)
			return a
		}},
		{name: "ok/expired-within-skew", auth: func() Auth { return signed(t, key, SchemeEIP712, "decrypt", envs, t0.Add(-10*time.Second), 1) }},
		{name: "ok/chain-allowed", auth: func() Auth { return signed(t, key, SchemeEIP712, "decrypt", envs, exp, 1) }, opts: []Option{WithChainIDs(1, 1337)}},
		{name: "fail/expired", auth: func() Auth { return signed(t, key, SchemeEIP712, "decrypt", envs, t0.Add(-time.Minute), 1) }, wantErr: ErrUnauthenticated},
		{name: "fail/too-far-ahead", auth: func() Auth { return signed(t, key, SchemeEIP712, "decrypt", envs, t0.Add(11*time.Minute), 1) }, wantErr: ErrUnauthenticated},
		{name: "fail/chain-not-allowed", auth: func() Auth { return signed(t, key, SchemeEIP712, "decrypt", envs, exp, 1) }, opts: []Option{WithChainIDs(1)}, wantErr: ErrUnauthenticated},
		{name: "fail/other-audience", auth: func() Auth { return signed(t, key, SchemeEIP712, "decrypt", envs, exp, 1) }, opts: []Option{WithAudience("node-b")}, wantErr: ErrUnauthenticated},
		{name: "fail/other-action", auth: func() Auth { return signed(t, key, SchemeEIP712, "GET /x", envs, exp, 1) }, wantErr: ErrUnauthenticated},
		{name: "fail/other-envelopes", auth: func() Auth { return signed(t, key, SchemeEIP712, "decrypt", envs[:1], exp, 1) }, wantErr: ErrUnauthenticated},
		{name: "fail/reordered-envelopes", auth: func() Auth { return signed(t, key, SchemeEIP712, "decrypt", []string{envs[1], envs[0]}, exp, 1) }, wantErr: ErrUnauthenticated},
		{name: "fail/scheme-swapped", auth: func() Auth { a := signed(t, key, SchemeEIP712, "decrypt", envs, exp, 1); a.Scheme = "eip191"; return a }, wantErr: ErrUnauthenticated},
		{name: "fail/unknown-scheme", auth: func() Auth {
			a := signed(t, key, SchemeEIP712, "decrypt", envs, exp, 1)
			a.Scheme = "eip1271"
			return a
		}, wantErr: ErrUnauthenticated},
		{name: "fail/claimed-other-account", auth: func() Auth {
			a := signed(t, key, SchemeEIP712, "decrypt", envs, exp, 1)
			a.Account = crypto.PubkeyToAddress(other.PublicKey).Hex()
			return a
		}, wantErr: ErrUnauthenticated},
		{name: "fail/high-s", auth: func() Auth {
			a := signed(t, key, SchemeEIP712, "decrypt", envs, exp, 1)
			sig := hexutil.MustDecode(a.Signature)
			s := new(big.Int).SetBytes(sig[32:64])
			s.Sub(crypto.S256().Params().N, s)
			s.FillBytes(sig[32:64])
			sig[64] ^= 1
			a.Signature = hexutil.Encode(sig)
			return a
		}, wantErr: ErrUnauthenticated},
		{name: "fail/short-signature", auth: func() Auth {
			a := signed(t, key, SchemeEIP712, "decrypt", envs, exp, 1)
			a.Signature = a.Signature[:20]
			return a
		}, wantErr: ErrUnauthenticated},
		{name: "fail/bad-nonce", auth: func() Auth { a := signed(t, key, SchemeEIP712, "decrypt", envs, exp, 1); a.Nonce = "0x01"; return a }, wantErr: ErrUnauthenticated},
		{name: "fail/bad-account", auth: func() Auth {
			a := signed(t, key, SchemeEIP712, "decrypt", envs, exp, 1)
			a.Account = "eth:0x00"
			return a
		}, wantErr: ErrUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, tc.opts...)
			action, es := tc.action, tc.envs
			if action == "" {
				action = "decrypt"
			}
			if es == nil {
				es = envs
			}
			got, err := v.Verify(tc.auth(), action, es)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Verify() error = %v, want %v", err, tc.wantErr)
				}
				if err.Error() != ErrUnauthenticated.Error() {
					t.Errorf("Verify() error text = %q, want the uniform %q", err, ErrUnauthenticated)
				}
				return
			}
			if err != nil || got != crypto.PubkeyToAddress(key.PublicKey) {
				t.Fatalf("Verify() = %s, %v; want the key's address", got.Hex(), err)
			}
		})
	}
}

func TestReplay(t *testing.T) {
	key := testKey(t, 1)
	now := t0
	cache := NewReplayCache(2, 2)
	v := newVerifier(t, WithClock(func() time.Time { return now }), WithNonces(cache))
	a := signed(t, key, SchemeEIP712, "decrypt", nil, t0.Add(time.Minute), 1)
	if _, err := v.Verify(a, "decrypt", nil); err != nil {
		t.Fatalf("Verify() error = %v", err)
	}
	if _, err := v.Verify(a, "decrypt", nil); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("Verify(replayed) error = %v, want ErrUnauthenticated", err)
	}
	if _, err := v.Verify(signed(t, key, SchemeEIP712, "decrypt", nil, t0.Add(time.Minute), 2), "decrypt", nil); err != nil {
		t.Fatalf("Verify(nonce 2) error = %v", err)
	}
	if _, err := v.Verify(signed(t, key, SchemeEIP712, "decrypt", nil, t0.Add(time.Minute), 3), "decrypt", nil); !errors.Is(err, ErrBusy) {
		t.Fatalf("Verify(cache full) error = %v, want ErrBusy", err)
	}
	// Past expiry plus skew the pairs are forgotten, and the expired
	// signature is refused by its expiry instead.
	now = t0.Add(2 * time.Minute)
	if _, err := v.Verify(signed(t, key, SchemeEIP712, "decrypt", nil, now.Add(time.Minute), 3), "decrypt", nil); err != nil {
		t.Fatalf("Verify(after expiry) error = %v", err)
	}
	if n := cache.Len(); n != 1 {
		t.Errorf("replay cache holds %d pairs, want 1", n)
	}
	if _, err := v.Verify(a, "decrypt", nil); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("Verify(expired replay) error = %v, want ErrUnauthenticated", err)
	}
}

// TestTamperSignature flips bits of a signature (every bit under
// KEYMESH_EXHAUSTIVE=1, else a sample covering r, s and V; see
// internal/tamper): none verifies (a flip
// of V's low bit recovers another key; every other flip fails outright).
func TestTamperSignature(t *testing.T) {
	key := testKey(t, 1)
	a := signed(t, key, SchemeEIP712, "decrypt", []string{"km1:AAAA"}, t0.Add(time.Minute), 1)
	sig := hexutil.MustDecode(a.Signature)
	v := newVerifier(t)
	for _, i := range tamper.Bits(t, len(sig), 32, 64) {
		b := tamper.Flip(sig, i)
		ta := a
		ta.Signature = hexutil.Encode(b)
		if got, err := v.Verify(ta, "decrypt", []string{"km1:AAAA"}); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("Verify(bit %d flipped) = %s, %v; want ErrUnauthenticated", i, got.Hex(), err)
		}
	}
}

// TestDigestKnownAnswer recomputes the EIP-712 digest by hand, from the
// standard's definitions, so the apitypes encoding (and the type strings
// that wallets see) are pinned.
func TestDigestKnownAnswer(t *testing.T) {
	key := testKey(t, 1)
	r, err := newRequest(Domain{NetworkID: netID, ChainID: 1337, Audience: "node-1"}, crypto.PubkeyToAddress(key.PublicKey), "decrypt", []string{"km1:AAAA", "km1:BBBB"}, t0, bytes.NewReader(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	word := func(b []byte) []byte { return common.LeftPadBytes(b, 32) }
	u64 := func(x uint64) []byte { var b [8]byte; binary.BigEndian.PutUint64(b[:], x); return word(b[:]) }
	domainType := crypto.Keccak256([]byte("EIP712Domain(string name,string version,uint256 chainId,bytes32 salt)"))
	salt := hexutil.MustDecode("0x" + netID)
	domainSep := crypto.Keccak256(domainType, crypto.Keccak256([]byte("keymesh")), crypto.Keccak256([]byte("2")), u64(1337), salt)
	msgType := crypto.Keccak256([]byte("KeymeshRequest(address account,string audience,string action,bytes32[] envelopes,uint64 expiry,bytes32 nonce)"))
	e1, e2 := EnvelopeDigest("km1:AAAA"), EnvelopeDigest("km1:BBBB")
	structHash := crypto.Keccak256(msgType, word(r.Account.Bytes()), crypto.Keccak256([]byte("node-1")), crypto.Keccak256([]byte("decrypt")),
		crypto.Keccak256(e1[:], e2[:]), u64(uint64(t0.Unix())), bytes.Repeat([]byte{7}, 32))
	want := crypto.Keccak256([]byte{0x19, 0x01}, domainSep, structHash)
	got, err := r.Digest(SchemeEIP712)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Digest(eip712) = %x, %v; want %x", got, err, want)
	}
	text := r.Text()
	if !strings.HasPrefix(text, "keymesh request\nnetwork: "+netID+"\nchain id: 1337\naudience: node-1\naccount: 0x") || strings.Count(text, "\n") != 10 {
		t.Errorf("Text() = %q", text)
	}
}

func TestOptionsBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   string
		opt  Option
	}{
		{"fail/network-id", "abcd", nil},
		{"fail/max-ttl", netID, WithMaxTTL(2 * time.Hour)},
		{"fail/skew", netID, WithSkew(time.Hour)},
		{"fail/cache", netID, WithCacheSize(0)},
		{"fail/clock", netID, WithClock(nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []Option
			if tc.opt != nil {
				opts = append(opts, tc.opt)
			}
			if _, err := NewVerifier(tc.id, opts...); err == nil {
				t.Errorf("NewVerifier() error = nil, want one")
			}
		})
	}
	if err := CheckAction("GET /x\nnonce: 0x00"); err == nil {
		t.Error("CheckAction(with a line break) = nil, want an error")
	}
}

// TestExpiryBoundary: a request is refused from the very instant its
// nonce would be forgotten (expiry plus skew), so a forgotten nonce can
// never be spent again.
func TestExpiryBoundary(t *testing.T) {
	key := testKey(t, 1)
	exp := t0.Add(time.Minute)
	for _, tc := range []struct {
		name string
		now  time.Time
		ok   bool
	}{
		{"ok/just-before", exp.Add(DefaultSkew - time.Nanosecond), true},
		{"fail/at-expiry-plus-skew", exp.Add(DefaultSkew), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, WithClock(func() time.Time { return tc.now }))
			_, err := v.Verify(signed(t, key, SchemeEIP712, "decrypt", nil, exp, 1), "decrypt", nil)
			if (err == nil) != tc.ok {
				t.Errorf("Verify(at %v past the expiry) error = %v, want ok=%v", tc.now.Sub(exp), err, tc.ok)
			}
		})
	}
}
