package p2p

import (
	"context"
	stdcrypto "crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	pb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go"
)

// Signer is an Ed25519 private key held elsewhere (the node's vault): it
// signs and derives secrets, and never hands out its bytes. Public returns
// an ed25519.PublicKey; Sign takes the whole message and crypto.Hash(0).
type Signer interface {
	stdcrypto.Signer
	// DeriveKey returns a 32-byte secret for the purpose named by info,
	// HKDF-SHA256 of the private key as libp2p marshals it (seed and
	// public key), no salt: libp2p's QUIC transport derives its
	// stateless-reset and token keys this way from the identity.
	DeriveKey(info string) ([32]byte, error)
}

// ErrKeyNotExportable is returned by Raw of a key made with [SignerKey].
var ErrKeyNotExportable = errors.New("p2p: the identity's private key stays in its signer")

// The labels libp2p's config derives the QUIC keys with (go-libp2p
// config/quic.go); the same labels keep a node's keys across the move of
// its identity into the vault.
const (
	statelessResetKeyInfo = "libp2p quic stateless reset key"
	tokenGeneratorKeyInfo = "libp2p quic token generator key"
)

// SignerKey returns a libp2p private key over s, for [Config.Identity]:
// Sign and GetPublic work, Raw refuses (so neither libp2p nor a peerstore
// can marshal or copy it). In go-libp2p v0.51.0 with TCP and QUIC over TLS
// (this package's transports), the identity's private half is used to sign
// the TLS certificate extension and the signed peer record (Sign), to
// derive the peer id (GetPublic), and by config.PrivKeyToStatelessResetKey
// and PrivKeyToTokenGeneratorKey (Raw): [New] replaces the latter two with
// s.DeriveKey. The host's address manager also asks Raw for the key's
// length to budget the signed peer record; on the error it assumes 1 KiB
// keys and still keeps ~5.8 KiB of addresses. The in-memory peerstore only
// keeps the key; the datastore-backed one, WebTransport and WebRTC would
// call Raw and fail.
func SignerKey(s Signer) (crypto.PrivKey, error) {
	pub, ok := s.Public().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("p2p: signer's public key is %T, want an Ed25519 key", s.Public())
	}
	pk, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return nil, err
	}
	return &signerKey{s: s, pub: pk}, nil
}

type signerKey struct {
	s   Signer
	pub crypto.PubKey
}

func (k *signerKey) Sign(msg []byte) ([]byte, error) { return k.s.Sign(nil, msg, stdcrypto.Hash(0)) }
func (k *signerKey) GetPublic() crypto.PubKey        { return k.pub }
func (k *signerKey) Type() pb.KeyType                { return pb.KeyType_Ed25519 }
func (k *signerKey) Raw() ([]byte, error)            { return nil, ErrKeyNotExportable }

// Equals reports whether o is a signer key over the same key pair (the
// public key determines it; nothing secret is compared).
func (k *signerKey) Equals(o crypto.Key) bool {
	ok2, ok := o.(*signerKey)
	return ok && k.pub.Equals(ok2.pub)
}

// quicKeys derives the QUIC stateless-reset and token keys from the
// identity when it is a [SignerKey]; ok is false for another key, whose
// Raw libp2p calls itself.
func quicKeys(id crypto.PrivKey) (reset, token [32]byte, ok bool, err error) {
	k, isSigner := id.(*signerKey)
	if !isSigner {
		return reset, token, false, nil
	}
	if reset, err = k.s.DeriveKey(statelessResetKeyInfo); err != nil {
		return reset, token, true, err
	}
	token, err = k.s.DeriveKey(tokenGeneratorKeyInfo)
	return reset, token, true, err
}

// quicReuse is libp2p's default QUIC connection manager (go-libp2p v0.51.0
// config.go: resource-manager scopes from the first packet, source-address
// verification, metrics) built with the given keys instead of keys derived
// from the identity's Raw bytes. *closer receives the manager, which the
// host closes.
func quicReuse(reset, token [32]byte, reg prometheus.Registerer, closer *func() error) libp2p.Option {
	return libp2p.QUICReuse(func(rcmgr network.ResourceManager) (*quicreuse.ConnManager, error) {
		opts := []quicreuse.Option{
			quicreuse.ConnContext(func(ctx context.Context, ci *quic.ClientInfo) (context.Context, error) {
				// Even if the multiaddr cannot be made, the resource
				// manager decides.
				addr, err := quicreuse.ToQuicMultiaddr(ci.RemoteAddr, quic.Version1)
				if err != nil {
					addr = nil
				}
				scope, err := rcmgr.OpenConnection(network.DirInbound, false, addr)
				if err != nil {
					return ctx, err
				}
				ctx = network.WithConnManagementScope(ctx, scope)
				context.AfterFunc(ctx, scope.Done)
				return ctx, nil
			}),
			quicreuse.VerifySourceAddress(func(addr net.Addr) bool { return rcmgr.VerifySourceAddress(addr) }),
			quicreuse.EnableMetrics(reg),
		}
		cm, err := quicreuse.NewConnManager(reset, token, opts...)
		if err != nil {
			return nil, err
		}
		*closer = cm.Close
		return cm, nil
	})
}
