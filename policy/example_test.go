package policy_test

import (
	"fmt"
	"time"

	"github.com/keymesh/keymesh/policy"
)

func ExampleState_Decide() {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	app := policy.MustParseParty("token:app")
	s := policy.NewState()

	// Grant, then revoke: remove-wins ends the grant.
	_ = s.AddGrant(policy.Grant{ID: "g1", Key: "demo/ssn", Party: app, Ops: policy.OpsAll, Issuer: "node1", IssuedAt: now})
	_ = s.AddRevocation(policy.Revocation{ID: "r1", Key: "demo/ssn", Party: app, Issuer: "node1", IssuedAt: now})
	d := s.Decide(policy.Principal{Parties: []policy.Party{app}}, "demo/ssn", policy.OpEncrypt, now)
	fmt.Println(d.Err())

	// A new grant that observed the revocation is in force.
	_ = s.AddGrant(policy.Grant{
		ID: "g2", Key: "demo/ssn", Party: app, Ops: policy.OpsDecrypt, Issuer: "node1", IssuedAt: now,
		Observed: s.RevocationIDs("demo/ssn", app),
	})
	d = s.Decide(policy.Principal{Parties: []policy.Party{app}}, "demo/ssn", policy.OpDecrypt, now)
	fmt.Println(d.Allowed, d.Reason)

	// The admin token decrypts nothing unless a grant names it.
	d = s.Decide(policy.Principal{Parties: []policy.Party{policy.AdminParty}}, "demo/ssn", policy.OpDecrypt, now)
	fmt.Println(d.Err())
	// Output:
	// policy: encrypt on "demo/ssn" denied: grant revoked
	// true grant g2
	// policy: decrypt on "demo/ssn" denied: no grant for token:admin on this key
}
