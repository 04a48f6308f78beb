package api

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/fabricid"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/token"
)

// Chaincode tokens.
//
// A token with role chaincode belongs to a Fabric chaincode, and its own
// party (token:<name>) is never given data access. Each request must carry
// the transaction creator in the X-Keymesh-Fabric-Creator header (standard
// base64 of the marshalled msp.SerializedIdentity the chaincode got from
// stub.GetCreator). The node verifies the certificate against the CAs its
// configuration lists for the MSP (package fabricid) and then decides as
// the creator: fabric:<MSP>/<subject> and org:<MSP>, subject in RFC 4514
// form (e.g. "CN=user1,OU=client,O=Org2,C=US").
//
// Refusals:
//
//	chaincode token, header missing, malformed, unknown MSP,
//	certificate not chaining or expired                       401 invalid_creator
//	the header with any other kind of token                   400 invalid_request
//
// A refused creator is written to the audit log (action "authenticate",
// outcome "deny", the token's party as principal), because the token itself
// was valid. The audit names the chaincode token and the request's audit
// entries name "<creator parties> via token:<name>".

// maxCreatorHeader bounds the header: base64 of the largest identity
// fabricid accepts.
var maxCreatorHeader = base64.StdEncoding.EncodedLen(fabricid.MaxSerializedIdentity)

// callerFor returns the caller an authenticated token speaks for: its own
// party, or for a chaincode token the verified transaction creator.
func (s *Server) callerFor(c *gin.Context, tok token.Token) (caller, error) {
	vals, present := c.Request.Header[apiv1.HeaderFabricCreator]
	if tok.Role != token.RoleChaincode {
		if present {
			return caller{}, badRequest(apiv1.HeaderFabricCreator + " is accepted only with a chaincode token")
		}
		return caller{tok: tok, principal: policy.Principal{Parties: []policy.Party{tok.Party}}, name: string(tok.Party)}, nil
	}
	id, err := s.verifyCreator(vals)
	if err != nil {
		s.metrics.authFail.Inc()
		e := audit.Entry{Principal: string(tok.Party), Action: "authenticate", Outcome: audit.OutcomeDeny, Reason: err.Error()}
		if aerr := s.record(c, e); aerr != nil {
			return caller{}, aerr
		}
		return caller{}, err
	}
	p := id.Principal()
	return caller{tok: tok, principal: p, name: p.String() + " via " + string(tok.Party)}, nil
}

func (s *Server) verifyCreator(vals []string) (fabricid.Identity, error) {
	switch {
	case len(vals) == 0 || strings.TrimSpace(vals[0]) == "":
		return fabricid.Identity{}, fmt.Errorf("%w: a chaincode token must name the transaction creator in the %s header",
			fabricid.ErrInvalidCreator, apiv1.HeaderFabricCreator)
	case len(vals) > 1:
		return fabricid.Identity{}, fmt.Errorf("%w: more than one %s header", fabricid.ErrInvalidCreator, apiv1.HeaderFabricCreator)
	case len(vals[0]) > maxCreatorHeader:
		return fabricid.Identity{}, fmt.Errorf("%w: the %s header is longer than %d bytes",
			fabricid.ErrInvalidCreator, apiv1.HeaderFabricCreator, maxCreatorHeader)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(vals[0]))
	if err != nil {
		return fabricid.Identity{}, fmt.Errorf("%w: the %s header is not standard base64",
			fabricid.ErrInvalidCreator, apiv1.HeaderFabricCreator)
	}
	return s.cfg.Fabric.Verify(raw, s.cfg.Clock())
}
