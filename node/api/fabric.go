package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/kms"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/fabricid"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/token"
	"github.com/keymesh/keymesh/vault/envelope"
)

// Chaincode tokens.
//
// A token with role chaincode belongs to a Fabric chaincode, and its own
// party (token:<name>) is never given data access. Each request must carry
// the signed proposal of the transaction the chaincode is executing, in
// the X-Keymesh-Fabric-Proposal header (standard base64 of the marshalled
// peer.SignedProposal from stub.GetSignedProposal). The node verifies it
// (package fabricid: the creator's certificate against the CAs, CRLs and
// NodeOUs of its MSP, the creator's signature over the proposal, the tx
// id, the timestamp window), checks that its channel, chaincode and
// creator MSP are within the token's binding, admits it in the replay
// cache (one transaction, one token, one window), and then decides as the
// creator: fabric:<MSP>/<subject> and org:<MSP>, subject in RFC 4514 form
// (e.g. "CN=user1,OU=client,O=Org2,C=US").
//
// Refusals:
//
//	chaincode token without the proposal header, a proposal that is
//	malformed, unsigned or signed by another key, stale, of an unknown
//	MSP, a certificate that does not chain, is expired, revoked, a CA or
//	of a refused NodeOU role; a channel, chaincode or MSP outside the
//	token's binding; a replayed transaction                    401 invalid_creator
//	too many transactions in flight                            503 unavailable
//	the header with any other kind of token                    400 invalid_request
//
// A refused creator is written to the audit log (action "authenticate",
// outcome "deny", the token's party as principal), because the token itself
// was valid. The request's audit entries name
// "<creator parties> via token:<name> tx <tx id>".

// maxProposalHeader bounds the header: base64 of the largest proposal
// fabricid accepts. The HTTP server's header limit must exceed it.
var maxProposalHeader = base64.StdEncoding.EncodedLen(fabricid.MaxSignedProposal)

// maxCreatorHeader bounds the legacy creator header.
var maxCreatorHeader = base64.StdEncoding.EncodedLen(fabricid.MaxSerializedIdentity)

// callerFor returns the caller an authenticated token speaks for: its own
// party, or for a chaincode token the creator of the verified proposal.
func (s *Server) callerFor(c *gin.Context, tok token.Token) (caller, error) {
	props, hasProp := c.Request.Header[apiv1.HeaderFabricProposal]
	creators, hasCreator := c.Request.Header[apiv1.HeaderFabricCreator]
	if tok.Role != token.RoleChaincode {
		if hasProp || hasCreator {
			return caller{}, badRequest(apiv1.HeaderFabricProposal + " and " + apiv1.HeaderFabricCreator + " are accepted only with a chaincode token")
		}
		// Room for the org party authCaller adds.
		parties := append(make([]policy.Party, 0, 2), tok.Party)
		return caller{tok: tok, principal: policy.Principal{Parties: parties}, name: string(tok.Party)}, nil
	}
	p, err := s.verifyProposal(tok, props, creators)
	if err != nil {
		s.metrics.authFail.Inc()
		e := audit.Entry{Principal: string(tok.Party), Action: "authenticate", Outcome: audit.OutcomeDeny, Reason: err.Error()}
		if aerr := s.cfg.Core.Record(c, e); aerr != nil {
			return caller{}, aerr
		}
		return caller{}, err
	}
	pr := p.Creator.Principal()
	return caller{tok: tok, principal: pr, proposal: &p,
		name: pr.String() + " via " + string(tok.Party) + " tx " + p.TxID}, nil
}

func (s *Server) verifyProposal(tok token.Token, props, creators []string) (fabricid.Proposal, error) {
	refuse := func(format string, a ...any) (fabricid.Proposal, error) {
		return fabricid.Proposal{}, fmt.Errorf("%w: "+format, append([]any{fabricid.ErrInvalidCreator}, a...)...)
	}
	switch {
	case len(props) == 0 || strings.TrimSpace(props[0]) == "":
		return refuse("a chaincode token must send the transaction's signed proposal in the %s header (chaincode/fabric does)", apiv1.HeaderFabricProposal)
	case len(props) > 1:
		return refuse("more than one %s header", apiv1.HeaderFabricProposal)
	case len(props[0]) > maxProposalHeader:
		return refuse("the %s header is longer than %d bytes", apiv1.HeaderFabricProposal, maxProposalHeader)
	case len(creators) > 1 || len(creators) == 1 && len(creators[0]) > maxCreatorHeader:
		return refuse("more than one or an oversized %s header", apiv1.HeaderFabricCreator)
	case tok.Binding.IsZero():
		return refuse("chaincode token %s names no channel, chaincode and MSPs; create a new one with keymesh token create --role chaincode --channel C --chaincode N --msp M", tok.ID)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(props[0]))
	if err != nil {
		return refuse("the %s header is not standard base64", apiv1.HeaderFabricProposal)
	}
	now := s.cfg.Clock()
	// A later call of a transaction already verified skips the signature
	// and certificate checks (the replay cache knows these exact bytes).
	p, known := s.replay.Known(raw, now, s.cfg.Fabric.Window())
	if !known {
		if p, err = s.cfg.Fabric.VerifyProposal(raw, now); err != nil {
			return fabricid.Proposal{}, err
		}
	}
	if len(creators) == 1 {
		cr, err := base64.StdEncoding.DecodeString(strings.TrimSpace(creators[0]))
		if err != nil || !bytes.Equal(cr, p.CreatorBytes) {
			return refuse("the %s header names another creator than the proposal", apiv1.HeaderFabricCreator)
		}
	}
	if !tok.Binding.Allows(p.Channel, p.Chaincode, p.Creator.MSPID) {
		return refuse("transaction %s (channel %s, chaincode %s, MSP %s) is outside chaincode token %s's binding (%s)",
			p.TxID, strconv.Quote(p.Channel), strconv.Quote(p.Chaincode), strconv.Quote(p.Creator.MSPID), tok.ID, tok.Binding)
	}
	if err := s.replay.Check(p, tok.ID, now); err != nil {
		return fabricid.Proposal{}, err
	}
	return p, nil
}

// endorsementInput is what endorsement mode takes from the verified
// proposal: the transaction time, and the derivation input that
// vault/envelope takes as "txID" (its synthetic IV derives from it, the
// associated data and the plaintext): the tx id, "/", and the hex SHA-256
// of the creator's serialized identity — 129 bytes, within
// envelope.MaxTxIDLen. So the verified creator enters the derivation (it
// already does through the tx id, SHA-256(nonce ‖ creator); this makes it
// explicit and independent of Fabric's tx id rule) without a change to the
// envelope package.
func endorsementInput(p *fabricid.Proposal) string {
	h := sha256.Sum256(p.CreatorBytes)
	return p.TxID + "/" + hex.EncodeToString(h[:])
}

// endorser admits the endorsement-mode items of a request made for the
// verified transaction p (kms.Endorser).
type endorser struct {
	s *Server
	p *fabricid.Proposal
}

// Endorse admits one item: a tx_id or tx_time in the request must be the
// proposal's, and a second, different plaintext for the same key, context
// and transaction is refused. The item is sealed with the proposal's
// derivation input (endorsementInput) and time.
func (e endorser) Endorse(key string, it kms.EncryptItem) (string, time.Time, error) {
	p := e.p
	if it.TxID != "" && it.TxID != p.TxID {
		return "", time.Time{}, fmt.Errorf("%w: tx_id %s is not the proposal's transaction id", kms.ErrEndorsementRefused, strconv.Quote(it.TxID))
	}
	if !it.TxTime.IsZero() && !it.TxTime.Equal(p.Timestamp) {
		return "", time.Time{}, fmt.Errorf("%w: tx_time is not the proposal's timestamp", kms.ErrEndorsementRefused)
	}
	if err := e.s.replay.Endorse(p.TxID, key, canonicalContext(it.Context), it.Plaintext); err != nil {
		return "", time.Time{}, err
	}
	return endorsementInput(p), p.Timestamp, nil
}

// kmsCaller is the caller of an authenticated request as the domain core
// takes it.
func (s *Server) kmsCaller(c *gin.Context) kms.Caller { return s.kmsCallerOf(callerOf(c)) }

// kmsCallerOf is cl as the domain core names callers.
func (s *Server) kmsCallerOf(cl caller) kms.Caller {
	out := kms.Caller{Principal: cl.principal, Name: cl.name}
	if cl.proposal != nil {
		out.Endorser = endorser{s: s, p: cl.proposal}
	}
	return out
}

// canonicalContext encodes ctx injectively: sorted entries, each
// length-prefixed.
func canonicalContext(ctx envelope.Context) string {
	keys := make([]string, 0, len(ctx))
	for k := range ctx {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(strconv.Itoa(len(k)) + ":" + k + strconv.Itoa(len(ctx[k])) + ":" + ctx[k])
	}
	return b.String()
}
