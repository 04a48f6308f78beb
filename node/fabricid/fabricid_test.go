package fabricid_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keymesh/keymesh/node/fabricid"
	"github.com/keymesh/keymesh/node/fabricid/fabricidtest"
	"github.com/keymesh/keymesh/policy"
)

func mustCA(t *testing.T, msp string) *fabricidtest.CA {
	t.Helper()
	ca, err := fabricidtest.NewCA(msp)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustIssue(t *testing.T, ca *fabricidtest.CA, cn string) *fabricidtest.Identity {
	t.Helper()
	id, err := ca.Issue(pkix.Name{CommonName: cn, OrganizationalUnit: []string{"client"}, Organization: []string{ca.MSPID}}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestVerify(t *testing.T) {
	org1, org2, rogue := mustCA(t, "Org1MSP"), mustCA(t, "Org2MSP"), mustCA(t, "Org1MSP")
	dir := t.TempDir()
	p1, err := org1.WriteFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	p2 := filepath.Join(dir, "org2.pem")
	if err := os.WriteFile(p2, org2.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := fabricid.Load(map[string]fabricid.MSPConfig{"Org1MSP": {CAs: []string{p1}}, "Org2MSP": {CAs: []string{p2}}})
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	if got := v.MSPs(); strings.Join(got, ",") != "Org1MSP,Org2MSP" {
		t.Errorf("MSPs() = %v", got)
	}
	alice := mustIssue(t, org1, "alice")
	bob := mustIssue(t, org2, "bob")
	mallory := mustIssue(t, rogue, "alice") // same MSP id and subject, wrong CA
	expired, err := org1.IssueExpired(pkix.Name{CommonName: "old"})
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := org1.Issue(pkix.Name{CommonName: "a\nb"}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()

	for _, tc := range []struct {
		name  string
		in    []byte
		want  string // party on success
		kind  error  // on failure
		mspID string
	}{
		{"ok/org1", alice.Creator(), "fabric:Org1MSP/CN=alice,OU=client,O=Org1MSP", nil, ""},
		{"ok/org2", bob.Creator(), "fabric:Org2MSP/CN=bob,OU=client,O=Org2MSP", nil, ""},
		{"fail/empty", nil, "", fabricid.ErrMalformed, ""},
		{"fail/garbage", []byte{0xff, 0xff, 0xff}, "", fabricid.ErrMalformed, ""},
		{"fail/too-large", make([]byte, fabricid.MaxSerializedIdentity+1), "", fabricid.ErrMalformed, ""},
		{"fail/bad-msp-id", fabricidtest.Creator("Org 1", alice.CertPEM), "", fabricid.ErrMalformed, ""},
		{"fail/unknown-msp", fabricidtest.Creator("Org3MSP", alice.CertPEM), "", fabricid.ErrUnknownMSP, "Org3MSP"},
		{"fail/other-msp-cert", fabricidtest.Creator("Org2MSP", alice.CertPEM), "", fabricid.ErrUntrusted, "Org2MSP"},
		{"fail/rogue-ca", mallory.Creator(), "", fabricid.ErrUntrusted, "Org1MSP"},
		{"fail/expired", expired.Creator(), "", fabricid.ErrUntrusted, "Org1MSP"},
		{"fail/no-pem", fabricidtest.Creator("Org1MSP", alice.Cert.Raw), "", fabricid.ErrMalformed, "Org1MSP"},
		{"fail/two-pem", fabricidtest.Creator("Org1MSP", append(append([]byte{}, alice.CertPEM...), bob.CertPEM...)), "", fabricid.ErrMalformed, "Org1MSP"},
		{"fail/bad-der", fabricidtest.Creator("Org1MSP", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")), "", fabricid.ErrMalformed, "Org1MSP"},
		{"fail/control-in-subject", ctrl.Creator(), "", fabricid.ErrMalformed, "Org1MSP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(tc.in, now)
			if tc.kind == nil {
				if err != nil {
					t.Fatalf("Verify() = %v, want nil", err)
				}
				if got := string(id.Party()); got != tc.want {
					t.Errorf("Party() = %q, want %q", got, tc.want)
				}
				if err := id.Party().Validate(); err != nil {
					t.Errorf("Party().Validate() = %v", err)
				}
				p := id.Principal()
				if len(p.Parties) != 2 || p.Parties[1] != policy.Party("org:"+id.MSPID) {
					t.Errorf("Principal() = %v, want the fabric: and org: parties", p)
				}
				return
			}
			if !errors.Is(err, fabricid.ErrInvalidCreator) || !errors.Is(err, tc.kind) {
				t.Fatalf("Verify() = %v, want %v and %v", err, fabricid.ErrInvalidCreator, tc.kind)
			}
			var fe *fabricid.Error
			if !errors.As(err, &fe) || fe.MSPID != tc.mspID {
				t.Errorf("Verify() error MSPID = %+v, want %q", fe, tc.mspID)
			}
		})
	}

	t.Run("fail/nil-verifier", func(t *testing.T) {
		var nv *fabricid.Verifier
		if _, err := nv.Verify(alice.Creator(), now); !errors.Is(err, fabricid.ErrUnknownMSP) {
			t.Fatalf("nil Verify() = %v, want %v", err, fabricid.ErrUnknownMSP)
		}
	})
	t.Run("fail/not-yet-valid-at", func(t *testing.T) {
		if _, err := v.Verify(alice.Creator(), now.Add(-24*time.Hour)); !errors.Is(err, fabricid.ErrUntrusted) {
			t.Fatalf("Verify(yesterday) = %v, want %v", err, fabricid.ErrUntrusted)
		}
	})
}

func TestLoad(t *testing.T) {
	ca := mustCA(t, "Org1MSP")
	leaf := mustIssue(t, ca, "leaf")
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("ca.pem", ca.PEM)
	for _, tc := range []struct {
		name string
		cfg  map[string]fabricid.MSPConfig
		ok   bool
	}{
		{"ok/one", map[string]fabricid.MSPConfig{"Org1MSP": {CAs: []string{good}}}, true},
		{"ok/none", nil, true},
		{"ok/intermediates", map[string]fabricid.MSPConfig{"Org1MSP": {CAs: []string{good}, IntermediateCAs: []string{good}}}, true},
		{"fail/no-cas", map[string]fabricid.MSPConfig{"Org1MSP": {}}, false},
		{"fail/missing-file", map[string]fabricid.MSPConfig{"Org1MSP": {CAs: []string{filepath.Join(dir, "nope.pem")}}}, false},
		{"fail/no-pem", map[string]fabricid.MSPConfig{"Org1MSP": {CAs: []string{write("empty.pem", []byte("hello"))}}}, false},
		{"fail/not-a-ca", map[string]fabricid.MSPConfig{"Org1MSP": {CAs: []string{write("leaf.pem", leaf.CertPEM)}}}, false},
		{"fail/bad-msp-id", map[string]fabricid.MSPConfig{"Org 1": {CAs: []string{good}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fabricid.Load(tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("Load() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestNewRequiresRoots(t *testing.T) {
	if _, err := fabricid.New(map[string]fabricid.MSP{"Org1MSP": {}}); err == nil {
		t.Fatal("New(no roots) = nil error")
	}
	if _, err := fabricid.New(map[string]fabricid.MSP{"Org1MSP": {Roots: x509.NewCertPool()}}); err != nil {
		t.Fatalf("New() = %v", err)
	}
}

func TestParseMSPs(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     map[string]int // MSP → number of CA files
	}{
		{"ok/one", "Org1MSP=/a.pem", map[string]int{"Org1MSP": 1}},
		{"ok/two", " Org1MSP=/a.pem,/b.pem ; Org2MSP=/c.pem;", map[string]int{"Org1MSP": 2, "Org2MSP": 1}},
		{"fail/no-equals", "Org1MSP", nil},
		{"fail/bad-id", "Org 1=/a.pem", nil},
		{"fail/no-file", "Org1MSP=", nil},
		{"fail/dup", "Org1MSP=/a.pem;Org1MSP=/b.pem", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fabricid.ParseMSPs(tc.in)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("ParseMSPs(%q) = %v, want an error", tc.in, got)
				}
				return
			}
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("ParseMSPs(%q) = %v, %v", tc.in, got, err)
			}
			for id, n := range tc.want {
				if len(got[id].CAs) != n {
					t.Errorf("ParseMSPs(%q)[%s] = %v, want %d files", tc.in, id, got[id], n)
				}
			}
		})
	}
}
