package client

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/keymesh/keymesh/node/apiv1"
)

// NodeIdentity returns what an org admin signs to register this node
// (GET /v1/node).
func (c *Client) NodeIdentity(ctx context.Context) (*apiv1.NodeIdentity, error) {
	var out apiv1.NodeIdentity
	if err := c.do(ctx, http.MethodGet, "/v1/node", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RegisterNode publishes an admin-signed node record, given as its JSON
// (POST /v1/nodes/register).
func (c *Client) RegisterNode(ctx context.Context, record json.RawMessage) (*apiv1.NodeIdentity, error) {
	var out apiv1.NodeIdentity
	if err := c.do(ctx, http.MethodPost, "/v1/nodes/register", nil, apiv1.RegisterRequest{Record: record}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeregisterNode publishes an admin-signed deregistration, given as its
// JSON (POST /v1/nodes/deregister).
func (c *Client) DeregisterNode(ctx context.Context, d json.RawMessage) ([]apiv1.NetworkNode, error) {
	var out apiv1.NetworkNodeList
	if err := c.do(ctx, http.MethodPost, "/v1/nodes/deregister", nil, apiv1.DeregisterRequest{Deregister: d}, &out); err != nil {
		return nil, err
	}
	return out.Nodes, nil
}

// ListNodes lists the network's nodes as this node knows them
// (GET /v1/nodes).
func (c *Client) ListNodes(ctx context.Context) ([]apiv1.NetworkNode, error) {
	var out apiv1.NetworkNodeList
	if err := c.do(ctx, http.MethodGet, "/v1/nodes", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Nodes, nil
}
