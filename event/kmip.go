package event

import (
	"github.com/keymesh/keymesh/policy"
)

// Limits of a KMIPAttrs payload (they match package kmip's).
const (
	MaxKMIPAttrs     = 64
	MaxKMIPAttrBytes = 2048
	maxKMIPAttrName  = 256
	maxKMIPJSON      = 256 << 10
)

// KMIPAttrs is the payload of KindKMIPAttrs: the KMIP side of a key,
// which the owner org's nodes mirror so that a KMIP client failing over to
// another node of the org finds the same object. It replaces the key's
// previous KMIPAttrs (the latest in the fold's order counts). Only the
// owner org's events count; the server (package kmip) alone interprets
// the attribute bytes.
type KMIPAttrs struct {
	Key   string
	Owner policy.Party // the kmip: party that created the key over KMIP
	Attrs []KMIPAttr   // at most MaxKMIPAttrs
}

// KMIPAttr is one client-settable KMIP attribute: its name, its index and
// its TTLV encoding (a KMIP Attribute structure, at most MaxKMIPAttrBytes).
type KMIPAttr struct {
	Name  string
	Index int32
	TTLV  []byte
}

// Validate reports whether a is well formed. Its errors wrap ErrMalformed.
func (a KMIPAttrs) Validate() error {
	if err := checkKey(a.Key); err != nil {
		return err
	}
	if err := a.Owner.Validate(); err != nil || a.Owner.Kind() != policy.KindKMIP {
		return malformed("kmip attributes of %q: owner %q is not a kmip: party", a.Key, cut(string(a.Owner)))
	}
	if len(a.Attrs) > MaxKMIPAttrs {
		return malformed("kmip attributes of %q: %d attributes, at most %d", a.Key, len(a.Attrs), MaxKMIPAttrs)
	}
	for _, at := range a.Attrs {
		if at.Name == "" || len(at.Name) > maxKMIPAttrName {
			return malformed("kmip attributes of %q: attribute name of %d bytes", a.Key, len(at.Name))
		}
		if at.Index < 0 {
			return malformed("kmip attributes of %q: negative index", a.Key)
		}
		if len(at.TTLV) == 0 || len(at.TTLV) > MaxKMIPAttrBytes {
			return malformed("kmip attributes of %q: attribute %q of %d bytes", a.Key, cut(at.Name), len(at.TTLV))
		}
	}
	return nil
}

// DecodeKMIPAttrs parses the payload of a KindKMIPAttrs event.
func DecodeKMIPAttrs(payload []byte) (KMIPAttrs, error) {
	var a KMIPAttrs
	if err := decodeStrict(payload, maxKMIPJSON, "kmip-attrs", &a); err != nil {
		return KMIPAttrs{}, err
	}
	if err := a.Validate(); err != nil {
		return KMIPAttrs{}, err
	}
	return a, nil
}
