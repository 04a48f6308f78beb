package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/vault/secret"
)

// MasterKeySize is the size of a generated master key file.
const MasterKeySize = 32

// DefaultPBKDF2Iterations is the PBKDF2-HMAC-SHA256 iteration count used for
// a passphrase master secret (OWASP's 2023 recommendation). It is recorded
// in the store at initialisation, so changing it later does not lock anyone
// out.
const DefaultPBKDF2Iterations = 600_000

// minPBKDF2Iterations is the least a stored seal record may ask for; a
// lower count in the store is treated as tampering.
const minPBKDF2Iterations = 1_000

// Master is the node's master secret, from which the key-encryption key
// (KEK) is derived at start. Make one with MasterKey or MasterPassphrase.
type Master struct {
	kind   string // "keyfile" or "passphrase"
	secret *secret.Bytes
}

// MasterKey uses b (a 32-byte key, normally read with ReadKeyFile) as the
// master secret. b is copied.
func MasterKey(b []byte) Master { return Master{kind: "keyfile", secret: secret.New(b)} }

// MasterPassphrase derives the master secret from a passphrase with
// PBKDF2-HMAC-SHA256 and a per-node salt. p is copied.
func MasterPassphrase(p []byte) Master { return Master{kind: "passphrase", secret: secret.New(p)} }

// Clear wipes the master secret from memory (best effort).
func (m Master) Clear() {
	if m.secret != nil {
		m.secret.Clear()
	}
}

// sealRecord is stored under sealKey. It holds no secret: the salt, the KDF
// parameters and a check value that only the right KEK opens.
type sealRecord struct {
	Kind       string `json:"kind"`
	Salt       []byte `json:"salt"`
	Iterations int    `json:"iterations,omitempty"`
	Check      []byte `json:"check"`
}

var sealKey = []byte("vault/seal")

const (
	kekInfo   = "keymesh/v1 kek"
	checkAAD  = "keymesh/v1 seal-check"
	checkText = "keymesh seal check v1"
)

// WriteKeyFile creates path with a new random master key, mode 0600. It
// refuses to overwrite an existing file.
func WriteKeyFile(path string, r io.Reader) error {
	if r == nil {
		r = rand.Reader
	}
	key := make([]byte, MasterKeySize)
	defer clear(key)
	if _, err := io.ReadFull(r, key); err != nil {
		return fmt.Errorf("vault: generate master key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("vault: create key file %s: %w", path, err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return fmt.Errorf("vault: write key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("vault: sync key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("vault: close key file %s: %w", path, err)
	}
	return nil
}

// ReadKeyFile reads a master key file. It refuses a file that is readable
// or writable by group or others, and one that is not exactly 32 bytes.
func ReadKeyFile(path string) (Master, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Master{}, fmt.Errorf("vault: key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return Master{}, fmt.Errorf("vault: key file %s has mode %04o; it must be readable by its owner only (chmod 600)", path, fi.Mode().Perm())
	}
	if !fi.Mode().IsRegular() {
		return Master{}, fmt.Errorf("vault: key file %s is not a regular file", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Master{}, fmt.Errorf("vault: read key file: %w", err)
	}
	defer clear(b)
	if len(b) != MasterKeySize {
		return Master{}, fmt.Errorf("vault: key file %s holds %d bytes, want %d", path, len(b), MasterKeySize)
	}
	return MasterKey(b), nil
}

// KeyFileExists reports whether path exists.
func KeyFileExists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// unseal derives the KEK from m. On a new store it writes the seal record;
// on an existing one it checks m against the record's check value and
// returns ErrWrongMasterSecret if it does not open.
func unseal(store kv.Store, m Master, iterations int, r io.Reader) (cipher.AEAD, error) {
	if m.secret == nil {
		return nil, errors.New("vault: no master secret")
	}
	raw, err := store.Get(sealKey)
	switch {
	case errors.Is(err, kv.ErrNotFound):
		return initSeal(store, m, iterations, r)
	case err != nil:
		return nil, fmt.Errorf("vault: read seal record: %w", err)
	}
	var rec sealRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("vault: seal record: %w", err)
	}
	if rec.Kind != m.kind {
		return nil, fmt.Errorf("%w: this node was initialised with a %s master secret, not a %s", ErrWrongMasterSecret, rec.Kind, m.kind)
	}
	if rec.Kind == "passphrase" && rec.Iterations < minPBKDF2Iterations {
		return nil, fmt.Errorf("vault: seal record asks for %d PBKDF2 iterations, fewer than %d", rec.Iterations, minPBKDF2Iterations)
	}
	kek, err := deriveKEK(m, rec.Salt, rec.Iterations)
	if err != nil {
		return nil, err
	}
	if len(rec.Check) < 12 {
		return nil, errors.New("vault: seal record: check value truncated")
	}
	// nonce || ciphertext || tag, as every KEK seal: the module-nonce
	// AEAD reads the nonce from the front.
	pt, err := kek.Open(nil, nil, rec.Check, []byte(checkAAD))
	if err != nil || string(pt) != checkText {
		return nil, ErrWrongMasterSecret
	}
	return kek, nil
}

func initSeal(store kv.Store, m Master, iterations int, r io.Reader) (cipher.AEAD, error) {
	rec := sealRecord{Kind: m.kind, Salt: make([]byte, 32)}
	if m.kind == "passphrase" {
		rec.Iterations = iterations
	}
	if _, err := io.ReadFull(r, rec.Salt); err != nil {
		return nil, fmt.Errorf("vault: generate salt: %w", err)
	}
	kek, err := deriveKEK(m, rec.Salt, rec.Iterations)
	if err != nil {
		return nil, err
	}
	rec.Check = kek.Seal(nil, nil, []byte(checkText), []byte(checkAAD))
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("vault: encode seal record: %w", err)
	}
	err = store.Update(func(tx kv.Txn) error {
		if _, err := tx.Get(sealKey); err == nil {
			return errors.New("vault: seal record appeared concurrently")
		}
		return tx.Set(sealKey, b)
	})
	if err != nil {
		return nil, fmt.Errorf("vault: write seal record: %w", err)
	}
	return kek, nil
}

func deriveKEK(m Master, salt []byte, iterations int) (cipher.AEAD, error) {
	ikm, err := m.secret.Copy()
	if err != nil {
		return nil, fmt.Errorf("vault: master secret: %w", err)
	}
	defer clear(ikm)
	switch m.kind {
	case "keyfile":
		if len(ikm) != MasterKeySize {
			return nil, fmt.Errorf("vault: master key is %d bytes, want %d", len(ikm), MasterKeySize)
		}
	case "passphrase":
		if len(ikm) == 0 {
			return nil, errors.New("vault: empty passphrase")
		}
		stretched, err := pbkdf2.Key(sha256.New, string(ikm), salt, iterations, 32)
		if err != nil {
			return nil, fmt.Errorf("vault: pbkdf2: %w", err)
		}
		defer clear(stretched)
		ikm = append(ikm[:0], stretched...)
	default:
		return nil, fmt.Errorf("vault: unknown master secret kind %q", m.kind)
	}
	kek, err := hkdf.Key(sha256.New, ikm, salt, kekInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("vault: hkdf: %w", err)
	}
	defer clear(kek)
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("vault: kek cipher: %w", err)
	}
	// AES-256-GCM with nonces generated by the cryptographic module: Seal
	// returns nonce || ciphertext || tag and Open reads the nonce from the
	// front, the layout the KEK has always written, so stores sealed with
	// caller-drawn nonces keep opening (also under GODEBUG=fips140=only,
	// which allows decryption with any nonce, but encryption only with
	// the module's).
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("vault: kek cipher: %w", err)
	}
	return aead, nil
}
