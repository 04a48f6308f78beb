// Package initnode is `keymeshd init`: it creates a node's data directory
// (node.Init) and prints the result, as text or, for `keymesh init`, which
// runs it so that the operator CLI links neither the store, libp2p nor the
// HTTP server, as JSON. It is a package of its own so that keymesh's tests
// can run it in their own binary instead of building keymeshd.
package initnode

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/node"
)

// initResult is what `keymeshd init --json` prints: the contract with
// `keymesh init`.
type initResult struct {
	Data       string `json:"data"`
	Org        string `json:"org"`
	AdminToken string `json:"admin_token"`
	Network    string `json:"network,omitempty"`
	NetworkID  string `json:"network_id,omitempty"`
}

// Run is `keymeshd init` with its arguments: it creates a node's data
// directory (node.Init) and prints the admin token once, returning the exit
// code (2 for a usage error). Flags only; `keymesh init` reads the
// environment and passes what it found.
func Run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keymeshd init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg node.Config
	fs.StringVar(&cfg.DataDir, "data", "", "data `directory` to create")
	fs.StringVar(&cfg.Org, "org", "", "organisation `id` of this node, e.g. Org1MSP (default local)")
	fs.StringVar(&cfg.MasterKeyFile, "master-key-file", "", "where to write the master key (default <data>/master.key)")
	fs.StringVar(&cfg.PassphraseFile, "passphrase-file", "", "derive the master secret from the passphrase in `file` instead")
	fs.StringVar(&cfg.Genesis, "genesis", "", "genesis `file` of the network this node joins; --org must be in it")
	tokenFile := fs.String("admin-token-file", "", "also write the admin token to this `file` (0600)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "keymeshd: init: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if cfg.DataDir == "" {
		fmt.Fprintln(stderr, "keymeshd: init: --data is required")
		return 2
	}
	var res initResult
	if cfg.Genesis != "" {
		g, err := network.LoadGenesis(cfg.Genesis)
		if err != nil {
			fmt.Fprintf(stderr, "keymeshd: init: %v\n", err)
			return 1
		}
		res.Network, res.NetworkID = g.Network, g.ID().String()
	}
	secret, err := node.Init(cfg, *tokenFile)
	if err != nil {
		fmt.Fprintf(stderr, "keymeshd: init: %v\n", err)
		return 1
	}
	res.Data, res.Org, res.AdminToken = cfg.DataDir, cfg.Org, secret
	if res.Org == "" {
		res.Org = "local"
	}
	if *asJSON {
		b, err := json.Marshal(res)
		if err != nil {
			fmt.Fprintf(stderr, "keymeshd: init: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return 0
	}
	printInit(stdout, res)
	return 0
}

// printInit is the text output of init (`keymesh init` prints the same
// lines).
func printInit(w io.Writer, r initResult) {
	fmt.Fprintf(w, "initialised node in %s (org %s)\n", r.Data, r.Org)
	if r.NetworkID != "" {
		fmt.Fprintf(w, "network: %s (id %s)\n", r.Network, r.NetworkID)
	}
	fmt.Fprintf(w, "admin token (shown once; store it safely): %s\n", r.AdminToken)
	fmt.Fprintf(w, "start it with: keymeshd --data %s\n", r.Data)
	if r.NetworkID != "" {
		fmt.Fprintf(w, "then register it: keymesh node register --admin-key ORG-ADMIN-KEY\n")
	}
}
