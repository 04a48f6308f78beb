package api

import (
	"time"

	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/policy/policystore"
	"github.com/keymesh/keymesh/vault"
)

// Manager makes the administrative changes: keys, grants, revocations. A
// standalone node applies them to its vault and policy store directly
// (Standalone); a mesh node turns each into a signed event that every node
// of the network folds (node's mesh manager).
type Manager interface {
	CreateKey(name string, o vault.CreateOptions) (vault.KeyInfo, error)
	RotateKey(name string, activateIn *time.Duration) (vault.KeyInfo, error)
	SetKeyState(name string, to vault.State) (vault.KeyInfo, error)
	SetMinDecryptionVersion(name string, n uint32) (vault.KeyInfo, error)
	DestroyKey(name string) (vault.KeyInfo, error)
	Grant(g policy.Grant) (policy.Grant, error)
	Revoke(key string, p policy.Party, issuer string) (policy.Revocation, int, error)
	// Policy returns the grants and revocations in force now.
	Policy() *policy.State
}

// KeyDescriber is implemented by managers that know more about a key than
// the local vault: its holders across the network and the destroy
// acknowledgements still outstanding.
type KeyDescriber interface {
	DescribeKey(name string) (holders, pendingAcks []string)
}

// Standalone is the Manager of a node that belongs to no mesh.
type Standalone struct {
	Vault *vault.Vault
	Store *policystore.Store
}

var _ Manager = Standalone{}

// CreateKey implements Manager.
func (m Standalone) CreateKey(name string, o vault.CreateOptions) (vault.KeyInfo, error) {
	return m.Vault.Create(name, o)
}

// RotateKey implements Manager.
func (m Standalone) RotateKey(name string, d *time.Duration) (vault.KeyInfo, error) {
	return m.Vault.Rotate(name, d)
}

// SetKeyState implements Manager.
func (m Standalone) SetKeyState(name string, to vault.State) (vault.KeyInfo, error) {
	return m.Vault.SetState(name, to)
}

// SetMinDecryptionVersion implements Manager.
func (m Standalone) SetMinDecryptionVersion(name string, n uint32) (vault.KeyInfo, error) {
	return m.Vault.SetMinDecryptionVersion(name, n)
}

// DestroyKey implements Manager.
func (m Standalone) DestroyKey(name string) (vault.KeyInfo, error) { return m.Vault.Destroy(name) }

// Grant implements Manager.
func (m Standalone) Grant(g policy.Grant) (policy.Grant, error) { return m.Store.Grant(g) }

// Revoke implements Manager.
func (m Standalone) Revoke(key string, p policy.Party, issuer string) (policy.Revocation, int, error) {
	return m.Store.Revoke(key, p, issuer)
}

// Policy implements Manager.
func (m Standalone) Policy() *policy.State { return m.Store.State() }
