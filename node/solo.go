package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/mesh"
	"github.com/keymesh/keymesh/mesh/member"
	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/enroll"
)

// A node initialised without a genesis is a network of one: `keymesh init`
// makes a genesis with a single organisation (the node's) whose admin key
// it generates and keeps in the data directory (AdminKeyFile), and the node
// registers itself with it. It then runs the same event log, fold and
// reconciliation as every node of a larger network — there is no second
// state machine. Its genesis.json and admin.key are what a second node of
// the org needs: `keymesh init --genesis DIR/genesis.json` there, and
// `keymesh node register --admin-key DIR/admin.key` against it (both nodes
// then need --p2p-listen; a network of one starts no p2p host).

// AdminKeyFile is where a network of one keeps its org admin's Ed25519
// key (PKCS #8 PEM, 0600). Treat it like master.key.
func AdminKeyFile(data string) string { return filepath.Join(data, "admin.key") }

// soloRecordValidity is how long the record a network of one signs for
// itself is valid; Open signs a new one when less than soloRenewal is left.
const (
	soloRecordValidity = 10 * 365 * 24 * time.Hour
	soloRenewal        = 365 * 24 * time.Hour
)

// soloGenesis is the genesis of the network of one of node nodeID of org:
// deterministic in its inputs, so a migration interrupted and run again
// makes the same network.
func soloGenesis(org, nodeID string, admin ed25519.PublicKey, created time.Time) *network.Genesis {
	return &network.Genesis{
		Network: "solo-" + nodeID,
		Created: created.UTC().Truncate(time.Second),
		Orgs:    []network.GenesisOrg{{ID: org, AdminKeys: [][32]byte{[32]byte(admin)}}},
	}
}

// soloAdminKey writes a new admin key to the data directory, or reads the
// one there (a migration run again reuses it), and returns it.
func soloAdminKey(data string) (ed25519.PrivateKey, error) {
	path := AdminKeyFile(data)
	if b, err := os.ReadFile(path); err == nil {
		priv, err := network.ParseAdminKey(b)
		if err != nil {
			return nil, fmt.Errorf("node: %s: %w", path, err)
		}
		return priv, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("node: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	b, err := network.MarshalAdminKey(priv)
	if err != nil {
		return nil, err
	}
	if err := writeFileSync(path, b); err != nil {
		return nil, fmt.Errorf("node: write admin key: %w", err)
	}
	return priv, nil
}

// writeGenesis writes g to the data directory's genesis.json.
func writeGenesis(data string, g *network.Genesis) error {
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return fmt.Errorf("node: genesis: %w", err)
	}
	if err := writeFileSync(GenesisFile(data), append(b, '\n')); err != nil {
		return fmt.Errorf("node: write genesis: %w", err)
	}
	return nil
}

// writeFileSync writes a new 0600 file durably (through a temporary file
// and a rename, so a crash leaves the old file or the new one).
func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// registerSolo registers the node of a network of one with the admin key
// in its data directory, when it is not registered or its record runs out
// within soloRenewal. Other networks' nodes are registered by their org's
// operators (`keymesh node register`); so are nodes without admin.key.
func (n *Node) registerSolo(m *member.Member, g *network.Genesis) error {
	b, err := os.ReadFile(AdminKeyFile(n.cfg.DataDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	admin, err := network.ParseAdminKey(b)
	if err != nil {
		return fmt.Errorf("node: %s: %w", AdminKeyFile(n.cfg.DataDir), err)
	}
	if !g.IsAdmin(n.id.Org, [32]byte(admin.Public().(ed25519.PublicKey))) {
		return nil // the key of another network, kept by the operator
	}
	now := n.cfg.Clock()
	var current bool
	m.Log().View(func(s *mesh.State) {
		node, ok := s.Active(m.Log().Self(), now)
		current = ok && node.Record.NotAfter.After(now.Add(soloRenewal))
	})
	if current {
		return nil
	}
	id := m.Identity()
	rec, err := enroll.Record(&apiv1.NodeIdentity{Org: id.Org, NetworkID: id.NetworkID, PeerID: id.PeerID, SignKey: id.SignKey,
		KEMKey: id.KEMKey, Mesh: true}, admin, now, soloRecordValidity)
	if err != nil {
		return err
	}
	if err := m.Register(rec); err != nil {
		return fmt.Errorf("node: register with %s: %w", AdminKeyFile(n.cfg.DataDir), err)
	}
	n.logger.Info("registered this node in its network with the node-local admin key", "not_after", now.Add(soloRecordValidity).UTC())
	return nil
}

// Upgrading a standalone node.
//
// keymesh before 0.2 ran a node without a genesis as a second kind of node:
// its vault was the authority for its keys and grants lived in their own
// records ("policy/…"). On its first start, such a data directory becomes a
// network of one: Open makes its genesis and admin key, registers the node,
// and issues, in order, the events that recreate each key (its options,
// every version with the commitment to the material the vault already
// holds, its state and minimum decryption version; a destroyed key is
// created and destroyed) and every grant still in force (with a new id:
// grant ids are scoped by their issuing node now; revoked grants are not
// carried over, their record is the audit log). The old policy records are
// then deleted. The node's envelopes stay bound to the network id it had
// (upgradeKey records it), so every ciphertext it ever made still opens;
// for that reason no other node can join the upgraded network: to grow a
// mesh, start one with a genesis and re-encrypt.

// upgradeKey, under the summarised "node/" prefix, marks a data directory
// upgraded from standalone: its value is "pending <network id>" until every
// key and grant has been issued as an event, then "done <network id>",
// where the network id (hex) is the genesis's made for it.
var upgradeKey = []byte("node/standalone-upgrade")

// upgradeState returns the upgrade record's state and network ("" if the
// node was never standalone).
func upgradeState(store kv.Store) (state, network string, err error) {
	b, err := store.Get(upgradeKey)
	switch {
	case errors.Is(err, kv.ErrNotFound):
		return "", "", nil
	case err != nil:
		return "", "", fmt.Errorf("node: upgrade record: %w", err)
	}
	state, network, _ = strings.Cut(string(b), " ")
	return state, network, nil
}

// startUpgrade turns a standalone data directory into a network of one:
// admin key, genesis, and the pending upgrade record.
func (n *Node) startUpgrade() (*network.Genesis, error) {
	admin, err := soloAdminKey(n.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	g := soloGenesis(n.id.Org, n.id.NodeID, admin.Public().(ed25519.PublicKey), n.id.Created)
	rec := []byte("pending " + g.ID().String())
	if err := n.store.Update(func(tx kv.Txn) error { return tx.Set(upgradeKey, rec) }); err != nil {
		return nil, fmt.Errorf("node: upgrade record: %w", err)
	}
	if err := writeGenesis(n.cfg.DataDir, g); err != nil {
		return nil, err
	}
	n.logger.Warn("upgrading a standalone data directory to a network of one", "data", n.cfg.DataDir, "admin_key", AdminKeyFile(n.cfg.DataDir))
	return g, nil
}

// finishUpgrade issues the events of a standalone node's keys and grants
// (member.UpgradeStandalone) and marks the upgrade done.
func (n *Node) finishUpgrade(m *member.Member, logger *slog.Logger) error {
	keys, grants, err := m.UpgradeStandalone(n.store, func(oldID, newID string) {
		logger.Info("upgrade: grant carried over", "old_id", oldID, "id", newID)
	})
	if err != nil {
		return fmt.Errorf("node: upgrade: %w", err)
	}
	if err := n.store.Update(func(tx kv.Txn) error { return tx.Set(upgradeKey, []byte("done "+m.Log().Network().String())) }); err != nil {
		return fmt.Errorf("node: upgrade record: %w", err)
	}
	logger.Warn("standalone data directory upgraded to a network of one", "keys", keys, "grants", grants)
	return nil
}

// newSoloGenesis makes the genesis and admin key of a network of one at
// init.
func newSoloGenesis(cfg Config, nodeID string, now time.Time) (*network.Genesis, error) {
	admin, err := soloAdminKey(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	g := soloGenesis(cfg.Org, nodeID, admin.Public().(ed25519.PublicKey), now)
	if err := writeGenesis(cfg.DataDir, g); err != nil {
		return nil, err
	}
	return g, nil
}

// newNodeID returns a random node id (16 hex digits).
func newNodeID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
