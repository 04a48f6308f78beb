// Package envelope holds keymesh's field envelope: the versioned,
// self-describing wire format of one encrypted field, and the sealing and
// opening of a field under one key version.
//
// Start with [NewSealer], which takes the 32 bytes of one key version, then
// [Sealer.Seal] and [Sealer.Open]. An [Envelope] travels as bytes
// ([Envelope.Marshal], [Parse]) or as text for JSON and chain storage
// ([Envelope.Text], [ParseText]). This package does not choose keys: which key
// version seals a field (the newest active one, or for endorsement the newest
// one active at the transaction timestamp) and which versions may still open
// it is the caller's decision (the vault's), as is counting encryptions per
// key version and sealer and rotating before the limits below are reached.
//
// A caller that seals or opens many fields under one [Context] (the items
// of a batch, the fields of one record) prepares it once with
// [PrepareContext], which checks, sorts and encodes it, and passes the
// [PreparedContext] to [Sealer.SealPrepared], [Sealer.SealPreparedTo] (into
// the caller's Envelope, reusing its storage: no allocation per field) or
// [Sealer.OpenPrepared]. They write and open exactly the envelopes Seal and
// Open do for that Context, with the same errors but the context's own,
// which PrepareContext reports; [PreparedContext.Matches] tells whether a
// Context holds the entries a PreparedContext was prepared from.
//
// # Format
//
// Seal writes format 2 ([FormatVersion]); [Parse] and [Sealer.Open] also
// accept format 1 ([FormatVersion1]), which earlier releases wrote, so that
// every envelope already on a ledger keeps opening. The binary form, all
// integers big-endian:
//
//	[0]         format version: 0x02, or 0x01
//	[1]         mode: 1 random, 2 endorsement, 3 deterministic
//	[2]         n = length of the key name, 1..128
//	[3:3+n]     key name "<namespace>/<name>" (see CheckKeyName)
//	[3+n:7+n]   key version, uint32, at least 1
//
// then, by format and mode:
//
//	format 2, random:        sealer id (8) || GCM nonce (12) || ciphertext || GCM tag (16)
//	format 2, endorsement
//	  and deterministic:     synthetic IV (16) || AES-CTR ciphertext || HMAC tag (16)
//	format 1, every mode:    GCM nonce (12) || ciphertext || GCM tag (16)
//
// The header is everything before the nonce or synthetic IV (in format 2
// random mode it includes the sealer id). The text form is TextPrefix
// ("km1:", the version of the text encoding, not of the format) followed by
// the binary form in unpadded base64url. [Parse] and [ParseText] are strict:
// they accept exactly one encoding of each envelope (re-encoding a parsed
// envelope gives back the input byte for byte), so an envelope cannot be
// altered without changing its bytes.
//
// # Additional data
//
// Every envelope is authenticated together with
//
//	aad = "keymesh/v1 envelope" || header || network id (32 bytes) || context
//
// where the context is the caller's [Context] (for Fabric: channel,
// chaincode, state key, field path; for Ethereum: chain id, contract,
// field), encoded as a uint16 entry count followed, in bytewise key order,
// by uint16 len(key) || key || uint32 len(value) || value for each entry. An
// envelope moved to another field, contract, key name, key version, mode,
// sealer or network fails to open. [Sealer.Open] reports every such failure,
// like a wrong key or a tampered byte, as the one error [ErrDecrypt], which
// does not say which check failed; [Parse] and [ParseText] reject bytes that
// are not well formed with an error wrapping [ErrMalformed] before any key is
// used.
//
// # Keys
//
// Every key is the version key K or derived from it with HKDF-SHA256 (RFC
// 5869, no salt, 32 bytes), by info string:
//
//	K_s   = HKDF(K, "keymesh/v1 random subkey" || network id (32) ||
//	             uint8 len(key name) || key name || uint32 version || sealer id (8))
//	K_iv  = HKDF(K, "keymesh/v2 siv iv")
//	K_enc = HKDF(K, "keymesh/v2 siv enc")
//	K_mac = HKDF(K, "keymesh/v2 siv mac")
//	K_prf = HKDF(K, "keymesh/v1 nonce-prf")    (format 1 only)
//
// # Random mode: one subkey per sealer
//
// [ModeRandom], the default, seals with AES-256-GCM under K_s, the subkey of
// the sealing node's [SealerID], with a 96-bit nonce that the Go
// Cryptographic Module generates ([cipher.NewGCMWithRandomNonce]): the
// nonce construction of NIST SP 800-38D §8.2.2 inside the module boundary,
// and the only GCM encryption GODEBUG=fips140=only allows.
//
// Why a subkey per sealer. SP 800-38D bounds random 96-bit nonces to 2^32
// invocations per key. In a mesh every holder of a key version seals with
// it, and each holder counts only its own encryptions (the vault refuses at
// 2^31): N holders sharing one GCM key would reach N × 2^31, past the bound,
// and the chance of a repeated nonce — which under GCM reveals the XOR of two
// plaintexts and lets the authentication key be recovered — grows as
// (N·2^31)^2 / 2^97 = N^2 · 2^-35. Under per-sealer subkeys each GCM key is
// used by one sealer only, whose counter stops at 2^31 (the vault rotates at
// 2^30), so each key stays within SP 800-38D's 2^32 and its nonce-collision
// probability is at most (2^31)^2 / 2^97 = 2^-35; a repeated nonce under two
// different subkeys is harmless. HKDF-SHA256 is a PRF, so subkeys for
// distinct info strings (the info is unambiguous: fixed-length fields and
// a length-prefixed name) are independent. Sealer ids are 8 random bytes
// per vault: two of N nodes share one with probability below N^2 / 2^65,
// and even then their shared subkey has seen at most 2 × 2^31 = 2^32
// nonces. A vault's store copied to a second running node (a restored backup
// beside the original) shares its sealer id and counts, and so its nonce
// budget: do not run a copy beside the original.
//
// Random envelopes of format 1 carry no sealer id and were sealed under K
// itself; they keep opening under K.
//
// # Derived modes: synthetic IV
//
// [ModeEndorsement] and [ModeDeterministic] derive everything from their
// input, so that equal inputs give equal envelopes:
//
//	SIV = HMAC-SHA256(K_iv, m)[:16]
//	      m = 0x02 || uint32 len(txID) || txID || uint32 len(aad) || aad || plaintext   (endorsement)
//	      m = 0x03 || uint32 len(aad) || aad || plaintext                               (deterministic)
//	C   = AES-256-CTR(K_enc, initial counter block SIV, plaintext)   (the whole block counts, big-endian)
//	T   = HMAC-SHA256(K_mac, 0x04 || uint32 len(aad) || aad || SIV || C)[:16]
//
// Open checks T in constant time before it decrypts; in deterministic mode it
// then derives SIV again from the recovered plaintext and refuses an envelope
// whose SIV differs, so a holder of the key cannot mint a second valid
// envelope of the same value (the same check covers format 1's derived GCM
// nonces). Endorsement envelopes cannot be re-derived at Open, which does not
// know the transaction id; their tag still authenticates them.
//
// Every endorsing peer's node that seals the same field of the same
// transaction proposal under the same key version produces identical bytes,
// so the endorsements match; two different transactions sealing the same
// value give different envelopes. Deterministic mode gives equal envelopes for
// equal plaintexts with equal additional data: it supports equality lookups
// and, by the same token, reveals to anyone who sees the envelopes which
// fields hold equal values. Use it only for keys that opted in to it.
//
// These modes need no nonce budget: the IV is a PRF of the full input, so
// distinct inputs get independent 128-bit IVs (a repeat among q of them has
// probability below q^2 / 2^129, and overlapping counter ranges of messages
// of at most 2^16 blocks below q^2 / 2^111), and equal inputs repeat only the
// identical ciphertext. The vault counts them anyway.
//
// This is an SIV-style deterministic authenticated encryption (compare RFC
// 5297) composed, encrypt-then-MAC, of AES-256 in CTR mode (SP 800-38A),
// HMAC-SHA256 (FIPS 198-1) and HKDF-SHA256 (SP 800-56C), each run by the Go
// Cryptographic Module. The composition is not itself a NIST-approved
// authenticated-encryption mode, and SP 800-38A asks for unique counter
// blocks, which equal inputs repeat by design: FIPS 140-3 validation covers
// the primitives, not this scheme. Format 1's derived modes (AES-GCM with a
// derived nonce, no approved IV construction) are no longer written; they
// still open (see below).
//
// # FIPS 140-3
//
// Seal uses only the module's services: GCM with module-generated nonces,
// AES-CTR, HMAC-SHA256, HKDF-SHA256. Under GODEBUG=fips140=only,
// cipher.NewGCM is refused outright, for opening too; Open therefore
// decrypts every GCM envelope, both formats, through the module-nonce AEAD
// ([cipher.NewGCMWithRandomNonce]), whose Open reads the nonce from the front
// of its input (Open hands it nonce || ciphertext || tag) — decryption with a
// given nonce is allowed in FIPS 140-only mode, only encryption with one is
// not. No re-encryption or upgrade step is needed. So under GODEBUG=fips140=only, on the
// in-tree module and on the certified v1.0.0 one, every mode seals and every
// envelope ever written opens. A non-nil rand given to Seal (known-answer
// tests only) means a caller-chosen nonce, which FIPS 140-only mode refuses;
// so does a non-nil rand given to SealPrepared or SealPreparedTo.
//
// # Limits
//
// Key names are at most [MaxKeyNameLen] bytes, plaintexts at most
// [MaxPlaintextSize] bytes, transaction ids at most [MaxTxIDLen] bytes, and a
// context has at most 32 entries with keys of 1..128 bytes and values of at
// most 4096 bytes (see [Context.Validate]). The text form of the largest
// envelope is about 1.4 MB; [ParseText] refuses longer input before decoding.
package envelope
