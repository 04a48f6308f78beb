package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"sync"

	"github.com/keymesh/keymesh/kv"
)

// Labels of the keys derived from the KEK (HKDF-SHA256, the KEK as input
// key material, no salt).
const (
	recordMACInfo   = "keymesh/v2 record-mac"
	versionWrapInfo = "keymesh/v2 version-wrap"
)

// subkeys are derived from the KEK at unseal and live as long as the
// vault: the MAC key that authenticates every store record (kv.Tagger), and
// the root from which each key version's wrapping key is derived with the
// version's salt in the key table.
type subkeys struct {
	mac      []byte
	wrapRoot []byte
	// macs pools HMAC-SHA256 states keyed with mac: every store write
	// and read tags its records (the audit log one per request), and
	// hmac.New costs ~2.5× a reused state's Reset and two allocations.
	macs sync.Pool
}

func deriveSubkeys(kek []byte) (*subkeys, error) {
	mac, err := hkdf.Key(sha256.New, kek, nil, recordMACInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("vault: hkdf: %w", err)
	}
	root, err := hkdf.Key(sha256.New, kek, nil, versionWrapInfo, 32)
	if err != nil {
		clear(mac)
		return nil, fmt.Errorf("vault: hkdf: %w", err)
	}
	return &subkeys{mac: mac, wrapRoot: root}, nil
}

func (s *subkeys) clear() {
	if s != nil {
		clear(s.mac)
		clear(s.wrapRoot)
		// Pooled states hold the MAC key's padded blocks: drop them
		// (best effort: the collector frees them, nothing wipes them).
		s.macs = sync.Pool{}
	}
}

// Tag implements kv.Tagger: HMAC-SHA256 under the record MAC key of
// domain ‖ len(key) ‖ key ‖ value, so a tag binds a value to its store key.
func (s *subkeys) Tag(domain byte, key, value []byte) [kv.TagSize]byte {
	h, _ := s.macs.Get().(hash.Hash)
	if h == nil {
		h = hmac.New(sha256.New, s.mac)
	} else {
		h.Reset()
	}
	defer s.macs.Put(h)
	var hdr [5]byte
	hdr[0] = domain
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(key)))
	h.Write(hdr[:])
	h.Write(key)
	h.Write(value)
	var out [kv.TagSize]byte
	h.Sum(out[:0])
	return out
}

// versionAEAD returns the AEAD that wraps version ver of name in key-table
// slot slot: AES-256-GCM with random nonces under
// HKDF-SHA256(wrapRoot, salt = the slot's 32 random bytes,
// info = label ‖ name ‖ version ‖ slot). Without the slot's salt, which
// lives only in the key table, neither the master secret nor any copy of
// the store opens the version.
func (s *subkeys) versionAEAD(salt []byte, name string, ver, slot uint32) (cipher.AEAD, error) {
	info := []byte(versionWrapInfo + "\x00")
	info = append(info, byte(len(name)))
	info = append(info, name...)
	info = binary.BigEndian.AppendUint32(info, ver)
	info = binary.BigEndian.AppendUint32(info, slot)
	k, err := hkdf.Key(sha256.New, s.wrapRoot, salt, string(info), 32)
	if err != nil {
		return nil, fmt.Errorf("vault: hkdf: %w", err)
	}
	defer clear(k)
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("vault: version cipher: %w", err)
	}
	return cipher.NewGCMWithRandomNonce(block)
}
