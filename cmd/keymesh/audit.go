package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
)

func newAuditCmd(a *app) *cobra.Command {
	return newGroupCmd("audit", "Read and verify the hash-chained audit log (admin)",
		newAuditTailCmd(a),
		newAuditVerifyCmd(a),
	)
}

func newAuditTailCmd(a *app) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "tail [-n N]",
		Short: "Show the newest audit log entries",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 || limit > apiv1.MaxListLimit {
				return usagef("audit tail: -n must be from 1 to %d", apiv1.MaxListLimit)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			entries, err := c.AuditTail(cmd.Context(), limit)
			if err != nil {
				return err
			}
			if entries == nil {
				entries = []apiv1.AuditEntry{}
			}
			return a.emit(apiv1.AuditList{Entries: entries}, func(w io.Writer) {
				row(w, "SEQ", "TIME", "PRINCIPAL", "ACTION", "KEY", "VERSION", "OUTCOME", "COUNT", "REASON")
				for _, e := range entries {
					version := "-"
					if e.Version != 0 {
						version = num(e.Version)
					}
					row(w, num(e.Seq), tm(e.Time), cell(e.Principal), cell(e.Action), cell(e.Key), version,
						cell(e.Outcome), num(e.Count), cell(e.Reason))
				}
			})
		},
	}
	cmd.Flags().IntVarP(&limit, "limit", "n", 20, fmt.Sprintf("number of entries, 1 to %d", apiv1.MaxListLimit))
	return cmd
}

// Defaults of `keymesh audit verify`'s polling of the verification job.
const (
	defaultVerifyInterval = time.Second
	defaultVerifyTimeout  = 30 * time.Minute
)

func newAuditVerifyCmd(a *app) *cobra.Command {
	var (
		useSync           bool
		interval, timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify [--sync] [--interval D] [--timeout D]",
		Short: "Check the audit log's hash chain; exit 1 if it is broken",
		Long: `Check the audit log's hash chain; exit 1 if it is broken.

keymesh starts a verification job on the daemon (POST /v1/audit/verify/jobs)
and polls it every --interval, printing to stderr how many entries it has
checked so far. When the job ends, keymesh prints its result as --sync
would (the same table or JSON). It gives up (exit 1) after --timeout; the
job goes on in the daemon then, or when keymesh is interrupted, and a later
'keymesh audit verify' follows the job still running.

--sync verifies within one request (POST /v1/audit/verify) instead, without
progress; a log of millions of entries may outlast the daemon's request
timeout.`,
		Example: `  keymesh audit verify
  keymesh audit verify --interval 5s --timeout 2h
  keymesh audit verify --sync`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval <= 0 {
				return usagef("audit verify: --interval must be positive")
			}
			if timeout <= 0 {
				return usagef("audit verify: --timeout must be positive")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			var v *apiv1.AuditVerify
			if useSync {
				v, err = c.AuditVerify(cmd.Context())
			} else {
				v, err = a.verifyJob(cmd.Context(), c, interval, timeout)
			}
			if err != nil {
				return err
			}
			if err := a.emit(v, func(w io.Writer) {
				result := "OK"
				if !v.OK {
					result = "BROKEN"
				}
				row(w, "Result:", result)
				row(w, "Entries:", num(v.Entries))
				row(w, "Head:", cell(v.Head))
				if !v.OK {
					row(w, "Broken at entry:", num(v.Seq))
					row(w, "Reason:", cell(v.Reason))
				}
			}); err != nil {
				return err
			}
			if !v.OK {
				return fmt.Errorf("the audit log's hash chain is broken at entry %d: %s", v.Seq, cell(v.Reason))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&useSync, "sync", false, "verify within one request (POST /v1/audit/verify), without a job or progress")
	f.DurationVar(&interval, "interval", defaultVerifyInterval, "how often to poll the verification job")
	f.DurationVar(&timeout, "timeout", defaultVerifyTimeout, "give up waiting for the verification job after this long")
	return cmd
}

// verifyJob starts (or joins) the daemon's audit verification job and polls
// it every interval, printing its progress to stderr, until it ends or
// timeout passes.
func (a *app) verifyJob(ctx context.Context, c *client.Client, interval, timeout time.Duration) (*apiv1.AuditVerify, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	j, err := c.StartAuditVerifyJob(ctx)
	if client.IsCode(err, apiv1.CodeNotFound) {
		return nil, fmt.Errorf("%w (a keymeshd without verification jobs? use --sync)", err)
	}
	if err != nil {
		return nil, timedOut(ctx, err, "", 0, timeout)
	}
	id := j.ID
	tick := time.NewTicker(interval)
	defer tick.Stop()
	reported := uint64(0)
	for first := true; ; first = false {
		switch j.State {
		case "done":
			if j.Result == nil {
				return nil, fmt.Errorf("audit verification job %s is done without a result", cell(id))
			}
			return j.Result, nil
		case "failed":
			return nil, fmt.Errorf("audit verification job %s failed after %d entries: %s", cell(id), j.Checked, cell(j.Error))
		case "running":
		default:
			return nil, fmt.Errorf("audit verification job %s is in unknown state %s", cell(id), cell(j.State))
		}
		if first || j.Checked != reported {
			fmt.Fprintf(a.stderr, "verifying the audit log (job %s): %d entries checked\n", cell(id), j.Checked)
			reported = j.Checked
		}
		select {
		case <-ctx.Done():
			return nil, timedOut(ctx, ctx.Err(), id, j.Checked, timeout)
		case <-tick.C:
		}
		if j, err = c.AuditVerifyJob(ctx, id); client.IsCode(err, apiv1.CodeNotFound) {
			return nil, fmt.Errorf("%w: job %s (the daemon restarted, or another verification replaced it; run again)", err, cell(id))
		} else if err != nil {
			return nil, timedOut(ctx, err, id, reported, timeout)
		}
	}
}

// timedOut words err as a timeout when the polling's deadline has passed.
func timedOut(ctx context.Context, err error, id string, checked uint64, timeout time.Duration) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return err
	}
	if id == "" {
		return fmt.Errorf("audit verify: could not start the verification job within --timeout %s", timeout)
	}
	return fmt.Errorf("audit verify: job %s still running after --timeout %s (%d entries checked); it goes on in the daemon: run 'keymesh audit verify' again to follow it", cell(id), timeout, checked)
}
