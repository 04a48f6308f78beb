// Package transport wraps key versions for transport between keymesh nodes
// with HPKE (RFC 9180, Go's crypto/hpke), so that only the named recipient
// node can open them.
//
// Start with [GenerateKey] (a node's KEM key pair, made once at init), then
// [Wrap] on the sending node and [Unwrap] on the recipient. A [Binding] names
// what is being carried — network id, key name, key version and the
// recipient's node key — and both sides must present the same one. A node
// that unwraps many blobs parses its key once with [ParsePrivateKey].
//
// # Suite
//
// The suite is fixed network-wide and named in every blob ([SuiteID]): KEM
// MLKEM768-P256 (0x0050, the hybrid of ML-KEM-768 and P-256 from
// draft-ietf-hpke-pq), KDF HKDF-SHA256 (0x0001), AEAD AES-256-GCM (0x0002).
// Gossip can be recorded and ledgers are permanent, so the key exchange must
// resist a future quantum computer; the P-256 half keeps classical security
// should ML-KEM fall. Both halves are FIPS-approved algorithms.
//
// # Format
//
// A blob is exactly [BlobSize] (1208) bytes:
//
//	[0]        format version, 0x01 (FormatVersion)
//	[1:7]      suite id: KEM id || KDF id || AEAD id, each uint16 big-endian
//	[7:1160]   HPKE encapsulated key (enc), 1153 bytes
//	[1160:]    AES-256-GCM ciphertext of the 32-byte key version || 16-byte tag
//
// The HPKE context (base mode, single shot) uses
//
//	info = "keymesh/v1 key-transport\x00" || network id (32) ||
//	       uint32 len(key) || key || uint32 version || recipient node key (32)
//
// and the AEAD's additional data is the blob header (bytes [0:7]), so the
// network, key name, key version, recipient, format and suite are all bound:
// a blob presented for another binding, or with any byte changed, does not
// open.
//
// # Trust
//
// Wrap does not authenticate the sender: HPKE base mode proves nothing about
// who sealed a blob. Blobs travel inside events signed by the issuing node
// (package event), and it is that signature, checked against the node
// registry, that says who sent a key version. [Unwrap] reports every failure
// to open — wrong private key, wrong binding, any tampered byte — as the one
// error [ErrUnwrap]; only a blob whose header names another format or suite
// gets [ErrSuite], since the header is public.
package transport

import (
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/keymesh/keymesh/vault/envelope"
)

// FormatVersion is the first byte of every blob.
const FormatVersion = 1

// SuiteID names the HPKE suite in every blob: KEM MLKEM768-P256 (0x0050),
// KDF HKDF-SHA256 (0x0001), AEAD AES-256-GCM (0x0002), each as a big-endian
// uint16.
const SuiteID = "\x00\x50\x00\x01\x00\x02"

// Sizes of keys, material and blobs, in bytes.
const (
	// PrivateKeySize is the size of a serialised private key (the 32-byte
	// seed from which both halves of the hybrid key are derived).
	PrivateKeySize = 32
	// PublicKeySize is the size of a serialised public key: the ML-KEM-768
	// encapsulation key (1184) followed by an uncompressed P-256 point (65).
	PublicKeySize = 1249
	// MaterialSize is the size of what is wrapped: one key version.
	MaterialSize = 32
	// HeaderSize is the size of the blob header: format version and suite.
	HeaderSize = 1 + len(SuiteID)
	// Overhead is what HPKE adds to the material: the encapsulated key
	// (1088 + 65) and the 16-byte GCM tag.
	Overhead = 1169
	// BlobSize is the size of every blob.
	BlobSize = HeaderSize + Overhead + MaterialSize
)

const infoLabel = "keymesh/v1 key-transport\x00"

var (
	// ErrUnwrap is the one error Unwrap returns for a blob it cannot open,
	// whatever the reason. It is never wrapped with a reason.
	ErrUnwrap = errors.New("transport: unwrap failed")
	// ErrSuite is returned by Unwrap for a blob whose header names another
	// format version or HPKE suite than this package's.
	ErrSuite = errors.New("transport: unsupported format or suite")
	// ErrInvalidKey is wrapped by errors about a public or private key that
	// is not a key of this suite.
	ErrInvalidKey = errors.New("transport: invalid key")
	// ErrInvalidBinding is wrapped by Wrap's errors about a Binding that is
	// not valid (see Binding.Validate).
	ErrInvalidBinding = errors.New("transport: invalid binding")
)

var (
	kem  = hpke.MLKEM768P256()
	kdf  = hpke.HKDFSHA256()
	aead = hpke.AES256GCM()
)

func init() {
	// The constants above describe the suite; fail loudly if they ever
	// disagree with it.
	id := binary.BigEndian.AppendUint16(nil, kem.ID())
	id = binary.BigEndian.AppendUint16(id, kdf.ID())
	id = binary.BigEndian.AppendUint16(id, aead.ID())
	if string(id) != SuiteID {
		panic("transport: suite id mismatch")
	}
}

// GenerateKey returns a new KEM key pair: the private key as its 32-byte
// seed, and the public key (PublicKeySize bytes) that goes into the node's
// record. The private key is a secret: seal it at rest.
func GenerateKey() (priv []byte, pub []byte, err error) {
	k, err := kem.GenerateKey()
	if err != nil {
		return nil, nil, err
	}
	priv, err = k.Bytes()
	if err != nil {
		return nil, nil, err
	}
	return priv, k.PublicKey().Bytes(), nil
}

// PublicKey returns the public key of the private key priv.
func PublicKey(priv []byte) ([]byte, error) {
	k, err := ParsePrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return k.PublicKey(), nil
}

// CheckPublicKey reports whether pub is a public key of this suite: exactly
// PublicKeySize bytes that decode as an ML-KEM-768 encapsulation key and a
// P-256 point. Its error wraps ErrInvalidKey.
func CheckPublicKey(pub []byte) error {
	_, err := newPublicKey(pub)
	return err
}

func newPublicKey(pub []byte) (hpke.PublicKey, error) {
	if len(pub) != PublicKeySize {
		return nil, fmt.Errorf("%w: public key of %d bytes, want %d", ErrInvalidKey, len(pub), PublicKeySize)
	}
	k, err := kem.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	return k, nil
}

func newPrivateKey(priv []byte) (hpke.PrivateKey, error) {
	if len(priv) != PrivateKeySize {
		return nil, fmt.Errorf("%w: private key of %d bytes, want %d", ErrInvalidKey, len(priv), PrivateKeySize)
	}
	k, err := kem.NewPrivateKey(priv)
	if err != nil {
		// The error of NewPrivateKey does not quote the key.
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	return k, nil
}

// Binding is what a blob is for. Wrap binds it into the blob; Unwrap opens
// the blob only for the same Binding.
type Binding struct {
	// Network is the network id (the genesis hash).
	Network [32]byte
	// Key is the key name, "<namespace>/<name>" (envelope.CheckKeyName).
	Key string
	// Version is the key version, from 1.
	Version uint32
	// Recipient is the recipient node's signing key (its event.NodeKey).
	Recipient [32]byte
}

// Validate reports whether b is a valid binding: a valid key name and a
// version of at least 1. Its errors wrap ErrInvalidBinding.
func (b Binding) Validate() error {
	if err := envelope.CheckKeyName(b.Key); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidBinding, err)
	}
	if b.Version == 0 {
		return fmt.Errorf("%w: key %q version 0", ErrInvalidBinding, b.Key)
	}
	return nil
}

// info returns the HPKE info string of b.
func (b Binding) info() []byte {
	out := make([]byte, 0, len(infoLabel)+32+4+len(b.Key)+4+32)
	out = append(out, infoLabel...)
	out = append(out, b.Network[:]...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(b.Key)))
	out = append(out, b.Key...)
	out = binary.BigEndian.AppendUint32(out, b.Version)
	return append(out, b.Recipient[:]...)
}

var header = [HeaderSize]byte{FormatVersion, SuiteID[0], SuiteID[1], SuiteID[2], SuiteID[3], SuiteID[4], SuiteID[5]}

// Wrap seals material, one 32-byte key version, to the recipient's public
// key for the binding b, and returns the BlobSize-byte blob. Each call draws
// fresh randomness, so wrapping the same material twice gives different
// blobs.
func Wrap(recipientPub []byte, b Binding, material []byte) ([]byte, error) {
	if len(material) != MaterialSize {
		return nil, fmt.Errorf("transport: material of %d bytes, want %d", len(material), MaterialSize)
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	pk, err := newPublicKey(recipientPub)
	if err != nil {
		return nil, err
	}
	enc, s, err := hpke.NewSender(pk, kdf, aead, b.info())
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	blob := make([]byte, 0, BlobSize)
	blob = append(blob, header[:]...)
	blob = append(blob, enc...)
	ct, err := s.Seal(header[:], material)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	blob = append(blob, ct...)
	if len(blob) != BlobSize {
		return nil, fmt.Errorf("transport: internal error: blob of %d bytes, want %d", len(blob), BlobSize)
	}
	return blob, nil
}

// Unwrap opens a blob made by Wrap with the recipient's private key and
// the same binding, and returns the 32-byte key version. It fails with
// ErrSuite for a blob whose header names another format version or suite,
// and with ErrUnwrap for every other failure: a malformed private key or
// binding, a blob of the wrong size, a blob for another recipient or
// binding, or any tampered byte. A node that unwraps many blobs can parse
// its key once with ParsePrivateKey and call PrivateKey.Unwrap, which saves
// expanding the seed (about a quarter of the cost) each time.
func Unwrap(recipientPriv []byte, b Binding, blob []byte) ([]byte, error) {
	if err := checkHeader(blob); err != nil {
		return nil, err
	}
	k, err := ParsePrivateKey(recipientPriv)
	if err != nil {
		return nil, ErrUnwrap
	}
	return k.Unwrap(b, blob)
}

func checkHeader(blob []byte) error {
	if len(blob) >= HeaderSize && string(blob[:HeaderSize]) != string(header[:]) {
		return ErrSuite
	}
	return nil
}

// PrivateKey is a parsed KEM private key. It is a secret: its String and
// GoString methods redact it. The zero value is not usable.
type PrivateKey struct {
	k hpke.PrivateKey
}

// ParsePrivateKey parses a private key as GenerateKey returns it (its
// 32-byte seed). Its error wraps ErrInvalidKey and never quotes the key.
func ParsePrivateKey(priv []byte) (*PrivateKey, error) {
	k, err := newPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return &PrivateKey{k}, nil
}

// PublicKey returns the serialised public key of k.
func (k *PrivateKey) PublicKey() []byte { return k.k.PublicKey().Bytes() }

// String returns a fixed text that does not reveal the key.
func (k *PrivateKey) String() string { return "transport.PrivateKey(redacted)" }

// GoString returns a fixed text that does not reveal the key.
func (k *PrivateKey) GoString() string { return k.String() }

// Unwrap is the package-level Unwrap with an already parsed key.
func (k *PrivateKey) Unwrap(b Binding, blob []byte) ([]byte, error) {
	if err := checkHeader(blob); err != nil {
		return nil, err
	}
	if k == nil || k.k == nil || len(blob) != BlobSize || b.Validate() != nil {
		return nil, ErrUnwrap
	}
	const encEnd = BlobSize - MaterialSize - 16
	r, err := hpke.NewRecipient(blob[HeaderSize:encEnd], k.k, kdf, aead, b.info())
	if err != nil {
		return nil, ErrUnwrap
	}
	pt, err := r.Open(blob[:HeaderSize], blob[encEnd:])
	if err != nil || len(pt) != MaterialSize {
		return nil, ErrUnwrap
	}
	return pt, nil
}
