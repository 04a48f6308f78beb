// Package kv defines the small key-value interface through which keymesh
// writes its durable state — sealed key versions, grants, tokens and the audit
// log — and an in-memory implementation for tests that need to inject store
// failures.
//
// The production implementation is [github.com/keymesh/keymesh/kv/badgerstore];
// it is the only package that imports badger.
package kv

import (
	"bytes"
	"errors"
	"slices"
	"sync"
)

// ErrNotFound is returned by Get when the key does not exist.
var ErrNotFound = errors.New("kv: not found")

// ErrNoSpace is wrapped by Update when a store refuses a write because its
// disk is (nearly) full: nothing was written, reads keep working, and
// writes succeed again once space is freed.
var ErrNoSpace = errors.New("kv: not enough free disk space")

// Reader reads keys and key ranges.
type Reader interface {
	// Get returns a copy of the value stored under key, or ErrNotFound.
	Get(key []byte) ([]byte, error)
	// Scan calls fn for every key that starts with prefix, in ascending key
	// order, and stops at the first error fn returns. fn must not retain k
	// or v after it returns.
	Scan(prefix []byte, fn func(k, v []byte) error) error
}

// Txn is a read-write transaction.
type Txn interface {
	Reader
	// Set stores value under key. The store may keep references to both until
	// the transaction ends, so callers must not modify them.
	Set(key, value []byte) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(key []byte) error
}

// Store is a durable key-value store.
type Store interface {
	Reader
	// Update runs fn in a read-write transaction and commits it. When Update
	// returns nil the change is durable: it survives a crash of the process or
	// the machine. If fn returns an error nothing is written.
	Update(fn func(Txn) error) error
	// Close releases the store.
	Close() error
}

// Eraser is implemented by stores that can physically remove deleted data
// from disk. A log-structured store keeps deleted values in old files until
// compaction; crypto-shredding needs them gone.
type Eraser interface {
	// Erase removes every key with prefix, and its old values, from disk.
	Erase(prefix []byte) error
}

// Dropper is implemented by stores that can remove every key under a
// prefix at once, without writing a deletion marker for each key (badger
// drops whole tables instead). Unlike Erase it does not promise that old
// values are gone from disk: it is for data that is not secret and is
// about to be written again (the mesh's policy history at start-up),
// where Erase's extra work to shred would only cost time.
type Dropper interface {
	// DropPrefix removes every key with prefix.
	DropPrefix(prefix []byte) error
}

// Mem is an in-memory Store for tests. Its zero value is not usable; call
// NewMem. SetFailure makes every following Update fail, which is how tests
// check that callers roll back and fail closed.
type Mem struct {
	mu   sync.RWMutex
	data map[string][]byte
	fail error
}

// NewMem returns an empty in-memory store.
func NewMem() *Mem { return &Mem{data: map[string][]byte{}} }

// SetFailure makes every later Update return err without writing; nil
// clears the failure.
func (m *Mem) SetFailure(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = err
}

// Get implements Reader.
func (m *Mem) Get(key []byte) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	v, ok := m.data[string(key)]
	if !ok {
		return nil, ErrNotFound
	}
	return bytes.Clone(v), nil
}

// Scan implements Reader.
func (m *Mem) Scan(prefix []byte, fn func(k, v []byte) error) error {
	m.mu.RLock()
	keys := make([]string, 0, len(m.data))
	for k := range m.data {
		if bytes.HasPrefix([]byte(k), prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = bytes.Clone(m.data[k])
	}
	m.mu.RUnlock()
	for i, k := range keys {
		if err := fn([]byte(k), vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// Update implements Store. Writes are buffered and applied only if fn
// succeeds and no failure is injected.
func (m *Mem) Update(fn func(Txn) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	t := &memTxn{m: m, writes: map[string][]byte{}}
	if err := fn(t); err != nil {
		return err
	}
	for k, v := range t.writes {
		if v == nil {
			delete(m.data, k)
		} else {
			m.data[k] = v
		}
	}
	return nil
}

// Close implements Store.
func (m *Mem) Close() error { return nil }

type memTxn struct {
	m      *Mem
	writes map[string][]byte // nil value = delete
}

func (t *memTxn) Get(key []byte) ([]byte, error) {
	if v, ok := t.writes[string(key)]; ok {
		if v == nil {
			return nil, ErrNotFound
		}
		return bytes.Clone(v), nil
	}
	v, ok := t.m.data[string(key)]
	if !ok {
		return nil, ErrNotFound
	}
	return bytes.Clone(v), nil
}

func (t *memTxn) Scan(prefix []byte, fn func(k, v []byte) error) error {
	merged := map[string][]byte{}
	for k, v := range t.m.data {
		if bytes.HasPrefix([]byte(k), prefix) {
			merged[k] = v
		}
	}
	for k, v := range t.writes {
		if bytes.HasPrefix([]byte(k), prefix) {
			if v == nil {
				delete(merged, k)
			} else {
				merged[k] = v
			}
		}
	}
	keys := make([]string, 0, len(merged))
	for k := range merged {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := fn([]byte(k), bytes.Clone(merged[k])); err != nil {
			return err
		}
	}
	return nil
}

func (t *memTxn) Set(key, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	t.writes[string(key)] = bytes.Clone(value)
	return nil
}

func (t *memTxn) Delete(key []byte) error {
	t.writes[string(key)] = nil
	return nil
}

// Erase implements Eraser.
func (m *Mem) Erase(prefix []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.data {
		if bytes.HasPrefix([]byte(k), prefix) {
			delete(m.data, k)
		}
	}
	return nil
}

// DropPrefix implements Dropper.
func (m *Mem) DropPrefix(prefix []byte) error { return m.Erase(prefix) }

// DeletePrefix deletes every key that starts with prefix, within tx.
func DeletePrefix(tx Txn, prefix []byte) error {
	var keys [][]byte
	if err := tx.Scan(prefix, func(k, _ []byte) error {
		keys = append(keys, bytes.Clone(k))
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := tx.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
