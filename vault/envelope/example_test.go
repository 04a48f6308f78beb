package envelope_test

import (
	"crypto/rand"
	"fmt"

	"github.com/keymesh/keymesh/vault/envelope"
)

func Example() {
	// In keymesh the vault supplies the key version and the network id
	// (the genesis hash); here they are made up.
	key := make([]byte, envelope.KeySize)
	rand.Read(key)
	var network envelope.NetworkID

	s, err := envelope.NewSealer(key)
	if err != nil {
		panic(err)
	}
	clear(key) // the Sealer holds what it needs

	// The context names where the value lives; it must be given again to
	// open the envelope.
	ctx := envelope.Context{"channel": "trade", "chaincode": "settlement", "state_key": "order~7", "field": "price"}
	// In random mode the header names the sealing node (the vault's
	// SealerID): each node seals under its own subkey of the version, and
	// a nil random source lets the cryptographic module draw the nonce.
	sealer := envelope.SealerID{0x5e, 0xa1, 0xe4}
	env, err := s.Seal(envelope.Header{Mode: envelope.ModeRandom, Key: "trade/price", Version: 1, Sealer: sealer},
		network, ctx, "", []byte("4200.50 EUR"), nil)
	if err != nil {
		panic(err)
	}
	stored := env.Text() // "km1:AgEL..." goes on the ledger

	parsed, err := envelope.ParseText(stored)
	if err != nil {
		panic(err)
	}
	fmt.Println(parsed.Format, parsed.Key, parsed.Version, parsed.Mode, parsed.Sealer == sealer)
	plaintext, err := s.Open(parsed, network, ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s\n", plaintext)

	// Moved to another field, it does not open.
	ctx["field"] = "quantity"
	_, err = s.Open(parsed, network, ctx)
	fmt.Println(err)
	// Output:
	// 2 trade/price 1 random true
	// 4200.50 EUR
	// envelope: decryption failed
}
