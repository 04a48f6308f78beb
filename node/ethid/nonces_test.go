package ethid

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/keymesh/keymesh/kv"
)

func nonceN(i int) [32]byte {
	var n [32]byte
	n[0], n[1], n[2] = byte(i), byte(i>>8), byte(i>>16)
	return n
}

// countKeys returns how many keys of the store start with prefix.
func countKeys(t *testing.T, s kv.Reader, prefix []byte) int {
	t.Helper()
	n := 0
	if err := s.Scan(prefix, func(_, _ []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestNonceStoresPerAccountBound: one account at its bound is refused with
// ErrBusy, and another account is still served (no lock-out of others).
func TestNonceStoresPerAccountBound(t *testing.T) {
	a, b := common.Address{1}, common.Address{2}
	until := t0.Add(time.Minute)
	mem := kv.NewMem()
	durable, err := OpenStoreNonces(mem, 100, 3, t0)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]NonceStore{"memory": NewReplayCache(100, 3), "durable": durable} {
		t.Run(name, func(t *testing.T) {
			for i := range 3 {
				if err := s.Use(a, nonceN(i), until, t0); err != nil {
					t.Fatalf("Use(a, %d) error = %v", i, err)
				}
			}
			if err := s.Use(a, nonceN(3), until, t0); !errors.Is(err, ErrBusy) {
				t.Fatalf("Use(a, over its bound) error = %v, want ErrBusy", err)
			}
			if err := s.Use(b, nonceN(0), until, t0); err != nil {
				t.Fatalf("Use(b) error = %v, want nil: another account is not locked out", err)
			}
			if err := s.Use(a, nonceN(0), until, t0); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("Use(a, replayed) error = %v, want ErrUnauthenticated", err)
			}
			// Once they expire, a's nonces are forgotten and a is served again.
			if err := s.Use(a, nonceN(4), until.Add(time.Minute), until); err != nil {
				t.Fatalf("Use(a, after expiry) error = %v", err)
			}
		})
	}
}

// TestStoreNoncesSurviveReopen: a nonce spent before a restart is refused
// after it; expired pairs are deleted from the store, at reopen and as new
// pairs are written.
func TestStoreNoncesSurviveReopen(t *testing.T) {
	mem := kv.NewMem()
	s, err := OpenStoreNonces(mem, 0, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	acct := common.Address{7}
	if err := s.Use(acct, nonceN(1), t0.Add(time.Minute), t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Use(acct, nonceN(2), t0.Add(10*time.Minute), t0); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenStoreNonces(mem, 0, 0, t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Use(acct, nonceN(1), t0.Add(time.Minute), t0.Add(time.Second)); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("Use(spent before the reopen) error = %v, want ErrUnauthenticated", err)
	}
	if n := s2.Len(); n != 2 {
		t.Errorf("Len() after reopen = %d, want 2", n)
	}
	// Reopened after the first pair expired: it is gone from the store.
	s3, err := OpenStoreNonces(mem, 0, 0, t0.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, mem, nonceKeyPrefix); n != 1 || s3.Len() != 1 {
		t.Errorf("after reopen past one expiry: %d nonce keys, Len() = %d; want 1, 1", n, s3.Len())
	}
	// A write past the second expiry deletes it too.
	if err := s3.Use(acct, nonceN(3), t0.Add(12*time.Minute), t0.Add(11*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n, m := countKeys(t, mem, nonceKeyPrefix), countKeys(t, mem, expKeyPrefix); n != 1 || m != 1 {
		t.Errorf("after a write past the expiry: %d nonce keys, %d index keys; want 1, 1", n, m)
	}
}

// TestStoreNoncesFailClosed: a store that cannot be written refuses the
// request (ErrStore) and remembers nothing it could not persist.
func TestStoreNoncesFailClosed(t *testing.T) {
	mem := kv.NewMem()
	s, err := OpenStoreNonces(mem, 0, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	mem.SetFailure(errors.New("disk full"))
	if err := s.Use(common.Address{1}, nonceN(1), t0.Add(time.Minute), t0); !errors.Is(err, ErrStore) {
		t.Fatalf("Use(store failing) error = %v, want ErrStore", err)
	}
	mem.SetFailure(nil)
	if err := s.Use(common.Address{1}, nonceN(1), t0.Add(time.Minute), t0); err != nil {
		t.Fatalf("Use(after the store recovered) error = %v, want nil (nothing was spent)", err)
	}
}

func TestStoreNoncesKeyLayout(t *testing.T) {
	e := replayEntry{key: replayKey{common.Address{0xaa}, nonceN(5)}, until: time.Unix(0, 1_800_000_000_123_456_789)}
	got, ok := parseExpKey(expKey(e))
	if !ok || got.key != e.key || !got.until.Equal(e.until) {
		t.Fatalf("parseExpKey(expKey(e)) = %+v, %v; want %+v", got, ok, e)
	}
	// The persisted layout is pinned: changing it would forget every spent
	// nonce of a running node (a replay window until they expire).
	wantNonce := "ethid/nonce/" + "\xaa" + strings.Repeat("\x00", 19) + "\x05" + strings.Repeat("\x00", 31)
	if k := nonceKey(e.key); string(k) != wantNonce {
		t.Errorf("nonceKey = %q, want %q", k, wantNonce)
	}
	wantExp := "ethid/exp/" + "\x18\xfa\xe2\x76\x9b\x0f\xcd\x15" + "\xaa" + strings.Repeat("\x00", 19) + "\x05" + strings.Repeat("\x00", 31)
	if k := expKey(e); string(k) != wantExp {
		t.Errorf("expKey = %q, want %q", k, wantExp)
	}
}

// TestStoreNoncesConcurrent: of concurrent Uses of one pair exactly one
// succeeds, also while its durable write is under way; distinct pairs all
// succeed.
func TestStoreNoncesConcurrent(t *testing.T) {
	s, err := OpenStoreNonces(kv.NewMem(), 0, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() { defer wg.Done(); errs <- s.Use(common.Address{1}, nonceN(0), t0.Add(time.Minute), t0) }()
		go func() { defer wg.Done(); errs <- s.Use(common.Address{2}, nonceN(i), t0.Add(time.Minute), t0) }()
	}
	wg.Wait()
	close(errs)
	ok, replayed := 0, 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrUnauthenticated):
			replayed++
		default:
			t.Fatalf("Use() error = %v", err)
		}
	}
	if ok != n+1 || replayed != n-1 {
		t.Errorf("%d accepted, %d replays; want %d, %d (one of the shared pair, all %d distinct ones)", ok, replayed, n+1, n-1, n)
	}
}
