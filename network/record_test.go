package network

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keymesh/keymesh/vault/transport"
)

func TestNodeRecordSignVerify(t *testing.T) {
	g := testGenesis()
	nid := g.ID()
	r := signedRecord(t)
	if r.AdminKey != pub32(adminPriv) {
		t.Errorf("SignNodeRecord AdminKey = %x, want the signer's key", r.AdminKey)
	}
	if err := r.VerifyAdmin(nid); err != nil {
		t.Errorf("VerifyAdmin = %v", err)
	}
	if err := g.VerifyNodeRecord(r); err != nil {
		t.Errorf("VerifyNodeRecord = %v", err)
	}
	if !r.ValidAt(t0) || r.ValidAt(t0.Add(-time.Nanosecond)) || r.ValidAt(r.NotAfter) {
		t.Errorf("ValidAt bounds wrong")
	}
	// JSON round trip through the strict decoder.
	back, err := DecodeNodeRecord(mustJSON(t, r))
	if err != nil {
		t.Fatalf("DecodeNodeRecord = %v", err)
	}
	if err := g.VerifyNodeRecord(back); err != nil {
		t.Errorf("VerifyNodeRecord(decoded) = %v", err)
	}

	t.Run("fail/wrong-network", func(t *testing.T) {
		other := nid
		other[31] ^= 1
		if err := r.VerifyAdmin(other); err != ErrBadSignature {
			t.Errorf("VerifyAdmin(other network) = %v, want %v", err, ErrBadSignature)
		}
	})
	t.Run("fail/admin-of-another-org", func(t *testing.T) {
		// Org2MSP's admin signs a record claiming Org1MSP: the signature is
		// good, but the key is not an Org1MSP admin.
		r2, err := SignNodeRecord(admin2Priv, nid, testRecord(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := r2.VerifyAdmin(nid); err != nil {
			t.Errorf("VerifyAdmin = %v", err)
		}
		if err := g.VerifyNodeRecord(r2); err != ErrNotAdmin {
			t.Errorf("VerifyNodeRecord(signed by Org2MSP admin) = %v, want %v", err, ErrNotAdmin)
		}
	})
	t.Run("fail/unknown-admin", func(t *testing.T) {
		r3, err := SignNodeRecord(edKey("stranger"), nid, testRecord(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := g.VerifyNodeRecord(r3); err != ErrNotAdmin {
			t.Errorf("VerifyNodeRecord(stranger) = %v, want %v", err, ErrNotAdmin)
		}
	})
	t.Run("fail/admin-key-swapped", func(t *testing.T) {
		// Claiming another (genuine) admin key with the first admin's signature.
		r4 := r
		r4.Org = "Org2MSP"
		r4.AdminKey = pub32(admin2Priv)
		if err := g.VerifyNodeRecord(r4); err != ErrBadSignature {
			t.Errorf("VerifyNodeRecord = %v, want %v", err, ErrBadSignature)
		}
	})

	otherKEM, _, err := transport.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	otherKEM, err = transport.PublicKey(otherKEM)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*NodeRecord)
	}{
		{"org", func(r *NodeRecord) { r.Org = "Org2MSP" }},
		{"peer-id", func(r *NodeRecord) { r.PeerID += "x" }},
		{"sign-key", func(r *NodeRecord) { r.SignKey = NodeKey(pub32(node2Priv)) }},
		{"kem-key", func(r *NodeRecord) { r.KEMKey = otherKEM }},
		{"addr-changed", func(r *NodeRecord) { r.Addrs = []string{"/ip4/10.0.0.1/tcp/4001", r.Addrs[1]} }},
		{"addr-removed", func(r *NodeRecord) { r.Addrs = r.Addrs[:1] }},
		{"addr-added", func(r *NodeRecord) { r.Addrs = append(r.Addrs, "/dns/x/tcp/1") }},
		{"addrs-reordered", func(r *NodeRecord) { r.Addrs = []string{r.Addrs[1], r.Addrs[0]} }},
		{"addrs-resplit", func(r *NodeRecord) { r.Addrs = []string{r.Addrs[0] + r.Addrs[1]} }},
		{"not-before", func(r *NodeRecord) { r.NotBefore = r.NotBefore.Add(-time.Nanosecond) }},
		{"not-after", func(r *NodeRecord) { r.NotAfter = r.NotAfter.Add(time.Hour) }},
		{"admin-key", func(r *NodeRecord) { r.AdminKey = pub32(admin2Priv) }},
		{"admin-sig", func(r *NodeRecord) { r.AdminSig[0] ^= 1 }},
	} {
		t.Run("fail/modified-"+tc.name, func(t *testing.T) {
			m := r
			m.Addrs = append([]string(nil), r.Addrs...)
			tc.mod(&m)
			if err := m.VerifyAdmin(nid); err != ErrBadSignature {
				t.Errorf("VerifyAdmin(modified %s) = %v, want %v", tc.name, err, ErrBadSignature)
			}
		})
	}
}

func TestNodeRecordValidate(t *testing.T) {
	t.Parallel()
	r := signedRecord(t)
	for _, tc := range []struct {
		name string
		mod  func(*NodeRecord)
	}{
		{"empty-org", func(r *NodeRecord) { r.Org = "" }},
		{"bad-org", func(r *NodeRecord) { r.Org = "-Org1" }},
		{"long-org", func(r *NodeRecord) { r.Org = strings.Repeat("o", 65) }},
		{"empty-peer-id", func(r *NodeRecord) { r.PeerID = "" }},
		{"long-peer-id", func(r *NodeRecord) { r.PeerID = strings.Repeat("p", MaxPeerIDLen+1) }},
		{"peer-id-space", func(r *NodeRecord) { r.PeerID = "12D3 KooW" }},
		{"peer-id-unicode", func(r *NodeRecord) { r.PeerID = "12D3é" }},
		{"zero-sign-key", func(r *NodeRecord) { r.SignKey = NodeKey{} }},
		{"no-kem-key", func(r *NodeRecord) { r.KEMKey = nil }},
		{"short-kem-key", func(r *NodeRecord) { r.KEMKey = r.KEMKey[:transport.PublicKeySize-1] }},
		{"kem-key-bad-point", func(r *NodeRecord) {
			r.KEMKey = bytes.Clone(r.KEMKey)
			copy(r.KEMKey[transport.PublicKeySize-65:], bytes.Repeat([]byte{0xff}, 65))
		}},
		{"too-many-addrs", func(r *NodeRecord) {
			r.Addrs = nil
			for i := range MaxAddrs + 1 {
				r.Addrs = append(r.Addrs, "/ip4/10.0.0."+itoa(i)+"/tcp/1")
			}
		}},
		{"long-addr", func(r *NodeRecord) { r.Addrs = []string{"/" + strings.Repeat("a", MaxAddrLen)} }},
		{"empty-addr", func(r *NodeRecord) { r.Addrs = []string{""} }},
		{"addr-not-multiaddr", func(r *NodeRecord) { r.Addrs = []string{"127.0.0.1:4001"} }},
		{"addr-newline", func(r *NodeRecord) { r.Addrs = []string{"/ip4/1.2.3.4\n/tcp/1"} }},
		{"dup-addr", func(r *NodeRecord) { r.Addrs = []string{r.Addrs[0], r.Addrs[0]} }},
		{"no-not-before", func(r *NodeRecord) { r.NotBefore = time.Time{} }},
		{"no-not-after", func(r *NodeRecord) { r.NotAfter = time.Time{} }},
		{"not-after-equal", func(r *NodeRecord) { r.NotAfter = r.NotBefore }},
		{"not-after-before", func(r *NodeRecord) { r.NotAfter = r.NotBefore.Add(-time.Second) }},
		{"not-after-2300", func(r *NodeRecord) { r.NotAfter = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"zero-admin-key", func(r *NodeRecord) { r.AdminKey = [32]byte{} }},
	} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			m := r
			tc.mod(&m)
			if err := m.Validate(); !errors.Is(err, ErrMalformed) {
				t.Errorf("Validate() = %v, want %v", err, ErrMalformed)
			}
			if err := m.VerifyAdmin(testGenesis().ID()); !errors.Is(err, ErrMalformed) {
				t.Errorf("VerifyAdmin() = %v, want %v", err, ErrMalformed)
			}
			if tc.name != "zero-admin-key" {
				if _, err := SignNodeRecord(adminPriv, testGenesis().ID(), m); !errors.Is(err, ErrMalformed) {
					t.Errorf("SignNodeRecord() = %v, want %v", err, ErrMalformed)
				}
			}
			if p, err := m.MarshalJSON(); err == nil {
				if _, err := DecodeNodeRecord(p); !errors.Is(err, ErrMalformed) {
					t.Errorf("DecodeNodeRecord() = %v, want %v", err, ErrMalformed)
				}
			}
		})
	}
	t.Run("ok/no-addrs", func(t *testing.T) {
		m := testRecord(t)
		m.Addrs = nil
		s, err := SignNodeRecord(adminPriv, testGenesis().ID(), m)
		if err != nil {
			t.Fatal(err)
		}
		p := mustJSON(t, s)
		if !bytes.Contains(p, []byte(`"Addrs":[]`)) {
			t.Errorf("payload %s: want Addrs as []", p)
		}
		if _, err := DecodeNodeRecord(bytes.Replace(p, []byte(`"Addrs":[]`), []byte(`"Addrs":null`), 1)); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeNodeRecord(Addrs null) = %v, want %v", err, ErrMalformed)
		}
	})
	t.Run("fail/upper-case-hex", func(t *testing.T) {
		p := mustJSON(t, r)
		h := NodeKey(r.AdminKey).Hex()
		p = bytes.Replace(p, []byte(h), []byte(strings.ToUpper(h)), 1)
		if _, err := DecodeNodeRecord(p); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeNodeRecord(upper-case admin key) = %v, want %v", err, ErrMalformed)
		}
	})
}

func TestDeregister(t *testing.T) {
	t.Parallel()
	g := testGenesis()
	nid := g.ID()
	d, err := SignDeregister(admin2Priv, nid, Deregister{Org: "Org2MSP", SignKey: NodeKey(pub32(node2Priv)), At: t0.In(time.FixedZone("", 7200))})
	if err != nil {
		t.Fatal(err)
	}
	if d.At.Location() != time.UTC {
		t.Errorf("SignDeregister At = %v, want UTC", d.At)
	}
	if err := g.VerifyDeregister(d); err != nil {
		t.Errorf("VerifyDeregister = %v", err)
	}
	back, err := DecodeDeregister(mustJSON(t, d))
	if err != nil || back != d {
		t.Errorf("DecodeDeregister(json) = %+v, %v, want %+v", back, err, d)
	}
	other := nid
	other[0] ^= 1
	if err := d.VerifyAdmin(other); err != ErrBadSignature {
		t.Errorf("VerifyAdmin(other network) = %v, want %v", err, ErrBadSignature)
	}
	wrongOrg, _ := SignDeregister(adminPriv, nid, Deregister{Org: "Org2MSP", SignKey: NodeKey(pub32(node2Priv)), At: t0})
	if err := g.VerifyDeregister(wrongOrg); err != ErrNotAdmin {
		t.Errorf("VerifyDeregister(Org1MSP admin for Org2MSP) = %v, want %v", err, ErrNotAdmin)
	}
	for name, mod := range map[string]func(*Deregister){
		"org":       func(d *Deregister) { d.Org = "Org1MSP" },
		"sign-key":  func(d *Deregister) { d.SignKey[0] ^= 1 },
		"at":        func(d *Deregister) { d.At = d.At.Add(time.Nanosecond) },
		"admin-key": func(d *Deregister) { d.AdminKey = pub32(adminPriv) },
		"admin-sig": func(d *Deregister) { d.AdminSig[10] ^= 1 },
	} {
		m := d
		mod(&m)
		if err := m.VerifyAdmin(nid); err != ErrBadSignature {
			t.Errorf("VerifyAdmin(modified %s) = %v, want %v", name, err, ErrBadSignature)
		}
	}
	// A node record signature is not a deregistration signature, nor the
	// reverse: the domain labels differ.
	if nodeRecordLabel == deregisterLabel {
		t.Error("labels must differ")
	}
	for name, bad := range map[string]Deregister{
		"bad-org":        {Org: "", SignKey: NodeKey{1}, At: t0},
		"zero-sign-key":  {Org: "Org1MSP", At: t0},
		"no-time":        {Org: "Org1MSP", SignKey: NodeKey{1}},
		"zero-admin-key": {Org: "Org1MSP", SignKey: NodeKey{1}, At: t0},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrMalformed) {
			t.Errorf("Validate(%s) = %v, want %v", name, err, ErrMalformed)
		}
	}
}
