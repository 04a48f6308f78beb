package fabricidtest

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ProposalSpec describes a Fabric transaction proposal as a client SDK
// builds it (fabric-gateway's proposal builder): a channel header of type
// ENDORSER_TRANSACTION naming channel, tx id, timestamp and the chaincode,
// a signature header with creator and nonce, and the chaincode invocation
// with its transient map as payload.
type ProposalSpec struct {
	Channel   string
	Chaincode string
	Creator   []byte // marshalled msp.SerializedIdentity
	Nonce     []byte // nil: 24 random bytes
	TxID      string // "": hex(SHA-256(nonce ‖ creator)), as Fabric computes it
	Timestamp time.Time
	Args      [][]byte
	Transient map[string][]byte
	// HeaderType is the channel header type; 0 means ENDORSER_TRANSACTION.
	HeaderType common.HeaderType
}

// WithCreator returns s with creator set.
func (s ProposalSpec) WithCreator(creator []byte) ProposalSpec {
	s.Creator = creator
	return s
}

// TxID returns hex(SHA-256(nonce ‖ creator)), Fabric's transaction id.
func TxID(nonce, creator []byte) string {
	h := sha256.New()
	h.Write(nonce)
	h.Write(creator)
	return hex.EncodeToString(h.Sum(nil))
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic("fabricidtest: marshal: " + err.Error())
	}
	return b
}

// Build fills in the nonce and tx id if they are empty and returns the
// completed spec and the marshalled peer.Proposal.
func (s ProposalSpec) Build() (ProposalSpec, []byte) {
	if s.Nonce == nil {
		s.Nonce = make([]byte, 24)
		if _, err := rand.Read(s.Nonce); err != nil {
			panic(err)
		}
	}
	if s.TxID == "" {
		s.TxID = TxID(s.Nonce, s.Creator)
	}
	typ := s.HeaderType
	if typ == 0 {
		typ = common.HeaderType_ENDORSER_TRANSACTION
	}
	ccID := &peer.ChaincodeID{Name: s.Chaincode}
	ch := &common.ChannelHeader{
		Type: int32(typ), ChannelId: s.Channel, TxId: s.TxID,
		Timestamp: timestamppb.New(s.Timestamp),
		Extension: mustMarshal(&peer.ChaincodeHeaderExtension{ChaincodeId: ccID}),
	}
	sh := &common.SignatureHeader{Creator: s.Creator, Nonce: s.Nonce}
	hdr := &common.Header{ChannelHeader: mustMarshal(ch), SignatureHeader: mustMarshal(sh)}
	cis := &peer.ChaincodeInvocationSpec{ChaincodeSpec: &peer.ChaincodeSpec{
		Type: peer.ChaincodeSpec_GOLANG, ChaincodeId: ccID, Input: &peer.ChaincodeInput{Args: s.Args}}}
	payload := &peer.ChaincodeProposalPayload{Input: mustMarshal(cis), TransientMap: s.Transient}
	prop := &peer.Proposal{Header: mustMarshal(hdr), Payload: mustMarshal(payload)}
	return s, mustMarshal(prop)
}

// SignProposal builds s with id as creator (s.Creator is set to
// id.Creator() when empty) and signs the proposal bytes as a Fabric client
// does. It returns the completed spec and the marshalled SignedProposal.
func (id *Identity) SignProposal(s ProposalSpec) (ProposalSpec, []byte) {
	if s.Creator == nil {
		s.Creator = id.Creator()
	}
	s, prop := s.Build()
	return s, mustMarshal(&peer.SignedProposal{ProposalBytes: prop, Signature: id.Sign(prop)})
}

// Unsigned returns the marshalled SignedProposal of a spec with the given
// signature bytes (nil for none), for forgeries.
func Unsigned(s ProposalSpec, signature []byte) (ProposalSpec, []byte) {
	s, prop := s.Build()
	return s, mustMarshal(&peer.SignedProposal{ProposalBytes: prop, Signature: signature})
}

// Sign signs msg as Fabric's MSP signer does: ECDSA over SHA-256(msg),
// ASN.1 DER, with s normalised to the lower half of the group order.
func (id *Identity) Sign(msg []byte) []byte {
	digest := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, id.Key, digest[:])
	if err != nil {
		panic("fabricidtest: sign: " + err.Error())
	}
	n := id.Key.Curve.Params().N
	if s.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
		s.Sub(n, s)
	}
	b, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
	if err != nil {
		panic(err)
	}
	return b
}

// HighS returns sig (a DER ECDSA signature by id) with s replaced by N-s:
// a valid ECDSA signature that Fabric's verifier refuses.
func (id *Identity) HighS(sig []byte) []byte {
	var v struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(sig, &v); err != nil {
		panic(err)
	}
	v.S = new(big.Int).Sub(id.Key.Curve.Params().N, v.S)
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// IssueOptions shape a certificate for certificate-check tests.
type IssueOptions struct {
	KeyUsage x509.KeyUsage // 0: digitalSignature
	IsCA     bool
}

// IssueWith makes a certificate for subject with opts, valid from an hour
// ago for a year.
func (ca *CA) IssueWith(subject pkix.Name, opts IssueOptions) (*Identity, error) {
	ku := opts.KeyUsage
	if ku == 0 {
		ku = x509.KeyUsageDigitalSignature
	}
	return ca.issueTmpl(subject, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour), ku, opts.IsCA)
}

// CRL returns a PEM "X509 CRL" signed by ca that revokes ids.
func (ca *CA) CRL(ids ...*Identity) ([]byte, error) {
	var entries []x509.RevocationListEntry
	for _, id := range ids {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: id.Cert.SerialNumber, RevocationTime: time.Now().Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(ca.serial.Add(1)), ThisUpdate: time.Now().Add(-time.Hour), NextUpdate: time.Now().Add(24 * time.Hour),
		RevokedCertificateEntries: entries,
	}, ca.Cert, ca.key)
	if err != nil {
		return nil, fmt.Errorf("fabricidtest: CRL: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}
