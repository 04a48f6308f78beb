package fabricid_test

import (
	"crypto/x509/pkix"
	"testing"
	"time"

	"github.com/keymesh/keymesh/node/fabricid"
	"github.com/keymesh/keymesh/node/fabricid/fabricidtest"
	"github.com/keymesh/keymesh/policy"
)

// FuzzVerifyProposal: no input makes VerifyProposal panic, and whatever it
// accepts has a derived tx id and a creator that verifies alone.
func FuzzVerifyProposal(f *testing.F) {
	ca, err := fabricidtest.NewCA("Org1MSP")
	if err != nil {
		f.Fatal(err)
	}
	id, err := ca.Issue(pkix.Name{CommonName: "alice"}, time.Time{})
	if err != nil {
		f.Fatal(err)
	}
	v, err := fabricid.New(map[string]fabricid.MSP{"Org1MSP": {Roots: pool(ca)}})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	_, signed := id.SignProposal(fabricidtest.ProposalSpec{Channel: "c", Chaincode: "cc", Timestamp: now})
	f.Add(signed)
	_, unsigned := fabricidtest.Unsigned(fabricidtest.ProposalSpec{Channel: "c", Chaincode: "cc", Timestamp: now, Creator: id.Creator()}, nil)
	f.Add(unsigned)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := v.VerifyProposal(b, now)
		if err != nil {
			return
		}
		if len(p.TxID) != 64 {
			t.Fatalf("accepted a proposal with tx id %q", p.TxID)
		}
		if _, err := v.Verify(p.CreatorBytes, now); err != nil {
			t.Fatalf("accepted a proposal whose creator does not verify: %v", err)
		}
	})
}

// FuzzCanonicalParty: CanonicalParty is idempotent on what it returns.
func FuzzCanonicalParty(f *testing.F) {
	for _, s := range []string{"fabric:Org1MSP/CN=a,OU=client,L=San Francisco,C=US", `fabric:Org1MSP/CN=a\,b+OU=x`, "org:Org1MSP"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := fabricid.CanonicalParty(policy.Party(s))
		if err != nil {
			return
		}
		q, err := fabricid.CanonicalParty(p)
		if err != nil || q != p {
			t.Fatalf("CanonicalParty(%q) = %q, then %q, %v", s, p, q, err)
		}
	})
}
