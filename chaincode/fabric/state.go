package fabric

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
)

// PutState encrypts the keymesh-tagged fields of v (see Marshal) and writes
// the JSON to the world state at key.
func (c *Client) PutState(stub shim.ChaincodeStubInterface, key string, v any) error {
	b, err := c.Marshal(stub, Location{Key: key}, v)
	if err != nil {
		return err
	}
	if err := stub.PutState(key, b); err != nil {
		return fmt.Errorf("keymesh: PutState(%q): %w", key, err)
	}
	return nil
}

// GetState reads the world state at key and decodes it into v, a pointer to
// a struct, opening the keymesh-tagged fields (see Unmarshal). A missing
// key fails with ErrNotFound.
func (c *Client) GetState(stub shim.ChaincodeStubInterface, key string, v any) error {
	b, err := stub.GetState(key)
	if err != nil {
		return fmt.Errorf("keymesh: GetState(%q): %w", key, err)
	}
	if b == nil {
		return fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	return c.Unmarshal(stub, Location{Key: key}, b, v)
}

// PutPrivateData encrypts the keymesh-tagged fields of v, with the
// collection in each field's context, and writes the JSON to the private
// data collection at key. The peers of the collection's members, their
// side databases and backups then hold only envelopes.
func (c *Client) PutPrivateData(stub shim.ChaincodeStubInterface, collection, key string, v any) error {
	if collection == "" {
		return errors.New("keymesh: PutPrivateData: empty collection")
	}
	b, err := c.Marshal(stub, Location{Collection: collection, Key: key}, v)
	if err != nil {
		return err
	}
	if err := stub.PutPrivateData(collection, key, b); err != nil {
		return fmt.Errorf("keymesh: PutPrivateData(%q, %q): %w", collection, key, err)
	}
	return nil
}

// GetPrivateData reads key from the private data collection and decodes it
// into v, opening the keymesh-tagged fields. A missing key fails with
// ErrNotFound.
func (c *Client) GetPrivateData(stub shim.ChaincodeStubInterface, collection, key string, v any) error {
	if collection == "" {
		return errors.New("keymesh: GetPrivateData: empty collection")
	}
	b, err := stub.GetPrivateData(collection, key)
	if err != nil {
		return fmt.Errorf("keymesh: GetPrivateData(%q, %q): %w", collection, key, err)
	}
	if b == nil {
		return fmt.Errorf("%w: %q in collection %q", ErrNotFound, key, collection)
	}
	return c.Unmarshal(stub, Location{Collection: collection, Key: key}, b, v)
}

// Transient decodes the JSON value under name in the transaction's
// transient map into v. Clients put plaintext there because, unlike
// arguments, the transient map is not written to the ledger. A missing
// entry or JSON that does not fit v fails with ErrTransient; the error
// never quotes the value.
func Transient(stub shim.ChaincodeStubInterface, name string, v any) error {
	m, err := stub.GetTransient()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTransient, err)
	}
	b, ok := m[name]
	if !ok || len(b) == 0 {
		return fmt.Errorf("%w: the transient map has no %s entry", ErrTransient, strconv.Quote(name))
	}
	if err := json.Unmarshal(b, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("%w: %s: field %q must be %s", ErrTransient, strconv.Quote(name), te.Field, te.Type)
		}
		return fmt.Errorf("%w: %s is not valid JSON", ErrTransient, strconv.Quote(name))
	}
	return nil
}
