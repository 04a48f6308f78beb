package ethereum_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/keymesh/keymesh/chaincode/ethereum"
	"github.com/keymesh/keymesh/chaincode/ethereum/example"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/ethid"
)

func TestAuthenticator(t *testing.T) {
	netID := strings.Repeat("cd", 32)
	key := mustKey(t)
	header := func(t *testing.T, action string, expiry time.Time) string {
		t.Helper()
		r, err := ethid.NewRequest(ethid.Domain{NetworkID: netID, ChainID: 1}, example.Address(key), action, nil, expiry)
		if err != nil {
			t.Fatal(err)
		}
		a, err := r.Sign(key, ethid.SchemeEIP712)
		if err != nil {
			t.Fatal(err)
		}
		h, err := ethereum.EncodeAuthHeader(a)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	handler := func(w http.ResponseWriter, r *http.Request) {
		p, ok := ethereum.PrincipalFrom(r.Context())
		if !ok {
			http.Error(w, "no principal", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, p.Party)
	}
	v, err := ethid.NewVerifier(netID)
	if err != nil {
		t.Fatal(err)
	}
	a := ethereum.NewAuthenticator(v)
	gin.SetMode(gin.ReleaseMode)
	g := gin.New()
	g.GET("/orders/:id", a.Gin(), func(c *gin.Context) {
		p, ok := ethereum.GinPrincipal(c)
		if !ok {
			c.String(http.StatusInternalServerError, "no principal")
			return
		}
		c.String(http.StatusOK, p.Party)
	})
	servers := map[string]http.Handler{"net/http": a.Middleware(http.HandlerFunc(handler)), "gin": g}
	party := ethid.Party(example.Address(key))

	for name, srv := range servers {
		replayed := header(t, "GET /orders/42", time.Now().Add(time.Minute))
		for _, tc := range []struct {
			name   string
			header string
			path   string
			want   int
		}{
			{name: "ok/signed", header: replayed, path: "/orders/42", want: 200},
			{name: "fail/replayed", header: replayed, path: "/orders/42", want: 401},
			{name: "fail/no-header", path: "/orders/42", want: 401},
			{name: "fail/garbage", header: "!!", path: "/orders/42", want: 401},
			{name: "fail/other-path", header: header(t, "GET /orders/41", time.Now().Add(time.Minute)), path: "/orders/42", want: 401},
			{name: "fail/expired", header: header(t, "GET /orders/42", time.Now().Add(-time.Hour)), path: "/orders/42", want: 401},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				req := httptest.NewRequest("GET", tc.path, nil)
				if tc.header != "" {
					req.Header.Set(ethereum.AuthHeader, tc.header)
				}
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, req)
				if rec.Code != tc.want {
					t.Fatalf("GET %s = %d %s, want %d", tc.path, rec.Code, rec.Body, tc.want)
				}
				if tc.want == 200 && rec.Body.String() != party {
					t.Errorf("principal = %q, want %q", rec.Body, party)
				}
				if tc.want == 401 {
					var er apiv1.ErrorResponse
					if err := json.Unmarshal(rec.Body.Bytes(), &er); err != nil || er.Error.Code != apiv1.CodeUnauthenticated {
						t.Errorf("body = %s, want a keymesh unauthenticated error", rec.Body)
					}
				}
			})
		}
	}
}

// TestAuthenticatorAllowSpendsNothingForRefused: with WithAllow, a flood of
// verified signatures by wallets the back end does not serve is refused
// with 403 and leaves the nonce store empty, so an allowed wallet is still
// served (the shared total bound is not filled).
func TestAuthenticatorAllowSpendsNothingForRefused(t *testing.T) {
	t.Parallel()
	netID := strings.Repeat("cd", 32)
	good := mustKey(t)
	cache := ethid.NewReplayCache(5, 5)
	v, err := ethid.NewVerifier(netID, ethid.WithNonces(cache))
	if err != nil {
		t.Fatal(err)
	}
	a := ethereum.NewAuthenticator(v, ethereum.WithAllow(func(_ context.Context, p ethereum.Principal) bool {
		return p.Address == example.Address(good)
	}))
	srv := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	get := func(t *testing.T, key *ecdsa.PrivateKey) int {
		t.Helper()
		r, err := ethid.NewRequest(ethid.Domain{NetworkID: netID, ChainID: 1}, example.Address(key), "GET /x", nil, time.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		auth, err := r.Sign(key, ethid.SchemeEIP712)
		if err != nil {
			t.Fatal(err)
		}
		h, err := ethereum.EncodeAuthHeader(auth)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("GET", "/x", nil)
		req.Header.Set(ethereum.AuthHeader, h)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec.Code
	}
	for i := range 20 { // four times the cache's total bound, from fresh wallets
		if code := get(t, mustKey(t)); code != http.StatusForbidden {
			t.Fatalf("refused wallet %d = %d, want 403", i, code)
		}
	}
	if n := cache.Len(); n != 0 {
		t.Errorf("after 20 refused wallets the cache holds %d nonces, want 0", n)
	}
	if code := get(t, good); code != http.StatusOK {
		t.Errorf("allowed wallet = %d, want 200", code)
	}
}
