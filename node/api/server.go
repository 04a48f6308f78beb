// Package api is keymesh's REST API: gin handlers under /v1, bearer-token
// authentication, the one mapping from domain errors to HTTP statuses and
// stable error codes (errors.go), request limits, audit on every decision,
// and Prometheus metrics. The JSON types live in node/apiv1; the routes are
// described in docs/openapi.yaml, and a test keeps the two in step.
//
// Every /v1 route needs "Authorization: Bearer <token>". Key, grant, token
// and audit routes need an admin token; encrypt and decrypt are open to any
// token and decided by policy for the token's party — the admin token too,
// which reads no data unless a grant names token:admin (separation of
// duties). /healthz, /readyz and /metrics are unauthenticated and expose no
// secrets.
package api

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/kms"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/ethid"
	"github.com/keymesh/keymesh/node/fabricid"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/token"
)

// Info describes the node for /v1/status.
type Info struct {
	Node      string
	Org       string
	NetworkID string
	Version   string
	StartedAt time.Time
	// FIPS reports that the node was started with --fips: the eth routes
	// answer ErrFIPSUnsupported (fips.go) and /v1/status says so.
	FIPS bool
}

// Config holds what the API serves.
type Config struct {
	// Core is the domain core the routes call: decisions, audit, sealing
	// and administrative changes.
	Core *kms.Service
	// Mesh is the node's network membership (the mesh member).
	Mesh   Mesh
	Tokens *token.Registry
	// Audit is read for the audit routes (tail, verify); the core writes
	// it.
	Audit    *audit.Log
	Info     Info
	Logger   *slog.Logger
	Registry *prometheus.Registry // metrics are registered here
	Ready    func() bool
	// NotReady, if set, says why the node cannot serve every request (a
	// full disk): /readyz answers 503 with the reason while it returns
	// non-nil.
	NotReady func() error
	Clock    func() time.Time
	// Fabric verifies the transaction creators that chaincode tokens name
	// (see fabric.go); nil trusts no MSP, so every chaincode request fails.
	Fabric *fabricid.Verifier
	// BodyBudget bounds the bytes of large request bodies handled at once
	// (see limits.go); 0 means DefaultBodyBudget.
	BodyBudget int64
	// TokenTTL is the lifetime of client and chaincode tokens minted
	// without a "ttl"; 0 means DefaultTokenTTL, negative means no expiry.
	TokenTTL time.Duration
	// EthNonces remembers the spent nonces of wallet-signed requests
	// (eth.go); a node passes its durable store (ethid.OpenStoreNonces).
	// nil keeps them in memory, forgotten on restart (tests).
	EthNonces ethid.NonceStore
}

// Server is the HTTP handler of the API.
type Server struct {
	cfg     Config
	engine  *gin.Engine
	metrics *metrics
	bodies  *bodyBudget
	replay  *fabricid.Replay // transactions chaincode tokens presented (fabric.go)
	// orgParty is "org:" and the node's org, the party its clients act
	// for too (authCaller); "" without an org.
	orgParty policy.Party
	verify   verifyJobs // background audit verification (verifyjob.go)
}

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	authFail prometheus.Counter
	// hot holds the series of the hot routes' 200 answers, looked up once
	// (a read-only map after New): recoverAndLog then skips hashing the
	// labels of every request.
	hot map[string]*routeMetrics
}

// routeMetrics are the series of one route's 200 answers, made on first
// use (so a route never served shows no series, as before).
type routeMetrics struct {
	once    sync.Once
	ok      prometheus.Counter
	latency prometheus.Observer
}

// observe counts one answer of route with status, taking d.
func (m *metrics) observe(route string, status int, d time.Duration) {
	if h := m.hot[route]; h != nil && status == http.StatusOK {
		h.once.Do(func() {
			h.ok = m.requests.WithLabelValues(route, "200")
			h.latency = m.latency.WithLabelValues(route)
		})
		h.ok.Inc()
		h.latency.Observe(d.Seconds())
		return
	}
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keymesh_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "keymesh_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"route"}),
		authFail: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keymesh_auth_failures_total", Help: "Requests refused for a missing or invalid token.",
		}),
		hot: map[string]*routeMetrics{"/v1/encrypt": {}, "/v1/decrypt": {}},
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.authFail)
	}
	return m
}

// New builds the API handler.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	switch {
	case cfg.TokenTTL == 0:
		cfg.TokenTTL = DefaultTokenTTL
	case cfg.TokenTTL < 0:
		cfg.TokenTTL = 0
	}
	if cfg.Ready == nil {
		cfg.Ready = func() bool { return true }
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	if cfg.BodyBudget <= 0 {
		cfg.BodyBudget = DefaultBodyBudget
	}
	s := &Server{cfg: cfg, engine: e, metrics: newMetrics(cfg.Registry), bodies: newBodyBudget(cfg.BodyBudget),
		replay: fabricid.NewReplay(cfg.Fabric.Window(), 0)}
	if cfg.Info.Org != "" {
		s.orgParty = policy.Party("org:" + cfg.Info.Org)
	}
	e.Use(s.recoverAndLog)
	e.NoRoute(func(c *gin.Context) {
		s.fail(c, &Error{Status: http.StatusNotFound, Code: apiv1.CodeNotFound, Message: "no such route"})
	})
	e.NoMethod(func(c *gin.Context) {
		s.fail(c, &Error{Status: http.StatusMethodNotAllowed, Code: apiv1.CodeInvalidRequest, Message: "method not allowed"})
	})

	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, apiv1.Health{Status: "ok"}) })
	e.GET("/readyz", func(c *gin.Context) {
		if !s.cfg.Ready() {
			c.JSON(http.StatusServiceUnavailable, apiv1.Health{Status: "not ready"})
			return
		}
		if s.cfg.NotReady != nil {
			if err := s.cfg.NotReady(); err != nil {
				c.JSON(http.StatusServiceUnavailable, apiv1.Health{Status: "not ready", Reason: err.Error()})
				return
			}
		}
		h := apiv1.Health{Status: "ready"}
		h.StaleOrgs = s.cfg.Mesh.StaleOrgs()
		c.JSON(http.StatusOK, h)
	})
	if cfg.Registry != nil {
		h := promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})
		e.GET("/metrics", gin.WrapH(h))
	}

	newEthAPI(s).register(e) // eth.go: wallet-signed routes of eth: parties, no bearer token
	v1 := e.Group("/v1", s.authenticate, s.limitBodies)
	v1.GET("/status", s.status)
	// The hot routes take the same steps without gin's per-request map
	// for the caller (see withCaller).
	hot := e.Group("/v1")
	hot.POST("/encrypt", s.withCaller(s.encrypt))
	hot.POST("/decrypt", s.withCaller(s.decrypt))

	admin := v1.Group("", s.requireAdmin)
	admin.POST("/keys", s.createKey)
	admin.GET("/keys", s.listKeys)
	admin.GET("/keys/:ns/:name", s.getKey)
	admin.POST("/keys/:ns/:name/rotate", s.rotateKey)
	admin.POST("/keys/:ns/:name/state", s.setKeyState)
	admin.POST("/keys/:ns/:name/config", s.setKeyConfig)
	admin.POST("/keys/:ns/:name/destroy", s.destroyKey)
	admin.POST("/grants", s.createGrant)
	admin.GET("/grants", s.listGrants)
	admin.POST("/grants/revoke", s.revoke)
	admin.POST("/tokens", s.createToken)
	admin.GET("/tokens", s.listTokens)
	admin.POST("/tokens/:id/revoke", s.revokeToken)
	admin.GET("/audit", s.auditTail)
	admin.POST("/audit/verify", s.auditVerify)
	admin.POST("/audit/verify/jobs", s.startVerifyJob)
	admin.GET("/audit/verify/jobs/:id", s.getVerifyJob)
	admin.GET("/node", s.nodeIdentity)
	admin.GET("/nodes", s.listNodes)
	admin.POST("/nodes/register", s.registerNode)
	admin.POST("/nodes/deregister", s.deregisterNode)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.engine.ServeHTTP(w, r) }

// Routes lists "METHOD path" for every route, with gin's ":param" written
// as OpenAPI's "{param}".
func (s *Server) Routes() []string {
	var out []string
	for _, r := range s.engine.Routes() {
		parts := strings.Split(r.Path, "/")
		for i, p := range parts {
			if strings.HasPrefix(p, ":") {
				parts[i] = "{" + p[1:] + "}"
			}
		}
		out = append(out, r.Method+" "+strings.Join(parts, "/"))
	}
	return out
}

const ctxPrincipal = "keymesh.principal"

type caller struct {
	tok       token.Token
	principal policy.Principal
	name      string
	// proposal is set for a chaincode token: the verified transaction it
	// speaks for (fabric.go).
	proposal *fabricid.Proposal
}

func callerOf(c *gin.Context) caller {
	v, _ := c.Get(ctxPrincipal)
	cl, _ := v.(caller)
	return cl
}

// authenticate resolves the bearer token to a caller, kept in the
// request's gin context for the handlers after it, or answers 401.
func (s *Server) authenticate(c *gin.Context) {
	cl, ok := s.authCaller(c)
	if !ok {
		return
	}
	c.Set(ctxPrincipal, cl)
	c.Next()
}

// withCaller is authenticate and limitBodies in one handler that passes
// the caller to h as an argument: the hot routes (encrypt, decrypt) save
// the map gin makes for the first c.Set of each request.
func (s *Server) withCaller(h func(*gin.Context, caller)) gin.HandlerFunc {
	return func(c *gin.Context) {
		cl, ok := s.authCaller(c)
		if !ok {
			return
		}
		n, ok := s.reserveBody(c)
		if !ok {
			return
		}
		defer s.bodies.release(n)
		h(c, cl)
	}
}

// authCaller resolves the bearer token to a caller, or answers 401 (or the
// error of a chaincode token's proposal) and reports false.
func (s *Server) authCaller(c *gin.Context) (caller, bool) {
	h := c.GetHeader("Authorization")
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		s.metrics.authFail.Inc()
		c.Header("WWW-Authenticate", `Bearer realm="keymesh"`)
		s.fail(c, toError(token.ErrUnauthenticated))
		return caller{}, false
	}
	tok, err := s.cfg.Tokens.Authenticate(strings.TrimSpace(h[len(prefix):]))
	if err != nil {
		s.metrics.authFail.Inc()
		c.Header("WWW-Authenticate", `Bearer realm="keymesh", error="invalid_token"`)
		s.fail(c, toError(token.ErrUnauthenticated))
		return caller{}, false
	}
	cl, err := s.callerFor(c, tok) // fabric.go: chaincode tokens speak for their transaction creator
	if err != nil {
		s.fail(c, err)
		return caller{}, false
	}
	// A client of this node acts for its organisation too: an org: grant
	// covers every node of that org and the applications they serve. Admin
	// tokens do not inherit it (separation of duties). Grants to token:,
	// fabric: and eth: parties count only at their custodian's nodes.
	if org := s.cfg.Info.Org; org != "" {
		cl.principal.Custodian = org
		if tok.Role == token.RoleClient {
			cl.principal.Parties = append(cl.principal.Parties, s.orgParty)
		}
	}
	return cl, true
}

func (s *Server) requireAdmin(c *gin.Context) {
	if callerOf(c).tok.Role != token.RoleAdmin {
		s.fail(c, errForbiddenAdmin)
		return
	}
	c.Next()
}

// recoverAndLog logs each request (method, route, status, latency — never
// bodies, headers or query values), records metrics, and turns a panic into
// a plain 500 without a stack trace in the response.
func (s *Server) recoverAndLog(c *gin.Context) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			s.cfg.Logger.Error("panic in handler", "route", c.FullPath(), "panic", p)
			s.fail(c, &Error{Status: http.StatusInternalServerError, Code: apiv1.CodeInternal, Message: "internal error"})
		}
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		status := c.Writer.Status()
		d := time.Since(start)
		s.metrics.observe(route, status, d)
		if status >= 500 {
			s.cfg.Logger.Warn("request", "method", c.Request.Method, "route", route, "status", status, "duration", d)
		} else if s.cfg.Logger.Enabled(c, slog.LevelDebug) {
			s.cfg.Logger.Debug("request", "method", c.Request.Method, "route", route, "status", status, "duration", d)
		}
	}()
	c.Next()
}

// fail writes err as the structured error body and stops the chain.
func (s *Server) fail(c *gin.Context, err error) {
	e := toError(err)
	switch {
	case e.Status == http.StatusInternalServerError && e.Cause != nil:
		s.cfg.Logger.Error("request failed", "route", c.FullPath(), "code", e.Code, "err", e.Cause)
	case e.Status > http.StatusInternalServerError && e.Cause != nil:
		// Fail-closed refusals (audit log or disk unavailable): the node
		// works as designed, and a flood of them must not flood the log
		// at error level.
		s.cfg.Logger.Warn("request refused", "route", c.FullPath(), "code", e.Code, "err", e.Cause)
	}
	c.AbortWithStatusJSON(e.Status, apiv1.ErrorResponse{Error: e.body()})
}

// bind decodes a JSON body strictly: bounded size, unknown fields refused,
// exactly one value.
func bind(c *gin.Context, v any) error {
	return bindReader(http.MaxBytesReader(c.Writer, c.Request.Body, apiv1.MaxBodyBytes), v)
}

// bindReader is bind over a body already bounded by a MaxBytesReader.
func bindReader(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge("request body is larger than " + strconv.Itoa(apiv1.MaxBodyBytes) + " bytes")
		}
		if errors.Is(err, io.EOF) {
			return badRequest("request body is empty; a JSON object is required")
		}
		return badRequest("invalid JSON body: " + jsonErrorText(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("invalid JSON body: trailing data after the object")
	}
	return nil
}

// jsonErrorText describes a decoding error without echoing input values.
func jsonErrorText(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "syntax error at offset " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		return "field " + strconv.Quote(te.Field) + " must be " + te.Type.String()
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "malformed"
}

func (s *Server) status(c *gin.Context) {
	cl := callerOf(c)
	head, _ := s.cfg.Audit.Head()
	c.JSON(http.StatusOK, apiv1.Status{
		Node:      s.cfg.Info.Node,
		Org:       s.cfg.Info.Org,
		NetworkID: s.cfg.Info.NetworkID,
		Version:   s.cfg.Info.Version,
		StartedAt: s.cfg.Info.StartedAt,
		Ready:     s.cfg.Ready(),
		Keys:      s.cfg.Core.CountKeys(),
		Grants:    s.cfg.Core.CountGrants(),
		Tokens:    len(s.cfg.Tokens.List()),
		AuditHead: head,
		Principal: cl.name,
		Role:      cl.tok.Role.String(),
		Mesh:      s.networkStatus(),
		FIPS:      fipsStatus(s.cfg.Info.FIPS),
	})
}

func (s *Server) networkStatus() *apiv1.NetworkStatus {
	st := networkStatusJSON(s.cfg.Mesh.Status())
	return &st
}
