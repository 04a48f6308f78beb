package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/keymesh/keymesh/node/apiv1"
)

// TestVerifyJob: a background verification ends with the result the
// synchronous one gives; an unknown job is 404; a client token is refused.
func TestVerifyJob(t *testing.T) {
	f := newFixture(t)
	code, e, b := f.do(t, "POST", "/v1/audit/verify/jobs", f.admin, nil)
	if code != 202 {
		t.Fatalf("POST /v1/audit/verify/jobs = %d %+v, want 202", code, e)
	}
	var j apiv1.AuditVerifyJob
	if err := json.Unmarshal(b, &j); err != nil || j.ID == "" {
		t.Fatalf("job = %s, %v", b, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for j.State == "running" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		code, e, b = f.do(t, "GET", "/v1/audit/verify/jobs/"+j.ID, f.admin, nil)
		if code != 200 {
			t.Fatalf("GET job = %d %+v", code, e)
		}
		j = apiv1.AuditVerifyJob{}
		if err := json.Unmarshal(b, &j); err != nil {
			t.Fatal(err)
		}
	}
	var sync apiv1.AuditVerify
	if code, e, b := f.do(t, "POST", "/v1/audit/verify", f.admin, nil); code != 200 || json.Unmarshal(b, &sync) != nil {
		t.Fatalf("POST /v1/audit/verify = %d %+v", code, e)
	}
	if j.State != "done" || j.Result == nil || !j.Result.OK || j.Result.Entries > sync.Entries || j.FinishedAt == nil {
		t.Fatalf("job = %+v, want done and OK like %+v", j, sync)
	}
	if code, _, _ := f.do(t, "GET", "/v1/audit/verify/jobs/999", f.admin, nil); code != 404 {
		t.Errorf("GET unknown job = %d, want 404", code)
	}
	if code, _, _ := f.do(t, "POST", "/v1/audit/verify/jobs", f.app, nil); code != 403 {
		t.Errorf("POST job with a client token = %d, want 403", code)
	}
}
