package node

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyDirection holds the architecture's line: the domain
// packages know nothing of HTTP, libp2p or the store engine; p2p knows
// nothing of the vault, policy or HTTP API; only kv/badgerstore imports
// badger.
func TestDependencyDirection(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs go list")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go toolchain not on PATH")
	}
	const mod = "github.com/keymesh/keymesh/"
	rules := []struct {
		pkgs      []string
		forbidden []string
	}{
		{[]string{"kms/...", "vault/...", "policy/...", "event/...", "network/...", "internal/...", "mesh/...", "audit/...", "token/...", "kv", "gossip"},
			[]string{"net/http", "github.com/gin-gonic/gin", "github.com/libp2p/", "github.com/dgraph-io/badger", mod + "node", mod + "p2p"}},
		// The KMIP front door speaks TTLV only: no gin, libp2p, store
		// engine, and the domain through its Backend interface.
		{[]string{"kmip/..."},
			[]string{"github.com/gin-gonic/gin", "github.com/libp2p/", "github.com/dgraph-io/badger", mod + "node", mod + "p2p", mod + "mesh", mod + "kv"}},
		{[]string{"p2p/..."},
			[]string{"github.com/gin-gonic/gin", "github.com/dgraph-io/badger", mod + "vault", mod + "policy", mod + "node", mod + "mesh"}},
		{[]string{"node/client/...", "node/apiv1/..."},
			[]string{"github.com/gin-gonic/gin", "github.com/dgraph-io/badger", "github.com/libp2p/", mod + "event"}},
		// Chaincode binaries link the API client, never the mesh's wire
		// formats or key transport (node-record signing is node/enroll).
		{[]string{"chaincode/fabric"},
			[]string{mod + "vault/transport", mod + "event", mod + "network", "github.com/libp2p/", "github.com/dgraph-io/badger", "github.com/gin-gonic/gin"}},
		// The API layer stands on the domain, never on the integrations
		// built on its client (the wallet verifier is node/ethid).
		{[]string{"node/api/..."},
			[]string{mod + "chaincode"}},
		// The operator CLI talks to a daemon through node/client; `keymesh
		// init` runs `keymeshd init` rather than linking the node.
		{[]string{"cmd/keymesh"},
			[]string{"github.com/libp2p/", "github.com/dgraph-io/badger", "github.com/gin-gonic/gin", mod + "p2p", mod + "node/api"}},
	}
	for _, r := range rules {
		args := []string{"list", "-deps", "-json=ImportPath,Standard"}
		for _, p := range r.pkgs {
			args = append(args, "./../"+p)
		}
		cmd := exec.Command(goBin, args...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go %s: %v", strings.Join(args, " "), err)
		}
		dec := json.NewDecoder(strings.NewReader(string(out)))
		for dec.More() {
			var p struct{ ImportPath string }
			if err := dec.Decode(&p); err != nil {
				t.Fatal(err)
			}
			for _, f := range r.forbidden {
				if p.ImportPath == f || strings.HasPrefix(p.ImportPath, f+"/") || strings.HasSuffix(f, "/") && strings.HasPrefix(p.ImportPath, f) {
					t.Errorf("%v depend on %s", r.pkgs, p.ImportPath)
				}
			}
		}
	}
	// badger is imported by kv/badgerstore alone.
	out, err := exec.Command(goBin, "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./../...").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(line, "github.com/dgraph-io/badger") && !strings.HasPrefix(line, mod+"kv/badgerstore ") {
			t.Errorf("badger imported outside kv/badgerstore: %s", strings.Fields(line)[0])
		}
	}
}
