package policy

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
)

// GrantCursor is a position in the order [State.Grants] lists grants in,
// (Key, Party, IssuedAt, ID): a page starts after it. The zero cursor
// starts at the first grant.
type GrantCursor struct {
	Key      string
	Party    Party
	IssuedAt time.Time
	ID       string
}

// String encodes c as an opaque, URL-safe token; [ParseGrantCursor]
// reads it back.
func (c GrantCursor) String() string {
	if c == (GrantCursor{}) {
		return ""
	}
	b := appendString(nil, c.Key)
	b = appendString(b, string(c.Party))
	b = binary.BigEndian.AppendUint64(b, uint64(c.IssuedAt.UnixNano()))
	b = appendString(b, c.ID)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ErrBadCursor is a page cursor that no listing produced.
var ErrBadCursor = errors.New("policy: malformed page cursor")

// ParseGrantCursor parses what [GrantCursor.String] returns; "" is the
// zero cursor.
func ParseGrantCursor(s string) (GrantCursor, error) {
	if s == "" {
		return GrantCursor{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) > 4096 {
		return GrantCursor{}, ErrBadCursor
	}
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return "", false
		}
		v := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return v, true
	}
	var c GrantCursor
	var ok bool
	if c.Key, ok = str(); !ok {
		return GrantCursor{}, ErrBadCursor
	}
	p, ok := str()
	if !ok || len(b) < 8 {
		return GrantCursor{}, ErrBadCursor
	}
	c.Party = Party(p)
	c.IssuedAt = time.Unix(0, int64(binary.BigEndian.Uint64(b))).UTC()
	b = b[8:]
	if c.ID, ok = str(); !ok || len(b) != 0 {
		return GrantCursor{}, ErrBadCursor
	}
	return c, nil
}

// compareEntry orders the entries of two grants of keys ka and kb as
// [State.Grants] lists them: by (Key, Party, IssuedAt, ID).
func compareEntry(ka string, a *grantEntry, kb string, b *grantEntry) int {
	return cmp.Or(
		cmp.Compare(ka, kb),
		cmp.Compare(a.party, b.party),
		a.issued.time().Compare(b.issued.time()),
		cmp.Compare(a.g.ID, b.g.ID),
	)
}

// compareAfter orders the entry of a grant of key against cursor c.
func compareAfter(key string, ge *grantEntry, c GrantCursor) int {
	return cmp.Or(
		cmp.Compare(key, c.Key),
		cmp.Compare(ge.party, c.Party),
		ge.issued.time().Compare(c.IssuedAt),
		cmp.Compare(ge.g.ID, c.ID),
	)
}

// GrantsAtPage is one page of [State.GrantsAt]: up to limit grants (of key,
// or of every key if key is "") that sort after the cursor, and the cursor
// of the next page (zero when this is the last). It copies only the grants
// it returns, and reads back from the archive only the ended grants it
// returns, in order (its listing records are sorted as the page is), so
// a page costs its live grants and its limit, not the key's history. An
// archive it cannot read fails the page with an error wrapping
// [ErrArchive]. limit < 1 means 1.
func (s *State) GrantsAtPage(key string, at time.Time, after GrantCursor, limit int) ([]Status, GrantCursor, error) {
	limit = max(limit, 1)
	s.mu.RLock()
	defer s.mu.RUnlock()
	type keyed struct {
		key string
		ge  *grantEntry
	}
	var names []string
	if key == "" {
		names = s.sortedKeys()
	} else if idx := s.index[key]; idx != nil {
		names = []string{idx.name}
	}
	var sel []keyed
	for _, name := range names {
		if after != (GrantCursor{}) && name < after.Key {
			continue
		}
		idx := s.index[name]
		var page []keyed
		for _, pe := range s.keys[name] {
			set := pe.grants
			if pe.hist != nil && len(pe.hist.ended) > 0 {
				set = append(slices.Clip(set), pe.hist.ended...)
			}
			for _, ge := range set {
				if after == (GrantCursor{}) || compareAfter(name, ge, after) > 0 {
					page = append(page, keyed{name, ge})
				}
			}
		}
		if need := limit + 1 - len(sel); idx.ngrants > len(idx.grants) {
			ended, err := s.archivedPage(idx, after, need)
			if err != nil {
				return nil, GrantCursor{}, err
			}
			for _, ge := range ended {
				page = append(page, keyed{name, ge})
			}
		}
		slices.SortFunc(page, func(a, b keyed) int { return compareEntry(a.key, a.ge, b.key, b.ge) })
		sel = append(sel, page...)
		if len(sel) > limit {
			break
		}
	}
	var next GrantCursor
	if len(sel) > limit {
		sel = sel[:limit]
		last := sel[limit-1]
		next = GrantCursor{Key: last.key, Party: last.ge.party, IssuedAt: last.ge.issued.time(), ID: last.ge.g.ID}
	}
	out := make([]Status, 0, len(sel))
	for _, k := range sel {
		out = append(out, k.ge.statusAt(k.key, at))
	}
	return out, next, nil
}

// archivedPage reads back up to n archived ended grants of idx's key that
// sort after the cursor and are not also in memory, in listing order.
// The caller holds a lock.
func (s *State) archivedPage(idx *keyIndex, after GrantCursor, n int) ([]*grantEntry, error) {
	prefix := recName(idx.name, recListing)
	var from []byte // names at or before it are on earlier pages
	if after != (GrantCursor{}) && after.Key == idx.name {
		from = partyPrefix(idx.name, recListing, after.Party)
		from = appendSortTime(from, after.IssuedAt)
		from = append(from, after.ID...)
	}
	var out []*grantEntry
	err := s.arch.Scan(prefix, func(name, _ []byte) error {
		if from != nil && bytes.Compare(name, from) <= 0 {
			return nil
		}
		// The ID is what follows the party, its 0 byte and the time.
		rest := name[len(prefix):]
		i := bytes.IndexByte(rest, 0)
		if i < 0 || len(rest) < i+1+12 {
			return fmt.Errorf("malformed listing record %q", name)
		}
		id := string(rest[i+1+12:])
		if _, dup := idx.grants[id]; dup {
			return nil
		}
		ge, err := s.archivedGrant(idx.name, id)
		if err == nil && ge == nil {
			err = fmt.Errorf("grant %s is listed but not archived", quote(id))
		}
		if err != nil {
			return err
		}
		out = append(out, ge)
		if len(out) >= n {
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, fmt.Errorf("%w: page the ended grants of %s: %w", ErrArchive, quote(idx.name), err)
	}
	return out, nil
}
