package ethereum

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
	"github.com/keymesh/keymesh/node/ethid"
)

// Decrypter opens envelopes for one principal, in one request: results
// come back in the order of items, a refused or failed item with its Error
// set. A refusal of the whole request (authentication, audit) is the error.
type Decrypter interface {
	Decrypt(ctx context.Context, items []apiv1.DecryptItem) ([]apiv1.DecryptResult, error)
}

// TokenDecrypter decrypts as the party of its client's API token
// (POST /v1/decrypt).
type TokenDecrypter struct{ Client *client.Client }

// Decrypt implements Decrypter.
func (t TokenDecrypter) Decrypt(ctx context.Context, items []apiv1.DecryptItem) ([]apiv1.DecryptResult, error) {
	items, err := canonicalItems(items)
	if err != nil {
		return nil, err
	}
	resp, err := t.Client.Decrypt(ctx, apiv1.DecryptRequest{Batch: items})
	if err != nil {
		return nil, err
	}
	return resp.Batch, nil
}

// DefaultSignatureTTL is how long a WalletDecrypter's signatures live.
const DefaultSignatureTTL = 2 * time.Minute

// WalletDecrypter decrypts as an Ethereum account whose key it holds: it
// signs an EIP-712 request over each batch (POST /v1/eth/decrypt). It suits
// back ends and tools that hold a wallet key; a browser wallet signs with
// the same typed data and its signature goes through SignedDecrypter.
type WalletDecrypter struct {
	client  *client.Client
	key     *ecdsa.PrivateKey
	chainID uint64
	ttl     time.Duration
	scheme  ethid.Scheme
	now     func() time.Time

	mu     sync.Mutex
	domain ethid.Domain // network id and audience fetched from /v1/eth/domain on first use
}

// NewWalletDecrypter returns a decrypter that signs for key's account on
// chain chainID, with EIP-712 and DefaultSignatureTTL. c needs no token.
func NewWalletDecrypter(c *client.Client, key *ecdsa.PrivateKey, chainID *big.Int) (*WalletDecrypter, error) {
	if c == nil || key == nil || chainID == nil || !chainID.IsUint64() {
		return nil, errors.New("ethereum: NewWalletDecrypter needs a client, a key and a uint64 chain id")
	}
	return &WalletDecrypter{client: c, key: key, chainID: chainID.Uint64(), ttl: DefaultSignatureTTL, scheme: ethid.SchemeEIP712, now: time.Now}, nil
}

// WithScheme returns a copy of w that signs with scheme (ethid.SchemeEIP191
// for personal_sign).
func (w *WalletDecrypter) WithScheme(scheme ethid.Scheme) *WalletDecrypter {
	return &WalletDecrypter{client: w.client, key: w.key, chainID: w.chainID, ttl: w.ttl, scheme: scheme, now: w.now, domain: w.knownDomain()}
}

// knownDomain returns the domain fetched so far, or the zero Domain.
func (w *WalletDecrypter) knownDomain() ethid.Domain {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.domain
}

// Account returns the party the decrypter speaks for.
func (w *WalletDecrypter) Account() string {
	return ethid.Party(crypto.PubkeyToAddress(w.key.PublicKey))
}

// nodeDomain returns the network id and audience of the node w talks to,
// with w's chain id. A signature is valid at that node only: a client that
// talks to several nodes needs a decrypter per node.
func (w *WalletDecrypter) nodeDomain(ctx context.Context) (ethid.Domain, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.domain.NetworkID == "" {
		d, err := w.client.EthDomain(ctx)
		if err != nil {
			return ethid.Domain{}, fmt.Errorf("ethereum: reading the node's EIP-712 domain: %w", err)
		}
		w.domain = ethid.Domain{NetworkID: d.NetworkID, Audience: d.Audience}
	}
	d := w.domain
	d.ChainID = w.chainID
	return d, nil
}

// Sign returns the signed request for items, as Decrypt sends it. Every
// item whose context names a chain_id must name w's chain (the node refuses
// a signature for another chain).
func (w *WalletDecrypter) Sign(ctx context.Context, items []apiv1.DecryptItem) (apiv1.EthAuth, error) {
	for i, it := range items {
		if v, ok := it.Context[ethid.ContextChainID]; ok {
			if id, ok := ethid.ParseChainID(v); !ok || id != w.chainID {
				return apiv1.EthAuth{}, fmt.Errorf("ethereum: item %d: context chain_id %q is not the decrypter's chain %d", i, v, w.chainID)
			}
		}
	}
	d, err := w.nodeDomain(ctx)
	if err != nil {
		return apiv1.EthAuth{}, err
	}
	texts := make([]string, len(items))
	for i, it := range items {
		texts[i] = it.Ciphertext
	}
	r, err := ethid.NewRequest(d, crypto.PubkeyToAddress(w.key.PublicKey), ethid.ActionDecrypt, texts, w.now().Add(w.ttl))
	if err != nil {
		return apiv1.EthAuth{}, err
	}
	return r.Sign(w.key, w.scheme)
}

// Decrypt implements Decrypter.
func (w *WalletDecrypter) Decrypt(ctx context.Context, items []apiv1.DecryptItem) ([]apiv1.DecryptResult, error) {
	items, err := canonicalItems(items)
	if err != nil {
		return nil, err
	}
	auth, err := w.Sign(ctx, items)
	if err != nil {
		return nil, err
	}
	return SignedDecrypter{Client: w.client, Auth: auth}.Decrypt(ctx, items)
}

// SignedDecrypter forwards a signature that a wallet made elsewhere (a
// browser, with eth_signTypedData_v4) over exactly the items it is given.
// A signature is single-use: the node refuses it a second time.
type SignedDecrypter struct {
	Client *client.Client
	Auth   apiv1.EthAuth
}

// Decrypt implements Decrypter.
func (s SignedDecrypter) Decrypt(ctx context.Context, items []apiv1.DecryptItem) ([]apiv1.DecryptResult, error) {
	items, err := canonicalItems(items)
	if err != nil {
		return nil, err
	}
	resp, err := s.Client.EthDecrypt(ctx, apiv1.EthDecryptRequest{Batch: items, Auth: s.Auth})
	if err != nil {
		return nil, err
	}
	return resp.Batch, nil
}

// canonicalItems returns items with their contexts' chain_id and contract
// in canonical form (decimal; lower-case 0x address), as the node would
// rewrite them, so that a context built from ethers-style values (a hex
// chain id, a checksummed address) opens what the middleware sealed. A
// value that is no chain id or address is an error wrapping
// envelope.ErrInvalidContext.
func canonicalItems(items []apiv1.DecryptItem) ([]apiv1.DecryptItem, error) {
	out := slices.Clone(items)
	if err := ethid.CanonicalizeDecrypt(out, true); err != nil {
		return nil, fmt.Errorf("ethereum: %w", err)
	}
	return out, nil
}
