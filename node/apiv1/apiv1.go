// Package apiv1 holds the JSON request and response types of keymesh's /v1
// REST API. The server (node/api) and the Go client (node/client) share them,
// so the two cannot drift apart; docs/openapi.yaml describes the same shapes
// for other languages.
//
// Binary values (plaintexts) are standard base64 in JSON, as encoding/json
// encodes []byte. Envelopes are their text form ("km1:" + base64url).
// Durations are Go duration strings ("30s", "24h"); times are RFC 3339.
package apiv1

import "time"

// Limits enforced by the server on every request.
const (
	// MaxBodyBytes caps every request body.
	MaxBodyBytes = 4 << 20
	// MaxBatchItems caps the items of one batch encrypt or decrypt.
	MaxBatchItems = 1000
	// MaxListLimit caps list and tail sizes.
	MaxListLimit = 1000
)

// Error codes: stable strings that clients branch on. Each maps to one HTTP
// status, listed beside it.
const (
	CodeInvalidRequest    = "invalid_request"      // 400
	CodeInvalidCiphertext = "invalid_ciphertext"   // 400: not a well-formed envelope
	CodeDecryptionFailed  = "decryption_failed"    // 400: wrong context, key or tampered envelope
	CodeUnauthenticated   = "unauthenticated"      // 401: missing, unknown, expired or revoked token
	CodeForbidden         = "forbidden"            // 403: the operation needs the admin role
	CodeNotGranted        = "not_granted"          // 403: no grant in force for this party, key and operation
	CodeFIPSUnsupported   = "fips_unsupported"     // 403: --fips: the request needs cryptography outside the FIPS claim (Ethereum wallet signatures)
	CodeNotFound          = "not_found"            // 404
	CodeConflict          = "conflict"             // 409: already exists, or an invalid state transition
	CodeKeyNotUsable      = "key_not_usable"       // 409: key state forbids the operation (pre-active, deactivated, compromised, below minimum decryption version)
	CodeKeyDestroyed      = "key_destroyed"        // 410: the key (or version) was crypto-shredded
	CodeTooLarge          = "too_large"            // 413: body, batch or plaintext over its limit
	CodeUnavailable       = "unavailable"          // 503: the node cannot serve (store or audit log unwritable, shutting down)
	CodeStalePolicy       = "stale_policy"         // 503: a mesh node has not heard from the key's owner org within its staleness bound
	CodeNoSpace           = "insufficient_storage" // 507: the disk is (nearly) full; writes are refused, reads and decrypts go on
	CodeInternal          = "internal"             // 500
	// CodeInvalidCreator is 401: a chaincode token's request names no
	// transaction creator, or one that is malformed, of an MSP the node
	// has no CA for, or whose certificate does not chain to that MSP's CAs
	// (or is expired).
	CodeInvalidCreator = "invalid_creator"
)

// HeaderFabricCreator is the request header that, with a chaincode token,
// names the Fabric transaction creator: the standard base64 of the
// marshalled msp.SerializedIdentity that stub.GetCreator returns. The node
// verifies the certificate against the CAs it is configured with for the
// MSP, and decides as fabric:<MSP>/<subject> and org:<MSP>. Any other
// token sending it is refused with invalid_request.
const HeaderFabricCreator = "X-Keymesh-Fabric-Creator"

// HeaderFabricProposal carries, with a chaincode token, the signed
// proposal of the transaction the chaincode is executing: the standard
// base64 of the marshalled peer.SignedProposal that
// stub.GetSignedProposal returns. The node verifies the creator's
// signature over it, its transaction id and timestamp, and that its
// channel, chaincode and creator MSP are within the token's binding; then
// it decides as the creator. A chaincode token must send it;
// HeaderFabricCreator, if also sent, must name the same creator.
const HeaderFabricProposal = "X-Keymesh-Fabric-Proposal"

// Error is the body of every failed response, and the error of a failed
// batch item.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ErrorResponse wraps Error: {"error":{"code":"…","message":"…"}}.
type ErrorResponse struct {
	Error Error `json:"error"`
}

// Health is the body of /healthz and /readyz.
type Health struct {
	Status string `json:"status"`
	// Reason says why /readyz is not ready, e.g. the disk is full.
	Reason string `json:"reason,omitempty"`
	// StaleOrgs lists, on a mesh node, the orgs it has not heard from
	// within its staleness bound: their keys are refused (stale_policy)
	// until it does. The node is still ready for every other key.
	StaleOrgs []string `json:"stale_orgs,omitempty"`
}

// Status describes the node (GET /v1/status).
type Status struct {
	Node      string    `json:"node"`
	Org       string    `json:"org"`
	NetworkID string    `json:"network_id"`
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	Ready     bool      `json:"ready"`
	Keys      int       `json:"keys"`
	Grants    int       `json:"grants"`
	Tokens    int       `json:"tokens"`
	AuditHead uint64    `json:"audit_head"`
	Principal string    `json:"principal"`
	Role      string    `json:"role"`
	// Mesh is set on a node that belongs to a network.
	Mesh *NetworkStatus `json:"mesh,omitempty"`
	// FIPS is the node's FIPS 140-3 mode.
	FIPS FIPSStatus `json:"fips"`
}

// FIPSStatus describes the Go Cryptographic Module the node runs on
// (crypto/fips140). keymesh is not itself a validated module.
type FIPSStatus struct {
	// Mode is "only" (GODEBUG=fips140=only: the module in FIPS 140-3 mode
	// and every non-approved algorithm refused), "on" (FIPS 140-3 mode,
	// non-approved algorithms still allowed) or "off".
	Mode string `json:"mode"`
	// Module is the module version, crypto/fips140.Version(): "v1.0.0"
	// (GOFIPS140=v1.0.0 or certified), "v1.26.0" (GOFIPS140=v1.26.0 or
	// inprocess), or "latest", the toolchain's own tree, which is not a
	// frozen module.
	Module string `json:"module"`
	// Required reports that the node was started with --fips (fips: true),
	// so it would not have started outside FIPS 140-only mode.
	Required bool `json:"required"`
	// Disabled lists what --fips turns away because it needs cryptography
	// outside the FIPS claim, each answered 403 fips_unsupported: today
	// FIPSDisabledEthWallets. Empty (and absent from the JSON) without
	// --fips.
	Disabled []string `json:"disabled,omitempty"`
}

// FIPSDisabledEthWallets, in FIPSStatus.Disabled, says that the node
// refuses Ethereum wallet authentication (eth: parties): GET /v1/eth/domain
// and POST /v1/eth/decrypt answer 403 fips_unsupported before any
// secp256k1 or Keccak-256 computation.
const FIPSDisabledEthWallets = "eth_wallets"

// CreateKeyRequest creates a key (POST /v1/keys). Deterministic and
// Exportable are fixed for the life of the key. State is "active" (default)
// or "pre-active".
type CreateKeyRequest struct {
	Name          string `json:"name"`
	Deterministic bool   `json:"deterministic,omitempty"`
	Exportable    bool   `json:"exportable,omitempty"`
	State         string `json:"state,omitempty"`
}

// Key describes a key and its versions; it never carries key material.
type Key struct {
	Name                 string       `json:"name"`
	Owner                string       `json:"owner"`
	State                string       `json:"state"`
	Deterministic        bool         `json:"deterministic"`
	Exportable           bool         `json:"exportable"`
	Created              time.Time    `json:"created"`
	LatestVersion        uint32       `json:"latest_version"`
	MinDecryptionVersion uint32       `json:"min_decryption_version"`
	Versions             []KeyVersion `json:"versions"`
	// Holders and PendingAcks are set on a mesh node: the nodes (sign keys)
	// that hold or held the key, and for a destroyed key those that have not
	// acknowledged the destroy yet.
	Holders     []string `json:"holders,omitempty"`
	PendingAcks []string `json:"pending_acks,omitempty"`
	// EraseError, for a destroyed key, says why erasing it from this
	// node's disk did not complete; the key is destroyed either way.
	EraseError string `json:"erase_error,omitempty"`
	// KMIP is set for a key managed over KMIP.
	KMIP *KeyKMIP `json:"kmip,omitempty"`
}

// KeyKMIP is the KMIP side of a key: its KMIP Unique Identifier (the key
// name), the kmip: party that created it and its KMIP Name attributes.
type KeyKMIP struct {
	UID   string   `json:"uid"`
	Owner string   `json:"owner"`
	Names []string `json:"names,omitempty"`
}

// KeyVersion describes one version of a key.
type KeyVersion struct {
	Version     uint32    `json:"version"`
	Created     time.Time `json:"created"`
	ActivateAt  time.Time `json:"activate_at"`
	Encryptions uint64    `json:"encryptions"`
	Destroyed   bool      `json:"destroyed"`
}

// KeyList is the body of GET /v1/keys: one page of keys in name order.
// Next, when set, is the "after" of the following page.
type KeyList struct {
	Keys []Key  `json:"keys"`
	Next string `json:"next,omitempty"`
}

// Listing pages (GET /v1/keys and GET /v1/grants): "?limit=" items per
// page (DefaultPageLimit when absent, at most MaxPageLimit) and
// "?after=" the Next of the previous page.
const (
	DefaultPageLimit = 1000
	MaxPageLimit     = 10000
)

// RotateKeyRequest adds a version (POST /v1/keys/{ns}/{name}/rotate).
// ActivateIn delays the new version's activation (the propagation grace);
// empty means the node's configured grace.
type RotateKeyRequest struct {
	ActivateIn string `json:"activate_in,omitempty"`
}

// SetKeyStateRequest moves a key through its lifecycle
// (POST /v1/keys/{ns}/{name}/state): "active", "deactivated" or
// "compromised". Destroying has its own route.
type SetKeyStateRequest struct {
	State string `json:"state"`
}

// KeyConfigRequest changes a key's minimum decryption version
// (POST /v1/keys/{ns}/{name}/config). Envelopes under older versions are
// refused; the minimum can be raised and lowered again while the versions
// still exist.
type KeyConfigRequest struct {
	MinDecryptionVersion uint32 `json:"min_decryption_version"`
}

// DestroyKeyRequest crypto-shreds a key (POST /v1/keys/{ns}/{name}/destroy).
// Confirm must repeat the key's full name.
type DestroyKeyRequest struct {
	Confirm string `json:"confirm"`
}

// EncryptRequest encrypts one value, or a batch under one key
// (POST /v1/encrypt). Mode is "random" (default), "endorsement" (a
// chaincode token with a verified signed proposal only: tx id and time are
// the proposal's, so TxID and TxTime may be omitted and, if given, must
// match) or "deterministic" (keys created deterministic only). With
// Batch set, Plaintext and Context at the top level must be empty.
type EncryptRequest struct {
	Key       string            `json:"key"`
	Plaintext []byte            `json:"plaintext,omitempty"`
	Context   map[string]string `json:"context,omitempty"`
	Mode      string            `json:"mode,omitempty"`
	TxID      string            `json:"tx_id,omitempty"`
	TxTime    *time.Time        `json:"tx_time,omitempty"`
	Batch     []EncryptItem     `json:"batch,omitempty"`
}

// EncryptItem is one item of a batch encrypt; TxID and TxTime apply to
// endorsement mode.
type EncryptItem struct {
	Plaintext []byte            `json:"plaintext"`
	Context   map[string]string `json:"context,omitempty"`
	TxID      string            `json:"tx_id,omitempty"`
	TxTime    *time.Time        `json:"tx_time,omitempty"`
}

// EncryptResponse answers EncryptRequest. For a batch only Batch is set, in
// request order; a failed item carries Error and the others still succeed.
type EncryptResponse struct {
	Ciphertext string          `json:"ciphertext,omitempty"`
	Key        string          `json:"key"`
	Version    uint32          `json:"version,omitempty"`
	Batch      []EncryptResult `json:"batch,omitempty"`
}

// EncryptResult is one item of a batch encrypt response.
type EncryptResult struct {
	Ciphertext string `json:"ciphertext,omitempty"`
	Version    uint32 `json:"version,omitempty"`
	Error      *Error `json:"error,omitempty"`
}

// DecryptRequest decrypts one envelope, or a batch (POST /v1/decrypt). The
// context must equal the one given at encryption.
type DecryptRequest struct {
	Ciphertext string            `json:"ciphertext,omitempty"`
	Context    map[string]string `json:"context,omitempty"`
	Batch      []DecryptItem     `json:"batch,omitempty"`
}

// DecryptItem is one item of a batch decrypt.
type DecryptItem struct {
	Ciphertext string            `json:"ciphertext"`
	Context    map[string]string `json:"context,omitempty"`
}

// DecryptResponse answers DecryptRequest. For a batch only Batch is set.
type DecryptResponse struct {
	Plaintext []byte          `json:"plaintext,omitempty"`
	Key       string          `json:"key,omitempty"`
	Version   uint32          `json:"version,omitempty"`
	Batch     []DecryptResult `json:"batch,omitempty"`
}

// DecryptResult is one item of a batch decrypt response. A missing
// plaintext with no error is the empty plaintext.
type DecryptResult struct {
	Plaintext []byte `json:"plaintext,omitempty"`
	Error     *Error `json:"error,omitempty"`
}

// CreateGrantRequest grants a party operations on a key (POST /v1/grants).
// Ops lists "encrypt" and/or "decrypt".
type CreateGrantRequest struct {
	Key       string     `json:"key"`
	Party     string     `json:"party"`
	Ops       []string   `json:"ops"`
	NotBefore *time.Time `json:"not_before,omitempty"`
	NotAfter  *time.Time `json:"not_after,omitempty"`
	Custodian string     `json:"custodian,omitempty"`
}

// Grant describes a grant and whether it is in force now. Status is
// "in force", "revoked", "expired" or "not yet valid".
type Grant struct {
	ID        string     `json:"id"`
	Key       string     `json:"key"`
	Party     string     `json:"party"`
	Ops       []string   `json:"ops"`
	NotBefore *time.Time `json:"not_before,omitempty"`
	NotAfter  *time.Time `json:"not_after,omitempty"`
	Custodian string     `json:"custodian,omitempty"`
	Issuer    string     `json:"issuer"`
	IssuedAt  time.Time  `json:"issued_at"`
	InForce   bool       `json:"in_force"`
	Status    string     `json:"status"`
}

// GrantList is the body of GET /v1/grants: one page of grants in (key,
// party, issued_at, id) order. Next, when set, is the "after" (an opaque
// cursor) of the following page.
type GrantList struct {
	Grants []Grant `json:"grants"`
	Next   string  `json:"next,omitempty"`
}

// RevokeRequest ends every grant of a party on a key (POST /v1/grants/revoke).
type RevokeRequest struct {
	Key   string `json:"key"`
	Party string `json:"party"`
}

// Revocation answers RevokeRequest; Ended counts the grants it ended.
type Revocation struct {
	ID       string    `json:"id"`
	Key      string    `json:"key"`
	Party    string    `json:"party"`
	Issuer   string    `json:"issuer"`
	IssuedAt time.Time `json:"issued_at"`
	Ended    int       `json:"ended"`
}

// CreateTokenRequest mints an API token (POST /v1/tokens). Role is "client"
// (default), "admin" or "chaincode" (a Fabric chaincode: each request names
// its transaction creator in HeaderFabricCreator, and grants are decided
// for the creator, not for the token's party); TTL is a Go duration,
// "never" (or "0") for no expiry, and empty for the node's default: 90 days
// (token_ttl) for client and chaincode tokens, no expiry for admin tokens.
//
// A chaincode token must name the Fabric channels, the chaincode and the
// MSPs of the transactions it will present (Channels, Chaincode, MSPs);
// other roles take none.
type CreateTokenRequest struct {
	Party     string   `json:"party"`
	Role      string   `json:"role,omitempty"`
	Label     string   `json:"label,omitempty"`
	TTL       string   `json:"ttl,omitempty"`
	Channels  []string `json:"channels,omitempty"`
	Chaincode string   `json:"chaincode,omitempty"`
	MSPs      []string `json:"msps,omitempty"`
}

// Token describes a token; it never carries the secret.
type Token struct {
	ID      string     `json:"id"`
	Party   string     `json:"party"`
	Role    string     `json:"role"`
	Label   string     `json:"label,omitempty"`
	Created time.Time  `json:"created"`
	Expires *time.Time `json:"expires,omitempty"`
	Revoked bool       `json:"revoked"`
	// Channels, Chaincode and MSPs are a chaincode token's binding.
	Channels  []string `json:"channels,omitempty"`
	Chaincode string   `json:"chaincode,omitempty"`
	MSPs      []string `json:"msps,omitempty"`
}

// CreatedToken answers CreateTokenRequest. Token is the secret: it is shown
// this once and stored only hashed.
type CreatedToken struct {
	Token string `json:"token"`
	Info  Token  `json:"info"`
}

// TokenList is the body of GET /v1/tokens.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}

// AuditEntry is one entry of the hash-chained audit log.
type AuditEntry struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Principal string    `json:"principal"`
	Action    string    `json:"action"`
	Key       string    `json:"key,omitempty"`
	Version   uint32    `json:"version,omitempty"`
	Outcome   string    `json:"outcome"`
	Reason    string    `json:"reason,omitempty"`
	Count     int       `json:"count"`
	Prev      string    `json:"prev"`
	Hash      string    `json:"hash"`
}

// AuditList is the body of GET /v1/audit.
type AuditList struct {
	Entries []AuditEntry `json:"entries"`
}

// AuditVerifyJob is a verification of the audit log running in the
// background (POST /v1/audit/verify/jobs, GET /v1/audit/verify/jobs/{id}):
// State is "running", "done" (Result holds the answer POST
// /v1/audit/verify would give) or "failed" (the store failed; Error says
// how). Checked counts the entries verified so far.
type AuditVerifyJob struct {
	ID         string       `json:"id"`
	State      string       `json:"state"`
	Checked    uint64       `json:"checked"`
	StartedAt  time.Time    `json:"started_at"`
	FinishedAt *time.Time   `json:"finished_at,omitempty"`
	Result     *AuditVerify `json:"result,omitempty"`
	Error      string       `json:"error,omitempty"`
}

// AuditVerify is the result of POST /v1/audit/verify. When OK is false, Seq
// and Reason say where the chain breaks.
type AuditVerify struct {
	OK      bool   `json:"ok"`
	Entries uint64 `json:"entries"`
	Head    string `json:"head"`
	Seq     uint64 `json:"seq,omitempty"`
	Reason  string `json:"reason,omitempty"`
}
