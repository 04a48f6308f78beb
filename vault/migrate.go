package vault

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/keymesh/keymesh/kv"
)

func (v *Vault) openKeyTable() error {
	if v.opts.keyTable == "" {
		t, err := openStoreTable(v.store)
		if err != nil {
			return fmt.Errorf("vault: key table: %w", err)
		}
		v.table = t
		return nil
	}
	t, err := openFileTable(v.opts.keyTable)
	if err != nil {
		return err
	}
	v.table = t
	return nil
}

// migrate upgrades a store of format 1 — records unauthenticated, key
// versions wrapped directly under the KEK — to format 2: it tags every
// record, rewraps every held version under a key-table slot and, last,
// rewrites the seal record's check value, which is what marks the store
// as format 2. Each step can be repeated after a crash.
//
// Format 1 is recognised by the seal record's check value, which opens
// only under the KEK. A key table file that already holds slots while the
// seal record says format 1 means the seal record was replaced by an older
// copy: that is refused, since migrating would tag whatever an attacker
// put in the store.
func (v *Vault) migrate() error {
	if _, isFile := v.table.(*fileTable); isFile && !v.table.empty() {
		return fmt.Errorf("vault: refusing to open: the seal record is of the format before authenticated records, but the key table %s is in use; the seal record was replaced by an older copy: %w", v.opts.keyTable, kv.ErrTampered)
	}
	n, err := v.store.Migrate()
	if err != nil {
		return err
	}
	var recs []keyRecord
	err = v.store.Scan([]byte("vault/key/"), func(k, val []byte) error {
		var rec keyRecord
		if err := json.Unmarshal(val, &rec); err != nil {
			return fmt.Errorf("vault: decode key record %q: %w", k, err)
		}
		recs = append(recs, rec)
		return nil
	})
	if err != nil {
		return fmt.Errorf("vault: migrate: %w", err)
	}
	rewrapped := 0
	for _, rec := range recs {
		if rec.State == StateDestroyed {
			continue
		}
		for _, vr := range rec.Versions {
			if vr.Destroyed || vr.NotHeld {
				continue
			}
			ok, err := v.rewrapLegacy(rec.Name, vr.Version)
			if err != nil {
				return err
			}
			if ok {
				rewrapped++
			}
		}
	}
	check, err := v.sealKEK([]byte(checkTextV2), []byte(checkAAD))
	if err != nil {
		return err
	}
	err = v.raw.Update(func(tx kv.Txn) error {
		raw, err := tx.Get(sealKey)
		if err != nil {
			return err
		}
		var sr sealRecord
		if err := json.Unmarshal(raw, &sr); err != nil {
			return err
		}
		sr.Check = check
		b, err := json.Marshal(sr)
		if err != nil {
			return err
		}
		return tx.Set(sealKey, b)
	})
	if err != nil {
		return fmt.Errorf("vault: migrate: write seal record: %w", err)
	}
	v.opts.logger.Warn("store migrated to authenticated records and per-version wrapping (first open after the upgrade)",
		"records_tagged", n, "versions_rewrapped", rewrapped)
	return nil
}

// rewrapLegacy rewraps version ver of name, if it is still wrapped
// directly under the KEK, under a key-table slot.
func (v *Vault) rewrapLegacy(name string, ver uint32) (bool, error) {
	key := materialKey(name, ver)
	wrapped, err := v.store.Get(key)
	if errors.Is(err, kv.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("vault: migrate %q version %d: %w", name, ver, err)
	}
	if m, err := v.unwrapMaterial(name, ver, wrapped); err == nil {
		clear(m) // rewrapped before a crash
		return false, nil
	}
	material, ok := v.openKEK(wrapped, wrapAAD(name, ver))
	if !ok {
		return false, fmt.Errorf("vault: migrate %q version %d: stored key does not authenticate", name, ver)
	}
	defer clear(material)
	nw, err := v.wrap(name, ver, material)
	if err != nil {
		return false, err
	}
	if err := v.store.Update(func(tx kv.Txn) error { return tx.Set(key, nw) }); err != nil {
		return false, fmt.Errorf("vault: migrate %q version %d: %w", name, ver, err)
	}
	return true, nil
}
