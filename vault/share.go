package vault

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/keymesh/keymesh/vault/envelope"
	"github.com/keymesh/keymesh/vault/transport"
)

// This file is how key versions move between nodes without their material
// leaving the vault raw: GenerateVersion makes a version's material and
// returns it only wrapped for the recipients, ShareVersion wraps a held
// version for more recipients, and AcceptVersion unwraps a copy with the
// node's own KEM private key (sealed here, under SecretKEMKey; see
// identity.go) and keeps it only if it matches the version's material
// commitment. No exported method takes or returns a version's material.

// SecretKEMKey names the sealed secret that holds the node's HPKE private
// key for key transport.
const SecretKEMKey = "node/kem-key"

// ErrMaterialMismatch is returned by AcceptVersion for a copy whose material
// does not match the version's commitment: a forged or corrupted share.
var ErrMaterialMismatch = errors.New("vault: shared material does not match the version's commitment")

// Recipient is a node a version is wrapped for: its KEM public key and the
// binding (network, key, version, recipient) the wrap is sealed to.
type Recipient struct {
	KEMKey  []byte
	Binding transport.Binding
}

const checkLabel = "keymesh/v1 key check\x00"

// KeyCheck returns the commitment to a version's material that its signed
// KeyVersion carries: HMAC-SHA256 keyed by the material over
// "keymesh/v1 key check\x00" || network id || uint32 len(key) || key ||
// uint32 version. It reveals nothing of the material (HMAC is a PRF) and
// binds it to one version of one key of one network.
func KeyCheck(network [32]byte, key string, version uint32, material []byte) [32]byte {
	m := hmac.New(sha256.New, material)
	m.Write([]byte(checkLabel))
	m.Write(network[:])
	m.Write(binary.BigEndian.AppendUint32(nil, uint32(len(key))))
	m.Write([]byte(key))
	m.Write(binary.BigEndian.AppendUint32(nil, version))
	return [32]byte(m.Sum(nil))
}

func wrapFor(material []byte, recipients []Recipient) ([][]byte, error) {
	blobs := make([][]byte, 0, len(recipients))
	for _, r := range recipients {
		blob, err := transport.Wrap(r.KEMKey, r.Binding, material)
		if err != nil {
			return nil, fmt.Errorf("vault: wrap %q v%d for %x: %w", r.Binding.Key, r.Binding.Version, r.Binding.Recipient[:8], err)
		}
		blobs = append(blobs, blob)
	}
	return blobs, nil
}

// GenerateVersion makes the material of a new version of key in network,
// from the vault's randomness, and returns its commitment (KeyCheck) and a
// copy wrapped for each recipient, in order. The material itself is
// cleared: a node holds it only once it accepts its own copy.
func (v *Vault) GenerateVersion(network [32]byte, key string, version uint32, recipients []Recipient) ([32]byte, [][]byte, error) {
	m := make([]byte, envelope.KeySize)
	defer clear(m)
	if _, err := io.ReadFull(v.opts.rand, m); err != nil {
		return [32]byte{}, nil, fmt.Errorf("vault: generate key: %w", err)
	}
	blobs, err := wrapFor(m, recipients)
	if err != nil {
		return [32]byte{}, nil, err
	}
	return KeyCheck(network, key, version, m), blobs, nil
}

// ShareVersion wraps a held version for more recipients.
func (v *Vault) ShareVersion(key string, version uint32, recipients []Recipient) ([][]byte, error) {
	m, err := v.heldMaterial(key, version)
	if err != nil {
		return nil, err
	}
	defer clear(m)
	return wrapFor(m, recipients)
}

// AcceptVersion unwraps a copy of a version wrapped for this node with the
// node's KEM private key, checks the material against the commitment in
// constant time (ErrMaterialMismatch), and keeps it, active from
// activateAt.
func (v *Vault) AcceptVersion(b transport.Binding, activateAt time.Time, check [32]byte, blob []byte) error {
	kem, err := v.kemKey()
	if err != nil {
		return err
	}
	m, err := kem.Unwrap(b, blob)
	if err != nil {
		return fmt.Errorf("vault: unwrap %q v%d: %w", b.Key, b.Version, err)
	}
	defer clear(m)
	got := KeyCheck(b.Network, b.Key, b.Version, m)
	if subtle.ConstantTimeCompare(got[:], check[:]) != 1 {
		return fmt.Errorf("%w: %q version %d", ErrMaterialMismatch, b.Key, b.Version)
	}
	return v.importVersion(b.Key, b.Version, activateAt, m)
}
