package token

import (
	"reflect"
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

// TestChaincodeBindingRoundTrip: a chaincode token's channels, chaincode
// and MSPs are stored (record version 2), survive a reopen, and are
// normalised; a binding on another role, or an incomplete one, is refused.
func TestChaincodeBindingRoundTrip(t *testing.T) {
	store := kv.NewMem()
	r := openReg(t, store, WithClock(newClock().now))
	b, err := NewBinding([]string{"ch2", "ch1", "ch1"}, "asset", []string{"Org2MSP", "Org1MSP"})
	if err != nil {
		t.Fatal(err)
	}
	secret, tok, err := r.Create("token:cc-asset", RoleChaincode, "", 0, WithBinding(b))
	if err != nil {
		t.Fatalf("Create(binding) = %v", err)
	}
	want := Binding{Channels: "ch1,ch2", Chaincode: "asset", MSPs: "Org1MSP,Org2MSP"}
	if !reflect.DeepEqual(tok.Binding, want) {
		t.Fatalf("Create().Binding = %+v, want %+v", tok.Binding, want)
	}
	got, err := openReg(t, store).Authenticate(secret)
	if err != nil || !reflect.DeepEqual(got.Binding, want) {
		t.Fatalf("reopened Authenticate() = %+v, %v, want binding %+v", got, err, want)
	}
	if !got.Binding.Allows("ch2", "asset", "Org1MSP") || got.Binding.Allows("ch3", "asset", "Org1MSP") ||
		got.Binding.Allows("ch1", "other", "Org1MSP") || got.Binding.Allows("ch1", "asset", "Org3MSP") {
		t.Errorf("Allows() does not match the binding %v", got.Binding)
	}
	rec, ok := (*r.tokens.Load())[tok.ID]
	if !ok {
		t.Fatal("token not in snapshot")
	}
	enc := encodeRecord(rec)
	if enc[0] != recordV2 {
		t.Errorf("record version = %d, want %d", enc[0], recordV2)
	}
	if _, err := decodeRecord(append(enc, 0)); err == nil {
		t.Error("decodeRecord(trailing byte) = nil error")
	}
	for name, tc := range map[string]struct {
		role Role
		b    Binding
	}{
		"client-with-binding": {RoleClient, want},
		"no-channel":          {RoleChaincode, Binding{Chaincode: "asset", MSPs: "Org1MSP"}},
		"no-msp":              {RoleChaincode, Binding{Channels: "c", Chaincode: "asset"}},
		"bad-msp":             {RoleChaincode, Binding{Channels: "c", Chaincode: "asset", MSPs: "Org 1"}},
		"bad-channel":         {RoleChaincode, Binding{Channels: "c h", Chaincode: "asset", MSPs: "Org1MSP"}},
	} {
		if _, _, err := r.Create("token:x", tc.role, "", 0, WithBinding(tc.b)); err == nil {
			t.Errorf("Create(%s) = nil error", name)
		}
	}
}
