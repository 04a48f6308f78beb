package vault

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/vault/transport"
)

// This file holds the node's own private keys, which never leave the vault:
// the Ed25519 signing key (it signs the node's events and is its libp2p
// identity), handed out only as a Signer whose private half stays inside,
// and the HPKE KEM key for key transport, which only AcceptVersion uses.
// In the shape of age's Identity: a handle that performs the operation, not
// the bytes.

// SecretSignKey names the sealed secret that holds the seed of the node's
// Ed25519 signing key.
const SecretSignKey = "node/sign-key"

// ErrNodeKeysExist is returned by GenerateNodeKeys for a vault that holds
// node keys already: a node's identity is made once.
var ErrNodeKeysExist = errors.New("vault: the node's keys exist already")

// GenerateNodeKeys makes the node's signing key and KEM key pair inside the
// vault, seals them under the KEK, and returns their public halves: the
// Ed25519 public key and the KEM public key (transport.PublicKeySize bytes)
// that go into the node's identity and record.
func (v *Vault) GenerateNodeKeys() (ed25519.PublicKey, []byte, error) {
	for _, name := range []string{SecretSignKey, SecretKEMKey} {
		if _, err := v.store.Get(secretKey(name)); err == nil {
			return nil, nil, ErrNodeKeysExist
		} else if !errors.Is(err, kv.ErrNotFound) {
			return nil, nil, fmt.Errorf("vault: node keys: %w", err)
		}
	}
	signPub, signPriv, err := ed25519.GenerateKey(v.opts.rand)
	if err != nil {
		return nil, nil, fmt.Errorf("vault: generate signing key: %w", err)
	}
	defer clear(signPriv)
	kemPriv, kemPub, err := transport.GenerateKey()
	if err != nil {
		return nil, nil, fmt.Errorf("vault: generate KEM key: %w", err)
	}
	defer clear(kemPriv)
	if err := errors.Join(v.sealSecret(SecretSignKey, signPriv.Seed()), v.sealSecret(SecretKEMKey, kemPriv)); err != nil {
		return nil, nil, err
	}
	return signPub, kemPub, nil
}

// Signer returns the node's signing key as a handle that signs (a
// crypto.Signer) while its private half stays in package vault: nothing
// exported returns it, and it prints as its public key. The caller calls
// Destroy when done with it (best effort: Go may have copied the bytes).
func (v *Vault) Signer() (*Signer, error) {
	seed, err := v.openSecret(SecretSignKey)
	if err != nil {
		return nil, err
	}
	defer clear(seed)
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("vault: sealed signing key of %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	return &Signer{priv: priv, pub: priv.Public().(ed25519.PublicKey)}, nil
}

// kemKey opens the node's KEM private key for one unwrap (AcceptVersion);
// the parsed key redacts itself.
func (v *Vault) kemKey() (*transport.PrivateKey, error) {
	seed, err := v.openSecret(SecretKEMKey)
	if err != nil {
		return nil, err
	}
	defer clear(seed)
	k, err := transport.ParsePrivateKey(seed)
	if err != nil {
		return nil, fmt.Errorf("vault: sealed KEM key: %w", err)
	}
	return k, nil
}

// ErrSignerDestroyed is returned by a Signer's methods after Destroy.
var ErrSignerDestroyed = errors.New("vault: signer destroyed")

// Signer is the node's Ed25519 signing key held by the vault: it signs the
// node's events and checkpoints and, through p2p.SignerKey, is the node's
// libp2p identity. It is safe for concurrent use.
type Signer struct {
	mu   sync.RWMutex
	priv ed25519.PrivateKey // nil once destroyed
	pub  ed25519.PublicKey
}

// Public returns the ed25519.PublicKey.
func (s *Signer) Public() crypto.PublicKey { return s.pub }

// PublicKey returns the Ed25519 public key.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.pub }

// Sign signs msg as ed25519.PrivateKey.Sign does: opts is crypto.Hash(0)
// for Ed25519 over the whole message (or *ed25519.Options).
func (s *Signer) Sign(rand io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.priv == nil {
		return nil, ErrSignerDestroyed
	}
	return s.priv.Sign(rand, msg, opts)
}

// DeriveKey returns a 32-byte secret for the purpose named by info:
// HKDF-SHA256 of the private key (seed and public key, 64 bytes), no salt.
// libp2p's QUIC transport derives its stateless-reset and token keys from
// the identity this way (p2p.Signer); the private key itself stays here.
func (s *Signer) DeriveKey(info string) ([32]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.priv == nil {
		return [32]byte{}, ErrSignerDestroyed
	}
	b, err := hkdf.Key(sha256.New, s.priv, nil, info, 32)
	if err != nil {
		return [32]byte{}, err
	}
	out := [32]byte(b)
	clear(b)
	return out, nil
}

// Destroy clears the private key; later calls to Sign and DeriveKey fail.
func (s *Signer) Destroy() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.priv)
	s.priv = nil
}

// String names the signer by its public key.
func (s *Signer) String() string { return "vault.Signer(ed25519:" + hex.EncodeToString(s.pub) + ")" }

// GoString is String: the private key is never printed.
func (s *Signer) GoString() string { return s.String() }

// Format prints String for every verb.
func (s *Signer) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// LogValue logs String.
func (s *Signer) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON writes String as a JSON string.
func (s *Signer) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }
