package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/keymesh/keymesh/node/apiv1"
)

// TestEthRoutesWithoutNetworkID: a node without a valid network id cannot
// check wallet signatures, and says so with 503 rather than 401. (The routes
// with a real node are tested end to end in chaincode/ethereum.)
func TestEthRoutesWithoutNetworkID(t *testing.T) {
	f := newFixture(t)
	body := `{"ciphertext":"km1:AAAA","auth":{"chain_id":1,"account":"0x0000000000000000000000000000000000000001","expiry":1,"nonce":"0x00","signature":"0x00"}}`
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
		code                     string
	}{
		{"fail/domain", "GET", "/v1/eth/domain", "", http.StatusServiceUnavailable, apiv1.CodeUnavailable},
		{"fail/decrypt", "POST", "/v1/eth/decrypt", body, http.StatusServiceUnavailable, apiv1.CodeUnavailable},
		{"fail/decrypt-no-ciphertext", "POST", "/v1/eth/decrypt", `{"auth":{}}`, http.StatusBadRequest, apiv1.CodeInvalidRequest},
		{"fail/decrypt-unknown-field", "POST", "/v1/eth/decrypt", `{"token":"x"}`, http.StatusBadRequest, apiv1.CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, e, raw := f.do(t, tc.method, tc.path, "", strings.NewReader(tc.body))
			if status != tc.want || e.Error.Code != tc.code {
				t.Errorf("%s %s = %d %s, want %d %s", tc.method, tc.path, status, raw, tc.want, tc.code)
			}
		})
	}
}
