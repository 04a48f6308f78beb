// Package enroll signs a node's registration record with its org admin's
// key, in the operator's process (the admin key never reaches the node),
// and publishes it through the node's API. It is what `keymesh node
// register` runs; the node's API client (node/client) stays free of the
// mesh wire formats, so chaincode binaries that link the client do not
// link key transport.
package enroll

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
)

// Register registers the node c talks to: it fetches the node's
// identity, signs its record with the org admin key here, in the caller's
// process (the admin key never reaches the node), and publishes it. The
// record is valid from a minute ago for validFor.
func Register(ctx context.Context, c *client.Client, admin ed25519.PrivateKey, validFor time.Duration) (*apiv1.NodeIdentity, error) {
	id, err := c.NodeIdentity(ctx)
	if err != nil {
		return nil, err
	}
	rec, err := Record(id, admin, time.Now(), validFor)
	if err != nil {
		return nil, err
	}
	return c.RegisterNode(ctx, rec)
}

// Record builds and signs the node record of id with the org admin key,
// valid from a minute before now for validFor, and returns its JSON.
func Record(id *apiv1.NodeIdentity, admin ed25519.PrivateKey, now time.Time, validFor time.Duration) (json.RawMessage, error) {
	if !id.Mesh {
		return nil, errors.New("enroll: the node belongs to no network (initialised without a genesis)")
	}
	var nid network.NetworkID
	if err := nid.UnmarshalText([]byte(id.NetworkID)); err != nil {
		return nil, fmt.Errorf("enroll: node identity: %w", err)
	}
	var sk network.NodeKey
	if err := sk.UnmarshalText([]byte(id.SignKey)); err != nil {
		return nil, fmt.Errorf("enroll: node identity: %w", err)
	}
	var adminPub [32]byte
	copy(adminPub[:], admin.Public().(ed25519.PublicKey))
	addrs := id.Addrs
	if len(addrs) > network.MaxAddrs {
		addrs = addrs[:network.MaxAddrs]
	}
	rec, err := network.SignNodeRecord(admin, nid, network.NodeRecord{
		Org: id.Org, PeerID: id.PeerID, SignKey: sk, KEMKey: id.KEMKey, Addrs: addrs,
		NotBefore: now.Add(-time.Minute).UTC(), NotAfter: now.Add(validFor).UTC(), AdminKey: adminPub,
	})
	if err != nil {
		return nil, fmt.Errorf("enroll: sign node record: %w", err)
	}
	return json.Marshal(rec)
}
