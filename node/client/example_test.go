package client_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
)

func ExampleClient_EncryptValue() {
	c, err := client.New("127.0.0.1:8420", os.Getenv("KEYMESH_TOKEN"))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	// The context binds the envelope to where it is stored; decryption must
	// give the same pairs.
	where := map[string]string{"channel": "trades", "chaincode": "trade", "field": "price"}
	env, version, err := c.EncryptValue(ctx, "trade/price", []byte("42.17"), where, "")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("encrypted under version", version)

	plaintext, err := c.DecryptValue(ctx, env, where)
	switch {
	case client.IsCode(err, apiv1.CodeNotGranted):
		fmt.Println("this party holds no decrypt grant on trade/price")
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Printf("%s\n", plaintext)
	}
}
