package main

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/enroll"
)

// maxAdminKeyFileBytes bounds what is read of an org admin key file (a PEM
// Ed25519 key is 119 bytes).
const maxAdminKeyFileBytes = 16 << 10

// defaultRecordValidity is how long a node record signed by `node register`
// is valid unless --valid-for says otherwise: a year.
const defaultRecordValidity = 8760 * time.Hour

// newNodeCmd is `keymesh node`: this node's membership of its network.
func newNodeCmd(a *app) *cobra.Command {
	return newGroupCmd("node", "This node's network identity and registration (admin)",
		newNodeShowCmd(a),
		newNodeRegisterCmd(a),
		newNodeDeregisterCmd(a),
	)
}

// newNodesCmd is `keymesh nodes`: the network's nodes.
func newNodesCmd(a *app) *cobra.Command {
	return newGroupCmd("nodes", "The network's registered nodes (admin)", newNodesListCmd(a))
}

func newNodeShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Show this node's identity: org, network, peer id, keys, p2p addresses",
		Long: `show prints what an org admin signs to register this node: its org, the
network id, its libp2p peer id, its signing key, its KEM public key and the
p2p addresses it listens on (each ending in /p2p/<peer id>, the form other
nodes' --bootstrap takes), and whether the network holds its record.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := c.NodeIdentity(cmd.Context())
			if err != nil {
				return err
			}
			if id.Addrs == nil {
				id.Addrs = []string{}
			}
			return a.emit(id, func(w io.Writer) { identityTable(w, id) })
		},
	}
}

func identityTable(w io.Writer, id *apiv1.NodeIdentity) {
	row(w, "Org:", cell(id.Org))
	row(w, "Network:", cell(id.NetworkID))
	row(w, "Peer id:", cell(id.PeerID))
	row(w, "Sign key:", cell(id.SignKey))
	row(w, "KEM key:", fmt.Sprintf("%d bytes", len(id.KEMKey)))
	row(w, "Registered:", yesNo(id.Registered))
	if len(id.Addrs) == 0 {
		row(w, "P2P addresses:", "-")
	}
	for i, addr := range id.Addrs {
		label := ""
		if i == 0 {
			label = "P2P addresses:"
		}
		row(w, label, cell(addr))
	}
}

func newNodeRegisterCmd(a *app) *cobra.Command {
	var keyFile string
	var validFor time.Duration
	cmd := &cobra.Command{
		Use:   "register --admin-key FILE [--valid-for 8760h]",
		Short: "Register this node: sign its record with the org admin key and publish it",
		Long: `register fetches the node's identity (GET /v1/node), signs its node record
here with the org admin's private key (--admin-key, the file 'keymesh org
keygen' wrote; it must be readable by its owner only), and publishes the
signed record through the node (POST /v1/nodes/register). The admin key never
leaves this process. The key must be one of the org's admin keys in the
genesis. The record is valid from a minute ago for --valid-for (default a
year); register again before it runs out.`,
		Example: `  keymesh node register --admin-key org1-admin.key`,
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keyFile == "" {
				return usagef("node register: --admin-key is required")
			}
			if validFor <= 0 {
				return usagef("node register: --valid-for must be positive")
			}
			admin, err := readAdminKey(keyFile)
			if err != nil {
				return err
			}
			defer clear(admin)
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := enroll.Register(cmd.Context(), c, admin, validFor)
			if err != nil {
				return err
			}
			if id.Addrs == nil {
				id.Addrs = []string{}
			}
			return a.emit(id, func(w io.Writer) {
				fmt.Fprintf(w, "registered node of %s\n", cell(id.Org))
				row(w, "Peer id:", cell(id.PeerID))
				row(w, "Sign key:", cell(id.SignKey))
				row(w, "Valid until:", tm(time.Now().Add(validFor).UTC().Truncate(time.Second)))
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "admin-key", "", "org admin private key file (PEM, mode 0600), from 'keymesh org keygen'")
	f.DurationVar(&validFor, "valid-for", defaultRecordValidity, "how long the node record is valid")
	return cmd
}

func newNodeDeregisterCmd(a *app) *cobra.Command {
	var keyFile, nodeKey, org string
	var lastSeq int64
	cmd := &cobra.Command{
		Use:   "deregister --admin-key FILE --node SIGNKEY --org ORG",
		Short: "Deregister a node of the org: sign the deregistration with the org admin key",
		Long: `deregister removes a node from the network from now on: the org admin signs
a deregistration of the node with signing key --node (64 hex digits, as
'keymesh nodes list -o json' shows it) of org --org, here, and the node this
command talks to publishes it. Any node of the network can publish it; it
counts only if --admin-key is an admin key of --org in the genesis.
The deregistration is a causal cut: the node's events up to --last-seq
(default: what the answering node holds of them now) keep counting, and none
after it does, in whatever order nodes receive them. The node receives no new
key versions afterwards; what it held was shared.`,
		Example: `  keymesh node deregister --admin-key org1-admin.key --org Org1MSP --node 3b6a27bc…`,
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keyFile == "" || nodeKey == "" || org == "" {
				return usagef("node deregister: --admin-key, --node and --org are required")
			}
			var sk network.NodeKey
			if err := sk.UnmarshalText([]byte(strings.ToLower(strings.TrimSpace(nodeKey)))); err != nil {
				return usagef("node deregister: invalid --node: want the node's signing key, 64 hex digits")
			}
			admin, err := readAdminKey(keyFile)
			if err != nil {
				return err
			}
			defer clear(admin)
			c, err := a.client()
			if err != nil {
				return err
			}
			id, err := c.NodeIdentity(cmd.Context())
			if err != nil {
				return err
			}
			var nid network.NetworkID
			if err := nid.UnmarshalText([]byte(id.NetworkID)); err != nil {
				return fmt.Errorf("node deregister: the node's network id: %w", err)
			}
			cut := lastSeq
			if cut < 0 {
				// By default the cut is what the answering node holds of the
				// node's events now: everything it did so far counts,
				// nothing after.
				cur, err := c.ListNodes(cmd.Context())
				if err != nil {
					return err
				}
				cut = 0
				for _, n := range cur {
					if n.SignKey == sk.Hex() {
						cut = int64(n.Events)
					}
				}
			}
			d, err := network.SignDeregister(admin, nid, network.Deregister{
				Org: org, SignKey: sk, LastSeq: uint64(cut), At: time.Now(), AdminKey: [32]byte(admin.Public().(ed25519.PublicKey)),
			})
			if err != nil {
				return usageError{fmt.Errorf("node deregister: %w", err)}
			}
			raw, err := json.Marshal(d)
			if err != nil {
				return err
			}
			nodes, err := c.DeregisterNode(cmd.Context(), raw)
			if err != nil {
				return err
			}
			if nodes == nil {
				nodes = []apiv1.NetworkNode{}
			}
			return a.emit(apiv1.NetworkNodeList{Nodes: nodes}, func(w io.Writer) {
				fmt.Fprintf(w, "deregistered node %s of %s\n", shortKey(sk.Hex()), cell(org))
				fmt.Fprintln(w)
				nodesTable(w, nodes)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "admin-key", "", "org admin private key file (PEM, mode 0600)")
	f.Int64Var(&lastSeq, "last-seq", -1, "the cut: the node's events up to this sequence number keep counting, none after (default: as many as the answering node holds now)")
	f.StringVar(&nodeKey, "node", "", "signing key of the node to deregister (64 hex digits)")
	f.StringVar(&org, "org", "", "the node's org, e.g. Org1MSP")
	return cmd
}

func newNodesListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the network's nodes, their reachability and last-seen time",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			nodes, err := c.ListNodes(cmd.Context())
			if err != nil {
				return err
			}
			if nodes == nil {
				nodes = []apiv1.NetworkNode{}
			}
			return a.emit(apiv1.NetworkNodeList{Nodes: nodes}, func(w io.Writer) { nodesTable(w, nodes) })
		},
	}
}

func nodesTable(w io.Writer, nodes []apiv1.NetworkNode) {
	row(w, "ORG", "PEER-ID", "SIGN-KEY", "CONNECTED", "LAST-SEEN", "DEREGISTERED", "SELF")
	for _, n := range nodes {
		connected := yesNo(n.Connected)
		if n.Self {
			connected = "-"
		}
		row(w, cell(n.Org), cell(n.PeerID), shortKey(n.SignKey), connected, tmp(n.LastSeen, "-"), yesNo(n.Deregistered), yesNo(n.Self))
	}
}

// shortKey shortens a hex signing key for a table: its first 16 digits.
func shortKey(k string) string {
	if len(k) > 16 {
		k = k[:16] + "…"
	}
	return cell(k)
}

// readAdminKey reads an org admin private key file. Like the vault's master
// key file, it must be readable by its owner only; its content is never
// quoted in an error.
func readAdminKey(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("admin key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("admin key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("admin key %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("admin key file %s has mode %04o; it must be readable by its owner only (chmod 600)", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxAdminKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("admin key %s: %w", path, err)
	}
	defer clear(data)
	if len(data) > maxAdminKeyFileBytes {
		return nil, fmt.Errorf("admin key file %s is over %d bytes; is it the right file?", path, maxAdminKeyFileBytes)
	}
	priv, err := network.ParseAdminKey(data)
	if err != nil {
		return nil, fmt.Errorf("admin key %s: %w", path, err)
	}
	return priv, nil
}
