package network

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGenesisIDPreimage recomputes the network id of the test genesis from
// the documented preimage, written out by hand.
func TestGenesisIDPreimage(t *testing.T) {
	t.Parallel()
	g := testGenesis()
	k1 := pub32(adminPriv)
	org2 := g.Orgs[1].AdminKeys
	lo, hi := org2[0], org2[1]
	if bytes.Compare(lo[:], hi[:]) > 0 {
		lo, hi = hi, lo
	}
	var b []byte
	b = append(b, "keymesh/v1 genesis\x00"...)
	b = binary.BigEndian.AppendUint32(b, 10)
	b = append(b, "vector-net"...)
	b = binary.BigEndian.AppendUint64(b, uint64(t0.UnixNano()))
	b = binary.BigEndian.AppendUint32(b, 2)
	b = binary.BigEndian.AppendUint32(b, 7)
	b = append(b, "Org1MSP"...)
	b = binary.BigEndian.AppendUint32(b, 1)
	b = append(b, k1[:]...)
	b = binary.BigEndian.AppendUint32(b, 7)
	b = append(b, "Org2MSP"...)
	b = binary.BigEndian.AppendUint32(b, 2)
	b = append(b, lo[:]...)
	b = append(b, hi[:]...)
	if got, want := g.ID(), NetworkID(sha256.Sum256(b)); got != want {
		t.Errorf("ID() = %s, want %s", got, want)
	}
}

func TestGenesisID(t *testing.T) {
	t.Parallel()
	g := testGenesis()
	id := g.ID()
	same := []struct {
		name string
		mod  func(*Genesis)
	}{
		{"orgs-reordered", func(g *Genesis) { g.Orgs[0], g.Orgs[1] = g.Orgs[1], g.Orgs[0] }},
		{"keys-reordered", func(g *Genesis) { k := g.Orgs[1].AdminKeys; k[0], k[1] = k[1], k[0] }},
		{"bootstrap-changed", func(g *Genesis) { g.Bootstrap = []string{"/dns4/example.com/tcp/1"} }},
		{"bootstrap-removed", func(g *Genesis) { g.Bootstrap = nil }},
		{"created-zone", func(g *Genesis) { g.Created = g.Created.In(time.FixedZone("", 3600)) }},
	}
	for _, tc := range same {
		m := testGenesis()
		tc.mod(m)
		if m.ID() != id {
			t.Errorf("%s changed the network id", tc.name)
		}
	}
	differ := []struct {
		name string
		mod  func(*Genesis)
	}{
		{"name", func(g *Genesis) { g.Network = "vector-net2" }},
		{"created", func(g *Genesis) { g.Created = g.Created.Add(time.Nanosecond) }},
		{"org-id", func(g *Genesis) { g.Orgs[0].ID = "Org3MSP" }},
		{"org-removed", func(g *Genesis) { g.Orgs = g.Orgs[:1] }},
		{"key-removed", func(g *Genesis) { g.Orgs[1].AdminKeys = g.Orgs[1].AdminKeys[:1] }},
		{"key-moved", func(g *Genesis) {
			g.Orgs[0].AdminKeys = append(g.Orgs[0].AdminKeys, g.Orgs[1].AdminKeys[1])
			g.Orgs[1].AdminKeys = g.Orgs[1].AdminKeys[:1]
		}},
		{"key-changed", func(g *Genesis) { g.Orgs[0].AdminKeys[0][5] ^= 1 }},
	}
	for _, tc := range differ {
		m := testGenesis()
		tc.mod(m)
		if m.ID() == id {
			t.Errorf("%s did not change the network id", tc.name)
		}
	}
	// ID does not reorder the caller's slices.
	g2 := testGenesis()
	g2.Orgs[0], g2.Orgs[1] = g2.Orgs[1], g2.Orgs[0]
	g2.ID()
	if g2.Orgs[0].ID != "Org2MSP" {
		t.Error("ID() sorted the genesis in place")
	}
}

func TestGenesisParse(t *testing.T) {
	t.Parallel()
	g := testGenesis()
	data, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseGenesis(data)
	if err != nil {
		t.Fatalf("ParseGenesis(MarshalIndent(g)) = %v", err)
	}
	if back.ID() != g.ID() || back.Network != g.Network || len(back.Orgs) != 2 || len(back.Bootstrap) != 1 {
		t.Errorf("ParseGenesis = %+v, want %+v", back, g)
	}
	path := filepath.Join(t.TempDir(), "genesis.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if lg, err := LoadGenesis(path); err != nil || lg.ID() != g.ID() {
		t.Errorf("LoadGenesis = %v, %v", lg, err)
	}
	if _, err := LoadGenesis(path + ".missing"); err == nil {
		t.Error("LoadGenesis(missing file) succeeded")
	}
	if o, ok := back.Org("Org2MSP"); !ok || len(o.AdminKeys) != 2 {
		t.Errorf("Org(Org2MSP) = %+v, %v", o, ok)
	}
	if _, ok := back.Org("Org9MSP"); ok {
		t.Error("Org(Org9MSP) found")
	}
	if !back.IsAdmin("Org1MSP", pub32(adminPriv)) || back.IsAdmin("Org2MSP", pub32(adminPriv)) || back.IsAdmin("Org9MSP", pub32(adminPriv)) {
		t.Error("IsAdmin wrong")
	}
	// Whitespace and field order are free in the file.
	compact := `{"orgs":[{"admin_keys":["` + NodeKey(pub32(adminPriv)).Hex() + `"],"id":"A"}],"created":"2026-01-01T00:00:00Z","network":"n"}`
	if _, err := ParseGenesis([]byte(compact)); err != nil {
		t.Errorf("ParseGenesis(compact, reordered, no bootstrap) = %v", err)
	}
}

func TestGenesisStrict(t *testing.T) {
	t.Parallel()
	key := func(i int) string { return NodeKey(pub32(edKey("k" + itoa(i)))).Hex() }
	orgs := func(n int) string {
		var s []string
		for i := range n {
			s = append(s, `{"id":"Org`+itoa(i)+`","admin_keys":["`+key(i)+`"]}`)
		}
		return strings.Join(s, ",")
	}
	keys := func(n int) string {
		var s []string
		for i := range n {
			s = append(s, `"`+key(i)+`"`)
		}
		return strings.Join(s, ",")
	}
	addrs := func(n int) string {
		var s []string
		for i := range n {
			s = append(s, `"/ip4/10.0.`+itoa(i/256)+`.`+itoa(i%256)+`/tcp/1"`)
		}
		return strings.Join(s, ",")
	}
	doc := func(network, created, orgs, bootstrap string) string {
		return `{"network":` + network + `,"created":` + created + `,"orgs":[` + orgs + `],"bootstrap":[` + bootstrap + `]}`
	}
	const c = `"2026-01-01T00:00:00Z"`
	ok := doc(`"net"`, c, orgs(1), addrs(1))
	if _, err := ParseGenesis([]byte(ok)); err != nil {
		t.Fatalf("ParseGenesis(ok) = %v", err)
	}
	if _, err := ParseGenesis([]byte(doc(`"net"`, c, orgs(MaxGenesisOrgs), addrs(MaxBootstrap)))); err != nil {
		t.Errorf("ParseGenesis(at the limits) = %v", err)
	}
	for name, in := range map[string]string{
		"empty":              "",
		"null":               "null",
		"trailing-data":      ok + "{}",
		"unknown-field":      strings.Replace(ok, `"network"`, `"extra":1,"network"`, 1),
		"unknown-org-field":  strings.Replace(ok, `"id"`, `"name":"x","id"`, 1),
		"no-network":         doc(`""`, c, orgs(1), ""),
		"bad-network":        doc(`"my net"`, c, orgs(1), ""),
		"long-network":       doc(`"`+strings.Repeat("n", 65)+`"`, c, orgs(1), ""),
		"no-created":         strings.Replace(ok, `"created":`+c+`,`, "", 1),
		"created-1500":       doc(`"net"`, `"1500-01-01T00:00:00Z"`, orgs(1), ""),
		"no-orgs":            doc(`"net"`, c, "", ""),
		"too-many-orgs":      doc(`"net"`, c, orgs(MaxGenesisOrgs+1), ""),
		"dup-org":            doc(`"net"`, c, orgs(1)+","+orgs(1), ""),
		"bad-org-id":         doc(`"net"`, c, `{"id":"Org 1","admin_keys":["`+key(0)+`"]}`, ""),
		"no-admin-keys":      doc(`"net"`, c, `{"id":"Org1","admin_keys":[]}`, ""),
		"too-many-keys":      doc(`"net"`, c, `{"id":"Org1","admin_keys":[`+keys(MaxOrgAdminKeys+1)+`]}`, ""),
		"dup-key":            doc(`"net"`, c, `{"id":"Org1","admin_keys":["`+key(0)+`","`+key(0)+`"]}`, ""),
		"zero-key":           doc(`"net"`, c, `{"id":"Org1","admin_keys":["`+strings.Repeat("0", 64)+`"]}`, ""),
		"upper-hex-key":      doc(`"net"`, c, `{"id":"Org1","admin_keys":["`+strings.ToUpper(key(0))+`"]}`, ""),
		"short-key":          doc(`"net"`, c, `{"id":"Org1","admin_keys":["`+key(0)[2:]+`"]}`, ""),
		"too-many-bootstrap": doc(`"net"`, c, orgs(1), addrs(MaxBootstrap+1)),
		"dup-bootstrap":      doc(`"net"`, c, orgs(1), addrs(1)+","+addrs(1)),
		"bad-bootstrap":      doc(`"net"`, c, orgs(1), `"10.0.0.1:4001"`),
	} {
		t.Run("fail/"+name, func(t *testing.T) {
			if g, err := ParseGenesis([]byte(in)); !errors.Is(err, ErrMalformed) || g != nil {
				t.Errorf("ParseGenesis() = %v, %v, want nil, %v", g, err, ErrMalformed)
			}
		})
	}
	t.Run("fail/oversize", func(t *testing.T) {
		big := ok[:len(ok)-1] + strings.Repeat(" ", maxGenesisFileBytes) + "}"
		if _, err := ParseGenesis([]byte(big)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseGenesis(oversize) = %v", err)
		}
	})
}
