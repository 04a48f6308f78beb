package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/keymesh/keymesh/network"
	"github.com/spf13/cobra"
)

// newNetworkCmd is `keymesh network`: local commands that define a network.
func newNetworkCmd(a *app) *cobra.Command {
	return newGroupCmd("network", "Network definition (local, no daemon)", newNetworkGenesisCmd(a))
}

// newNetworkGenesisCmd is `keymesh network genesis`: it assembles a genesis
// file from the orgs' admin public keys.
func newNetworkGenesisCmd(a *app) *cobra.Command {
	var (
		name, out, created          string
		orgs, bootstrap, namespaces []string
	)
	cmd := &cobra.Command{
		Use:   "genesis --name NAME --org ORG=PUBKEY [--org ORG=PUBKEY]... [--bootstrap MULTIADDR]... --out FILE",
		Short: "Assemble a network's genesis file from org admin public keys (local, no daemon)",
		Long: `genesis writes a network's genesis file (mode 0644; it refuses to overwrite a
file) and prints the network id: the SHA-256 of the network name, creation
time and orgs with their admin keys. Every node of the network loads the same
file; nodes with another genesis never exchange events.

--org ORG=PUBKEY names an organisation and one of its admin public keys (64
hex digits, as 'keymesh org keygen' prints); repeat it for more orgs, or with
the same ORG for more admin keys of one org (at most 8). --bootstrap adds a
multiaddr for new nodes to dial first; bootstrap addresses are not part of the
network id and may be edited later. --created fixes the creation time
(RFC 3339) to make the same network id again; it defaults to now.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			g, err := buildGenesis(name, orgs, bootstrap, namespaces, created)
			if err != nil {
				return err
			}
			if out == "" {
				return usagef("--out is required")
			}
			data, err := json.MarshalIndent(g, "", "  ")
			if err != nil {
				return err
			}
			data = append(data, '\n')
			// What we write must load back to the same network.
			back, err := network.ParseGenesis(data)
			if err != nil || back.ID() != g.ID() {
				return fmt.Errorf("internal error: the genesis does not read back: %v", err)
			}
			if err := writeNewFile(out, data, 0o644); err != nil {
				return err
			}
			id := g.ID()
			return a.emit(struct {
				NetworkID string `json:"network_id"`
				Network   string `json:"network"`
				Orgs      int    `json:"orgs"`
				File      string `json:"file"`
			}{id.String(), g.Network, len(g.Orgs), out}, func(w io.Writer) {
				fmt.Fprintf(w, "wrote genesis of network %s (%d orgs) to %s\n", g.Network, len(g.Orgs), out)
				fmt.Fprintf(w, "network id: %s\n", id)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "network name, [A-Za-z0-9][A-Za-z0-9._-]{0,63}")
	f.StringArrayVar(&orgs, "org", nil, "ORG=PUBKEY: an org and one of its admin public keys (repeatable)")
	f.StringArrayVar(&bootstrap, "bootstrap", nil, "multiaddr of a bootstrap node (repeatable)")
	f.StringArrayVar(&namespaces, "namespace", nil, "ORG=NS: the org owns key namespace NS: only its nodes create and manage keys NS/… (repeatable)")
	f.StringVar(&created, "created", "", "creation time, RFC 3339 (default now)")
	f.StringVar(&out, "out", "", "file to write the genesis to (0644; must not exist)")
	return cmd
}

// buildGenesis assembles and validates a genesis from the flags. Its
// errors are usage errors.
func buildGenesis(name string, orgs, bootstrap, namespaces []string, created string) (*network.Genesis, error) {
	if name == "" {
		return nil, usagef("--name is required")
	}
	if len(orgs) == 0 {
		return nil, usagef("at least one --org ORG=PUBKEY is required")
	}
	g := &network.Genesis{Network: name, Bootstrap: slices.Clone(bootstrap)}
	if created == "" {
		g.Created = time.Now().UTC().Truncate(time.Second)
	} else {
		t, err := time.Parse(time.RFC3339Nano, created)
		if err != nil {
			return nil, usagef("invalid --created %q: want RFC 3339, e.g. 2026-01-02T15:04:05Z", created)
		}
		g.Created = t.UTC()
	}
	index := map[string]int{}
	for _, o := range orgs {
		id, keyText, ok := strings.Cut(o, "=")
		if !ok {
			return nil, usagef("invalid --org %q: want ORG=PUBKEY", o)
		}
		key, err := network.ParseKey(strings.ToLower(strings.TrimSpace(keyText)))
		if err != nil {
			return nil, usagef("invalid --org %q: public key: want 64 hex digits", o)
		}
		i, seen := index[id]
		if !seen {
			i = len(g.Orgs)
			index[id] = i
			g.Orgs = append(g.Orgs, network.GenesisOrg{ID: id})
		}
		if slices.Contains(g.Orgs[i].AdminKeys, key) {
			return nil, usagef("--org %s lists the same admin key twice", id)
		}
		g.Orgs[i].AdminKeys = append(g.Orgs[i].AdminKeys, key)
	}
	for _, n := range namespaces {
		id, ns, ok := strings.Cut(n, "=")
		i, known := index[id]
		if !ok || !known {
			return nil, usagef("invalid --namespace %q: want ORG=NS for an org given with --org", n)
		}
		g.Orgs[i].Namespaces = append(g.Orgs[i].Namespaces, ns)
	}
	slices.SortFunc(g.Orgs, func(x, y network.GenesisOrg) int { return strings.Compare(x.ID, y.ID) })
	if err := g.Validate(); err != nil {
		return nil, usageError{err}
	}
	return g, nil
}
