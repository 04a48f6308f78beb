// Package client is the typed Go client of keymesh's /v1 REST API. The
// keymesh CLI, the Fabric chaincode helpers and the Ethereum middleware all
// talk to a keymeshd through it.
//
// Start with [New], which takes the daemon's address and a bearer token:
//
//	c, err := client.New("127.0.0.1:8420", token)
//	env, version, err := c.EncryptValue(ctx, "trade/price", []byte("42"),
//		map[string]string{"channel": "trades", "field": "price"}, "")
//	plaintext, err := c.DecryptValue(ctx, env, map[string]string{"channel": "trades", "field": "price"})
//
// Every route of the API has one method, named after it, that takes a
// [context.Context] first and the request and response types of package
// apiv1, which the server shares. A response with a non-2xx status becomes an
// [*APIError]; branch on its stable code with [IsCode] or errors.Is and the
// Err* values ([ErrNotFound], [ErrNotGranted], …).
//
// The token is a secret: the client sends it only in the Authorization header,
// never puts it in an error, and redacts it when the Client is printed. The
// client does not follow redirects, so the token cannot be forwarded to
// another origin. Without a scheme, the address is plain HTTP, which suits the
// daemon's usual place beside the ledger node on 127.0.0.1; give an https://
// address, [WithTLSConfig] or [WithCAFile] to reach a daemon over a network.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/keymesh/keymesh/node/apiv1"
)

const (
	// MaxResponseBytes caps how much of a response body the client reads. A
	// larger body fails with [ErrResponseTooLarge]: a batch of
	// apiv1.MaxBatchItems results fits well below it.
	MaxResponseBytes = 16 << 20

	// maxErrorBytes caps how much of a failed response's body is read to
	// find its error code and message.
	maxErrorBytes = 64 << 10

	// DefaultTimeout bounds a whole request (connect, send, wait, read) of
	// the default HTTP client.
	DefaultTimeout = 30 * time.Second

	// DefaultUserAgent is sent unless WithUserAgent says otherwise.
	DefaultUserAgent = "keymesh-go-client"
)

// Client calls one keymesh daemon's REST API. It is safe for concurrent use
// by multiple goroutines; reuse one Client so connections are reused.
type Client struct {
	base      *url.URL // scheme, host and an optional path prefix without a trailing slash
	token     *bearer  // nil without a token
	hc        *http.Client
	userAgent string
}

// bearer holds the token behind a pointer, so that even printing a Client
// value (not a *Client) through reflection shows an address, not the secret.
type bearer struct{ v string }

// Option configures a Client in New.
type Option func(*options) error

type options struct {
	hc        *http.Client
	tls       *tls.Config
	userAgent string
}

// WithHTTPClient makes the client send its requests through hc, as given: the
// caller then owns timeouts, transport, TLS and redirect policy. It cannot be
// combined with WithTLSConfig or WithCAFile.
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) error {
		if hc == nil {
			return errors.New("client: WithHTTPClient(nil)")
		}
		o.hc = hc
		return nil
	}
}

// WithTLSConfig sets the TLS configuration of the default transport; the
// client keeps its own copy. An address without a scheme then means https.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(o *options) error {
		if cfg == nil {
			return errors.New("client: WithTLSConfig(nil)")
		}
		o.tls = cfg.Clone()
		return nil
	}
}

// WithCAFile makes the client trust only the PEM certificates in the file at
// path to verify the daemon's certificate, in place of the system roots (as
// curl's --cacert does). An address without a scheme then means https.
func WithCAFile(path string) Option {
	return func(o *options) error {
		pemBytes, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("client: reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return fmt.Errorf("client: CA file %q holds no PEM certificate", path)
		}
		if o.tls == nil {
			o.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		o.tls.RootCAs = pool
		return nil
	}
}

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option {
	return func(o *options) error {
		if ua == "" || !isHeaderValue(ua, true) {
			return fmt.Errorf("client: invalid user agent %q", ua)
		}
		o.userAgent = ua
		return nil
	}
}

// New returns a client of the daemon at addr that authenticates with token.
//
// addr is "host:port" (for example "127.0.0.1:8420" or "[::1]:8420"), or a
// URL with scheme http or https and optionally a path prefix under which the
// API is served. A bare "host:port" means http, or https when WithTLSConfig
// or WithCAFile is given. token may be empty for a client that calls only
// Health, Ready and Metrics; every /v1 route needs one.
func New(addr, token string, opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.hc != nil && o.tls != nil {
		return nil, errors.New("client: WithHTTPClient cannot be combined with WithTLSConfig or WithCAFile; configure the http.Client's transport instead")
	}
	base, err := parseAddr(addr, o.tls != nil)
	if err != nil {
		return nil, err
	}
	if o.tls != nil && base.Scheme != "https" {
		// Likely a mistake that would send the token in cleartext while
		// the caller believes it is protected.
		return nil, fmt.Errorf("client: TLS options given for the plain-HTTP address %q; use https://", addr)
	}
	// Bearer tokens are printable ASCII without spaces (RFC 6750 token68).
	// The error does not quote the token: it is a secret.
	if token != "" && !isHeaderValue(token, false) {
		return nil, errors.New("client: the token holds spaces, control or non-ASCII characters (is there a trailing newline?)")
	}
	c := &Client{base: base, hc: o.hc, userAgent: o.userAgent}
	if token != "" {
		c.token = &bearer{token}
	}
	if c.hc == nil {
		c.hc = defaultHTTPClient(o.tls)
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	return c, nil
}

func parseAddr(addr string, tlsWanted bool) (*url.URL, error) {
	if addr == "" {
		return nil, errors.New("client: empty address")
	}
	raw := addr
	if !strings.Contains(addr, "://") {
		if tlsWanted {
			raw = "https://" + addr
		} else {
			raw = "http://" + addr
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		if strings.Contains(addr, "@") {
			// The parse error would quote what may be a password.
			return nil, errors.New("client: invalid address: it must not hold user info; pass the token to New")
		}
		return nil, fmt.Errorf("client: invalid address %q: %w", addr, err)
	}
	if u.User != nil {
		// Credentials in the URL would end up in error messages.
		return nil, errors.New("client: invalid address: it must not hold user info; pass the token to New")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("client: invalid address %q: scheme must be http or https", addr)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("client: invalid address %q: no host", addr)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("client: invalid address %q: it must not hold a query or fragment", addr)
	}
	if p := u.Port(); p != "" {
		if _, err := net.LookupPort("tcp", p); err != nil {
			return nil, fmt.Errorf("client: invalid address %q: bad port", addr)
		}
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	return u, nil
}

// defaultHTTPClient is the http.Client of a Client made without
// WithHTTPClient: a 30 s timeout per request, a transport tuned for many
// concurrent requests to one daemon, and no redirects.
func defaultHTTPClient(tlsConfig *tls.Config) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 128
	t.MaxIdleConnsPerHost = 64
	t.IdleConnTimeout = 90 * time.Second
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = DefaultTimeout
	t.ExpectContinueTimeout = time.Second
	if tlsConfig != nil {
		t.TLSClientConfig = tlsConfig
	}
	return &http.Client{
		Transport: t,
		Timeout:   DefaultTimeout,
		// The API never redirects; following one could send the token
		// (or a plaintext) somewhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Addr returns the base URL the client sends its requests to.
func (c *Client) Addr() string { return c.base.String() }

// String describes the client by its address; it never shows the token.
func (c *Client) String() string {
	if c == nil {
		return "client.Client(nil)"
	}
	return "client.Client(" + c.base.String() + ")"
}

// GoString is String, so %#v does not print the token either.
func (c *Client) GoString() string { return c.String() }

// LogValue is String, so log/slog does not log the token either.
func (c *Client) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Format prints String for every verb, so no verb reaches the token through
// reflection.
func (c *Client) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// do sends one request and decodes a 2xx response's JSON body into out
// (unless out is nil). path is already escaped.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	body, err := c.send(ctx, method, path, query, in, "application/json")
	if err != nil {
		return err
	}
	defer body.Close()
	data, err := readBounded(body, MaxResponseBytes)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if out == nil {
		return nil
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("%s %s: empty response body", method, path)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decoding response: %w", method, path, err)
	}
	return nil
}

// send sends one request and returns the body of a 2xx response; any other
// status becomes an *APIError.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, in any, accept string) (io.ReadCloser, error) {
	var reqBody io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encoding request: %w", method, path, err)
		}
		// The server would refuse it with 413 after reading it all; say so
		// before sending megabytes.
		if len(b) > apiv1.MaxBodyBytes {
			return nil, fmt.Errorf("%s %s: %w: the request body is %d bytes, over the limit of %d",
				method, path, ErrTooLarge, len(b), apiv1.MaxBodyBytes)
		}
		reqBody = bytes.NewReader(b)
	}
	u := *c.base
	u.Path = c.base.Path + unescapePath(path)
	u.RawPath = c.base.EscapedPath() + path
	if len(query) > 0 {
		u.RawQuery = query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), reqBody)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", c.userAgent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != nil {
		req.Header.Set("Authorization", "Bearer "+c.token.v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// *url.Error names the method and URL, which hold no secret.
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp.Body, nil
}

// unescapePath undoes url.PathEscape on an escaped path; send builds both
// forms so that url.URL.String keeps the escaping.
func unescapePath(p string) string {
	s, err := url.PathUnescape(p)
	if err != nil {
		return p
	}
	return s
}

// readBounded reads r to its end, failing with ErrResponseTooLarge past
// limit bytes.
func readBounded(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading response: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w (over %d bytes)", ErrResponseTooLarge, limit)
	}
	return data, nil
}

// isHeaderValue reports whether s is printable ASCII, with spaces only if
// spaces is set.
func isHeaderValue(s string, spaces bool) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b == ' ' && spaces {
			continue
		}
		if b <= ' ' || b >= 0x7f {
			return false
		}
	}
	return true
}
