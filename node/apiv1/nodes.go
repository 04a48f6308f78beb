package apiv1

import (
	"encoding/json"
	"time"
)

// NodeIdentity is what an org admin signs to register this node
// (GET /v1/node): the keys and addresses that go into its node record.
type NodeIdentity struct {
	Org        string   `json:"org"`
	NetworkID  string   `json:"network_id"`
	PeerID     string   `json:"peer_id"`
	SignKey    string   `json:"sign_key"`
	KEMKey     []byte   `json:"kem_key"`
	Addrs      []string `json:"addrs"`
	Mesh       bool     `json:"mesh"`
	Registered bool     `json:"registered"`
}

// RegisterRequest publishes an admin-signed node record
// (POST /v1/nodes/register). Record is the JSON of the signed record
// (package event's NodeRecord).
type RegisterRequest struct {
	Record json.RawMessage `json:"record"`
}

// DeregisterRequest publishes an admin-signed deregistration
// (POST /v1/nodes/deregister). Deregister is the JSON of package event's
// Deregister.
type DeregisterRequest struct {
	Deregister json.RawMessage `json:"deregister"`
}

// NetworkNode is a node of the network as this node knows it (GET /v1/nodes).
type NetworkNode struct {
	Org          string    `json:"org"`
	PeerID       string    `json:"peer_id"`
	SignKey      string    `json:"sign_key"`
	Addrs        []string  `json:"addrs"`
	NotAfter     time.Time `json:"not_after"`
	Deregistered bool      `json:"deregistered"`
	// LastSeq is the cut of a deregistered node: its events up to this
	// sequence number count, none after.
	LastSeq *uint64 `json:"last_seq,omitempty"`
	// Events is how many of the node's events this node holds.
	Events    uint64     `json:"events"`
	Tainted   bool       `json:"tainted"`
	Self      bool       `json:"self"`
	Connected bool       `json:"connected"`
	LastSeen  *time.Time `json:"last_seen,omitempty"`
}

// NetworkNodeList is the body of GET /v1/nodes.
type NetworkNodeList struct {
	Nodes []NetworkNode `json:"nodes"`
}

// NetworkStatus is the mesh part of /v1/status.
type NetworkStatus struct {
	Peers    int        `json:"peers"`
	Events   int        `json:"events"`
	Pending  int        `json:"pending"`
	LastSync *time.Time `json:"last_sync,omitempty"`
	Nodes    int        `json:"nodes"`
	Dropped  int        `json:"dropped"`
	Addrs    []string   `json:"addrs"`
	// Staleness is the bound (a Go duration, e.g. "10s"); Orgs says, for
	// every other org, when this node last heard from it and whether its
	// keys are refused as stale_policy now.
	Staleness string         `json:"staleness"`
	Orgs      []OrgFreshness `json:"orgs"`
}

// OrgFreshness is how recently a mesh node heard from another org (a
// liveness checkpoint whose events it holds).
type OrgFreshness struct {
	Org       string     `json:"org"`
	LastHeard *time.Time `json:"last_heard,omitempty"`
	Stale     bool       `json:"stale"`
}
