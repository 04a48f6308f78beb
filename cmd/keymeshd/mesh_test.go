package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/node"
	"github.com/keymesh/keymesh/node/client"
)

func TestSplitList(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{
		"":                   nil,
		"/ip4/1.2.3.4/tcp/1": {"/ip4/1.2.3.4/tcp/1"},
		" /a , /b,,":         {"/a", "/b"},
	} {
		if got := splitList(in); !reflect.DeepEqual(got, want) {
			t.Errorf("splitList(%q) = %q, want %q", in, got, want)
		}
	}
}

var servingLine = regexp.MustCompile(`serving on (http://\S+)`)

// TestP2PFlags starts a mesh node process with --p2p-listen on a chosen
// port (and a --bootstrap address nobody answers) and checks that its p2p
// host listens there.
func TestP2PFlags(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a daemon process")
	}
	dir := t.TempDir()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	g := network.Genesis{Network: "flags", Created: time.Now().UTC().Truncate(time.Second),
		Orgs: []network.GenesisOrg{{ID: "Org1MSP", AdminKeys: [][32]byte{[32]byte(pub)}}}}
	b, _ := json.Marshal(g)
	gfile := filepath.Join(dir, "genesis.json")
	if err := os.WriteFile(gfile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "node")
	if _, err := node.Init(node.Config{DataDir: data, Org: "Org1MSP", Genesis: gfile}, node.AdminTokenFile(data)); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	listen := "/ip4/127.0.0.1/tcp/" + strconv.Itoa(port)
	cmd := exec.Command(os.Args[0], "--data", data, "--listen", "127.0.0.1:0", "--log-level", "warn",
		"--p2p-listen", listen, "--bootstrap", "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWAnWDJ6vE9Tb3QFrBvAtXPZTx2kqMwdLR8ZyDxGsdmQgu")
	cmd.Env = append(os.Environ(), "KEYMESH_TEST_DAEMON=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				urlc <- m[1]
			}
		}
	}()
	var url string
	select {
	case url = <-urlc:
	case <-time.After(30 * time.Second):
		t.Fatal("keymeshd did not print its API address within 30s")
	}
	tok, err := os.ReadFile(node.AdminTokenFile(data))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(url, strings.TrimSpace(string(tok)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var addrs []string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		id, err := c.NodeIdentity(ctx)
		if err == nil && len(id.Addrs) > 0 {
			addrs = id.Addrs
			break
		}
	}
	if len(addrs) == 0 || !strings.HasPrefix(addrs[0], listen+"/p2p/") {
		t.Errorf("p2p addresses = %q, want %s/p2p/…", addrs, listen)
	}
}
