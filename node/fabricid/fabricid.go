// Package fabricid verifies the Hyperledger Fabric identity of a
// transaction creator for keymesh, from the transaction itself: a chaincode
// sends the signed proposal it is executing (stub.GetSignedProposal), and
// [Verifier.VerifyProposal] checks it as an endorsing peer would before it
// turns the creator into the policy parties it speaks for.
//
// Start with [Load] (CA and CRL files named in the node configuration) or
// [New] (certificate pools), then call [Verifier.VerifyProposal] once per
// request, and [Replay.Check] with its result. [Verifier.Verify] checks a
// bare creator (a marshalled msp.SerializedIdentity): on its own it proves
// nothing, certificates being public on the ledger.
//
// # What is checked
//
// For a signed proposal:
//
//   - It parses as SignedProposal → Proposal → Header → ChannelHeader
//     (type ENDORSER_TRANSACTION, a channel, a timestamp, a
//     ChaincodeHeaderExtension naming the chaincode) and SignatureHeader
//     (creator and nonce).
//   - The creator passes every certificate check below.
//   - The signature over the proposal bytes verifies with the creator
//     certificate's key: ECDSA over SHA-256 with s in the lower half of the
//     group order, as Fabric 2.5's MSP signs and verifies (Fabric 2.5 MSPs
//     know no other algorithm; Ed25519 came with Fabric 3).
//   - The transaction id is hex(SHA-256(nonce ‖ creator)).
//   - The timestamp lies within the verifier's window of the node's clock
//     (default [DefaultProposalWindow], either way).
//
// For a creator:
//
//   - The bytes are a SerializedIdentity whose mspid is a well-formed
//     organisation id and names an MSP the node is configured with.
//   - Its id_bytes hold exactly one PEM "CERTIFICATE" block (Fabric's form).
//   - The certificate is not a CA certificate (Fabric's MSP refuses those
//     as identities) and carries the digitalSignature key usage.
//   - It chains, through the MSP's configured intermediates if any, to one
//     of the MSP's configured root CAs, and every certificate of the chain
//     is valid at the verification time. Any extended key usage is
//     accepted (Fabric client certificates often carry none).
//   - It is not revoked by a CRL configured for the MSP (each CRL's
//     signature is checked against the MSP's CAs when it is loaded).
//   - When the MSP's NodeOUs are enabled, it carries exactly one role OU
//     (client, peer, admin or orderer, by the configured identifiers), and
//     that role is one the MSP configuration accepts as a creator.
//
// Not checked: the MSP's other identity-validity rules (OU certifier
// identifiers, the orderer-side rules). Configure the MSP's CAs as
// narrowly as the organisation's client-issuing CA allows.
//
// # Identity form
//
// A creator speaks for two parties:
//
//	fabric:<MSPID>/<subject>   subject = the certificate subject in RFC 4514
//	                           form as Go's pkix.Name.String writes it,
//	                           e.g. "CN=user1,OU=client,O=Org2,C=US"
//	org:<MSPID>
//
// The full subject, not the common name alone, names the identity: two
// certificates of one MSP with the same CN but different OUs are different
// identities. Grants must spell the subject exactly as [Identity.Party]
// returns it; [CanonicalParty] rewrites a subject given in another order
// or form into it, and `keymesh fabric party --cert FILE` prints it.
package fabricid

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/msp"
	"google.golang.org/protobuf/proto"

	"github.com/keymesh/keymesh/policy"
)

// MaxSerializedIdentity bounds the marshalled SerializedIdentity accepted,
// in bytes. A Fabric creator (MSP id plus one PEM certificate) is 1–2 KiB.
const MaxSerializedIdentity = 16 << 10

// Errors to branch on. Every error Verify returns wraps ErrInvalidCreator
// and, where it applies, one of the more specific ones.
var (
	// ErrInvalidCreator is wrapped by every verification failure.
	ErrInvalidCreator = errors.New("fabricid: transaction creator refused")
	// ErrMalformed reports bytes that are not a SerializedIdentity holding
	// one PEM certificate.
	ErrMalformed = errors.New("malformed creator")
	// ErrUnknownMSP reports an MSP id the node has no CA for.
	ErrUnknownMSP = errors.New("unknown MSP")
	// ErrUntrusted reports a certificate that does not chain to the MSP's
	// CAs, or is not valid at the verification time.
	ErrUntrusted = errors.New("certificate not trusted")
	// ErrNotIdentity reports a certificate that cannot be a Fabric
	// identity: a CA certificate, or one without the digitalSignature key
	// usage.
	ErrNotIdentity = errors.New("certificate cannot be a transaction creator")
	// ErrRevoked reports a certificate revoked by a configured CRL.
	ErrRevoked = errors.New("certificate revoked")
	// ErrRole reports a NodeOU role missing, ambiguous or not accepted.
	ErrRole = errors.New("NodeOU role refused")
	// ErrProposal reports a signed proposal that does not parse or is not
	// an endorser transaction proposal.
	ErrProposal = errors.New("malformed signed proposal")
	// ErrSignature reports a proposal whose signature does not verify
	// with the creator's certificate key, or whose transaction id is not
	// derived from its nonce and creator.
	ErrSignature = errors.New("proposal signature invalid")
	// ErrStale reports a proposal timestamp outside the window.
	ErrStale = errors.New("proposal outside the time window")
	// ErrReplay reports a transaction id used beyond what one transaction
	// may do: with another proposal, another chaincode token, another
	// channel or chaincode than the token is bound to, or after the window.
	ErrReplay = errors.New("proposal refused")
)

// Error is a verification failure. Its message names the MSP and the
// reason; certificates are public, so it may be shown to the caller.
type Error struct {
	MSPID  string // "" when the bytes could not be parsed
	Kind   error  // ErrMalformed, ErrUnknownMSP or ErrUntrusted
	Reason string
}

// Error returns "fabricid: transaction creator refused: [MSP "<id>": ]<kind>: <reason>".
func (e *Error) Error() string {
	s := ErrInvalidCreator.Error() + ": "
	if e.MSPID != "" {
		s += "MSP " + quote(e.MSPID) + ": "
	}
	s += e.Kind.Error()
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Unwrap returns ErrInvalidCreator and the kind.
func (e *Error) Unwrap() []error { return []error{ErrInvalidCreator, e.Kind} }

// MSPConfig names the PEM files of one MSP's trusted CAs, as the node
// configuration holds them (fabric_msps: {Org1MSP: {cas: [...]}}).
type MSPConfig struct {
	// CAs are PEM files of root CA certificates (several per file allowed).
	CAs []string `yaml:"cas"`
	// IntermediateCAs are PEM files of intermediate CA certificates, for
	// creators whose chain passes through one.
	IntermediateCAs []string `yaml:"intermediate_cas"`
	// CRLs are PEM files of certificate revocation lists ("X509 CRL"
	// blocks) issued by the MSP's CAs, as in the MSP's crls folder.
	CRLs []string `yaml:"crls"`
	// NodeOUs mirrors the MSP's config.yaml NodeOUs section.
	NodeOUs *NodeOUs `yaml:"node_ous"`
}

// MSP is one MSP's trust anchors.
type MSP struct {
	Roots         *x509.CertPool
	Intermediates *x509.CertPool // may be nil
	// CRLs are revocation lists whose signatures were checked against
	// the MSP's CAs (see [LoadCRLs]).
	CRLs []*x509.RevocationList
	// NodeOUs, when enabled, classifies creators by role OU.
	NodeOUs *NodeOUs
}

// Verifier checks creators against the MSPs it was built with. It is
// immutable and safe for concurrent use. The zero value and nil know no MSP
// and refuse every creator.
type Verifier struct {
	msps   map[string]MSP
	window time.Duration
}

// DefaultProposalWindow is how far a proposal's timestamp may lie from the
// node's clock, either way. Fabric clients stamp proposals when they build
// them; the chaincode calls the node while the peer simulates, within the
// peer's chaincode execution timeout (30 s by default).
const DefaultProposalWindow = 5 * time.Minute

// Option configures [New] and [Load].
type Option func(*Verifier) error

// WithProposalWindow sets how far a proposal's timestamp may lie from the
// node's clock (default [DefaultProposalWindow]); it also bounds how long
// one transaction id may be used (see [Replay]).
func WithProposalWindow(d time.Duration) Option {
	return func(v *Verifier) error {
		if d <= 0 || d > 24*time.Hour {
			return fmt.Errorf("fabricid: proposal window %v: want a positive duration of at most 24h", d)
		}
		v.window = d
		return nil
	}
}

// Window returns the proposal window.
func (v *Verifier) Window() time.Duration {
	if v == nil || v.window == 0 {
		return DefaultProposalWindow
	}
	return v.window
}

// New returns a verifier of the given MSPs, keyed by MSP id.
func New(msps map[string]MSP, opts ...Option) (*Verifier, error) {
	v := &Verifier{msps: make(map[string]MSP, len(msps)), window: DefaultProposalWindow}
	for _, o := range opts {
		if err := o(v); err != nil {
			return nil, err
		}
	}
	for id, m := range msps {
		if !policy.ValidOrgID(id) {
			return nil, fmt.Errorf("fabricid: MSP id %s is not a valid organisation id", quote(id))
		}
		if m.Roots == nil {
			return nil, fmt.Errorf("fabricid: MSP %s has no root CA", quote(id))
		}
		if err := m.NodeOUs.check(); err != nil {
			return nil, fmt.Errorf("fabricid: MSP %s: %w", quote(id), err)
		}
		v.msps[id] = m
	}
	return v, nil
}

// Load reads the CA files of each MSP and returns a verifier of them. A
// file that cannot be read, or holds no certificate, or a certificate that
// is not a CA, is an error: a node must not start with a trust list other
// than the one its operator wrote.
func Load(cfg map[string]MSPConfig, opts ...Option) (*Verifier, error) {
	msps := make(map[string]MSP, len(cfg))
	for id, c := range cfg {
		if len(c.CAs) == 0 {
			return nil, fmt.Errorf("fabricid: MSP %s: no CA file (cas) given", quote(id))
		}
		roots, err := loadPool(c.CAs)
		if err != nil {
			return nil, fmt.Errorf("fabricid: MSP %s: %w", quote(id), err)
		}
		m := MSP{Roots: roots, NodeOUs: c.NodeOUs}
		var cas []*x509.Certificate
		cas, _ = loadCerts(c.CAs)
		if len(c.IntermediateCAs) > 0 {
			if m.Intermediates, err = loadPool(c.IntermediateCAs); err != nil {
				return nil, fmt.Errorf("fabricid: MSP %s: %w", quote(id), err)
			}
			ints, _ := loadCerts(c.IntermediateCAs)
			cas = append(cas, ints...)
		}
		if len(c.CRLs) > 0 {
			if m.CRLs, err = LoadCRLs(c.CRLs, cas); err != nil {
				return nil, fmt.Errorf("fabricid: MSP %s: %w", quote(id), err)
			}
		}
		msps[id] = m
	}
	return New(msps, opts...)
}

func loadPool(files []string) (*x509.CertPool, error) {
	certs, err := loadCerts(files)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// loadCerts reads the CA certificates of files; every file must hold at
// least one, and each must be a CA.
func loadCerts(files []string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	err := eachPEM(files, "CERTIFICATE", "CA", "PEM certificate", func(f string, der []byte) error {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("CA file %s: %w", quote(f), err)
		}
		if !cert.IsCA {
			return fmt.Errorf("CA file %s: certificate %s is not a CA", quote(f), quote(cert.Subject.String()))
		}
		out = append(out, cert)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachPEM calls fn with every PEM block of type typ in each of files, and
// fails for a file that holds none. what names the files in errors ("CA"
// file, "CRL" file), none what they lack.
func eachPEM(files []string, typ, what, none string, fn func(file string, der []byte) error) error {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("reading %s file: %w", what, err)
		}
		n := 0
		for {
			var blk *pem.Block
			blk, b = pem.Decode(b)
			if blk == nil {
				break
			}
			if blk.Type != typ {
				continue
			}
			if err := fn(f, blk.Bytes); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return fmt.Errorf("%s file %s holds no %s", what, quote(f), none)
		}
	}
	return nil
}

// MSPs returns the configured MSP ids, sorted.
func (v *Verifier) MSPs() []string {
	if v == nil {
		return nil
	}
	ids := make([]string, 0, len(v.msps))
	for id := range v.msps {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Identity is a verified creator.
type Identity struct {
	MSPID   string
	Subject string // RFC 4514, as pkix.Name.String writes it
	Cert    *x509.Certificate
	// Role is the NodeOU role ("client", "peer", "admin", "orderer") when
	// the MSP's NodeOUs are enabled, else "".
	Role string
}

// Party returns fabric:<MSPID>/<Subject>.
func (id Identity) Party() policy.Party {
	return policy.Party(policy.KindFabric + ":" + id.MSPID + "/" + id.Subject)
}

// Principal returns the creator's parties: fabric:<MSPID>/<Subject> and
// org:<MSPID>.
func (id Identity) Principal() policy.Principal {
	return policy.Principal{Parties: []policy.Party{id.Party(), policy.Party(policy.KindOrg + ":" + id.MSPID)}}
}

// Verify parses serialized (a marshalled msp.SerializedIdentity) and checks
// it as the package documentation describes, at time now. Every failure is
// an [*Error] wrapping [ErrInvalidCreator].
func (v *Verifier) Verify(serialized []byte, now time.Time) (Identity, error) {
	if len(serialized) == 0 {
		return Identity{}, &Error{Kind: ErrMalformed, Reason: "empty"}
	}
	if len(serialized) > MaxSerializedIdentity {
		return Identity{}, &Error{Kind: ErrMalformed, Reason: "longer than " + strconv.Itoa(MaxSerializedIdentity) + " bytes"}
	}
	var sid msp.SerializedIdentity
	if err := proto.Unmarshal(serialized, &sid); err != nil {
		return Identity{}, &Error{Kind: ErrMalformed, Reason: "not a SerializedIdentity"}
	}
	id := sid.GetMspid()
	if !policy.ValidOrgID(id) {
		return Identity{}, &Error{Kind: ErrMalformed, Reason: "MSP id " + quote(id) + " is not a valid organisation id"}
	}
	var m MSP
	ok := false
	if v != nil {
		m, ok = v.msps[id]
	}
	if !ok {
		return Identity{}, &Error{MSPID: id, Kind: ErrUnknownMSP, Reason: "the node has no CA configured for it"}
	}
	blk, rest := pem.Decode(sid.GetIdBytes())
	if blk == nil || blk.Type != "CERTIFICATE" {
		return Identity{}, &Error{MSPID: id, Kind: ErrMalformed, Reason: "id_bytes hold no PEM certificate"}
	}
	if r, _ := pem.Decode(rest); r != nil {
		return Identity{}, &Error{MSPID: id, Kind: ErrMalformed, Reason: "id_bytes hold more than one PEM block"}
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return Identity{}, &Error{MSPID: id, Kind: ErrMalformed, Reason: "certificate does not parse"}
	}
	if cert.IsCA {
		return Identity{}, &Error{MSPID: id, Kind: ErrNotIdentity, Reason: "a CA certificate cannot be used as an identity"}
	}
	if cert.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return Identity{}, &Error{MSPID: id, Kind: ErrNotIdentity, Reason: "the certificate lacks the digitalSignature key usage"}
	}
	chains, err := cert.Verify(x509.VerifyOptions{
		Roots:         m.Roots,
		Intermediates: m.Intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return Identity{}, &Error{MSPID: id, Kind: ErrUntrusted, Reason: untrustedReason(err)}
	}
	if revoked(m.CRLs, cert, chains) {
		return Identity{}, &Error{MSPID: id, Kind: ErrRevoked, Reason: "serial " + cert.SerialNumber.String() + " is on a CRL of the MSP"}
	}
	role, err := m.NodeOUs.role(cert)
	if err != nil {
		return Identity{}, &Error{MSPID: id, Kind: ErrRole, Reason: err.Error()}
	}
	subject := cert.Subject.String()
	out := Identity{MSPID: id, Subject: subject, Cert: cert, Role: role}
	if err := out.Party().Validate(); err != nil {
		return Identity{}, &Error{MSPID: id, Kind: ErrMalformed, Reason: "certificate subject cannot name a fabric: party (empty, over 512 bytes or with control characters)"}
	}
	return out, nil
}

// untrustedReason describes a chain failure without the verifier's full
// text, which can be long.
func untrustedReason(err error) string {
	var inv x509.CertificateInvalidError
	var unk x509.UnknownAuthorityError
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return "certificate expired or not yet valid"
	case errors.As(err, &unk):
		return "certificate does not chain to a CA configured for this MSP"
	case errors.As(err, &inv):
		return "certificate chain invalid: " + inv.Error()
	}
	return "certificate chain invalid"
}

func quote(s string) string {
	const limit = 80
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "..."
	}
	return strconv.Quote(s)
}

// ParseMSPs parses the environment form of the MSP trust list:
//
//	Org1MSP=/etc/keymesh/org1-ca.pem,/etc/keymesh/org1-ca2.pem;Org2MSP=/etc/keymesh/org2-ca.pem
//
// MSPs are separated by ";", CA files by ",". Intermediate CAs can only be
// given in the configuration file.
func ParseMSPs(s string) (map[string]MSPConfig, error) {
	out := map[string]MSPConfig{}
	for part := range strings.SplitSeq(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, files, ok := strings.Cut(part, "=")
		id = strings.TrimSpace(id)
		if !ok || !policy.ValidOrgID(id) {
			return nil, fmt.Errorf("fabricid: %s: want <MSPID>=<ca.pem>[,<ca.pem>...]", quote(part))
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("fabricid: MSP %s given twice", quote(id))
		}
		var c MSPConfig
		for f := range strings.SplitSeq(files, ",") {
			if f = strings.TrimSpace(f); f != "" {
				c.CAs = append(c.CAs, f)
			}
		}
		if len(c.CAs) == 0 {
			return nil, fmt.Errorf("fabricid: MSP %s: no CA file", quote(id))
		}
		out[id] = c
	}
	return out, nil
}
