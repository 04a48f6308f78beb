// Command benchmesh measures keymesh's mesh on loopback: N nodes (one per
// organisation) run in one process with real libp2p hosts on 127.0.0.1, like
// node's TestMesh, and it times
//
//   - grant→usable: from a grant of org:OrgK (decrypt) issued at org1's REST
//     API until OrgK's node holds the key's current version and its policy
//     allows OrgK;
//   - revoke→rotated-and-refused: from a revoke of org:OrgK at org1 (which
//     rotates the key) until every node's fold holds the revocation and the
//     new version, denies OrgK, and OrgK's node holds no version of the key;
//   - catch-up: a node is stopped, org1 issues -catchup events, the node is
//     restarted on its data directory; time until its log height equals
//     org1's.
//
// Nodes are polled in-process every millisecond. Grants and revokes
// alternate (each revoke ends the grant before it) round-robin over the orgs
// other than org1, on a fresh key every -batch pairs.
//
// Run through scripts/bench-mesh.sh. With several N the parent process runs
// each N in a child process (itself, with -child), so that every N starts
// from a fresh heap and its RSS is its own; the catch-up runs in the child of
// the smallest N.
package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keymesh/keymesh/mesh"
	"github.com/keymesh/keymesh/network"
	"github.com/keymesh/keymesh/node"
	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
	"github.com/keymesh/keymesh/node/enroll"
	"github.com/keymesh/keymesh/policy"
)

type options struct {
	ns          []int
	ops         int
	catchup     int
	batch       int
	antiEntropy time.Duration
	grace       time.Duration
	form        time.Duration
	opTimeout   time.Duration
	timeout     time.Duration
	startConc   int
	logLevel    string
	keep        bool
	dir         string
	pprof       string
	child       bool
	catchupN    int // child: the N at which the catch-up runs (0: none)
}

func main() {
	var o options
	var nList string
	flag.StringVar(&nList, "n", "10,30,50", "comma-separated network sizes (nodes, one org each)")
	flag.IntVar(&o.ops, "ops", 50, "grant/revoke pairs per N (each pair gives one grant and one revoke sample)")
	flag.IntVar(&o.catchup, "catchup", 1000, "events issued while a node is down, for the catch-up measurement (0: skip)")
	flag.IntVar(&o.batch, "batch", 10, "grant/revoke pairs per key before a fresh key is created (every revoke adds a version)")
	flag.DurationVar(&o.antiEntropy, "ae", 3*time.Second, "anti-entropy interval of every node (node default 3s)")
	flag.DurationVar(&o.grace, "grace", 100*time.Millisecond, "rotation grace of every node")
	flag.DurationVar(&o.form, "form", 0, "bound on forming the network (every node sees N registered nodes); 0: 20s + 2s per node")
	flag.DurationVar(&o.opTimeout, "op-timeout", 30*time.Second, "bound on one grant or revoke becoming visible")
	flag.DurationVar(&o.timeout, "timeout", 14*time.Minute, "overall bound")
	flag.IntVar(&o.startConc, "start-conc", 4, "nodes initialised and started concurrently")
	flag.StringVar(&o.logLevel, "log", "", "node log level to stderr (debug, info, warn, error); empty: discard")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directories")
	flag.StringVar(&o.dir, "dir", "", "parent of the temporary data directories (default $TMPDIR or /tmp); e.g. /dev/shm to take fsync out of the figures")
	flag.StringVar(&o.pprof, "pprof", "", "serve net/http/pprof on this loopback address in each child (debugging)")
	flag.BoolVar(&o.child, "child", false, "internal: run one N in this process")
	flag.IntVar(&o.catchupN, "catchup-at", 0, "internal: the N at which the catch-up runs")
	flag.Parse()
	for _, s := range strings.Split(nList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 || n > network.MaxGenesisOrgs {
			fatalf("-n: %q is not a network size in 2..%d", s, network.MaxGenesisOrgs)
		}
		o.ns = append(o.ns, n)
	}
	if o.ops < 1 || o.batch < 1 || o.catchup < 0 {
		fatalf("-ops and -batch must be positive, -catchup not negative")
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, o.timeout)
	defer cancelT()
	var err error
	if o.child {
		if o.pprof != "" {
			startPprof(o.pprof)
		}
		err = runOne(ctx, o, o.ns[0])
	} else {
		err = parent(ctx, o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmesh:", err)
		cancelT()
		os.Exit(1)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "benchmesh: "+format+"\n", args...)
	os.Exit(2)
}

// parent prints the machine, runs each N in a child process and prints the
// catch-up lines last.
func parent(ctx context.Context, o options) error {
	printMachine()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	catchupAt := 0
	if o.catchup > 0 {
		catchupAt = slices.Min(o.ns)
	}
	var deferred []string
	var failed []string
	for _, n := range o.ns {
		if ctx.Err() != nil {
			failed = append(failed, fmt.Sprintf("N=%d not run: %v", n, context.Cause(ctx)))
			continue
		}
		dl, _ := ctx.Deadline()
		args := []string{
			"-child", "-n", strconv.Itoa(n), "-ops", strconv.Itoa(o.ops), "-catchup", strconv.Itoa(o.catchup),
			"-catchup-at", strconv.Itoa(catchupAt), "-batch", strconv.Itoa(o.batch),
			"-ae", o.antiEntropy.String(), "-grace", o.grace.String(), "-form", o.form.String(),
			"-op-timeout", o.opTimeout.String(), "-start-conc", strconv.Itoa(o.startConc),
			"-timeout", time.Until(dl).Round(time.Second).String(), "-log", o.logLevel, "-dir", o.dir, "-pprof", o.pprof,
		}
		if o.keep {
			args = append(args, "-keep")
		}
		cmd := exec.CommandContext(ctx, self, args...)
		cmd.Stderr = os.Stderr
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 45 * time.Second // then SIGKILL
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "catchup_") || strings.HasPrefix(line, "# catch-up") {
				deferred = append(deferred, line)
				continue
			}
			fmt.Println(line)
		}
		if err := cmd.Wait(); err != nil {
			failed = append(failed, fmt.Sprintf("N=%d: %v", n, err))
		}
	}
	for _, l := range deferred {
		fmt.Println(l)
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

func printMachine() {
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "unknown"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				f := strings.Fields(l)
				if len(f) >= 2 {
					kb, _ := strconv.ParseFloat(f[1], 64)
					mem = fmt.Sprintf("%.1fGiB", kb/(1<<20))
				}
			}
		}
	}
	fmt.Printf("# machine: nproc=%d GOMAXPROCS=%d cpu=%q mem=%s %s/%s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), cpu, mem, runtime.GOOS, runtime.GOARCH)
	fmt.Printf("# machine: go=%s loadavg_at_start=%s\n", runtime.Version(), loadavg())
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], "/")
}

// member is one node of the benchmark network.
type member struct {
	i        int // 0-based; org i+1
	org      string
	data     string
	adminKey ed25519.PrivateKey
	cfg      node.Config
	n        *node.Node
	admin    *client.Client
	cancel   context.CancelFunc
	done     chan error
}

// benchNet is the running benchmark network.
type benchNet struct {
	o       options
	dir     string
	genesis string
	members []*member
	logger  *slog.Logger
}

func newNetwork(o options, n int) (*benchNet, error) {
	dir, err := os.MkdirTemp(o.dir, fmt.Sprintf("benchmesh-n%d-", n))
	if err != nil {
		return nil, err
	}
	net := &benchNet{o: o, dir: dir}
	if o.logLevel != "" {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
			return nil, fmt.Errorf("-log: %w", err)
		}
		net.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	}
	g := &network.Genesis{Network: fmt.Sprintf("bench-mesh-%d", n), Created: time.Now().UTC().Truncate(time.Second)}
	for i := range n {
		pub, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			return nil, err
		}
		var k [32]byte
		copy(k[:], pub)
		org := fmt.Sprintf("Org%dMSP", i+1)
		g.Orgs = append(g.Orgs, network.GenesisOrg{ID: org, AdminKeys: [][32]byte{k}})
		if i == 0 {
			g.Orgs[0].Namespaces = []string{"trade", "bench", "demo"}
		}
		net.members = append(net.members, &member{i: i, org: org, data: filepath.Join(dir, fmt.Sprintf("org%d", i+1)), adminKey: priv})
	}
	b, err := json.Marshal(g)
	if err != nil {
		return nil, err
	}
	net.genesis = filepath.Join(dir, "genesis.json")
	if err := os.WriteFile(net.genesis, b, 0o644); err != nil {
		return nil, err
	}
	return net, nil
}

// open initialises (first time) and opens m's node and starts serving it;
// it does not wait for the p2p host.
func (net *benchNet) open(m *member, boot []string) error {
	m.cfg = node.Config{
		DataDir: m.data, Org: m.org, Genesis: net.genesis, Listen: "127.0.0.1:0",
		P2PListen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: boot,
		RotationGrace: net.o.grace, AntiEntropyInterval: net.o.antiEntropy,
	}
	if !node.Initialized(m.data) {
		if _, err := node.Init(m.cfg, node.AdminTokenFile(m.data)); err != nil {
			return fmt.Errorf("%s: init: %w", m.org, err)
		}
	}
	return net.reopen(m)
}

// reopen opens m's node with its existing config and serves it.
func (net *benchNet) reopen(m *member) error {
	tok, err := os.ReadFile(node.AdminTokenFile(m.data))
	if err != nil {
		return err
	}
	var lg *slog.Logger
	if net.logger != nil {
		lg = net.logger.With("node", m.org)
	}
	n, err := node.Open(m.cfg, lg)
	if err != nil {
		return fmt.Errorf("%s: open: %w", m.org, err)
	}
	if err := n.Listen(); err != nil {
		n.Close()
		return fmt.Errorf("%s: %w", m.org, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx) }()
	m.n, m.cancel, m.done = n, cancel, done
	m.admin, err = client.New(n.URL(), strings.TrimSpace(string(tok)))
	return err
}

// identity waits (bounded) for m's p2p host and returns its identity.
func (m *member) identity(ctx context.Context) (*apiv1.NodeIdentity, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		id, err := m.admin.NodeIdentity(cctx)
		cancel()
		if err == nil && len(id.Addrs) > 0 {
			return id, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("%s: p2p host not up within 20s (last error %v)", m.org, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop cancels m's Serve and waits (bounded) for it to return.
func (m *member) stop() error {
	if m.cancel == nil {
		return nil
	}
	m.cancel()
	m.cancel = nil
	select {
	case err := <-m.done:
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s did not stop within 30s", m.org)
	}
}

func (net *benchNet) stopAll() error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, m := range net.members {
		wg.Go(func() {
			if err := m.stop(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if !net.o.keep {
		if err := os.RemoveAll(net.dir); err != nil {
			errs = append(errs, err)
		}
	} else {
		fmt.Printf("# data kept in %s\n", net.dir)
	}
	return errors.Join(errs...)
}

// start brings the network up: org1 first (everyone's bootstrap), then the
// others, -start-conc at a time; each node is registered by its org admin.
func (net *benchNet) start(ctx context.Context) error {
	first := net.members[0]
	if err := net.open(first, nil); err != nil {
		return err
	}
	id, err := first.identity(ctx)
	if err != nil {
		return err
	}
	boot := id.Addrs
	if err := register(ctx, first, id); err != nil {
		return err
	}
	sem := make(chan struct{}, max(1, net.o.startConc))
	errc := make(chan error, len(net.members))
	var wg sync.WaitGroup
	for _, m := range net.members[1:] {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				errc <- ctx.Err()
				return
			}
			if err := net.open(m, boot); err != nil {
				errc <- err
				return
			}
			id, err := m.identity(ctx)
			if err != nil {
				errc <- err
				return
			}
			errc <- register(ctx, m, id)
		})
	}
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// register has m's org admin sign and publish m's node record. A slow node
// may answer after the client gave up: each attempt first checks whether the
// node is registered already. Up to 3 attempts of 60 s.
func register(ctx context.Context, m *member, id *apiv1.NodeIdentity) error {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			id, err = m.admin.NodeIdentity(cctx)
			cancel()
			if err != nil {
				continue
			}
		}
		if id.Registered {
			return nil
		}
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		_, err = enroll.Register(cctx, m.admin, m.adminKey, 24*time.Hour)
		cancel()
		if err == nil {
			return nil
		}
		fmt.Fprintf(os.Stderr, "benchmesh: %s: register attempt %d: %v\n", m.org, attempt+1, err)
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("%s: register: %w", m.org, err)
}

// registered returns how many active nodes m's fold knows.
func (m *member) registered() int {
	c := 0
	m.n.MeshLog().View(func(s *mesh.State) {
		for _, nd := range s.Nodes {
			if !nd.Deregistered {
				c++
			}
		}
	})
	return c
}

// latest returns the number of versions of key in m's fold.
func (m *member) latest(key string) uint32 {
	var v uint32
	m.n.MeshLog().View(func(s *mesh.State) {
		if k, ok := s.Keys[key]; ok {
			v = uint32(len(k.Versions))
		}
	})
	return v
}

func principal(org string) policy.Principal {
	return policy.Principal{Parties: []policy.Party{policy.Party("org:" + org)}, Custodian: org}
}

// poll calls f every millisecond until it reports true, within bound or
// ctx; it returns the time from t0 to the first true.
func poll(ctx context.Context, t0 time.Time, bound time.Duration, f func() bool) (time.Duration, bool) {
	deadline := t0.Add(bound)
	for {
		if f() {
			return time.Since(t0), true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return time.Since(t0), false
		}
		time.Sleep(time.Millisecond)
	}
}

type stats struct{ d []time.Duration }

func (s *stats) add(d time.Duration) { s.d = append(s.d, d) }

// pct returns the nearest-rank p-quantile in ms (with 50 samples p99 is
// the maximum).
func (s *stats) pct(p float64) float64 {
	if len(s.d) == 0 {
		return math.NaN()
	}
	d := slices.Clone(s.d)
	slices.Sort(d)
	i := int(math.Ceil(p*float64(len(d)))) - 1
	i = min(max(i, 0), len(d)-1)
	return ms(d[i])
}

func (s *stats) mean() float64 {
	if len(s.d) == 0 {
		return math.NaN()
	}
	var t time.Duration
	for _, x := range s.d {
		t += x
	}
	return ms(t / time.Duration(len(s.d)))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// procStatus returns fields of /proc/self/status in MiB (VmRSS, VmHWM).
func procStatus(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return math.NaN()
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field+":") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
	}
	return math.NaN()
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runOne runs the benchmark for one N in this process.
func runOne(ctx context.Context, o options, n int) (err error) {
	if o.form == 0 {
		o.form = 20*time.Second + 2*time.Duration(n)*time.Second
	}
	net, err := newNetwork(o, n)
	if err != nil {
		return err
	}
	defer func() {
		if serr := net.stopAll(); serr != nil {
			err = errors.Join(err, fmt.Errorf("stop: %w", serr))
		}
	}()

	// Bring the network up and wait until every node knows every node.
	t0 := time.Now()
	if err := net.start(ctx); err != nil {
		return fmt.Errorf("n=%d: start: %w", n, err)
	}
	started := time.Since(t0)
	formed, ok := poll(ctx, t0, o.form, func() bool {
		for _, m := range net.members {
			if m.registered() != n {
				return false
			}
		}
		return true
	})
	if !ok {
		var counts []string
		for _, m := range net.members {
			counts = append(counts, strconv.Itoa(m.registered()))
		}
		fmt.Printf("# N=%d NOT FORMED within %s: registered nodes seen per node: %s\n", n, o.form, strings.Join(counts, ","))
		net.printPeers(ctx, n)
		return fmt.Errorf("n=%d: network did not form within %s", n, o.form)
	}
	fmt.Printf("# N=%d formed: nodes started in %.1fs, every node saw %d registered nodes after %.1fs; rss=%.0fMiB goroutines=%d\n",
		n, started.Seconds(), n, formed.Seconds(), procStatus("VmRSS"), runtime.NumGoroutine())
	net.settle(ctx, n, min(o.form, 60*time.Second))
	// What the idle network costs (gossip heartbeats, anti-entropy rounds
	// with every peer every -ae, reconciliation ticks).
	cpuI, wallI := cpuTime(), time.Now()
	time.Sleep(5 * time.Second)
	fmt.Printf("# N=%d idle: cpu=%.2f cores busy over 5s with no operations; rss=%.0fMiB goroutines=%d\n",
		n, float64(cpuTime()-cpuI)/float64(time.Since(wallI)), procStatus("VmRSS"), runtime.NumGoroutine())

	// Warm up: one grant/revoke pair on its own key, not counted.
	org1 := net.members[0]
	b := &bench{net: net, org1: org1, n: n}
	if err := b.newKey(ctx, fmt.Sprintf("bench/n%d-warmup", n)); err != nil {
		return err
	}
	var warm stats
	if err := b.pair(ctx, 0, &warm, &warm); err != nil {
		return fmt.Errorf("n=%d: warm-up: %w", n, err)
	}
	b.byVersions, b.grantAPI, b.revokeAPI = nil, stats{}, stats{}

	// Measure.
	cpu0, wall0 := cpuTime(), time.Now()
	var grants, revokes stats
	for i := range o.ops {
		if i%o.batch == 0 {
			if err := b.newKey(ctx, fmt.Sprintf("bench/n%d-k%d", n, i/o.batch)); err != nil {
				return err
			}
		}
		if err := b.pair(ctx, i, &grants, &revokes); err != nil {
			fmt.Printf("# N=%d PARTIAL after %d of %d pairs (%.0fs): grant p50 %.1f p99 %.1f max %.1f ms, revoke p50 %.1f p99 %.1f max %.1f ms; API call alone p50 grant %.1f revoke %.1f ms\n",
				n, i, o.ops, time.Since(wall0).Seconds(), grants.pct(0.5), grants.pct(0.99), grants.pct(1), revokes.pct(0.5), revokes.pct(0.99), revokes.pct(1),
				b.grantAPI.pct(0.5), b.revokeAPI.pct(0.5))
			return fmt.Errorf("n=%d op %d: %w", n, i, err)
		}
	}
	cpuUse := float64(cpuTime()-cpu0) / float64(time.Since(wall0))
	fmt.Printf("N=%d grant_p50_ms=%.1f grant_p99_ms=%.1f revoke_p50_ms=%.1f revoke_p99_ms=%.1f\n",
		n, grants.pct(0.5), grants.pct(0.99), revokes.pct(0.5), revokes.pct(0.99))
	fmt.Printf("# N=%d %d grants: min %.1f mean %.1f p90 %.1f max %.1f ms (API call alone p50 %.1f ms); %d revokes: min %.1f mean %.1f p90 %.1f max %.1f ms (API call alone p50 %.1f ms)\n",
		n, len(grants.d), grants.pct(0), grants.mean(), grants.pct(0.9), grants.pct(1), b.grantAPI.pct(0.5),
		len(revokes.d), revokes.pct(0), revokes.mean(), revokes.pct(0.9), revokes.pct(1), b.revokeAPI.pct(0.5))
	var vs []string
	for _, v := range slices.Sorted(maps.Keys(b.byVersions)) {
		vs = append(vs, fmt.Sprintf("%d:%.0f", v, b.byVersions[v].pct(0.5)))
	}
	fmt.Printf("# N=%d grant p50 ms by versions shared with the grantee (versions:ms): %s\n", n, strings.Join(vs, " "))
	fmt.Printf("# N=%d process: rss=%.0fMiB peak_rss=%.0fMiB goroutines=%d cpu=%.2f cores busy during the ops; loadavg=%s\n",
		n, procStatus("VmRSS"), procStatus("VmHWM"), runtime.NumGoroutine(), cpuUse, loadavg())

	if o.catchup > 0 && n == o.catchupN {
		if err := b.catchUp(ctx, o.catchup); err != nil {
			return fmt.Errorf("n=%d catch-up: %w", n, err)
		}
	}
	return nil
}

// peers returns the connected peers of org1 and the least and most of the
// other nodes (-1 when a node's status cannot be read).
func (net *benchNet) peers(ctx context.Context) (first, lo, hi int) {
	var others []int
	first = -1
	for _, m := range net.members {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := m.admin.Status(cctx)
		cancel()
		p := -1
		if err == nil && st.Mesh != nil {
			p = st.Mesh.Peers
		}
		if m.i == 0 {
			first = p
		} else {
			others = append(others, p)
		}
	}
	return first, slices.Min(others), slices.Max(others)
}

// printPeers prints how many peers org1 and the others are connected to.
func (net *benchNet) printPeers(ctx context.Context, n int) {
	first, lo, hi := net.peers(ctx)
	fmt.Printf("# N=%d connected peers: org1 %d; other nodes min %d max %d\n", n, first, lo, hi)
}

// settle waits (bounded, not fatal) until every node is connected to every
// other node — nodes dial the registered nodes besides their bootstrap
// peer — and reports how long that took.
func (net *benchNet) settle(ctx context.Context, n int, bound time.Duration) {
	t0 := time.Now()
	var first, lo, hi int
	for {
		first, lo, hi = net.peers(ctx)
		if first >= n-1 && lo >= n-1 || time.Since(t0) > bound || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	state := "fully connected"
	if first < n-1 || lo < n-1 {
		state = "NOT fully connected"
	}
	fmt.Printf("# N=%d %s after %.1fs more: connected peers org1 %d, other nodes min %d max %d\n",
		n, state, time.Since(t0).Seconds(), first, lo, hi)
}

type bench struct {
	net                 *benchNet
	org1                *member
	n                   int
	key                 string
	grantAPI, revokeAPI stats
	// byVersions holds grant latencies by the number of versions the key
	// had, i.e. how many versions org1 shared with the grantee.
	byVersions map[uint32]*stats
}

func (b *bench) newKey(ctx context.Context, name string) error {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := b.org1.admin.CreateKey(cctx, apiv1.CreateKeyRequest{Name: name}); err != nil {
		return fmt.Errorf("create key %s: %w", name, err)
	}
	b.key = name
	return nil
}

// pair grants org:OrgK at org1 and waits until OrgK's node can use the key,
// then revokes it and waits until every node has applied the revocation.
func (b *bench) pair(ctx context.Context, i int, grants, revokes *stats) error {
	k := b.net.members[1+i%(b.n-1)]
	party := "org:" + k.org
	pr := principal(k.org)
	key := b.key
	o := b.net.o

	// grant → usable at OrgK's node
	v := b.org1.latest(key)
	t0 := time.Now()
	cctx, cancel := context.WithTimeout(ctx, o.opTimeout)
	_, err := b.org1.admin.CreateGrant(cctx, apiv1.CreateGrantRequest{Key: key, Party: party, Ops: []string{"decrypt"}})
	cancel()
	if err != nil {
		return fmt.Errorf("grant %s on %s: %w", party, key, err)
	}
	b.grantAPI.add(time.Since(t0))
	d, ok := poll(ctx, t0, o.opTimeout, func() bool {
		return k.n.Vault().Holds(key, v) && k.n.MeshLog().Policy().Decide(pr, key, policy.OpDecrypt, time.Now()).Allowed
	})
	if !ok {
		return fmt.Errorf("grant of %s on %s v%d not usable at %s within %s (holds=%t allowed=%t)", party, key, v, k.org, o.opTimeout,
			k.n.Vault().Holds(key, v), k.n.MeshLog().Policy().Decide(pr, key, policy.OpDecrypt, time.Now()).Allowed)
	}
	grants.add(d)
	if b.byVersions == nil {
		b.byVersions = map[uint32]*stats{}
	}
	if b.byVersions[v] == nil {
		b.byVersions[v] = &stats{}
	}
	b.byVersions[v].add(d)

	// revoke → rotated and refused at every node
	t0 = time.Now()
	cctx, cancel = context.WithTimeout(ctx, o.opTimeout)
	r, err := b.org1.admin.Revoke(cctx, key, party)
	cancel()
	if err != nil {
		return fmt.Errorf("revoke %s on %s: %w", party, key, err)
	}
	b.revokeAPI.add(time.Since(t0))
	nv := b.org1.latest(key)
	if nv != v+1 {
		return fmt.Errorf("revoke of %s on %s: org1 has %d versions, want %d (the revoke must rotate)", party, key, nv, v+1)
	}
	pending := slices.Clone(b.net.members)
	applied := func(m *member) bool {
		pol := m.n.MeshLog().Policy()
		if !slices.Contains(pol.RevocationIDs(key, policy.Party(party)), r.ID) {
			return false
		}
		if pol.Decide(pr, key, policy.OpDecrypt, time.Now()).Allowed {
			return false
		}
		if m.latest(key) < nv {
			return false
		}
		if m == k {
			for x := uint32(1); x <= nv; x++ {
				if m.n.Vault().Holds(key, x) {
					return false
				}
			}
		}
		return true
	}
	d, ok = poll(ctx, t0, o.opTimeout, func() bool {
		pending = slices.DeleteFunc(pending, applied)
		return len(pending) == 0
	})
	if !ok {
		var names []string
		for _, m := range pending {
			names = append(names, m.org)
		}
		return fmt.Errorf("revoke of %s on %s not applied within %s at %d nodes: %s", party, key, o.opTimeout, len(pending), strings.Join(names, ","))
	}
	revokes.add(d)
	// The new version must not have been wrapped for the revoked org.
	var leaked bool
	self := k.n.MeshLog().Self()
	b.org1.n.MeshLog().View(func(s *mesh.State) {
		leaked = s.Keys[key].Versions[nv-1].CopyCount(self) > 0
	})
	if leaked {
		return fmt.Errorf("revoke of %s on %s: version %d was wrapped for %s's node", party, key, nv, k.org)
	}
	return nil
}

// catchUp stops the last node, issues count grants at org1, restarts the
// node and times until its log height equals org1's.
func (b *bench) catchUp(ctx context.Context, count int) error {
	m := b.net.members[len(b.net.members)-1]
	if err := m.stop(); err != nil {
		return err
	}
	if err := b.newKey(ctx, fmt.Sprintf("bench/n%d-catchup", b.n)); err != nil {
		return err
	}
	h0 := b.org1.n.MeshLog().Height()
	t0 := time.Now()
	const workers = 4
	jobs := make(chan int)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				_, err := b.org1.admin.CreateGrant(cctx, apiv1.CreateGrantRequest{Key: b.key, Party: fmt.Sprintf("token:bench%d", j), Ops: []string{"decrypt"}})
				cancel()
				if err != nil {
					errc <- fmt.Errorf("grant %d: %w", j, err)
					return
				}
			}
		})
	}
	var ierr error
feed:
	for j := range count {
		select {
		case jobs <- j:
		case ierr = <-errc:
			break feed
		case <-ctx.Done():
			ierr = ctx.Err()
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if ierr == nil {
		select {
		case ierr = <-errc:
		default:
		}
	}
	if ierr != nil {
		return ierr
	}
	issued := time.Since(t0)
	target := b.org1.n.MeshLog().Height()
	// Let the other nodes settle so that the restarted node is the only
	// one catching up.
	if _, ok := poll(ctx, time.Now(), 60*time.Second, func() bool {
		for _, o := range b.net.members[:len(b.net.members)-1] {
			if o.n.MeshLog().Height() < target {
				return false
			}
		}
		return true
	}); !ok {
		return fmt.Errorf("the running nodes did not reach height %d within 60s", target)
	}

	t0 = time.Now()
	if err := b.net.reopen(m); err != nil {
		return err
	}
	opened := time.Since(t0)
	behind := target - m.n.MeshLog().Height()
	var ok bool
	var d time.Duration
	d, ok = poll(ctx, t0, 60*time.Second, func() bool {
		return m.n.MeshLog().Height() >= b.org1.n.MeshLog().Height()
	})
	if !ok {
		return fmt.Errorf("%s at height %d, org1 at %d, 60s after restart", m.org, m.n.MeshLog().Height(), b.org1.n.MeshLog().Height())
	}
	fmt.Printf("# catch-up measured at N=%d: %s stopped; org1 issued %d grants (token: parties; log %d → %d events) in %.1fs; %s restarted on its data dir %d events behind: node.Open+Listen %.0f ms, then heights equal %.0f ms after the restart began\n",
		b.n, m.org, count, h0, target, issued.Seconds(), m.org, behind, ms(opened), ms(d))
	fmt.Printf("catchup_%d_ms=%.0f\n", count, ms(d))
	return nil
}

// startPprof serves the default mux (net/http/pprof) on a loopback address.
func startPprof(addr string) {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		fatalf("-pprof %q: want a loopback host:port", addr)
	}
	runtime.SetMutexProfileFraction(20)
	runtime.SetBlockProfileRate(int(100 * time.Microsecond))
	go func() {
		if err := http.ListenAndServe(addr, nil); err != nil {
			fmt.Fprintln(os.Stderr, "benchmesh: pprof:", err)
		}
	}()
}
