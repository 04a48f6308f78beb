package client

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keymesh/keymesh/event"
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
func (c *Client) DeregisterNode(ctx context.Context, d json.RawMessage) ([]apiv1.MeshNode, error) {
	var out apiv1.MeshNodeList
	if err := c.do(ctx, http.MethodPost, "/v1/nodes/deregister", nil, apiv1.DeregisterRequest{Deregister: d}, &out); err != nil {
		return nil, err
	}
	return out.Nodes, nil
}

// ListNodes lists the network's nodes as this node knows them
// (GET /v1/nodes).
func (c *Client) ListNodes(ctx context.Context) ([]apiv1.MeshNode, error) {
	var out apiv1.MeshNodeList
	if err := c.do(ctx, http.MethodGet, "/v1/nodes", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Nodes, nil
}

// Register registers the node this client talks to: it fetches the node's
// identity, signs its record with the org admin key here, in the caller's
// process (the admin key never reaches the node), and publishes it. The
// record is valid from a minute ago for validFor.
func (c *Client) Register(ctx context.Context, admin ed25519.PrivateKey, validFor time.Duration) (*apiv1.NodeIdentity, error) {
	id, err := c.NodeIdentity(ctx)
	if err != nil {
		return nil, err
	}
	rec, err := SignRecord(id, admin, time.Now(), validFor)
	if err != nil {
		return nil, err
	}
	return c.RegisterNode(ctx, rec)
}

// SignRecord builds and signs the node record of id with the org admin key,
// valid from a minute before now for validFor, and returns its JSON.
func SignRecord(id *apiv1.NodeIdentity, admin ed25519.PrivateKey, now time.Time, validFor time.Duration) (json.RawMessage, error) {
	if !id.Mesh {
		return nil, errors.New("client: the node belongs to no network (initialised without a genesis)")
	}
	var nid event.NetworkID
	if err := nid.UnmarshalText([]byte(id.NetworkID)); err != nil {
		return nil, fmt.Errorf("client: node identity: %w", err)
	}
	var sk event.NodeKey
	if err := sk.UnmarshalText([]byte(id.SignKey)); err != nil {
		return nil, fmt.Errorf("client: node identity: %w", err)
	}
	var adminPub [32]byte
	copy(adminPub[:], admin.Public().(ed25519.PublicKey))
	addrs := id.Addrs
	if len(addrs) > event.MaxAddrs {
		addrs = addrs[:event.MaxAddrs]
	}
	rec, err := event.SignNodeRecord(admin, nid, event.NodeRecord{
		Org: id.Org, PeerID: id.PeerID, SignKey: sk, KEMKey: id.KEMKey, Addrs: addrs,
		NotBefore: now.Add(-time.Minute).UTC(), NotAfter: now.Add(validFor).UTC(), AdminKey: adminPub,
	})
	if err != nil {
		return nil, fmt.Errorf("client: sign node record: %w", err)
	}
	return json.Marshal(rec)
}
