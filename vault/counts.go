package vault

import (
	"slices"
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
func (v *Vault) SaveCounts() error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, r := range v.rings {
		r.mu.Lock()
		rec := r.rec
		rec.Versions = slices.Clone(r.rec.Versions)
		for i, ver := range r.versions {
			n := ver.encryptions()
			rec.Versions[i].Used = &n
		}
		err := v.persist(rec, nil)
		if err == nil {
			r.rec = rec
		}
		r.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// loadCounts sets the shown counts of r's versions from their records and
// clears the records' exact counts. v.rings is being built by load.
func (v *Vault) loadCounts(r *ring) error {
	clean := false
	for i, ver := range r.versions {
		ver.startCount = ver.count.Load()
		ver.shownBase = ver.startCount
		if u := r.rec.Versions[i].Used; u != nil && *u <= ver.startCount {
			ver.shownBase, clean = *u, true
		}
	}
	if !clean {
		return nil
	}
	rec := r.rec
	rec.Versions = slices.Clone(r.rec.Versions)
	for i := range rec.Versions {
		rec.Versions[i].Used = nil
	}
	if err := v.persist(rec, nil); err != nil {
		return err
	}
	r.rec = rec
	return nil
}
