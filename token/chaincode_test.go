package token

import (
	"testing"

	"github.com/keymesh/keymesh/kv"
)

// TestChaincodeRoleRoundTrip creates a chaincode token, authenticates it,
// and reopens the registry to check that the role survives the store.
func TestChaincodeRoleRoundTrip(t *testing.T) {
	store := kv.NewMem()
	r := openReg(t, store, WithClock(newClock().now))
	secret, tok := mustCreate(t, r, "token:cc-asset", RoleChaincode, "asset-transfer", 0)
	if tok.Role != RoleChaincode {
		t.Fatalf("Create(chaincode).Role = %v, want %v", tok.Role, RoleChaincode)
	}
	got, err := r.Authenticate(secret)
	if err != nil || got.Role != RoleChaincode {
		t.Fatalf("Authenticate() = %+v, %v, want role chaincode", got, err)
	}
	r2 := openReg(t, store)
	got, err = r2.Authenticate(secret)
	if err != nil || got.Role != RoleChaincode || got.Party != "token:cc-asset" {
		t.Fatalf("reopened Authenticate() = %+v, %v, want role chaincode for token:cc-asset", got, err)
	}
}
