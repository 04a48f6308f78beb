// Command keymeshd is the keymesh daemon: one per ledger node, holding the
// node's vault and policy and serving the REST API.
//
//	keymeshd --dev                         # a single node, no set-up
//	keymeshd init --data /var/lib/keymesh  # what `keymesh init` runs
//	keymeshd --data /var/lib/keymesh       # a node made with `keymesh init`
//	keymeshd --data /var/lib/keymesh --p2p-listen /ip4/0.0.0.0/tcp/4001 \
//	    --bootstrap /ip4/10.0.0.1/tcp/4001/p2p/12D3KooW…   # a mesh node (init --genesis)
//
// Configuration comes from --config FILE (YAML), then KEYMESH_* environment
// variables, then flags, each overriding the one before.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/keymesh/keymesh/cmd/internal/initnode"
	"github.com/keymesh/keymesh/node"
)

// startUp, if set, runs once the node serves (see main): it starts the
// memory governor and starts handing freed memory back.
var startUp func(*slog.Logger)

func main() {
	// keymeshd's live heap is small (keys, grants, token hashes); trading a
	// little memory for less garbage collection is worth ~15% more requests
	// per second (docs/benchmarks.md). GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	// With GOGC at 400 alone, a burst of large or hostile requests leaves
	// a heap goal five times its peak, and the runtime is slow to hand the
	// pages back. A soft memory limit that follows the live heap (the
	// governor, memory.go) makes the collector work harder as the process
	// nears it and returns freed memory to the system, so memory comes
	// back down after a burst, without the back-to-back collections of a
	// fixed limit below a large node's live heap. GOMEMLIMIT in the
	// environment wins: it is then the fixed limit.
	//
	// The governor starts once the node serves (startUp): loading a large
	// node's state (keys, the mesh log) only grows the heap, and a
	// collection per step of it was wasted work (at 51k keys, 55 % of
	// start-up CPU under a fixed limit; docs/benchmarks.md). Until then the
	// collector runs at GOGC=100 (heap up to twice the live heap).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	governed := os.Getenv("GOMEMLIMIT") == ""
	loadGOGC := os.Getenv("GOGC") == "" && governed
	if loadGOGC {
		debug.SetGCPercent(100)
	}
	// In a container with a memory limit, the soft limit stays under the
	// governor's ceiling from the start (cgroup.go): the load's heap too.
	container := containerLimit(os.DirFS("/"))
	ceiling := heapCeiling(container)
	if governed && ceiling > 0 {
		debug.SetMemoryLimit(int64(min(ceiling, math.MaxInt64)))
	}
	// Freed memory is handed back once the node serves: while it loads its
	// keys and events the heap only grows, and each return (a forced
	// collection of the whole growing heap) was wasted work that slowed a
	// large node's start-up and gave back pages the load faulted in again.
	startUp = func(logger *slog.Logger) {
		if loadGOGC {
			debug.SetGCPercent(400)
		}
		if governed {
			governMemory(ctx, defaultHeapFloor, ceiling, func(live, ceiling uint64) {
				logger.Warn("memory: the live heap nears the soft limit's ceiling; the container's memory limit is too small for what this node holds",
					"live_mib", live>>20, "soft_limit_ceiling_mib", ceiling>>20)
			})
		}
		if governed && container > 0 {
			logger.Info("memory: in a container with a memory limit", "limit_mib", container>>20, "soft_limit_ceiling_mib", ceiling>>20)
		}
		go returnMemory(ctx, 10*time.Second, 32<<20)
	}
	servePprof(os.Getenv("KEYMESHD_PPROF"))
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) > 0 && args[0] == "init" {
		return initnode.Run(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("keymeshd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", getenv("KEYMESH_CONFIG"), "YAML config `file`")
	listen := fs.String("listen", "", "REST API `address` (default "+node.DefaultListen+")")
	data := fs.String("data", "", "data `directory`")
	org := fs.String("org", "", "organisation `id` of this node (at first start in dev mode)")
	dev := fs.Bool("dev", false, "dev mode: a single node with no set-up (temporary data directory unless --data)")
	passFile := fs.String("passphrase-file", "", "derive the master secret from the passphrase in `file` instead of a key file")
	keyFile := fs.String("master-key-file", "", "master key `file` (default <data>/master.key)")
	tlsCert := fs.String("tls-cert", "", "TLS certificate `file`")
	tlsKey := fs.String("tls-key", "", "TLS key `file`")
	grace := fs.Duration("rotation-grace", 0, "activation delay of rotated key versions (default 5s)")
	staleness := fs.Duration("staleness", 0, "how long a mesh node serves another org's keys without hearing from it (default 10s)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error")
	logFormat := fs.String("log-format", "", "text or json")
	p2pListen := fs.String("p2p-listen", "", "libp2p listen `multiaddrs`, comma-separated, of a mesh node (default /ip4/127.0.0.1/tcp/0)")
	fips := fs.Bool("fips", false, "refuse to start unless running with GODEBUG=fips140=only (FIPS 140-3); restrict the API's TLS to approved suites and groups; refuse Ethereum wallet authentication (eth: parties, 403 fips_unsupported)")
	bootstrap := fs.String("bootstrap", "", "`multiaddrs`, comma-separated, to dial besides the genesis bootstrap list")
	kmipListen := fs.String("kmip-listen", "", "KMIP server `address` (5696 by convention; off unless set)")
	kmipCert := fs.String("kmip-cert", "", "KMIP server TLS certificate `file`")
	kmipKey := fs.String("kmip-key", "", "KMIP server TLS key `file`")
	kmipCAs := fs.String("kmip-client-ca", "", "CA certificate `files`, comma-separated, that KMIP client certificates must chain to")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "keymeshd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var cfg node.Config
	if *configFile != "" {
		if err := cfg.LoadFile(*configFile); err != nil {
			fmt.Fprintf(stderr, "keymeshd: %v\n", err)
			return 1
		}
	}
	if err := cfg.LoadEnv(getenv); err != nil {
		fmt.Fprintf(stderr, "keymeshd: %v\n", err)
		return 1
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	strFlags := map[string]struct {
		dst *string
		val string
	}{
		"listen": {&cfg.Listen, *listen}, "data": {&cfg.DataDir, *data}, "org": {&cfg.Org, *org},
		"passphrase-file": {&cfg.PassphraseFile, *passFile}, "master-key-file": {&cfg.MasterKeyFile, *keyFile},
		"tls-cert": {&cfg.TLSCert, *tlsCert}, "tls-key": {&cfg.TLSKey, *tlsKey},
		"log-level": {&cfg.LogLevel, *logLevel}, "log-format": {&cfg.LogFormat, *logFormat},
		"kmip-listen": {&cfg.KMIP.Listen, *kmipListen}, "kmip-cert": {&cfg.KMIP.Cert, *kmipCert}, "kmip-key": {&cfg.KMIP.Key, *kmipKey},
	}
	for name, f := range strFlags {
		if set[name] {
			*f.dst = f.val
		}
	}
	if set["dev"] {
		cfg.Dev = *dev
	}
	if set["fips"] {
		cfg.FIPS = *fips
	}
	if set["rotation-grace"] {
		cfg.RotationGrace = *grace
	}
	if set["staleness"] {
		cfg.Staleness = *staleness
	}
	if set["p2p-listen"] {
		cfg.P2PListen = splitList(*p2pListen)
	}
	if set["bootstrap"] {
		cfg.Bootstrap = splitList(*bootstrap)
	}
	if set["kmip-client-ca"] {
		cfg.KMIP.ClientCAs = splitList(*kmipCAs)
	}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil && (errors.Is(err, node.ErrFIPSMode) || !(cfg.Dev && cfg.DataDir == "")) {
		fmt.Fprintf(stderr, "keymeshd: %v\n", err)
		return 1
	}
	logger := node.NewLogger(cfg, stderr)
	start := time.Now()
	if startUp != nil {
		cfg.OnReady = func() { startUp(logger) }
	}
	if err := node.Run(ctx, cfg, stdout, logger); err != nil {
		logger.Error("keymeshd failed", "err", err, "after", time.Since(start).Round(time.Millisecond))
		fmt.Fprintf(stderr, "keymeshd: %v\n", err)
		return 1
	}
	return 0
}

// splitList splits a comma-separated flag value, dropping empty items and
// surrounding spaces.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
