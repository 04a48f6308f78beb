package client

import (
	"context"
	"strings"
	"testing"

	"github.com/keymesh/keymesh/node/apiv1"
)

// The eth routes join the shared route table, so that the OpenAPI route
// test and TestRoutes cover them too.
func init() {
	routeCases = append(routeCases,
		routeCase{
			name: "EthDomain", route: "GET /v1/eth/domain", wantPath: "/v1/eth/domain",
			resp: `{"name":"keymesh","version":"1","network_id":"ab","salt":"0xab","audience":"node-a","primary_type":"KeymeshRequest","type":"KeymeshRequest(address account)","action":"decrypt","max_ttl_seconds":600}`,
			call: func(ctx context.Context, c *Client) (any, error) { return c.EthDomain(ctx) },
			check: func(t *testing.T, got any) {
				if d := got.(*apiv1.EthDomain); d.Salt != "0xab" || d.Audience != "node-a" || d.MaxTTLSeconds != 600 {
					t.Errorf("EthDomain() = %+v", d)
				}
			},
		},
		routeCase{
			name: "EthDecrypt", route: "POST /v1/eth/decrypt", wantPath: "/v1/eth/decrypt",
			resp:     `{"plaintext":"aGk=","key":"trade/price","version":1}`,
			wantBody: `{"ciphertext":"km1:AA","context":{"field":"price"},"auth":{"chain_id":1337,"account":"0x01","expiry":5,"nonce":"0x02","signature":"0x03"}}`,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.EthDecrypt(ctx, apiv1.EthDecryptRequest{
					Ciphertext: "km1:AA", Context: map[string]string{"field": "price"},
					Auth: apiv1.EthAuth{ChainID: 1337, Account: "0x01", Expiry: 5, Nonce: "0x02", Signature: "0x03"},
				})
			},
			check: func(t *testing.T, got any) {
				if r := got.(*apiv1.DecryptResponse); string(r.Plaintext) != "hi" || r.Key != "trade/price" {
					t.Errorf("EthDecrypt() = %+v", r)
				}
			},
		},
	)
}

// TestOpenAPIEthSchemas holds the eth schemas of docs/openapi.yaml to the
// apiv1 types, as TestOpenAPISchemasMatchAPIv1 does for the others.
func TestOpenAPIEthSchemas(t *testing.T) {
	t.Parallel()
	doc, _ := loadOpenAPI(t)
	types := map[string]any{
		"EthAuth": apiv1.EthAuth{}, "EthDecryptRequest": apiv1.EthDecryptRequest{}, "EthDomain": apiv1.EthDomain{},
	}
	checkSchemas(t, doc, types, func(name string) bool { return name == "EthDecryptRequest" })
	if got, _ := doc.Components.Schemas["EthDecryptRequest"].Properties["batch"]["maxItems"].(int); got != apiv1.MaxBatchItems {
		t.Errorf("EthDecryptRequest.batch maxItems = %d, want %d", got, apiv1.MaxBatchItems)
	}
	// The eth routes take a wallet signature, not a bearer token.
	for _, p := range []string{"/v1/eth/domain", "/v1/eth/decrypt"} {
		for method, v := range doc.Paths[p] {
			op, _ := v.(map[string]any)
			if sec, ok := op["security"].([]any); !ok || len(sec) != 0 {
				t.Errorf("%s %s: security = %v, want [] (no bearer token)", strings.ToUpper(method), p, op["security"])
			}
		}
	}
}
