package vault

import (
	"encoding/json"
	"errors"
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
// plus what was encrypted since; after a later crash the shown count
// falls back to the lease, an upper bound.
//
// Open does not rewrite every key record to clear Used (that was a second
// write of every record at each start: 100k records, seconds). Each open
// of the vault is an epoch (countsKey, one record): SaveCounts tags the
// counts it writes with the running epoch and marks that epoch clean
// last; Open trusts only counts of the epoch marked clean and starts a
// new epoch, not clean, in one write. After a crash no epoch is clean and
// every saved count is ignored. Counts saved before epochs (no tag) are
// trusted and cleared the old way, once.
//
// SaveCounts writes only the records whose counts it must: a version
// used since Open, or whose saved count Open did not trust, or made since.
// The others' saved counts are still exact, in the epoch they were saved
// in, so the epoch record keeps the run of clean shutdowns they belong
// to: Since, the first epoch of that run, and Open trusts counts of any
// epoch from Since to the clean one. A crash ends the run: the next
// SaveCounts starts a new one at its own epoch and writes every record.
// A clean shutdown of a node with 100k keys of which few were used so
// writes few records, not 100k (it took 8–10 s).

// countsKey holds the counts epoch: {"epoch": n, "clean": bool}.
var countsKey = []byte("vault/counts")

type countsEpoch struct {
	Epoch uint64 `json:"epoch"`
	Clean bool   `json:"clean"`
	// Since is the first epoch of the run of clean shutdowns that ends
	// at Epoch (0, as an earlier keymesh wrote it: Epoch alone).
	Since uint64 `json:"since,omitempty"`
}

// trusted returns the epochs whose saved counts e lets Open trust, lo
// to hi (0, 0: none).
func (e countsEpoch) trusted() (lo, hi uint64) {
	if !e.Clean || e.Epoch == 0 {
		return 0, 0
	}
	lo = e.Since
	if lo == 0 || lo > e.Epoch {
		lo = e.Epoch
	}
	return lo, e.Epoch
}

// readCountsEpoch returns the stored epoch (zero if none).
func (v *Vault) readCountsEpoch() (countsEpoch, error) {
	var e countsEpoch
	b, err := v.store.Get(countsKey)
	if errors.Is(err, kv.ErrNotFound) {
		return e, nil
	}
	if err != nil {
		return e, fmt.Errorf("vault: read counts epoch: %w", err)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("vault: decode counts epoch: %w", err)
	}
	return e, nil
}

func (v *Vault) writeCountsEpoch(e countsEpoch) error {
	b, _ := json.Marshal(e)
	if err := v.store.Update(func(tx kv.Txn) error { return tx.Set(countsKey, b) }); err != nil {
		return fmt.Errorf("vault: write counts epoch: %w", err)
	}
	return nil
}

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
		if r.countsToSave() {
			rings = append(rings, r)
		}
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
				rec.Versions[j].UsedEpoch = v.epoch
				ver.savedExact = true
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
	// Last: the counts just written are the ones to trust, with those of
	// the run's earlier epochs left as they were.
	return v.writeCountsEpoch(countsEpoch{Epoch: v.epoch, Clean: true, Since: v.countsSince})
}

// countsToSave reports whether SaveCounts must write r's record: some
// version's saved count is not exact (not trusted at Open, or none: a
// version made since) or it was used since Open.
func (r *ring) countsToSave() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.rec.Versions) != len(r.versions) {
		return true
	}
	for _, ver := range r.versions {
		if !ver.savedExact || ver.count.Load() != ver.startCount {
			return true
		}
	}
	return false
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

// loadCounts sets the shown counts of r's versions from their records:
// counts of the clean epoch (0 if none) and untagged ones, from before
// epochs. It clears untagged counts in r.rec, reporting whether it did:
// the caller (load) writes those records, countsBatch per transaction.
// v.rings is being built by load.
func (v *Vault) loadCounts(r *ring, lo, hi uint64) bool {
	legacy := false
	for i, ver := range r.versions {
		ver.startCount = ver.count.Load()
		ver.shownBase = ver.startCount
		vr := r.rec.Versions[i]
		if vr.Used == nil || *vr.Used > ver.startCount {
			continue
		}
		if vr.UsedEpoch == 0 {
			ver.shownBase, legacy = *vr.Used, true
		} else if lo != 0 && lo <= vr.UsedEpoch && vr.UsedEpoch <= hi {
			ver.shownBase, ver.savedExact = *vr.Used, true
		}
	}
	if !legacy {
		return false
	}
	rec := r.rec
	rec.Versions = slices.Clone(r.rec.Versions)
	for i := range rec.Versions {
		if rec.Versions[i].UsedEpoch == 0 {
			rec.Versions[i].Used = nil
		}
	}
	r.rec = rec
	return true
}
