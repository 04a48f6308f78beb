package network

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault/envelope"
)

// Limits of a genesis.
const (
	MaxGenesisOrgs      = 64
	MaxOrgAdminKeys     = 8
	MaxOrgNamespaces    = 256
	MaxBootstrap        = 64
	MaxNetworkNameLen   = 64
	maxGenesisFileBytes = 1 << 20
)

const genesisLabel = "keymesh/v1 genesis\x00"

// Genesis defines a network: its name, its organisations with their admin
// public keys, and where a new node first dials. Every node of the network
// loads the same genesis; its ID is the network id.
//
// The JSON form (a file, edited by people and written by `keymesh network
// genesis`) is
//
//	{
//	  "network": "trade-net",
//	  "created": "2026-01-02T03:04:05Z",
//	  "orgs": [{"id": "Org1MSP", "admin_keys": ["<64 lower-case hex digits>"],
//	            "namespaces": ["trade", "asset"]}],
//	  "bootstrap": ["/ip4/10.0.0.1/tcp/4001/p2p/12D3KooW…"]
//	}
type Genesis struct {
	// Network is the network's name, [A-Za-z0-9][A-Za-z0-9._-]{0,63}.
	Network string
	// Orgs are the organisations, 1..MaxGenesisOrgs with distinct ids.
	Orgs []GenesisOrg
	// Bootstrap holds multiaddrs of nodes to dial first, at most
	// MaxBootstrap. It is not part of the network id: addresses change, the
	// network does not.
	Bootstrap []string
	// Created is when the genesis was made. It is part of the network id, so
	// two networks with the same name and orgs still differ.
	Created time.Time
}

// GenesisOrg is one organisation of a genesis.
type GenesisOrg struct {
	// ID is the org id, e.g. "Org1MSP": [A-Za-z0-9][A-Za-z0-9._-]{0,63}.
	ID string
	// AdminKeys are the Ed25519 public keys of the org's admins, 1..8
	// distinct keys. Any one of them may sign the org's node records.
	AdminKeys [][32]byte
	// Namespaces are the key namespaces the org owns (at most
	// MaxOrgNamespaces, each a valid key-name namespace, no namespace
	// listed for two orgs): only the org's nodes create, rotate, grant,
	// revoke or destroy keys named "<namespace>/…". See
	// [Genesis.NamespaceOwner] for namespaces no org lists.
	Namespaces []string
}

type genesisJSON struct {
	Network   string           `json:"network"`
	Created   time.Time        `json:"created"`
	Orgs      []genesisOrgJSON `json:"orgs"`
	Bootstrap []string         `json:"bootstrap"`
}

type genesisOrgJSON struct {
	ID         string   `json:"id"`
	AdminKeys  []hex32  `json:"admin_keys"`
	Namespaces []string `json:"namespaces,omitempty"`
}

// MarshalJSON writes the JSON form of g (see Genesis), with admin keys in
// lower-case hex. Bootstrap is always an array, never null.
func (g Genesis) MarshalJSON() ([]byte, error) {
	w := genesisJSON{Network: g.Network, Created: g.Created, Bootstrap: g.Bootstrap, Orgs: []genesisOrgJSON{}}
	if w.Bootstrap == nil {
		w.Bootstrap = []string{}
	}
	for _, o := range g.Orgs {
		ow := genesisOrgJSON{ID: o.ID, AdminKeys: []hex32{}, Namespaces: o.Namespaces}
		for _, k := range o.AdminKeys {
			ow.AdminKeys = append(ow.AdminKeys, k)
		}
		w.Orgs = append(w.Orgs, ow)
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads the JSON form of a genesis, rejecting unknown fields.
// It does not validate; ParseGenesis does.
func (g *Genesis) UnmarshalJSON(data []byte) error {
	var w genesisJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	out := Genesis{Network: w.Network, Created: w.Created, Bootstrap: w.Bootstrap}
	for _, ow := range w.Orgs {
		o := GenesisOrg{ID: ow.ID, Namespaces: ow.Namespaces}
		for _, k := range ow.AdminKeys {
			o.AdminKeys = append(o.AdminKeys, k)
		}
		out.Orgs = append(out.Orgs, o)
	}
	*g = out
	return nil
}

// LoadGenesis reads and parses a genesis file (see ParseGenesis).
func LoadGenesis(path string) (*Genesis, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("network: reading genesis: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxGenesisFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("network: reading genesis %q: %w", path, err)
	}
	g, err := ParseGenesis(data)
	if err != nil {
		return nil, fmt.Errorf("genesis %q: %w", path, err)
	}
	return g, nil
}

// ParseGenesis parses the JSON form of a genesis and validates it: at most
// 1 MiB, no unknown fields, nothing after the JSON value, and g.Validate.
// Unlike event payloads, a genesis is a file people edit, so whitespace and
// field order are free; the network id depends only on the values. Errors
// wrap ErrMalformed.
func ParseGenesis(data []byte) (*Genesis, error) {
	if len(data) > maxGenesisFileBytes {
		return nil, malformed("genesis of more than %d bytes", maxGenesisFileBytes)
	}
	var g Genesis
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return nil, malformed("genesis: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, malformed("genesis: data after the JSON value")
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	g.Created = g.Created.UTC()
	return &g, nil
}

// Validate reports whether g is a valid genesis: a valid network name, a
// creation time (representable as int64 Unix nanoseconds), 1..64 orgs with
// distinct valid ids, each with 1..8 distinct non-zero admin keys, and at
// most 64 distinct bootstrap multiaddrs (checked as node record addresses
// are). Its errors wrap ErrMalformed.
func (g *Genesis) Validate() error {
	if !policy.ValidOrgID(g.Network) {
		return malformed("genesis network name %q: want [A-Za-z0-9][A-Za-z0-9._-]{0,63}", cut(g.Network))
	}
	if err := checkTime(g.Created, "genesis creation time"); err != nil {
		return err
	}
	if len(g.Orgs) == 0 || len(g.Orgs) > MaxGenesisOrgs {
		return malformed("genesis has %d orgs, want 1..%d", len(g.Orgs), MaxGenesisOrgs)
	}
	ids := make(map[string]bool, len(g.Orgs))
	owner := map[string]string{}
	for _, o := range g.Orgs {
		if len(o.Namespaces) > MaxOrgNamespaces {
			return malformed("genesis org %q lists %d namespaces, at most %d", cut(o.ID), len(o.Namespaces), MaxOrgNamespaces)
		}
		for _, ns := range o.Namespaces {
			if err := envelope.CheckKeyName(ns + "/x"); err != nil {
				return malformed("genesis org %q namespace %q: %v", cut(o.ID), cut(ns), err)
			}
			if other, dup := owner[ns]; dup {
				return malformed("genesis namespace %q listed for %q and %q", ns, other, o.ID)
			}
			owner[ns] = o.ID
		}
		if !policy.ValidOrgID(o.ID) {
			return malformed("genesis org id %q: want [A-Za-z0-9][A-Za-z0-9._-]{0,63}", cut(o.ID))
		}
		if ids[o.ID] {
			return malformed("genesis lists org %q twice", o.ID)
		}
		ids[o.ID] = true
		if len(o.AdminKeys) == 0 || len(o.AdminKeys) > MaxOrgAdminKeys {
			return malformed("genesis org %q has %d admin keys, want 1..%d", o.ID, len(o.AdminKeys), MaxOrgAdminKeys)
		}
		for i, k := range o.AdminKeys {
			if k == ([32]byte{}) {
				return malformed("genesis org %q has the zero admin key", o.ID)
			}
			if slices.Contains(o.AdminKeys[:i], k) {
				return malformed("genesis org %q lists admin key %x twice", o.ID, k)
			}
		}
	}
	return checkAddrs(g.Bootstrap, MaxBootstrap, "genesis bootstrap")
}

// ID returns the network id: SHA-256 of
//
//	"keymesh/v1 genesis\x00" || uint32 len(Network) || Network ||
//	int64 Created.UnixNano() || uint32 len(Orgs) ||
//	for each org in bytewise order of ID:
//	    uint32 len(ID) || ID || uint32 len(AdminKeys) || the keys in bytewise order
//
// (integers big-endian). The order of orgs and keys in the file does not
// matter, and Bootstrap is left out on purpose: bootstrap addresses may
// change without changing the network. ID is meaningful only for a valid
// genesis.
func (g *Genesis) ID() NetworkID {
	orgs := slices.Clone(g.Orgs)
	slices.SortFunc(orgs, func(a, b GenesisOrg) int { return strings.Compare(a.ID, b.ID) })
	b := []byte(genesisLabel)
	b = appendLP(b, []byte(g.Network))
	b = appendTime(b, g.Created)
	b = binary.BigEndian.AppendUint32(b, uint32(len(orgs)))
	for _, o := range orgs {
		keys := slices.Clone(o.AdminKeys)
		slices.SortFunc(keys, func(x, y [32]byte) int { return bytes.Compare(x[:], y[:]) })
		b = appendLP(b, []byte(o.ID))
		b = binary.BigEndian.AppendUint32(b, uint32(len(keys)))
		for _, k := range keys {
			b = append(b, k[:]...)
		}
	}
	if g.hasNamespaces() {
		// Only then, so that a genesis without namespaces keeps the id it
		// had before namespaces existed.
		b = append(b, "namespaces\x00"...)
		for _, o := range orgs {
			ns := slices.Clone(o.Namespaces)
			slices.Sort(ns)
			b = binary.BigEndian.AppendUint32(b, uint32(len(ns)))
			for _, n := range ns {
				b = appendLP(b, []byte(n))
			}
		}
	}
	return sha256.Sum256(b)
}

func (g *Genesis) hasNamespaces() bool {
	for _, o := range g.Orgs {
		if len(o.Namespaces) > 0 {
			return true
		}
	}
	return false
}

// NamespaceOwner returns the org that owns key namespace ns: the org whose
// Namespaces list it; otherwise, in a network of one org, that org; and
// otherwise the org whose id, in lower case, is ns (so "org1msp/…" keys
// belong to Org1MSP in any network). A namespace no rule gives to an org is
// owned by none: no node can create keys in it. Ownership is fixed by the
// genesis every node loads, so no event, in any order, can change it.
func (g *Genesis) NamespaceOwner(ns string) (string, bool) {
	for _, o := range g.Orgs {
		if slices.Contains(o.Namespaces, ns) {
			return o.ID, true
		}
	}
	if len(g.Orgs) == 1 {
		return g.Orgs[0].ID, true
	}
	for _, o := range g.Orgs {
		if strings.ToLower(o.ID) == ns {
			return o.ID, true
		}
	}
	return "", false
}

// KeyOwner returns the org that owns the key named name ("<namespace>/…"):
// [Genesis.NamespaceOwner] of its namespace.
func (g *Genesis) KeyOwner(name string) (string, bool) {
	ns, _, ok := strings.Cut(name, "/")
	if !ok {
		return "", false
	}
	return g.NamespaceOwner(ns)
}

// Org returns the org with the given id.
func (g *Genesis) Org(id string) (GenesisOrg, bool) {
	for _, o := range g.Orgs {
		if o.ID == id {
			return GenesisOrg{ID: o.ID, AdminKeys: slices.Clone(o.AdminKeys)}, true
		}
	}
	return GenesisOrg{}, false
}

// IsAdmin reports whether key is an admin key of org.
func (g *Genesis) IsAdmin(org string, key [32]byte) bool {
	for _, o := range g.Orgs {
		if o.ID == org {
			return slices.Contains(o.AdminKeys, key)
		}
	}
	return false
}

// VerifyNodeRecord checks that r is valid, that r.AdminKey is an admin key
// of r.Org in g (ErrNotAdmin if not) and that r.AdminSig is its signature
// for this network (ErrBadSignature if not). It does not check the validity
// period; see NodeRecord.ValidAt.
func (g *Genesis) VerifyNodeRecord(r NodeRecord) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if !g.IsAdmin(r.Org, r.AdminKey) {
		return ErrNotAdmin
	}
	return r.VerifyAdmin(g.ID())
}

// VerifyDeregister checks d as VerifyNodeRecord checks a node record.
func (g *Genesis) VerifyDeregister(d Deregister) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if !g.IsAdmin(d.Org, d.AdminKey) {
		return ErrNotAdmin
	}
	return d.VerifyAdmin(g.ID())
}
