package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keymesh/keymesh/node/apiv1"
)

func newTokenCmd(a *app) *cobra.Command {
	return newGroupCmd("token", "Create, list and revoke API tokens (admin)",
		newTokenCreateCmd(a),
		newTokenListCmd(a),
		newTokenRevokeCmd(a),
	)
}

func newTokenCreateCmd(a *app) *cobra.Command {
	var req apiv1.CreateTokenRequest
	cmd := &cobra.Command{
		Use:   "create --party PARTY [--role client|admin|chaincode] [--channel C --chaincode N --msp M] [--label L] [--ttl D]",
		Short: "Create an API token; its secret is shown once",
		Long: `Create an API token bound to PARTY. The secret is printed this once: the
node stores only its hash. With -o json the secret is the "token" field.

The admin role manages keys, grants and tokens, but decrypts nothing unless a
grant names its party, as any other party.

The chaincode role is for a Fabric chaincode (package chaincode/fabric): each
of its requests carries the transaction's signed proposal, which the node
verifies (the creator's signature, its certificate against fabric_msps, the
tx id, the time window), and grants are decided for the creator
(fabric:<MSP>/<subject> and org:<MSP>), never for the token's own party. A
chaincode token is bound to the channels (--channel, repeatable), the
chaincode (--chaincode) and the creators' MSPs (--msp, repeatable) of the
proposals it may present. Each org's node needs its own chaincode token:
mint one on every node that serves an endorsing peer.`,
		Example: `  keymesh token create --party token:billing --label billing-service --ttl 720h
  keymesh token create --party token:ops --role admin -o json | jq -r .token > ops.token
  keymesh token create --party token:cc-asset --role chaincode --label asset-transfer \
      --channel mychannel --chaincode asset --msp Org1MSP --msp Org2MSP`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if req.Party == "" {
				return usagef("token create: --party is required")
			}
			if req.Role != "client" && req.Role != "admin" && req.Role != "chaincode" {
				return usagef("token create: invalid --role %q: want client, admin or chaincode", req.Role)
			}
			if req.Role == "chaincode" && (len(req.Channels) == 0 || req.Chaincode == "" || len(req.MSPs) == 0) {
				return usagef("token create: a chaincode token needs --channel, --chaincode and --msp")
			}
			if req.Role != "chaincode" && (len(req.Channels) > 0 || req.Chaincode != "" || len(req.MSPs) > 0) {
				return usagef("token create: --channel, --chaincode and --msp are for --role chaincode only")
			}
			if req.TTL != "" && req.TTL != "never" && req.TTL != "0" {
				if d, err := time.ParseDuration(req.TTL); err != nil || d <= 0 {
					return usagef("token create: invalid --ttl %q: want a positive duration such as 24h, or never", req.TTL)
				}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ct, err := c.CreateToken(cmd.Context(), req)
			if err != nil {
				return err
			}
			if err := a.emit(ct, func(w io.Writer) {
				row(w, "Token:", ct.Token)
				tokenTable(w, &ct.Info)
			}); err != nil {
				return err
			}
			if a.output != "json" {
				fmt.Fprintln(a.stderr, "Note: the token is shown only this once; the node keeps only its hash. Store it now.")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Party, "party", "", "the party the token authenticates, such as token:billing (required)")
	f.StringVar(&req.Role, "role", "client", "client, admin or chaincode")
	f.StringVar(&req.Label, "label", "", "a label for people")
	f.StringVar(&req.TTL, "ttl", "", "lifetime, such as 720h, or never (default: the node's token_ttl, 90 days, for client and chaincode tokens; no expiry for admin tokens)")
	f.StringSliceVar(&req.Channels, "channel", nil, "chaincode role: a channel of the proposals the token presents (repeatable)")
	f.StringVar(&req.Chaincode, "chaincode", "", "chaincode role: the chaincode name of those proposals (the chaincode clients invoke; for one called from another chaincode, the caller's)")
	f.StringSliceVar(&req.MSPs, "msp", nil, "chaincode role: an MSP whose creators the token presents (repeatable)")
	return cmd
}

func newTokenListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List API tokens (never their secrets)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			tokens, err := c.ListTokens(cmd.Context())
			if err != nil {
				return err
			}
			if tokens == nil {
				tokens = []apiv1.Token{}
			}
			return a.emit(apiv1.TokenList{Tokens: tokens}, func(w io.Writer) {
				row(w, "ID", "PARTY", "ROLE", "LABEL", "CREATED", "EXPIRES", "REVOKED")
				for _, t := range tokens {
					row(w, cell(t.ID), cell(t.Party), cell(t.Role), cell(t.Label), tm(t.Created), tmp(t.Expires, "never"), yesNo(t.Revoked))
				}
			})
		},
	}
}

func newTokenRevokeCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API token",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			t, err := c.RevokeToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.emit(t, func(w io.Writer) { tokenTable(w, t) })
		},
	}
}

func tokenTable(w io.Writer, t *apiv1.Token) {
	row(w, "ID:", cell(t.ID))
	row(w, "Party:", cell(t.Party))
	row(w, "Role:", cell(t.Role))
	row(w, "Label:", cell(t.Label))
	row(w, "Created:", tm(t.Created))
	row(w, "Expires:", tmp(t.Expires, "never"))
	row(w, "Revoked:", yesNo(t.Revoked))
	if t.Chaincode != "" {
		row(w, "Channels:", cell(strings.Join(t.Channels, ",")))
		row(w, "Chaincode:", cell(t.Chaincode))
		row(w, "MSPs:", cell(strings.Join(t.MSPs, ",")))
	}
}
