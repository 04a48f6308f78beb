// Package envelope holds keymesh's field envelope: the versioned,
// self-describing wire format of one encrypted field, and the AES-256-GCM
// sealing and opening of a field under one key version.
//
// Start with [NewSealer], which takes the 32 bytes of one key version, then
// [Sealer.Seal] and [Sealer.Open]. An [Envelope] travels as bytes
// ([Envelope.Marshal], [Parse]) or as text for JSON and chain storage
// ([Envelope.Text], [ParseText]). This package does not choose keys: which key
// version seals a field (the newest active one, or for endorsement the newest
// one active at the transaction timestamp) and which versions may still open
// it is the caller's decision (the vault's), as is counting encryptions per
// key version and rotating before the limits below are reached.
//
// # Format
//
// The binary form, all integers big-endian:
//
//	[0]         format version, 0x01 (FormatVersion)
//	[1]         mode: 1 random, 2 endorsement, 3 deterministic
//	[2]         n = length of the key name, 1..128
//	[3:3+n]     key name "<namespace>/<name>" (see CheckKeyName)
//	[3+n:7+n]   key version, uint32, at least 1
//	[7+n:19+n]  GCM nonce, 12 bytes
//	[19+n:]     ciphertext || 16-byte GCM tag
//
// The header is everything before the nonce. The text form is TextPrefix
// ("km1:") followed by the binary form in unpadded base64url. [Parse] and
// [ParseText] are strict: they accept exactly one encoding of each envelope
// (re-encoding a parsed envelope gives back the input byte for byte), so an
// envelope cannot be altered without changing its bytes.
//
// # Additional data
//
// Every envelope is authenticated together with
//
//	"keymesh/v1 envelope" || header || network id (32 bytes) || context
//
// where the context is the caller's [Context] (for Fabric: channel,
// chaincode, state key, field path; for Ethereum: chain id, contract, field),
// encoded as a uint16 entry count followed, in bytewise key order, by
// uint16 len(key) || key || uint32 len(value) || value for each entry. An
// envelope moved to another field, contract, key name, key version, mode or
// network fails to open. [Sealer.Open] reports every such failure, like a
// wrong key or a tampered byte, as the one error [ErrDecrypt], which does not
// say which check failed; [Parse] and [ParseText] reject bytes that are not
// well formed with an error wrapping [ErrMalformed] before any key is used.
//
// # Modes
//
// [ModeRandom], the default, draws the 96-bit nonce from a random source.
//
// [ModeEndorsement] derives the nonce as the first 12 bytes of
// HMAC-SHA256(prfKey, 0x02 || uint32 len(txID) || txID || uint32 len(aad) ||
// aad || plaintext), where prfKey = HKDF-SHA256(version key, no salt,
// "keymesh/v1 nonce-prf"). Every endorsing peer's node that seals the same
// field of the same transaction proposal under the same key version produces
// identical bytes, so the endorsements match. Two different transactions
// sealing the same value give different envelopes.
//
// [ModeDeterministic] derives the nonce the same way without a transaction
// id (tag 0x03): equal plaintexts with equal additional data give equal
// envelopes. This supports equality lookups and, by the same token, reveals
// to anyone who sees the envelopes which fields hold equal values. Use it only
// for keys that opted in to it.
//
// In the derived modes, distinct inputs get independent pseudorandom nonces,
// so the collision bound is the same as for random nonces. In every mode a key
// version must seal fewer than 2^32 fields (NIST SP 800-38D); the caller
// counts and rotates. [Sealer.Open] does not check how a nonce was chosen:
// whoever holds the key can write a valid envelope with any nonce.
//
// # Limits
//
// Key names are at most [MaxKeyNameLen] bytes, plaintexts at most
// [MaxPlaintextSize] bytes, transaction ids at most [MaxTxIDLen] bytes, and a
// context has at most 32 entries with keys of 1..128 bytes and values of at
// most 4096 bytes (see [Context.Validate]). The text form of the largest
// envelope is about 1.4 MB; [ParseText] refuses longer input before decoding.
package envelope
