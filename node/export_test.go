package node

import (
	"crypto"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/token"
)

// The internals the external tests (package node_test, which run real
// nodes through node/nodetest) inspect. Kept in one place so that a change
// of the node's insides breaks one file.

// DBDir is where a node's store lives under its data directory.
var DBDir = dbDir

// AuditFormatKey is the record saying the audit log is authenticated.
var AuditFormatKey = auditFormatKey

// StoreOf returns the node's authenticated store.
func StoreOf(n *Node) kv.Store { return n.store }

// SignKeyOf returns a node's event signer (its private half stays in the
// vault): a test forges what a rogue node of that org could sign.
func SignKeyOf(n *Node) crypto.Signer { return n.mesh.sign }

// TokensOf returns the node's token registry.
func TokensOf(n *Node) *token.Registry { return n.tokens }

// AuditOf returns the node's audit log.
func AuditOf(n *Node) *audit.Log { return n.audit }

// GrantCount returns how many grants the node's policy holds.
func GrantCount(n *Node) int { return n.core.CountGrants() }
