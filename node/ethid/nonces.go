package ethid

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/keymesh/keymesh/kv"
)

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
	old[len(old)-1] = replayEntry{}
	*h = old[:len(old)-1]
	return e
}

// book is the accounting both nonce stores share: which pairs are held
// until when, and how many per account, within a total and a per-account
// bound. Its memory is O(pairs held), and pairs are held only until they
// expire. Callers hold their own lock.
type book struct {
	max, perAccount int
	q               expiryHeap
	per             map[common.Address]int
}

func newBook(total, perAccount int) book {
	return book{max: total, perAccount: perAccount, per: map[common.Address]int{}}
}

// expire forgets the pairs whose until is not after now, calling gone for
// each.
func (b *book) expire(now time.Time, gone func(replayEntry)) {
	for len(b.q) > 0 && !b.q[0].until.After(now) {
		e := heap.Pop(&b.q).(replayEntry)
		if n := b.per[e.key.account] - 1; n > 0 {
			b.per[e.key.account] = n
		} else {
			delete(b.per, e.key.account)
		}
		if gone != nil {
			gone(e)
		}
	}
}

// admit reports ErrBusy if account may hold no more pairs.
func (b *book) admit(account common.Address) error {
	if b.per[account] >= b.perAccount || len(b.q) >= b.max {
		return ErrBusy
	}
	return nil
}

func (b *book) add(k replayKey, until time.Time) {
	heap.Push(&b.q, replayEntry{key: k, until: until})
	b.per[k.account]++
}

// ReplayCache is an in-memory NonceStore: per process, forgotten on
// restart. It suits a dApp back end's own middleware; a keymesh node uses
// a durable store (OpenStoreNonces). It is safe for concurrent use.
type ReplayCache struct {
	mu   sync.Mutex
	b    book
	seen map[replayKey]struct{}
}

// NewReplayCache returns a cache of at most total pairs in all and
// perAccount per account (both at least 1).
func NewReplayCache(total, perAccount int) *ReplayCache {
	return &ReplayCache{b: newBook(max(total, 1), max(perAccount, 1)), seen: map[replayKey]struct{}{}}
}

// Use implements NonceStore.
func (c *ReplayCache) Use(account common.Address, nonce [32]byte, until, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.b.expire(now, func(e replayEntry) { delete(c.seen, e.key) })
	k := replayKey{account, nonce}
	if _, ok := c.seen[k]; ok {
		return fail("replayed nonce")
	}
	if err := c.b.admit(account); err != nil {
		return err
	}
	c.seen[k] = struct{}{}
	c.b.add(k, until)
	return nil
}

// Len returns how many pairs the cache holds.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// Keys of the durable nonce store:
//
//	ethid/nonce/<account 20 B><nonce 32 B>            → until, 8 B big-endian Unix ns
//	ethid/exp/<until 8 B big-endian Unix ns><account><nonce> → empty (the expiry index)
var (
	nonceKeyPrefix = []byte("ethid/nonce/")
	expKeyPrefix   = []byte("ethid/exp/")
)

func nonceKey(k replayKey) []byte {
	b := make([]byte, 0, len(nonceKeyPrefix)+common.AddressLength+32)
	b = append(b, nonceKeyPrefix...)
	b = append(b, k.account[:]...)
	return append(b, k.nonce[:]...)
}

func expKey(e replayEntry) []byte {
	b := make([]byte, 0, len(expKeyPrefix)+8+common.AddressLength+32)
	b = append(b, expKeyPrefix...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.until.UnixNano()))
	b = append(b, e.key.account[:]...)
	return append(b, e.key.nonce[:]...)
}

func parseExpKey(k []byte) (replayEntry, bool) {
	k = k[len(expKeyPrefix):]
	if len(k) != 8+common.AddressLength+32 {
		return replayEntry{}, false
	}
	var e replayEntry
	e.until = time.Unix(0, int64(binary.BigEndian.Uint64(k)))
	copy(e.key.account[:], k[8:])
	copy(e.key.nonce[:], k[8+common.AddressLength:])
	return e, true
}

// StoreNonces is a durable NonceStore in a kv.Store (a keymesh node's
// badger store): a spent (account, nonce) pair is written, durably, before
// Use returns, so it stays spent across restarts until its expiry; expired
// pairs are deleted as new ones are written. Its memory holds the expiry
// and account of each unexpired pair (within the same bounds as the store)
// and the pairs being written. It is safe for concurrent use: the checks
// are serialised, the durable writes are not, so concurrent requests share
// the store's syncs.
type StoreNonces struct {
	mu      sync.Mutex
	store   kv.Store
	b       book
	writing map[replayKey]struct{} // pairs whose durable write is under way
}

// OpenStoreNonces opens the durable nonce store in store, with at most total
// unexpired pairs in all and perAccount per account (0 for the defaults,
// DefaultCacheSize and DefaultPerAccount). It reads the pairs held, and
// deletes those that expired at now.
func OpenStoreNonces(store kv.Store, total, perAccount int, now time.Time) (*StoreNonces, error) {
	if total <= 0 {
		total = DefaultCacheSize
	}
	if perAccount <= 0 {
		perAccount = DefaultPerAccount
	}
	s := &StoreNonces{store: store, b: newBook(total, perAccount), writing: map[replayKey]struct{}{}}
	var expired [][]byte
	err := store.Scan(expKeyPrefix, func(k, _ []byte) error {
		e, ok := parseExpKey(k)
		if !ok {
			return fmt.Errorf("ethid: malformed nonce index key of %d bytes", len(k))
		}
		if !e.until.After(now) {
			expired = append(expired, expKey(e), nonceKey(e.key))
			return nil
		}
		s.b.add(e.key, e.until)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ethid: reading the nonce store: %w", err)
	}
	if len(expired) > 0 {
		if err := store.Update(func(tx kv.Txn) error {
			for _, k := range expired {
				if err := tx.Delete(k); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("ethid: deleting expired nonces: %w", err)
		}
	}
	return s, nil
}

// Use implements NonceStore. The pair is checked against the pairs being
// written and the store, and counted against its account, under the lock;
// the durable write happens outside it. A failed write spends nothing (a
// retry of the same pair is accepted); its slot in the account's bound is
// freed when its would-be expiry passes.
func (s *StoreNonces) Use(account common.Address, nonce [32]byte, until, now time.Time) error {
	k := replayKey{account, nonce}
	nk := nonceKey(k)
	s.mu.Lock()
	if _, ok := s.writing[k]; ok {
		s.mu.Unlock()
		return fail("replayed nonce")
	}
	switch _, err := s.store.Get(nk); {
	case err == nil:
		s.mu.Unlock()
		return fail("replayed nonce")
	case !errors.Is(err, kv.ErrNotFound):
		s.mu.Unlock()
		return fmt.Errorf("%w: %w", ErrStore, err)
	}
	var gone []replayEntry
	s.b.expire(now, func(e replayEntry) { gone = append(gone, e) })
	if err := s.b.admit(account); err != nil {
		// The expired pairs are forgotten in memory; their keys go with
		// the next write (or at the next open).
		s.requeue(gone)
		s.mu.Unlock()
		return err
	}
	s.writing[k] = struct{}{}
	s.b.add(k, until)
	s.mu.Unlock()

	e := replayEntry{key: k, until: until}
	err := s.store.Update(func(tx kv.Txn) error {
		for _, g := range gone {
			if err := tx.Delete(nonceKey(g.key)); err != nil {
				return err
			}
			if err := tx.Delete(expKey(g)); err != nil {
				return err
			}
		}
		if err := tx.Set(nk, binary.BigEndian.AppendUint64(nil, uint64(until.UnixNano()))); err != nil {
			return err
		}
		return tx.Set(expKey(e), []byte{})
	})

	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.writing, k)
	if err != nil {
		s.requeue(gone)
		return fmt.Errorf("%w: %w", ErrStore, err)
	}
	return nil
}

// requeue keeps expired pairs whose keys are not deleted yet: they go back
// into the book with their (past) expiry, so the next Use deletes them.
func (s *StoreNonces) requeue(gone []replayEntry) {
	for _, g := range gone {
		s.b.add(g.key, g.until)
	}
}

// Len returns how many unexpired-or-undeleted pairs the store holds.
func (s *StoreNonces) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.b.q)
}
