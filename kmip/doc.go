// Package kmip is keymesh's KMIP front door: a KMIP 1.0–1.4 server
// (binary TTLV over mutual TLS, port 5696 by convention) for off-chain
// databases and storage — MongoDB, MySQL, VMware vSAN, backup software —
// on the same keys, grants, audit log and mirroring as the REST API.
//
// The TTLV codec, the payloads and the batch executor are
// github.com/ovh/kmip-go's; this package wraps them so that the rest of
// keymesh sees domain calls only: New takes a Backend (backend.go), which
// the node implements over its vault, policy, audit log and admin changes
// (node/kmipbackend.go). A KMIP object is a keymesh key; its Unique
// Identifier is the key's name.
//
// # Operations
//
// Discover Versions, Query, Create (AES-256 symmetric keys), Register
// (AES-256, raw or transparent), Locate (by Name, Object Type, State,
// Cryptographic Algorithm and Length, usage mask and stored attributes),
// Check (usage mask), Get, Get Attributes, Get Attribute List, Add, Modify
// and Delete Attribute, Activate, Revoke (with a reason; Key Compromise
// and CA Compromise make the key compromised, any other deactivated),
// Destroy, Encrypt and Decrypt (AES-GCM), and batches of these with the
// ID placeholder. Everything else is answered Operation Not Supported, on
// a connection that stays open. The profile claimed (Query) is the
// Baseline Server over TLS 1.2 of KMIP Profiles 1.2–1.4.
//
// Encrypt generates the 96-bit nonce itself (a client IV is refused), and
// returns the 16-byte tag in Authenticated Encryption Tag for KMIP 1.4, or
// appended to the data for earlier versions (which have no tag field);
// Decrypt takes the tag the same way. Additional data is KMIP 1.4's
// Authenticated Encryption Additional Data.
//
// # Who is calling
//
// The TLS configuration (TLSConfig) requires a client certificate that
// chains to the CAs configured for KMIP; anything else fails the
// handshake. A verified certificate maps to the party kmip:<subject common
// name> (PartyOf), granted like any other party.
//
// # Hostile input
//
// A connection reads one message at a time: the 8-byte header first, a
// request structure of at most Config.MaxMessage bytes (default 64 KiB)
// or the connection is closed with a logged reason; the body within
// Config.ReadTimeout; at most Config.MaxConns connections at once (default
// 128). A message costs its buffer plus what decoding allocates — about
// 6× its size for the worst well-framed input (TestHandleMemoryBound:
// 369 KB for 64 KiB of small integers) — so the request path stays under
// MaxConns × 7 × MaxMessage, ~60 MB with the defaults. A body that does not decode
// is answered Invalid Message; a batch of more than Config.MaxBatch items
// likewise; a panic in a handler General Failure. Handle is the request
// path, shared by the connection loop and the fuzz target.
package kmip
