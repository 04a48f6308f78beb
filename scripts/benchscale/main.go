// Command benchscale measures how one keymeshd's costs grow with what it
// holds; scripts/bench-scale.sh runs it.
//
//	go run ./scripts/benchscale -keymeshd BIN -sizes 1000,10000,100000 -dims keys,grants-one,grants-spread,audit
//
// For each dimension it starts a fresh `keymeshd --dev` on a loopback port
// and grows it, through the REST API with 8 concurrent clients, to each
// size in turn:
//
//	keys           keys created (bench/kN)
//	grants-one     grants on one key, each to another token: party
//	grants-spread  grants spread over 100 keys
//	audit          audit entries (single encrypts)
//
// At each size it prints one line: the growth rate and the p50/p99 of the
// last 1,000 growing requests (the grant latency for the grant
// dimensions), then restarts the daemon and prints the restart time (from
// exec to /readyz), the idle RSS 2 s after the restart, single encrypt and
// decrypt p50/p99 (2,000 each, 4 clients), GET /v1/status and one page of
// GET /v1/keys, and, for audit, a synchronous POST /v1/audit/verify. Every
// figure after the first size carries its growth exponent b against the
// previous size (figure ∝ size^b). Traffic goes to 127.0.0.1 only.
//
// -keep DIR saves each size's stopped data directory as DIR/<dim>-<size>;
// then
//
//	go run ./scripts/benchscale -keymeshd OLD,NEW -restart DIR/keys-1000,DIR/keys-10000 -rounds 3
//
// times restarts only, of the same directories with each binary in turn
// (interleaved, each on a fresh copy that binary has first started and
// stopped once), and prints each run and the median per binary and
// directory: the restart time and the RSS 2 s after it (VmRSS, and its
// anonymous and file-backed parts).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keymesh/keymesh/node/apiv1"
)

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "benchscale: "+format+"\n", a...)
	os.Exit(1)
}

type daemon struct {
	bin, dir, url string
	cmd           *exec.Cmd
	admin, user   string
	hc            *http.Client
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatalf("%v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs the daemon and returns how long it took to be ready.
func (d *daemon) start() time.Duration {
	d.url = fmt.Sprintf("http://127.0.0.1:%d", freePort())
	t0 := time.Now()
	d.cmd = exec.Command(d.bin, "--dev", "--data", filepath.Join(d.dir, "data"), "--listen", strings.TrimPrefix(d.url, "http://"), "--log-level", "warn")
	logf, _ := os.Create(filepath.Join(d.dir, "log"))
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		fatalf("start: %v", err)
	}
	for time.Since(t0) < 2*time.Minute {
		resp, err := d.hc.Get(d.url + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(t0)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	fatalf("not ready in 2 min")
	return 0
}

func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	_ = d.cmd.Wait()
}

func (d *daemon) rss() float64 { return d.status("VmRSS") }

// status returns a field of the daemon's /proc/PID/status in MiB (VmRSS,
// RssAnon: its own memory, RssFile: pages of mapped files, badger's
// tables and value log, that the page cache holds anyway).
func (d *daemon) status(field string) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field+":" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return math.NaN()
}

// cpuSeconds returns the user and system CPU time the daemon has used
// (/proc/PID/stat, in clock ticks of 1/100 s).
func (d *daemon) cpuSeconds() float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:] // the command name may hold spaces
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return math.NaN()
	}
	u, _ := strconv.ParseFloat(f[11], 64) // utime, field 14 of stat
	k, _ := strconv.ParseFloat(f[12], 64) // stime, field 15
	return (u + k) / 100
}

func (d *daemon) call(method, path, tok string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, d.url+path, body)
	req.Header.Set("Authorization", "Bearer "+tok)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %.200s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(data, out)
	}
	return resp.StatusCode, nil
}

func (d *daemon) must(method, path, tok string, in, out any) {
	if _, err := d.call(method, path, tok, in, out); err != nil {
		fatalf("%v", err)
	}
}

// timed runs n calls of f on conc workers and returns the latencies.
func timed(n, conc int, f func(i int)) ([]time.Duration, time.Duration) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				s := time.Now()
				f(i)
				lat[i] = time.Since(s)
			}
		}()
	}
	wg.Wait()
	return lat, time.Since(t0)
}

func pct(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return math.NaN()
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(float64(len(s))*p))].Microseconds()) / 1000
}

type exps struct {
	prev     map[string]float64
	prevSize int
}

func (e *exps) f(name string, v float64, size int) string {
	out := fmt.Sprintf("%s=%.3g", name, v)
	if p, ok := e.prev[name]; ok && p > 0 && v > 0 && e.prevSize > 0 {
		out += fmt.Sprintf(" (b=%.2f)", math.Log(v/p)/math.Log(float64(size)/float64(e.prevSize)))
	}
	e.prev[name] = v
	return out
}

func main() {
	bin := flag.String("keymeshd", "", "keymeshd binary")
	sizesF := flag.String("sizes", "1000,10000", "sizes")
	dimsF := flag.String("dims", "keys,grants-one,grants-spread,audit", "dimensions")
	conc := flag.Int("c", 8, "concurrent clients while growing")
	flag.StringVar(&keep, "keep", "", "copy the stopped daemon's data directory at each size to `dir`/<dim>-<size> (for -restart)")
	restartDirs := flag.String("restart", "", "only time restarts: of each data `dir` (comma-separated, as -keep saved them), with each -keymeshd binary (comma-separated), interleaved")
	rounds := flag.Int("rounds", 3, "rounds of -restart")
	flag.Parse()
	if *bin == "" {
		fatalf("-keymeshd is required")
	}
	if *restartDirs != "" {
		restarts(strings.Split(*bin, ","), strings.Split(*restartDirs, ","), *rounds)
		return
	}
	var sizes []int
	for _, f := range strings.Split(*sizesF, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			fatalf("-sizes: %q", f)
		}
		sizes = append(sizes, n)
	}
	for _, dim := range strings.Split(*dimsF, ",") {
		run(*bin, dim, sizes, *conc)
	}
}

func run(bin, dim string, sizes []int, conc int) {
	dir, err := os.MkdirTemp("", "keymesh-scale.")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(dir)
	d := &daemon{bin: bin, dir: dir, hc: &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}}}
	d.start()
	defer d.stop()
	tok, _ := os.ReadFile(filepath.Join(dir, "data", "admin.token"))
	d.admin = strings.TrimSpace(string(tok))
	d.must("POST", "/v1/keys", d.admin, apiv1.CreateKeyRequest{Name: "bench/field"}, nil)
	var ct struct {
		Token string `json:"token"`
	}
	d.must("POST", "/v1/tokens", d.admin, apiv1.CreateTokenRequest{Party: "token:bench", Label: "scale"}, &ct)
	d.user = ct.Token
	d.must("POST", "/v1/grants", d.admin, apiv1.CreateGrantRequest{Key: "bench/field", Party: "token:bench", Ops: []string{"encrypt", "decrypt"}}, nil)
	if dim == "grants-spread" {
		timed(100, conc, func(i int) {
			d.must("POST", "/v1/keys", d.admin, apiv1.CreateKeyRequest{Name: fmt.Sprintf("spread/k%d", i)}, nil)
		})
	}
	if dim == "grants-one" {
		d.must("POST", "/v1/keys", d.admin, apiv1.CreateKeyRequest{Name: "one/k"}, nil)
	}
	enc := apiv1.EncryptRequest{Key: "bench/field", Plaintext: make([]byte, 64), Context: map[string]string{"f": "x"}}
	grow := func(i int) {
		switch dim {
		case "keys":
			d.must("POST", "/v1/keys", d.admin, apiv1.CreateKeyRequest{Name: fmt.Sprintf("bench/k%d", i)}, nil)
		case "grants-one":
			d.must("POST", "/v1/grants", d.admin, apiv1.CreateGrantRequest{Key: "one/k", Party: fmt.Sprintf("token:p%d", i), Ops: []string{"decrypt"}}, nil)
		case "grants-spread":
			d.must("POST", "/v1/grants", d.admin, apiv1.CreateGrantRequest{Key: fmt.Sprintf("spread/k%d", i%100), Party: fmt.Sprintf("token:p%d", i), Ops: []string{"decrypt"}}, nil)
		case "audit":
			d.must("POST", "/v1/encrypt", d.user, enc, nil)
		default:
			fatalf("unknown dimension %q", dim)
		}
	}
	e := &exps{prev: map[string]float64{}}
	have := 0
	for _, size := range sizes {
		lat, el := timed(size-have, conc, func(i int) { grow(have + i) })
		rate := float64(size-have) / el.Seconds()
		last := lat[max(0, len(lat)-1000):]
		have = size
		d.stop()
		if keep != "" {
			dst := filepath.Join(keep, fmt.Sprintf("%s-%d", dim, size))
			if out, err := exec.Command("cp", "-a", filepath.Join(dir, "data"), dst).CombinedOutput(); err != nil {
				fatalf("keep: %v %s", err, out)
			}
		}
		restart := d.start()
		time.Sleep(2 * time.Second)
		rss := d.rss()
		var er apiv1.EncryptResponse
		d.must("POST", "/v1/encrypt", d.user, enc, &er)
		dec := apiv1.DecryptRequest{Ciphertext: er.Ciphertext, Context: enc.Context}
		encLat, _ := timed(2000, 4, func(int) { d.must("POST", "/v1/encrypt", d.user, enc, nil) })
		decLat, _ := timed(2000, 4, func(int) { d.must("POST", "/v1/decrypt", d.user, dec, nil) })
		stLat, _ := timed(20, 1, func(int) { d.must("GET", "/v1/status", d.admin, nil, nil) })
		pgLat, _ := timed(5, 1, func(int) { d.must("GET", "/v1/keys?limit=1000", d.admin, nil, nil) })
		extra := ""
		if dim == "audit" {
			vLat, _ := timed(1, 1, func(int) { d.must("POST", "/v1/audit/verify", d.admin, nil, nil) })
			extra = " " + e.f("verify_ms", pct(vLat, .5), size)
		}
		fmt.Printf("%s size=%d %s %s %s %s %s %s %s %s %s %s %s %s%s\n", dim, size,
			e.f("grow_per_s", rate, size), e.f("grow_p50_ms", pct(last, .5), size), e.f("grow_p99_ms", pct(last, .99), size),
			e.f("restart_ms", float64(restart.Microseconds())/1000, size), e.f("rss_mib", rss, size),
			e.f("enc_p50_ms", pct(encLat, .5), size), e.f("enc_p99_ms", pct(encLat, .99), size),
			e.f("dec_p50_ms", pct(decLat, .5), size), e.f("dec_p99_ms", pct(decLat, .99), size),
			e.f("status_ms", pct(stLat, .5), size), e.f("keys_page_ms", pct(pgLat, .5), size),
			e.f("rss_after_mib", d.rss(), size), extra)
		e.prevSize = size
	}
}

// keep is -keep: where run saves each size's data directory.
var keep string

// restarts times, for each saved data directory, a restart with each
// binary in turn, rounds times, and prints each run (time, CPU time to
// ready, RSS 2 s after) and the medians per binary. Each round starts
// from a fresh copy of the directory that the binary first starts and
// stops cleanly, untimed: the timed restart is of a node the same binary
// shut down (what it wrote at shutdown is its own format).
func restarts(bins, dirs []string, rounds int) {
	tmp, err := os.MkdirTemp("", "keymesh-restart.")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(tmp)
	run := filepath.Join(tmp, "run")
	for _, src := range dirs {
		times := make([][]time.Duration, len(bins))
		rss := make([][][4]float64, len(bins)) // VmRSS, RssAnon, RssFile (MiB), CPU seconds to ready
		for range rounds {
			for i, bin := range bins {
				if err := os.RemoveAll(run); err != nil {
					fatalf("%v", err)
				}
				if err := os.MkdirAll(run, 0o700); err != nil {
					fatalf("%v", err)
				}
				if out, err := exec.Command("cp", "-a", src, filepath.Join(run, "data")).CombinedOutput(); err != nil {
					fatalf("copy %s: %v %s", src, err, out)
				}
				d := &daemon{bin: bin, dir: run, hc: &http.Client{Timeout: time.Minute, Transport: &http.Transport{Proxy: nil}}}
				d.start()
				d.stop()
				load := loadavg()
				t := d.start()
				cpu := d.cpuSeconds() // at /readyz: what the start cost, whatever else runs on the machine
				times[i] = append(times[i], t)
				time.Sleep(2 * time.Second) // as run: the idle RSS 2 s after the restart
				r := [4]float64{d.rss(), d.status("RssAnon"), d.status("RssFile"), cpu}
				rss[i] = append(rss[i], r)
				d.stop()
				fmt.Printf("restart-run dir=%s bin=%s ms=%.0f cpu_s=%.2f rss_mib=%.0f anon_mib=%.0f file_mib=%.0f load_before=%q\n",
					filepath.Base(src), filepath.Base(bin), float64(t.Microseconds())/1000, cpu, r[0], r[1], r[2], load)
			}
		}
		for i, bin := range bins {
			ms := make([]string, len(times[i]))
			for j, t := range times[i] {
				ms[j] = fmt.Sprintf("%.0f", float64(t.Microseconds())/1000)
			}
			var med [4]float64
			for f := range med {
				col := make([]float64, len(rss[i]))
				for j, r := range rss[i] {
					col[j] = r[f]
				}
				slices.Sort(col)
				med[f] = col[len(col)/2]
			}
			fmt.Printf("restart dir=%s bin=%s median_ms=%.0f runs_ms=%s cpu_s=%.2f rss_mib=%.0f anon_mib=%.0f file_mib=%.0f load=%q\n", filepath.Base(src), filepath.Base(bin),
				pct(times[i], .5), strings.Join(ms, ","), med[3], med[0], med[1], med[2], loadavg())
		}
	}
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
