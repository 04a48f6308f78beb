package vault

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/vault/envelope"
)

// This file is the vault as a replica of the network's keys. In a mesh the network agrees
// on each key's metadata and versions (package mesh folds the signed events
// into that agreement); a node's vault holds the material of the versions
// wrapped for it, and follows the agreed metadata. The methods here apply
// that agreement; they do not check lifecycle transitions, which the fold
// has validated already.

// KeyMeta is a key's metadata as the network agrees on it.
type KeyMeta struct {
	Name                 string
	Owner                string
	Deterministic        bool
	Exportable           bool
	State                State
	MinDecryptionVersion uint32 // 0 leaves it unchanged (1 for a new key)
	Created              time.Time
}

// ErrMaterialConflict is returned by AcceptVersion when this node holds a
// different material for the same version and has already encrypted with it.
var ErrMaterialConflict = errors.New("vault: a different material for this version is held and in use")

// SyncKey makes the local record of meta.Name match meta, creating it (with
// no versions) if needed. A destroyed key stays destroyed; use Destroy to
// destroy.
func (v *Vault) SyncKey(meta KeyMeta) error {
	if err := envelope.CheckKeyName(meta.Name); err != nil {
		return err
	}
	if meta.State == StateDestroyed {
		return fmt.Errorf("%w: SyncKey cannot destroy; use Destroy", ErrInvalidRequest)
	}
	v.mu.Lock()
	r, ok := v.rings[meta.Name]
	if !ok {
		created := meta.Created.UTC()
		if created.IsZero() {
			created = v.opts.clock().UTC()
		}
		rec := keyRecord{
			Name: meta.Name, Owner: meta.Owner, State: meta.State,
			Deterministic: meta.Deterministic, Exportable: meta.Exportable,
			Created: created, StateChanged: created, MinDecrypt: max(meta.MinDecryptionVersion, 1),
		}
		if err := v.persist(rec, nil); err != nil {
			v.mu.Unlock()
			return err
		}
		v.rings[meta.Name] = &ring{rec: rec}
		i, _ := slices.BinarySearch(v.names, meta.Name)
		v.names = slices.Insert(v.names, i, meta.Name)
		v.mu.Unlock()
		return nil
	}
	v.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rec.State == StateDestroyed {
		return nil
	}
	rec := r.rec
	changed := false
	if rec.State != meta.State {
		rec.State, rec.StateChanged, changed = meta.State, v.opts.clock().UTC(), true
	}
	if meta.MinDecryptionVersion != 0 && rec.MinDecrypt != meta.MinDecryptionVersion {
		rec.MinDecrypt, changed = meta.MinDecryptionVersion, true
	}
	if rec.Owner != meta.Owner {
		rec.Owner, changed = meta.Owner, true
	}
	if !changed {
		return nil
	}
	rec.Versions = slices.Clone(r.rec.Versions)
	if err := v.persist(rec, nil); err != nil {
		return err
	}
	r.rec = rec
	return nil
}

// importVersion installs version n of key name with material (32 bytes,
// unwrapped from key transport by AcceptVersion), active from activateAt. Earlier versions
// this node has not seen become placeholders it does not hold. Importing
// the same material again is a no-op. If different material is held for n
// and nothing was encrypted with it yet, the new material replaces it (the
// network settled a concurrent rotation the other way); otherwise
// ErrMaterialConflict.
func (v *Vault) importVersion(name string, n uint32, activateAt time.Time, material []byte) error {
	if len(material) != envelope.KeySize {
		return fmt.Errorf("%w: key material must be %d bytes", ErrInvalidRequest, envelope.KeySize)
	}
	if n < 1 || n > MaxVersions {
		return fmt.Errorf("%w: version %d out of range", ErrInvalidRequest, n)
	}
	r, err := v.ring(name)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rec.State == StateDestroyed {
		return fmt.Errorf("%w: %q", ErrKeyDestroyed, name)
	}
	if int(n) <= len(r.versions) {
		cur := r.versions[n-1]
		if cur.held {
			same, err := v.sameMaterial(name, n, material)
			if err != nil {
				return err
			}
			if same {
				if !cur.activateAt.Equal(activateAt) {
					return v.setActivation(r, n, activateAt)
				}
				return nil
			}
			if cur.count.Load() > 0 {
				return fmt.Errorf("%w: %q version %d", ErrMaterialConflict, name, n)
			}
		}
	}
	now := v.opts.clock().UTC()
	wrapped, err := v.wrap(name, n, material)
	if err != nil {
		return err
	}
	s, err := envelope.NewSealer(material)
	if err != nil {
		return err
	}
	rec := r.rec
	rec.Versions = slices.Clone(r.rec.Versions)
	versions := slices.Clone(r.versions)
	for uint32(len(versions)) < n {
		k := uint32(len(versions) + 1)
		versions = append(versions, &version{n: k, created: now, activateAt: now})
		rec.Versions = append(rec.Versions, versionRecord{Version: k, Created: now, ActivateAt: now, NotHeld: true})
	}
	old := versions[n-1]
	nv := &version{n: n, created: now, activateAt: activateAt.UTC(), held: true}
	nv.sealer.Store(s)
	nv.count.Store(old.count.Load())
	nv.reserved.Store(old.reserved.Load())
	versions[n-1] = nv
	rec.Versions[n-1] = versionRecord{Version: n, Created: now, ActivateAt: activateAt.UTC(), Reserved: rec.Versions[n-1].Reserved}
	if err := v.persist(rec, func(tx kv.Txn) error { return tx.Set(materialKey(name, n), wrapped) }); err != nil {
		s.Destroy()
		return err
	}
	old.drop()
	r.rec, r.versions = rec, versions
	v.opts.logger.Info("key version imported", "key", name, "version", n, "activate_at", activateAt)
	return nil
}

func (v *Vault) setActivation(r *ring, n uint32, at time.Time) error {
	rec := r.rec
	rec.Versions = slices.Clone(r.rec.Versions)
	rec.Versions[n-1].ActivateAt = at.UTC()
	if err := v.persist(rec, nil); err != nil {
		return err
	}
	r.rec = rec
	r.versions[n-1].activateAt = at.UTC()
	return nil
}

func (v *Vault) sameMaterial(name string, n uint32, material []byte) (bool, error) {
	held, err := v.material(name, n)
	if err != nil {
		return false, err
	}
	defer clear(held)
	return subtle.ConstantTimeCompare(held, material) == 1, nil
}

// material unwraps version n of name from the store.
func (v *Vault) material(name string, n uint32) ([]byte, error) {
	wrapped, err := v.store.Get(materialKey(name, n))
	if errors.Is(err, kv.ErrNotFound) {
		return nil, fmt.Errorf("%w: %q version %d", ErrVersionNotHeld, name, n)
	}
	if err != nil {
		return nil, fmt.Errorf("vault: read %q version %d: %w", name, n, err)
	}
	return v.unwrapMaterial(name, n, wrapped)
}

// heldMaterial returns a copy of version n's material, for wrapping it to
// another entitled node (ShareVersion); nil, ErrVersionNotHeld when this
// node does not hold it. The caller must clear it.
func (v *Vault) heldMaterial(name string, n uint32) ([]byte, error) {
	r, err := v.ring(name)
	if err != nil {
		return nil, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.rec.State == StateDestroyed {
		return nil, fmt.Errorf("%w: %q", ErrKeyDestroyed, name)
	}
	if n < 1 || int(n) > len(r.versions) || !r.versions[n-1].held {
		return nil, fmt.Errorf("%w: %q version %d", ErrVersionNotHeld, name, n)
	}
	return v.material(name, n)
}

// Holds reports whether this node holds version n of name.
func (v *Vault) Holds(name string, n uint32) bool {
	r, err := v.ring(name)
	if err != nil {
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return n >= 1 && int(n) <= len(r.versions) && r.versions[n-1].held
}

// ForgetVersion deletes this node's copy of version n of name: the node is
// no longer entitled to it (its organisation's grant ended). Other holders
// keep it. Its key-table salt is erased as on Destroy, so no copy of this
// node's store opens it again; if that fails the version is forgotten
// nonetheless and the error wraps ErrEraseIncomplete.
func (v *Vault) ForgetVersion(name string, n uint32) error {
	r, err := v.ring(name)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n < 1 || int(n) > len(r.versions) || !r.versions[n-1].held {
		return nil
	}
	rec := r.rec
	rec.Versions = slices.Clone(r.rec.Versions)
	rec.Versions[n-1].NotHeld = true
	if err := v.persist(rec, func(tx kv.Txn) error { return tx.Delete(materialKey(name, n)) }); err != nil {
		return err
	}
	r.rec = rec
	r.versions[n-1].drop()
	// Erase the version's salt so no copy of the store opens it again.
	if err := v.eraseKey(name, &n); err != nil {
		return fmt.Errorf("vault: forget %q version %d: %w: %w", name, n, ErrEraseIncomplete, err)
	}
	v.opts.logger.Info("key version forgotten", "key", name, "version", n)
	return nil
}

func secretKey(name string) []byte { return []byte("vault/secret/" + name) }

func secretAAD(name string) []byte { return []byte("keymesh/v1 secret\x00" + name) }

// sealSecret stores b under name, wrapped (AES-256-GCM) under the KEK like
// every key version: the node's signing and KEM private keys live here. It
// is a one-way door: nothing exported reads a secret back (the vault uses
// them itself: Signer, AcceptVersion). GenerateNodeKeys makes the node's
// keys without their bytes ever leaving the vault; prefer it.
func (v *Vault) sealSecret(name string, b []byte) error {
	sealed, err := v.sealKEK(b, secretAAD(name))
	if err != nil {
		return fmt.Errorf("vault: seal %s: %w", name, err)
	}
	if err := v.store.Update(func(tx kv.Txn) error { return tx.Set(secretKey(name), sealed) }); err != nil {
		return fmt.Errorf("vault: seal %s: %w", name, err)
	}
	return nil
}

// openSecret returns the secret stored under name (the caller clears it),
// or an error wrapping kv.ErrNotFound.
func (v *Vault) openSecret(name string) ([]byte, error) {
	sealed, err := v.store.Get(secretKey(name))
	if err != nil {
		return nil, fmt.Errorf("vault: open secret %s: %w", name, err)
	}
	b, ok := v.openKEK(sealed, secretAAD(name))
	if !ok {
		return nil, fmt.Errorf("vault: secret %s does not authenticate", name)
	}
	return b, nil
}
