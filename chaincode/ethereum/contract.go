// Package ethereum is keymesh's middleware for Ethereum dApp back ends: it
// keeps the sensitive fields of contract calls and events encrypted
// on-chain, and decrypts them only for principals that hold a grant.
//
// Start with [NewContract]: a contract's ABI, its chain id and address, a
// keymesh client (whose token may encrypt) and a field map that tags
// method arguments and event fields with keymesh keys. Then:
//
//   - [Contract.Pack] packs a call with every tagged argument replaced by an
//     envelope (the binary form for a `bytes` argument, the "km1:…" text
//     form for a `string`); [Contract.SealBytes] and [Contract.SealString]
//     seal one field for use with abigen bindings.
//   - [Contract.UnpackLog] and [Contract.Unpack] decode an event or a call's
//     return values and decrypt the tagged fields for a principal, through a
//     [Decrypter]: [TokenDecrypter] (an API token's party),
//     [WalletDecrypter] (an Ethereum key that signs each request) or
//     [SignedDecrypter] (a signature a browser wallet made).
//   - [Contract.SealRecord] encrypts a record kept off-chain and returns the
//     digest to commit on-chain; [Contract.OpenRecord] checks the record
//     against the committed digest before it decrypts anything.
//   - [Authenticator] is an HTTP middleware (net/http and gin) that checks a
//     wallet's signed request and attaches its eth:0x… principal.
//
// Every field is bound to where it lives: its AAD context is
//
//	{"chain_id": "<decimal>", "contract": "0x<40 lower-case hex>", "field": "<name>"}
//
// (plus "record": "<id>" for off-chain record fields), so an envelope copied
// to another chain, contract or field fails to decrypt. A method argument and
// an event field with the same name share the field name, so a value sent in
// a call decrypts from the event that echoes it.
//
// The node rewrites a context's chain_id and contract into these canonical
// forms at encrypt and decrypt (a 0x hex chain id becomes decimal, a
// checksummed address lower case; anything else is refused with
// invalid_request), and so do the decrypters here, so a context built from
// ethers-style values opens what the middleware sealed.
//
// Wallet signatures (EIP-712 typed data, EIP-191 fallback) are defined and
// verified by package node/ethid, which keymesh nodes use too.
package ethereum

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
	"github.com/keymesh/keymesh/vault/envelope"
)

// Errors callers branch on.
var (
	// ErrWrongContract reports a log emitted by another contract than the
	// one the Contract is bound to.
	ErrWrongContract = errors.New("ethereum: log of another contract")
	// ErrFieldType reports a tagged argument or field whose ABI type is not
	// bytes or string, or a plaintext that is not []byte or string.
	ErrFieldType = errors.New("ethereum: tagged field must be bytes or string")
)

// Fields maps a field to the keymesh key its values are encrypted under. A
// key of the map is a bare name ("price"), which tags every method
// argument, event field and return value of that name, or a qualified
// "Method.name" / "Event.name", which tags that one only and wins over the
// bare name.
type Fields map[string]string

// Contract is the middleware for one deployed contract. It is safe for
// concurrent use.
type Contract struct {
	kc      *client.Client
	abi     *abi.ABI
	chainID *big.Int
	address common.Address
	fields  Fields
}

// NewContract returns the middleware for the contract at address on chain
// chainID, whose ABI is parsed. kc encrypts (its token's party needs
// encrypt grants on the keys of fields). Every tagged name must be an
// argument, event field or return value of the ABI, of type bytes or string,
// and not an indexed event field (topics hold only a hash of those).
func NewContract(kc *client.Client, parsed *abi.ABI, chainID *big.Int, address common.Address, fields Fields) (*Contract, error) {
	if kc == nil || parsed == nil || chainID == nil || chainID.Sign() <= 0 || !chainID.IsUint64() {
		return nil, errors.New("ethereum: NewContract needs a client, an ABI and a positive chain id below 2^64")
	}
	c := &Contract{kc: kc, abi: parsed, chainID: new(big.Int).Set(chainID), address: address, fields: Fields{}}
	used := map[string]bool{}
	for name, key := range fields {
		if err := envelope.CheckKeyName(key); err != nil {
			return nil, fmt.Errorf("ethereum: field %q: %w", name, err)
		}
		c.fields[name] = key
	}
	check := func(scope string, args abi.Arguments, event bool) error {
		for _, a := range args {
			q := scope + "." + a.Name
			_, qok := c.fields[q]
			_, bok := c.fields[a.Name]
			if !qok && !bok {
				continue
			}
			if qok {
				used[q] = true
			}
			if a.Type.T != abi.BytesTy && a.Type.T != abi.StringTy {
				return fmt.Errorf("%w: %s is %s", ErrFieldType, q, a.Type.String())
			}
			if event && a.Indexed {
				return fmt.Errorf("ethereum: tagged event field %s is indexed; its value cannot be read back", q)
			}
		}
		return nil
	}
	for name, m := range parsed.Methods {
		if err := check(name, m.Inputs, false); err != nil {
			return nil, err
		}
		if err := check(name, m.Outputs, false); err != nil {
			return nil, err
		}
	}
	for name, e := range parsed.Events {
		if err := check(name, e.Inputs, true); err != nil {
			return nil, err
		}
	}
	// A bare name may tag off-chain record fields only; a qualified one
	// must name something of the ABI.
	for name := range c.fields {
		if !used[name] && strings.Contains(name, ".") {
			return nil, fmt.Errorf("ethereum: tagged field %q is no argument or field of the ABI", name)
		}
	}
	return c, nil
}

// Address returns the contract's address.
func (c *Contract) Address() common.Address { return c.address }

// ChainID returns the chain id the contract's fields are bound to.
func (c *Contract) ChainID() *big.Int { return new(big.Int).Set(c.chainID) }

// ABI returns the contract's ABI.
func (c *Contract) ABI() *abi.ABI { return c.abi }

// Context returns the AAD context of a field of this contract.
func (c *Contract) Context(field string) map[string]string {
	return map[string]string{
		"chain_id": c.chainID.String(),
		"contract": strings.ToLower(c.address.Hex()),
		"field":    field,
	}
}

// keyOf returns the key of name within scope, or "".
func (c *Contract) keyOf(scope, name string) string {
	if k, ok := c.fields[scope+"."+name]; ok {
		return k
	}
	return c.fields[name]
}

// seal encrypts plaintext for field under key, bound to context ctx.
func (c *Contract) seal(ctx context.Context, key string, plaintext []byte, aad map[string]string) (*envelope.Envelope, error) {
	text, _, err := c.kc.EncryptValue(ctx, key, plaintext, aad, "")
	if err != nil {
		return nil, fmt.Errorf("ethereum: encrypting field %q: %w", aad["field"], err)
	}
	env, err := envelope.ParseText(text)
	if err != nil {
		return nil, fmt.Errorf("ethereum: the node returned a malformed envelope: %w", err)
	}
	return env, nil
}

// SealBytes encrypts plaintext as field (under the key the field map gives
// the bare name field) and returns the envelope's binary form, for a
// `bytes` argument of an abigen binding.
func (c *Contract) SealBytes(ctx context.Context, field string, plaintext []byte) ([]byte, error) {
	key := c.fields[field]
	if key == "" {
		return nil, fmt.Errorf("ethereum: field %q is not tagged", field)
	}
	env, err := c.seal(ctx, key, plaintext, c.Context(field))
	if err != nil {
		return nil, err
	}
	return env.Marshal(), nil
}

// SealString is SealBytes for a `string` argument: the envelope's text form.
func (c *Contract) SealString(ctx context.Context, field string, plaintext []byte) (string, error) {
	b, err := c.SealBytes(ctx, field, plaintext)
	if err != nil {
		return "", err
	}
	env, err := envelope.Parse(b)
	if err != nil {
		return "", err
	}
	return env.Text(), nil
}

// EncryptArgs returns args with every tagged argument of method replaced by
// its envelope: []byte (binary form) for a bytes argument, string (text
// form) for a string argument. A tagged argument's plaintext is a []byte or
// a string; the other arguments pass through unchanged.
func (c *Contract) EncryptArgs(ctx context.Context, method string, args ...any) ([]any, error) {
	m, ok := c.abi.Methods[method]
	if !ok {
		return nil, fmt.Errorf("ethereum: no method %q in the ABI", method)
	}
	if len(args) != len(m.Inputs) {
		return nil, fmt.Errorf("ethereum: %s takes %d arguments, got %d", method, len(m.Inputs), len(args))
	}
	out := make([]any, len(args))
	copy(out, args)
	for i, in := range m.Inputs {
		key := c.keyOf(method, in.Name)
		if key == "" {
			continue
		}
		var pt []byte
		switch v := args[i].(type) {
		case []byte:
			pt = v
		case string:
			pt = []byte(v)
		default:
			return nil, fmt.Errorf("%w: plaintext of %s.%s is %T", ErrFieldType, method, in.Name, args[i])
		}
		env, err := c.seal(ctx, key, pt, c.Context(in.Name))
		if err != nil {
			return nil, err
		}
		if in.Type.T == abi.StringTy {
			out[i] = env.Text()
		} else {
			out[i] = env.Marshal()
		}
	}
	return out, nil
}

// Pack returns the call data of method with args, tagged arguments
// encrypted (see EncryptArgs).
func (c *Contract) Pack(ctx context.Context, method string, args ...any) ([]byte, error) {
	enc, err := c.EncryptArgs(ctx, method, args...)
	if err != nil {
		return nil, err
	}
	data, err := c.abi.Pack(method, enc...)
	if err != nil {
		return nil, fmt.Errorf("ethereum: packing %s: %w", method, err)
	}
	return data, nil
}

// UnpackLog decodes log as event and returns its fields by name, indexed
// ones included, with the tagged fields decrypted by d: a []byte field's
// plaintext as []byte, a string field's as string. The log must come from
// the contract's address. A field d cannot decrypt fails the whole call
// with an error naming it (an *client.APIError for a refused item, so
// errors.Is(err, client.ErrNotGranted) and the like work).
func (c *Contract) UnpackLog(ctx context.Context, d Decrypter, event string, log types.Log) (map[string]any, error) {
	ev, ok := c.abi.Events[event]
	if !ok {
		return nil, fmt.Errorf("ethereum: no event %q in the ABI", event)
	}
	if log.Address != c.address {
		return nil, fmt.Errorf("%w: %s, not %s", ErrWrongContract, log.Address.Hex(), c.address.Hex())
	}
	if len(log.Topics) == 0 || log.Topics[0] != ev.ID {
		return nil, fmt.Errorf("ethereum: log is not a %s event", event)
	}
	out := map[string]any{}
	if err := ev.Inputs.UnpackIntoMap(out, log.Data); err != nil {
		return nil, fmt.Errorf("ethereum: unpacking %s: %w", event, err)
	}
	var indexed abi.Arguments
	for _, a := range ev.Inputs {
		if a.Indexed {
			indexed = append(indexed, a)
		}
	}
	if err := abi.ParseTopicsIntoMap(out, indexed, log.Topics[1:]); err != nil {
		return nil, fmt.Errorf("ethereum: unpacking %s topics: %w", event, err)
	}
	names := make([]string, 0, len(ev.Inputs))
	for _, a := range ev.Inputs {
		names = append(names, a.Name)
	}
	if err := c.decryptFields(ctx, d, event, names, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Unpack decodes the return values of method and decrypts the tagged ones
// with d, as UnpackLog does.
func (c *Contract) Unpack(ctx context.Context, d Decrypter, method string, data []byte) ([]any, error) {
	m, ok := c.abi.Methods[method]
	if !ok {
		return nil, fmt.Errorf("ethereum: no method %q in the ABI", method)
	}
	vals, err := m.Outputs.Unpack(data)
	if err != nil {
		return nil, fmt.Errorf("ethereum: unpacking %s: %w", method, err)
	}
	byName := map[string]any{}
	var names []string
	for i, o := range m.Outputs {
		if o.Name == "" {
			continue
		}
		byName[o.Name] = vals[i]
		names = append(names, o.Name)
	}
	if err := c.decryptFields(ctx, d, method, names, byName); err != nil {
		return nil, err
	}
	for i, o := range m.Outputs {
		if o.Name != "" {
			vals[i] = byName[o.Name]
		}
	}
	return vals, nil
}

// decryptFields decrypts the tagged fields among names in vals, in one
// request to d.
func (c *Contract) decryptFields(ctx context.Context, d Decrypter, scope string, names []string, vals map[string]any) error {
	var items []apiv1.DecryptItem
	var tagged []string
	for _, name := range names {
		if c.keyOf(scope, name) == "" {
			continue
		}
		text, err := envelopeText(vals[name])
		if err != nil {
			return fmt.Errorf("ethereum: %s.%s: %w", scope, name, err)
		}
		items = append(items, apiv1.DecryptItem{Ciphertext: text, Context: c.Context(name)})
		tagged = append(tagged, name)
	}
	if len(items) == 0 {
		return nil
	}
	res, err := d.Decrypt(ctx, items)
	if err != nil {
		return fmt.Errorf("ethereum: decrypting %s: %w", scope, err)
	}
	if len(res) != len(items) {
		return fmt.Errorf("ethereum: decrypting %s: %d results for %d fields", scope, len(res), len(items))
	}
	for i, name := range tagged {
		if e := res[i].Error; e != nil {
			return fmt.Errorf("ethereum: decrypting %s.%s: %w", scope, name, &client.APIError{Code: e.Code, Message: e.Message})
		}
		pt := res[i].Plaintext
		if pt == nil {
			pt = []byte{}
		}
		if _, ok := vals[name].(string); ok {
			vals[name] = string(pt)
		} else {
			vals[name] = pt
		}
	}
	return nil
}

// envelopeText returns the text form of an envelope field's value: a
// string already is one; []byte holds the binary form.
func envelopeText(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case []byte:
		env, err := envelope.Parse(x)
		if err != nil {
			return "", err
		}
		return env.Text(), nil
	}
	return "", fmt.Errorf("%w: value is %T", ErrFieldType, v)
}
