package vault

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/keymesh/keymesh/kv"
)

// KeyInfo describes a key. It never holds key material.
type KeyInfo struct {
	Name                 string
	Owner                string
	State                State
	Deterministic        bool
	Exportable           bool
	Created              time.Time
	StateChanged         time.Time
	LatestVersion        uint32
	MinDecryptionVersion uint32
	Versions             []VersionInfo
	// EraseError, for a destroyed key, says why erasing its material from
	// disk did not complete ("" when it did). The key is destroyed either
	// way: it no longer encrypts or decrypts here.
	EraseError string
}

// VersionInfo describes one version of a key.
type VersionInfo struct {
	Version     uint32
	Created     time.Time
	ActivateAt  time.Time
	Encryptions uint64
	Destroyed   bool
}

// CreateOptions are fixed when a key is created.
type CreateOptions struct {
	// Deterministic allows the deterministic mode, which reveals equal
	// plaintexts under equal contexts. Off by default.
	Deterministic bool
	// Exportable marks the key as exportable. keymesh has no export route
	// yet; the flag is recorded so that a key created non-exportable can
	// never become exportable.
	Exportable bool
	// PreActive creates the key in the pre-active state instead of active.
	PreActive bool
}

func (r *ring) info() KeyInfo {
	ki := KeyInfo{
		Name:                 r.rec.Name,
		Owner:                r.rec.Owner,
		State:                r.rec.State,
		Deterministic:        r.rec.Deterministic,
		Exportable:           r.rec.Exportable,
		Created:              r.rec.Created,
		StateChanged:         r.rec.StateChanged,
		LatestVersion:        uint32(len(r.versions)),
		MinDecryptionVersion: r.rec.MinDecrypt,
	}
	if r.eraseErr != nil {
		ki.EraseError = r.eraseErr.Error()
	}
	for i, ver := range r.versions {
		ki.Versions = append(ki.Versions, VersionInfo{
			Version:     ver.n,
			Created:     ver.created,
			ActivateAt:  ver.activateAt,
			Encryptions: ver.encryptions(),
			Destroyed:   r.rec.Versions[i].Destroyed || r.rec.State == StateDestroyed,
		})
	}
	return ki
}

// Get describes a key.
func (v *Vault) Get(name string) (KeyInfo, error) {
	r, err := v.ring(name)
	if err != nil {
		return KeyInfo{}, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.info(), nil
}

// Count returns how many keys the vault holds (destroyed ones included).
func (v *Vault) Count() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.rings)
}

// List describes every key, sorted by name.
func (v *Vault) List() []KeyInfo {
	v.mu.RLock()
	rings := make([]*ring, 0, len(v.rings))
	for _, r := range v.rings {
		rings = append(rings, r)
	}
	v.mu.RUnlock()
	out := make([]KeyInfo, 0, len(rings))
	for _, r := range rings {
		r.mu.RLock()
		out = append(out, r.info())
		r.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b KeyInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// eraseKey overwrites the key-table salts of name (of version only, if
// not nil). For a whole key it also asks the store to drop the deleted
// material from its files, as before the key table existed; for one
// forgotten version it does not (badger rewrites its tables for that):
// the erased salt is what makes every copy unopenable.
func (v *Vault) eraseKey(name string, version *uint32) error {
	err := v.table.erase(func(n string, ver, _ uint32) bool {
		return n == name && (version == nil || ver == *version)
	})
	if version == nil && v.store.CanErase() {
		err = errors.Join(err, v.store.Erase(materialPrefix(name)))
	}
	return err
}

// Destroy crypto-shreds a key: every wrapped version is deleted from the
// store in the same durable transaction that marks the key destroyed, the
// versions are cleared from memory, and then their salts are overwritten
// in the key table, so no copy of the store (old tables, write-ahead
// files, backups) opens them again, with or without the master secret.
// Envelopes under the key can never be opened again. If the erasure fails
// the key is destroyed nonetheless, and KeyInfo.EraseError says why (the
// salts left behind are erased at the next Open).
func (v *Vault) Destroy(name string) (KeyInfo, error) {
	r, err := v.ring(name)
	if err != nil {
		return KeyInfo{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rec.State == StateDestroyed {
		return r.info(), nil
	}
	now := v.opts.clock().UTC()
	rec := r.rec
	rec.Versions = slices.Clone(r.rec.Versions)
	rec.State = StateDestroyed
	rec.StateChanged = now
	for i := range rec.Versions {
		rec.Versions[i].Destroyed = true
	}
	err = v.persist(rec, func(tx kv.Txn) error { return kv.DeletePrefix(tx, materialPrefix(name)) })
	if err != nil {
		return KeyInfo{}, err
	}
	r.rec = rec
	for _, ver := range r.versions {
		ver.drop()
	}
	r.eraseErr = v.eraseKey(name, nil)
	if r.eraseErr != nil {
		v.opts.logger.Error("erase destroyed key material from disk", "key", name, "err", r.eraseErr)
	}
	v.opts.logger.Info("key destroyed", "key", name)
	return r.info(), nil
}
