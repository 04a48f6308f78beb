package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Errors callers branch on. Every error of this package wraps one of them.
var (
	// ErrInvalidParty reports a party string that is not in canonical form.
	ErrInvalidParty = errors.New("policy: invalid party")
	// ErrInvalidGrant reports an invalid grant or revocation.
	ErrInvalidGrant = errors.New("policy: invalid grant")
	// ErrConflict reports a grant or revocation whose ID is already held by
	// one with a different content.
	ErrConflict = errors.New("policy: conflicting id")
	// ErrNotGranted reports a denied request; see [DeniedError].
	ErrNotGranted = errors.New("policy: not granted")
	// ErrStalePolicy is returned for a request this node cannot vouch for:
	// it has not heard from the key's owner org within its staleness bound,
	// so it may have missed a revocation (see State.SetGate).
	ErrStalePolicy = errors.New("policy: stale policy")
)

// Party kinds, as returned by [Party.Kind].
const (
	KindOrg    = "org"
	KindFabric = "fabric"
	KindEth    = "eth"
	KindToken  = "token"
	KindKMIP   = "kmip"
)

// AdminParty is the party of the node's admin token. It gets no data access
// unless a grant names it.
const AdminParty Party = "token:admin"

// Limits of the party forms.
const (
	maxOrgID       = 64
	maxTokenName   = 64
	maxFabricIdent = 512
	maxKMIPSubject = 256
	quoteLimit     = 80
)

// Party names who a grant is for, in canonical string form:
//
//	org:<OrgID>                OrgID = [A-Za-z0-9][A-Za-z0-9._-]{0,63}
//	fabric:<OrgID>/<identity>  identity 1..512 bytes of UTF-8, no control characters
//	eth:0x<40 hex digits>      lower case
//	token:<name>               name = [a-z0-9][a-z0-9._-]{0,63}
//	kmip:<subject>             a KMIP client certificate's subject common
//	                           name, 1..256 bytes of UTF-8, no control characters
//
// Use [ParseParty] to obtain one from untrusted input.
type Party string

// ParseParty parses s and returns its canonical form. The only
// normalisation is lower-casing the hex digits of an eth: address; anything
// else that is not canonical fails with an error that wraps
// [ErrInvalidParty] and quotes s (cut to 80 bytes).
func ParseParty(s string) (Party, error) {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok {
		return "", partyError(s, "missing kind (want org:, fabric:, eth:, token: or kmip:)")
	}
	switch kind {
	case KindOrg:
		if why := checkOrgID(rest); why != "" {
			return "", partyError(s, why)
		}
		return Party(s), nil
	case KindFabric:
		org, ident, ok := strings.Cut(rest, "/")
		if !ok {
			return "", partyError(s, "want fabric:<OrgID>/<identity>")
		}
		if why := checkOrgID(org); why != "" {
			return "", partyError(s, why)
		}
		if why := checkText(ident, maxFabricIdent); why != "" {
			return "", partyError(s, "identity "+why)
		}
		return Party(s), nil
	case KindEth:
		hex, ok := strings.CutPrefix(rest, "0x")
		if !ok || len(hex) != 40 {
			return "", partyError(s, "want eth:0x followed by 40 hex digits")
		}
		for i := 0; i < len(hex); i++ {
			if !isHex(hex[i]) {
				return "", partyError(s, "want eth:0x followed by 40 hex digits")
			}
		}
		return Party(KindEth + ":0x" + strings.ToLower(hex)), nil
	case KindToken:
		if rest == "" {
			return "", partyError(s, "empty token name")
		}
		if len(rest) > maxTokenName {
			return "", partyError(s, "token name longer than 64 bytes")
		}
		for i := 0; i < len(rest); i++ {
			c := rest[i]
			lowerDigit := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
			if !lowerDigit && (i == 0 || c != '.' && c != '_' && c != '-') {
				return "", partyError(s, "token name must match [a-z0-9][a-z0-9._-]*")
			}
		}
		return Party(s), nil
	case KindKMIP:
		if why := checkText(rest, maxKMIPSubject); why != "" {
			return "", partyError(s, "subject "+why)
		}
		return Party(s), nil
	default:
		return "", partyError(s, "unknown kind (want org:, fabric:, eth:, token: or kmip:)")
	}
}

// MustParseParty is like [ParseParty] but panics on error. It is meant for
// constants in programs and tests.
func MustParseParty(s string) Party {
	p, err := ParseParty(s)
	if err != nil {
		panic(err)
	}
	return p
}

// Validate reports whether p is in canonical form, as ParseParty returns it.
func (p Party) Validate() error {
	q, err := ParseParty(string(p))
	if err != nil {
		return err
	}
	if q != p {
		return partyError(string(p), "not in canonical form (want "+string(q)+")")
	}
	return nil
}

// Kind returns "org", "fabric", "eth", "token" or "kmip", or "" if p has none of
// these prefixes.
func (p Party) Kind() string {
	kind, _, _ := strings.Cut(string(p), ":")
	switch kind {
	case KindOrg, KindFabric, KindEth, KindToken, KindKMIP:
		return kind
	}
	return ""
}

// Org returns the OrgID of an org: or fabric: party, and "" otherwise.
func (p Party) Org() string {
	if org, ok := strings.CutPrefix(string(p), KindOrg+":"); ok {
		return org
	}
	if rest, ok := strings.CutPrefix(string(p), KindFabric+":"); ok {
		if org, _, ok := strings.Cut(rest, "/"); ok {
			return org
		}
	}
	return ""
}

// UnmarshalText parses text with [ParseParty], so that a party decoded from
// JSON is always canonical.
func (p *Party) UnmarshalText(text []byte) error {
	q, err := ParseParty(string(text))
	if err != nil {
		return err
	}
	*p = q
	return nil
}

// ValidOrgID reports whether s is a well-formed organisation ID:
// [A-Za-z0-9][A-Za-z0-9._-]{0,63}.
func ValidOrgID(s string) bool { return checkOrgID(s) == "" }

func checkOrgID(s string) string {
	if s == "" {
		return "empty OrgID"
	}
	if len(s) > maxOrgID {
		return "OrgID longer than 64 bytes"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return "OrgID must match [A-Za-z0-9][A-Za-z0-9._-]*"
		}
	}
	return ""
}

// checkText reports why s is not 1..max bytes of printable UTF-8, or "".
// Besides C0, DEL and C1 controls it rejects the line and paragraph
// separators and the bidirectional formatting characters, which can make a
// value render as something else in a log or a terminal.
func checkText(s string, max int) string {
	if s == "" {
		return "is empty"
	}
	if len(s) > max {
		return "longer than " + strconv.Itoa(max) + " bytes"
	}
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, r := range s {
		if isControl(r) {
			return "contains a control character"
		}
	}
	return ""
}

func isControl(r rune) bool {
	switch {
	case unicode.IsControl(r):
		return true
	case r == '\u2028', r == '\u2029': // line, paragraph separator
		return true
	case r == '\u061c', r == '\u200e', r == '\u200f': // ALM, LRM, RLM
		return true
	case r >= '\u202a' && r <= '\u202e': // LRE, RLE, PDF, LRO, RLO
		return true
	case r >= '\u2066' && r <= '\u2069': // LRI, RLI, FSI, PDI
		return true
	}
	return false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// quote quotes a public input for an error message, cut to quoteLimit bytes
// on a rune boundary.
func quote(s string) string {
	if len(s) <= quoteLimit {
		return strconv.Quote(s)
	}
	cut := quoteLimit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}

func partyError(s, why string) error {
	return fmt.Errorf("%w %s: %s", ErrInvalidParty, quote(s), why)
}

// Principal is who asks: one or more parties. A Fabric caller, for example,
// is both fabric:Org1MSP/alice and org:Org1MSP. The parties must be
// canonical; Decide compares them byte for byte.
type Principal struct {
	Parties []Party
	// Custodian is the organisation of the node deciding. When set, a grant
	// to a party that is not an org: party counts only if its Custodian is
	// this organisation (or empty): token:, fabric: and eth: names are
	// authenticated by their custodian's nodes, so another organisation's
	// node must not honour them — its own "token:app" is someone else.
	Custodian string
}

// String joins the parties with "+", e.g. "fabric:Org1MSP/alice+org:Org1MSP",
// or returns "(no party)" for an empty principal.
func (p Principal) String() string {
	switch len(p.Parties) {
	case 0:
		return "(no party)"
	case 1:
		return string(p.Parties[0])
	}
	var b strings.Builder
	for i, q := range p.Parties {
		if i > 0 {
			b.WriteByte('+')
		}
		b.WriteString(string(q))
	}
	return b.String()
}
