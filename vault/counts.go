package vault

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/keymesh/keymesh/kv"
)

// Shown encryption counts.
//
// The count that guards the AES-GCM limits (version.count) restarts at
// the persisted lease after a restart: it may overstate, never understate.
// What operators see (VersionInfo.Encryptions) should be the real count:
// SaveCounts, called on a clean shutdown, writes each version's exact
// count to its record (versionRecord.Used); the next Open shows that count
// plus what was encrypted since, and clears Used at once, so that after a
// later crash the shown count falls back to the lease, an upper bound.

// encryptions is the count shown for ver.
func (ver *version) encryptions() uint64 { return ver.shownBase + ver.count.Load() - ver.startCount }

// SaveCounts writes every version's exact encryption count, for the next
// Open to show (call it on a clean shutdown, before Close). The guarding
// count is not changed by it.
//
// It writes countsBatch records per transaction: one durable write per key
// made a clean shutdown of a 100k-key node take minutes.
func (v *Vault) SaveCounts() error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	rings := make([]*ring, 0, len(v.rings))
	for _, r := range v.rings {
		rings = append(rings, r)
	}
	for chunk := range slices.Chunk(rings, countsBatch) {
		recs := make([]keyRecord, len(chunk))
		for i, r := range chunk {
			r.mu.Lock()
			rec := r.rec
			rec.Versions = slices.Clone(r.rec.Versions)
			for j, ver := range r.versions {
				n := ver.encryptions()
				rec.Versions[j].Used = &n
			}
			recs[i] = rec
		}
		err := v.persistRecords(recs)
		for i, r := range chunk {
			if err == nil {
				r.rec = recs[i]
			}
			r.mu.Unlock()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// countsBatch is how many key records SaveCounts and Open's clearing of
// the saved counts write per transaction.
const countsBatch = 256

// persistRecords writes key records in one transaction, as persist does
// one.
func (v *Vault) persistRecords(recs []keyRecord) error {
	if len(recs) == 0 {
		return nil
	}
	vals := make([][]byte, len(recs))
	for i, rec := range recs {
		b, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("vault: encode key record: %w", err)
		}
		vals[i] = b
	}
	v.persistMu.Lock()
	defer v.persistMu.Unlock()
	err := v.store.Update(func(tx kv.Txn) error {
		for i, rec := range recs {
			if err := tx.Set(recordKey(rec.Name), vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("vault: write %d key records: %w", len(recs), err)
	}
	return nil
}

// loadCounts sets the shown counts of r's versions from their records and
// clears the records' exact counts in r.rec, reporting whether it did: the
// caller (load) writes the cleared records, countsBatch per transaction.
// v.rings is being built by load.
func (v *Vault) loadCounts(r *ring) bool {
	clean := false
	for i, ver := range r.versions {
		ver.startCount = ver.count.Load()
		ver.shownBase = ver.startCount
		if u := r.rec.Versions[i].Used; u != nil && *u <= ver.startCount {
			ver.shownBase, clean = *u, true
		}
	}
	if !clean {
		return false
	}
	rec := r.rec
	rec.Versions = slices.Clone(r.rec.Versions)
	for i := range rec.Versions {
		rec.Versions[i].Used = nil
	}
	r.rec = rec
	return true
}
