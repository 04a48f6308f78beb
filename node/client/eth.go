package client

import (
	"context"

	"github.com/keymesh/keymesh/node/apiv1"
)

// EthDomain calls GET /v1/eth/domain: the EIP-712 domain values a wallet
// signs for this node (network id as salt, type, longest lifetime). It needs
// no token.
func (c *Client) EthDomain(ctx context.Context) (*apiv1.EthDomain, error) {
	var out apiv1.EthDomain
	if err := c.do(ctx, "GET", "/v1/eth/domain", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// EthDecrypt calls POST /v1/eth/decrypt: decrypt for the eth: party whose
// wallet signed req.Auth over exactly these envelopes. It needs no token
// (one the client holds is sent and ignored). An invalid, expired or
// replayed signature fails with [ErrUnauthenticated]; build and sign
// req.Auth with package node/ethid, or in a browser wallet (clients/js).
func (c *Client) EthDecrypt(ctx context.Context, req apiv1.EthDecryptRequest) (*apiv1.DecryptResponse, error) {
	var out apiv1.DecryptResponse
	if err := c.do(ctx, "POST", "/v1/eth/decrypt", nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
