package ethid

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ethereum/go-ethereum/common"
)

// ErrUnauthenticated is wrapped by every refusal of a signed request:
// malformed, wrongly signed, expired, too long-lived, for another chain or
// audience, or replayed. Callers show one uniform message;
// [AuthError.Reason] is for logs (it holds no secret).
var ErrUnauthenticated = errors.New("ethid: invalid, expired or replayed wallet signature")

// ErrBusy reports that a nonce store holds as many unexpired nonces of the
// account as it may (or as many in all): the account is refused until some
// expire, rather than the store forgetting a nonce it must remember.
var ErrBusy = errors.New("ethid: too many unexpired signed requests of this account; try again shortly")

// ErrStore is wrapped when a durable nonce store cannot be read or written:
// the request is refused (fail closed).
var ErrStore = errors.New("ethid: nonce store unavailable")

// AuthError is a refused signed request. Its message is the uniform one;
// Reason says which check failed.
type AuthError struct{ Reason string }

func (e *AuthError) Error() string { return ErrUnauthenticated.Error() }

// Unwrap returns ErrUnauthenticated.
func (e *AuthError) Unwrap() error { return ErrUnauthenticated }

func fail(reason string) error { return &AuthError{Reason: reason} }

// Defaults and bounds of a Verifier.
const (
	// DefaultMaxTTL is how far ahead an expiry may lie by default.
	DefaultMaxTTL = 10 * time.Minute
	// MaxMaxTTL bounds WithMaxTTL.
	MaxMaxTTL = time.Hour
	// DefaultSkew is the clock skew allowed by default on either side.
	DefaultSkew = 30 * time.Second
	// MaxSkew bounds WithSkew.
	MaxSkew = 5 * time.Minute
	// DefaultCacheSize is the default number of unexpired (account, nonce)
	// pairs a nonce store holds in all.
	DefaultCacheSize = 1 << 16
	// DefaultPerAccount is the default number of unexpired nonces a nonce
	// store holds for one account: at the default 2-minute lifetime of
	// chaincode/ethereum's WalletDecrypter, ~34 requests a second.
	DefaultPerAccount = 4096
)

// NonceStore remembers spent (account, nonce) pairs until their expiry.
// Implementations are safe for concurrent use and bound what one account
// can make them hold.
type NonceStore interface {
	// Use records (account, nonce) until until, or fails with an error
	// wrapping ErrUnauthenticated if it is held already, ErrBusy if the
	// account (or the store) is at its bound of pairs unexpired at now, or
	// ErrStore if a durable store cannot be written.
	Use(account common.Address, nonce [32]byte, until, now time.Time) error
}

// Verifier checks signed requests for one keymesh network and audience. It
// is safe for concurrent use.
type Verifier struct {
	networkID string
	audience  string
	chainIDs  []uint64
	maxTTL    time.Duration
	skew      time.Duration
	clock     func() time.Time
	nonces    NonceStore
}

// Option configures a Verifier.
type Option func(*Verifier) error

// WithAudience accepts only requests signed for audience (a keymesh node
// passes its node id). The default is the empty audience.
func WithAudience(audience string) Option {
	return func(v *Verifier) error {
		if err := checkAudience(audience); err != nil {
			return err
		}
		v.audience = audience
		return nil
	}
}

// WithChainIDs accepts only signatures whose domain names one of ids. By
// default every chain id is accepted (the signature still binds it).
func WithChainIDs(ids ...uint64) Option {
	return func(v *Verifier) error {
		v.chainIDs = slices.Clone(ids)
		return nil
	}
}

// WithMaxTTL sets how far ahead of now an expiry may lie: 1 s to MaxMaxTTL.
func WithMaxTTL(d time.Duration) Option {
	return func(v *Verifier) error {
		if d < time.Second || d > MaxMaxTTL {
			return fmt.Errorf("ethid: max TTL %v out of range [1s, %v]", d, MaxMaxTTL)
		}
		v.maxTTL = d
		return nil
	}
}

// WithSkew sets the clock skew allowed between signer and verifier: 0 to
// MaxSkew.
func WithSkew(d time.Duration) Option {
	return func(v *Verifier) error {
		if d < 0 || d > MaxSkew {
			return fmt.Errorf("ethid: skew %v out of range [0, %v]", d, MaxSkew)
		}
		v.skew = d
		return nil
	}
}

// WithClock sets the verifier's clock (tests).
func WithClock(now func() time.Time) Option {
	return func(v *Verifier) error {
		if now == nil {
			return errors.New("ethid: WithClock(nil)")
		}
		v.clock = now
		return nil
	}
}

// WithCacheSize gives the verifier an in-memory nonce store of n pairs in
// all (and at most DefaultPerAccount, or n if smaller, per account); n is
// at least 1.
func WithCacheSize(n int) Option {
	return func(v *Verifier) error {
		if n < 1 {
			return fmt.Errorf("ethid: cache size %d < 1", n)
		}
		v.nonces = NewReplayCache(n, min(n, DefaultPerAccount))
		return nil
	}
}

// WithNonces sets where the verifier remembers spent nonces, for example a
// durable store from OpenStoreNonces.
func WithNonces(s NonceStore) Option {
	return func(v *Verifier) error {
		if s == nil {
			return errors.New("ethid: WithNonces(nil)")
		}
		v.nonces = s
		return nil
	}
}

// NewVerifier returns a verifier of requests signed for networkID (64 hex
// digits), with a 10-minute maximum lifetime, 30 s of clock skew and an
// in-memory nonce store of DefaultCacheSize pairs (DefaultPerAccount per
// account) unless options say otherwise.
func NewVerifier(networkID string, opts ...Option) (*Verifier, error) {
	if _, err := (Domain{NetworkID: networkID}).salt(); err != nil {
		return nil, err
	}
	v := &Verifier{networkID: networkID, maxTTL: DefaultMaxTTL, skew: DefaultSkew, clock: time.Now}
	for _, o := range opts {
		if err := o(v); err != nil {
			return nil, err
		}
	}
	if v.nonces == nil {
		v.nonces = NewReplayCache(DefaultCacheSize, DefaultPerAccount)
	}
	return v, nil
}

// NetworkID returns the network id the verifier checks.
func (v *Verifier) NetworkID() string { return v.networkID }

// Audience returns the audience the verifier accepts.
func (v *Verifier) Audience() string { return v.audience }

// MaxTTL returns how far ahead an expiry may lie.
func (v *Verifier) MaxTTL() time.Duration { return v.maxTTL }

// Check checks a signed request without spending its nonce: auth as the
// client sent it, action and envelopes (text forms, in request order) as
// the verifier computed them from the request it protects. It returns the
// request, whose Account is the signer, or an error wrapping
// ErrUnauthenticated. It has no side effect; Spend makes the request
// single-use.
func (v *Verifier) Check(auth Auth, action string, envelopes []string) (*Request, error) {
	r, scheme, sig, err := ParseAuth(auth, Domain{NetworkID: v.networkID, Audience: v.audience}, action, envelopes)
	if err != nil {
		return nil, err
	}
	if v.chainIDs != nil && !slices.Contains(v.chainIDs, r.ChainID) {
		return nil, fail("chain id not accepted")
	}
	now := v.clock()
	exp := time.Unix(int64(r.Expiry), 0)
	if !now.Before(exp.Add(v.skew)) {
		// Refused from the instant its nonce would be forgotten (Spend
		// remembers it until exactly expiry plus skew).
		return nil, fail("expired")
	}
	if exp.After(now.Add(v.maxTTL + v.skew)) {
		return nil, fail("expiry too far ahead")
	}
	got, err := r.Recover(scheme, sig)
	if err != nil {
		return nil, err
	}
	if got != r.Account {
		return nil, fail("signature is not the account's")
	}
	return r, nil
}

// Spend records the nonce of a request that Check accepted, until its
// expiry plus the skew. A second Spend of the same (account, nonce) fails
// with an error wrapping ErrUnauthenticated; see NonceStore for the others.
func (v *Verifier) Spend(r *Request) error {
	until := time.Unix(int64(r.Expiry), 0).Add(v.skew)
	return v.nonces.Use(r.Account, r.Nonce, until, v.clock())
}

// Verify is Check then Spend: it returns the signer's address of a request
// that verifies, which is then single-use. The signature is checked before
// the nonce is remembered, so that no one but the account can spend its
// nonces.
func (v *Verifier) Verify(auth Auth, action string, envelopes []string) (common.Address, error) {
	r, err := v.Check(auth, action, envelopes)
	if err != nil {
		return common.Address{}, err
	}
	if err := v.Spend(r); err != nil {
		return common.Address{}, err
	}
	return r.Account, nil
}
