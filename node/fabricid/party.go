package fabricid

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"strings"

	"github.com/keymesh/keymesh/policy"
)

// PartyOf returns the fabric: party of the certificate in certPEM (a PEM
// "CERTIFICATE" block, as in an MSP's signcerts folder) for MSP mspID:
// exactly what [Identity.Party] yields when that certificate signs a
// proposal.
func PartyOf(mspID string, certPEM []byte) (policy.Party, error) {
	blk, _ := pem.Decode(certPEM)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return "", fmt.Errorf("fabricid: no PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", fmt.Errorf("fabricid: certificate: %w", err)
	}
	p := Identity{MSPID: mspID, Subject: cert.Subject.String()}.Party()
	if err := p.Validate(); err != nil {
		return "", err
	}
	return p, nil
}

// PartyOfFile is PartyOf for a certificate file.
func PartyOfFile(mspID, path string) (policy.Party, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("fabricid: %w", err)
	}
	return PartyOf(mspID, b)
}

// CanonicalParty returns p in the one form a verified creator yields: for
// a fabric: party, its subject parsed as an RFC 4514 distinguished name
// (attributes CN, OU, O, L, ST, C, STREET, POSTALCODE, SERIALNUMBER, in
// any order, separated by "," or "+", with RFC 4514 escapes) and rewritten
// as Go's pkix.Name.String writes a certificate's subject. Other parties
// are returned as they are. A subject with an attribute outside that set
// is accepted only in the form pkix.Name.String gives it (dotted OID and
// #hex value), and returned unchanged. An attribute with an empty value,
// an unknown name, or a value with leading or trailing spaces is an error
// wrapping policy.ErrInvalidParty.
func CanonicalParty(p policy.Party) (policy.Party, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	rest, ok := strings.CutPrefix(string(p), policy.KindFabric+":")
	if !ok {
		return p, nil
	}
	msp, subject, _ := strings.Cut(rest, "/")
	bad := func(format string, a ...any) (policy.Party, error) {
		return "", fmt.Errorf("%w: %s: subject %s", policy.ErrInvalidParty, quote(string(p)), fmt.Sprintf(format, a...))
	}
	attrs, err := splitDN(subject)
	if err != nil {
		return bad("%v", err)
	}
	var n pkix.Name
	for _, a := range attrs {
		if a.value == "" {
			return bad("attribute %s has an empty value", a.typ)
		}
		if strings.TrimSpace(a.value) != a.value {
			return bad("attribute %s has leading or trailing spaces (quote the party in the shell)", a.typ)
		}
		switch strings.ToUpper(a.typ) {
		case "CN":
			if n.CommonName != "" {
				return bad("names CN twice")
			}
			n.CommonName = a.value
		case "OU":
			n.OrganizationalUnit = append(n.OrganizationalUnit, a.value)
		case "O":
			n.Organization = append(n.Organization, a.value)
		case "L":
			n.Locality = append(n.Locality, a.value)
		case "ST":
			n.Province = append(n.Province, a.value)
		case "C":
			n.Country = append(n.Country, a.value)
		case "STREET":
			n.StreetAddress = append(n.StreetAddress, a.value)
		case "POSTALCODE":
			n.PostalCode = append(n.PostalCode, a.value)
		case "SERIALNUMBER":
			if n.SerialNumber != "" {
				return bad("names SERIALNUMBER twice")
			}
			n.SerialNumber = a.value
		default:
			if isOID(a.typ) && a.hex {
				return p, nil // as pkix.Name.String renders an attribute it has no name for
			}
			return bad("attribute %s is not one of CN, OU, O, L, ST, C, STREET, POSTALCODE, SERIALNUMBER (for others, print the party with: keymesh fabric party --cert FILE)", quote(a.typ))
		}
	}
	out := policy.Party(policy.KindFabric + ":" + msp + "/" + n.String())
	if err := out.Validate(); err != nil {
		return "", err
	}
	return out, nil
}

type dnAttr struct {
	typ, value string
	hex        bool // value was #hex
}

// splitDN splits an RFC 4514 string into its attributes, undoing escapes.
func splitDN(s string) ([]dnAttr, error) {
	if s == "" {
		return nil, fmt.Errorf("is empty")
	}
	var out []dnAttr
	var cur strings.Builder
	var a dnAttr
	inValue := false
	flush := func() error {
		if !inValue {
			return fmt.Errorf("attribute %s has no \"=\"", quote(cur.String()))
		}
		a.value = cur.String()
		if strings.HasPrefix(a.value, "#") && !a.hex {
			if _, err := hex.DecodeString(a.value[1:]); err != nil {
				return fmt.Errorf("attribute %s: bad #hex value", a.typ)
			}
			a.hex = true
		}
		out = append(out, a)
		cur.Reset()
		a, inValue = dnAttr{}, false
		return nil
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("ends in a lone backslash")
			}
			next := s[i+1]
			if strings.IndexByte(`,+"\<>;= #`, next) >= 0 {
				cur.WriteByte(next)
				i++
				continue
			}
			if i+2 < len(s) {
				if b, err := hex.DecodeString(s[i+1 : i+3]); err == nil {
					cur.WriteByte(b[0])
					i += 2
					continue
				}
			}
			return nil, fmt.Errorf("has a bad escape at byte %d", i)
		case c == '=' && !inValue:
			a.typ = strings.TrimSpace(cur.String())
			if a.typ == "" {
				return nil, fmt.Errorf("has an attribute without a type")
			}
			cur.Reset()
			inValue = true
		case c == ',' || c == '+':
			if err := flush(); err != nil {
				return nil, err
			}
		default:
			cur.WriteByte(c)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

func isOID(s string) bool {
	if s == "" {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" || strings.Trim(part, "0123456789") != "" {
			return false
		}
	}
	return strings.Contains(s, ".")
}
