package member

import (
	"fmt"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/mesh"
	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/vault"
)

// Adopt issues the events that give the network a key this node's vault
// already holds, as a node upgraded from standalone keymesh has them: a
// KeyCreate with the key's options, a KeyVersion per version committing to
// the material held (wrapped for this node alone), then its state and
// minimum decryption version; a destroyed key is created and destroyed. A
// key the network already has is left alone (Adopt reports false): an
// interrupted upgrade runs again without issuing anything twice.
func (m *Member) Adopt(k vault.KeyInfo) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var known bool
	m.log.View(func(s *mesh.State) { fk, ok := s.Keys[k.Name]; known = ok && fk.Created })
	if known {
		return false, nil
	}
	if owner, ok := m.log.Genesis().KeyOwner(k.Name); !ok || owner != m.org {
		return false, fmt.Errorf("%w: %q", ErrNotOwner, k.Name)
	}
	create := event.KeyCreate{Key: k.Name, Deterministic: k.Deterministic, Exportable: k.Exportable, PreActive: k.State == vault.StatePreActive}
	if err := m.issue(event.KindKeyCreate, create); err != nil {
		return false, err
	}
	if k.State == vault.StateDestroyed {
		return true, m.issue(event.KindKeyDestroy, event.KeyDestroy{Key: k.Name})
	}
	for _, ver := range k.Versions {
		kvp := event.KeyVersion{Key: k.Name, Version: ver.Version, ActivateAt: ver.ActivateAt.UTC()}
		check, err := m.vault.VersionCheck(m.log.Network(), k.Name, ver.Version)
		if err != nil {
			return false, err
		}
		kvp.Check = check
		var rs []vault.Recipient
		var keys []network.NodeKey
		m.log.View(func(s *mesh.State) {
			rs, keys = m.recipients(s, k.Name, ver.Version, []network.NodeKey{m.self})
		})
		blobs, err := m.vault.ShareVersion(k.Name, ver.Version, rs)
		if err != nil {
			return false, err
		}
		for i, r := range keys {
			kvp.Wraps = append(kvp.Wraps, event.Wrap{Recipient: r, Digest: event.DigestOf(blobs[i])})
		}
		if err := m.issue(event.KindKeyVersion, kvp, blobs...); err != nil {
			return false, err
		}
	}
	if k.State == vault.StateDeactivated || k.State == vault.StateCompromised {
		if err := m.issue(event.KindKeyState, event.KeyState{Key: k.Name, State: k.State.String()}); err != nil {
			return false, err
		}
	}
	if k.MinDecryptionVersion > 1 {
		if err := m.issue(event.KindKeyState, event.KeyState{Key: k.Name, MinDecryptionVersion: k.MinDecryptionVersion}); err != nil {
			return false, err
		}
	}
	m.reconcileLocked(false)
	return true, nil
}
