package p2p

import (
	stdcrypto "crypto"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/config"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// testSigner is a Signer over an in-memory Ed25519 key, as the vault's is.
type testSigner struct{ priv ed25519.PrivateKey }

func (s testSigner) Public() stdcrypto.PublicKey { return s.priv.Public() }
func (s testSigner) Sign(_ io.Reader, msg []byte, o stdcrypto.SignerOpts) ([]byte, error) {
	return s.priv.Sign(nil, msg, o)
}
func (s testSigner) DeriveKey(info string) ([32]byte, error) {
	b, err := hkdf.Key(sha256.New, s.priv, nil, info, 32)
	return [32]byte(b), err
}

func newSigner(t testing.TB) (testSigner, crypto.PrivKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := testSigner{priv}
	k, err := SignerKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return s, k
}

// TestSignerKey: a signer key signs what its public key verifies, names the
// same peer as the plain key, and refuses to hand out or marshal its bytes.
func TestSignerKey(t *testing.T) {
	s, k := newSigner(t)
	plain, err := crypto.UnmarshalEd25519PrivateKey(s.priv)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("libp2p-tls-handshake:test")
	sig, err := k.Sign(msg)
	if err != nil {
		t.Fatalf("Sign = %v", err)
	}
	if ok, err := k.GetPublic().Verify(msg, sig); !ok || err != nil {
		t.Errorf("GetPublic().Verify(Sign(msg)) = %v, %v; want true", ok, err)
	}
	want, _ := peer.IDFromPrivateKey(plain)
	if got, err := peer.IDFromPrivateKey(k); err != nil || got != want {
		t.Errorf("IDFromPrivateKey(signer key) = %v, %v; want %v", got, err, want)
	}
	if b, err := k.Raw(); !errors.Is(err, ErrKeyNotExportable) || b != nil {
		t.Errorf("Raw() = %x, %v; want nil, ErrKeyNotExportable", b, err)
	}
	if b, err := crypto.MarshalPrivateKey(k); err == nil {
		t.Errorf("MarshalPrivateKey(signer key) = %x, want an error", b)
	}
	k2, _ := SignerKey(s)
	_, other := newSigner(t)
	if !k.Equals(k2) || k.Equals(other) || k.Equals(plain) {
		t.Error("Equals: want true for the same signer only")
	}
	if _, err := SignerKey(badSigner{}); err == nil {
		t.Error("SignerKey(non-Ed25519 signer) = nil error")
	}
}

type badSigner struct{ testSigner }

func (badSigner) Public() stdcrypto.PublicKey { return []byte("not a key") }

// TestSignerKeyQUICKeys: the QUIC keys derived through the signer are the
// ones libp2p derives from the plain key's Raw bytes, so a node keeps them
// when its identity moves into the vault.
func TestSignerKeyQUICKeys(t *testing.T) {
	s, k := newSigner(t)
	plain, _ := crypto.UnmarshalEd25519PrivateKey(s.priv)
	reset, token, held, err := quicKeys(k)
	if err != nil || !held {
		t.Fatalf("quicKeys(signer key) = held %v, %v", held, err)
	}
	wantReset, _ := config.PrivKeyToStatelessResetKey(plain)
	wantToken, _ := config.PrivKeyToTokenGeneratorKey(plain)
	if reset != wantReset || token != wantToken {
		t.Error("QUIC keys derived through the signer differ from libp2p's")
	}
	if _, _, held, _ := quicKeys(plain); held {
		t.Error("quicKeys(plain key) held = true, want false (libp2p derives its own)")
	}
}

// TestSignerKeyHostsConnect: hosts whose identities are signer keys connect
// and gossip over TCP and over QUIC (TLS signs with the signer).
func TestSignerKeyHostsConnect(t *testing.T) {
	for _, tc := range []struct{ name, listen string }{
		{"ok/tcp", "/ip4/127.0.0.1/tcp/0"},
		{"ok/quic", "/ip4/127.0.0.1/udp/0/quic-v1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			listen := func(c *Config) { c.Listen = []string{tc.listen} }
			_, ka := newSigner(t)
			_, kb := newSigner(t)
			a := startNode(t, newMemLog(), ka, listen)
			b := startNode(t, newMemLog(), kb, func(c *Config) { listen(c); bootstrapTo(a)(c) })
			waitTopicPeers(t, a, b)
			raw := ev("A", 1, "over "+tc.name)
			publish(t, a, raw)
			waitFor(t, 5*time.Second, "event at B", func() bool { return b.log.has(raw) })
		})
	}
}
