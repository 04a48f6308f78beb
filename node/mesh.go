package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	libp2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/mesh"
	"github.com/keymesh/keymesh/node/api"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/p2p"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault"
	"github.com/keymesh/keymesh/vault/secret"
	"github.com/keymesh/keymesh/vault/transport"
)

// Names of the node's sealed secrets in the vault.
const (
	secretSignKey = "node/sign-key" // Ed25519 seed: event signing and libp2p identity
	secretKEMKey  = "node/kem-key"  // HPKE private key for key transport
)

// shareAfter is how long a node that holds a version waits for the
// responsible holder to share it with a newly entitled node before it
// shares it itself.
const shareAfter = 2 * time.Second

// meshNode is a node's membership of a network: it turns administrative
// changes into signed events, publishes them over gossip, and reconciles
// the vault with the fold (importing versions wrapped for this node,
// forgetting versions it is no longer entitled to, destroying and
// acknowledging, sharing versions with newly entitled nodes).
type meshNode struct {
	log     *mesh.Log
	vault   *vault.Vault
	self    event.NodeKey
	org     string
	sign    ed25519.PrivateKey
	kemPriv *secret.Bytes
	kemPub  []byte
	grace   time.Duration
	clock   func() time.Time
	logger  *slog.Logger
	cfg     Config

	hostMu sync.RWMutex
	host   *p2p.Host

	mu           sync.Mutex // serialises changes and reconciliation
	missingSince map[string]time.Time
	// waiting holds keys with versions to share later; reconcileAll asks
	// the next reconciliation for every key (guarded by mu).
	waiting      map[string]bool
	reconcileAll bool
	heard        *prometheus.GaugeVec // seconds since each other org was heard from
}

var (
	_ api.Manager      = (*meshNode)(nil)
	_ api.Mesh         = (*meshNode)(nil)
	_ api.KeyDescriber = (*meshNode)(nil)
)

// peerIDOf derives the libp2p peer id of a signing key.
func peerIDOf(sign ed25519.PrivateKey) (peer.ID, libp2pcrypto.PrivKey, error) {
	pk, err := libp2pcrypto.UnmarshalEd25519PrivateKey(sign)
	if err != nil {
		return "", nil, err
	}
	id, err := peer.IDFromPrivateKey(pk)
	return id, pk, err
}

func (m *meshNode) publish(raw []byte) {
	m.hostMu.RLock()
	h := m.host
	m.hostMu.RUnlock()
	if h == nil {
		return // anti-entropy delivers it once the host is up
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Publish(ctx, raw); err != nil {
		m.logger.Warn("publish event", "err", err)
	}
}

func (m *meshNode) issue(kind event.Kind, payload any, attachments ...[]byte) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("node: encode %s: %w", kind, err)
	}
	is, err := m.log.Issue(kind, b, attachments...)
	if err != nil {
		return err
	}
	m.publish(is.Raw)
	// A checkpoint right after: the other orgs can vouch for this change
	// (and everything before it) at once, not only at the next tick.
	if cp := m.log.Checkpoint(); cp != nil {
		m.publish(cp)
	}
	return nil
}

// checkOwner returns the key as the network knows it, and an error unless
// this node may change it.
func (m *meshNode) checkOwner(s *mesh.State, name string) (*mesh.Key, error) {
	k, ok := s.Keys[name]
	if !ok || !k.Created {
		return nil, fmt.Errorf("%w: %q", vault.ErrKeyNotFound, name)
	}
	if k.Destroyed {
		return nil, fmt.Errorf("%w: %q", vault.ErrKeyDestroyed, name)
	}
	if k.Owner != m.org {
		return nil, fmt.Errorf("%w: %q belongs to %s", api.ErrNotOwner, name, k.Owner)
	}
	return k, nil
}

// recipients returns the vault recipients for version n of name: every
// given node that is active now, with its KEM key and the binding.
func (m *meshNode) recipients(s *mesh.State, name string, n uint32, nodes []event.NodeKey) ([]vault.Recipient, []event.NodeKey) {
	var out []vault.Recipient
	var keys []event.NodeKey
	for _, r := range nodes {
		node, ok := s.Active(r, m.clock())
		if !ok {
			continue
		}
		out = append(out, vault.Recipient{KEMKey: node.Record.KEMKey,
			Binding: transport.Binding{Network: m.log.Network(), Key: name, Version: n, Recipient: r}})
		keys = append(keys, r)
	}
	return out, keys
}

// newVersion issues the next version of name, active at activateAt,
// wrapped for every entitled node; its material never leaves the vault
// unwrapped. m.mu is held.
func (m *meshNode) newVersion(name string, activateAt time.Time) error {
	var kvp event.KeyVersion
	var rs []vault.Recipient
	var keys []event.NodeKey
	m.log.View(func(s *mesh.State) {
		k := s.Keys[name]
		kvp = event.KeyVersion{Key: name, Version: uint32(len(k.Versions)) + 1, ActivateAt: activateAt.UTC()}
		rs, keys = m.recipients(s, name, kvp.Version, s.Recipients(name, m.clock()))
	})
	check, blobs, err := m.vault.GenerateVersion(m.log.Network(), name, kvp.Version, rs)
	if err != nil {
		return err
	}
	kvp.Check = check
	for i, r := range keys {
		kvp.Wraps = append(kvp.Wraps, event.Wrap{Recipient: r, Digest: event.DigestOf(blobs[i])})
	}
	return m.issue(event.KindKeyVersion, kvp, blobs...)
}

func (m *meshNode) view(name string) (*mesh.Key, error) {
	var k *mesh.Key
	var err error
	m.log.View(func(s *mesh.State) { k, err = m.checkOwner(s, name) })
	return k, err
}

// CreateKey implements api.Manager.
func (m *meshNode) CreateKey(name string, o vault.CreateOptions) (vault.KeyInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if owner, ok := m.log.Genesis().KeyOwner(name); !ok || owner != m.org {
		if !ok {
			owner = "no organisation (the genesis assigns its namespace to none)"
		}
		return vault.KeyInfo{}, fmt.Errorf("%w: %q: its namespace belongs to %s", api.ErrNotOwner, name, owner)
	}
	var exists bool
	m.log.View(func(s *mesh.State) { k, ok := s.Keys[name]; exists = ok && k.Created })
	if exists {
		return vault.KeyInfo{}, fmt.Errorf("%w: %q", vault.ErrKeyExists, name)
	}
	if err := m.issue(event.KindKeyCreate, event.KeyCreate{Key: name, Deterministic: o.Deterministic, Exportable: o.Exportable, PreActive: o.PreActive}); err != nil {
		return vault.KeyInfo{}, err
	}
	if err := m.newVersion(name, m.clock()); err != nil {
		return vault.KeyInfo{}, err
	}
	m.reconcileLocked(false)
	return m.vault.Get(name)
}

// RotateKey implements api.Manager: the new version activates after the
// grace, by which time every holder has it.
func (m *meshNode) RotateKey(name string, activateIn *time.Duration) (vault.KeyInfo, error) {
	d := m.grace
	if activateIn != nil {
		if *activateIn < 0 || *activateIn > 30*24*time.Hour {
			return vault.KeyInfo{}, fmt.Errorf("%w: activation delay %s out of range [0, 720h]", vault.ErrInvalidRequest, *activateIn)
		}
		d = *activateIn
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k, err := m.view(name)
	if err != nil {
		return vault.KeyInfo{}, err
	}
	if k.State != vault.StateActive && k.State != vault.StatePreActive {
		return vault.KeyInfo{}, &vault.UsableError{Key: name, Op: "rotate", Reason: "key is " + k.State.String()}
	}
	if err := m.newVersion(name, m.clock().Add(d)); err != nil {
		return vault.KeyInfo{}, err
	}
	m.reconcileLocked(false)
	return m.vault.Get(name)
}

// autoRotate is the vault's rotate hook: a version reached its encryption
// threshold.
func (m *meshNode) autoRotate(name string) {
	go func() {
		if _, err := m.RotateKey(name, nil); err != nil {
			m.logger.Error("automatic rotation", "key", name, "err", err)
		}
	}()
}

// SetKeyState implements api.Manager.
func (m *meshNode) SetKeyState(name string, to vault.State) (vault.KeyInfo, error) {
	if to == vault.StateDestroyed {
		return m.DestroyKey(name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k, err := m.view(name)
	if err != nil {
		return vault.KeyInfo{}, err
	}
	if k.State != to && !vault.CanTransition(k.State, to) {
		return vault.KeyInfo{}, fmt.Errorf("%w: %q is %s and cannot become %s", vault.ErrInvalidTransition, name, k.State, to)
	}
	if err := m.issue(event.KindKeyState, event.KeyState{Key: name, State: to.String()}); err != nil {
		return vault.KeyInfo{}, err
	}
	m.reconcileLocked(false)
	return m.vault.Get(name)
}

// SetMinDecryptionVersion implements api.Manager.
func (m *meshNode) SetMinDecryptionVersion(name string, n uint32) (vault.KeyInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, err := m.view(name)
	if err != nil {
		return vault.KeyInfo{}, err
	}
	if n < 1 || int(n) > len(k.Versions) {
		return vault.KeyInfo{}, fmt.Errorf("%w: minimum decryption version %d: key %q has versions 1..%d", vault.ErrInvalidRequest, n, name, len(k.Versions))
	}
	if err := m.issue(event.KindKeyState, event.KeyState{Key: name, MinDecryptionVersion: n}); err != nil {
		return vault.KeyInfo{}, err
	}
	m.reconcileLocked(false)
	return m.vault.Get(name)
}

// DestroyKey implements api.Manager: every holder deletes the key and
// acknowledges with an event; `keys show` lists who has not yet.
func (m *meshNode) DestroyKey(name string) (vault.KeyInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.view(name); err != nil {
		if errors.Is(err, vault.ErrKeyDestroyed) {
			return m.vault.Get(name)
		}
		return vault.KeyInfo{}, err
	}
	if err := m.issue(event.KindKeyDestroy, event.KeyDestroy{Key: name}); err != nil {
		return vault.KeyInfo{}, err
	}
	m.reconcileLocked(false)
	return m.vault.Get(name)
}

// newID returns a fresh grant or revocation id, scoped by this node's
// prefix (mesh.IDPrefix).
func (m *meshNode) newID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return mesh.IDPrefix(m.self) + hex.EncodeToString(b)
}

// Grant implements api.Manager. A grant to an org: party makes that org's
// nodes holders: this node shares every version with them at once.
func (m *meshNode) Grant(g policy.Grant) (policy.Grant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.view(g.Key); err != nil {
		return policy.Grant{}, err
	}
	g.ID = m.newID()
	g.IssuedAt = m.clock().UTC()
	g.Observed = m.log.Policy().RevocationIDs(g.Key, g.Party)
	if g.Custodian == "" && g.Party.Kind() != policy.KindOrg {
		g.Custodian = m.org
	}
	if err := g.Validate(); err != nil {
		return policy.Grant{}, err
	}
	if err := m.issue(event.KindGrant, g); err != nil {
		return policy.Grant{}, err
	}
	m.reconcileLocked(g.Party.Kind() == policy.KindOrg)
	return g, nil
}

// Revoke implements api.Manager. Revoking an org: party rotates the key at
// once: the new version, active immediately, goes to the remaining holders
// only, and the revoked org's honest nodes forget what they held.
func (m *meshNode) Revoke(key string, party policy.Party, issuer string) (policy.Revocation, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.view(key); err != nil {
		return policy.Revocation{}, 0, err
	}
	now := m.clock().UTC()
	r := policy.Revocation{ID: m.newID(), Key: key, Party: party, Issuer: issuer, IssuedAt: now}
	if err := r.Validate(); err != nil {
		return policy.Revocation{}, 0, err
	}
	ended := 0
	for _, st := range m.log.Policy().GrantsAt(key, now) {
		if st.Grant.Party == party && st.InForce {
			ended++
		}
	}
	if err := m.issue(event.KindRevoke, r); err != nil {
		return policy.Revocation{}, 0, err
	}
	if party.Kind() == policy.KindOrg {
		if err := m.newVersion(key, now); err != nil {
			return policy.Revocation{}, 0, fmt.Errorf("node: rotate after revoking %s: %w", party, err)
		}
	}
	m.reconcileLocked(false)
	return r, ended, nil
}

// Policy implements api.Manager.
func (m *meshNode) Policy() *policy.State { return m.log.Policy() }

// DescribeKey implements api.KeyDescriber.
func (m *meshNode) DescribeKey(name string) (holders, pending []string) {
	m.log.View(func(s *mesh.State) {
		k, ok := s.Keys[name]
		if !ok {
			return
		}
		for h := range k.Holders {
			holders = append(holders, h.Hex())
		}
		slices.Sort(holders)
		if k.Destroyed {
			for _, h := range k.Outstanding() {
				pending = append(pending, h.Hex())
			}
		}
	})
	return holders, pending
}

// reconcileLoop reconciles the vault with the fold whenever the log
// changes (the keys that changed), every second (the keys with shares
// waiting on another holder), and every fullReconcile (every key: records
// expire with time, not with events).
func (m *meshNode) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastFull := m.clock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.log.Changed():
		case <-t.C:
		}
		m.mu.Lock()
		if m.clock().Sub(lastFull) >= fullReconcile {
			m.reconcileAll = true
			lastFull = m.clock()
		}
		m.reconcileLocked(false)
		m.mu.Unlock()
	}
}

// fullReconcile is how often every key is reconciled, whatever changed.
const fullReconcile = 30 * time.Second

// keyPlan is what reconciliation needs of one key, copied out of the state.
type keyPlan struct {
	meta      vault.KeyMeta
	destroyed bool
	holder    bool // this node held a version
	acked     bool
	entitled  bool
	versions  []versionPlan
}

type versionPlan struct {
	n          uint32
	activateAt time.Time
	check      event.Digest
	mine       [][]byte // candidate copies wrapped for this node (blobs held)
	missing    []vault.Recipient
	missingFor []event.NodeKey
	first      bool // this node is the first (smallest key) active holder
}

// reconcileLocked brings the vault in line with the fold. m.mu is held.
// forceShare makes this node share missing versions at once.
func (m *meshNode) reconcileLocked(forceShare bool) {
	var plans []keyPlan
	now := m.clock()
	m.log.View(func(s *mesh.State) {
		dirty, all := s.TakeDirty()
		if m.waiting == nil {
			m.waiting = map[string]bool{}
			all = true // the first reconciliation after start covers every key
		}
		var names []string
		if all || m.reconcileAll {
			for n := range s.Keys {
				names = append(names, n)
			}
			m.reconcileAll = false
		} else {
			names = dirty
			for n := range m.waiting {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		names = slices.Compact(names)
		for _, name := range names {
			k := s.Keys[name]
			delete(m.waiting, name)
			if k == nil || !k.Created {
				continue
			}
			p := keyPlan{
				meta: vault.KeyMeta{Name: name, Owner: k.Owner, Deterministic: k.Deterministic, Exportable: k.Exportable,
					State: k.State, MinDecryptionVersion: min(k.MinDecrypt, uint32(max(len(k.Versions), 1))), Created: k.CreatedAt},
				destroyed: k.Destroyed, holder: k.Holders[m.self], acked: k.Acks[m.self],
				entitled: s.Entitled(name, m.self),
			}
			recipients := s.Recipients(name, now)
			for _, v := range k.Versions {
				vp := versionPlan{n: v.N, activateAt: v.ActivateAt, check: v.Check}
				for _, w := range s.CopiesFor(name, v, m.self) {
					if w.Blob != nil { // nil until a copy of the event with the blob arrives
						vp.mine = append(vp.mine, w.Blob)
					}
				}
				var holders []event.NodeKey
				for h := range v.Wraps {
					if _, ok := s.Active(h, now); ok && len(s.CopiesFor(name, v, h)) > 0 {
						holders = append(holders, h)
					}
				}
				slices.SortFunc(holders, func(a, b event.NodeKey) int { return bytes.Compare(a[:], b[:]) })
				vp.first = len(holders) > 0 && holders[0] == m.self || len(holders) == 0 && v.Creator == m.self
				var lacking []event.NodeKey
				for _, r := range recipients {
					if len(s.CopiesFor(name, v, r)) == 0 {
						lacking = append(lacking, r)
					}
				}
				vp.missing, vp.missingFor = m.recipients(s, name, v.N, lacking)
				p.versions = append(p.versions, vp)
			}
			plans = append(plans, p)
		}
	})
	for _, p := range plans {
		if err := m.reconcileKey(p, forceShare); err != nil {
			m.logger.Warn("reconcile key", "key", p.meta.Name, "err", err)
			m.waiting[p.meta.Name] = true // try again at the next tick
		}
	}
}

func (m *meshNode) reconcileKey(p keyPlan, forceShare bool) error {
	name := p.meta.Name
	_, verr := m.vault.Get(name)
	has := verr == nil
	if p.destroyed {
		if has {
			if _, err := m.vault.Destroy(name); err != nil {
				return err
			}
		}
		if p.holder && !p.acked {
			return m.issue(event.KindDestroyAck, event.DestroyAck{Key: name})
		}
		return nil
	}
	if !p.entitled {
		if has {
			for _, v := range p.versions {
				if m.vault.Holds(name, v.n) {
					if err := m.vault.ForgetVersion(name, v.n); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}
	if err := m.vault.SyncKey(p.meta); err != nil {
		return err
	}
	for _, v := range p.versions {
		if len(v.mine) > 0 && !m.vault.Holds(name, v.n) {
			if err := m.acceptVersion(name, v); err != nil {
				return err
			}
		}
	}
	return m.shareAll(name, p.versions, forceShare)
}

// acceptVersion keeps the first candidate copy whose material matches the
// version's commitment; forged or corrupted shares are skipped.
func (m *meshNode) acceptVersion(name string, v versionPlan) error {
	b := transport.Binding{Network: m.log.Network(), Key: name, Version: v.n, Recipient: m.self}
	var errs []error
	for _, blob := range v.mine {
		err := m.vault.AcceptVersion(b, v.activateAt, v.check, blob)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("no copy of %q v%d for this node matches its commitment: %w", name, v.n, errors.Join(errs...))
}

// shareAll wraps the versions of a key for entitled nodes that lack them —
// at once for versions where this node is the first holder (or when
// forced), otherwise after shareAfter — and issues them all in one KeyShare
// event (several if there are more than event.MaxWraps), so a newly granted
// org gets a key's whole history in one round trip.
func (m *meshNode) shareAll(name string, versions []versionPlan, force bool) error {
	now := m.clock()
	var shares []event.Share
	var blobs [][]byte
	for _, v := range versions {
		if len(v.missing) == 0 || !m.vault.Holds(name, v.n) {
			continue
		}
		var due []vault.Recipient
		var dueFor []event.NodeKey
		for i, r := range v.missingFor {
			id := fmt.Sprintf("%s/%d/%s", name, v.n, r.Hex())
			first, seen := m.missingSince[id]
			if !seen {
				m.missingSince[id] = now
				first = now
			}
			if force || v.first || now.Sub(first) >= shareAfter {
				due = append(due, v.missing[i])
				dueFor = append(dueFor, r)
				delete(m.missingSince, id)
			} else {
				m.waiting[name] = true // look again at the next tick
			}
		}
		if len(due) == 0 {
			continue
		}
		bs, err := m.vault.ShareVersion(name, v.n, due)
		if err != nil {
			return err
		}
		for i, r := range dueFor {
			shares = append(shares, event.Share{Version: v.n, ActivateAt: v.activateAt, Wrap: event.Wrap{Recipient: r, Digest: event.DigestOf(bs[i])}})
			blobs = append(blobs, bs[i])
		}
	}
	for len(shares) > 0 {
		n := min(len(shares), event.MaxWraps)
		err := m.issue(event.KindKeyShare, event.KeyShare{Key: name, Shares: shares[:n]}, blobs[:n]...)
		if err != nil && !errors.Is(err, mesh.ErrRefused) {
			return err
		}
		shares, blobs = shares[n:], blobs[n:]
	}
	return nil
}

// Identity implements api.Mesh.
func (m *meshNode) Identity() apiv1.NodeIdentity {
	pid, _, _ := peerIDOf(m.sign)
	id := apiv1.NodeIdentity{
		Org: m.org, NetworkID: m.log.Network().String(), PeerID: pid.String(),
		SignKey: m.self.Hex(), KEMKey: m.kemPub, Mesh: true, Addrs: []string{},
	}
	m.hostMu.RLock()
	if m.host != nil {
		id.Addrs = m.host.Addrs()
	}
	m.hostMu.RUnlock()
	m.log.View(func(s *mesh.State) { _, id.Registered = s.Active(m.self, m.clock()) })
	return id
}

// Register implements api.Mesh: it publishes this node's admin-signed
// record.
func (m *meshNode) Register(raw []byte) error {
	r, err := event.DecodeNodeRecord(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", api.ErrRegistration, err)
	}
	if r.SignKey != m.self {
		return fmt.Errorf("%w: the record is for another node (sign key %s)", api.ErrRegistration, r.SignKey)
	}
	if err := m.log.Genesis().VerifyNodeRecord(r); err != nil {
		return fmt.Errorf("%w: %v", api.ErrRegistration, err)
	}
	if r.VerifyAdmin(m.log.Network()) != nil {
		return fmt.Errorf("%w: the admin signature does not verify for this network", api.ErrRegistration)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.issue(event.KindNodeRecord, r); err != nil {
		return err
	}
	m.reconcileLocked(false)
	return nil
}

// Deregister implements api.Mesh.
func (m *meshNode) Deregister(raw []byte) error {
	d, err := event.DecodeDeregister(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", api.ErrRegistration, err)
	}
	if err := m.log.Genesis().VerifyDeregister(d); err != nil {
		return fmt.Errorf("%w: %v", api.ErrRegistration, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.issue(event.KindDeregister, d)
}

// Nodes implements api.Mesh.
func (m *meshNode) Nodes() []apiv1.MeshNode {
	peers := map[string]p2p.PeerInfo{}
	m.hostMu.RLock()
	if m.host != nil {
		for _, p := range m.host.Peers() {
			peers[p.ID] = p
		}
	}
	m.hostMu.RUnlock()
	var out []apiv1.MeshNode
	heights := m.log.Summary()
	m.log.View(func(s *mesh.State) {
		for k, n := range s.Nodes {
			mn := apiv1.MeshNode{
				Org: n.Record.Org, PeerID: n.Record.PeerID, SignKey: k.Hex(), Addrs: n.Record.Addrs,
				NotAfter: n.Record.NotAfter, Deregistered: n.Deregistered, Self: k == m.self,
				Events: heights[mesh.IssuerID(k)], Tainted: n.Tainted != 0,
			}
			if n.Deregistered {
				cut := n.LastSeq
				mn.LastSeq = &cut
			}
			if p, ok := peers[n.Record.PeerID]; ok {
				mn.Connected = p.Connected
				if !p.LastSeen.IsZero() {
					t := p.LastSeen
					mn.LastSeen = &t
				}
			}
			out = append(out, mn)
		}
	})
	slices.SortFunc(out, func(a, b apiv1.MeshNode) int {
		if a.Org != b.Org {
			return compareStrings(a.Org, b.Org)
		}
		return compareStrings(a.SignKey, b.SignKey)
	})
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Status implements api.Mesh.
func (m *meshNode) Status() apiv1.MeshStatus {
	now := m.clock()
	st := apiv1.MeshStatus{Events: m.log.Height(), Pending: m.log.Pending(), Addrs: []string{}, Orgs: m.freshness(now)}
	bound, _ := m.log.Staleness(now)
	st.Staleness = bound.String()
	m.log.View(func(s *mesh.State) {
		for _, n := range s.Nodes {
			if !n.Deregistered {
				st.Nodes++
			}
		}
		for _, c := range s.Dropped {
			st.Dropped += c
		}
	})
	m.hostMu.RLock()
	defer m.hostMu.RUnlock()
	if m.host != nil {
		st.Addrs = m.host.Addrs()
		for _, p := range m.host.Peers() {
			if p.Connected {
				st.Peers++
			}
		}
		if t := m.host.LastSync(); !t.IsZero() {
			st.LastSync = &t
		}
	}
	return st
}

// freshness reports, for every other org, when this node last heard from
// it and whether its keys are stale now.
func (m *meshNode) freshness(now time.Time) []apiv1.OrgFreshness {
	bound, ages := m.log.Staleness(now)
	out := []apiv1.OrgFreshness{}
	for org, age := range ages {
		f := apiv1.OrgFreshness{Org: org, Stale: age < 0 || age > bound}
		if age >= 0 {
			t := now.Add(-age)
			f.LastHeard = &t
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b apiv1.OrgFreshness) int { return compareStrings(a.Org, b.Org) })
	return out
}

// StaleOrgs implements api.Mesh: the orgs whose keys are refused now.
func (m *meshNode) StaleOrgs() []string {
	var out []string
	for _, f := range m.freshness(m.clock()) {
		if f.Stale {
			out = append(out, f.Org)
		}
	}
	return out
}

// p2pLog adapts the event log to the p2p transport.
type p2pLog struct{ l *mesh.Log }

func (a p2pLog) Deliver(raw []byte) p2p.Result { return toP2P(a.l.Deliver(raw)) }

func (a p2pLog) DeliverBatch(raws [][]byte) []p2p.Result {
	vs := a.l.DeliverBatch(raws)
	out := make([]p2p.Result, len(vs))
	for i, v := range vs {
		out[i] = toP2P(v)
	}
	return out
}

func toP2P(v mesh.Verdict) p2p.Result {
	switch v {
	case mesh.Accept:
		return p2p.Accept
	case mesh.Reject:
		return p2p.Reject
	}
	return p2p.Ignore
}

func (a p2pLog) Summary() map[string]uint64 { return a.l.Summary() }
func (a p2pLog) Events(issuer string, after uint64, max int) ([][]byte, error) {
	return a.l.Events(issuer, after, max)
}

// startHost starts the libp2p host and the reconciler.
func (m *meshNode) startHost(ctx context.Context, reg prometheus.Registerer) error {
	_, pk, err := peerIDOf(m.sign)
	if err != nil {
		return err
	}
	nid := m.log.Network().String()
	listen := m.cfg.P2PListen
	if len(listen) == 0 {
		listen = []string{"/ip4/127.0.0.1/tcp/0"}
	}
	// Dial the genesis and configured bootstrap addresses, and every
	// registered node's recorded addresses: a node that returns from
	// downtime finds its peers even when its bootstrap node is the one that
	// moved.
	boot := append(slices.Clone(m.log.Genesis().Bootstrap), m.cfg.Bootstrap...)
	m.log.View(func(s *mesh.State) {
		for k, n := range s.Nodes {
			if k != m.self && !n.Deregistered {
				boot = append(boot, n.Record.Addrs...)
			}
		}
	})
	slices.Sort(boot)
	boot = slices.Compact(boot)
	h, err := p2p.New(ctx, p2p.Config{
		Identity: pk, Listen: listen, Bootstrap: boot,
		Topic: "/keymesh/" + nid + "/events/1", Protocol: "/keymesh/" + nid + "/sync/1",
		Log: p2pLog{m.log}, AntiEntropyInterval: m.cfg.AntiEntropyInterval,
		Registered: m.registeredPeer, IssuerOf: func(p peer.ID) string {
			k, _ := nodeKeyOf(p)
			return mesh.IssuerID(k)
		},
		Registerer: reg, Logger: m.logger.With("component", "p2p"),
	})
	if err != nil {
		return fmt.Errorf("node: p2p: %w", err)
	}
	m.hostMu.Lock()
	m.host = h
	m.hostMu.Unlock()
	go m.reconcileLoop(ctx)
	go m.dialLoop(ctx)
	go m.checkpointLoop(ctx)
	return nil
}

// nodeKeyOf returns the node key behind a libp2p peer id (the node's
// identity is its Ed25519 signing key).
func nodeKeyOf(p peer.ID) (event.NodeKey, bool) {
	pk, err := p.ExtractPublicKey()
	if err != nil {
		return event.NodeKey{}, false
	}
	raw, err := pk.Raw()
	if err != nil || len(raw) != len(event.NodeKey{}) {
		return event.NodeKey{}, false
	}
	return event.NodeKey(raw), true
}

// registeredPeer reports whether p is a registered node that may act now:
// only those connect, gossip and are served.
func (m *meshNode) registeredPeer(p peer.ID) bool {
	k, ok := nodeKeyOf(p)
	if !ok {
		return false
	}
	var active bool
	m.log.View(func(s *mesh.State) { _, active = s.Active(k, m.clock()) })
	return active
}

// checkpointLoop publishes this node's liveness checkpoint a few times per
// staleness bound. Checkpoints are not stored, so an idle mesh writes
// nothing.
func (m *meshNode) checkpointLoop(ctx context.Context) {
	every := m.cfg.Staleness / 4
	if every <= 0 {
		every = mesh.DefaultStaleness / 4
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if raw := m.log.Checkpoint(); raw != nil {
			m.publish(raw)
		}
		if m.heard != nil {
			_, ages := m.log.Staleness(m.clock())
			for org, age := range ages {
				m.heard.WithLabelValues(org).Set(max(age.Seconds(), -1))
			}
		}
	}
}

// dialLoop keeps this node connected to every registered node it can
// reach, not only to its bootstrap peers: records that arrive later are
// dialled too, with per-peer exponential back-off (2 s up to 60 s), so no
// single node is a point of failure for the spread of events.
func (m *meshNode) dialLoop(ctx context.Context) {
	type backoff struct {
		next time.Time
		wait time.Duration
	}
	tries := map[string]*backoff{}
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.hostMu.RLock()
		h := m.host
		m.hostMu.RUnlock()
		if h == nil {
			return
		}
		connected := map[string]bool{}
		for _, p := range h.Peers() {
			if p.Connected {
				connected[p.ID] = true
			}
		}
		type target struct {
			id    string
			addrs []string
		}
		var targets []target
		m.log.View(func(s *mesh.State) {
			for k, n := range s.Nodes {
				if k != m.self && !n.Deregistered && !connected[n.Record.PeerID] && len(n.Record.Addrs) > 0 {
					targets = append(targets, target{n.Record.PeerID, slices.Clone(n.Record.Addrs)})
				}
			}
		})
		now := time.Now()
		for _, tg := range targets {
			b := tries[tg.id]
			if b == nil {
				b = &backoff{wait: 2 * time.Second}
				tries[tg.id] = b
			}
			if now.Before(b.next) {
				continue
			}
			ok := false
			for _, a := range tg.addrs {
				dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				err := h.Connect(dctx, a)
				cancel()
				if err == nil {
					ok = true
					break
				}
			}
			if ok {
				delete(tries, tg.id)
				continue
			}
			b.next = now.Add(b.wait)
			b.wait = min(2*b.wait, time.Minute)
		}
	}
}

func (m *meshNode) close() {
	m.hostMu.Lock()
	h := m.host
	m.host = nil
	m.hostMu.Unlock()
	if h != nil {
		if err := h.Close(); err != nil {
			m.logger.Warn("close p2p host", "err", err)
		}
	}
	m.kemPriv.Clear()
}
