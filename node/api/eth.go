package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/keymesh/keymesh/kms"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/ethid"
	"github.com/keymesh/keymesh/policy"
)

// ethAPI serves the routes of eth: parties, which authenticate with a
// wallet signature instead of a bearer token:
//
//	GET  /v1/eth/domain   what a wallet signs for this node (public values only)
//	POST /v1/eth/decrypt  decrypt one envelope or a batch for the signer
//
// A decrypt request carries an EIP-712 (or EIP-191) signature over a
// KeymeshRequest whose audience is this node's id, whose action is
// "decrypt" and whose envelopes are the SHA-256 digests of the request's
// ciphertexts, in order (see package node/ethid). The node recomputes all
// three from the body and itself, so a signature opens exactly the
// envelopes it names, at this node only.
//
// The order of the checks is what keeps a wallet that cannot be served from
// filling anything:
//
//  1. shape, and the canonical form of each context (chain_id, contract);
//  2. the signature, without side effect (401 unauthenticated);
//  3. each context's chain_id must be the signed chain id (400);
//  4. the signer's grants, once per key of a parsed envelope;
//  5. only if at least one key is granted, the nonce is spent in the
//     node's durable nonce store: a replay is 401, an account over its
//     bound of unexpired nonces 503, a store failure 503 (fail closed);
//  6. audit and open, per item, with the decisions of step 4.
//
// An ungranted wallet's requests are decided at step 4 and refused 403
// (and audited) at step 6, and leave no nonce behind; they gain nothing by
// being replayed, as the answer is the same 403 each time.
//
// On a node started with --fips (Info.FIPS) there is no verifier and both
// routes answer 403 fips_unsupported (ErrFIPSUnsupported) before step 1:
// wallet signatures are outside the FIPS claim. Nothing is read, verified,
// spent or audited; there is no caller to audit, as for a 401.
type ethAPI struct {
	s        *Server
	verifier *ethid.Verifier // nil when the node has no valid network id, or runs with --fips
	fips     bool            // --fips: every route refuses with ErrFIPSUnsupported
}

var (
	errEthUnauthenticated = &Error{Status: http.StatusUnauthorized, Code: apiv1.CodeUnauthenticated, Message: "invalid, expired or replayed wallet signature"}
	errEthBusy            = &Error{Status: http.StatusServiceUnavailable, Code: apiv1.CodeUnavailable, Message: "too many unexpired signed requests of this account; try again shortly"}
	errEthUnconfigured    = &Error{Status: http.StatusServiceUnavailable, Code: apiv1.CodeUnavailable, Message: "wallet authentication is not available on this node"}
	errEthNonceStore      = &Error{Status: http.StatusServiceUnavailable, Code: apiv1.CodeUnavailable, Message: "the node cannot record this signed request's nonce; refusing it"}
)

// newEthAPI builds the eth routes of s. The verifier uses the server's
// network id, node id (the audience) and clock, the default lifetime bound
// (10 minutes) and clock skew (30 s), and the nonce store of the
// configuration (in memory when none is given).
func newEthAPI(s *Server) *ethAPI {
	a := &ethAPI{s: s}
	if s.cfg.Info.FIPS {
		a.fips = true
		s.cfg.Logger.Info("wallet authentication of eth: parties refused (--fips): secp256k1 and Keccak-256 are outside the FIPS 140-3 claim")
		return a
	}
	opts := []ethid.Option{ethid.WithClock(s.cfg.Clock), ethid.WithAudience(s.cfg.Info.Node)}
	if s.cfg.EthNonces != nil {
		opts = append(opts, ethid.WithNonces(s.cfg.EthNonces))
	}
	v, err := ethid.NewVerifier(s.cfg.Info.NetworkID, opts...)
	if err != nil {
		s.cfg.Logger.Warn("wallet authentication disabled", "err", err)
		return a
	}
	a.verifier = v
	return a
}

// register adds the eth routes to e, outside the bearer-token group. With
// --fips the same routes are registered, each answering only
// ErrFIPSUnsupported.
func (a *ethAPI) register(e *gin.Engine) {
	if a.fips {
		e.GET("/v1/eth/domain", a.refuseFIPS)
		e.POST("/v1/eth/decrypt", a.refuseFIPS)
		return
	}
	e.GET("/v1/eth/domain", a.domain)
	e.POST("/v1/eth/decrypt", a.decrypt)
}

// refuseFIPS answers a request to an eth route of a --fips node, without
// reading it.
func (a *ethAPI) refuseFIPS(c *gin.Context) { a.s.fail(c, ErrFIPSUnsupported) }

func (a *ethAPI) domain(c *gin.Context) {
	if a.verifier == nil {
		a.s.fail(c, errEthUnconfigured)
		return
	}
	var typ string
	for i, f := range ethid.Types[ethid.PrimaryType] {
		if i > 0 {
			typ += ","
		}
		typ += f.Type + " " + f.Name
	}
	c.JSON(http.StatusOK, apiv1.EthDomain{
		Name:          ethid.DomainName,
		Version:       ethid.DomainVersion,
		NetworkID:     a.verifier.NetworkID(),
		Salt:          "0x" + a.verifier.NetworkID(),
		Audience:      a.verifier.Audience(),
		PrimaryType:   ethid.PrimaryType,
		Type:          ethid.PrimaryType + "(" + typ + ")",
		Action:        ethid.ActionDecrypt,
		MaxTTLSeconds: int64(a.verifier.MaxTTL() / time.Second),
	})
}

func (a *ethAPI) decrypt(c *gin.Context) {
	s := a.s
	var req apiv1.EthDecryptRequest
	if err := bind(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	items, batch, err := decryptItems(apiv1.DecryptRequest{Ciphertext: req.Ciphertext, Context: req.Context, Batch: req.Batch})
	if err != nil {
		s.fail(c, err)
		return
	}
	if a.verifier == nil {
		s.fail(c, errEthUnconfigured)
		return
	}
	texts := make([]string, len(items))
	for i, it := range items {
		texts[i] = it.Ciphertext
	}
	r, err := a.verifier.Check(req.Auth, ethid.ActionDecrypt, texts)
	if err != nil {
		a.refused(c, err, req.Auth.Account)
		return
	}
	if err := chainIDsMatch(items, batch, r.ChainID); err != nil {
		s.fail(c, err)
		return
	}
	party := policy.Party(ethid.Party(r.Account))
	// The wallet is a party of its own, not a client of this node's org:
	// it gets no org: party, and its grants count only where this node's
	// org is their custodian (policy.Principal.Custodian).
	cl := kms.Caller{Principal: policy.Principal{Parties: []policy.Party{party}, Custodian: s.cfg.Info.Org}, Name: string(party)}
	decisions := s.cfg.Core.DecideDecrypt(cl, items)
	if decisions.Allows() {
		if err := a.verifier.Spend(r); err != nil {
			a.refused(c, err, req.Auth.Account)
			return
		}
	}
	s.decryptFor(c, cl, items, batch, decisions)
}

// refused answers a request whose signature was refused or whose nonce
// could not be spent.
func (a *ethAPI) refused(c *gin.Context, err error, account string) {
	s := a.s
	switch {
	case errors.Is(err, ethid.ErrBusy):
		s.fail(c, errEthBusy)
		return
	case errors.Is(err, ethid.ErrStore):
		s.cfg.Logger.Error("wallet nonce store", "err", err)
		s.fail(c, errEthNonceStore)
		return
	}
	s.metrics.authFail.Inc()
	var ae *ethid.AuthError
	if errors.As(err, &ae) && s.cfg.Logger.Enabled(c, slog.LevelDebug) {
		// The reason and the claimed account are public values.
		s.cfg.Logger.Debug("wallet signature refused", "reason", ae.Reason, "account", account)
	}
	s.fail(c, errEthUnauthenticated)
}

// chainIDsMatch refuses a request whose items' contexts name a chain_id
// (already canonical) other than the one the wallet signed: a signature for
// one chain does not open another chain's envelopes.
func chainIDsMatch(items []kms.DecryptItem, batch bool, signed uint64) error {
	want := strconv.FormatUint(signed, 10)
	for i, it := range items {
		got, ok := it.Context[ethid.ContextChainID]
		if !ok || got == want {
			continue
		}
		where := ""
		if batch {
			where = fmt.Sprintf("batch item %d: ", i)
		}
		return badRequest(fmt.Sprintf("%scontext chain_id %q is not the signed chain id %q (auth.chain_id)", where, got, want))
	}
	return nil
}
