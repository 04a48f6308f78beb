package client

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/keymesh/keymesh/node/apiv1"
)

const nodeIdentityDoc = `{"org":"Org1MSP","network_id":"` + zeroHex32 + `","peer_id":"12D3KooWtest","sign_key":"` + zeroHex32 + `",
	"kem_key":"AAEC","addrs":["/ip4/127.0.0.1/tcp/19000/p2p/12D3KooWtest"],"mesh":true,"registered":true}`

const zeroHex32 = "0000000000000000000000000000000000000000000000000000000000000000"

const meshNodesDoc = `{"nodes":[{"org":"Org1MSP","peer_id":"12D3KooWtest","sign_key":"` + zeroHex32 + `","addrs":[],
	"not_after":"2027-03-01T12:00:00Z","deregistered":false,"self":true,"connected":false,"last_seen":"2026-03-01T12:00:00Z"}]}`

// The mesh routes join the shared route table, so that the OpenAPI route
// test and TestRoutes cover them too.
func init() {
	routeCases = append(routeCases,
		routeCase{
			name: "NodeIdentity", route: "GET /v1/node", wantPath: "/v1/node", resp: nodeIdentityDoc,
			call: func(ctx context.Context, c *Client) (any, error) { return c.NodeIdentity(ctx) },
			check: func(t *testing.T, got any) {
				if id := got.(*apiv1.NodeIdentity); id.PeerID != "12D3KooWtest" || !id.Mesh || !id.Registered || len(id.KEMKey) != 3 {
					t.Errorf("NodeIdentity() = %+v", id)
				}
			},
		},
		routeCase{
			name: "ListNodes", route: "GET /v1/nodes", wantPath: "/v1/nodes", resp: meshNodesDoc,
			call: func(ctx context.Context, c *Client) (any, error) { return c.ListNodes(ctx) },
			check: func(t *testing.T, got any) {
				if ns := got.([]apiv1.NetworkNode); len(ns) != 1 || !ns[0].Self || ns[0].LastSeen == nil || !ns[0].LastSeen.Equal(t0) {
					t.Errorf("ListNodes() = %+v", ns)
				}
			},
		},
		routeCase{
			name: "RegisterNode", route: "POST /v1/nodes/register", wantPath: "/v1/nodes/register", resp: nodeIdentityDoc,
			wantBody: `{"record":{"Org":"Org1MSP"}}`,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.RegisterNode(ctx, json.RawMessage(`{"Org":"Org1MSP"}`))
			},
		},
		routeCase{
			name: "DeregisterNode", route: "POST /v1/nodes/deregister", wantPath: "/v1/nodes/deregister", resp: meshNodesDoc,
			wantBody: `{"deregister":{"Org":"Org1MSP"}}`,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.DeregisterNode(ctx, json.RawMessage(`{"Org":"Org1MSP"}`))
			},
			check: func(t *testing.T, got any) {
				if ns := got.([]apiv1.NetworkNode); len(ns) != 1 {
					t.Errorf("DeregisterNode() = %+v", ns)
				}
			},
		},
	)
}

// TestOpenAPIMeshSchemas holds the mesh schemas of docs/openapi.yaml to the
// apiv1 types, as TestOpenAPISchemasMatchAPIv1 does for the others.
func TestOpenAPIMeshSchemas(t *testing.T) {
	t.Parallel()
	doc, _ := loadOpenAPI(t)
	types := map[string]any{
		"NodeIdentity": apiv1.NodeIdentity{}, "RegisterRequest": apiv1.RegisterRequest{},
		"DeregisterRequest": apiv1.DeregisterRequest{}, "NetworkNode": apiv1.NetworkNode{},
		"NetworkNodeList": apiv1.NetworkNodeList{}, "NetworkStatus": apiv1.NetworkStatus{},
	}
	checkSchemas(t, doc, types, func(name string) bool { return false })
}
