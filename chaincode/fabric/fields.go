package fabric

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"

	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/vault/envelope"
)

// TagName is the struct tag naming the keymesh key of a field.
const TagName = "keymesh"

// envelopePrefix starts the text form of every keymesh envelope.
const envelopePrefix = "km1:"

// Location is where a value lives on the ledger: it becomes the
// envelope's context, with the channel and chaincode.
type Location struct {
	Collection string // private data collection; "" for world state
	Key        string // state key
	Field      string // field path, e.g. the JSON field name
}

// taggedField is one field with a keymesh tag.
type taggedField struct {
	json string // JSON member name
	key  string // keymesh key name
}

var fieldCache sync.Map // reflect.Type → []taggedField or error

// fieldsOf returns the tagged fields of struct type t.
func fieldsOf(t reflect.Type) ([]taggedField, error) {
	if v, ok := fieldCache.Load(t); ok {
		if err, isErr := v.(error); isErr {
			return nil, err
		}
		return v.([]taggedField), nil
	}
	fs, err := scanFields(t)
	if err != nil {
		fieldCache.Store(t, err)
		return nil, err
	}
	fieldCache.Store(t, fs)
	return fs, nil
}

func scanFields(t reflect.Type) ([]taggedField, error) {
	var out []taggedField
	seen := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key, tagged := f.Tag.Lookup(TagName)
		if f.Anonymous {
			if tagged {
				return nil, fmt.Errorf("keymesh: %s.%s: an embedded field cannot carry a keymesh tag", t, f.Name)
			}
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if inner, err := scanFields(ft); err != nil || len(inner) > 0 {
					return nil, fmt.Errorf("keymesh: %s.%s: keymesh tags inside embedded structs are not supported; tag fields of the top-level struct", t, f.Name)
				}
			}
			continue
		}
		if !tagged {
			continue
		}
		if !f.IsExported() {
			return nil, fmt.Errorf("keymesh: %s.%s: an unexported field cannot be encrypted", t, f.Name)
		}
		if ns, n, ok := strings.Cut(key, "/"); !ok || ns == "" || n == "" || strings.Contains(n, "/") {
			return nil, fmt.Errorf("keymesh: %s.%s: tag %q must name a key <namespace>/<name>", t, f.Name, key)
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			jn, _, _ := strings.Cut(tag, ",")
			if jn == "-" && !strings.HasPrefix(tag, "-,") {
				return nil, fmt.Errorf("keymesh: %s.%s: a field left out of JSON (json:\"-\") cannot be encrypted", t, f.Name)
			}
			if jn != "" {
				name = jn
			}
		}
		if seen[name] {
			return nil, fmt.Errorf("keymesh: %s: two tagged fields named %q in JSON", t, name)
		}
		seen[name] = true
		out = append(out, taggedField{json: name, key: key})
	}
	return out, nil
}

func structType(v any, wantPtr bool) (reflect.Type, error) {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() {
		return nil, errors.New("keymesh: nil value")
	}
	t := rv.Type()
	if t.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil, fmt.Errorf("keymesh: nil %s", t)
		}
		t = t.Elem()
	} else if wantPtr {
		return nil, fmt.Errorf("keymesh: Unmarshal needs a pointer to a struct, not %s", t)
	}
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("keymesh: %s is not a struct", t)
	}
	return t, nil
}

// Marshal returns the JSON of v, a struct or a pointer to one, to be stored
// at loc.Key (in loc.Collection, for private data) with every keymesh-tagged
// field replaced by its envelope. loc.Field is ignored: each field's
// context names the field. The fields are encrypted in endorsement mode
// with the transaction's id and timestamp, as the transaction creator, so
// endorsing peers produce identical bytes.
func (c *Client) Marshal(stub shim.ChaincodeStubInterface, loc Location, v any) ([]byte, error) {
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
	if len(fields) == 0 {
		return raw, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("keymesh: %s does not encode as a JSON object", t)
	}
	tx, err := c.txOf(stub)
	if err != nil {
		return nil, err
	}
	// One batch request per keymesh key.
	byKey := map[string][]taggedField{}
	var order []string
	for _, f := range fields {
		if _, ok := obj[f.json]; !ok {
			continue // left out by omitempty
		}
		if _, ok := byKey[f.key]; !ok {
			order = append(order, f.key)
		}
		byKey[f.key] = append(byKey[f.key], f)
	}
	ctx, cancel := c.ctx(tx)
	defer cancel()
	for _, key := range order {
		fs := byKey[key]
		items := make([]apiv1.EncryptItem, len(fs))
		for i, f := range fs {
			fl := Location{Collection: loc.Collection, Key: loc.Key, Field: f.json}
			items[i] = apiv1.EncryptItem{Plaintext: obj[f.json], Context: tx.context(fl), TxID: tx.id, TxTime: &tx.time}
		}
		resp, err := c.api.Encrypt(ctx, apiv1.EncryptRequest{Key: key, Mode: "endorsement", Batch: items})
		if err == nil && len(resp.Batch) != len(items) {
			err = fmt.Errorf("the node answered %d items for %d", len(resp.Batch), len(items))
		}
		if err != nil {
			return nil, &FieldError{Op: "encrypt", Collection: loc.Collection, Key: loc.Key, KeyName: key, Err: err}
		}
		for i, f := range fs {
			r := resp.Batch[i]
			if r.Error != nil {
				return nil, &FieldError{Op: "encrypt", Collection: loc.Collection, Key: loc.Key, Field: f.json, KeyName: key, Err: apiErr(r.Error.Code, r.Error.Message)}
			}
			s, _ := json.Marshal(r.Ciphertext)
			obj[f.json] = s
		}
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("keymesh: encoding %s: %w", t, err)
	}
	return out, nil
}

// Unmarshal decodes data, stored at loc.Key (in loc.Collection), into v, a
// pointer to a struct, opening every keymesh-tagged field as the
// transaction creator. If any field fails, v is left unchanged and the
// error joins one *FieldError per failed field.
func (c *Client) Unmarshal(stub shim.ChaincodeStubInterface, loc Location, data []byte, v any) error {
	t, err := structType(v, true)
	if err != nil {
		return err
	}
	fields, err := fieldsOf(t)
	if err != nil {
		return err
	}
	if len(fields) == 0 {
		return decodeInto(data, v, t)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
		return fmt.Errorf("keymesh: the stored value at %q is not a JSON object", loc.Key)
	}
	var present []taggedField
	var items []apiv1.DecryptItem
	var errs []error
	for _, f := range fields {
		rawField, ok := obj[f.json]
		if !ok {
			continue
		}
		var env string
		if json.Unmarshal(rawField, &env) != nil || !strings.HasPrefix(env, envelopePrefix) {
			errs = append(errs, &FieldError{Op: "decrypt", Collection: loc.Collection, Key: loc.Key, Field: f.json, KeyName: f.key, Err: ErrNotEncrypted})
			continue
		}
		// The envelope names its key; it must be the one the field is
		// tagged with, so a value sealed under another key (one the reader
		// may hold) is not accepted in its place.
		if e, err := envelope.ParseText(env); err != nil || e.Key != f.key {
			errs = append(errs, &FieldError{Op: "decrypt", Collection: loc.Collection, Key: loc.Key, Field: f.json, KeyName: f.key, Err: ErrDecryptionFailed})
			continue
		}
		present = append(present, f)
		items = append(items, apiv1.DecryptItem{Ciphertext: env, Context: nil})
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if len(items) > 0 {
		tx, err := c.txOf(stub)
		if err != nil {
			return err
		}
		for i, f := range present {
			items[i].Context = tx.context(Location{Collection: loc.Collection, Key: loc.Key, Field: f.json})
		}
		ctx, cancel := c.ctx(tx)
		defer cancel()
		resp, err := c.api.Decrypt(ctx, apiv1.DecryptRequest{Batch: items})
		if err == nil && len(resp.Batch) != len(items) {
			err = fmt.Errorf("the node answered %d items for %d", len(resp.Batch), len(items))
		}
		if err != nil {
			return &FieldError{Op: "decrypt", Collection: loc.Collection, Key: loc.Key, Err: err}
		}
		for i, f := range present {
			r := resp.Batch[i]
			if r.Error != nil {
				errs = append(errs, &FieldError{Op: "decrypt", Collection: loc.Collection, Key: loc.Key, Field: f.json, KeyName: f.key, Err: apiErr(r.Error.Code, r.Error.Message)})
				continue
			}
			if !json.Valid(r.Plaintext) {
				errs = append(errs, &FieldError{Op: "decrypt", Collection: loc.Collection, Key: loc.Key, Field: f.json, KeyName: f.key, Err: errors.New("the plaintext is not JSON")})
				continue
			}
			obj[f.json] = r.Plaintext
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
	}
	plain, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("keymesh: re-encoding %q: %w", loc.Key, err)
	}
	return decodeInto(plain, v, t)
}

// decodeInto decodes data into v without ever quoting data in the error:
// it may hold decrypted values.
func decodeInto(data []byte, v any, t reflect.Type) error {
	if err := json.Unmarshal(data, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("keymesh: decoding into %s: field %q does not fit type %s", t, te.Field, te.Type)
		}
		return fmt.Errorf("keymesh: decoding into %s: the stored value is not valid JSON for it", t)
	}
	return nil
}

// EncryptValue encrypts one plaintext under keymesh key keyName for the
// value stored at loc, in endorsement mode as the transaction creator, and
// returns the envelope's text form ("km1:…").
func (c *Client) EncryptValue(stub shim.ChaincodeStubInterface, keyName string, loc Location, plaintext []byte) (string, error) {
	tx, err := c.txOf(stub)
	if err != nil {
		return "", err
	}
	ctx, cancel := c.ctx(tx)
	defer cancel()
	if plaintext == nil {
		plaintext = []byte{}
	}
	resp, err := c.api.Encrypt(ctx, apiv1.EncryptRequest{Key: keyName, Mode: "endorsement", Plaintext: plaintext,
		Context: tx.context(loc), TxID: tx.id, TxTime: &tx.time})
	if err == nil && resp.Ciphertext == "" {
		err = errors.New("the node answered no ciphertext")
	}
	if err != nil {
		return "", &FieldError{Op: "encrypt", Collection: loc.Collection, Key: loc.Key, Field: loc.Field, KeyName: keyName, Err: err}
	}
	return resp.Ciphertext, nil
}

// DecryptValue opens an envelope stored at loc as the transaction creator.
func (c *Client) DecryptValue(stub shim.ChaincodeStubInterface, loc Location, envelope string) ([]byte, error) {
	if !strings.HasPrefix(envelope, envelopePrefix) {
		return nil, &FieldError{Op: "decrypt", Collection: loc.Collection, Key: loc.Key, Field: loc.Field, Err: ErrNotEncrypted}
	}
	tx, err := c.txOf(stub)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.ctx(tx)
	defer cancel()
	keyName := ""
	if e, perr := envelopeKey(envelope); perr == nil {
		keyName = e
	}
	pt, err := c.api.DecryptValue(ctx, envelope, tx.context(loc))
	if err != nil {
		return nil, &FieldError{Op: "decrypt", Collection: loc.Collection, Key: loc.Key, Field: loc.Field, KeyName: keyName, Err: err}
	}
	return pt, nil
}

// envelopeKey returns the keymesh key an envelope names, so that errors
// about whole values name it as errors about fields do.
func envelopeKey(text string) (string, error) {
	e, err := envelope.ParseText(text)
	if err != nil {
		return "", err
	}
	return e.Key, nil
}
