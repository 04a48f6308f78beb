package vault

import (
	"encoding/json"
	"time"
)

// decodeKeyRecord decodes a key record (JSON under "vault/key/<name>",
// already authenticated) into rec. A restart decodes every key record,
// and encoding/json's reflection was the largest part of it: records in
// the exact form json.Marshal writes them (field order, no spaces, plain
// ASCII strings) are read by a direct parser; anything else, such as a
// record written by an older version without a field or with an escaped
// name, goes to json.Unmarshal, so what is accepted and what it decodes
// to do not change (TestDecodeKeyRecordMatchesJSON).
func decodeKeyRecord(data []byte, rec *keyRecord) error {
	var fast keyRecord
	if p := (recParser{b: data}); p.record(&fast) && p.i == len(p.b) {
		*rec = fast
		return nil
	}
	*rec = keyRecord{}
	return json.Unmarshal(data, rec)
}

// recParser reads the canonical form of a keyRecord; each method reports
// whether the input had the expected form there.
type recParser struct {
	b []byte
	i int
}

func (p *recParser) lit(s string) bool {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

// str reads a string of printable ASCII without escapes.
func (p *recParser) str(out *string) bool {
	if !p.lit(`"`) {
		return false
	}
	start := p.i
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			*out = string(p.b[start:p.i])
			p.i++
			return true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return false
		}
	}
	return false
}

// uint reads a decimal number without sign, exponent, fraction or
// leading zero, at most max.
func (p *recParser) uint(max uint64, out *uint64) bool {
	start := p.i
	var n uint64
	for ; p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9'; p.i++ {
		d := uint64(p.b[p.i] - '0')
		if n > (max-d)/10 {
			return false
		}
		n = n*10 + d
	}
	if p.i == start || (p.b[start] == '0' && p.i-start > 1) {
		return false
	}
	*out = n
	return true
}

func (p *recParser) boolean(out *bool) bool {
	switch {
	case p.lit("true"):
		*out = true
	case p.lit("false"):
		*out = false
	default:
		return false
	}
	return true
}

// time reads a quoted time as encoding/json does, by its UnmarshalJSON.
func (p *recParser) time(out *time.Time) bool {
	if !p.lit(`"`) {
		return false
	}
	start := p.i - 1
	for ; p.i < len(p.b); p.i++ {
		if c := p.b[p.i]; c == '"' {
			p.i++
			return out.UnmarshalJSON(p.b[start:p.i]) == nil
		} else if c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return false
}

func (p *recParser) record(r *keyRecord) bool {
	var state, minDec uint64
	ok := p.lit(`{"name":`) && p.str(&r.Name) &&
		p.lit(`,"owner":`) && p.str(&r.Owner) &&
		p.lit(`,"state":`) && p.uint(0xff, &state) &&
		p.lit(`,"deterministic":`) && p.boolean(&r.Deterministic) &&
		p.lit(`,"exportable":`) && p.boolean(&r.Exportable) &&
		p.lit(`,"created":`) && p.time(&r.Created) &&
		p.lit(`,"state_changed":`) && p.time(&r.StateChanged) &&
		p.lit(`,"min_decryption_version":`) && p.uint(0xffffffff, &minDec) &&
		p.lit(`,"versions":[`)
	if !ok {
		return false
	}
	r.State, r.MinDecrypt = State(state), uint32(minDec)
	if p.lit("]}") {
		r.Versions = []versionRecord{}
		return true
	}
	for {
		r.Versions = append(r.Versions, versionRecord{})
		if !p.version(&r.Versions[len(r.Versions)-1]) {
			return false
		}
		if p.lit("]}") {
			return true
		}
		if !p.lit(",") {
			return false
		}
	}
}

func (p *recParser) version(v *versionRecord) bool {
	var n uint64
	ok := p.lit(`{"version":`) && p.uint(0xffffffff, &n) &&
		p.lit(`,"created":`) && p.time(&v.Created) &&
		p.lit(`,"activate_at":`) && p.time(&v.ActivateAt) &&
		p.lit(`,"reserved":`) && p.uint(^uint64(0), &v.Reserved)
	if !ok {
		return false
	}
	v.Version = uint32(n)
	// The omitempty fields, each present only when set, in field order.
	if p.lit(`,"destroyed":true`) {
		v.Destroyed = true
	}
	if p.lit(`,"not_held":true`) {
		v.NotHeld = true
	}
	if p.lit(`,"used":`) {
		u := new(uint64)
		if !p.uint(^uint64(0), u) {
			return false
		}
		v.Used = u
	}
	if p.lit(`,"used_epoch":`) && !p.uint(^uint64(0), &v.UsedEpoch) {
		return false
	}
	return p.lit("}")
}
