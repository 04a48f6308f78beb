package client

import (
	"context"
	"testing"

	"github.com/keymesh/keymesh/node/apiv1"
)

// The routes of paged listing and background audit verification, added to
// routeCases (client_test.go) so that every route test covers them.
func init() {
	routeCases = append(routeCases,
		routeCase{
			name: "ListKeysPage", route: "GET /v1/keys", resp: `{"keys":[],"next":"demo/b"}`,
			wantPath: "/v1/keys", wantQuery: "after=demo%2Fa&limit=2",
			call: func(ctx context.Context, c *Client) (any, error) { return c.ListKeysPage(ctx, "demo/a", 2) },
			check: func(t *testing.T, got any) {
				if p := got.(*apiv1.KeyList); p.Next != "demo/b" {
					t.Errorf("ListKeysPage() = %+v, want next demo/b", p)
				}
			},
		},
		routeCase{
			name: "ListGrantsPage", route: "GET /v1/grants", resp: `{"grants":[],"next":"xyz"}`,
			wantPath: "/v1/grants", wantQuery: "after=abc&key=demo%2Fssn&limit=5",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.ListGrantsPage(ctx, "demo/ssn", "abc", 5)
			},
			check: func(t *testing.T, got any) {
				if p := got.(*apiv1.GrantList); p.Next != "xyz" {
					t.Errorf("ListGrantsPage() = %+v, want next xyz", p)
				}
			},
		},
		routeCase{
			name: "StartAuditVerifyJob", route: "POST /v1/audit/verify/jobs", status: 202,
			resp:     `{"id":"1","state":"running","checked":65536,"started_at":"2026-03-01T12:00:00Z"}`,
			wantPath: "/v1/audit/verify/jobs",
			call:     func(ctx context.Context, c *Client) (any, error) { return c.StartAuditVerifyJob(ctx) },
			check: func(t *testing.T, got any) {
				if j := got.(*apiv1.AuditVerifyJob); j.ID != "1" || j.Checked != 65536 {
					t.Errorf("StartAuditVerifyJob() = %+v", j)
				}
			},
		},
		routeCase{
			name: "AuditVerifyJob", route: "GET /v1/audit/verify/jobs/{id}",
			resp:     `{"id":"1","state":"done","checked":3,"started_at":"2026-03-01T12:00:00Z","result":{"ok":true,"entries":3,"head":"ab"}}`,
			wantPath: "/v1/audit/verify/jobs/1",
			call:     func(ctx context.Context, c *Client) (any, error) { return c.AuditVerifyJob(ctx, "1") },
			check: func(t *testing.T, got any) {
				if j := got.(*apiv1.AuditVerifyJob); j.State != "done" || j.Result == nil || !j.Result.OK {
					t.Errorf("AuditVerifyJob() = %+v", j)
				}
			},
		},
	)
}
