package member

import (
	"fmt"
	"slices"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/mesh"
	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault"
	"github.com/keymesh/keymesh/vault/secret"
)

// This file is the member's side of KMIP (package kmip, node/kmipbackend.go):
// a key's KMIP attributes travel as KMIPAttrs events, so every node of the
// owner org serves the same KMIP object, and KMIP Register creates a key
// whose first version is the client's material, wrapped for the key's
// holders like a generated one.

// SetKMIPAttrs issues a's KMIPAttrs event: the key's KMIP side, replacing
// the previous one at every node.
func (m *Member) SetKMIPAttrs(a event.KMIPAttrs) error {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("%w: %w", vault.ErrInvalidRequest, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.view(a.Key); err != nil {
		return err
	}
	return m.issue(event.KindKMIPAttrs, a)
}

// KMIPAttrs returns the key's KMIP side as the network agrees on it.
func (m *Member) KMIPAttrs(name string) (event.KMIPAttrs, bool) {
	var a *event.KMIPAttrs
	m.log.View(func(s *mesh.State) {
		if k, ok := s.Keys[name]; ok && k.KMIP != nil {
			c := *k.KMIP
			a = &c
		}
	})
	if a == nil {
		return event.KMIPAttrs{}, false
	}
	return *a, true
}

// KMIPCandidates returns, sorted and without repeats, the keys a KMIP
// Locate by party may find: those whose KMIP owner it is and those on
// which it has a grant or a revocation (policy.State.KMIPKeys). Every
// other key is invisible to it, so a Locate costs what the party can
// see, not what the node holds.
func (m *Member) KMIPCandidates(party policy.Party) []string {
	var owned []string
	m.log.View(func(s *mesh.State) { owned = s.KMIPOwned(party) })
	keys := append(owned, m.log.Policy().KMIPKeys(party)...)
	slices.Sort(keys)
	return slices.Compact(keys)
}

// CreateKeyWithMaterial is CreateKey with version 1 made of material (the
// caller keeps and clears it) instead of fresh randomness.
func (m *Member) CreateKeyWithMaterial(name string, o vault.CreateOptions, material *secret.Bytes) (vault.KeyInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.issueCreate(name, o); err != nil {
		return vault.KeyInfo{}, err
	}
	kvp := event.KeyVersion{Key: name, Version: 1, ActivateAt: m.clock().UTC()}
	var rs []vault.Recipient
	var keys []network.NodeKey
	m.log.View(func(s *mesh.State) { rs, keys = m.recipients(s, name, 1, s.Recipients(name, m.clock())) })
	check, blobs, err := m.vault.VersionFrom(m.log.Network(), name, 1, material, rs)
	if err != nil {
		return vault.KeyInfo{}, err
	}
	kvp.Check = check
	for i, r := range keys {
		kvp.Wraps = append(kvp.Wraps, event.Wrap{Recipient: r, Digest: event.DigestOf(blobs[i])})
	}
	if err := m.issue(event.KindKeyVersion, kvp, blobs...); err != nil {
		return vault.KeyInfo{}, err
	}
	m.reconcileLocked(false)
	return m.followed(name)
}
