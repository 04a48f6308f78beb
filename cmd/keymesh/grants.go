package main

import (
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/keymesh/keymesh/node/apiv1"
)

func newGrantCmd(a *app) *cobra.Command {
	var (
		ops         []string
		from, until string
		custodian   string
	)
	cmd := &cobra.Command{
		Use:   "grant KEY PARTY --ops encrypt,decrypt",
		Short: "Grant a party operations on a key (admin)",
		Long: `Grant PARTY the operations --ops (encrypt, decrypt or both) on KEY, from
--from until --until (RFC 3339 times; default: from now, without end).

PARTY is org:<OrgID> (every registered node of that org receives the key),
or fabric:<OrgID>/<identity>, eth:0x<address> or token:<name>, served by the
--custodian org's nodes (default: this node's org).`,
		Example: `  keymesh grant demo/ssn org:Org2MSP --ops decrypt
  keymesh grant demo/ssn token:billing --ops encrypt,decrypt --until 2026-12-31T23:59:59Z`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(ops) == 0 {
				return usagef("grant: --ops is required (encrypt, decrypt, export, or a comma-separated list)")
			}
			for _, op := range ops {
				if op != "encrypt" && op != "decrypt" && op != "export" {
					return usagef("grant: invalid operation %q in --ops: want encrypt, decrypt or export", op)
				}
			}
			req := apiv1.CreateGrantRequest{Key: args[0], Party: args[1], Ops: ops, Custodian: custodian}
			var err error
			if req.NotBefore, err = parseTimeFlag("--from", from); err != nil {
				return err
			}
			if req.NotAfter, err = parseTimeFlag("--until", until); err != nil {
				return err
			}
			if req.NotBefore != nil && req.NotAfter != nil && !req.NotAfter.After(*req.NotBefore) {
				return usagef("grant: --until must be after --from")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			g, err := c.CreateGrant(cmd.Context(), req)
			if err != nil {
				return err
			}
			return a.emit(g, func(w io.Writer) { grantTable(w, g) })
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&ops, "ops", nil, "operations to grant: encrypt, decrypt, export (KMIP Get of an exportable key), comma-separated")
	f.StringVar(&from, "from", "", "start of the grant, RFC 3339 (default: now)")
	f.StringVar(&until, "until", "", "end of the grant, RFC 3339 (default: none)")
	f.StringVar(&custodian, "custodian", "", "org whose nodes serve a non-org party (default: this node's org)")
	return cmd
}

func newRevokeCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke KEY PARTY",
		Short: "End every grant of a party on a key (admin)",
		Long: `End every grant of PARTY on KEY. Revoking an org: party rotates the key at
once, and the new version goes only to the remaining holders.

Revocation protects what is written after it. What the party could already
read was shared with it, and a revocation cannot take that back.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			r, err := c.Revoke(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return a.emit(r, func(w io.Writer) {
				row(w, "ID:", cell(r.ID))
				row(w, "Key:", cell(r.Key))
				row(w, "Party:", cell(r.Party))
				row(w, "Grants ended:", num(r.Ended))
				row(w, "Issuer:", cell(r.Issuer))
				row(w, "Issued at:", tm(r.IssuedAt))
			})
		},
	}
}

func newGrantsCmd(a *app) *cobra.Command {
	var page pageFlags
	list := &cobra.Command{
		Use:   "list [KEY] [--limit N] [--after CURSOR]",
		Short: "List the grants on KEY, or every grant",
		Long: `List the grants on KEY, or every grant, in (key, party, issue time) order.

Without --limit, keymesh follows every page of the listing and prints every
grant (after the cursor --after, when given). With --limit N it prints one
page of at most N grants and, when more follow, the cursor of the next page:
a last line "next: --after CURSOR" in a table, the "next" field with -o json.
The cursor is opaque: pass it back as it is, with the same KEY.`,
		Example: `  keymesh grants list demo/ssn
  keymesh grants list --limit 100
  keymesh grants list --limit 100 --after <next of the previous page>`,
		Args: nArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key := ""
			if len(args) == 1 {
				key = args[0]
			}
			onePage, err := page.check(cmd)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			var out apiv1.GrantList
			if onePage {
				p, err := c.ListGrantsPage(cmd.Context(), key, page.after, page.limit)
				if err != nil {
					return err
				}
				out = *p
			} else {
				out.Grants, err = follow(page.after, func(after string) ([]apiv1.Grant, string, error) {
					p, err := c.ListGrantsPage(cmd.Context(), key, after, 0)
					if err != nil {
						return nil, "", err
					}
					return p.Grants, p.Next, nil
				})
				if err != nil {
					return err
				}
			}
			if out.Grants == nil {
				out.Grants = []apiv1.Grant{}
			}
			return a.emit(out, func(w io.Writer) {
				row(w, "ID", "KEY", "PARTY", "OPS", "STATUS", "NOT-BEFORE", "NOT-AFTER", "CUSTODIAN", "ISSUER")
				for _, g := range out.Grants {
					row(w, cell(g.ID), cell(g.Key), cell(g.Party), cells(g.Ops), cell(g.Status),
						tmp(g.NotBefore, "-"), tmp(g.NotAfter, "-"), cell(g.Custodian), cell(g.Issuer))
				}
				nextLine(w, out.Next)
			})
		},
	}
	page.add(list, "start after `CURSOR`, the \"next\" of a previous page")
	return newGroupCmd("grants", "Inspect grants (admin)", list)
}

func grantTable(w io.Writer, g *apiv1.Grant) {
	row(w, "ID:", cell(g.ID))
	row(w, "Key:", cell(g.Key))
	row(w, "Party:", cell(g.Party))
	row(w, "Operations:", cells(g.Ops))
	row(w, "Not before:", tmp(g.NotBefore, "-"))
	row(w, "Not after:", tmp(g.NotAfter, "never"))
	row(w, "Custodian:", cell(g.Custodian))
	row(w, "Issuer:", cell(g.Issuer))
	row(w, "Issued at:", tm(g.IssuedAt))
	row(w, "Status:", cell(g.Status))
}

// parseTimeFlag parses an optional RFC 3339 flag value.
func parseTimeFlag(flag, v string) (*time.Time, error) {
	if v == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return nil, usagef("invalid %s %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", flag, v)
	}
	return &t, nil
}
