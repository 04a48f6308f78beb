package main

import (
	"io"
	"strings"

	"github.com/spf13/cobra"
)

func newStatusCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the node, and who the token authenticates",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			s, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			return a.emit(s, func(w io.Writer) {
				row(w, "Node:", cell(s.Node))
				row(w, "Org:", cell(s.Org))
				row(w, "Network:", cell(s.NetworkID))
				row(w, "Version:", cell(s.Version))
				row(w, "Started:", tm(s.StartedAt))
				row(w, "Ready:", yesNo(s.Ready))
				row(w, "Keys:", num(s.Keys))
				row(w, "Grants:", num(s.Grants))
				row(w, "Tokens:", num(s.Tokens))
				row(w, "Audit head:", num(s.AuditHead))
				row(w, "Principal:", cell(s.Principal))
				row(w, "Role:", cell(s.Role))
				fips := s.FIPS.Mode + " (module " + s.FIPS.Module + ")"
				if s.FIPS.Required {
					fips += ", required by --fips"
				}
				if len(s.FIPS.Disabled) > 0 {
					fips += "; refuses " + strings.Join(s.FIPS.Disabled, ", ") + " (outside the FIPS claim)"
				}
				row(w, "FIPS 140-3:", cell(fips))
				if m := s.Mesh; m != nil {
					row(w, "Mesh peers:", num(m.Peers))
					row(w, "Mesh nodes:", num(m.Nodes))
					row(w, "Event log height:", num(m.Events))
					row(w, "Events dropped:", num(m.Dropped))
					row(w, "Last anti-entropy:", tmp(m.LastSync, "never"))
					row(w, "Events pending:", num(m.Pending))
					for _, o := range m.Orgs {
						state := "fresh, last heard " + tmp(o.LastHeard, "never")
						if o.Stale {
							state = "STALE (its keys answer stale_policy), last heard " + tmp(o.LastHeard, "never")
						}
						row(w, "Org "+o.Org+":", state)
					}
					row(w, "Staleness bound:", cell(m.Staleness))
					for i, addr := range m.Addrs {
						label := ""
						if i == 0 {
							label = "P2P addresses:"
						}
						row(w, label, cell(addr))
					}
				}
			})
		},
	}
}
