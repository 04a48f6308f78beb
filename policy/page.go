package policy

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"errors"
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
// it returns. limit < 1 means 1.
func (s *State) GrantsAtPage(key string, at time.Time, after GrantCursor, limit int) ([]Status, GrantCursor) {
	limit = max(limit, 1)
	s.mu.RLock()
	type keyed struct {
		key string
		ge  *grantEntry
	}
	var sel []keyed
	add := func(name string) {
		for _, pe := range s.keys[name] {
			for _, set := range [][]*grantEntry{pe.grants, pe.ended} {
				for _, ge := range set {
					if after == (GrantCursor{}) || compareAfter(name, ge, after) > 0 {
						sel = append(sel, keyed{name, ge})
					}
				}
			}
		}
	}
	if key == "" {
		for name := range s.index {
			add(name)
		}
	} else if idx := s.index[key]; idx != nil {
		add(idx.name)
	}
	slices.SortFunc(sel, func(a, b keyed) int { return compareEntry(a.key, a.ge, b.key, b.ge) })
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
	s.mu.RUnlock()
	return out, next
}
