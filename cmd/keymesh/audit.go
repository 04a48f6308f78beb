package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/keymesh/keymesh/node/apiv1"
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

func newAuditVerifyCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Check the audit log's hash chain; exit 1 if it is broken",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			v, err := c.AuditVerify(cmd.Context())
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
}
