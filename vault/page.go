package vault

import (
	"slices"
)

// ListPage returns, in name order, up to limit keys whose names sort
// after after ("" starts at the first), and whether more keys follow. It
// describes only the keys it returns, so a page costs a walk of the names,
// not a description of every key. limit < 1 means 1.
func (v *Vault) ListPage(after string, limit int) ([]KeyInfo, bool) {
	limit = max(limit, 1)
	v.mu.RLock()
	names := make([]string, 0, min(len(v.rings), 4*limit))
	for name := range v.rings {
		if name > after {
			names = append(names, name)
		}
	}
	v.mu.RUnlock()
	slices.Sort(names)
	more := len(names) > limit
	if more {
		names = names[:limit]
	}
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
