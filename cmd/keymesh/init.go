package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/node"
)

// newInitCmd is `keymesh init`: it creates a node's data directory on this
// machine (master key file, store, identity and admin token). It is the one
// command that does not talk to a daemon.
func newInitCmd(a *app) *cobra.Command {
	var cfg node.Config
	var tokenFile string
	cmd := &cobra.Command{
		Use:   "init --data DIR [--org ORG] [--genesis FILE]",
		Short: "Create a node's data directory, master key and admin token (local, no daemon)",
		Long: `init creates a keymesh node in --data: the directory (0700), a 32-byte master
key file (0600; or use --passphrase-file), the store, and the admin token.
The admin token is printed once; --admin-token-file also writes it (0600).
Start the node afterwards with: keymeshd --data DIR

--genesis FILE makes the node a member of that network (see 'keymesh network
genesis'): --org must be one of its organisations, the node keeps a copy of
the file in DIR/genesis.json, and keymeshd starts its p2p host. Once it runs,
register it with 'keymesh node register --admin-key ORG-ADMIN-KEY'.

Without --genesis the node is a network of one: init writes a genesis with
its org alone to DIR/genesis.json and that org's admin key to DIR/admin.key
(0600), and the node registers itself when it starts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.DataDir == "" {
				cfg.DataDir = a.env("KEYMESH_DATA")
			}
			if cfg.DataDir == "" {
				return usagef("--data is required")
			}
			if cfg.Genesis == "" {
				cfg.Genesis = a.env("KEYMESH_GENESIS")
			}
			var networkID, network string
			if cfg.Genesis != "" {
				g, err := event.LoadGenesis(cfg.Genesis)
				if err != nil {
					return err
				}
				networkID, network = g.ID().String(), g.Network
			}
			secret, err := node.Init(cfg, tokenFile)
			if err != nil {
				return err
			}
			return a.emit(struct {
				Data       string `json:"data"`
				Org        string `json:"org"`
				AdminToken string `json:"admin_token"`
				Network    string `json:"network,omitempty"`
				NetworkID  string `json:"network_id,omitempty"`
			}{cfg.DataDir, orDefault(cfg.Org, "local"), secret, network, networkID}, func(w io.Writer) {
				fmt.Fprintf(w, "initialised node in %s (org %s)\n", cfg.DataDir, orDefault(cfg.Org, "local"))
				if networkID != "" {
					fmt.Fprintf(w, "network: %s (id %s)\n", network, networkID)
				}
				fmt.Fprintf(w, "admin token (shown once; store it safely): %s\n", secret)
				fmt.Fprintf(w, "start it with: keymeshd --data %s\n", cfg.DataDir)
				if networkID != "" {
					fmt.Fprintf(w, "then register it: keymesh node register --admin-key ORG-ADMIN-KEY\n")
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data", "", "data directory to create (env KEYMESH_DATA)")
	f.StringVar(&cfg.Org, "org", "", "organisation id of this node, e.g. Org1MSP (default local)")
	f.StringVar(&cfg.MasterKeyFile, "master-key-file", "", "where to write the master key (default <data>/master.key)")
	f.StringVar(&cfg.PassphraseFile, "passphrase-file", "", "derive the master secret from the passphrase in this file instead")
	f.StringVar(&tokenFile, "admin-token-file", "", "also write the admin token to this file (0600)")
	f.StringVar(&cfg.Genesis, "genesis", "", "genesis file of the network this node joins; --org must be in it (env KEYMESH_GENESIS)")
	return cmd
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
