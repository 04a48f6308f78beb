// Package node is keymesh's composition root: it opens the store, unseals
// the vault, loads policy, tokens and the audit log, and serves the REST
// API. Start with Init (first run) and Open, then Listen and Serve; Run does
// all of it for keymeshd.
//
// A data directory holds:
//
//	db/          the badger store: sealed key versions, grants, hashed tokens (every write fsynced)
//	auditlog/    the hash-chained audit log: append-only segment files (0600, see
//	             package audit), each record tagged under the vault's key; an entry
//	             is written (and survives a process kill) before the request it
//	             records is answered, and fdatasynced within AuditSyncInterval
//	master.key   the 32-byte master secret (mode 0600), unless a passphrase is used
//	genesis.json the network definition the node belongs to
//	admin.key    a network of one's org admin key (0600; see solo.go)
//	admin.token  the admin token, in dev mode or when init is asked to write it (0600)
//
// Keep master.key off the machine's backups of db/, or use a passphrase: the
// store alone reveals no key, token or field value.
package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/kms"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/kv/badgerstore"
	"github.com/keymesh/keymesh/mesh"
	"github.com/keymesh/keymesh/mesh/member"
	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/node/api"
	"github.com/keymesh/keymesh/node/ethid"
	"github.com/keymesh/keymesh/node/fabricid"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/token"
	"github.com/keymesh/keymesh/vault"
	"github.com/keymesh/keymesh/vault/envelope"
)

// Version is the keymesh version reported by /v1/status.
var Version = "0.2.0-dev"

// AuditSyncInterval bounds how long an audit entry that was written (and
// so survives a crash of the process) waits for its fsync (and so survives a
// power loss). Requests wait for the write, not the fsync: auditing then
// costs microseconds, not a disk flush, per request.
const AuditSyncInterval = 5 * time.Millisecond

// ErrNotInitialized is returned by Open for a data directory that has not
// been through Init.
var ErrNotInitialized = errors.New("node: data directory is not initialised; run `keymesh init --data DIR` (or start keymeshd with --dev)")

// ErrAlreadyInitialized is returned by Init for a data directory that holds
// a node already.
var ErrAlreadyInitialized = errors.New("node: data directory is already initialised")

// AdminParty is the party of the admin token: it manages keys, grants and
// tokens, and reads data only where a grant names it.
const AdminParty = policy.Party("token:admin")

// identity is stored under "node/identity".
type identity struct {
	NodeID    string    `json:"node_id"`
	Org       string    `json:"org"`
	NetworkID string    `json:"network_id"`
	Created   time.Time `json:"created"`
	SignKey   string    `json:"sign_key"` // Ed25519 public key (hex); the private key is sealed in the vault
	KEMKey    []byte    `json:"kem_key"`  // HPKE public key; the private key is sealed in the vault
}

var identityKey = []byte("node/identity")

func dbDir(data string) string { return filepath.Join(data, "db") }

// KeyTableFile holds the per-version wrapping salts that destroy erases
// (see package vault, "Crypto-shredding"). Back it up with the store: a
// store without its key table opens no key.
func KeyTableFile(data string) string { return filepath.Join(data, "keytable") }

// vaultStoreOptions are the vault options every opening of a node's store
// needs: the key table, and the prefixes of tokens, grants and the node's
// own records (identity, audit format), whose records are summarised
// against rollback and removal like the vault's own.
func vaultStoreOptions(data string) []vault.Option {
	return []vault.Option{vault.WithKeyTable(KeyTableFile(data)), vault.WithSummarised("token/", "policy/", "node/")}
}

// GenesisFile is where a mesh node keeps its copy of the network
// definition.
func GenesisFile(data string) string { return filepath.Join(data, "genesis.json") }

// AdminTokenFile is where dev mode (and init, when asked) writes the admin
// token.
func AdminTokenFile(data string) string { return filepath.Join(data, "admin.token") }

func (c *Config) master() (vault.Master, error) {
	if c.PassphraseFile != "" {
		m, err := vault.ReadPassphraseFile(c.PassphraseFile)
		if err != nil {
			return vault.Master{}, fmt.Errorf("node: %w", err)
		}
		if m.Len() < 12 {
			m.Clear()
			return vault.Master{}, errors.New("node: passphrase is shorter than 12 characters")
		}
		return m, nil
	}
	return vault.ReadKeyFile(c.MasterKeyFile)
}

// Initialized reports whether data holds an initialised node.
func Initialized(data string) bool {
	_, err := os.Stat(filepath.Join(dbDir(data), "MANIFEST"))
	return err == nil
}

// Init creates a node in cfg.DataDir: the directory (0700), the master key
// file (unless a passphrase is configured), the store with its seal record
// and identity, and the admin token, whose secret it returns. The secret is
// shown once; Init writes it to adminTokenFile (0600) when that is not "".
func Init(cfg Config, adminTokenFile string) (string, error) {
	cfg.Defaults()
	if cfg.DataDir == "" {
		return "", errors.New("node: init: a data directory is required")
	}
	if Initialized(cfg.DataDir) {
		return "", fmt.Errorf("%w: %s", ErrAlreadyInitialized, cfg.DataDir)
	}
	if _, err := policy.ParseParty("org:" + cfg.Org); err != nil {
		return "", fmt.Errorf("node: init: organisation id %q is not valid", cfg.Org)
	}
	var genesis *network.Genesis
	if cfg.Genesis != "" {
		g, err := network.LoadGenesis(cfg.Genesis)
		if err != nil {
			return "", fmt.Errorf("node: init: %w", err)
		}
		if _, ok := g.Org(cfg.Org); !ok {
			return "", fmt.Errorf("node: init: organisation %q is not in the genesis of network %q", cfg.Org, g.Network)
		}
		genesis = g
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return "", fmt.Errorf("node: init: %w", err)
	}
	nodeID, err := newNodeID()
	if err != nil {
		return "", err
	}
	created := time.Now().UTC()
	if genesis != nil {
		err = writeGenesis(cfg.DataDir, genesis)
	} else {
		// A network of one (solo.go): its genesis and node-local admin key.
		genesis, err = newSoloGenesis(cfg, nodeID, created)
	}
	if err != nil {
		return "", fmt.Errorf("node: init: %w", err)
	}
	if cfg.PassphraseFile == "" && !vault.KeyFileExists(cfg.MasterKeyFile) {
		if err := vault.WriteKeyFile(cfg.MasterKeyFile, nil); err != nil {
			return "", fmt.Errorf("node: init: %w", err)
		}
	}
	master, err := cfg.master()
	if err != nil {
		return "", err
	}
	defer master.Clear()
	store, err := badgerstore.Open(dbDir(cfg.DataDir), nil)
	if err != nil {
		return "", err
	}
	defer store.Close()
	vopts := vaultStoreOptions(cfg.DataDir)
	if cfg.PBKDF2Iterations > 0 {
		vopts = append(vopts, vault.WithPBKDF2Iterations(cfg.PBKDF2Iterations))
	}
	v, err := vault.Open(store, master, vopts...)
	if err != nil {
		return "", err
	}
	defer v.Close()
	astore := v.Store() // identity and tokens are authenticated records too
	// The node's signing key (its libp2p identity) and its KEM key for key
	// transport, made and sealed inside the vault: only their public halves
	// come out.
	signPub, kemPub, err := v.GenerateNodeKeys()
	if err != nil {
		return "", fmt.Errorf("node: init: %w", err)
	}

	nid := genesis.ID()
	id := identity{NodeID: nodeID, Org: cfg.Org, Created: created, SignKey: hex.EncodeToString(signPub), KEMKey: kemPub,
		NetworkID: hex.EncodeToString(nid[:])}
	b, _ := json.Marshal(id)
	if err := astore.Update(func(tx kv.Txn) error { return tx.Set(identityKey, b) }); err != nil {
		return "", fmt.Errorf("node: init: write identity: %w", err)
	}

	tokens, err := token.Open(astore)
	if err != nil {
		return "", err
	}
	secret, _, err := tokens.Create(AdminParty, token.RoleAdmin, "admin (created at init)", 0)
	if err != nil {
		return "", err
	}
	if adminTokenFile != "" {
		if err := os.WriteFile(adminTokenFile, []byte(secret+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("node: init: write admin token: %w", err)
		}
	}
	return secret, nil
}

// Node is a running keymesh node.
type Node struct {
	cfg      Config
	logger   *slog.Logger
	db       *badgerstore.DB // the raw store: only the vault writes through it
	store    kv.Store        // db as the vault authenticates it (vault.Store)
	vault    *vault.Vault
	tokens   *token.Registry
	audit    *audit.Log
	core     *kms.Service
	api      *api.Server
	registry *prometheus.Registry
	id       identity
	mesh     *memberHost
	kmip     *kmipFront // node/kmip.go; nil unless configured

	ln     net.Listener
	srv    *http.Server
	ready  atomic.Bool
	closed atomic.Bool
}

// Open opens an initialised node in cfg.DataDir.
func Open(cfg Config, logger *slog.Logger) (*Node, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.FIPS {
		logFIPS(logger)
	}
	if !Initialized(cfg.DataDir) {
		return nil, ErrNotInitialized
	}
	master, err := cfg.master()
	if err != nil {
		return nil, err
	}
	defer master.Clear()
	n := &Node{cfg: cfg, logger: logger, registry: prometheus.NewRegistry()}
	ok := false
	defer func() {
		if !ok {
			n.closeAll()
		}
	}()
	reserve := uint64(cfg.DiskReserveMB) << 20
	if n.db, err = badgerstore.Open(dbDir(cfg.DataDir), logger, badgerstore.WithReserve(reserve)); err != nil {
		return nil, err
	}
	raw, err := n.db.Get(identityKey)
	if err != nil {
		return nil, fmt.Errorf("node: read identity: %w", err)
	}
	// Unauthenticated here: it may carry the tag the vault checks below.
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&n.id); err != nil {
		return nil, fmt.Errorf("node: decode identity: %w", err)
	}
	var nid envelope.NetworkID
	if b, err := hex.DecodeString(n.id.NetworkID); err != nil || len(b) != len(nid) {
		return nil, errors.New("node: identity: bad network id")
	} else {
		copy(nid[:], b)
	}
	vopts := append(vaultStoreOptions(cfg.DataDir),
		// openMesh below reads every event and attachment with a check
		// of its tag (OpenLog, before the node serves): the vault's check
		// of the store leaves them to it, so each is checked once.
		vault.WithCheckedOnLoad(mesh.LoadChecked()...),
		vault.WithNetwork(nid), vault.WithOwner(n.id.Org),
		vault.WithGrace(cfg.RotationGrace),
		vault.WithRotation(cfg.RotateAfter, vault.DefaultHardLimit),
		vault.WithLogger(logger.With("component", "vault")),
		vault.WithClock(cfg.Clock),
	)
	// The hook runs only once the mesh is open: a version cannot reach
	// its threshold before the node serves.
	vopts = append(vopts, vault.WithRotateHook(func(k string) {
		if n.mesh != nil {
			n.mesh.member.AutoRotate(k)
		}
	}))
	n.vault, err = vault.Open(n.db, master, vopts...)
	if err != nil {
		return nil, err
	}
	n.store = n.vault.Store()
	// The identity was read before the vault could authenticate it (its
	// network id is a vault option): read it again, authenticated.
	authID, err := n.store.Get(identityKey)
	if err != nil {
		return nil, fmt.Errorf("node: read identity: %w", err)
	}
	var checked identity
	if err := json.Unmarshal(authID, &checked); err != nil || !reflect.DeepEqual(checked, n.id) {
		return nil, fmt.Errorf("node: identity record: %w", kv.ErrTampered)
	}
	genesis, err := n.loadGenesis(nid)
	if err != nil {
		return nil, err
	}
	if n.mesh, err = n.openMesh(genesis); err != nil {
		return nil, err
	}
	if err := n.registerSolo(n.mesh.member, genesis); err != nil {
		return nil, err
	}
	if st, _, err := upgradeState(n.store); err != nil {
		return nil, err
	} else if st == "pending" {
		if err := n.finishUpgrade(n.mesh.member, logger.With("component", "upgrade")); err != nil {
			return nil, err
		}
	}
	if n.tokens, err = token.Open(n.store); err != nil {
		return nil, err
	}
	if n.audit, err = n.openAuditLog(reserve); err != nil {
		return nil, err
	}
	var fabricOpts []fabricid.Option
	if cfg.FabricProposalWindow != 0 {
		fabricOpts = append(fabricOpts, fabricid.WithProposalWindow(cfg.FabricProposalWindow))
	}
	fabric, err := fabricid.Load(cfg.FabricMSPs, fabricOpts...)
	if err != nil {
		return nil, fmt.Errorf("node: fabric_msps: %w", err)
	}
	ethNonces, err := ethid.OpenStoreNonces(n.store, 0, 0, cfg.Clock())
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.registerStoreMetrics()
	items := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keymesh_crypto_items_total", Help: "Fields encrypted or decrypted, by operation and result.",
	}, []string{"op", "result"})
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keymesh_policy_decisions_total", Help: "Policy decisions by operation and outcome.",
	}, []string{"op", "outcome"})
	n.registry.MustRegister(items, decisions)
	n.core = kms.New(kms.Config{
		Vault: n.vault, Keys: n.mesh.member, Audit: n.audit, Reason: api.ErrorCode, KMIP: n.kmipObject, Clock: cfg.Clock,
		OnDecision: func(op string, allowed bool) {
			outcome := "deny"
			if allowed {
				outcome = "allow"
			}
			decisions.WithLabelValues(op, outcome).Inc()
		},
		OnItems: func(op string, ok, failed int) {
			items.WithLabelValues(op, "ok").Add(float64(ok))
			items.WithLabelValues(op, "error").Add(float64(failed))
		},
	})
	n.api = api.New(api.Config{
		Core: n.core, Mesh: n.mesh.member, Tokens: n.tokens, Audit: n.audit,
		Info: api.Info{
			Node: n.id.NodeID, Org: n.id.Org, NetworkID: n.id.NetworkID,
			Version: Version, StartedAt: time.Now().UTC(), FIPS: cfg.FIPS,
		},
		Logger:   logger.With("component", "api"),
		Registry: n.registry,
		Ready:    n.ready.Load,
		NotReady: func() error { return errors.Join(n.db.CheckSpace(), n.audit.CheckSpace()) },
		Fabric:   fabric,
		TokenTTL: cfg.TokenTTL,
		Clock:    cfg.Clock,

		EthNonces: ethNonces, // wallet nonces, durable in the node's store
	})
	if err := n.openKMIP(); err != nil {
		return nil, err
	}
	ok = true
	return n, nil
}

// loadGenesis reads the node's genesis.json; a data directory of a
// standalone keymesh (no genesis) is upgraded to a network of one
// (solo.go).
func (n *Node) loadGenesis(nid envelope.NetworkID) (*network.Genesis, error) {
	path := GenesisFile(n.cfg.DataDir)
	_, upgraded, err := upgradeState(n.store)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return n.startUpgrade()
	}
	g, err := network.LoadGenesis(path)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	// A node upgraded from standalone keeps its envelopes' network id.
	if g.ID() != network.NetworkID(nid) && upgraded != g.ID().String() {
		return nil, errors.New("node: genesis.json does not match the network this node was initialised for")
	}
	return g, nil
}

// auditFormatKey, in the main store, says where and how the audit log is
// kept (node/auditlog.go). It lives under the summarised "node/" prefix,
// so removing it (to have a forged or emptied log adopted) is noticed like
// any removal.
var auditFormatKey = []byte("node/audit-format")

// spaceChecker is a store that refuses writes under a free-space reserve.
type spaceChecker interface {
	FreeBytes() (uint64, error)
	CheckSpace() error
	RefusedWrites() uint64
}

// registerStoreMetrics exports, per store, the free disk space, whether it
// is under its reserve (writes refused), and how many writes were refused.
func (n *Node) registerStoreMetrics() {
	for name, db := range map[string]spaceChecker{"main": n.db, "audit": n.audit} {
		labels := prometheus.Labels{"store": name}
		n.registry.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "keymesh_store_free_bytes", Help: "Free disk space on the store's file system.", ConstLabels: labels,
			}, func() float64 {
				free, _ := db.FreeBytes()
				return float64(free)
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "keymesh_store_no_space", Help: "1 while the store refuses writes because its disk is under the reserve.", ConstLabels: labels,
			}, func() float64 {
				if db.CheckSpace() != nil {
					return 1
				}
				return 0
			}),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "keymesh_store_writes_refused_total", Help: "Writes refused because the disk was under the reserve.", ConstLabels: labels,
			}, func() float64 { return float64(db.RefusedWrites()) }),
		)
	}
}

// Handler returns the node's HTTP handler (for tests that serve it
// themselves).
func (n *Node) Handler() http.Handler { return n.api }

// API returns the REST API server.
func (n *Node) API() *api.Server { return n.api }

// Listen binds the configured API address.
func (n *Node) Listen() error {
	ln, err := net.Listen("tcp", n.cfg.Listen)
	if err != nil {
		return fmt.Errorf("node: listen %s: %w", n.cfg.Listen, err)
	}
	n.ln = ln
	return n.listenKMIP()
}

// Addr returns the bound API address (after Listen).
func (n *Node) Addr() string {
	if n.ln == nil {
		return ""
	}
	return n.ln.Addr().String()
}

// URL returns the API's base URL (after Listen).
func (n *Node) URL() string {
	scheme := "http"
	if n.cfg.TLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + n.Addr()
}

// The store's pages in the process's RSS. Badger reads and writes its
// tables and value log through mmap, so the pages a node's start-up read
// (the whole store: every key, event and record) and those its
// compactions write and read since stay mapped: file-backed page cache,
// reclaimable, but counted in the RSS until the kernel needs the memory,
// which without a memory limit it does not. So the RSS followed the
// store's size (at 100k keys 251 of ~480 MiB after start-up; under a
// grant/revoke soak +40 MiB in two minutes). A serving node hands them
// back (badgerstore.DB.ReleaseMapped) once when it begins to serve, and
// whenever its file-backed memory has grown by more than storePagesSlack
// since the last release, checked every storePagesEvery
// (badgerstore.FileResident, one short read): what stays resident is the
// live state, the binary and up to storePagesSlack of the store, plus what
// a compaction maps within one check. A page handed back is read from the
// file again when it is next needed (docs/benchmarks.md, "Store pages").
// Checked every 10 s (and counted from /proc/self/smaps, too slow to read
// often at 100k keys), the pages a compaction wrote stayed up to 10 s and
// set the soak's RSS high-water mark: the file-backed part reached ~140
// MiB between checks. A check every second brought the soak's VmHWM to
// 217–263 MiB, every 250 ms to 187–213, at 4 % less throughput on
// average, within the runs' spread ("Seventh session"): each release
// costs the kernel's work on the pages it frees, whatever the interval.
const (
	storePagesSlack = 16 << 20
	storePagesEvery = 250 * time.Millisecond
)

// fileGrowth counts the process's file-backed memory from the last release
// of the store's pages on: grown is how much it has grown since, released
// marks a release. A fall below the mark (the kernel reclaimed pages
// itself) lowers it.
type fileGrowth struct {
	read func() (int64, error) // badgerstore.FileResident
	mark int64
}

func (g *fileGrowth) grown() (int64, error) {
	r, err := g.read()
	if err != nil {
		return 0, err
	}
	g.mark = min(g.mark, r)
	return r - g.mark, nil
}

func (g *fileGrowth) released() {
	if r, err := g.read(); err == nil {
		g.mark = r
	}
}

// releaseStorePages hands the store's mapped pages back; why says when.
// A failure costs memory, not correctness, so it is logged.
func (n *Node) releaseStorePages(why string) {
	start := time.Now()
	advised, err := n.db.ReleaseMapped()
	switch {
	case errors.Is(err, badgerstore.ErrUnsupported):
		n.logger.Debug("store: cannot release mapped pages on this system")
	case err != nil:
		n.logger.Warn("store: releasing mapped pages", "err", err)
	default:
		n.logger.Debug("store: released mapped pages", "why", why, "mappings", advised, "took", time.Since(start))
	}
}

// keepStorePagesDown calls release whenever measure, checked every every
// (fileGrowth.grown: the file-backed memory's growth since the last
// release), reports more than slack bytes, until ctx is done (it returns
// nil) or measure fails (it returns the error: the system cannot count
// the pages).
func keepStorePagesDown(ctx context.Context, every time.Duration, slack int64, measure func() (int64, error), release func()) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		r, err := measure()
		if err != nil {
			return err
		}
		if r > slack {
			release()
		}
	}
}

// Serve serves the API until ctx is cancelled, then shuts down gracefully:
// it stops accepting, lets in-flight requests finish (up to 10 s), drains
// the audit log and closes the store.
func (n *Node) Serve(ctx context.Context) error {
	if n.ln == nil {
		if err := n.Listen(); err != nil {
			n.Close()
			return err
		}
	}
	if err := n.mesh.start(ctx, n.registry, n.logger); err != nil {
		n.Close()
		return err
	}
	n.srv = &http.Server{
		Handler:           n.api,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    512 << 10, // a chaincode's signed proposal travels in a header (node/api/fabric.go)
		ErrorLog:          slog.NewLogLogger(n.logger.Handler(), slog.LevelWarn),
		TLSConfig:         apiTLSConfig(n.cfg.FIPS),
	}
	errc := make(chan error, 1)
	go func() {
		var err error
		if n.cfg.TLSCert != "" {
			err = n.srv.ServeTLS(n.ln, n.cfg.TLSCert, n.cfg.TLSKey)
		} else {
			err = n.srv.Serve(n.ln)
		}
		errc <- err
	}()
	n.serveKMIP()
	n.releaseStorePages("start-up")
	growth := &fileGrowth{read: badgerstore.FileResident}
	growth.released()
	pagesCtx, stopPages := context.WithCancel(ctx)
	var pages sync.WaitGroup
	pages.Go(func() {
		err := keepStorePagesDown(pagesCtx, storePagesEvery, storePagesSlack, growth.grown, func() {
			n.releaseStorePages("resident")
			growth.released()
		})
		if err != nil {
			n.logger.Debug("store: cannot count file-backed pages; not released while serving", "err", err)
		}
	})
	n.ready.Store(true)
	if n.cfg.OnReady != nil {
		n.cfg.OnReady()
	}
	n.logger.Info("keymeshd serving", "addr", n.Addr(), "node", n.id.NodeID, "org", n.id.Org, "tls", n.cfg.TLSCert != "")
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	stopPages()
	pages.Wait()
	n.ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.srv.Shutdown(sctx); err != nil {
		n.logger.Warn("shutdown", "err", err)
	}
	n.Close()
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("node: serve: %w", serveErr)
	}
	n.logger.Info("keymeshd stopped")
	return nil
}

// Close releases everything; Serve calls it on shutdown.
func (n *Node) Close() {
	if n.closed.Swap(true) {
		return
	}
	if n.ln != nil && n.srv == nil {
		n.ln.Close()
	}
	n.closeAll()
}

func (n *Node) closeAll() {
	n.closeKMIP()
	if n.mesh != nil {
		n.mesh.close()
	}
	if n.audit != nil {
		if err := n.audit.Close(); err != nil {
			n.logger.Warn("close audit log", "err", err)
		}
	}
	if n.vault != nil {
		if err := n.vault.SaveCounts(); err != nil {
			n.logger.Warn("save encryption counts", "err", err)
		}
		n.vault.Close()
	}
	if n.db != nil {
		if err := n.db.Close(); err != nil {
			n.logger.Warn("close store", "err", err)
		}
	}
}

// NewLogger builds the daemon's slog logger from the config.
func NewLogger(cfg Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openMesh opens the event log and the mesh membership of a node
// initialised with a genesis.
func (n *Node) openMesh(g *network.Genesis) (*memberHost, error) {
	sign, err := n.vault.Signer() // the private half stays in the vault
	if err != nil {
		return nil, fmt.Errorf("node: signing key: %w", err)
	}
	pid, _, err := peerIDOf(sign)
	if err != nil {
		sign.Destroy()
		return nil, fmt.Errorf("node: peer id: %w", err)
	}
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keymesh_mesh_events_total",
		Help: "Events delivered to this node's log, by verdict (accept, ignore, reject) and reason.",
	}, []string{"verdict", "reason"})
	n.registry.MustRegister(events)
	heard := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "keymesh_mesh_org_last_heard_seconds",
		Help: "Seconds since this node last heard from each other org (-1: never); past the staleness bound its keys answer stale_policy.",
	}, []string{"org"})
	n.registry.MustRegister(heard)
	lg := n.logger.With("component", "mesh")
	log, err := mesh.OpenLog(n.store, g, sign, mesh.LogOptions{
		Logger:    lg,
		OnVerdict: func(v mesh.Verdict, reason string) { events.WithLabelValues(v.String(), reason).Inc() },
		Staleness: n.cfg.Staleness,
		DepSettle: mesh.DefaultDepSettle,
		Clock:     n.cfg.Clock,
	})
	if err != nil {
		return nil, err
	}
	// Fail closed: a key of another org is served only while this node has
	// heard from that org within the staleness bound.
	log.Policy().SetGate(log.Fresh)
	mn := &memberHost{log: log, sign: sign, cfg: n.cfg}
	mn.member = member.New(member.Config{
		Log: log, Vault: n.vault, Org: n.id.Org, PeerID: pid.String(), KEMKey: n.id.KEMKey,
		Grace: n.cfg.RotationGrace, Publish: mn.publish, Network: mn.network, Logger: lg, Clock: n.cfg.Clock,
		OnFreshness: func(ages map[string]time.Duration) {
			for org, age := range ages {
				heard.WithLabelValues(org).Set(max(age.Seconds(), -1))
			}
		},
	})
	return mn, nil
}

// Core returns the node's domain core (for in-process front doors, tools
// and benchmarks).
func (n *Node) Core() *kms.Service { return n.core }

// Vault returns the node's vault (for in-process tools and benchmarks).
func (n *Node) Vault() *vault.Vault { return n.vault }

// MeshLog returns the node's event log.
func (n *Node) MeshLog() *mesh.Log { return n.mesh.log }

// Member returns the node's mesh member.
func (n *Node) Member() *member.Member { return n.mesh.member }
