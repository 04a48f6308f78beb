package policy

import (
	"fmt"
	"strconv"
	"strings"
)

// Op is an operation on a key. Its values are persisted: they never change.
type Op uint8

// Operations.
const (
	OpEncrypt Op = 1
	OpDecrypt Op = 2
	// OpExport lets a party receive a key's material (KMIP Get); only a
	// key created exportable is ever exported.
	OpExport Op = 3
)

// opNames is indexed by Op.
var opNames = [...]string{OpEncrypt: "encrypt", OpDecrypt: "decrypt", OpExport: "export"}

// String returns "encrypt", "decrypt" or "export", or "op(N)" for an unknown value.
func (o Op) String() string {
	if o.valid() {
		return opNames[o]
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

func (o Op) valid() bool { return o == OpEncrypt || o == OpDecrypt || o == OpExport }

// ParseOp parses "encrypt", "decrypt" or "export".
func ParseOp(s string) (Op, error) {
	for o, name := range opNames {
		if name != "" && s == name {
			return Op(o), nil
		}
	}
	return 0, fmt.Errorf("policy: unknown operation %s (want encrypt, decrypt or export)", quote(s))
}

// MarshalText encodes o as its name.
func (o Op) MarshalText() ([]byte, error) {
	if !o.valid() {
		return nil, fmt.Errorf("policy: cannot marshal unknown operation %d", uint8(o))
	}
	return []byte(opNames[o]), nil
}

// UnmarshalText parses text with [ParseOp].
func (o *Op) UnmarshalText(text []byte) error {
	op, err := ParseOp(string(text))
	if err != nil {
		return err
	}
	*o = op
	return nil
}

// Ops is a set of operations: bit 1<<op for each op in the set. Its bits
// are persisted: OpsEncrypt is 2, OpsDecrypt is 4 and OpsExport is 8, for ever.
type Ops uint8

// Sets of operations.
const (
	OpsEncrypt = Ops(1) << OpEncrypt
	OpsDecrypt = Ops(1) << OpDecrypt
	OpsExport  = Ops(1) << OpExport
	// OpsAll is encrypt and decrypt: the data operations. Export is
	// granted only by name.
	OpsAll   = OpsEncrypt | OpsDecrypt
	opsKnown = OpsAll | OpsExport
)

// OpsOf returns the set of the given operations; unknown ones are ignored.
func OpsOf(ops ...Op) Ops {
	var s Ops
	for _, o := range ops {
		if o.valid() {
			s |= 1 << o
		}
	}
	return s
}

// ParseOps parses a comma-separated list of operations, such as
// "encrypt,decrypt" or "decrypt"; blanks around a name are ignored and a
// repeated name counts once. An empty list, an empty item or an unknown
// name is an error.
func ParseOps(s string) (Ops, error) {
	if strings.TrimSpace(s) == "" {
		return 0, fmt.Errorf("policy: empty operation list (want encrypt, decrypt or encrypt,decrypt)")
	}
	var set Ops
	for item := range strings.SplitSeq(s, ",") {
		o, err := ParseOp(strings.TrimSpace(item))
		if err != nil {
			return 0, fmt.Errorf("policy: invalid operation list %s: %w", quote(s), err)
		}
		set |= 1 << o
	}
	return set, nil
}

// Has reports whether op is in the set.
func (o Ops) Has(op Op) bool { return op.valid() && o&(1<<op) != 0 }

// valid reports whether o is a non-empty set of known operations.
func (o Ops) valid() bool { return o != 0 && o&^opsKnown == 0 }

// List returns the names of the operations in the set, in Op order; an
// unknown bit b is listed as "op(b)".
func (o Ops) List() []string {
	var list []string
	for b := range 8 {
		if o&(1<<b) != 0 {
			list = append(list, Op(b).String())
		}
	}
	return list
}

// String returns the operations joined by commas, e.g. "encrypt,decrypt",
// or "" for the empty set.
func (o Ops) String() string {
	switch o {
	case OpsAll:
		return "encrypt,decrypt"
	case OpsEncrypt:
		return "encrypt"
	case OpsDecrypt:
		return "decrypt"
	}
	return strings.Join(o.List(), ",")
}

// MarshalText encodes o as its String form ("" for the empty set).
func (o Ops) MarshalText() ([]byte, error) {
	if o != 0 && !o.valid() {
		return nil, fmt.Errorf("policy: cannot marshal unknown operations 0x%02x", uint8(o))
	}
	return []byte(o.String()), nil
}

// UnmarshalText parses text with [ParseOps]; the empty text gives the empty
// set, so that the zero value round-trips (a grant with no operation is
// still invalid).
func (o *Ops) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*o = 0
		return nil
	}
	set, err := ParseOps(string(text))
	if err != nil {
		return err
	}
	*o = set
	return nil
}
