package main

import "testing"

func TestTokenCreateChaincodeRole(t *testing.T) {
	d := newFakeDaemon(t, map[string]reply{"POST /v1/tokens": {status: 201,
		body: `{"token":"kmt_SECRET","info":{"id":"t2","party":"token:cc-asset","role":"chaincode","created":"2026-03-01T12:00:00Z","revoked":false}}`}})
	res := runCLI(t, withDaemon(d), "", "token", "create", "--party", "token:cc-asset", "--role", "chaincode")
	if res.code != 0 {
		t.Fatalf("token create --role chaincode = exit %d, stderr %q", res.code, res.stderr)
	}
	if body := string(d.requests()[0].Body); body != `{"party":"token:cc-asset","role":"chaincode"}` {
		t.Errorf("token create --role chaincode sent %s", body)
	}
}
