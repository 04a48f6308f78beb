// Package hextext is the text form of keymesh's fixed-size binary values
// (keys, digests, network ids, signatures): exactly 2n lower-case hex
// digits, one spelling per value.
package hextext

import (
	"encoding/hex"
	"fmt"
)

// Encode returns b in lower-case hex.
func Encode(b []byte) []byte {
	out := make([]byte, hex.EncodedLen(len(b)))
	hex.Encode(out, b)
	return out
}

// Decode decodes exactly len(dst) bytes of lower-case hex into dst; what
// names the value in the error, which never quotes the input.
func Decode(dst, text []byte, what string) error {
	if len(text) != 2*len(dst) {
		return fmt.Errorf("%s of %d hex digits, want %d", what, len(text), 2*len(dst))
	}
	for _, c := range text {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%s is not lower-case hex", what)
		}
	}
	_, err := hex.Decode(dst, text)
	return err
}
