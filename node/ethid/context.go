package ethid

import (
	"fmt"
	"maps"
	"math/bits"
	"strconv"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/vault/envelope"
)

// The Ethereum fields of an envelope context, and their canonical forms:
//
//	"chain_id": a positive decimal integer below 2^64, without leading zeros ("1337")
//	"contract": "0x" and 40 lower-case hex digits
//
// The AAD binds the context byte for byte, so "0x539" and "1337", or a
// checksummed and a lower-case address, would be different contexts: an
// envelope sealed under one form never opens under the other. A node
// therefore rewrites both fields into their canonical form at encrypt and
// at decrypt (CanonicalContext), and refuses, with 400 invalid_request
// naming the expected form, a value that is no chain id or no address.
const (
	ContextChainID  = "chain_id"
	ContextContract = "contract"
)

// ContextError is a context field that has no canonical Ethereum form. It
// wraps envelope.ErrInvalidContext. Its message quotes the (public) value,
// shortened.
type ContextError struct {
	Item   int // batch item index, or -1 for a single request
	Key    string
	Value  string
	Expect string
}

func (e *ContextError) Error() string {
	v := e.Value
	if len(v) > 80 {
		v = v[:80] + "…"
	}
	where := ""
	if e.Item >= 0 {
		where = "batch item " + strconv.Itoa(e.Item) + ": "
	}
	return fmt.Sprintf("%scontext %q must be %s; got %q", where, e.Key, e.Expect, v)
}

// Unwrap returns envelope.ErrInvalidContext.
func (e *ContextError) Unwrap() error { return envelope.ErrInvalidContext }

const (
	expectChainID  = `a chain id: a positive decimal integer below 2^64 such as "1337" (0x hex such as "0x539" is accepted and rewritten as decimal)`
	expectContract = `a contract address: "0x" and 40 hex digits, lower-case, upper-case or with a valid EIP-55 checksum (rewritten in lower case)`
)

// CanonicalChainID returns the canonical (decimal) form of a chain id given
// in decimal or as 0x hex, or false.
func CanonicalChainID(s string) (string, bool) {
	id, ok := ParseChainID(s)
	if !ok {
		return "", false
	}
	return strconv.FormatUint(id, 10), true
}

// ParseChainID parses a positive chain id below 2^64, given in decimal or
// as 0x hex.
func ParseChainID(s string) (uint64, bool) {
	base, digits := 10, s
	if rest, ok := strings.CutPrefix(s, "0x"); ok {
		base, digits = 16, rest
	}
	if digits == "" || len(digits) > 64 {
		return 0, false
	}
	var id uint64
	for i := 0; i < len(digits); i++ {
		d, ok := digit(digits[i], base)
		if !ok {
			return 0, false
		}
		hi, lo := bits.Mul64(id, uint64(base))
		if hi != 0 {
			return 0, false
		}
		var carry uint64
		id, carry = bits.Add64(lo, uint64(d), 0)
		if carry != 0 {
			return 0, false
		}
	}
	return id, id > 0
}

func digit(c byte, base int) (int, bool) {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0'), true
	case base == 16 && c >= 'a' && c <= 'f':
		return int(c-'a') + 10, true
	case base == 16 && c >= 'A' && c <= 'F':
		return int(c-'A') + 10, true
	}
	return 0, false
}

// CanonicalAddress returns the canonical (lower-case) form of a 0x
// address, or false. Mixed case must be a valid EIP-55 checksum, so that a
// mistyped address is refused rather than silently bound.
func CanonicalAddress(s string) (string, bool) {
	hex, ok := strings.CutPrefix(s, "0x")
	if !ok || len(hex) != 2*common.AddressLength {
		return "", false
	}
	lower, upper := false, false
	for i := 0; i < len(hex); i++ {
		c := hex[i]
		switch {
		case c >= '0' && c <= '9':
		case c >= 'a' && c <= 'f':
			lower = true
		case c >= 'A' && c <= 'F':
			upper = true
		default:
			return "", false
		}
	}
	if lower && upper && common.HexToAddress(s).Hex() != s {
		return "", false
	}
	return strings.ToLower(s), true
}

// CanonicalContext returns ctx with its chain_id and contract fields, if
// present, in canonical form: ctx itself when they already are (or are
// absent), else a copy. A field that is no chain id or address fails with
// a *ContextError for item.
func CanonicalContext(ctx map[string]string, item int) (map[string]string, error) {
	out, copied := ctx, false
	for _, f := range [...]struct {
		key, expect string
		canon       func(string) (string, bool)
	}{{ContextChainID, expectChainID, CanonicalChainID}, {ContextContract, expectContract, CanonicalAddress}} {
		v, ok := ctx[f.key]
		if !ok {
			continue
		}
		c, ok := f.canon(v)
		if !ok {
			return nil, &ContextError{Item: item, Key: f.key, Value: v, Expect: f.expect}
		}
		if c == v {
			continue
		}
		if !copied {
			out, copied = maps.Clone(ctx), true
		}
		out[f.key] = c
	}
	return out, nil
}

// CanonicalizeEncrypt rewrites the contexts of encrypt items in place (see
// CanonicalContext); batch says whether errors name the item.
func CanonicalizeEncrypt(items []apiv1.EncryptItem, batch bool) error {
	for i := range items {
		c, err := CanonicalContext(items[i].Context, itemIndex(i, batch))
		if err != nil {
			return err
		}
		items[i].Context = c
	}
	return nil
}

// CanonicalizeDecrypt rewrites the contexts of decrypt items in place (see
// CanonicalContext); batch says whether errors name the item.
func CanonicalizeDecrypt(items []apiv1.DecryptItem, batch bool) error {
	for i := range items {
		c, err := CanonicalContext(items[i].Context, itemIndex(i, batch))
		if err != nil {
			return err
		}
		items[i].Context = c
	}
	return nil
}

func itemIndex(i int, batch bool) int {
	if batch {
		return i
	}
	return -1
}
