package ethereum

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/keymesh/keymesh/chaincode/ethereum/ethauth"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
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
	scheme  ethauth.Scheme
	now     func() time.Time

	mu        sync.Mutex
	networkID string // fetched from /v1/eth/domain on first use
}

// NewWalletDecrypter returns a decrypter that signs for key's account on
// chain chainID, with EIP-712 and DefaultSignatureTTL. c needs no token.
func NewWalletDecrypter(c *client.Client, key *ecdsa.PrivateKey, chainID *big.Int) (*WalletDecrypter, error) {
	if c == nil || key == nil || chainID == nil || !chainID.IsUint64() {
		return nil, errors.New("ethereum: NewWalletDecrypter needs a client, a key and a uint64 chain id")
	}
	return &WalletDecrypter{client: c, key: key, chainID: chainID.Uint64(), ttl: DefaultSignatureTTL, scheme: ethauth.SchemeEIP712, now: time.Now}, nil
}

// WithScheme returns a copy of w that signs with scheme (ethauth.SchemeEIP191
// for personal_sign).
func (w *WalletDecrypter) WithScheme(scheme ethauth.Scheme) *WalletDecrypter {
	return &WalletDecrypter{client: w.client, key: w.key, chainID: w.chainID, ttl: w.ttl, scheme: scheme, now: w.now, networkID: w.knownNetworkID()}
}

// knownNetworkID returns the network id fetched so far, or "".
func (w *WalletDecrypter) knownNetworkID() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.networkID
}

// Account returns the party the decrypter speaks for.
func (w *WalletDecrypter) Account() string {
	return ethauth.Party(crypto.PubkeyToAddress(w.key.PublicKey))
}

func (w *WalletDecrypter) domain(ctx context.Context) (ethauth.Domain, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.networkID == "" {
		d, err := w.client.EthDomain(ctx)
		if err != nil {
			return ethauth.Domain{}, fmt.Errorf("ethereum: reading the node's EIP-712 domain: %w", err)
		}
		w.networkID = d.NetworkID
	}
	return ethauth.Domain{NetworkID: w.networkID, ChainID: w.chainID}, nil
}

// Sign returns the signed request for items, as Decrypt sends it.
func (w *WalletDecrypter) Sign(ctx context.Context, items []apiv1.DecryptItem) (apiv1.EthAuth, error) {
	d, err := w.domain(ctx)
	if err != nil {
		return apiv1.EthAuth{}, err
	}
	texts := make([]string, len(items))
	for i, it := range items {
		texts[i] = it.Ciphertext
	}
	r, err := ethauth.NewRequest(d, crypto.PubkeyToAddress(w.key.PublicKey), ethauth.ActionDecrypt, texts, w.now().Add(w.ttl))
	if err != nil {
		return apiv1.EthAuth{}, err
	}
	a, err := r.Sign(w.key, w.scheme)
	if err != nil {
		return apiv1.EthAuth{}, err
	}
	return apiv1.EthAuth(a), nil
}

// Decrypt implements Decrypter.
func (w *WalletDecrypter) Decrypt(ctx context.Context, items []apiv1.DecryptItem) ([]apiv1.DecryptResult, error) {
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
	resp, err := s.Client.EthDecrypt(ctx, apiv1.EthDecryptRequest{Batch: items, Auth: s.Auth})
	if err != nil {
		return nil, err
	}
	return resp.Batch, nil
}
