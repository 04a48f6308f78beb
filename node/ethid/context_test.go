package ethid

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/keymesh/keymesh/vault/envelope"
)

func TestCanonicalContext(t *testing.T) {
	const lower = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
	const checksummed = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
	for _, tc := range []struct {
		name string
		in   map[string]string
		want map[string]string
	}{
		{"ok/canonical", map[string]string{"chain_id": "1337", "contract": lower, "field": "price"}, nil},
		{"ok/no-eth-fields", map[string]string{"channel": "c", "field": "x"}, nil},
		{"ok/nil", nil, nil},
		{"ok/hex-chain-id", map[string]string{"chain_id": "0x539"}, map[string]string{"chain_id": "1337"}},
		{"ok/hex-chain-id-upper-digits", map[string]string{"chain_id": "0xAA36A7"}, map[string]string{"chain_id": "11155111"}},
		{"ok/leading-zeros", map[string]string{"chain_id": "001"}, map[string]string{"chain_id": "1"}},
		{"ok/max", map[string]string{"chain_id": "18446744073709551615"}, nil},
		{"ok/checksummed", map[string]string{"contract": checksummed, "field": "f"}, map[string]string{"contract": lower, "field": "f"}},
		{"ok/upper-case", map[string]string{"contract": "0x" + strings.ToUpper(lower[2:])}, map[string]string{"contract": lower}},
		{"fail/zero", map[string]string{"chain_id": "0"}, nil},
		{"fail/overflow", map[string]string{"chain_id": "18446744073709551616"}, nil},
		{"fail/hex-overflow", map[string]string{"chain_id": "0x10000000000000000"}, nil},
		{"fail/negative", map[string]string{"chain_id": "-1"}, nil},
		{"fail/space", map[string]string{"chain_id": " 1"}, nil},
		{"fail/empty-hex", map[string]string{"chain_id": "0x"}, nil},
		{"fail/name", map[string]string{"chain_id": "mainnet"}, nil},
		{"fail/bad-checksum", map[string]string{"contract": "0x5FbDB2315678afecb367f032d93F642f64180aA3"}, nil},
		{"fail/short-address", map[string]string{"contract": lower[:41]}, nil},
		{"fail/no-0x", map[string]string{"contract": lower[2:]}, nil},
		{"fail/not-hex", map[string]string{"contract": "0x" + strings.Repeat("g", 40)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := maps.Clone(tc.in)
			got, err := CanonicalContext(in, -1)
			if strings.HasPrefix(tc.name, "fail/") {
				var ce *ContextError
				if !errors.Is(err, envelope.ErrInvalidContext) || !errors.As(err, &ce) || !strings.Contains(err.Error(), "must be") {
					t.Fatalf("CanonicalContext(%v) error = %v, want a ContextError naming the expected form", tc.in, err)
				}
				return
			}
			want := tc.want
			if want == nil {
				want = tc.in
			}
			if err != nil || !maps.Equal(got, want) {
				t.Fatalf("CanonicalContext(%v) = %v, %v; want %v", tc.in, got, err, want)
			}
			if !maps.Equal(in, tc.in) {
				t.Errorf("CanonicalContext modified its input: %v", in)
			}
		})
	}
}
