// Package strictjson decodes JSON that has exactly one encoding: what
// encoding/json's Marshal writes for the decoded value. keymesh's signed
// formats (event payloads, node records) use it, so that no two byte
// strings carry the same signed content.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Decode decodes data into v (a pointer) and accepts it only if it is at
// most limit bytes and exactly json.Marshal of the decoded value: no
// unknown, missing, repeated or differently cased fields, no whitespace,
// no trailing data, no alternative spelling of any value. Its errors name
// what is wrong without quoting the input.
func Decode(data []byte, limit int, v any) error {
	if len(data) > limit {
		return fmt.Errorf("%d bytes exceeds %d", len(data), limit)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON value")
	}
	again, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if !bytes.Equal(again, data) {
		return errors.New("not in canonical form (encode with json.Marshal)")
	}
	return nil
}
