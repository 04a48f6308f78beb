package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/keymesh/keymesh/node"
)

// newInitCmd is `keymesh init`: it creates a node's data directory on this
// machine (master key file, store, identity and admin token). It is the one
// command that does not talk to a daemon.
func newInitCmd(a *app) *cobra.Command {
	var cfg node.Config
	var tokenFile string
	cmd := &cobra.Command{
		Use:   "init --data DIR [--org ORG]",
		Short: "Create a node's data directory, master key and admin token (local, no daemon)",
		Long: `init creates a keymesh node in --data: the directory (0700), a 32-byte master
key file (0600; or use --passphrase-file), the store, and the admin token.
The admin token is printed once; --admin-token-file also writes it (0600).
Start the node afterwards with: keymeshd --data DIR`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.DataDir == "" {
				cfg.DataDir = a.env("KEYMESH_DATA")
			}
			if cfg.DataDir == "" {
				return usagef("--data is required")
			}
			secret, err := node.Init(cfg, tokenFile)
			if err != nil {
				return err
			}
			return a.emit(struct {
				Data       string `json:"data"`
				Org        string `json:"org"`
				AdminToken string `json:"admin_token"`
			}{cfg.DataDir, orDefault(cfg.Org, "local"), secret}, func(w io.Writer) {
				fmt.Fprintf(w, "initialised node in %s (org %s)\n", cfg.DataDir, orDefault(cfg.Org, "local"))
				fmt.Fprintf(w, "admin token (shown once; store it safely): %s\n", secret)
				fmt.Fprintf(w, "start it with: keymeshd --data %s\n", cfg.DataDir)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data", "", "data directory to create (env KEYMESH_DATA)")
	f.StringVar(&cfg.Org, "org", "", "organisation id of this node, e.g. Org1MSP (default local)")
	f.StringVar(&cfg.MasterKeyFile, "master-key-file", "", "where to write the master key (default <data>/master.key)")
	f.StringVar(&cfg.PassphraseFile, "passphrase-file", "", "derive the master secret from the passphrase in this file instead")
	f.StringVar(&tokenFile, "admin-token-file", "", "also write the admin token to this file (0600)")
	return cmd
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
