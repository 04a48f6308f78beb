package network

import (
	"crypto/ed25519"
	"crypto/subtle"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

const privateKeyPEMType = "PRIVATE KEY"

// MarshalAdminKey returns the file form of an org admin's Ed25519 private
// key: a PEM block of type "PRIVATE KEY" holding the PKCS #8 encoding of the
// key (RFC 8410), with no PEM headers — what `openssl genpkey -algorithm
// ed25519` writes, so `openssl pkey -in FILE -pubout` reads it too. The result
// is a secret: write it 0600.
func MarshalAdminKey(priv ed25519.PrivateKey) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("network: private key of %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("network: encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: privateKeyPEMType, Bytes: der}), nil
}

// ParseAdminKey parses the file form MarshalAdminKey writes. It is strict:
// exactly one "PRIVATE KEY" block, no headers, no text before or after it
// (one trailing newline is part of the block), an Ed25519 PKCS #8 key, and
// the bytes must be exactly what MarshalAdminKey writes for that key. Its
// errors wrap ErrMalformed and never quote the file's content.
func ParseAdminKey(data []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != privateKeyPEMType || len(block.Headers) != 0 || len(rest) != 0 {
		return nil, malformed("admin key: want exactly one PEM block of type %q", privateKeyPEMType)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, malformed("admin key: not a PKCS #8 private key")
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, malformed("admin key: not an Ed25519 key")
	}
	again, err := MarshalAdminKey(priv)
	if err != nil || subtle.ConstantTimeCompare(again, data) != 1 { // a private key: constant time
		return nil, malformed("admin key: not in canonical form")
	}
	return priv, nil
}
