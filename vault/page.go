package vault

import (
	"slices"
)

// ListPage returns, in name order, up to limit keys whose names sort
// after after ("" starts at the first), and whether more keys follow. It
// finds the page in the vault's sorted names and describes only the keys
// it returns, so a page costs O(log n + limit), whatever the number of
// keys. limit < 1 means 1.
func (v *Vault) ListPage(after string, limit int) ([]KeyInfo, bool) {
	limit = max(limit, 1)
	v.mu.RLock()
	i, found := slices.BinarySearch(v.names, after)
	if found {
		i++
	}
	end := min(len(v.names), i+limit)
	names := slices.Clone(v.names[i:end])
	more := end < len(v.names)
	v.mu.RUnlock()
	out := make([]KeyInfo, 0, len(names))
	for _, name := range names {
		v.mu.RLock()
		r := v.rings[name]
		v.mu.RUnlock()
		if r == nil {
			continue // destroyed meanwhile
		}
		r.mu.RLock()
		out = append(out, r.info())
		r.mu.RUnlock()
	}
	return out, more
}
