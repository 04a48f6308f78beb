package vault

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sync"
	"syscall"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/vault/envelope"
)

// keyTable holds one random salt per wrapped key version, outside the
// log-structured store (see the package doc, "Crypto-shredding"). A slot
// names its key and version; a wrapped version names its slot.
type keyTable interface {
	// alloc stores a fresh random salt for version ver of name in a free
	// slot, durably, and returns the slot.
	alloc(name string, ver uint32) (uint32, error)
	// salt returns a copy of the salt in slot if the slot holds version ver
	// of name.
	salt(slot uint32, name string, ver uint32) ([]byte, bool)
	// erase overwrites every slot for which match is true, durably.
	erase(match func(name string, ver uint32, slot uint32) bool) error
	// empty reports whether no slot is in use.
	empty() bool
	close() error
}

type slotEntry struct {
	name string
	ver  uint32
	salt [32]byte
}

// slotIndex is the in-memory index both tables keep.
type slotIndex struct {
	live map[uint32]*slotEntry
	free []uint32 // sorted
	next uint32   // first slot never used
}

func newSlotIndex() slotIndex { return slotIndex{live: map[uint32]*slotEntry{}, next: 0} }

func (x *slotIndex) take() uint32 {
	if len(x.free) > 0 {
		s := x.free[0]
		x.free = x.free[1:]
		return s
	}
	x.next++
	return x.next - 1
}

func (x *slotIndex) release(s uint32) {
	if e := x.live[s]; e != nil {
		clear(e.salt[:])
		delete(x.live, s)
	}
	i, found := slices.BinarySearch(x.free, s)
	if !found {
		x.free = slices.Insert(x.free, i, s)
	}
}

func (x *slotIndex) lookup(s uint32, name string, ver uint32) ([]byte, bool) {
	e := x.live[s]
	if e == nil || e.name != name || e.ver != ver {
		return nil, false
	}
	return bytes.Clone(e.salt[:]), true
}

// The key table file: a 64-byte header, then fixed-size slots written in
// place. A live slot is
//
//	"KMS1" ‖ len(name) ‖ name (zero-padded to 128) ‖ version (4) ‖ salt (32) ‖ CRC-32 of the above
//
// padded with zeros to slotSize; a free slot is all zeros. A slot whose CRC
// does not match (a write torn by a crash) counts as free: it was either
// being allocated, before the store write that would use it, or erased.
const (
	keyTableMagic  = "keymesh key table v1\n"
	keyTableHeader = 64
	slotSize       = 192
	slotMagic      = "KMS1"
	slotCRCAt      = 4 + 1 + envelope.MaxKeyNameLen + 4 + 32
)

// fileTable is the key table in its own small file. Allocation writes one
// slot and fsyncs; erasure overwrites slots with zeros in place and
// fsyncs, so the file never leaves an old salt in a free block of its own.
type fileTable struct {
	mu  sync.Mutex
	f   *os.File
	idx slotIndex
}

func openFileTable(path string) (*fileTable, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("vault: key table: %w", err)
	}
	t := &fileTable{f: f, idx: newSlotIndex()}
	if err := t.load(); err != nil {
		f.Close()
		return nil, fmt.Errorf("vault: key table %s: %w", path, err)
	}
	return t, nil
}

func (t *fileTable) load() error {
	fi, err := t.f.Stat()
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := t.f.Chmod(0o600); err != nil {
			return err
		}
	}
	if fi.Size() == 0 {
		hdr := make([]byte, keyTableHeader)
		copy(hdr, keyTableMagic)
		if _, err := t.f.WriteAt(hdr, 0); err != nil {
			return err
		}
		return t.f.Sync()
	}
	b, err := io.ReadAll(io.NewSectionReader(t.f, 0, fi.Size()))
	if err != nil {
		return err
	}
	if len(b) < keyTableHeader || string(b[:len(keyTableMagic)]) != keyTableMagic {
		return errors.New("not a keymesh key table")
	}
	slots := b[keyTableHeader:]
	n := uint32((len(slots) + slotSize - 1) / slotSize)
	t.idx.next = n
	for i := range n {
		raw := slots[int(i)*slotSize : min(len(slots), int(i+1)*slotSize)]
		e, ok := parseSlot(raw)
		if !ok {
			t.idx.free = append(t.idx.free, i)
			continue
		}
		t.idx.live[i] = e
	}
	clear(b)
	return nil
}

func parseSlot(raw []byte) (*slotEntry, bool) {
	if len(raw) < slotCRCAt+4 || string(raw[:4]) != slotMagic {
		return nil, false
	}
	if crc32.ChecksumIEEE(raw[:slotCRCAt]) != binary.BigEndian.Uint32(raw[slotCRCAt:]) {
		return nil, false
	}
	nl := int(raw[4])
	if nl == 0 || nl > envelope.MaxKeyNameLen {
		return nil, false
	}
	e := &slotEntry{name: string(raw[5 : 5+nl]), ver: binary.BigEndian.Uint32(raw[5+envelope.MaxKeyNameLen:])}
	copy(e.salt[:], raw[5+envelope.MaxKeyNameLen+4:])
	return e, true
}

func encodeSlot(e *slotEntry) []byte {
	b := make([]byte, slotSize)
	copy(b, slotMagic)
	b[4] = byte(len(e.name))
	copy(b[5:], e.name)
	binary.BigEndian.PutUint32(b[5+envelope.MaxKeyNameLen:], e.ver)
	copy(b[5+envelope.MaxKeyNameLen+4:], e.salt[:])
	binary.BigEndian.PutUint32(b[slotCRCAt:], crc32.ChecksumIEEE(b[:slotCRCAt]))
	return b
}

func newSlot(name string, ver uint32) (*slotEntry, error) {
	if len(name) == 0 || len(name) > envelope.MaxKeyNameLen {
		return nil, fmt.Errorf("%w: key name of %d bytes", ErrInvalidRequest, len(name))
	}
	e := &slotEntry{name: name, ver: ver}
	// Salts always come from the operating system, never from an injected
	// test source: they are the one secret that makes shredding work.
	if _, err := io.ReadFull(rand.Reader, e.salt[:]); err != nil {
		return nil, fmt.Errorf("vault: key table salt: %w", err)
	}
	return e, nil
}

func (t *fileTable) alloc(name string, ver uint32) (uint32, error) {
	e, err := newSlot(name, ver)
	if err != nil {
		return 0, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.idx.take()
	b := encodeSlot(e)
	defer clear(b)
	if _, err := t.f.WriteAt(b, keyTableHeader+int64(s)*slotSize); err != nil {
		t.idx.release(s)
		return 0, fmt.Errorf("vault: key table write: %w", noSpace(err))
	}
	if err := t.f.Sync(); err != nil {
		t.idx.release(s)
		return 0, fmt.Errorf("vault: key table sync: %w", noSpace(err))
	}
	t.idx.live[s] = e
	return s, nil
}

func (t *fileTable) salt(slot uint32, name string, ver uint32) ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.idx.lookup(slot, name, ver)
}

func (t *fileTable) erase(match func(string, uint32, uint32) bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	zero := make([]byte, slotSize)
	var errs []error
	n := 0
	for s, e := range t.idx.live {
		if !match(e.name, e.ver, s) {
			continue
		}
		if _, err := t.f.WriteAt(zero, keyTableHeader+int64(s)*slotSize); err != nil {
			errs = append(errs, fmt.Errorf("slot %d: %w", s, err))
			continue
		}
		t.idx.release(s)
		n++
	}
	if n > 0 {
		if err := t.f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("sync: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("vault: key table erase: %w", err)
	}
	return nil
}

func (t *fileTable) empty() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.idx.live) == 0
}

func (t *fileTable) close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.idx.live {
		clear(e.salt[:])
	}
	return t.f.Close()
}

func noSpace(err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%w: %w", kv.ErrNoSpace, err)
	}
	return err
}

// storeTable keeps the salts in the store itself, under "vault/slot/". It
// is what a vault opened without WithKeyTable uses (tests, embedded use):
// destroy still deletes the salts and erases them from the store, but a
// copy of the store taken before the destroy keeps them. keymeshd always
// uses a key table file.
type storeTable struct {
	mu    sync.Mutex
	store kv.Store
	idx   slotIndex
}

const slotRecordPrefix = "vault/slot/"

func slotRecordKey(s uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte(slotRecordPrefix), s)
}

func openStoreTable(store kv.Store) (*storeTable, error) {
	t := &storeTable{store: store, idx: newSlotIndex()}
	used := map[uint32]bool{}
	err := store.Scan([]byte(slotRecordPrefix), func(k, v []byte) error {
		if len(k) != len(slotRecordPrefix)+4 {
			return fmt.Errorf("vault: malformed slot record %q", k)
		}
		s := binary.BigEndian.Uint32(k[len(slotRecordPrefix):])
		e, ok := parseSlot(v)
		if !ok {
			return fmt.Errorf("vault: malformed slot record %q", k)
		}
		t.idx.live[s] = e
		used[s] = true
		t.idx.next = max(t.idx.next, s+1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for s := range t.idx.next {
		if !used[s] {
			t.idx.free = append(t.idx.free, s)
		}
	}
	return t, nil
}

func (t *storeTable) alloc(name string, ver uint32) (uint32, error) {
	e, err := newSlot(name, ver)
	if err != nil {
		return 0, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.idx.take()
	if err := t.store.Update(func(tx kv.Txn) error { return tx.Set(slotRecordKey(s), encodeSlot(e)) }); err != nil {
		t.idx.release(s)
		return 0, fmt.Errorf("vault: key table write: %w", err)
	}
	t.idx.live[s] = e
	return s, nil
}

func (t *storeTable) salt(slot uint32, name string, ver uint32) ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.idx.lookup(slot, name, ver)
}

func (t *storeTable) erase(match func(string, uint32, uint32) bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var slots []uint32
	for s, e := range t.idx.live {
		if match(e.name, e.ver, s) {
			slots = append(slots, s)
		}
	}
	if len(slots) == 0 {
		return nil
	}
	err := t.store.Update(func(tx kv.Txn) error {
		for _, s := range slots {
			if err := tx.Delete(slotRecordKey(s)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("vault: key table erase: %w", err)
	}
	var errs []error
	for _, s := range slots {
		t.idx.release(s)
		if e, ok := t.store.(kv.Eraser); ok {
			errs = append(errs, e.Erase(slotRecordKey(s)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("vault: key table erase: %w", err)
	}
	return nil
}

func (t *storeTable) empty() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.idx.live) == 0
}

func (t *storeTable) close() error { return nil }
