package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/keymesh/keymesh/node/fabricid"
)

func newFabricCmd(a *app) *cobra.Command {
	return newGroupCmd("fabric", "Hyperledger Fabric helpers (local)", newFabricPartyCmd(a))
}

// fabricParty is the JSON output of "keymesh fabric party".
type fabricParty struct {
	Party string `json:"party"`
}

func newFabricPartyCmd(a *app) *cobra.Command {
	var certFile, msp string
	cmd := &cobra.Command{
		Use:   "party --msp MSPID --cert FILE",
		Short: "Print the fabric: party of a certificate, as grants must name it",
		Long: `Print the fabric: party a Fabric identity speaks for when its certificate
signs a transaction: fabric:<MSPID>/<subject>, the subject in RFC 4514 form as
the node renders it (Go's pkix.Name.String order: CN, OU, O, POSTALCODE,
STREET, L, ST, C). Use it verbatim, quoted, in keymesh grant: cryptogen and
fabric-ca subjects contain spaces (L=San Francisco).

The node also rewrites a subject typed in another attribute order into this
form when it records a grant, and refuses one it cannot parse.`,
		Example: `  keymesh fabric party --msp Org1MSP --cert crypto-config/peerOrganizations/org1.example.com/users/User1@org1.example.com/msp/signcerts/cert.pem
  keymesh grant asset/appraised-value "$(keymesh fabric party --msp Org2MSP --cert user1.pem -o json | jq -r .party)" --ops decrypt`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if certFile == "" || msp == "" {
				return usagef("fabric party: --cert and --msp are required")
			}
			p, err := fabricid.PartyOfFile(msp, certFile)
			if err != nil {
				return err
			}
			out := fabricParty{Party: string(p)}
			return a.emit(out, func(w io.Writer) { io.WriteString(w, out.Party+"\n") })
		},
	}
	cmd.Flags().StringVar(&certFile, "cert", "", "PEM certificate file (an MSP's signcerts/cert.pem)")
	cmd.Flags().StringVar(&msp, "msp", "", "the MSP id the identity belongs to, such as Org1MSP")
	return cmd
}
