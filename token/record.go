package token

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/keymesh/keymesh/policy"
)

// Stored record, version 1 (integers big-endian):
//
//	u8 version (1) ‖ [8]byte id ‖ [32]byte SHA-256(secret) ‖ u8 role ‖
//	u8 revoked (0|1) ‖ i64 created unix seconds ‖ u32 created nanoseconds ‖
//	u8 expires (0|1) ‖ i64 expiry unix seconds ‖ u32 expiry nanoseconds ‖
//	u16 len ‖ party ‖ u16 len ‖ label
//
// With expires = 0 the expiry fields are zero. The record never holds the
// secret.
//
// Version 2 is version 1 followed by a chaincode token's binding:
//
//	u8 n ‖ n × (u16 len ‖ channel) ‖ u16 len ‖ chaincode ‖ u8 m ‖ m × (u16 len ‖ MSP)
//
// with sorted, distinct, non-empty lists; only chaincode tokens have one.
// Tokens without a binding are written as version 1.
const (
	recordV1       = 1
	recordV2       = 2
	fixedRecordLen = 1 + idBytes + 32 + 1 + 1 + 8 + 4 + 1 + 8 + 4 + 2 + 2
	maxPartyLen    = 1024
)

var errMalformed = errors.New("malformed token record")

func encodeRecord(rec *record) []byte {
	t := &rec.tok
	b := make([]byte, 0, fixedRecordLen+len(t.Party)+len(t.Label))
	if t.Binding.IsZero() {
		b = append(b, recordV1)
	} else {
		b = append(b, recordV2)
	}
	b, _ = hex.AppendDecode(b, []byte(t.ID)) // ID is valid hex by construction
	b = append(b, rec.hash[:]...)
	b = append(b, byte(t.Role), boolByte(t.Revoked))
	b = appendTime(b, t.Created)
	if t.Expires.IsZero() {
		b = append(b, 0)
		b = append(b, make([]byte, 12)...)
	} else {
		b = append(b, 1)
		b = appendTime(b, t.Expires)
	}
	b = appendStr(b, string(t.Party))
	b = appendStr(b, t.Label)
	if !t.Binding.IsZero() {
		b = appendBinding(b, t.Binding)
	}
	return b
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func appendTime(b []byte, t time.Time) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(t.Unix()))
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// decodeRecord is the one strict parser of stored records: every field is
// range-checked and an accepted record re-encodes to the same bytes.
func decodeRecord(v []byte) (*record, error) {
	if len(v) < fixedRecordLen || (v[0] != recordV1 && v[0] != recordV2) {
		return nil, fmt.Errorf("%w: bad length or version", errMalformed)
	}
	rec := &record{}
	t := &rec.tok
	p := v[1:]
	t.ID = hex.EncodeToString(p[:idBytes])
	p = p[idBytes:]
	copy(rec.hash[:], p[:32])
	p = p[32:]
	t.Role = Role(p[0])
	if t.Role != RoleClient && t.Role != RoleAdmin && t.Role != RoleChaincode {
		return nil, fmt.Errorf("%w: unknown role %d", errMalformed, p[0])
	}
	switch p[1] {
	case 0, 1:
		t.Revoked = p[1] == 1
	default:
		return nil, fmt.Errorf("%w: bad revoked flag", errMalformed)
	}
	p = p[2:]
	var ok bool
	if t.Created, ok = readTime(p); !ok {
		return nil, fmt.Errorf("%w: bad creation time", errMalformed)
	}
	p = p[12:]
	switch p[0] {
	case 0:
		for _, c := range p[1:13] {
			if c != 0 {
				return nil, fmt.Errorf("%w: expiry set without flag", errMalformed)
			}
		}
	case 1:
		if t.Expires, ok = readTime(p[1:]); !ok || t.Expires.IsZero() {
			return nil, fmt.Errorf("%w: bad expiry time", errMalformed)
		}
	default:
		return nil, fmt.Errorf("%w: bad expiry flag", errMalformed)
	}
	p = p[13:]
	party, p, ok := readStr(p, maxPartyLen)
	if !ok || party == "" {
		return nil, fmt.Errorf("%w: bad party", errMalformed)
	}
	t.Party = policy.Party(party)
	label, p, ok := readStr(p, MaxLabelLen)
	if !ok {
		return nil, fmt.Errorf("%w: bad label", errMalformed)
	}
	t.Label = label
	if v[0] == recordV2 {
		if t.Role != RoleChaincode {
			return nil, fmt.Errorf("%w: a binding on a %v token", errMalformed, t.Role)
		}
		if t.Binding, p, ok = readBinding(p); !ok {
			return nil, fmt.Errorf("%w: bad binding", errMalformed)
		}
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes", errMalformed)
	}
	return rec, nil
}

func readTime(p []byte) (time.Time, bool) {
	sec := int64(binary.BigEndian.Uint64(p))
	nsec := binary.BigEndian.Uint32(p[8:])
	if nsec >= 1e9 {
		return time.Time{}, false
	}
	return time.Unix(sec, int64(nsec)).UTC(), true
}

func readStr(p []byte, max int) (s string, rest []byte, ok bool) {
	if len(p) < 2 {
		return "", nil, false
	}
	n := int(binary.BigEndian.Uint16(p))
	p = p[2:]
	if n > max || len(p) < n {
		return "", nil, false
	}
	return string(p[:n]), p[n:], true
}
