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

func compareCursor(g *Grant, c GrantCursor) int {
	return cmp.Or(
		cmp.Compare(g.Key, c.Key),
		cmp.Compare(g.Party, c.Party),
		g.IssuedAt.Compare(c.IssuedAt),
		cmp.Compare(g.ID, c.ID),
	)
}

// GrantsAtPage is one page of [State.GrantsAt]: up to limit grants (of key,
// or of every key if key is "") that sort after the cursor, and the cursor
// of the next page (zero when this is the last). It copies only the grants
// it returns. limit < 1 means 1.
func (s *State) GrantsAtPage(key string, at time.Time, after GrantCursor, limit int) ([]Status, GrantCursor) {
	limit = max(limit, 1)
	s.mu.RLock()
	var sel []*grantEntry
	add := func(byParty map[Party]*pairEntry) {
		for _, pe := range byParty {
			for _, set := range [][]*grantEntry{pe.grants, pe.ended} {
				for _, ge := range set {
					if after == (GrantCursor{}) || compareCursor(&ge.g, after) > 0 {
						sel = append(sel, ge)
					}
				}
			}
		}
	}
	if key == "" {
		for _, byParty := range s.keys {
			add(byParty)
		}
	} else {
		add(s.keys[key])
	}
	slices.SortFunc(sel, func(a, b *grantEntry) int {
		return compareCursor(&a.g, GrantCursor{Key: b.g.Key, Party: b.g.Party, IssuedAt: b.g.IssuedAt, ID: b.g.ID})
	})
	var next GrantCursor
	if len(sel) > limit {
		sel = sel[:limit]
		last := &sel[limit-1].g
		next = GrantCursor{Key: last.Key, Party: last.Party, IssuedAt: last.IssuedAt, ID: last.ID}
	}
	out := make([]Status, 0, len(sel))
	for _, ge := range sel {
		out = append(out, ge.statusAt(at))
	}
	s.mu.RUnlock()
	return out, next
}
