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

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"

	"github.com/keymesh/keymesh/node/fabricid"
	"github.com/keymesh/keymesh/node/fabricid/fabricidtest"
	"github.com/keymesh/keymesh/policy"
)

func verifierOf(t *testing.T, cas ...*fabricidtest.CA) *fabricid.Verifier {
	t.Helper()
	msps := map[string]fabricid.MSP{}
	for _, ca := range cas {
		p := x509.NewCertPool()
		p.AddCert(ca.Cert)
		msps[ca.MSPID] = fabricid.MSP{Roots: p}
	}
	v, err := fabricid.New(msps)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func spec(ts time.Time) fabricidtest.ProposalSpec {
	return fabricidtest.ProposalSpec{Channel: "mychannel", Chaincode: "asset", Timestamp: ts,
		Args: [][]byte{[]byte("CreateAsset"), []byte("a1")}, Transient: map[string][]byte{"p": []byte(`{"v":1}`)}}
}

// TestFabric_ForgedCreatorWithoutSignatureRefused is the regression test of
// issue 10 item 1: a real, trusted, current certificate in a proposal that
// its key did not sign proves nothing and is refused.
func TestFabric_ForgedCreatorWithoutSignatureRefused(t *testing.T) {
	org1 := mustCA(t, "Org1MSP")
	alice, mallory := mustIssue(t, org1, "alice"), mustIssue(t, org1, "mallory")
	v := verifierOf(t, org1)
	now := time.Now()

	s := spec(now)
	s.Creator = alice.Creator()
	for name, sig := range map[string][]byte{
		"no signature":         nil,
		"signed by another id": nil, // filled below
		"garbage signature":    []byte("not a signature"),
	} {
		if name == "signed by another id" {
			built, prop := s.Build()
			s = built
			sig = mallory.Sign(prop)
		}
		_, signed := fabricidtest.Unsigned(s, sig)
		if _, err := v.VerifyProposal(signed, now); !errors.Is(err, fabricid.ErrSignature) || !errors.Is(err, fabricid.ErrInvalidCreator) {
			t.Errorf("%s: VerifyProposal() = %v, want ErrSignature", name, err)
		}
	}
	// The same proposal signed by alice passes.
	_, signed := alice.SignProposal(spec(now))
	p, err := v.VerifyProposal(signed, now)
	if err != nil {
		t.Fatalf("VerifyProposal(signed by alice) = %v", err)
	}
	if p.Creator.Party() != policy.Party(alice.Party()) || p.Channel != "mychannel" || p.Chaincode != "asset" {
		t.Errorf("VerifyProposal() = %+v", p)
	}
}

func TestVerifyProposal(t *testing.T) {
	org1, org2 := mustCA(t, "Org1MSP"), mustCA(t, "Org2MSP")
	alice := mustIssue(t, org1, "alice")
	v := verifierOf(t, org1, org2)
	now := time.Now().UTC().Truncate(time.Microsecond)

	okSpec, okSigned := alice.SignProposal(spec(now))
	p, err := v.VerifyProposal(okSigned, now)
	if err != nil {
		t.Fatalf("VerifyProposal(ok) = %v", err)
	}
	if p.TxID != okSpec.TxID || !p.Timestamp.Equal(now) || string(p.CreatorBytes) != string(alice.Creator()) {
		t.Errorf("VerifyProposal(ok) = %+v, want tx %s at %v", p, okSpec.TxID, now)
	}

	resign := func(f func(*peer.SignedProposal)) []byte {
		var sp peer.SignedProposal
		if err := proto.Unmarshal(okSigned, &sp); err != nil {
			t.Fatal(err)
		}
		f(&sp)
		b, _ := proto.Marshal(&sp)
		return b
	}
	withSpec := func(f func(*fabricidtest.ProposalSpec)) []byte {
		s := spec(now)
		f(&s)
		_, b := alice.SignProposal(s)
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"fail/empty", nil, fabricid.ErrProposal},
		{"fail/garbage", []byte("\xff\xff"), fabricid.ErrProposal},
		{"fail/tampered-bytes", resign(func(sp *peer.SignedProposal) { sp.ProposalBytes[len(sp.ProposalBytes)-1] ^= 1 }), fabricid.ErrSignature},
		{"fail/high-s", resign(func(sp *peer.SignedProposal) { sp.Signature = alice.HighS(sp.Signature) }), fabricid.ErrSignature},
		{"fail/tx-id-not-derived", withSpec(func(s *fabricidtest.ProposalSpec) { s.TxID = strings.Repeat("ab", 32) }), fabricid.ErrSignature},
		{"fail/stale", withSpec(func(s *fabricidtest.ProposalSpec) {
			s.Timestamp = now.Add(-fabricid.DefaultProposalWindow - time.Second)
		}), fabricid.ErrStale},
		{"fail/future", withSpec(func(s *fabricidtest.ProposalSpec) {
			s.Timestamp = now.Add(fabricid.DefaultProposalWindow + time.Second)
		}), fabricid.ErrStale},
		{"fail/config-tx", withSpec(func(s *fabricidtest.ProposalSpec) { s.HeaderType = common.HeaderType_CONFIG }), fabricid.ErrProposal},
		{"fail/no-channel", withSpec(func(s *fabricidtest.ProposalSpec) { s.Channel = "" }), fabricid.ErrProposal},
		{"fail/no-chaincode", withSpec(func(s *fabricidtest.ProposalSpec) { s.Chaincode = "" }), fabricid.ErrProposal},
		{"fail/unknown-msp", withSpec(func(s *fabricidtest.ProposalSpec) { s.Creator = fabricidtest.Creator("Org3MSP", alice.CertPEM) }), fabricid.ErrUnknownMSP},
		{"fail/too-large", make([]byte, fabricid.MaxSignedProposal+1), fabricid.ErrProposal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.VerifyProposal(tc.in, now)
			if !errors.Is(err, tc.want) || !errors.Is(err, fabricid.ErrInvalidCreator) {
				t.Fatalf("VerifyProposal() = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("ok/window-option", func(t *testing.T) {
		w, err := fabricid.New(map[string]fabricid.MSP{"Org1MSP": {Roots: pool(org1)}}, fabricid.WithProposalWindow(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.VerifyProposal(okSigned, now.Add(2*time.Second)); !errors.Is(err, fabricid.ErrStale) {
			t.Fatalf("VerifyProposal(2s late, 1s window) = %v, want ErrStale", err)
		}
	})
}

func pool(ca *fabricidtest.CA) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// TestFabric_CACertAsCreatorRefused: Fabric's MSP refuses a CA
// certificate as an identity, and so does keymesh.
func TestFabric_CACertAsCreatorRefused(t *testing.T) {
	org1 := mustCA(t, "Org1MSP")
	v := verifierOf(t, org1)
	sub, err := org1.IssueWith(pkix.Name{CommonName: "sub-ca"}, fabricidtest.IssueOptions{IsCA: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	_, signed := sub.SignProposal(spec(now))
	if _, err := v.VerifyProposal(signed, now); !errors.Is(err, fabricid.ErrNotIdentity) {
		t.Fatalf("VerifyProposal(CA cert) = %v, want ErrNotIdentity", err)
	}
	if _, err := v.Verify(fabricidtest.Creator("Org1MSP", org1.PEM), now); !errors.Is(err, fabricid.ErrNotIdentity) {
		t.Fatalf("Verify(root CA cert) = %v, want ErrNotIdentity", err)
	}
}

// TestFabric_NoDigitalSignatureKeyUsageRefused: a certificate without the
// digitalSignature key usage cannot sign proposals.
func TestFabric_NoDigitalSignatureKeyUsageRefused(t *testing.T) {
	org1 := mustCA(t, "Org1MSP")
	v := verifierOf(t, org1)
	id, err := org1.IssueWith(pkix.Name{CommonName: "enc-only"}, fabricidtest.IssueOptions{KeyUsage: x509.KeyUsageKeyEncipherment})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	_, signed := id.SignProposal(spec(now))
	if _, err := v.VerifyProposal(signed, now); !errors.Is(err, fabricid.ErrNotIdentity) {
		t.Fatalf("VerifyProposal(no digitalSignature) = %v, want ErrNotIdentity", err)
	}
}

// TestFabric_NodeOURolesHonoured: with NodeOUs enabled, a creator needs
// exactly one role OU, and only accepted roles pass.
func TestFabric_NodeOURolesHonoured(t *testing.T) {
	org1 := mustCA(t, "Org1MSP")
	issue := func(ous ...string) *fabricidtest.Identity {
		id, err := org1.Issue(pkix.Name{CommonName: "x", OrganizationalUnit: ous}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	on := &fabricid.NodeOUs{Enable: true}
	v, err := fabricid.New(map[string]fabricid.MSP{"Org1MSP": {Roots: pool(org1), NodeOUs: on}})
	if err != nil {
		t.Fatal(err)
	}
	off := verifierOf(t, org1)
	now := time.Now()
	for _, tc := range []struct {
		name string
		id   *fabricidtest.Identity
		role string // "" = refused with ErrRole
	}{
		{"ok/client", issue("client"), "client"},
		{"ok/admin", issue("admin", "department1"), "admin"},
		{"fail/peer-not-accepted", issue("peer"), ""},
		{"fail/orderer-not-accepted", issue("orderer"), ""},
		{"fail/no-role", issue("department1"), ""},
		{"fail/two-roles", issue("client", "admin"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v.Verify(tc.id.Creator(), now)
			if tc.role == "" {
				if !errors.Is(err, fabricid.ErrRole) {
					t.Fatalf("Verify() = %+v, %v, want ErrRole", got, err)
				}
			} else if err != nil || got.Role != tc.role {
				t.Fatalf("Verify() = %+v, %v, want role %s", got, err, tc.role)
			}
			if _, err := off.Verify(tc.id.Creator(), now); err != nil {
				t.Fatalf("Verify() with NodeOUs off = %v, want ok", err)
			}
		})
	}
	peerOnly, err := fabricid.New(map[string]fabricid.MSP{"Org1MSP": {Roots: pool(org1), NodeOUs: &fabricid.NodeOUs{Enable: true, Roles: []string{"peer"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := peerOnly.Verify(issue("peer").Creator(), now); err != nil || got.Role != "peer" {
		t.Fatalf("Verify(peer, roles [peer]) = %+v, %v", got, err)
	}
	if _, err := fabricid.New(map[string]fabricid.MSP{"Org1MSP": {Roots: pool(org1), NodeOUs: &fabricid.NodeOUs{Enable: true, Roles: []string{"member"}}}}); err == nil {
		t.Fatal("New(roles [member]) = nil error, want unknown role")
	}
}

// TestFabric_RevokedByCRLRefused: a certificate on a CRL of its MSP (the
// PEM files of its crls config) is refused; a CRL no CA of the MSP signed
// stops the node from starting.
func TestFabric_RevokedByCRLRefused(t *testing.T) {
	org1, rogue := mustCA(t, "Org1MSP"), mustCA(t, "Org1MSP")
	alice, bob := mustIssue(t, org1, "alice"), mustIssue(t, org1, "bob")
	dir := t.TempDir()
	caFile, err := org1.WriteFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := org1.CRL(bob)
	if err != nil {
		t.Fatal(err)
	}
	crlFile := filepath.Join(dir, "crl.pem")
	if err := os.WriteFile(crlFile, crl, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := fabricid.Load(map[string]fabricid.MSPConfig{"Org1MSP": {CAs: []string{caFile}, CRLs: []string{crlFile}}})
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	now := time.Now()
	if _, err := v.Verify(alice.Creator(), now); err != nil {
		t.Errorf("Verify(alice, not revoked) = %v", err)
	}
	_, signed := bob.SignProposal(spec(now))
	if _, err := v.VerifyProposal(signed, now); !errors.Is(err, fabricid.ErrRevoked) {
		t.Errorf("VerifyProposal(bob, revoked) = %v, want ErrRevoked", err)
	}

	rogueCRL, _ := rogue.CRL(alice)
	rogueFile := filepath.Join(dir, "rogue-crl.pem")
	if err := os.WriteFile(rogueFile, rogueCRL, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fabricid.Load(map[string]fabricid.MSPConfig{"Org1MSP": {CAs: []string{caFile}, CRLs: []string{rogueFile}}}); err == nil || !strings.Contains(err.Error(), "not signed by a CA of the MSP") {
		t.Fatalf("Load(CRL of another CA) = %v, want refused", err)
	}
}

func TestReplay(t *testing.T) {
	org1 := mustCA(t, "Org1MSP")
	alice := mustIssue(t, org1, "alice")
	v := verifierOf(t, org1)
	now := time.Now()
	verify := func(s fabricidtest.ProposalSpec) fabricid.Proposal {
		_, signed := alice.SignProposal(s)
		p, err := v.VerifyProposal(signed, now)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := verify(spec(now))
	r := fabricid.NewReplay(time.Minute, 2)
	for i := range 3 {
		if err := r.Check(p, "tok1", now.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatalf("Check(same proposal, call %d) = %v, want ok (one transaction calls several times)", i, err)
		}
	}
	if err := r.Check(p, "tok2", now); !errors.Is(err, fabricid.ErrReplay) {
		t.Errorf("Check(other token) = %v, want ErrReplay", err)
	}
	if err := r.Check(p, "tok1", now.Add(time.Minute+time.Second)); !errors.Is(err, fabricid.ErrReplay) {
		t.Errorf("Check(after the window) = %v, want ErrReplay", err)
	}
	// The same tx id with other proposal bytes.
	q := p
	q.Digest[0] ^= 1
	if err := r.Check(q, "tok1", now); !errors.Is(err, fabricid.ErrReplay) {
		t.Errorf("Check(same tx id, other proposal) = %v, want ErrReplay", err)
	}
	if err := r.Check(verify(spec(now)), "tok1", now); err != nil {
		t.Fatalf("Check(second tx) = %v", err)
	}
	if err := r.Check(verify(spec(now)), "tok1", now); !errors.Is(err, fabricid.ErrReplayFull) {
		t.Fatalf("Check(third tx, capacity 2) = %v, want ErrReplayFull", err)
	}
	if err := r.Check(verify(spec(now)), "tok1", now.Add(2*time.Minute)); err != nil {
		t.Fatalf("Check(after expiry) = %v, want ok", err)
	}
}

// TestFabric_EndorsementSecondPlaintextRefused: one transaction may repeat
// an endorsement-mode encryption (each endorser's node sees it once, and a
// chaincode may retry), but not encrypt another plaintext for the same key
// and context: that is what an oracle would do.
func TestFabric_EndorsementSecondPlaintextRefused(t *testing.T) {
	org1 := mustCA(t, "Org1MSP")
	alice := mustIssue(t, org1, "alice")
	v := verifierOf(t, org1)
	now := time.Now()
	_, signed := alice.SignProposal(spec(now))
	p, err := v.VerifyProposal(signed, now)
	if err != nil {
		t.Fatal(err)
	}
	r := fabricid.NewReplay(time.Minute, 0)
	if err := r.Endorse(p.TxID, "k/a", "ctx1", []byte("100")); !errors.Is(err, fabricid.ErrReplay) {
		t.Fatalf("Endorse(before Check) = %v, want ErrReplay", err)
	}
	if err := r.Check(p, "tok", now); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key, ctx, pt string
		want         error
	}{
		{"k/a", "ctx1", "100", nil},
		{"k/a", "ctx1", "100", nil},
		{"k/a", "ctx2", "101", nil},
		{"k/b", "ctx1", "101", nil},
		{"k/a", "ctx1", "101", fabricid.ErrEndorsementConflict},
	} {
		if err := r.Endorse(p.TxID, tc.key, tc.ctx, []byte(tc.pt)); !errors.Is(err, tc.want) {
			t.Errorf("Endorse(%s, %s, %s) = %v, want %v", tc.key, tc.ctx, tc.pt, err, tc.want)
		}
	}
}

// TestFabric_CanonicalSubjectAtGrant: a fabric: party written in a
// certificate's own attribute order, or with escapes, becomes the form a
// verified creator yields; a subject cut at a space, or otherwise not a
// distinguished name, is refused.
func TestFabric_CanonicalSubjectAtGrant(t *testing.T) {
	ca := mustCA(t, "Org1MSP")
	user, err := ca.Issue(pkix.Name{CommonName: "User1@org1.example.com", OrganizationalUnit: []string{"client"},
		Locality: []string{"San Francisco"}, Province: []string{"California"}, Country: []string{"US"}}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := policy.Party(user.Party())
	got, err := fabricid.PartyOf("Org1MSP", user.CertPEM)
	if err != nil || got != want {
		t.Fatalf("PartyOf() = %q, %v, want %q", got, err, want)
	}
	for _, tc := range []struct {
		name, in string
		want     policy.Party // "" = refused
	}{
		{"ok/canonical", string(want), want},
		{"ok/cert-order", "fabric:Org1MSP/C=US,ST=California,L=San Francisco,OU=client,CN=User1@org1.example.com", want},
		{"ok/lower-case-types", "fabric:Org1MSP/cn=User1@org1.example.com,ou=client,l=San Francisco,st=California,c=US", want},
		{"ok/escaped", `fabric:Org1MSP/CN=a\,b,O=x`, `fabric:Org1MSP/CN=a\,b,O=x`},
		{"ok/not-fabric", "org:Org1MSP", "org:Org1MSP"},
		{"fail/trailing-space", "fabric:Org1MSP/CN=User1 ,OU=client", ""},
		{"fail/empty-value", "fabric:Org1MSP/CN=,OU=client", ""},
		{"fail/no-equals", "fabric:Org1MSP/CN=User1,Francisco", ""},
		{"fail/unknown-attribute", "fabric:Org1MSP/CN=User1,EMAIL=a@b", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fabricid.CanonicalParty(policy.Party(tc.in))
			if tc.want == "" {
				if !errors.Is(err, policy.ErrInvalidParty) {
					t.Fatalf("CanonicalParty(%q) = %q, %v, want ErrInvalidParty", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("CanonicalParty(%q) = %q, %v, want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

// BenchmarkVerifyProposal measures what every chaincode request costs the
// node: parsing, the chain check and one ECDSA P-256 verification.
func BenchmarkVerifyProposal(b *testing.B) {
	ca, err := fabricidtest.NewCA("Org1MSP")
	if err != nil {
		b.Fatal(err)
	}
	id, err := ca.Issue(pkix.Name{CommonName: "alice", OrganizationalUnit: []string{"client"}}, time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	v, err := fabricid.New(map[string]fabricid.MSP{"Org1MSP": {Roots: pool(ca)}})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	_, signed := id.SignProposal(spec(now))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.VerifyProposal(signed, now); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReplayKnown: the replay cache recognises the exact bytes of a
// proposal it admitted, within the window, so later calls of one
// transaction skip the signature and certificate checks.
func TestReplayKnown(t *testing.T) {
	org1 := mustCA(t, "Org1MSP")
	alice := mustIssue(t, org1, "alice")
	v := verifierOf(t, org1)
	now := time.Now()
	_, signed := alice.SignProposal(spec(now))
	r := fabricid.NewReplay(time.Minute, 0)
	if _, ok := r.Known(signed, now, time.Minute); ok {
		t.Fatal("Known() before any Check = true")
	}
	p, err := v.VerifyProposal(signed, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Check(p, "tok", now); err != nil {
		t.Fatal(err)
	}
	if got, ok := r.Known(signed, now.Add(time.Second), time.Minute); !ok || got.TxID != p.TxID || got.Creator.Party() != p.Creator.Party() {
		t.Fatalf("Known(admitted bytes) = %+v, %v", got, ok)
	}
	other := append([]byte(nil), signed...)
	other[len(other)-1] ^= 1
	if _, ok := r.Known(other, now, time.Minute); ok {
		t.Error("Known(other bytes) = true")
	}
	if _, ok := r.Known(signed, now.Add(2*time.Minute), time.Minute); ok {
		t.Error("Known(after the window) = true")
	}
}
