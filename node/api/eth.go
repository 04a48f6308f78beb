package api

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/keymesh/keymesh/chaincode/ethereum/ethauth"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/policy"
)

// ethAPI serves the routes of eth: parties, which authenticate with a
// wallet signature instead of a bearer token:
//
//	GET  /v1/eth/domain   what a wallet signs for this node (public values only)
//	POST /v1/eth/decrypt  decrypt one envelope or a batch for the signer
//
// A decrypt request carries an EIP-712 (or EIP-191) signature over a
// KeymeshRequest whose action is "decrypt" and whose envelopes are the
// SHA-256 digests of the request's ciphertexts, in order (see package
// ethauth). The node recomputes both from the body, so a signature opens
// exactly the envelopes it names. Expired, replayed (the node remembers each
// (account, nonce) until its expiry), wrongly signed or tampered requests
// are refused with 401 unauthenticated; the signer's eth:0x… party is then
// decided by policy and audited like a bearer caller, by the same code.
type ethAPI struct {
	s        *Server
	verifier *ethauth.Verifier // nil when the node has no valid network id
}

var (
	errEthUnauthenticated = &Error{Status: http.StatusUnauthorized, Code: apiv1.CodeUnauthenticated, Message: "invalid, expired or replayed wallet signature"}
	errEthBusy            = &Error{Status: http.StatusServiceUnavailable, Code: apiv1.CodeUnavailable, Message: "too many signed requests in flight; try again shortly"}
	errEthUnconfigured    = &Error{Status: http.StatusServiceUnavailable, Code: apiv1.CodeUnavailable, Message: "wallet authentication is not available on this node"}
)

// newEthAPI builds the eth routes of s. The verifier uses the server's
// network id and clock, the default lifetime bound (10 minutes), clock skew
// (30 s) and replay cache size.
func newEthAPI(s *Server) *ethAPI {
	a := &ethAPI{s: s}
	v, err := ethauth.NewVerifier(s.cfg.Info.NetworkID, ethauth.WithClock(s.cfg.Clock))
	if err != nil {
		s.cfg.Logger.Warn("wallet authentication disabled", "err", err)
		return a
	}
	a.verifier = v
	return a
}

// register adds the eth routes to e, outside the bearer-token group.
func (a *ethAPI) register(e *gin.Engine) {
	e.GET("/v1/eth/domain", a.domain)
	e.POST("/v1/eth/decrypt", a.decrypt)
}

func (a *ethAPI) domain(c *gin.Context) {
	if a.verifier == nil {
		a.s.fail(c, errEthUnconfigured)
		return
	}
	var typ string
	for i, f := range ethauth.Types[ethauth.PrimaryType] {
		if i > 0 {
			typ += ","
		}
		typ += f.Type + " " + f.Name
	}
	c.JSON(http.StatusOK, apiv1.EthDomain{
		Name:          ethauth.DomainName,
		Version:       ethauth.DomainVersion,
		NetworkID:     a.verifier.NetworkID(),
		Salt:          "0x" + a.verifier.NetworkID(),
		PrimaryType:   ethauth.PrimaryType,
		Type:          ethauth.PrimaryType + "(" + typ + ")",
		Action:        ethauth.ActionDecrypt,
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
	addr, err := a.verifier.Verify(ethauth.Auth(req.Auth), ethauth.ActionDecrypt, texts)
	if err != nil {
		if errors.Is(err, ethauth.ErrBusy) {
			s.fail(c, errEthBusy)
			return
		}
		s.metrics.authFail.Inc()
		var ae *ethauth.AuthError
		if errors.As(err, &ae) && s.cfg.Logger.Enabled(c, slog.LevelDebug) {
			// The reason and the claimed account are public values.
			s.cfg.Logger.Debug("wallet signature refused", "reason", ae.Reason, "account", req.Auth.Account)
		}
		s.fail(c, errEthUnauthenticated)
		return
	}
	party := policy.Party(ethauth.Party(addr))
	// The wallet is a party of its own, not a client of this node's org:
	// it gets no org: party, and its grants count only where this node's
	// org is their custodian (policy.Principal.Custodian).
	cl := caller{principal: policy.Principal{Parties: []policy.Party{party}, Custodian: s.cfg.Info.Org}, name: string(party)}
	c.Set(ctxPrincipal, cl)
	s.decryptFor(c, cl, items, batch, func(key string, now time.Time) policy.Decision {
		return s.cfg.Keys.Policy().Decide(cl.principal, key, policy.OpDecrypt, now)
	})
}
