package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// newInitCmd is `keymesh init`: it creates a node's data directory on this
// machine (master key file, store, identity and admin token). It is the one
// command that does not talk to a daemon: it runs `keymeshd init`, so that
// the operator CLI links neither the store, libp2p nor the HTTP server.
func newInitCmd(a *app) *cobra.Command {
	var o initOptions
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
(0600), and the node registers itself when it starts.

init runs 'keymeshd init', the daemon binary found beside keymesh or on PATH.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.data == "" {
				o.data = a.env("KEYMESH_DATA")
			}
			if o.data == "" {
				return usagef("--data is required")
			}
			if o.genesis == "" {
				o.genesis = a.env("KEYMESH_GENESIS")
			}
			res, err := keymeshdInit(cmd.Context(), o)
			if err != nil {
				return err
			}
			return a.emit(res, func(w io.Writer) {
				fmt.Fprintf(w, "initialised node in %s (org %s)\n", res.Data, res.Org)
				if res.NetworkID != "" {
					fmt.Fprintf(w, "network: %s (id %s)\n", res.Network, res.NetworkID)
				}
				fmt.Fprintf(w, "admin token (shown once; store it safely): %s\n", res.AdminToken)
				fmt.Fprintf(w, "start it with: keymeshd --data %s\n", res.Data)
				if res.NetworkID != "" {
					fmt.Fprintf(w, "then register it: keymesh node register --admin-key ORG-ADMIN-KEY\n")
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.data, "data", "", "data directory to create (env KEYMESH_DATA)")
	f.StringVar(&o.org, "org", "", "organisation id of this node, e.g. Org1MSP (default local)")
	f.StringVar(&o.masterKeyFile, "master-key-file", "", "where to write the master key (default <data>/master.key)")
	f.StringVar(&o.passphraseFile, "passphrase-file", "", "derive the master secret from the passphrase in this file instead")
	f.StringVar(&o.tokenFile, "admin-token-file", "", "also write the admin token to this file (0600)")
	f.StringVar(&o.genesis, "genesis", "", "genesis file of the network this node joins; --org must be in it (env KEYMESH_GENESIS)")
	return cmd
}

type initOptions struct {
	data, org, masterKeyFile, passphraseFile, tokenFile, genesis string
}

// initResult is what `keymeshd init --json` prints.
type initResult struct {
	Data       string `json:"data"`
	Org        string `json:"org"`
	AdminToken string `json:"admin_token"`
	Network    string `json:"network,omitempty"`
	NetworkID  string `json:"network_id,omitempty"`
}

// findKeymeshd returns the path of the keymeshd binary: beside this
// executable first (an installation keeps both together), else on PATH.
// Tests replace findKeymeshd, and set keymeshdEnv (added to the
// environment keymeshd inherits).
var (
	findKeymeshd = lookKeymeshd
	keymeshdEnv  []string
)

func lookKeymeshd() (string, error) {
	var beside string
	if exe, err := os.Executable(); err == nil {
		beside = filepath.Join(filepath.Dir(exe), "keymeshd")
		if fi, err := os.Stat(beside); err == nil && !fi.IsDir() {
			return beside, nil
		}
	}
	p, err := exec.LookPath("keymeshd")
	if err != nil {
		return "", fmt.Errorf("init needs the keymeshd binary, found neither at %q nor on PATH: install it (go install ./cmd/keymeshd) or run 'keymeshd init' yourself", beside)
	}
	return p, nil
}

// keymeshdInit runs `keymeshd init --json` with the options and returns its
// result; a failure carries keymeshd's own message.
func keymeshdInit(ctx context.Context, o initOptions) (initResult, error) {
	bin, err := findKeymeshd()
	if err != nil {
		return initResult{}, err
	}
	args := []string{"init", "--json", "--data", o.data}
	for _, f := range []struct{ name, val string }{
		{"--org", o.org}, {"--master-key-file", o.masterKeyFile}, {"--passphrase-file", o.passphraseFile},
		{"--admin-token-file", o.tokenFile}, {"--genesis", o.genesis},
	} {
		if f.val != "" {
			args = append(args, f.name, f.val)
		}
	}
	var stdout, stderr bytes.Buffer
	c := exec.CommandContext(ctx, bin, args...)
	c.Stdout, c.Stderr = &stdout, &stderr
	if keymeshdEnv != nil {
		c.Env = append(os.Environ(), keymeshdEnv...)
	}
	if err := c.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		msg = strings.TrimPrefix(msg, "keymeshd: init: ")
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee) && ee.ExitCode() == 2:
			return initResult{}, usagef("init: %s", msg)
		case errors.As(err, &ee) && msg != "":
			return initResult{}, errors.New(msg)
		}
		return initResult{}, fmt.Errorf("init: running %s: %w", bin, err)
	}
	var res initResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || res.AdminToken == "" {
		return initResult{}, fmt.Errorf("init: %s printed no result (is it the same version as keymesh?)", bin)
	}
	return res, nil
}
