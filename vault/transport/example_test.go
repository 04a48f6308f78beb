package transport_test

import (
	"bytes"
	"crypto/rand"
	"fmt"

	"github.com/keymesh/keymesh/vault/transport"
)

func Example() {
	// At init, each node makes a KEM key pair; the public half goes into
	// its admin-signed node record, the private half is sealed at rest.
	recipientPriv, recipientPub, err := transport.GenerateKey()
	if err != nil {
		panic(err)
	}

	// The holder wraps a key version for that node.
	material := make([]byte, transport.MaterialSize)
	rand.Read(material)
	b := transport.Binding{Key: "trade/price", Version: 2} // plus Network and Recipient
	blob, err := transport.Wrap(recipientPub, b, material)
	if err != nil {
		panic(err)
	}

	// Only the recipient, presenting the same binding, opens it.
	got, err := transport.Unwrap(recipientPriv, b, blob)
	fmt.Println(len(blob), bytes.Equal(got, material), err)

	b.Version = 3
	_, err = transport.Unwrap(recipientPriv, b, blob)
	fmt.Println(err)
	// Output:
	// 1220 true <nil>
	// transport: unwrap failed
}
