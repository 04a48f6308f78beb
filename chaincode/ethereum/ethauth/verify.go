package ethauth

import (
	"container/heap"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
)

// ErrUnauthenticated is wrapped by every refusal of a signed request:
// malformed, wrongly signed, expired, too long-lived, for another chain, or
// replayed. Callers show one uniform message; [AuthError.Reason] is for
// logs (it holds no secret).
var ErrUnauthenticated = errors.New("ethauth: invalid, expired or replayed wallet signature")

// ErrBusy reports that the replay cache is full of unexpired entries: the
// verifier refuses new requests until some expire, rather than forget a
// nonce it must remember.
var ErrBusy = errors.New("ethauth: replay cache full; try again shortly")

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
	// DefaultCacheSize is the default number of (account, nonce) pairs
	// the replay cache holds.
	DefaultCacheSize = 1 << 16
)

// Verifier checks signed requests for one keymesh network. It is safe for
// concurrent use.
type Verifier struct {
	networkID string
	chainIDs  []uint64
	maxTTL    time.Duration
	skew      time.Duration
	clock     func() time.Time
	replay    *ReplayCache
}

// Option configures a Verifier.
type Option func(*Verifier) error

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
			return fmt.Errorf("ethauth: max TTL %v out of range [1s, %v]", d, MaxMaxTTL)
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
			return fmt.Errorf("ethauth: skew %v out of range [0, %v]", d, MaxSkew)
		}
		v.skew = d
		return nil
	}
}

// WithClock sets the verifier's clock (tests).
func WithClock(now func() time.Time) Option {
	return func(v *Verifier) error {
		if now == nil {
			return errors.New("ethauth: WithClock(nil)")
		}
		v.clock = now
		return nil
	}
}

// WithCacheSize sets how many (account, nonce) pairs the replay cache
// holds; at least 1.
func WithCacheSize(n int) Option {
	return func(v *Verifier) error {
		if n < 1 {
			return fmt.Errorf("ethauth: cache size %d < 1", n)
		}
		v.replay = NewReplayCache(n)
		return nil
	}
}

// NewVerifier returns a verifier of requests signed for networkID (64 hex
// digits), with a 10-minute maximum lifetime, 30 s of clock skew and a
// replay cache of DefaultCacheSize entries unless options say otherwise.
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
	if v.replay == nil {
		v.replay = NewReplayCache(DefaultCacheSize)
	}
	return v, nil
}

// NetworkID returns the network id the verifier checks.
func (v *Verifier) NetworkID() string { return v.networkID }

// MaxTTL returns how far ahead an expiry may lie.
func (v *Verifier) MaxTTL() time.Duration { return v.maxTTL }

// Verify checks a signed request: auth as the client sent it, action and
// envelopes (text forms, in request order) as the verifier computed them
// from the request it protects. It returns the signer's address, or an
// error wrapping ErrUnauthenticated (or ErrBusy). A request that verifies
// is single-use: its nonce is remembered until its expiry has passed.
func (v *Verifier) Verify(auth Auth, action string, envelopes []string) (common.Address, error) {
	r, scheme, sig, err := auth.Request(v.networkID, action, envelopes)
	if err != nil {
		return common.Address{}, err
	}
	if v.chainIDs != nil && !slices.Contains(v.chainIDs, r.ChainID) {
		return common.Address{}, fail("chain id not accepted")
	}
	now := v.clock()
	exp := time.Unix(int64(r.Expiry), 0)
	if now.After(exp.Add(v.skew)) {
		return common.Address{}, fail("expired")
	}
	if exp.After(now.Add(v.maxTTL + v.skew)) {
		return common.Address{}, fail("expiry too far ahead")
	}
	// The signature is checked before the nonce is remembered, so that no
	// one but the account can spend its nonces.
	got, err := r.Recover(scheme, sig)
	if err != nil {
		return common.Address{}, err
	}
	if got != r.Account {
		return common.Address{}, fail("signature is not the account's")
	}
	if err := v.replay.Use(r.Account, r.Nonce, exp.Add(v.skew), now); err != nil {
		return common.Address{}, err
	}
	return r.Account, nil
}

// ReplayCache remembers (account, nonce) pairs until their expiry. It is
// bounded: when full of unexpired pairs it refuses new ones with ErrBusy.
// It is safe for concurrent use.
type ReplayCache struct {
	mu   sync.Mutex
	max  int
	seen map[replayKey]struct{}
	q    expiryHeap
}

type replayKey struct {
	account common.Address
	nonce   [32]byte
}

type replayEntry struct {
	key   replayKey
	until time.Time
}

type expiryHeap []replayEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(replayEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// NewReplayCache returns a cache of at most max pairs.
func NewReplayCache(max int) *ReplayCache {
	return &ReplayCache{max: max, seen: make(map[replayKey]struct{})}
}

// Use records (account, nonce) until until, or fails with an error
// wrapping ErrUnauthenticated if it is held already, or ErrBusy if the
// cache is full of pairs that have not expired at now.
func (c *ReplayCache) Use(account common.Address, nonce [32]byte, until, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.q) > 0 && !c.q[0].until.After(now) {
		e := heap.Pop(&c.q).(replayEntry)
		delete(c.seen, e.key)
	}
	k := replayKey{account, nonce}
	if _, ok := c.seen[k]; ok {
		return fail("replayed nonce")
	}
	if len(c.seen) >= c.max {
		return ErrBusy
	}
	c.seen[k] = struct{}{}
	heap.Push(&c.q, replayEntry{key: k, until: until})
	return nil
}

// Len returns how many pairs the cache holds.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}
