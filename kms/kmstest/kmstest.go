// Package kmstest builds a node's domain core for tests, with no disk and
// no network: a network of one — one org, one registered node — on
// in-memory stores, with the real vault, event log, fold, member and audit
// log. It is what a front door's tests (node/api, kmip) stand on.
package kmstest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/kms"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/mesh"
	"github.com/keymesh/keymesh/mesh/member"
	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/vault"
	"github.com/keymesh/keymesh/vault/envelope"
)

// Solo is a network of one in memory.
type Solo struct {
	Org     string
	Store   kv.Store     // the vault's raw store (Options.Store or a kv.Mem)
	AuditFS *audit.MemFS // the audit log's files (SetWriteFailure fails its writes)
	Vault   *vault.Vault
	Log     *mesh.Log
	Member  *member.Member
	Audit   *audit.Log
	Core    *kms.Service
}

// Options adjust a Solo.
type Options struct {
	Org   string           // default "local"
	Clock func() time.Time // default time.Now
	// Reason is the core's reason for refused changes (kms.Config.Reason).
	Reason func(error) string
	// Vault are extra vault options.
	Vault []vault.Option
	// Store is the vault's store (default a new kv.Mem): a test may wrap
	// one to inject failures.
	Store kv.Store
}

// New builds a Solo; everything is closed when t ends.
func New(t testing.TB, o Options) *Solo {
	t.Helper()
	if o.Org == "" {
		o.Org = "local"
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	admin := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	g := &network.Genesis{Network: "kmstest", Created: o.Clock().UTC().Truncate(time.Second),
		Orgs: []network.GenesisOrg{{ID: o.Org, AdminKeys: [][32]byte{[32]byte(admin.Public().(ed25519.PublicKey))}}}}
	if o.Store == nil {
		o.Store = kv.NewMem()
	}
	s := &Solo{Org: o.Org, Store: o.Store, AuditFS: audit.NewMemFS()}
	vopts := append([]vault.Option{vault.WithClock(o.Clock), vault.WithNetwork(envelope.NetworkID(g.ID())), vault.WithOwner(o.Org)}, o.Vault...)
	v, err := vault.Open(s.Store, vault.MasterKey(bytes.Repeat([]byte{9}, 32)), vopts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	s.Vault = v
	_, kemPub, err := v.GenerateNodeKeys()
	if err != nil {
		t.Fatal(err)
	}
	sign, err := v.Signer()
	if err != nil {
		t.Fatal(err)
	}
	if s.Log, err = mesh.OpenLog(v.Store(), g, sign, mesh.LogOptions{Clock: o.Clock}); err != nil {
		t.Fatal(err)
	}
	s.Member = member.New(member.Config{Log: s.Log, Vault: v, Org: o.Org, PeerID: "12D3KooWkmstest", KEMKey: kemPub, Clock: o.Clock})
	now := o.Clock()
	rec, err := network.SignNodeRecord(admin, g.ID(), network.NodeRecord{
		Org: o.Org, PeerID: "12D3KooWkmstest", SignKey: s.Log.Self(), KEMKey: kemPub,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(rec)
	if err := s.Member.Register(raw); err != nil {
		t.Fatal(err)
	}
	if s.Audit, err = audit.Open(s.AuditFS, v.Tagger()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Audit.Close() })
	s.Core = kms.New(kms.Config{Vault: v, Keys: s.Member, Audit: s.Audit, Clock: o.Clock, Reason: o.Reason})
	return s
}
