package fabric

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
)

// Environment variables read by NewFromEnv.
const (
	EnvAddr          = "KEYMESH_ADDR"
	EnvToken         = "KEYMESH_TOKEN"
	EnvCAFile        = "KEYMESH_CA_FILE"
	EnvChaincodeName = "KEYMESH_CHAINCODE_NAME"
)

// DefaultAddr is the node address when KEYMESH_ADDR is unset.
const DefaultAddr = "127.0.0.1:8420"

// DefaultTimeout bounds each request to the node. Fabric's default
// chaincode execution timeout is 30 s; a transaction makes one or two
// requests per struct.
const DefaultTimeout = 10 * time.Second

// Client encrypts and decrypts chaincode fields through a keymesh node. It
// is safe for concurrent use; make one when the chaincode starts.
type Client struct {
	api       *client.Client
	chaincode string
	timeout   time.Duration
}

// Option configures New and NewFromEnv.
type Option func(*options) error

type options struct {
	caFile    string
	chaincode string
	timeout   time.Duration
}

// WithCAFile verifies the node's TLS certificate against the PEM CA bundle
// at path (instead of the system roots); an address without a scheme then
// means https.
func WithCAFile(path string) Option {
	return func(o *options) error {
		if path == "" {
			return errors.New("fabric: WithCAFile(\"\")")
		}
		o.caFile = path
		return nil
	}
}

// WithChaincodeName fixes the chaincode name bound into every envelope's
// context. Without it the name comes from each transaction's proposal,
// which is right for a chaincode invoked directly; set it when the
// chaincode is also called from another chaincode (whose proposal names
// the caller), or to keep envelopes readable under a new deployment name.
func WithChaincodeName(name string) Option {
	return func(o *options) error {
		if name == "" {
			return errors.New("fabric: WithChaincodeName(\"\")")
		}
		o.chaincode = name
		return nil
	}
}

// WithTimeout bounds each request to the node (default DefaultTimeout).
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("fabric: WithTimeout(%v): must be positive", d)
		}
		o.timeout = d
		return nil
	}
}

// NewFromEnv returns a client configured from KEYMESH_ADDR (default
// 127.0.0.1:8420), KEYMESH_TOKEN (required), KEYMESH_CA_FILE and
// KEYMESH_CHAINCODE_NAME (both optional); opts given here win over the
// environment.
func NewFromEnv(opts ...Option) (*Client, error) {
	return newFromEnv(os.Getenv, opts...)
}

func newFromEnv(getenv func(string) string, opts ...Option) (*Client, error) {
	addr := strings.TrimSpace(getenv(EnvAddr))
	if addr == "" {
		addr = DefaultAddr
	}
	tok := strings.TrimSpace(getenv(EnvToken))
	if tok == "" {
		return nil, fmt.Errorf("fabric: %s is not set; create a token with: keymesh token create --party token:<chaincode> --role chaincode --channel C --chaincode N --msp M", EnvToken)
	}
	var envOpts []Option
	if f := strings.TrimSpace(getenv(EnvCAFile)); f != "" {
		envOpts = append(envOpts, WithCAFile(f))
	}
	if n := strings.TrimSpace(getenv(EnvChaincodeName)); n != "" {
		envOpts = append(envOpts, WithChaincodeName(n))
	}
	return New(addr, tok, append(envOpts, opts...)...)
}

// New returns a client of the node at addr ("host:port" or an http(s) URL)
// that authenticates with token, a token of the chaincode role.
func New(addr, token string, opts ...Option) (*Client, error) {
	o := options{timeout: DefaultTimeout}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if token == "" {
		return nil, errors.New("fabric: empty token")
	}
	var tlsConfig *tls.Config
	if o.caFile != "" {
		pemBytes, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("fabric: reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("fabric: CA file %q holds no PEM certificate", o.caFile)
		}
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
		if !strings.Contains(addr, "://") {
			addr = "https://" + addr
		} else if !strings.HasPrefix(strings.ToLower(addr), "https://") {
			// The token and plaintexts would cross in the clear while the
			// operator believes them protected.
			return nil, fmt.Errorf("fabric: a CA file is given for the non-https address %q", addr)
		}
	}
	api, err := client.New(addr, token, client.WithHTTPClient(httpClient(tlsConfig)), client.WithUserAgent("keymesh-fabric-chaincode"))
	if err != nil {
		return nil, fmt.Errorf("fabric: %w", err)
	}
	return &Client{api: api, chaincode: o.chaincode, timeout: o.timeout}, nil
}

// httpClient is node/client's default client plus the proposal header:
// every request whose context carries a signed proposal (withProposal)
// sends it in apiv1.HeaderFabricProposal. It never uses a proxy (the token and the
// plaintexts go straight to the node) and never follows redirects.
func httpClient(tlsConfig *tls.Config) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.MaxIdleConnsPerHost = 32
	t.ResponseHeaderTimeout = client.DefaultTimeout
	if tlsConfig != nil {
		t.TLSClientConfig = tlsConfig
	}
	return &http.Client{
		Transport: proposalTransport{base: t},
		Timeout:   client.DefaultTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

type proposalKey struct{}

// withProposal returns ctx carrying the proposal header value (standard
// base64 of the marshalled SignedProposal).
func withProposal(ctx context.Context, b64 string) context.Context {
	return context.WithValue(ctx, proposalKey{}, b64)
}

type proposalTransport struct{ base http.RoundTripper }

func (t proposalTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if v, ok := r.Context().Value(proposalKey{}).(string); ok && v != "" {
		r = r.Clone(r.Context())
		r.Header.Set(apiv1.HeaderFabricProposal, v)
	}
	return t.base.RoundTrip(r)
}

// Check asks the node whether the client's address and token work, for a
// chaincode to fail fast at start instead of at its first transaction. A
// chaincode token used without a transaction is refused with
// invalid_creator, which is the expected answer: it proves the node is
// reachable and the token valid. Any other answer is an error naming
// KEYMESH_ADDR or KEYMESH_TOKEN.
func (c *Client) Check(ctx context.Context) error {
	st, err := c.api.Status(ctx)
	switch {
	case err == nil:
		return fmt.Errorf("fabric: the %s token is a %s token for %s, not a chaincode token; create one with: keymesh token create --party token:<chaincode> --role chaincode --channel C --chaincode N --msp M", EnvToken, st.Role, st.Principal)
	case errors.Is(err, client.ErrInvalidCreator):
		return nil
	case errors.Is(err, client.ErrUnauthenticated):
		return fmt.Errorf("fabric: the node at %s (%s) refuses the %s token: unknown, revoked or expired", c.api.Addr(), EnvAddr, EnvToken)
	}
	return fmt.Errorf("fabric: cannot reach the keymesh node at %s (%s): %w", c.api.Addr(), EnvAddr, err)
}

// String describes the client by the node's address; it never shows the
// token.
func (c *Client) String() string { return "fabric.Client(" + c.api.Addr() + ")" }
