package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Run is keymeshd: in dev mode it prepares (and on first start
// initialises) the data directory, then opens the node and serves until ctx
// is cancelled. What a person needs to get going is printed to out.
func Run(ctx context.Context, cfg Config, out io.Writer, logger *slog.Logger) error {
	if cfg.Dev {
		if cfg.DataDir == "" {
			dir, err := os.MkdirTemp("", "keymesh-dev-")
			if err != nil {
				return fmt.Errorf("node: dev data directory: %w", err)
			}
			cfg.DataDir = dir
		}
		cfg.Defaults()
		if !Initialized(cfg.DataDir) {
			if _, err := Init(cfg, AdminTokenFile(cfg.DataDir)); err != nil {
				return err
			}
			logger.Info("dev mode: initialised a new node", "data", cfg.DataDir)
		}
	}
	n, err := Open(cfg, logger)
	if err != nil {
		return err
	}
	if err := n.Listen(); err != nil {
		n.Close()
		return err
	}
	if a := n.KMIPAddr(); a != "" {
		fmt.Fprintf(out, "keymeshd KMIP on %s\n", a)
	}
	if cfg.Dev {
		tokenFile := AdminTokenFile(n.cfg.DataDir)
		tok, err := os.ReadFile(tokenFile)
		if err != nil {
			n.Close()
			return fmt.Errorf("node: dev mode: read admin token: %w", err)
		}
		fmt.Fprintf(out, "keymeshd dev mode — single node, not for production\n")
		fmt.Fprintf(out, "  API:         %s\n", n.URL())
		fmt.Fprintf(out, "  data:        %s\n", n.cfg.DataDir)
		fmt.Fprintf(out, "  admin token: %s (also in %s)\n", strings.TrimSpace(string(tok)), tokenFile)
		fmt.Fprintf(out, "  try:         export KEYMESH_ADDR=%s KEYMESH_TOKEN=$(cat %s); go run ./cmd/keymesh status\n", n.Addr(), tokenFile)
	} else {
		fmt.Fprintf(out, "keymeshd serving on %s\n", n.URL())
	}
	return n.Serve(ctx)
}
