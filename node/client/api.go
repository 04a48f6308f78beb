package client

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/keymesh/keymesh/node/apiv1"
)

// Health calls GET /healthz: the daemon is up. It needs no token.
func (c *Client) Health(ctx context.Context) (*apiv1.Health, error) {
	var out apiv1.Health
	if err := c.do(ctx, "GET", "/healthz", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Ready calls GET /readyz: the daemon can serve requests. A daemon that is
// not ready answers with an error status, which Ready returns as an
// *APIError. It needs no token.
func (c *Client) Ready(ctx context.Context) (*apiv1.Health, error) {
	var out apiv1.Health
	if err := c.do(ctx, "GET", "/readyz", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Metrics calls GET /metrics and returns the Prometheus text exposition as
// it came. It needs no token.
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	body, err := c.send(ctx, "GET", "/metrics", nil, nil, "text/plain")
	if err != nil {
		return nil, err
	}
	defer body.Close()
	data, err := readBounded(body, MaxResponseBytes)
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	return data, nil
}

// Status calls GET /v1/status: the node, and who the token authenticates.
func (c *Client) Status(ctx context.Context) (*apiv1.Status, error) {
	var out apiv1.Status
	if err := c.do(ctx, "GET", "/v1/status", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateKey calls POST /v1/keys. It needs the admin role.
func (c *Client) CreateKey(ctx context.Context, req apiv1.CreateKeyRequest) (*apiv1.Key, error) {
	if _, err := keyPath(req.Name); err != nil {
		return nil, err
	}
	return c.key(ctx, "POST", "/v1/keys", req)
}

// ListKeys calls GET /v1/keys page after page and returns every key. It
// needs the admin role.
func (c *Client) ListKeys(ctx context.Context) ([]apiv1.Key, error) {
	var all []apiv1.Key
	after := ""
	for {
		page, err := c.ListKeysPage(ctx, after, 0)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Keys...)
		if page.Next == "" || page.Next == after {
			return all, nil
		}
		after = page.Next
	}
}

// ListKeysPage calls GET /v1/keys for one page: up to limit keys (0: the
// server's default) after the key named after. It needs the admin role.
func (c *Client) ListKeysPage(ctx context.Context, after string, limit int) (*apiv1.KeyList, error) {
	q := pageQuery(after, limit)
	var out apiv1.KeyList
	if err := c.do(ctx, "GET", "/v1/keys", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func pageQuery(after string, limit int) url.Values {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q
}

// GetKey calls GET /v1/keys/{ns}/{name}. It needs the admin role.
func (c *Client) GetKey(ctx context.Context, name string) (*apiv1.Key, error) {
	p, err := keyPath(name)
	if err != nil {
		return nil, err
	}
	return c.key(ctx, "GET", p, nil)
}

// RotateKey calls POST /v1/keys/{ns}/{name}/rotate, adding a version. It
// needs the admin role.
func (c *Client) RotateKey(ctx context.Context, name string, req apiv1.RotateKeyRequest) (*apiv1.Key, error) {
	p, err := keyPath(name)
	if err != nil {
		return nil, err
	}
	return c.key(ctx, "POST", p+"/rotate", req)
}

// SetKeyState calls POST /v1/keys/{ns}/{name}/state. It needs the admin
// role.
func (c *Client) SetKeyState(ctx context.Context, name string, req apiv1.SetKeyStateRequest) (*apiv1.Key, error) {
	p, err := keyPath(name)
	if err != nil {
		return nil, err
	}
	return c.key(ctx, "POST", p+"/state", req)
}

// SetKeyConfig calls POST /v1/keys/{ns}/{name}/config. It needs the admin
// role.
func (c *Client) SetKeyConfig(ctx context.Context, name string, req apiv1.KeyConfigRequest) (*apiv1.Key, error) {
	p, err := keyPath(name)
	if err != nil {
		return nil, err
	}
	return c.key(ctx, "POST", p+"/config", req)
}

// DestroyKey calls POST /v1/keys/{ns}/{name}/destroy, crypto-shredding every
// version of the key: whatever was encrypted under it becomes unreadable for
// good. The server refuses unless req.Confirm repeats name. It needs the
// admin role.
func (c *Client) DestroyKey(ctx context.Context, name string, req apiv1.DestroyKeyRequest) (*apiv1.Key, error) {
	p, err := keyPath(name)
	if err != nil {
		return nil, err
	}
	return c.key(ctx, "POST", p+"/destroy", req)
}

func (c *Client) key(ctx context.Context, method, path string, in any) (*apiv1.Key, error) {
	var out apiv1.Key
	if err := c.do(ctx, method, path, nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Encrypt calls POST /v1/encrypt with a full request: one value, or a batch.
// The key's grants decide whether the token's party may encrypt.
func (c *Client) Encrypt(ctx context.Context, req apiv1.EncryptRequest) (*apiv1.EncryptResponse, error) {
	var out apiv1.EncryptResponse
	if err := c.do(ctx, "POST", "/v1/encrypt", nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Decrypt calls POST /v1/decrypt with a full request: one envelope, or a
// batch. The key's grants decide whether the token's party may decrypt.
func (c *Client) Decrypt(ctx context.Context, req apiv1.DecryptRequest) (*apiv1.DecryptResponse, error) {
	var out apiv1.DecryptResponse
	if err := c.do(ctx, "POST", "/v1/decrypt", nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// EncryptValue encrypts one plaintext under key, bound to context, and
// returns the envelope's text form and the key version used. mode is
// "random" (or "", the server's default) or "deterministic"; endorsement
// mode needs a transaction id and time, so use Encrypt for it.
func (c *Client) EncryptValue(ctx context.Context, key string, plaintext []byte, context map[string]string, mode string) (envelope string, version uint32, err error) {
	resp, err := c.Encrypt(ctx, apiv1.EncryptRequest{Key: key, Plaintext: plaintext, Context: context, Mode: mode})
	if err != nil {
		return "", 0, err
	}
	if resp.Ciphertext == "" {
		return "", 0, fmt.Errorf("POST /v1/encrypt: response holds no ciphertext")
	}
	return resp.Ciphertext, resp.Version, nil
}

// DecryptValue opens one envelope with the context given at encryption and
// returns the plaintext (empty, not nil, for an empty plaintext).
func (c *Client) DecryptValue(ctx context.Context, envelope string, context map[string]string) ([]byte, error) {
	resp, err := c.Decrypt(ctx, apiv1.DecryptRequest{Ciphertext: envelope, Context: context})
	if err != nil {
		return nil, err
	}
	if resp.Plaintext == nil {
		return []byte{}, nil
	}
	return resp.Plaintext, nil
}

// CreateGrant calls POST /v1/grants. It needs the admin role.
func (c *Client) CreateGrant(ctx context.Context, req apiv1.CreateGrantRequest) (*apiv1.Grant, error) {
	var out apiv1.Grant
	if err := c.do(ctx, "POST", "/v1/grants", nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListGrants calls GET /v1/grants: the grants on key, or every grant when
// key is "". It needs the admin role.
//
// It follows the pages of the listing and returns every grant.
func (c *Client) ListGrants(ctx context.Context, key string) ([]apiv1.Grant, error) {
	var all []apiv1.Grant
	after := ""
	for {
		page, err := c.ListGrantsPage(ctx, key, after, 0)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Grants...)
		if page.Next == "" || page.Next == after {
			return all, nil
		}
		after = page.Next
	}
}

// ListGrantsPage calls GET /v1/grants for one page: up to limit grants
// (0: the server's default) of key ("" for every key) after the cursor
// after (the Next of the previous page, "" for the first). It needs the
// admin role.
func (c *Client) ListGrantsPage(ctx context.Context, key, after string, limit int) (*apiv1.GrantList, error) {
	q := pageQuery(after, limit)
	if key != "" {
		q.Set("key", key)
	}
	var out apiv1.GrantList
	if err := c.do(ctx, "GET", "/v1/grants", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Revoke calls POST /v1/grants/revoke, ending every grant of party on key.
// It needs the admin role.
func (c *Client) Revoke(ctx context.Context, key, party string) (*apiv1.Revocation, error) {
	var out apiv1.Revocation
	if err := c.do(ctx, "POST", "/v1/grants/revoke", nil, apiv1.RevokeRequest{Key: key, Party: party}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateToken calls POST /v1/tokens. The returned Token field is the secret,
// which the server shows this once. It needs the admin role.
func (c *Client) CreateToken(ctx context.Context, req apiv1.CreateTokenRequest) (*apiv1.CreatedToken, error) {
	var out apiv1.CreatedToken
	if err := c.do(ctx, "POST", "/v1/tokens", nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListTokens calls GET /v1/tokens. It needs the admin role.
func (c *Client) ListTokens(ctx context.Context) ([]apiv1.Token, error) {
	var out apiv1.TokenList
	if err := c.do(ctx, "GET", "/v1/tokens", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Tokens, nil
}

// RevokeToken calls POST /v1/tokens/{id}/revoke. It needs the admin role.
func (c *Client) RevokeToken(ctx context.Context, id string) (*apiv1.Token, error) {
	seg, err := segment(id)
	if err != nil {
		return nil, fmt.Errorf("%w: token id %q: %v", ErrInvalidName, id, err)
	}
	var out apiv1.Token
	if err := c.do(ctx, "POST", "/v1/tokens/"+seg+"/revoke", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AuditTail calls GET /v1/audit: the newest limit entries of the audit log,
// or the server's default number when limit is 0 or less. The server caps
// limit at apiv1.MaxListLimit. It needs the admin role.
func (c *Client) AuditTail(ctx context.Context, limit int) ([]apiv1.AuditEntry, error) {
	var q url.Values
	if limit > 0 {
		q = url.Values{"limit": {strconv.Itoa(limit)}}
	}
	var out apiv1.AuditList
	if err := c.do(ctx, "GET", "/v1/audit", q, nil, &out); err != nil {
		return nil, err
	}
	return out.Entries, nil
}

// AuditVerify calls POST /v1/audit/verify, which checks the audit log's hash
// chain. A broken chain is not an error: it is a result with OK false. It
// needs the admin role.
func (c *Client) AuditVerify(ctx context.Context) (*apiv1.AuditVerify, error) {
	var out apiv1.AuditVerify
	if err := c.do(ctx, "POST", "/v1/audit/verify", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// keyPath returns the escaped path /v1/keys/{ns}/{name} of a key name
// "<ns>/<name>", or ErrInvalidName.
func keyPath(name string) (string, error) {
	ns, n, ok := strings.Cut(name, "/")
	if !ok || strings.Contains(n, "/") {
		return "", fmt.Errorf("%w: key name %q must be <namespace>/<name>, with exactly one '/'", ErrInvalidName, name)
	}
	nsSeg, err := segment(ns)
	if err != nil {
		return "", fmt.Errorf("%w: key name %q: namespace %v", ErrInvalidName, name, err)
	}
	nSeg, err := segment(n)
	if err != nil {
		return "", fmt.Errorf("%w: key name %q: name %v", ErrInvalidName, name, err)
	}
	return "/v1/keys/" + nsSeg + "/" + nSeg, nil
}

// segment escapes s as one path segment. It refuses what would not survive
// as a segment: "", "." and ".." (which proxies and routers collapse).
func segment(s string) (string, error) {
	switch s {
	case "":
		return "", fmt.Errorf("is empty")
	case ".", "..":
		return "", fmt.Errorf("cannot be %q", s)
	}
	if strings.Contains(s, "/") {
		return "", fmt.Errorf("holds a '/'")
	}
	return url.PathEscape(s), nil
}

// StartAuditVerifyJob calls POST /v1/audit/verify/jobs: it starts a
// background verification of the audit log (or returns the one running).
// Poll it with AuditVerifyJob. It needs the admin role.
func (c *Client) StartAuditVerifyJob(ctx context.Context) (*apiv1.AuditVerifyJob, error) {
	var out apiv1.AuditVerifyJob
	if err := c.do(ctx, "POST", "/v1/audit/verify/jobs", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AuditVerifyJob calls GET /v1/audit/verify/jobs/{id}. It needs the admin
// role.
func (c *Client) AuditVerifyJob(ctx context.Context, id string) (*apiv1.AuditVerifyJob, error) {
	var out apiv1.AuditVerifyJob
	if err := c.do(ctx, "GET", "/v1/audit/verify/jobs/"+url.PathEscape(id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
