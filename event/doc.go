// Package event holds the mesh's wire formats: the signed [Event] that
// carries every change between nodes, the payload of each [Kind], and the
// liveness [Checkpoint]. What defines a network and its members — the
// genesis, the admin-signed node records and deregistrations that travel as
// payloads here — is package network's. It is pure: no I/O, no clock, no
// libp2p, no storage.
//
// Start with [Sign] to issue an event and [Parse] then [Event.Verify] to
// receive one; decode its payload with the kind's function ([DecodeGrant],
// [DecodeKeyVersion], [network.DecodeNodeRecord], …). A network starts from
// [network.LoadGenesis]; [network.Genesis.ID] is its [network.NetworkID].
//
// # Trust model: who signs what
//
//   - An org admin (an Ed25519 key listed for the org in the genesis) signs
//     node records and deregistrations ([network.SignNodeRecord], [network.SignDeregister]).
//     The signature covers the network id, so a record is valid in one
//     network only. [network.Genesis.VerifyNodeRecord] checks that the signer is an
//     admin of the record's org and that the signature holds.
//   - A node signs every event it issues with its own Ed25519 key (the key
//     of its libp2p identity, named by [network.NodeKey]). [Event.Verify] checks
//     only that signature: whether the issuer is registered, whether its org
//     may do what the event does (only the owner org's nodes grant, revoke,
//     rotate and destroy a key), and whether the sequence number is fresh is
//     decided by the caller against the folded state.
//   - Key material inside events is wrapped by package vault/transport for
//     a named recipient node; the event's signature is what authenticates
//     the sender of a wrapped key.
//
// This package checks form, not authority: a well-formed, correctly signed
// event may still be unauthorised.
//
// # Event format
//
// The binary form, all integers big-endian:
//
//	[0]          format version, 0x02 (FormatVersion; version 1 logs are
//	             refused with ErrOldFormat)
//	[1:33]       network id (network.Genesis.ID)
//	[33:65]      issuer: the node's Ed25519 public key
//	[65:73]      seq, uint64, from 1: the issuer's sequence number
//	[73:105]     prev: the ID of the issuer's event seq-1; zero iff seq = 1
//	[105:113]    lamport, uint64, ≥ seq: 1 + the largest lamport of prev
//	             and of the dependencies (verified by the receiver)
//	[113:121]    time, int64 Unix nanoseconds, > 0
//	[121]        kind, 1..10 (see Kind; values are pinned)
//	[122]        d = number of dependencies, at most MaxDeps
//	[123:123+72d] d × (issuer 32 || seq uint64 || id 32), sorted by issuer,
//	             no issuer twice, never the event's own issuer
//	then         n = payload length, uint32, at most MaxPayload (512 KiB)
//	then         payload: the kind's JSON
//	then         signature, 64 bytes
//	then         attachment count, uint16, at most MaxWraps
//	then         per attachment: length uint32 (1..MaxWrapBlob) || bytes
//
// signature = Ed25519(issuer, "keymesh/v2 event\x00" || every byte before
// the signature).
//
// Prev makes each issuer's events a hash chain, and Deps name events of
// other issuers that this one follows; together they give every event a
// causal past that its signature fixes. [Checkpoint] is the signed
// liveness beacon nodes gossip beside events (first byte 0xC2).
//
// Attachments are not signed: they are the wrapped key copies of a
// KeyVersion or KeyShare, each named in the signed payload by its SHA-256
// (Wrap.Digest). That lets every node prune them once a key is destroyed —
// crypto-shredding reaches the event logs too — while the event keeps its
// id and its signature still verifies. A relay that strips attachments
// cannot forge them; a node that received an event without the copy meant
// for it takes a fuller copy of the same event when one arrives.
// [Parse] is strict: it accepts only what [Event.Marshal] writes for a valid
// event, so Parse(b).Marshal() equals b; it does not verify the signature.
// [Event.ID] is the SHA-256 of the signed part and the signature.
//
// # Payloads
//
// Payloads are JSON, written with encoding/json's json.Marshal of the
// kind's type (policy.Grant and policy.Revocation for grants and revocations).
// Field names are the Go field names; []byte is standard base64; [network.NodeKey],
// admin keys and signatures are lower-case hex. Each DecodeXxx function is
// strict: the payload must be exactly what json.Marshal writes for the value
// it decodes to (so unknown, missing, repeated or re-cased fields,
// whitespace and trailing data are all rejected and every payload has one
// encoding), within a size bound, and the value must validate.
//
// # Node record and deregistration signatures
//
// Admin signatures are over a domain label, the network id and a canonical
// length-prefixed binary encoding of every other field; see [network.NodeRecord] and
// [network.Deregister]. The JSON encoding is not what is signed, so re-encoding a
// record cannot change its meaning.
//
// # network.Genesis and network id
//
// The genesis is a JSON file (see [network.Genesis]). Its id is a SHA-256 over a
// domain label, the network name, the creation time and the orgs with their
// admin keys, each sorted (see [network.Genesis.ID]); bootstrap addresses are not
// part of it, so they can change without forking the network.
//
// # Org admin key file
//
// [network.MarshalAdminKey] and [network.ParseAdminKey] read and write an org admin's private
// key as a PKCS #8 "PRIVATE KEY" PEM block, as OpenSSL writes Ed25519 keys.
// Public keys have one text form everywhere (genesis, CLI output, JSON): 64
// lower-case hex digits ([network.ParseKey]).
package event
