// Command keymeshd is the keymesh daemon: one per ledger node, holding the
// node's vault and policy and serving the REST API.
//
//	keymeshd --dev                         # a single node, no set-up
//	keymeshd --data /var/lib/keymesh       # a node made with `keymesh init`
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
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/keymesh/keymesh/node"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
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
	logLevel := fs.String("log-level", "", "debug, info, warn or error")
	logFormat := fs.String("log-format", "", "text or json")
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
	}
	for name, f := range strFlags {
		if set[name] {
			*f.dst = f.val
		}
	}
	if set["dev"] {
		cfg.Dev = *dev
	}
	if set["rotation-grace"] {
		cfg.RotationGrace = *grace
	}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil && !(cfg.Dev && cfg.DataDir == "") {
		fmt.Fprintf(stderr, "keymeshd: %v\n", err)
		return 1
	}
	logger := node.NewLogger(cfg, stderr)
	start := time.Now()
	if err := node.Run(ctx, cfg, stdout, logger); err != nil {
		logger.Error("keymeshd failed", "err", err, "after", time.Since(start).Round(time.Millisecond))
		fmt.Fprintf(stderr, "keymeshd: %v\n", err)
		return 1
	}
	return 0
}
