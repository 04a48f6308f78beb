package vault

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/keymesh/keymesh/kv"
)

// Endorsement floor.
//
// Endorsement mode picks the newest version active at the transaction's
// timestamp, so that every endorsing peer's node picks the same one. After
// an org revocation rotates a key, the versions before the rotation are
// held by the revoked org's nodes; new data must not be written under
// them, whatever timestamp a transaction carries. A key's endorsement
// floor is that post-revocation version: endorsement-mode selection never
// goes below it, and uses it at once even if its activation time lies
// ahead (holders that lack it yet fail rather than write under an old
// version).
//
// Stored under "vault/endorse/<name>" as the big-endian version sealed
// under the KEK with the key name as associated data, so whoever writes
// the store without the master secret can neither forge nor lower it.

func floorKey(name string) []byte { return []byte("vault/endorse/" + name) }

func floorAAD(name string) []byte { return []byte("keymesh/v1 endorse-floor\x00" + name) }

// SetEndorsementFloor raises the endorsement floor of key name to version
// (durably). A floor never goes down: a version at or below the current
// floor is a no-op, so callers (the mesh's reconcile) may repeat it. The
// version must exist (be known, held or not) on this node.
func (v *Vault) SetEndorsementFloor(name string, version uint32) error {
	r, err := v.ring(name)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if version <= r.floor {
		return nil
	}
	if version < 1 || int(version) > len(r.versions) {
		return fmt.Errorf("%w: endorsement floor %d: key %q has versions 1..%d", ErrInvalidRequest, version, name, len(r.versions))
	}
	sealed, err := v.sealKEK(binary.BigEndian.AppendUint32(nil, version), floorAAD(name))
	if err != nil {
		return err
	}
	if err := v.store.Update(func(tx kv.Txn) error { return tx.Set(floorKey(name), sealed) }); err != nil {
		return fmt.Errorf("vault: write endorsement floor of %q: %w", name, err)
	}
	r.floor = version
	v.opts.logger.Info("endorsement floor raised", "key", name, "version", version)
	return nil
}

// EndorsementFloor returns key name's endorsement floor (0: none).
func (v *Vault) EndorsementFloor(name string) (uint32, error) {
	r, err := v.ring(name)
	if err != nil {
		return 0, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.floor, nil
}

// loadFloors reads every stored floor into its ring. A floor that does
// not authenticate is an error: the vault must not start with a floor
// lower than the one it wrote.
func (v *Vault) loadFloors() error {
	return v.store.Scan([]byte("vault/endorse/"), func(k, val []byte) error {
		name := strings.TrimPrefix(string(k), "vault/endorse/")
		b, ok := v.openKEK(val, floorAAD(name))
		if !ok || len(b) != 4 {
			return fmt.Errorf("vault: endorsement floor of %q does not authenticate", name)
		}
		if r, ok := v.rings[name]; ok {
			r.floor = binary.BigEndian.Uint32(b)
		}
		return nil
	})
}
