package node

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/keymesh/keymesh/kv/badgerstore"
	"github.com/keymesh/keymesh/node/fabricid"
	"github.com/keymesh/keymesh/vault"
)

// Config configures a node. It is read from a YAML file, then environment
// variables (KEYMESH_*), then flags, each overriding the one before
// (cmd/keymeshd does the layering).
type Config struct {
	// Listen is the REST API address. Default 127.0.0.1:8420.
	Listen string `yaml:"listen"`
	// DataDir holds the store, the master key file and (in dev mode) the
	// admin token.
	DataDir string `yaml:"data"`
	// Org is the organisation this node belongs to (e.g. Org1MSP); it owns
	// the keys created here. Default "local".
	Org string `yaml:"org"`
	// MasterKeyFile is the 32-byte master key (mode 0600). Default
	// <data>/master.key. Ignored when PassphraseFile is set.
	MasterKeyFile string `yaml:"master_key_file"`
	// PassphraseFile, if set, holds the passphrase the master secret is
	// derived from (PBKDF2-HMAC-SHA256) instead of a key file.
	PassphraseFile string `yaml:"passphrase_file"`
	// TLSCert and TLSKey serve the API over TLS.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// AllowPlaintext allows a non-loopback Listen address without TLS.
	// Bearer tokens then cross the network in the clear: only for networks
	// that are themselves encrypted (a service mesh, a VPN).
	AllowPlaintext bool `yaml:"allow_plaintext"`
	// RotationGrace is how far in the future rotated versions activate.
	RotationGrace time.Duration `yaml:"rotation_grace"`
	// TokenTTL is the lifetime of client and chaincode tokens minted without
	// an explicit one (default 90 days); a token minted with ttl "never"
	// does not expire.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// DiskReserveMB is the free space, in MiB, under which the store
	// refuses changes (507 insufficient_storage) instead of running the disk
	// full (default 64). The audit log keeps writing until half of it is
	// left, so decryption and reads go on a while longer; then requests fail
	// closed (503).
	DiskReserveMB int `yaml:"disk_reserve_mb"`
	// RotateAfter is the encryption count at which a version is rotated
	// automatically (default 2^30; must stay well under 2^32).
	RotateAfter uint64 `yaml:"rotate_after"`
	// FabricMSPs lists, per Fabric MSP id, the CA certificate files that
	// the transaction creators named with chaincode tokens must chain to
	// (see node/fabricid): fabric_msps: {Org1MSP: {cas: [ca.pem]}}.
	// Without it every chaincode request is refused.
	FabricMSPs map[string]fabricid.MSPConfig `yaml:"fabric_msps"`
	// FabricProposalWindow is how far a chaincode's signed proposal may
	// be stamped from the node's clock, either way, and how long one
	// transaction may be used (default 5m; see node/fabricid).
	FabricProposalWindow time.Duration `yaml:"fabric_proposal_window"`
	// Genesis is the network definition file given to init; a node
	// initialised with one belongs to that network (its copy lives in
	// <data>/genesis.json) and starts its p2p host.
	Genesis string `yaml:"genesis"`
	// P2PListen are the libp2p listen multiaddrs of a mesh node. Default
	// /ip4/127.0.0.1/tcp/0.
	P2PListen []string `yaml:"p2p_listen"`
	// Bootstrap adds multiaddrs to dial besides the genesis bootstrap list.
	Bootstrap []string `yaml:"bootstrap"`
	// AntiEntropyInterval is how often a mesh node compares event logs
	// with its peers (default 3s).
	AntiEntropyInterval time.Duration `yaml:"anti_entropy_interval"`
	// Staleness is how long a mesh node serves a key of another org
	// without hearing from that org (a satisfied liveness checkpoint);
	// after it, the key's encrypts and decrypts fail with stale_policy
	// (default 10s).
	Staleness time.Duration `yaml:"staleness"`
	// LogLevel is debug, info, warn or error. LogFormat is text or json.
	LogLevel  string `yaml:"log_level"`
	LogFormat string `yaml:"log_format"`
	// Dev runs a single node with no set-up: a temporary data directory
	// unless DataDir is set (reused if it exists), initialised on first
	// start, with the admin token written to <data>/admin.token.
	Dev bool `yaml:"dev"`
	// OnReady, if set, is called once when the node starts serving (not
	// from the config file: cmd/keymeshd applies its memory limit then).
	OnReady func() `yaml:"-"`
	// FIPS makes keymeshd refuse to start unless the Go Cryptographic
	// Module runs in FIPS 140-only mode (GODEBUG=fips140=only),
	// restricts the API's TLS to approved suites and groups, and refuses
	// Ethereum wallet authentication, which the module cannot perform
	// (api.ErrFIPSUnsupported; see CheckFIPS and the README's FIPS
	// section). It changes no event the node admits or folds.
	FIPS bool `yaml:"fips"`
	// Clock is the node's wall clock for decisions, key activation,
	// events and audit times (default time.Now); tests inject one. It is
	// not configurable from a file.
	Clock func() time.Time `yaml:"-"`
	// KMIP configures the KMIP server (node/kmip.go); off unless
	// kmip.listen is set.
	KMIP KMIPConfig `yaml:"kmip"`
	// PBKDF2Iterations overrides the passphrase iteration count at init
	// (tests only; floor 1,000).
	PBKDF2Iterations int `yaml:"-"`
}

// DefaultListen is the default API address.
const DefaultListen = "127.0.0.1:8420"

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Org == "" {
		c.Org = "local"
	}
	if c.MasterKeyFile == "" && c.DataDir != "" {
		c.MasterKeyFile = filepath.Join(c.DataDir, "master.key")
	}
	if c.RotationGrace == 0 {
		c.RotationGrace = vault.DefaultGrace
	}
	if c.RotateAfter == 0 {
		c.RotateAfter = vault.DefaultRotateAt
	}
	if c.DiskReserveMB == 0 {
		c.DiskReserveMB = badgerstore.DefaultReserve >> 20
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.LogFormat == "" {
		c.LogFormat = "text"
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.FIPS {
		if err := CheckFIPS(); err != nil {
			return err
		}
	}
	if c.DataDir == "" {
		return fmt.Errorf("node: config: a data directory is required (--data)")
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("node: config: listen address %q: %w", c.Listen, err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("node: config: tls_cert and tls_key go together")
	}
	if c.TLSCert == "" && !c.AllowPlaintext && !isLoopback(host) {
		return fmt.Errorf("node: config: refusing to serve bearer tokens in plaintext on %q; configure tls_cert and tls_key, listen on loopback, or set allow_plaintext", c.Listen)
	}
	if c.RotateAfter >= vault.DefaultHardLimit {
		return fmt.Errorf("node: config: rotate_after %d must be below %d", c.RotateAfter, uint64(vault.DefaultHardLimit))
	}
	if c.RotationGrace < 0 {
		return fmt.Errorf("node: config: rotation_grace must not be negative")
	}
	if c.DiskReserveMB < 0 {
		return fmt.Errorf("node: config: disk_reserve_mb must not be negative")
	}
	if c.TokenTTL < 0 {
		return fmt.Errorf("node: config: token_ttl must not be negative")
	}
	if err := c.KMIP.validate(); err != nil {
		return err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("node: config: log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("node: config: log_format %q: want text or json", c.LogFormat)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LoadFile reads a YAML config file into c. Unknown fields are an error.
func (c *Config) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("node: config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("node: config %s: %w", path, err)
	}
	return nil
}

// LoadEnv overrides c from KEYMESH_* environment variables.
func (c *Config) LoadEnv(getenv func(string) string) error {
	str := map[string]*string{
		"KEYMESH_LISTEN":          &c.Listen,
		"KEYMESH_DATA":            &c.DataDir,
		"KEYMESH_ORG":             &c.Org,
		"KEYMESH_MASTER_KEY_FILE": &c.MasterKeyFile,
		"KEYMESH_PASSPHRASE_FILE": &c.PassphraseFile,
		"KEYMESH_TLS_CERT":        &c.TLSCert,
		"KEYMESH_TLS_KEY":         &c.TLSKey,
		"KEYMESH_LOG_LEVEL":       &c.LogLevel,
		"KEYMESH_LOG_FORMAT":      &c.LogFormat,
	}
	for k, p := range str {
		if v := getenv(k); v != "" {
			*p = v
		}
	}
	c.KMIP.loadEnv(getenv)
	if v := getenv("KEYMESH_GENESIS"); v != "" {
		c.Genesis = v
	}
	if v := getenv("KEYMESH_P2P_LISTEN"); v != "" {
		c.P2PListen = strings.Split(v, ",")
	}
	if v := getenv("KEYMESH_BOOTSTRAP"); v != "" {
		c.Bootstrap = strings.Split(v, ",")
	}
	if v := getenv("KEYMESH_STALENESS"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("node: KEYMESH_STALENESS: want a positive duration, got %q", v)
		}
		c.Staleness = d
	}
	if v := getenv("KEYMESH_ROTATION_GRACE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("node: KEYMESH_ROTATION_GRACE: %w", err)
		}
		c.RotationGrace = d
	}
	if v := getenv("KEYMESH_DISK_RESERVE_MB"); v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("node: KEYMESH_DISK_RESERVE_MB: %w", err)
		}
		c.DiskReserveMB = n
	}
	if v := getenv("KEYMESH_TOKEN_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("node: KEYMESH_TOKEN_TTL: %w", err)
		}
		c.TokenTTL = d

	}
	if v := getenv("KEYMESH_FABRIC_PROPOSAL_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("node: KEYMESH_FABRIC_PROPOSAL_WINDOW: %w", err)
		}
		c.FabricProposalWindow = d
	}
	if v := getenv("KEYMESH_FABRIC_MSPS"); v != "" {
		m, err := fabricid.ParseMSPs(v)
		if err != nil {
			return fmt.Errorf("node: KEYMESH_FABRIC_MSPS: %w", err)
		}
		c.FabricMSPs = m
	}
	for k, p := range map[string]*bool{"KEYMESH_DEV": &c.Dev, "KEYMESH_ALLOW_PLAINTEXT": &c.AllowPlaintext, "KEYMESH_FIPS": &c.FIPS} {
		if v := getenv(k); v != "" {
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("node: %s: %w", k, err)
			}
			*p = b
		}
	}
	return nil
}
