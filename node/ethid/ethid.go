// Package ethid is keymesh's Ethereum wallet identity: a request that an
// Ethereum account signs, as EIP-712 typed data (or, as a fallback, as an
// EIP-191 personal_sign text), to prove that it is the eth:0x… party a grant
// names; the verification of that signature with go-ethereum's crypto; the
// nonce stores that make every signed request single-use (in memory, or
// durable in the node's store); and the canonical form of the Ethereum
// fields of an envelope context (chain_id, contract).
//
// It sits beside package node/fabricid: a keymesh node verifies wallet
// signatures with it (POST /v1/eth/decrypt), dApp back ends verify with it
// (the HTTP middleware of package chaincode/ethereum), and Go programs that
// hold a wallet key sign with it ([Request.Sign]). Browser wallets sign the
// same typed data ([Request.TypedData], as eth_signTypedData_v4 takes it);
// clients/js signs it with ethers v6.
//
// # What is signed
//
// The EIP-712 domain binds the keymesh network and the chain:
//
//	EIP712Domain(string name,string version,uint256 chainId,bytes32 salt)
//	name    = "keymesh"
//	version = "2"
//	chainId = the chain the dApp runs on (the chain_id of the envelopes' context)
//	salt    = the keymesh network id (32 bytes; /v1/status and /v1/eth/domain show it as hex)
//
// The message is one type:
//
//	KeymeshRequest(address account,string audience,string action,bytes32[] envelopes,uint64 expiry,bytes32 nonce)
//	account   = the signer; it must be the address the signature recovers to
//	audience  = who may accept the request: for a keymesh node its node id
//	            (GET /v1/eth/domain shows it as "audience"); for a dApp back
//	            end what its verifier is configured with (empty by default)
//	action    = what the signature allows: "decrypt" for a node's decrypt route;
//	            for a dApp back end, what its middleware expects (by default
//	            "<METHOD> <path>", e.g. "GET /orders/42")
//	envelopes = SHA-256 of the UTF-8 text form ("km1:…") of each envelope the
//	            request covers, in request order (empty when the action names
//	            no envelope)
//	expiry    = Unix seconds after which the signature is refused
//	nonce     = 32 random bytes; an (account, nonce) pair is accepted once
//
// A verifier never takes the audience, the action, the envelopes or the
// network id from the client: it recomputes them from the request it
// protects, so a signature made for one envelope, batch, action, node,
// network or chain does not verify for any other. The envelope context is
// not signed: the envelope's AAD already binds it, and a wrong context fails
// to decrypt; a node also refuses a context whose chain_id is not the signed
// chain id.
//
// The EIP-191 fallback signs [Request.Text], a fixed rendering of the same
// fields, with the "\x19Ethereum Signed Message:\n" prefix of personal_sign.
//
// A verifier refuses, with one uniform error wrapping [ErrUnauthenticated]:
// a signature that does not recover to account; an expiry in the past (more
// than the allowed clock skew ago) or further ahead than the maximum
// lifetime (10 minutes by default) plus the skew; a chain id outside the
// verifier's allow list, if it has one; and an (account, nonce) pair its
// [NonceStore] has accepted before, which it remembers until the expiry
// (plus the skew) has passed.
//
// # Single use
//
// [Verifier.Check] checks everything but the nonce and has no side effect;
// [Verifier.Spend] records the nonce; [Verifier.Verify] does both. A keymesh
// node spends a request's nonce only once the signer's grants allow at
// least one of the request's envelopes, so a wallet that cannot be served
// fills nothing. The node's nonces are durable ([OpenStoreNonces], in the
// node's store), so a used request stays refused after a restart, and the
// audience binds each request to one node, so it cannot be spent again at
// another node of the same custodian org. Together: each (account, nonce)
// is accepted at most once, by one node, ever within its lifetime. Every
// [NonceStore] bounds what it holds per account ([DefaultPerAccount]) and in
// total ([DefaultCacheSize]), refusing with [ErrBusy]: over its own bound
// only the account that filled it is refused; the total bound, which at a
// node only many granted accounts together can reach, refuses everyone
// until nonces expire (a dApp back end's middleware guards it with
// chaincode/ethereum's WithAllow).
package ethid

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/common/math"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/signer/core/apitypes"

	"github.com/keymesh/keymesh/node/apiv1"
)

// Fixed names of the protocol.
const (
	// DomainName is the EIP-712 domain name.
	DomainName = "keymesh"
	// DomainVersion is the EIP-712 domain version.
	DomainVersion = "2"
	// PrimaryType is the EIP-712 primary type of every request.
	PrimaryType = "KeymeshRequest"
	// ActionDecrypt is the action of a node's decrypt route.
	ActionDecrypt = "decrypt"
)

// Limits of a request.
const (
	// MaxEnvelopes caps the envelopes of one request (a node's batch limit).
	MaxEnvelopes = 1000
	// MaxActionLen caps the action string.
	MaxActionLen = 256
	// MaxAudienceLen caps the audience string.
	MaxAudienceLen = 256
)

// Scheme names how a request is signed.
type Scheme string

// Signature schemes.
const (
	// SchemeEIP712 is eth_signTypedData_v4 over [Request.TypedData].
	SchemeEIP712 Scheme = "eip712"
	// SchemeEIP191 is personal_sign over [Request.Text].
	SchemeEIP191 Scheme = "eip191"
)

// Types is the EIP-712 type set of a request, EIP712Domain included.
var Types = apitypes.Types{
	"EIP712Domain": {
		{Name: "name", Type: "string"},
		{Name: "version", Type: "string"},
		{Name: "chainId", Type: "uint256"},
		{Name: "salt", Type: "bytes32"},
	},
	PrimaryType: {
		{Name: "account", Type: "address"},
		{Name: "audience", Type: "string"},
		{Name: "action", Type: "string"},
		{Name: "envelopes", Type: "bytes32[]"},
		{Name: "expiry", Type: "uint64"},
		{Name: "nonce", Type: "bytes32"},
	},
}

// Domain is where a request is valid: the keymesh network and the chain
// (what the EIP-712 domain binds), and the audience (a field of the signed
// message: the node id of the keymesh node that may accept it).
type Domain struct {
	// NetworkID is the keymesh network id: 64 hex digits, as /v1/status
	// shows it.
	NetworkID string
	// ChainID is the Ethereum chain id.
	ChainID uint64
	// Audience is who may accept the request: a node's id, as
	// GET /v1/eth/domain shows it; printable ASCII, at most MaxAudienceLen
	// bytes; may be empty for a dApp back end's own verifier.
	Audience string
}

func (d Domain) salt() ([32]byte, error) {
	var s [32]byte
	b, err := hex.DecodeString(strings.TrimPrefix(d.NetworkID, "0x"))
	if err != nil || len(b) != len(s) {
		return s, fmt.Errorf("ethid: network id %q is not 64 hex digits", d.NetworkID)
	}
	copy(s[:], b)
	return s, nil
}

// Request is one signed request, as its signer and its verifier both see it.
type Request struct {
	Domain
	Account   common.Address
	Action    string
	Envelopes [][32]byte // SHA-256 of each envelope's text form, in order
	Expiry    uint64     // Unix seconds
	Nonce     [32]byte
}

// EnvelopeDigest returns what a request signs for one envelope: the SHA-256
// of its text form ("km1:…").
func EnvelopeDigest(text string) [32]byte { return sha256.Sum256([]byte(text)) }

// Digests returns the EnvelopeDigest of each text.
func Digests(texts []string) [][32]byte {
	out := make([][32]byte, len(texts))
	for i, t := range texts {
		out[i] = EnvelopeDigest(t)
	}
	return out
}

// NewRequest returns a request of account for action over the envelopes
// (text forms; may be empty), valid until expiry, with a fresh random nonce.
func NewRequest(d Domain, account common.Address, action string, envelopes []string, expiry time.Time) (*Request, error) {
	return newRequest(d, account, action, envelopes, expiry, rand.Reader)
}

func newRequest(d Domain, account common.Address, action string, envelopes []string, expiry time.Time, rnd io.Reader) (*Request, error) {
	r := &Request{Domain: d, Account: account, Action: action, Envelopes: Digests(envelopes)}
	if expiry.Unix() <= 0 {
		return nil, errors.New("ethid: expiry must be after 1970")
	}
	r.Expiry = uint64(expiry.Unix())
	if _, err := io.ReadFull(rnd, r.Nonce[:]); err != nil {
		return nil, fmt.Errorf("ethid: reading a nonce: %w", err)
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	return r, nil
}

// check validates the fields that have a form beyond their Go type.
func (r *Request) check() error {
	if _, err := r.salt(); err != nil {
		return err
	}
	if r.Account == (common.Address{}) {
		return errors.New("ethid: zero account")
	}
	if err := CheckAction(r.Action); err != nil {
		return err
	}
	if err := checkAudience(r.Audience); err != nil {
		return err
	}
	if len(r.Envelopes) > MaxEnvelopes {
		return fmt.Errorf("ethid: %d envelopes, over the limit of %d", len(r.Envelopes), MaxEnvelopes)
	}
	if r.Expiry == 0 || r.Expiry > 1<<62 {
		return errors.New("ethid: expiry out of range")
	}
	return nil
}

// CheckAction reports whether action is 1..MaxActionLen bytes of printable
// ASCII, so that the EIP-191 text of a request has one reading only.
func CheckAction(action string) error {
	if action == "" || len(action) > MaxActionLen {
		return fmt.Errorf("ethid: action must be 1..%d bytes", MaxActionLen)
	}
	if !printable(action) {
		return errors.New("ethid: action must be printable ASCII")
	}
	return nil
}

// checkAudience reports whether audience is at most MaxAudienceLen bytes
// of printable ASCII (it may be empty).
func checkAudience(audience string) error {
	if len(audience) > MaxAudienceLen || !printable(audience) {
		return fmt.Errorf("ethid: audience must be at most %d bytes of printable ASCII", MaxAudienceLen)
	}
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// TypedData returns the request as EIP-712 typed data, ready for
// eth_signTypedData_v4 (marshal it to JSON) or [apitypes.TypedDataAndHash].
func (r *Request) TypedData() apitypes.TypedData {
	salt, _ := r.salt()
	envs := make([]any, len(r.Envelopes))
	for i := range r.Envelopes {
		envs[i] = hexutil.Bytes(r.Envelopes[i][:])
	}
	return apitypes.TypedData{
		Types:       Types,
		PrimaryType: PrimaryType,
		Domain: apitypes.TypedDataDomain{
			Name:    DomainName,
			Version: DomainVersion,
			ChainId: (*math.HexOrDecimal256)(new(big.Int).SetUint64(r.ChainID)),
			Salt:    hexutil.Encode(salt[:]),
		},
		Message: apitypes.TypedDataMessage{
			"account":   r.Account.Hex(),
			"audience":  r.Audience,
			"action":    r.Action,
			"envelopes": envs,
			"expiry":    strconv.FormatUint(r.Expiry, 10),
			"nonce":     hexutil.Bytes(r.Nonce[:]),
		},
	}
}

// Text returns the EIP-191 message of the request: one field per line,
// envelopes numbered from 1.
//
//	keymesh request
//	network: <64 hex digits>
//	chain id: <decimal>
//	audience: <audience>
//	account: 0x<40 lower-case hex digits>
//	action: <action>
//	envelopes: <count>
//	envelope 1: 0x<64 hex digits>
//	expiry: <Unix seconds>
//	nonce: 0x<64 hex digits>
func (r *Request) Text() string {
	var sb strings.Builder
	salt, _ := r.salt()
	fmt.Fprintf(&sb, "keymesh request\nnetwork: %x\nchain id: %d\naudience: %s\naccount: %s\naction: %s\nenvelopes: %d\n",
		salt[:], r.ChainID, r.Audience, strings.ToLower(r.Account.Hex()), r.Action, len(r.Envelopes))
	for i, e := range r.Envelopes {
		fmt.Fprintf(&sb, "envelope %d: 0x%x\n", i+1, e[:])
	}
	fmt.Fprintf(&sb, "expiry: %d\nnonce: 0x%x", r.Expiry, r.Nonce[:])
	return sb.String()
}

// Digest returns the 32-byte hash that scheme signs.
func (r *Request) Digest(scheme Scheme) ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	switch scheme {
	case SchemeEIP712, "":
		h, _, err := apitypes.TypedDataAndHash(r.TypedData())
		if err != nil {
			return nil, fmt.Errorf("ethid: hashing typed data: %w", err)
		}
		return h, nil
	case SchemeEIP191:
		return accounts.TextHash([]byte(r.Text())), nil
	}
	return nil, fmt.Errorf("ethid: unknown scheme %q", scheme)
}

// Sign signs the request with key under scheme, as a wallet does (V is 27
// or 28), and returns it in its wire form. The request's Account must be
// key's address.
func (r *Request) Sign(key *ecdsa.PrivateKey, scheme Scheme) (Auth, error) {
	if scheme == "" {
		scheme = SchemeEIP712
	}
	if crypto.PubkeyToAddress(key.PublicKey) != r.Account {
		return Auth{}, errors.New("ethid: the key is not the request's account")
	}
	h, err := r.Digest(scheme)
	if err != nil {
		return Auth{}, err
	}
	sig, err := crypto.Sign(h, key)
	if err != nil {
		return Auth{}, fmt.Errorf("ethid: signing: %w", err)
	}
	sig[64] += 27
	return r.Auth(scheme, sig), nil
}

// Auth returns the wire form of the request with signature sig.
func (r *Request) Auth(scheme Scheme, sig []byte) Auth {
	return Auth{
		Scheme:    string(scheme),
		ChainID:   r.ChainID,
		Account:   r.Account.Hex(),
		Expiry:    r.Expiry,
		Nonce:     hexutil.Encode(r.Nonce[:]),
		Signature: hexutil.Encode(sig),
	}
}

// Recover returns the address that signed the request with sig under
// scheme. It accepts V as 0/1 or 27/28 and refuses high-S signatures.
func (r *Request) Recover(scheme Scheme, sig []byte) (common.Address, error) {
	if len(sig) != crypto.SignatureLength {
		return common.Address{}, fail("signature is not 65 bytes")
	}
	s := make([]byte, len(sig))
	copy(s, sig)
	if s[64] >= 27 {
		s[64] -= 27
	}
	if !crypto.ValidateSignatureValues(s[64], new(big.Int).SetBytes(s[:32]), new(big.Int).SetBytes(s[32:64]), true) {
		return common.Address{}, fail("invalid signature values")
	}
	h, err := r.Digest(scheme)
	if err != nil {
		return common.Address{}, fail(err.Error())
	}
	pub, err := crypto.SigToPub(h, s)
	if err != nil {
		return common.Address{}, fail("signature does not recover")
	}
	return crypto.PubkeyToAddress(*pub), nil
}

// Auth is the wire form of a signed request: what a client sends besides
// the data the request covers (from which the verifier recomputes the
// audience, the action and the envelope digests). It is the "auth" object
// of POST /v1/eth/decrypt, and the JSON that the HTTP middleware reads: one
// struct, [apiv1.EthAuth], for both.
type Auth = apiv1.EthAuth

// ParseAuth rebuilds the signed request from a, with the network id,
// audience, action and envelopes the verifier computed itself (d's chain id
// is ignored: a's is the one signed), and returns it with the signature and
// scheme.
func ParseAuth(a Auth, d Domain, action string, envelopes []string) (*Request, Scheme, []byte, error) {
	scheme := Scheme(a.Scheme)
	switch scheme {
	case "":
		scheme = SchemeEIP712
	case SchemeEIP712, SchemeEIP191:
	default:
		return nil, "", nil, fail("unknown scheme")
	}
	if !common.IsHexAddress(a.Account) || !strings.HasPrefix(a.Account, "0x") {
		return nil, "", nil, fail("account is not a 0x address")
	}
	nonce, err := hexutil.Decode(a.Nonce)
	if err != nil || len(nonce) != 32 {
		return nil, "", nil, fail("nonce is not 32 bytes of 0x hex")
	}
	sig, err := hexutil.Decode(a.Signature)
	if err != nil || len(sig) != crypto.SignatureLength {
		return nil, "", nil, fail("signature is not 65 bytes of 0x hex")
	}
	if len(envelopes) > MaxEnvelopes {
		return nil, "", nil, fail("too many envelopes")
	}
	r := &Request{
		Domain:    Domain{NetworkID: d.NetworkID, ChainID: a.ChainID, Audience: d.Audience},
		Account:   common.HexToAddress(a.Account),
		Action:    action,
		Envelopes: Digests(envelopes),
		Expiry:    a.Expiry,
	}
	copy(r.Nonce[:], nonce)
	if err := r.check(); err != nil {
		return nil, "", nil, fail(err.Error())
	}
	return r, scheme, sig, nil
}

// Party returns the keymesh party of an address: "eth:0x" and 40
// lower-case hex digits.
func Party(addr common.Address) string { return "eth:" + strings.ToLower(addr.Hex()) }
