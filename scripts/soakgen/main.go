// Command soakgen drives a mixed soak load against one keymeshd and prints
// the daemon's resident memory over time; scripts/soak.sh runs it.
//
//	go run ./scripts/soakgen -url http://127.0.0.1:18420 -admin-token-file A \
//	    -token-file T -key bench/field -pid 1234 -c 16 -admin-frac 0.1 -d 3m
//
// Each of the -c workers owns one key soak/kN and one party token:soakN. A
// worker's request is an admin grant/revoke of its own pair with
// probability -admin-frac (a grant, then a revoke of the pair, then a grant
// …) and otherwise a single encrypt on -key with the client token. Every
// -every it prints one line:
//
//	t=30s rss_mib=84.2 anon_mib=60.1 file_mib=24.1 req=24311 rps=810 admin=2431 errors=0
//
// and at the end a summary line with the peak and last RSS sampled and the
// kernel's high-water mark (VmHWM). RSS is read from /proc/PID/status.
// Only loopback targets are accepted.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keymesh/keymesh/node/apiv1"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx))
}

func readToken(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		fatalf("%v", err)
	}
	return strings.TrimSpace(string(b))
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "soakgen: "+format+"\n", a...)
	os.Exit(2)
}

type client struct {
	http        *http.Client
	base        string
	admin, user string
}

func (c *client) post(ctx context.Context, tok, path string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusConflict {
		return fmt.Errorf("POST %s: %s: %.200s", path, resp.Status, data)
	}
	return nil
}

// rss returns the process's resident memory in MiB: the total (VmRSS),
// its anonymous part (the Go heap, stacks), its file-backed part
// (badger's memory-mapped tables and logs, which the kernel may drop)
// and the total's high-water mark since the process started (VmHWM),
// which catches the peaks between samples.
func rss(pid int) (total, anon, file, hwm float64) {
	total, anon, file, hwm = math.NaN(), math.NaN(), math.NaN(), math.NaN()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			total = kb / 1024
		case "RssAnon:":
			anon = kb / 1024
		case "RssFile:":
			file = kb / 1024
		case "VmHWM:":
			hwm = kb / 1024
		}
	}
	return
}

func run(ctx context.Context) int {
	base := flag.String("url", "http://127.0.0.1:18420", "keymesh base `URL` (loopback only)")
	adminFile := flag.String("admin-token-file", "", "admin token `file`")
	userFile := flag.String("token-file", "", "client token `file` (granted encrypt on -key)")
	key := flag.String("key", "bench/field", "key for the encrypts")
	pid := flag.Int("pid", 0, "keymeshd's process id (for RSS)")
	conc := flag.Int("c", 16, "workers")
	frac := flag.Float64("admin-frac", 0.1, "fraction of requests that are grant/revoke")
	dur := flag.Duration("d", 3*time.Minute, "duration")
	every := flag.Duration("every", 10*time.Second, "RSS sampling interval")
	flag.Parse()
	u, err := url.Parse(*base)
	if err != nil || (u.Hostname() != "localhost" && !net.ParseIP(u.Hostname()).IsLoopback()) {
		fatalf("-url %q: loopback only", *base)
	}
	if *adminFile == "" || *userFile == "" || *pid == 0 {
		fatalf("-admin-token-file, -token-file and -pid are required")
	}
	c := &client{
		http: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
			Proxy: nil, MaxIdleConns: *conc * 2, MaxIdleConnsPerHost: *conc * 2,
		}},
		base: strings.TrimRight(*base, "/"), admin: readToken(*adminFile), user: readToken(*userFile),
	}
	for i := range *conc {
		body, _ := json.Marshal(apiv1.CreateKeyRequest{Name: fmt.Sprintf("soak/k%d", i)})
		if err := c.post(ctx, c.admin, "/v1/keys", body); err != nil {
			fatalf("%v", err)
		}
	}
	pt := make([]byte, 64)
	_, _ = rand.Read(pt)
	encBody, _ := json.Marshal(apiv1.EncryptRequest{Key: *key, Plaintext: pt, Context: map[string]string{"field": "soak"}})

	var reqs, admins, errs atomic.Int64
	ctx, cancel := context.WithTimeout(ctx, *dur)
	defer cancel()
	var wg sync.WaitGroup
	for i := range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := mrand.New(mrand.NewPCG(uint64(i), 1))
			k, p := fmt.Sprintf("soak/k%d", i), fmt.Sprintf("token:soak%d", i)
			grantBody, _ := json.Marshal(apiv1.CreateGrantRequest{Key: k, Party: p, Ops: []string{"encrypt", "decrypt"}})
			revokeBody, _ := json.Marshal(apiv1.RevokeRequest{Key: k, Party: p})
			granted := false
			for ctx.Err() == nil {
				var err error
				if r.Float64() < *frac {
					if granted {
						err = c.post(ctx, c.admin, "/v1/grants/revoke", revokeBody)
					} else {
						err = c.post(ctx, c.admin, "/v1/grants", grantBody)
					}
					granted = !granted
					admins.Add(1)
				} else {
					err = c.post(ctx, c.user, "/v1/encrypt", encBody)
				}
				if ctx.Err() != nil {
					return
				}
				reqs.Add(1)
				if err != nil {
					if errs.Add(1) <= 3 {
						fmt.Fprintln(os.Stderr, "soakgen:", err)
					}
				}
			}
		}()
	}
	start := time.Now()
	t := time.NewTicker(*every)
	defer t.Stop()
	peak, last, hwm := 0.0, 0.0, 0.0
	var lastReq int64
	lastT := start
	report := func() {
		now := time.Now()
		m, anon, file, h := rss(*pid)
		last, peak, hwm = m, max(peak, m), h
		n := reqs.Load()
		fmt.Printf("t=%ds rss_mib=%.1f anon_mib=%.1f file_mib=%.1f req=%d rps=%.0f admin=%d errors=%d\n",
			int(now.Sub(start).Round(time.Second).Seconds()), m, anon, file, n,
			float64(n-lastReq)/now.Sub(lastT).Seconds(), admins.Load(), errs.Load())
		lastReq, lastT = n, now
	}
	report()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-t.C:
			report()
		}
	}
	wg.Wait()
	report()
	el := time.Since(start).Seconds()
	fmt.Printf("summary: duration_s=%.0f requests=%d rps=%.0f admin=%d errors=%d peak_rss_mib=%.1f last_rss_mib=%.1f vmhwm_mib=%.1f\n",
		el, reqs.Load(), float64(reqs.Load())/el, admins.Load(), errs.Load(), peak, last, hwm)
	if errs.Load() > 0 {
		return 1
	}
	return 0
}
