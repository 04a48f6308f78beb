package kmip

import (
	"encoding/binary"
	"fmt"
)

// MaxDepth bounds the nesting of structures in a request. KMIP 1.4's
// deepest request (a Register of a wrapped key with its attributes) nests
// well under 16.
const MaxDepth = 32

// TTLV item types (KMIP 1.4 §9.1.1.2).
const (
	ttlvStructure   = 0x01
	ttlvInteger     = 0x02
	ttlvLongInteger = 0x03
	ttlvBigInteger  = 0x04
	ttlvEnumeration = 0x05
	ttlvBoolean     = 0x06
	ttlvTextString  = 0x07
	ttlvByteString  = 0x08
	ttlvDateTime    = 0x09
	ttlvInterval    = 0x0A
)

// wellFormed checks the TTLV framing of one message before the decoder
// sees it: every item's header fits, its type is one of KMIP's, its length
// fits its type and its parent, padding is where it must be, structures
// nest at most MaxDepth deep, and nothing trails the outer item. The
// decoder (ovh/kmip-go) then only ever sees well-framed input: its
// typed decoding errors become Invalid Message, and it is spared framing
// it does not check itself (a structure whose length is not a multiple
// of 8 made it index out of range).
func wellFormed(b []byte) error {
	n, err := checkItem(b, 0)
	if err != nil {
		return err
	}
	if n != len(b) {
		return fmt.Errorf("%d bytes after the message", len(b)-n)
	}
	return nil
}

// checkItem checks the item at the start of b and returns its padded size.
func checkItem(b []byte, depth int) (int, error) {
	if len(b) < 8 {
		return 0, fmt.Errorf("truncated item header")
	}
	if b[0] != 0x42 && b[0] != 0x54 {
		return 0, fmt.Errorf("tag 0x%02x%02x%02x outside the KMIP and extension ranges", b[0], b[1], b[2])
	}
	typ, length := b[3], int(binary.BigEndian.Uint32(b[4:8]))
	if length > len(b)-8 {
		return 0, fmt.Errorf("item of %d bytes overruns its container", length)
	}
	fixed := map[byte]int{ttlvInteger: 4, ttlvLongInteger: 8, ttlvEnumeration: 4, ttlvBoolean: 8, ttlvDateTime: 8, ttlvInterval: 4}
	switch typ {
	case ttlvStructure:
		if length%8 != 0 {
			return 0, fmt.Errorf("structure of %d bytes, not a multiple of 8", length)
		}
		if depth >= MaxDepth {
			return 0, fmt.Errorf("structures nested over %d deep", MaxDepth)
		}
		body := b[8 : 8+length]
		for len(body) > 0 {
			n, err := checkItem(body, depth+1)
			if err != nil {
				return 0, err
			}
			body = body[n:]
		}
		return 8 + length, nil
	case ttlvBigInteger:
		if length == 0 || length%8 != 0 {
			return 0, fmt.Errorf("big integer of %d bytes", length)
		}
		return 8 + length, nil
	case ttlvTextString, ttlvByteString:
		padded := (length + 7) &^ 7
		if padded > len(b)-8 {
			return 0, fmt.Errorf("string padding overruns its container")
		}
		return 8 + padded, nil
	default:
		want, ok := fixed[typ]
		if !ok {
			return 0, fmt.Errorf("unknown item type 0x%02x", typ)
		}
		if length != want {
			return 0, fmt.Errorf("item of type 0x%02x with length %d, want %d", typ, length, want)
		}
		if 16 > len(b) {
			return 0, fmt.Errorf("truncated item")
		}
		return 16, nil
	}
}
