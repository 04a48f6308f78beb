package ethereum_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keymesh/keymesh/node"
	"github.com/keymesh/keymesh/node/client"
)

// startNode initialises and serves a real keymesh node on 127.0.0.1 in a
// temporary directory, stopped when the test ends. It returns the node's URL
// and admin token.
func startNode(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := node.Config{DataDir: dir, Listen: "127.0.0.1:0", RotationGrace: time.Millisecond}
	if _, err := node.Init(cfg, node.AdminTokenFile(dir)); err != nil {
		t.Fatalf("node.Init() error = %v", err)
	}
	admin, err := os.ReadFile(node.AdminTokenFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(cfg, nil)
	if err != nil {
		t.Fatalf("node.Open() error = %v", err)
	}
	if err := n.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve() error = %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("node did not stop within 15s")
		}
	})
	return n.URL(), strings.TrimSpace(string(admin))
}

func mustClient(t *testing.T, url, tok string) *client.Client {
	t.Helper()
	c, err := client.New(url, tok)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
