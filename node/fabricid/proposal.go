package fabricid

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/hex"
	"math/big"
	"strconv"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
)

// MaxSignedProposal bounds the marshalled SignedProposal accepted, in
// bytes. It holds the chaincode arguments and the transient map, so a
// transaction whose arguments and transient data exceed ~250 KiB cannot
// use keymesh.
const MaxSignedProposal = 256 << 10

// Proposal is a verified signed proposal: the transaction a chaincode is
// executing, proven by its creator's signature.
type Proposal struct {
	TxID      string    // hex(SHA-256(nonce ‖ creator)), checked
	Channel   string    // the channel header's channel id
	Chaincode string    // the chaincode the proposal invokes
	Timestamp time.Time // the channel header's timestamp, UTC
	Creator   Identity  // the verified creator
	// CreatorBytes is the marshalled SerializedIdentity that signed.
	CreatorBytes []byte
	// Digest is SHA-256 of the marshalled SignedProposal: two requests
	// with the same Digest carry the same proposal.
	Digest [sha256.Size]byte
}

// VerifyProposal parses signed (a marshalled peer.SignedProposal, what
// stub.GetSignedProposal returns) and checks it as the package
// documentation describes, at time now. Every failure is an [*Error]
// wrapping [ErrInvalidCreator].
func (v *Verifier) VerifyProposal(signed []byte, now time.Time) (Proposal, error) {
	bad := func(reason string) (Proposal, error) {
		return Proposal{}, &Error{Kind: ErrProposal, Reason: reason}
	}
	if len(signed) == 0 {
		return bad("empty")
	}
	if len(signed) > MaxSignedProposal {
		return bad("longer than " + strconv.Itoa(MaxSignedProposal) + " bytes")
	}
	var sp peer.SignedProposal
	if err := proto.Unmarshal(signed, &sp); err != nil || len(sp.GetProposalBytes()) == 0 {
		return bad("not a SignedProposal")
	}
	var prop peer.Proposal
	if err := proto.Unmarshal(sp.GetProposalBytes(), &prop); err != nil {
		return bad("proposal does not parse")
	}
	var hdr common.Header
	if err := proto.Unmarshal(prop.GetHeader(), &hdr); err != nil {
		return bad("header does not parse")
	}
	var ch common.ChannelHeader
	if err := proto.Unmarshal(hdr.GetChannelHeader(), &ch); err != nil {
		return bad("channel header does not parse")
	}
	var sh common.SignatureHeader
	if err := proto.Unmarshal(hdr.GetSignatureHeader(), &sh); err != nil {
		return bad("signature header does not parse")
	}
	if ch.GetType() != int32(common.HeaderType_ENDORSER_TRANSACTION) {
		return bad("channel header type " + strconv.Itoa(int(ch.GetType())) + " is not ENDORSER_TRANSACTION")
	}
	if ch.GetChannelId() == "" {
		return bad("no channel id")
	}
	ts := ch.GetTimestamp()
	if ts == nil || !ts.IsValid() {
		return bad("no valid timestamp")
	}
	var ext peer.ChaincodeHeaderExtension
	if err := proto.Unmarshal(ch.GetExtension(), &ext); err != nil || ext.GetChaincodeId().GetName() == "" {
		return bad("no chaincode id in the channel header extension")
	}
	if len(sh.GetNonce()) == 0 {
		return bad("no nonce")
	}

	id, err := v.Verify(sh.GetCreator(), now)
	if err != nil {
		return Proposal{}, err
	}
	fail := func(kind error, reason string) (Proposal, error) {
		return Proposal{}, &Error{MSPID: id.MSPID, Kind: kind, Reason: reason}
	}
	if !verifySignature(id, sp.GetProposalBytes(), sp.GetSignature()) {
		return fail(ErrSignature, "the signature over the proposal does not verify with the creator's certificate")
	}
	h := sha256.New()
	h.Write(sh.GetNonce())
	h.Write(sh.GetCreator())
	if want := hex.EncodeToString(h.Sum(nil)); ch.GetTxId() != want {
		return fail(ErrSignature, "the transaction id is not SHA-256(nonce ‖ creator)")
	}
	at := ts.AsTime().UTC()
	if d := now.Sub(at); d > v.Window() || d < -v.Window() {
		return fail(ErrStale, "timestamp "+at.Format(time.RFC3339)+" is more than "+v.Window().String()+" from the node's clock")
	}
	return Proposal{
		TxID: ch.GetTxId(), Channel: ch.GetChannelId(), Chaincode: ext.GetChaincodeId().GetName(), Timestamp: at,
		Creator: id, CreatorBytes: append([]byte(nil), sh.GetCreator()...), Digest: sha256.Sum256(signed),
	}, nil
}

// verifySignature checks sig over msg as Fabric 2.5's MSP does: ECDSA,
// ASN.1 DER, over SHA-256(msg), s in the lower half of the order.
func verifySignature(id Identity, msg, sig []byte) bool {
	pub, ok := id.Cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || len(sig) == 0 {
		return false
	}
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(sig, &rs)
	if err != nil || len(rest) != 0 || rs.R == nil || rs.S == nil || rs.R.Sign() <= 0 || rs.S.Sign() <= 0 {
		return false
	}
	if rs.S.Cmp(new(big.Int).Rsh(pub.Curve.Params().N, 1)) > 0 {
		return false // high S: Fabric refuses it ("Invalid S. Must be smaller than half the order")
	}
	digest := sha256.Sum256(msg)
	return ecdsa.VerifyASN1(pub, digest[:], sig)
}
