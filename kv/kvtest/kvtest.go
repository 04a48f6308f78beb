// Package kvtest holds what tests of keymesh's stores share.
package kvtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"

	"github.com/keymesh/keymesh/kv"
)

// HMACTagger is a kv.Tagger framed as the vault's: HMAC-SHA256 under its
// bytes as the key, of domain ‖ len(key) (4 bytes, big endian) ‖ key ‖
// value. Tests use it where they need real tags but no vault, or tags
// under a key of an attacker's choosing.
type HMACTagger []byte

// Tag implements kv.Tagger.
func (k HMACTagger) Tag(domain byte, key, value []byte) [kv.TagSize]byte {
	h := hmac.New(sha256.New, k)
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
