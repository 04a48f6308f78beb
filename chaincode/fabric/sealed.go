package fabric

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"

	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
	"github.com/keymesh/keymesh/vault/envelope"
)

// Client-sealed records.
//
// In the client-sealed pattern the submitting client encrypts the tagged
// fields itself, through its own organisation's keymesh node (random
// mode, as any granted client), and passes the record with envelopes in
// the proposal's transient map. The chaincode checks the envelopes' form
// and stores them as they are: it never calls a keymesh node for the
// write, so endorsing organisations need no key at all, and every
// endorser writes the same bytes (they all read the same transient map).
// Readers decrypt as usual ([Client.GetState]) through a node that holds
// the key. Envelopes are bound to the same context as chaincode-sealed
// ones: {channel, chaincode, key, field}.

// SealRecord is the client side: it returns the JSON of v (a struct or a
// pointer to one) with every keymesh-tagged field replaced by an envelope
// made through api (a client of the submitting organisation's node, with
// an encrypt grant) in random mode, bound to channel, chaincode, the state
// key and the field. Put the result in the transient map.
func SealRecord(ctx context.Context, api *client.Client, channel, chaincode, key string, v any) ([]byte, error) {
	t, err := structType(v, false)
	if err != nil {
		return nil, err
	}
	fields, err := fieldsOf(t)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("keymesh: encoding %s: %w", t, err)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("keymesh: %s does not encode as a JSON object", t)
	}
	tx := tx{channel: channel, chaincode: chaincode}
	for _, f := range fields {
		pt, ok := obj[f.json]
		if !ok {
			continue
		}
		resp, err := api.Encrypt(ctx, apiv1.EncryptRequest{Key: f.key, Plaintext: pt, Context: tx.context(Location{Key: key, Field: f.json})})
		if err != nil {
			return nil, &FieldError{Op: "encrypt", Key: key, Field: f.json, KeyName: f.key, Err: err}
		}
		s, _ := json.Marshal(resp.Ciphertext)
		obj[f.json] = s
	}
	return json.Marshal(obj)
}

// SealedTransient is the chaincode side: it reads the client-sealed
// record of struct type proto (a value or pointer of it; only its type is
// used) from the transient map entry name, checks that every tagged field
// present holds an envelope of the key it is tagged with, and returns the
// record's members (public fields as the client sent them, tagged fields
// as envelopes). Store it with [PutSealedState].
func SealedTransient(stub shim.ChaincodeStubInterface, name string, proto any) (map[string]json.RawMessage, error) {
	t, err := structType(proto, false)
	if err != nil {
		return nil, err
	}
	fields, err := fieldsOf(t)
	if err != nil {
		return nil, err
	}
	tm, err := stub.GetTransient()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTransient, err)
	}
	b, ok := tm[name]
	if !ok {
		return nil, fmt.Errorf("%w: the transient map has no %q entry", ErrTransient, name)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("%w: %q is not a JSON object", ErrTransient, name)
	}
	for _, f := range fields {
		rawField, ok := obj[f.json]
		if !ok {
			continue
		}
		var text string
		if json.Unmarshal(rawField, &text) != nil {
			return nil, &FieldError{Op: "store sealed", Key: name, Field: f.json, KeyName: f.key, Err: ErrNotEncrypted}
		}
		e, err := envelope.ParseText(text)
		if err != nil {
			return nil, &FieldError{Op: "store sealed", Key: name, Field: f.json, KeyName: f.key, Err: ErrNotEncrypted}
		}
		if e.Key != f.key {
			return nil, &FieldError{Op: "store sealed", Key: name, Field: f.json, KeyName: f.key, Err: fmt.Errorf("the envelope is under key %s, not the field's", e.Key)}
		}
	}
	return obj, nil
}

// PutSealedState stores a record from [SealedTransient] at key, with its
// members in sorted order (deterministic, as endorsement needs).
func PutSealedState(stub shim.ChaincodeStubInterface, key string, rec map[string]json.RawMessage) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("keymesh: encoding the sealed record: %w", err)
	}
	return stub.PutState(key, b)
}
