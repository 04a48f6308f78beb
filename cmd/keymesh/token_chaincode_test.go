package main

import (
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keymesh/keymesh/node/fabricid/fabricidtest"
)

func TestTokenCreateChaincodeRole(t *testing.T) {
	t.Parallel()
	d := newFakeDaemon(t, map[string]reply{"POST /v1/tokens": {status: 201,
		body: `{"token":"kmt_SECRET","info":{"id":"t2","party":"token:cc-asset","role":"chaincode","created":"2026-03-01T12:00:00Z","revoked":false}}`}})
	if res := runCLI(t, withDaemon(d), "", "token", "create", "--party", "token:cc-asset", "--role", "chaincode"); res.code == 0 {
		t.Fatal("token create --role chaincode without a binding = exit 0, want a usage error")
	}
	res := runCLI(t, withDaemon(d), "", "token", "create", "--party", "token:cc-asset", "--role", "chaincode",
		"--channel", "mychannel", "--chaincode", "asset", "--msp", "Org1MSP", "--msp", "Org2MSP")
	if res.code != 0 {
		t.Fatalf("token create --role chaincode = exit %d, stderr %q", res.code, res.stderr)
	}
	if body := string(d.requests()[0].Body); body != `{"party":"token:cc-asset","role":"chaincode","channels":["mychannel"],"chaincode":"asset","msps":["Org1MSP","Org2MSP"]}` {
		t.Errorf("token create --role chaincode sent %s", body)
	}
}

// TestFabricPartyForCertificate: keymesh fabric party prints the party a
// certificate's creator speaks for, in the node's canonical form, also for
// a subject with spaces (issue 10 item 7).
func TestFabricPartyForCertificate(t *testing.T) {
	t.Parallel()
	ca, err := fabricidtest.NewCA("Org1MSP")
	if err != nil {
		t.Fatal(err)
	}
	id, err := ca.Issue(pkix.Name{CommonName: "User1@org1.example.com", OrganizationalUnit: []string{"client"},
		Locality: []string{"San Francisco"}, Province: []string{"California"}, Country: []string{"US"}}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(f, id.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	res := runCLI(t, nil, "", "fabric", "party", "--msp", "Org1MSP", "--cert", f)
	want := "fabric:Org1MSP/CN=User1@org1.example.com,OU=client,L=San Francisco,ST=California,C=US"
	if res.code != 0 || strings.TrimSpace(res.stdout) != want || want != id.Party() {
		t.Fatalf("fabric party = exit %d %q (stderr %q), want %q", res.code, res.stdout, res.stderr, want)
	}
	if res := runCLI(t, nil, "", "fabric", "party", "--cert", f); res.code == 0 {
		t.Error("fabric party without --msp = exit 0")
	}
}
