package ethereum

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/ethereum/go-ethereum/common"
	"github.com/gin-gonic/gin"

	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/ethid"
)

// AuthHeader carries a wallet's signed request to a dApp back end:
// unpadded base64url of the JSON of an ethid.Auth.
const AuthHeader = "X-Keymesh-Wallet-Auth"

// maxAuthHeader bounds the header before it is decoded.
const maxAuthHeader = 4096

// Principal is the wallet an Authenticator verified.
type Principal struct {
	Address common.Address
	Party   string // "eth:0x…" in lower case, as grants name it
}

type principalKey struct{}

// PrincipalFrom returns the principal that Authenticator.Middleware
// attached to ctx.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// GinPrincipalKey is the gin context key under which Authenticator.Gin
// stores the Principal.
const GinPrincipalKey = "keymesh.eth.principal"

// GinPrincipal returns the principal that Authenticator.Gin attached to c.
func GinPrincipal(c *gin.Context) (Principal, bool) {
	v, ok := c.Get(GinPrincipalKey)
	if !ok {
		return Principal{}, false
	}
	p, ok := v.(Principal)
	return p, ok
}

// ActionFunc computes, from an HTTP request, the action and the envelopes
// (text forms) that its signature must cover.
type ActionFunc func(r *http.Request) (action string, envelopes []string, err error)

// MethodPath is the default ActionFunc: the action "<METHOD> <path>" (for
// example "GET /orders/42") and no envelope. A back end whose requests
// carry data the user must approve should bind it with its own ActionFunc.
func MethodPath(r *http.Request) (string, []string, error) {
	return r.Method + " " + r.URL.Path, nil, nil
}

// Authenticator is an HTTP middleware for dApp back ends: it reads the
// AuthHeader of each request, verifies the wallet's signature over the
// request's action (see node/ethid), and attaches the signer's Principal.
// Anything else is refused with 401 and a keymesh error body.
type Authenticator struct {
	v      *ethid.Verifier
	action ActionFunc
	allow  func(ctx context.Context, p Principal) bool
	log    *slog.Logger
}

// AuthOption configures an Authenticator.
type AuthOption func(*Authenticator)

// WithAction sets how an Authenticator computes what a request's signature
// must cover (MethodPath by default).
func WithAction(f ActionFunc) AuthOption { return func(a *Authenticator) { a.action = f } }

// WithAllow sets which verified signers the back end serves at all: a
// signer for whom allow is false is refused with 403 forbidden before its
// nonce is spent, so that wallets the back end would never serve cannot
// fill the verifier's nonce store (whose total bound is shared by every
// account) and lock out the others. By default every verified signer is
// served.
func WithAllow(allow func(ctx context.Context, p Principal) bool) AuthOption {
	return func(a *Authenticator) { a.allow = allow }
}

// ErrNotAllowed is returned by Authenticate for a verified signer that the
// WithAllow function refuses.
var ErrNotAllowed = errors.New("ethereum: this wallet is not served here")

// WithLogger sets where refusals are logged, at debug level, with the
// reason (never the signature).
func WithLogger(l *slog.Logger) AuthOption { return func(a *Authenticator) { a.log = l } }

// NewAuthenticator returns a middleware that verifies with v (which fixes
// the network, audience, chain ids, lifetimes and nonce store).
func NewAuthenticator(v *ethid.Verifier, opts ...AuthOption) *Authenticator {
	a := &Authenticator{v: v, action: MethodPath, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(a)
	}
	return a
}

// EncodeAuthHeader returns the AuthHeader value of auth.
func EncodeAuthHeader(auth ethid.Auth) (string, error) {
	b, err := json.Marshal(auth)
	if err != nil {
		return "", fmt.Errorf("ethereum: encoding auth: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Authenticate verifies r's AuthHeader and returns its principal; the
// request's nonce is spent only for a signer that WithAllow lets through.
// Errors wrap ethid.ErrUnauthenticated, ErrNotAllowed, ethid.ErrBusy or
// ethid.ErrStore.
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	h := r.Header.Get(AuthHeader)
	if h == "" || len(h) > maxAuthHeader {
		return Principal{}, &ethid.AuthError{Reason: "missing or oversized " + AuthHeader}
	}
	raw, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return Principal{}, &ethid.AuthError{Reason: "header is not base64url"}
	}
	var auth ethid.Auth
	if err := json.Unmarshal(raw, &auth); err != nil {
		return Principal{}, &ethid.AuthError{Reason: "header is not an auth object"}
	}
	action, envs, err := a.action(r)
	if err != nil {
		return Principal{}, &ethid.AuthError{Reason: "action: " + err.Error()}
	}
	req, err := a.v.Check(auth, action, envs)
	if err != nil {
		return Principal{}, err
	}
	p := Principal{Address: req.Account, Party: ethid.Party(req.Account)}
	if a.allow != nil && !a.allow(r.Context(), p) {
		return Principal{}, ErrNotAllowed
	}
	if err := a.v.Spend(req); err != nil {
		return Principal{}, err
	}
	return p, nil
}

// refuse writes the error body for err and logs the reason.
func (a *Authenticator) refuse(w http.ResponseWriter, r *http.Request, err error) {
	status, body := http.StatusUnauthorized, apiv1.Error{Code: apiv1.CodeUnauthenticated, Message: ethid.ErrUnauthenticated.Error()}
	switch {
	case errors.Is(err, ethid.ErrBusy):
		status, body = http.StatusServiceUnavailable, apiv1.Error{Code: apiv1.CodeUnavailable, Message: ethid.ErrBusy.Error()}
	case errors.Is(err, ethid.ErrStore):
		status, body = http.StatusServiceUnavailable, apiv1.Error{Code: apiv1.CodeUnavailable, Message: ethid.ErrStore.Error()}
	case errors.Is(err, ErrNotAllowed):
		status, body = http.StatusForbidden, apiv1.Error{Code: apiv1.CodeForbidden, Message: ErrNotAllowed.Error()}
	}
	var ae *ethid.AuthError
	if errors.As(err, &ae) {
		a.log.DebugContext(r.Context(), "wallet signature refused", "reason", ae.Reason, "method", r.Method, "path", r.URL.Path)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(apiv1.ErrorResponse{Error: body})
}

// Middleware wraps next for net/http: next runs only for a verified
// request, with the Principal in its context (PrincipalFrom).
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.Authenticate(r)
		if err != nil {
			a.refuse(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// Gin is the middleware for gin: the chain goes on only for a verified
// request, with the Principal under GinPrincipalKey (GinPrincipal) and in
// the request's context (PrincipalFrom).
func (a *Authenticator) Gin() gin.HandlerFunc {
	return func(c *gin.Context) {
		p, err := a.Authenticate(c.Request)
		if err != nil {
			a.refuse(c.Writer, c.Request, err)
			c.Abort()
			return
		}
		c.Set(GinPrincipalKey, p)
		c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), principalKey{}, p))
		c.Next()
	}
}
