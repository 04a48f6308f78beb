package api

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/kms"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/fabricid"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/token"
	"github.com/keymesh/keymesh/vault"
	"github.com/keymesh/keymesh/vault/envelope"
)

func keyJSON(k kms.Key) apiv1.Key {
	out := vaultKeyJSON(k.KeyInfo)
	out.Holders, out.PendingAcks = k.Holders, k.PendingAcks
	if k.KMIP != nil {
		out.KMIP = &apiv1.KeyKMIP{UID: k.KMIP.UID, Owner: k.KMIP.Owner, Names: k.KMIP.Names}
	}
	return out
}

func vaultKeyJSON(k vault.KeyInfo) apiv1.Key {
	out := apiv1.Key{
		Name: k.Name, Owner: k.Owner, State: k.State.String(),
		Deterministic: k.Deterministic, Exportable: k.Exportable, Created: k.Created,
		LatestVersion: k.LatestVersion, MinDecryptionVersion: k.MinDecryptionVersion,
		Versions: make([]apiv1.KeyVersion, 0, len(k.Versions)), EraseError: k.EraseError,
	}
	for _, v := range k.Versions {
		out.Versions = append(out.Versions, apiv1.KeyVersion{
			Version: v.Version, Created: v.Created, ActivateAt: v.ActivateAt,
			Encryptions: v.Encryptions, Destroyed: v.Destroyed,
		})
	}
	return out
}

func keyName(c *gin.Context) string { return c.Param("ns") + "/" + c.Param("name") }

// pathKey returns the key named by the route and whether it is a valid key
// name; if not, it has answered 400. Names are checked before anything is
// audited: the audit log refuses over-long fields, and an invalid name is a
// malformed request, not a decision.
func (s *Server) pathKey(c *gin.Context) (string, bool) {
	name := keyName(c)
	if err := envelope.CheckKeyName(name); err != nil {
		s.fail(c, err)
		return "", false
	}
	return name, true
}

// adminDone audits a token change and answers. The change has already
// been made durable; if it cannot be audited the client is told the node
// is unavailable, and the change stands (the audit log records decisions
// it could write; an operator sees the 503 and the logs). Key and grant
// changes are audited by the domain core (package kms).
func (s *Server) adminDone(c *gin.Context, action, reason string, status int, body any) {
	e := audit.Entry{Principal: callerOf(c).name, Action: action, Outcome: "ok", Reason: reason}
	if err := s.cfg.Core.Record(c, e); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(status, body)
}

// adminFailed audits a refused token change and answers with err.
func (s *Server) adminFailed(c *gin.Context, action string, err error) {
	if aerr := s.cfg.Core.Record(c, audit.Entry{Principal: callerOf(c).name, Action: action, Outcome: "error", Reason: errorCode(err)}); aerr != nil {
		s.fail(c, aerr)
		return
	}
	s.fail(c, err)
}

func (s *Server) createKey(c *gin.Context) {
	var req apiv1.CreateKeyRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if err := envelope.CheckKeyName(req.Name); err != nil {
		s.fail(c, err)
		return
	}
	co := vault.CreateOptions{Deterministic: req.Deterministic, Exportable: req.Exportable}
	switch req.State {
	case "", "active":
	case "pre-active":
		co.PreActive = true
	default:
		s.fail(c, badRequest(`"state" must be "active" or "pre-active"`))
		return
	}
	k, err := s.cfg.Core.CreateKey(c, s.kmsCaller(c), req.Name, co)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, keyJSON(k))
}

// pageLimit reads "?limit=": DefaultPageLimit when absent, 1 to
// MaxPageLimit otherwise.
func pageLimit(c *gin.Context) (int, error) {
	q, ok := c.GetQuery("limit")
	if !ok {
		return apiv1.DefaultPageLimit, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < 1 || n > apiv1.MaxPageLimit {
		return 0, badRequest(fmt.Sprintf(`"limit" must be an integer from 1 to %d`, apiv1.MaxPageLimit))
	}
	return n, nil
}

// listKeys answers one page of keys: a listing costs the page, not every
// key (a 100k-key node built a 34 MB answer here).
func (s *Server) listKeys(c *gin.Context) {
	limit, err := pageLimit(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	keys, more := s.cfg.Core.KeysPage(c.Query("after"), limit)
	out := apiv1.KeyList{Keys: make([]apiv1.Key, 0, len(keys))}
	for _, k := range keys {
		out.Keys = append(out.Keys, keyJSON(k))
	}
	if more && len(keys) > 0 {
		out.Next = keys[len(keys)-1].Name
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) getKey(c *gin.Context) {
	k, err := s.cfg.Core.Key(keyName(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, keyJSON(k))
}

func (s *Server) rotateKey(c *gin.Context) {
	var req apiv1.RotateKeyRequest
	if c.Request.ContentLength != 0 {
		if err := bind(c, &req); err != nil {
			s.fail(c, err)
			return
		}
	}
	var delay *time.Duration
	if req.ActivateIn != "" {
		d, err := time.ParseDuration(req.ActivateIn)
		if err != nil {
			s.fail(c, badRequest(`"activate_in" must be a duration such as "30s"`))
			return
		}
		delay = &d
	}
	name, ok := s.pathKey(c)
	if !ok {
		return
	}
	k, err := s.cfg.Core.RotateKey(c, s.kmsCaller(c), name, delay)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, keyJSON(k))
}

func (s *Server) setKeyState(c *gin.Context) {
	var req apiv1.SetKeyStateRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	st, err := vault.ParseState(req.State)
	if err != nil || st == vault.StateDestroyed || st == vault.StatePreActive {
		s.fail(c, badRequest(`"state" must be "active", "deactivated" or "compromised" (destroy has its own route)`))
		return
	}
	name, ok := s.pathKey(c)
	if !ok {
		return
	}
	k, err := s.cfg.Core.SetKeyState(c, s.kmsCaller(c), name, st)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, keyJSON(k))
}

func (s *Server) setKeyConfig(c *gin.Context) {
	var req apiv1.KeyConfigRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	name, ok := s.pathKey(c)
	if !ok {
		return
	}
	k, err := s.cfg.Core.SetMinDecryptionVersion(c, s.kmsCaller(c), name, req.MinDecryptionVersion)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, keyJSON(k))
}

func (s *Server) destroyKey(c *gin.Context) {
	var req apiv1.DestroyKeyRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	name, ok := s.pathKey(c)
	if !ok {
		return
	}
	if req.Confirm != name {
		s.fail(c, badRequest(fmt.Sprintf(`destroying %q cannot be undone; repeat the key name in "confirm"`, name)))
		return
	}
	k, err := s.cfg.Core.DestroyKey(c, s.kmsCaller(c), name)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, keyJSON(k))
}

func grantJSON(st policy.Status) apiv1.Grant {
	g := st.Grant
	out := apiv1.Grant{
		ID: g.ID, Key: g.Key, Party: string(g.Party), Ops: g.Ops.List(),
		Custodian: g.Custodian, Issuer: g.Issuer, IssuedAt: g.IssuedAt,
		InForce: st.InForce, Status: st.Reason,
	}
	if st.InForce {
		out.Status = "in force"
	}
	out.NotBefore, out.NotAfter = optionalTime(g.NotBefore), optionalTime(g.NotAfter)
	return out
}

func (s *Server) createGrant(c *gin.Context) {
	var req apiv1.CreateGrantRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	party, err := policy.ParseParty(req.Party)
	if err != nil {
		s.fail(c, err)
		return
	}
	// One spelling per Fabric identity: the subject as a verified creator
	// yields it (fabricid.CanonicalParty), or the grant could never match.
	if party, err = fabricid.CanonicalParty(party); err != nil {
		s.fail(c, err)
		return
	}
	var ops policy.Ops
	for _, o := range req.Ops {
		op, err := policy.ParseOp(o)
		if err != nil {
			s.fail(c, badRequest(`"ops" lists "encrypt" and/or "decrypt"`))
			return
		}
		ops |= 1 << op
	}
	if ops == 0 {
		s.fail(c, badRequest(`"ops" must list "encrypt" and/or "decrypt"`))
		return
	}
	g := policy.Grant{Key: req.Key, Party: party, Ops: ops, Custodian: req.Custodian}
	if req.NotBefore != nil {
		g.NotBefore = req.NotBefore.UTC()
	}
	if req.NotAfter != nil {
		g.NotAfter = req.NotAfter.UTC()
	}
	st, err := s.cfg.Core.Grant(c, s.kmsCaller(c), g)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, grantJSON(st))
}

func (s *Server) listGrants(c *gin.Context) {
	key := c.Query("key")
	limit, err := pageLimit(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	after, err := policy.ParseGrantCursor(c.Query("after"))
	if err != nil {
		s.fail(c, badRequest(`"after" must be the "next" of a previous page`))
		return
	}
	sts, next, err := s.cfg.Core.GrantsPage(key, after, limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := apiv1.GrantList{Grants: make([]apiv1.Grant, 0, len(sts)), Next: next.String()}
	for _, st := range sts {
		out.Grants = append(out.Grants, grantJSON(st))
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) revoke(c *gin.Context) {
	var req apiv1.RevokeRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	party, err := policy.ParseParty(req.Party)
	if err != nil {
		s.fail(c, err)
		return
	}
	if req.Key == "" {
		s.fail(c, badRequest(`"key" is required`))
		return
	}
	if err := envelope.CheckKeyName(req.Key); err != nil {
		s.fail(c, err)
		return
	}
	r, ended, err := s.cfg.Core.Revoke(c, s.kmsCaller(c), req.Key, party)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, apiv1.Revocation{
		ID: r.ID, Key: r.Key, Party: string(r.Party), Issuer: r.Issuer, IssuedAt: r.IssuedAt, Ended: ended,
	})
}

func tokenJSON(t token.Token) apiv1.Token {
	return apiv1.Token{
		ID: t.ID, Party: string(t.Party), Role: t.Role.String(), Label: t.Label,
		Created: t.Created, Revoked: t.Revoked, Expires: optionalTime(t.Expires),
		Channels: t.Binding.ChannelList(), Chaincode: t.Binding.Chaincode, MSPs: t.Binding.MSPList(),
	}
}

func (s *Server) createToken(c *gin.Context) {
	var req apiv1.CreateTokenRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	party, err := policy.ParseParty(req.Party)
	if err != nil {
		s.fail(c, err)
		return
	}
	role := token.RoleClient
	switch req.Role {
	case "", "client":
	case "admin":
		role = token.RoleAdmin
	case "chaincode":
		role = token.RoleChaincode // speaks for the transaction creator it names (fabric.go)
	default:
		s.fail(c, badRequest(`"role" must be "client", "admin" or "chaincode"`))
		return
	}
	// A bearer token speaks only for a token: party. org: parties are nodes
	// (served by key transport), fabric: and eth: parties prove who they are
	// with a certificate chain or a wallet signature; a bearer token must not
	// stand in for either.
	if party.Kind() != "token" {
		s.fail(c, badRequest(fmt.Sprintf("a bearer token can only be bound to a token: party, not %q", string(party))))
		return
	}
	ttl, err := s.tokenTTL(req.TTL, role)
	if err != nil {
		s.fail(c, err)
		return
	}
	if len(req.Label) > 128 {
		s.fail(c, badRequest(`"label" is longer than 128 bytes`))
		return
	}
	var opts []token.CreateOption
	switch {
	case role == token.RoleChaincode:
		b, err := token.NewBinding(req.Channels, req.Chaincode, req.MSPs)
		if err != nil {
			s.fail(c, badRequest("a chaincode token needs \"channels\", \"chaincode\" and \"msps\": "+err.Error()))
			return
		}
		opts = append(opts, token.WithBinding(b))
	case len(req.Channels) > 0 || req.Chaincode != "" || len(req.MSPs) > 0:
		s.fail(c, badRequest(`"channels", "chaincode" and "msps" are for chaincode tokens only`))
		return
	}
	secret, t, err := s.cfg.Tokens.Create(party, role, req.Label, ttl, opts...)
	if err != nil {
		s.adminFailed(c, "token.create", err)
		return
	}
	s.adminDone(c, "token.create", "token "+t.ID+" for "+string(t.Party)+" ("+t.Role.String()+")",
		http.StatusCreated, apiv1.CreatedToken{Token: secret, Info: tokenJSON(t)})
}

// DefaultTokenTTL is the lifetime of a client or chaincode token minted
// without a "ttl" (90 days). Admin tokens keep no expiry unless asked.
const DefaultTokenTTL = 90 * 24 * time.Hour

// tokenTTL turns a request's "ttl" into a lifetime (0: never expires).
// Empty means the node's default for client and chaincode tokens
// (Config.TokenTTL) and no expiry for admin tokens; "never" or "0" mint a
// token that never expires, explicitly.
func (s *Server) tokenTTL(q string, role token.Role) (time.Duration, error) {
	switch q {
	case "":
		if role == token.RoleAdmin {
			return 0, nil
		}
		return s.cfg.TokenTTL, nil
	case "never", "0":
		return 0, nil
	}
	ttl, err := time.ParseDuration(q)
	if err != nil || ttl <= 0 {
		return 0, badRequest(`"ttl" must be a positive duration such as "24h", or "never"`)
	}
	return ttl, nil
}

func (s *Server) listTokens(c *gin.Context) {
	ts := s.cfg.Tokens.List()
	out := apiv1.TokenList{Tokens: make([]apiv1.Token, 0, len(ts))}
	for _, t := range ts {
		out.Tokens = append(out.Tokens, tokenJSON(t))
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) revokeToken(c *gin.Context) {
	id := c.Param("id")
	if err := s.cfg.Tokens.Revoke(id); err != nil {
		s.adminFailed(c, "token.revoke", err)
		return
	}
	t, err := s.cfg.Tokens.Get(id)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.adminDone(c, "token.revoke", "token "+t.ID, http.StatusOK, tokenJSON(t))
}

func auditJSON(e audit.Entry) apiv1.AuditEntry {
	return apiv1.AuditEntry{
		Seq: e.Seq, Time: e.Time, Principal: e.Principal, Action: e.Action, Key: e.Key,
		Version: e.Version, Outcome: e.Outcome, Reason: e.Reason, Count: e.Count,
		Prev: hex.EncodeToString(e.Prev[:]), Hash: hex.EncodeToString(e.Hash[:]),
	}
}

func (s *Server) auditTail(c *gin.Context) {
	limit := 50
	if q := c.Query("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > apiv1.MaxListLimit {
			s.fail(c, badRequest(fmt.Sprintf(`"limit" must be between 1 and %d`, apiv1.MaxListLimit)))
			return
		}
		limit = n
	}
	es, err := s.cfg.Audit.Tail(limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := apiv1.AuditList{Entries: make([]apiv1.AuditEntry, 0, len(es))}
	for _, e := range es {
		out.Entries = append(out.Entries, auditJSON(e))
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) auditVerify(c *gin.Context) {
	rep, err := s.cfg.Audit.Verify()
	if err != nil {
		var ve *audit.VerifyError
		if asVerify(err, &ve) {
			c.JSON(http.StatusOK, apiv1.AuditVerify{OK: false, Seq: ve.Seq, Reason: ve.Reason})
			return
		}
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, apiv1.AuditVerify{OK: true, Entries: rep.Entries, Head: hex.EncodeToString(rep.Head[:])})
}

// optionalTime returns nil for the zero time (JSON omits it), else &t.
func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
