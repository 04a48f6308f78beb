package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/nodetest"
)

// TestAuditVerifyJobNode: against a real node, `audit verify` runs the
// verification job, reports progress on stderr and prints the same result
// as --sync.
func TestAuditVerifyJobNode(t *testing.T) {
	t.Parallel()
	n := nodetest.Start(t)
	cli := nodeCLI(t, n)
	n.CreateKeys(t, "demo/a", "demo/b", "demo/c")

	var syncRes apiv1.AuditVerify
	r := mustRun(t, cli("-o", "json", "audit", "verify", "--sync"), "audit verify --sync")
	if err := json.Unmarshal([]byte(r.stdout), &syncRes); err != nil || !syncRes.OK || syncRes.Entries == 0 || syncRes.Head == "" {
		t.Fatalf("audit verify --sync -o json = %q (%v)", r.stdout, err)
	}
	if r.stderr != "" {
		t.Errorf("audit verify --sync printed progress %q", r.stderr)
	}

	r = mustRun(t, cli("-o", "json", "audit", "verify", "--interval", "10ms"), "audit verify")
	var job apiv1.AuditVerify
	if err := json.Unmarshal([]byte(r.stdout), &job); err != nil || !job.OK || job.Entries < syncRes.Entries || job.Head == "" {
		t.Errorf("audit verify -o json = %q (%v); want OK with at least the %d entries --sync saw", r.stdout, err, syncRes.Entries)
	}
	if !strings.Contains(r.stderr, "verifying the audit log (job 1): ") || !strings.Contains(r.stderr, " entries checked\n") {
		t.Errorf("audit verify stderr = %q, want progress of job 1", r.stderr)
	}

	r = mustRun(t, cli("audit", "verify", "--interval", "10ms"), "audit verify (table)")
	if s := squash(r.stdout); !strings.Contains(s, "Result: OK") || !strings.Contains(s, "Entries: ") {
		t.Errorf("audit verify table = %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "(job 2)") {
		t.Errorf("second audit verify stderr = %q, want a new job 2", r.stderr)
	}
}

// TestAuditVerifyJobProgress: the CLI polls the job it started, prints each
// new count of checked entries, and prints the job's result.
func TestAuditVerifyJobProgress(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		polls int
		seen  []string
	)
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		j := apiv1.AuditVerifyJob{ID: "7", State: "running", StartedAt: start}
		switch r.Method + " " + r.URL.Path {
		case "POST /v1/audit/verify/jobs":
			w.WriteHeader(http.StatusAccepted)
		case "GET /v1/audit/verify/jobs/7":
			polls++
			j.Checked = uint64(3 * polls)
			if polls == 2 {
				j.Checked = 3 // unchanged: not printed again
			}
			if polls == 4 {
				j.State, j.Checked = "done", 9
				j.Result = &apiv1.AuditVerify{OK: true, Entries: 9, Head: "beef"}
			}
		default:
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(j)
	}))
	defer srv.Close()
	env := map[string]string{envAddr: srv.URL, envToken: "tok"}
	r := runCLI(t, env, "", "audit", "verify", "--interval", "1ms")
	if r.code != 0 {
		t.Fatalf("audit verify = exit %d, stderr %q", r.code, r.stderr)
	}
	wantErr := "verifying the audit log (job 7): 0 entries checked\n" +
		"verifying the audit log (job 7): 3 entries checked\n" +
		"verifying the audit log (job 7): 9 entries checked\n"
	if r.stderr != wantErr {
		t.Errorf("audit verify stderr = %q, want %q", r.stderr, wantErr)
	}
	if s := squash(r.stdout); !strings.Contains(s, "Result: OK\nEntries: 9\nHead: beef") {
		t.Errorf("audit verify stdout = %q", r.stdout)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"POST /v1/audit/verify/jobs", "GET /v1/audit/verify/jobs/7", "GET /v1/audit/verify/jobs/7", "GET /v1/audit/verify/jobs/7", "GET /v1/audit/verify/jobs/7"}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("audit verify sent %q, want %q", seen, want)
	}
}

// TestAuditVerifyJobEnds: a broken chain, a failed job and a job outlasting
// --timeout all exit 1 and say why; bad polling flags are usage errors.
func TestAuditVerifyJobEnds(t *testing.T) {
	t.Parallel()
	job := func(body string) map[string]reply {
		return map[string]reply{
			"POST /v1/audit/verify/jobs":  {status: 202, body: `{"id":"1","state":"running","checked":0,"started_at":"2026-03-01T12:00:00Z"}`},
			"GET /v1/audit/verify/jobs/1": {body: body},
		}
	}
	broken := newFakeDaemon(t, job(`{"id":"1","state":"done","checked":4,"started_at":"2026-03-01T12:00:00Z",
		"finished_at":"2026-03-01T12:00:01Z","result":{"ok":false,"entries":0,"head":"","seq":4,"reason":"hash mismatch"}}`))
	for _, output := range []string{"table", "json"} {
		r := runCLI(t, withDaemon(broken), "", "audit", "verify", "--interval", "1ms", "-o", output)
		if r.code != exitFailure || !strings.Contains(r.stderr, "keymesh: the audit log's hash chain is broken at entry 4: hash mismatch\n") {
			t.Errorf("audit verify -o %s (broken) = exit %d, stderr %q; want exit 1", output, r.code, r.stderr)
		}
		if output == "json" {
			var v apiv1.AuditVerify
			if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.OK || v.Seq != 4 {
				t.Errorf("audit verify -o json (broken) = %q (%v)", r.stdout, err)
			}
		} else if !strings.Contains(squash(r.stdout), "Result: BROKEN") {
			t.Errorf("audit verify (broken) = %q", r.stdout)
		}
	}

	failed := newFakeDaemon(t, job(`{"id":"1","state":"failed","checked":2,"started_at":"2026-03-01T12:00:00Z",
		"finished_at":"2026-03-01T12:00:01Z","error":"reading the log: disk gone"}`))
	r := runCLI(t, withDaemon(failed), "", "audit", "verify", "--interval", "1ms")
	if r.code != exitFailure || !strings.HasSuffix(r.stderr, "keymesh: audit verification job 1 failed after 2 entries: reading the log: disk gone\n") || r.stdout != "" {
		t.Errorf("audit verify (failed job) = exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	running := newFakeDaemon(t, job(`{"id":"1","state":"running","checked":5,"started_at":"2026-03-01T12:00:00Z"}`))
	began := time.Now()
	r = runCLI(t, withDaemon(running), "", "audit", "verify", "--interval", "10ms", "--timeout", "200ms")
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("audit verify --timeout 200ms took %v", took)
	}
	if r.code != exitFailure || !strings.HasSuffix(r.stderr, "keymesh: audit verify: job 1 still running after --timeout 200ms (5 entries checked); it goes on in the daemon: run 'keymesh audit verify' again to follow it\n") ||
		!strings.Contains(r.stderr, "(job 1): 5 entries checked\n") || r.stdout != "" {
		t.Errorf("audit verify (timeout) = exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	polls := 0
	for _, q := range running.requests() {
		if q.Method == "GET" && q.Path == "/v1/audit/verify/jobs/1" {
			polls++
		}
	}
	if polls < 2 || polls > 25 {
		t.Errorf("audit verify polled %d times in 200ms at 10ms intervals", polls)
	}

	old := newFakeDaemon(t, map[string]reply{"POST /v1/audit/verify": {body: `{"ok":true,"entries":10,"head":"abcd"}`}})
	r = runCLI(t, withDaemon(old), "", "audit", "verify")
	if r.code != exitFailure || r.stderr != "keymesh: not_found: no such route (a keymeshd without verification jobs? use --sync)\n" {
		t.Errorf("audit verify on a daemon without jobs = exit %d, stderr %q", r.code, r.stderr)
	}

	gone := newFakeDaemon(t, map[string]reply{
		"POST /v1/audit/verify/jobs": {status: 202, body: `{"id":"1","state":"running","checked":0,"started_at":"2026-03-01T12:00:00Z"}`},
	})
	r = runCLI(t, withDaemon(gone), "", "audit", "verify", "--interval", "1ms")
	if r.code != exitFailure || !strings.HasSuffix(r.stderr, "keymesh: not_found: no such route: job 1 (the daemon restarted, or another verification replaced it; run again)\n") {
		t.Errorf("audit verify of a vanished job = exit %d, stderr %q", r.code, r.stderr)
	}

	for _, args := range [][]string{{"--interval", "0s"}, {"--timeout", "-1s"}, {"--interval", "soon"}} {
		r := runCLI(t, withDaemon(running), "", append([]string{"audit", "verify"}, args...)...)
		if r.code != exitUsage {
			t.Errorf("audit verify %q = exit %d, stderr %q; want a usage error", args, r.code, r.stderr)
		}
	}
}
