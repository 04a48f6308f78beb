package apiv1

// EthAuth is an Ethereum wallet's signature over a keymesh request
// (package node/ethid describes the EIP-712 typed data and the EIP-191
// text, and names this struct ethid.Auth). The node recomputes the network
// id, the audience (its node id), the action ("decrypt") and the envelope
// digests itself, so the signature covers exactly the envelopes of the
// request it comes with, at that node.
type EthAuth struct {
	// Scheme is "eip712" (default when empty) or "eip191" (personal_sign).
	Scheme string `json:"scheme,omitempty"`
	// ChainID is the EIP-712 domain's chainId.
	ChainID uint64 `json:"chain_id"`
	// Account is the signer's address, 0x-prefixed hex.
	Account string `json:"account"`
	// Expiry is the signed expiry, Unix seconds; at most the node's
	// max_ttl_seconds ahead.
	Expiry uint64 `json:"expiry"`
	// Nonce is 0x and 64 hex digits; each (account, nonce) is accepted
	// once (the node remembers it durably until the expiry).
	Nonce string `json:"nonce"`
	// Signature is 0x and 130 hex digits (R, S, V).
	Signature string `json:"signature"`
}

// EthDecryptRequest decrypts one envelope, or a batch, for the eth: party
// whose wallet signed Auth (POST /v1/eth/decrypt). It needs no bearer
// token. Ciphertext, Context and Batch are as in DecryptRequest.
type EthDecryptRequest struct {
	Ciphertext string            `json:"ciphertext,omitempty"`
	Context    map[string]string `json:"context,omitempty"`
	Batch      []DecryptItem     `json:"batch,omitempty"`
	Auth       EthAuth           `json:"auth"`
}

// EthDomain describes what a wallet signs for this node
// (GET /v1/eth/domain): the EIP-712 domain's fixed name and version, its
// salt (the network id, 0x-prefixed), the audience the message must name
// (this node's id), the primary type and its EIP-712 type string, and the
// longest lifetime the node accepts.
type EthDomain struct {
	Name          string `json:"name"`
	Version       string `json:"version"`
	NetworkID     string `json:"network_id"`
	Salt          string `json:"salt"`
	Audience      string `json:"audience"`
	PrimaryType   string `json:"primary_type"`
	Type          string `json:"type"`
	Action        string `json:"action"`
	MaxTTLSeconds int64  `json:"max_ttl_seconds"`
}
