// Package member is a node's membership of a keymesh network: it turns
// administrative changes (create, rotate, change state, destroy, grant,
// revoke, register) into signed events on the node's log (package mesh),
// hands them to a publisher, and reconciles the node's vault with the
// fold — accepting versions wrapped for this node (checked against their
// commitments), forgetting versions it is no longer entitled to,
// destroying and acknowledging, sharing versions with newly entitled
// nodes. It also publishes the node's liveness checkpoints.
//
// It knows nothing of libp2p or HTTP: the publisher, the clock and what it
// reports of the network (peers, addresses) are injected ([Config]), so it
// is unit-tested on kv.Mem with a fake publisher. Start with [New], then
// [Member.Run].
package member

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/mesh"
	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault"
	"github.com/keymesh/keymesh/vault/transport"
)

// Errors callers branch on.
var (
	// ErrNotOwner is returned for a change to a key that only nodes of its
	// owner organisation may make.
	ErrNotOwner = errors.New("only nodes of the key's owner organisation may change it")
	// ErrRegistration is returned for a node record or deregistration that
	// is refused (bad signature, another network, not an admin of the org,
	// another node's record).
	ErrRegistration = errors.New("registration refused")
)

// shareAfter is how long a node that holds a version waits for the
// responsible holder to share it with a newly entitled node before it
// shares it itself.
const shareAfter = 2 * time.Second

// Peer is what the network layer reports of one connected or known peer.
type Peer struct {
	Connected bool
	LastSeen  time.Time
}

// Network is what the member reports of the node's transport; the node
// composes it from its libp2p host (nil: no host yet, or none).
type Network interface {
	// Peers maps peer ids (as in node records) to what is known of them.
	Peers() map[string]Peer
	// Addrs are the node's own listen addresses.
	Addrs() []string
	// LastSync is the end of the last anti-entropy round.
	LastSync() time.Time
}

// Config is what a Member needs.
type Config struct {
	Log   *mesh.Log
	Vault *vault.Vault
	// Org is this node's organisation; PeerID its libp2p peer id (for its
	// record); KEMKey its KEM public key (for its record).
	Org    string
	PeerID string
	KEMKey []byte
	// Grace is how far in the future rotated versions activate.
	Grace time.Duration
	// Publish sends a raw event or checkpoint to the network; it must not
	// block for long. Nil drops them (anti-entropy delivers events later).
	Publish func(raw []byte)
	// Network reports peers and addresses (nil: none).
	Network func() Network
	// Clock is the wall clock (default time.Now).
	Clock func() time.Time
	// CheckpointEvery is the checkpoint period (default a quarter of the
	// log's staleness bound).
	CheckpointEvery time.Duration
	// OnFreshness is called after each checkpoint with how long ago this
	// node last heard from each other org (negative: never), for metrics.
	OnFreshness func(ages map[string]time.Duration)
	Logger      *slog.Logger
}

// Member is a node's membership of a network. It is safe for concurrent
// use.
type Member struct {
	cfg    Config
	log    *mesh.Log
	vault  *vault.Vault
	self   network.NodeKey
	org    string
	grace  time.Duration
	clock  func() time.Time
	logger *slog.Logger

	mu           sync.Mutex // serialises changes and reconciliation
	missingSince map[string]time.Time
	// waiting holds keys with versions to share later; reconcileAll asks
	// the next reconciliation for every key (guarded by mu).
	waiting      map[string]bool
	reconcileAll bool
	// failed holds the keys the last reconciliation could not bring the
	// vault in line with, and why (guarded by mu), for followed.
	failed map[string]error
	// lastCheckpoint is when this node last published a checkpoint (Unix
	// nanoseconds).
	lastCheckpoint atomic.Int64
}

// New returns the member of cfg.Log's network.
func New(cfg Config) *Member {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Publish == nil {
		cfg.Publish = func([]byte) {}
	}
	if cfg.Grace <= 0 {
		cfg.Grace = vault.DefaultGrace
	}
	return &Member{
		cfg: cfg, log: cfg.Log, vault: cfg.Vault, self: cfg.Log.Self(), org: cfg.Org, grace: cfg.Grace,
		clock: cfg.Clock, logger: cfg.Logger, missingSince: map[string]time.Time{},
	}
}

// Logger returns the member's logger.
func (m *Member) Logger() *slog.Logger { return m.logger }

// Log returns the member's event log.
func (m *Member) Log() *mesh.Log { return m.log }

func (m *Member) publish(raw []byte) { m.cfg.Publish(raw) }

func (m *Member) issue(kind event.Kind, payload any, attachments ...[]byte) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("node: encode %s: %w", kind, err)
	}
	is, err := m.log.Issue(kind, b, attachments...)
	if err != nil {
		return err
	}
	m.published(is)
	return nil
}

// issueGrant issues grant g, which observes every revocation of its pair
// that this node holds: its event follows their chains (mesh.Log.IssueWith),
// and Observed lists only those its reach misses (none, unless their issuer
// is tainted or they predate positions). It returns g as issued.
func (m *Member) issueGrant(g policy.Grant) (policy.Grant, error) {
	pol := m.log.Policy()
	is, err := m.log.IssueWith(event.KindGrant, pol.RevocationChains(g.Key, g.Party), func(reach policy.Reach) ([]byte, error) {
		g.Observed = pol.Unobserved(g.Key, g.Party, reach)
		if err := g.Validate(); err != nil {
			return nil, err
		}
		b, err := json.Marshal(g)
		if err != nil {
			return nil, fmt.Errorf("node: encode grant: %w", err)
		}
		return b, nil
	})
	if err != nil {
		return policy.Grant{}, err
	}
	m.published(is)
	return g, nil
}

// published publishes an event this node issued.
func (m *Member) published(is mesh.Issued) {
	m.publish(is.Raw)
	// A checkpoint right after: the other orgs can vouch for this change
	// (and everything before it) at once, not only at the next tick.
	if cp := m.log.Checkpoint(); cp != nil {
		m.publish(cp)
		m.lastCheckpoint.Store(m.clock().UnixNano())
	}
}

// checkOwner returns the key as the network knows it, and an error unless
// this node may change it.
func (m *Member) checkOwner(s *mesh.State, name string) (*mesh.Key, error) {
	k, ok := s.Keys[name]
	if !ok || !k.Created {
		return nil, fmt.Errorf("%w: %q", vault.ErrKeyNotFound, name)
	}
	if k.Destroyed {
		return nil, fmt.Errorf("%w: %q", vault.ErrKeyDestroyed, name)
	}
	if k.Owner != m.org {
		return nil, fmt.Errorf("%w: %q belongs to %s", ErrNotOwner, name, k.Owner)
	}
	return k, nil
}

// recipients returns the vault recipients for version n of name: every
// given node that is active now, with its KEM key and the binding.
func (m *Member) recipients(s *mesh.State, name string, n uint32, nodes []network.NodeKey) ([]vault.Recipient, []network.NodeKey) {
	var out []vault.Recipient
	var keys []network.NodeKey
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
func (m *Member) newVersion(name string, activateAt time.Time) error {
	return m.issueVersion(name, activateAt, false)
}

// issueVersion is newVersion; floor marks a version an org revocation
// rotated to (the endorsement floor). m.mu is held.
func (m *Member) issueVersion(name string, activateAt time.Time, floor bool) error {
	var kvp event.KeyVersion
	var rs []vault.Recipient
	var keys []network.NodeKey
	m.log.View(func(s *mesh.State) {
		k := s.Keys[name]
		kvp = event.KeyVersion{Key: name, Version: uint32(len(k.Versions)) + 1, ActivateAt: activateAt.UTC(), Floor: floor}
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

func (m *Member) view(name string) (*mesh.Key, error) {
	var k *mesh.Key
	var err error
	m.log.View(func(s *mesh.State) { k, err = m.checkOwner(s, name) })
	return k, err
}

// issueCreate issues the KeyCreate of a new key this node's org owns.
// m.mu is held.
func (m *Member) issueCreate(name string, o vault.CreateOptions) error {
	if owner, ok := m.log.Genesis().KeyOwner(name); !ok || owner != m.org {
		if !ok {
			owner = "no organisation (the genesis assigns its namespace to none)"
		}
		return fmt.Errorf("%w: %q: its namespace belongs to %s", ErrNotOwner, name, owner)
	}
	var exists bool
	m.log.View(func(s *mesh.State) { k, ok := s.Keys[name]; exists = ok && k.Created })
	if exists {
		return fmt.Errorf("%w: %q", vault.ErrKeyExists, name)
	}
	return m.issue(event.KindKeyCreate, event.KeyCreate{Key: name, Deterministic: o.Deterministic, Exportable: o.Exportable, PreActive: o.PreActive})
}

// CreateKey implements kms.Keys.
func (m *Member) CreateKey(name string, o vault.CreateOptions) (vault.KeyInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.issueCreate(name, o); err != nil {
		return vault.KeyInfo{}, err
	}
	if err := m.newVersion(name, m.clock()); err != nil {
		return vault.KeyInfo{}, err
	}
	m.reconcileLocked(false)
	return m.followed(name)
}

// RotateKey implements api.Manager: the new version activates after the
// grace, by which time every holder has it.
func (m *Member) RotateKey(name string, activateIn *time.Duration) (vault.KeyInfo, error) {
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
	return m.followed(name)
}

// AutoRotate is the vault's rotate hook: a version reached its encryption
// threshold, so the member rotates the key (in the background).
func (m *Member) AutoRotate(name string) {
	go func() {
		if _, err := m.RotateKey(name, nil); err != nil {
			m.logger.Error("automatic rotation", "key", name, "err", err)
		}
	}()
}

// SetKeyState implements api.Manager.
func (m *Member) SetKeyState(name string, to vault.State) (vault.KeyInfo, error) {
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
	return m.followed(name)
}

// SetMinDecryptionVersion implements api.Manager.
func (m *Member) SetMinDecryptionVersion(name string, n uint32) (vault.KeyInfo, error) {
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
	return m.followed(name)
}

// DestroyKey implements api.Manager: every holder deletes the key and
// acknowledges with an event; `keys show` lists who has not yet.
func (m *Member) DestroyKey(name string) (vault.KeyInfo, error) {
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
	return m.followed(name)
}

// followed returns the vault's view of name after a change to it. If the
// vault could not follow the change (a full disk: kv.ErrNoSpace), that is
// the error: the change is in the network's log, and this node's vault
// catches up once it can write again. m.mu is held.
func (m *Member) followed(name string) (vault.KeyInfo, error) {
	k, err := m.vault.Get(name)
	if ferr := m.failed[name]; ferr != nil {
		return vault.KeyInfo{}, fmt.Errorf("member: %q: the vault could not follow the change yet: %w", name, ferr)
	}
	return k, err
}

// newID returns a fresh grant or revocation id, scoped by this node's
// prefix (mesh.IDPrefix).
func (m *Member) newID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return mesh.IDPrefix(m.self) + hex.EncodeToString(b)
}

// Grant implements api.Manager. A grant to an org: party makes that org's
// nodes holders: this node shares every version with them at once.
func (m *Member) Grant(g policy.Grant) (policy.Grant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.view(g.Key); err != nil {
		return policy.Grant{}, err
	}
	g.ID = m.newID()
	g.IssuedAt = m.clock().UTC()
	g.Observed = nil
	if g.Custodian == "" && g.Party.Kind() != policy.KindOrg {
		g.Custodian = m.org
	}
	g, err := m.issueGrant(g) // validates g before anything is signed
	if err != nil {
		return policy.Grant{}, err
	}
	m.reconcileLocked(g.Party.Kind() == policy.KindOrg)
	return g, nil
}

// Revoke implements api.Manager. Revoking an org: party rotates the key at
// once: the new version, active immediately, goes to the remaining holders
// only, and the revoked org's honest nodes forget what they held.
func (m *Member) Revoke(key string, party policy.Party, issuer string) (policy.Revocation, int, error) {
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
	ended := m.log.Policy().InForceAt(key, party, now) // the pair's live grants, not the key's history
	if err := m.issue(event.KindRevoke, r); err != nil {
		return policy.Revocation{}, 0, err
	}
	if party.Kind() == policy.KindOrg {
		if err := m.issueVersion(key, now, true); err != nil {
			return policy.Revocation{}, 0, fmt.Errorf("node: rotate after revoking %s: %w", party, err)
		}
	}
	m.reconcileLocked(false)
	return r, ended, nil
}

// Policy implements api.Manager.
func (m *Member) Policy() *policy.State { return m.log.Policy() }

// DescribeKey implements api.KeyDescriber.
func (m *Member) DescribeKey(name string) (holders, pending []string) {
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
func (m *Member) reconcileLoop(ctx context.Context) {
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
	floor     uint32 // endorsement floor
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
	missingFor []network.NodeKey
	first      bool // this node is the first (smallest key) active holder
}

// reconcileLocked brings the vault in line with the fold. m.mu is held.
// forceShare makes this node share missing versions at once.
func (m *Member) reconcileLocked(forceShare bool) {
	m.failed = map[string]error{}
	var names []string
	m.log.View(func(s *mesh.State) {
		dirty, all := s.TakeDirty()
		if m.waiting == nil {
			m.waiting = map[string]bool{}
			all = true // the first reconciliation after start covers every key
		}
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
	})
	slices.Sort(names)
	names = slices.Compact(names)
	// Keys are planned and reconciled reconcileChunk at a time: the plans
	// of every key at once (the first reconciliation after a start, and
	// every fullReconcile) held ~850 bytes per key, 85 MB at 100k keys,
	// and the log's lock for as long as planning them all took. A key's
	// plan needs only that key's state, so planning chunk by chunk, each
	// under the lock, changes nothing but when each key's state is read.
	for len(names) > 0 {
		chunk := names[:min(reconcileChunk, len(names))]
		names = names[len(chunk):]
		m.reconcileKeys(chunk, forceShare)
	}
}

// reconcileChunk is the limit of keys reconcileLocked plans at once.
const reconcileChunk = 512

// reconcileKeys plans the keys names under the log's lock, then
// reconciles each. m.mu is held.
func (m *Member) reconcileKeys(names []string, forceShare bool) {
	var plans []keyPlan
	now := m.clock()
	m.log.View(func(s *mesh.State) {
		for _, name := range names {
			k := s.Keys[name]
			delete(m.waiting, name)
			if k == nil || !k.Created {
				continue
			}
			p := keyPlan{
				meta: vault.KeyMeta{Name: name, Owner: k.Owner, Deterministic: k.Deterministic, Exportable: k.Exportable,
					State: k.State, MinDecryptionVersion: min(k.MinDecrypt, uint32(max(len(k.Versions), 1))), Created: k.CreatedAt},
				floor:     k.EndorseFloor,
				destroyed: k.Destroyed, holder: k.Holders[m.self], acked: k.Acks[m.self],
				entitled: s.Entitled(name, m.self),
			}
			recipients := s.Recipients(name, now)
			for _, v := range k.Versions {
				vp := versionPlan{n: v.N, activateAt: v.ActivateAt, check: v.Check}
				// The blobs are read from the store only for a version the
				// vault does not hold yet (reconcileKey accepts no other):
				// the first reconciliation after a start covers every key.
				// The vault's locks are leaves: taking them under the log's
				// is safe.
				if p.entitled && !p.destroyed && !m.vault.Holds(name, v.N) {
					for _, w := range s.CopiesFor(name, v, m.self) {
						if w.Blob != nil { // nil until a copy of the event with the blob arrives
							vp.mine = append(vp.mine, w.Blob)
						}
					}
				}
				var holders []network.NodeKey
				for h := range v.Recipients() { // sorted
					if _, ok := s.Active(h, now); ok && s.HasCopies(name, v, h) {
						holders = append(holders, h)
					}
				}
				vp.first = len(holders) > 0 && holders[0] == m.self || len(holders) == 0 && v.Creator == m.self
				var lacking []network.NodeKey
				for _, r := range recipients {
					if !s.HasCopies(name, v, r) {
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
		err := m.reconcileKey(p, forceShare)
		if err != nil {
			m.logger.Warn("reconcile key", "key", p.meta.Name, "err", err)
			m.waiting[p.meta.Name] = true // try again at the next tick
		}
		if err != nil {
			m.failed[p.meta.Name] = err
		}
	}
}

func (m *Member) reconcileKey(p keyPlan, forceShare bool) error {
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
	if p.floor > 0 {
		// Every node, not only the revoking one: endorsers on any org's
		// node select the same version.
		if err := m.vault.SetEndorsementFloor(name, p.floor); err != nil {
			return err
		}
	}
	return m.shareAll(name, p.versions, forceShare)
}

// acceptVersion keeps the first candidate copy whose material matches the
// version's commitment; forged or corrupted shares are skipped.
func (m *Member) acceptVersion(name string, v versionPlan) error {
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
func (m *Member) shareAll(name string, versions []versionPlan, force bool) error {
	now := m.clock()
	var shares []event.Share
	var blobs [][]byte
	for _, v := range versions {
		if len(v.missing) == 0 || !m.vault.Holds(name, v.n) {
			continue
		}
		var due []vault.Recipient
		var dueFor []network.NodeKey
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

// Identity is what a node tells its operator for registration.
type Identity struct {
	Org, NetworkID, PeerID, SignKey string
	KEMKey                          []byte
	Addrs                           []string
	Registered                      bool
}

func (m *Member) net() Network {
	if m.cfg.Network == nil {
		return nil
	}
	return m.cfg.Network()
}

// Identity returns this node's identity; Registered says whether its
// record is in force.
func (m *Member) Identity() Identity {
	id := Identity{Org: m.org, NetworkID: m.log.Network().String(), PeerID: m.cfg.PeerID,
		SignKey: m.self.Hex(), KEMKey: m.cfg.KEMKey, Addrs: []string{}}
	if n := m.net(); n != nil {
		id.Addrs = n.Addrs()
	}
	m.log.View(func(s *mesh.State) { _, id.Registered = s.Active(m.self, m.clock()) })
	return id
}

// Register publishes this node's admin-signed record (JSON), which
// registers it (ErrRegistration if refused).
func (m *Member) Register(raw []byte) error {
	r, err := network.DecodeNodeRecord(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrRegistration, err)
	}
	if r.SignKey != m.self {
		return fmt.Errorf("%w: the record is for another node (sign key %s)", ErrRegistration, r.SignKey)
	}
	if err := m.log.Genesis().VerifyNodeRecord(r); err != nil {
		return fmt.Errorf("%w: %v", ErrRegistration, err)
	}
	if r.VerifyAdmin(m.log.Network()) != nil {
		return fmt.Errorf("%w: the admin signature does not verify for this network", ErrRegistration)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.issue(event.KindNodeRecord, r); err != nil {
		return err
	}
	m.reconcileLocked(false)
	return nil
}

// Deregister publishes an admin-signed deregistration (JSON): a causal
// cut of the node it names (ErrRegistration if refused).
func (m *Member) Deregister(raw []byte) error {
	d, err := network.DecodeDeregister(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrRegistration, err)
	}
	if err := m.log.Genesis().VerifyDeregister(d); err != nil {
		return fmt.Errorf("%w: %v", ErrRegistration, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.issue(event.KindDeregister, d)
}

// NodeInfo is a node of the network as this node knows it.
type NodeInfo struct {
	Org, PeerID, SignKey string
	Addrs                []string
	NotAfter             time.Time
	Deregistered         bool
	LastSeq              *uint64 // the cut of a deregistered node
	Events               uint64  // how many of its events this node holds
	Tainted, Self        bool
	Connected            bool
	LastSeen             *time.Time
}

// Nodes lists the network's nodes, sorted by org and key.
func (m *Member) Nodes() []NodeInfo {
	peers := map[string]Peer{}
	if n := m.net(); n != nil {
		peers = n.Peers()
	}
	var out []NodeInfo
	heights := m.log.Summary()
	m.log.View(func(s *mesh.State) {
		for k, n := range s.Nodes {
			mn := NodeInfo{
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
	slices.SortFunc(out, func(a, b NodeInfo) int {
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

// Status is the mesh part of a node's status.
type Status struct {
	Peers, Events, Pending, Nodes, Dropped int
	LastSync                               *time.Time
	Addrs                                  []string
	Staleness                              time.Duration
	Orgs                                   []OrgFreshness
}

// OrgFreshness is how recently this node heard from another org.
type OrgFreshness struct {
	Org       string
	LastHeard *time.Time
	Stale     bool
}

// Status reports the log, the peers and each other org's freshness.
func (m *Member) Status() Status {
	now := m.clock()
	st := Status{Events: m.log.Height(), Pending: m.log.Pending(), Addrs: []string{}, Orgs: m.freshness(now)}
	st.Staleness, _ = m.log.Staleness(now)
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
	if n := m.net(); n != nil {
		st.Addrs = n.Addrs()
		for _, p := range n.Peers() {
			if p.Connected {
				st.Peers++
			}
		}
		if t := n.LastSync(); !t.IsZero() {
			st.LastSync = &t
		}
	}
	return st
}

// freshness reports, for every other org, when this node last heard from
// it and whether its keys are stale now.
func (m *Member) freshness(now time.Time) []OrgFreshness {
	bound, ages := m.log.Staleness(now)
	out := []OrgFreshness{}
	for org, age := range ages {
		f := OrgFreshness{Org: org, Stale: age < 0 || age > bound}
		if age >= 0 {
			t := now.Add(-age)
			f.LastHeard = &t
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b OrgFreshness) int { return compareStrings(a.Org, b.Org) })
	return out
}

// StaleOrgs lists the orgs whose keys are refused now (stale_policy).
func (m *Member) StaleOrgs() []string {
	var out []string
	for _, f := range m.freshness(m.clock()) {
		if f.Stale {
			out = append(out, f.Org)
		}
	}
	return out
}

// Run reconciles and publishes checkpoints until ctx ends.
func (m *Member) Run(ctx context.Context) {
	go m.checkpointLoop(ctx)
	m.reconcileLoop(ctx)
}

// Reconcile brings the vault in line with the fold now (every key).
func (m *Member) Reconcile() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reconcileAll = true
	m.reconcileLocked(false)
}

// checkpointLoop publishes this node's liveness checkpoint a few times per
// staleness bound. Checkpoints are not stored, so an idle mesh writes
// nothing.
func (m *Member) checkpointLoop(ctx context.Context) {
	every := m.cfg.CheckpointEvery
	if every <= 0 {
		bound, _ := m.log.Staleness(m.clock())
		every = bound / 3
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// One checkpoint per period is enough; a busy node's event-driven
		// ones count.
		if m.clock().Sub(time.Unix(0, m.lastCheckpoint.Load())) >= every/2 {
			if raw := m.log.Checkpoint(); raw != nil {
				m.publish(raw)
				m.lastCheckpoint.Store(m.clock().UnixNano())
			}
		}
		if m.cfg.OnFreshness != nil {
			_, ages := m.log.Staleness(m.clock())
			m.cfg.OnFreshness(ages)
		}
	}
}
