// Command loadgen is a small HTTP load generator for keymesh's encrypt and
// decrypt endpoints, used by scripts/bench-api.sh.
//
//	go run ./scripts/loadgen -url http://127.0.0.1:18420 -token-file T -key bench/field
//	go run ./scripts/loadgen ... -batch 1000 -c 4
//	go run ./scripts/loadgen ... -op decrypt
//
// It pre-builds a few distinct request bodies and reuses them, so the
// generator itself costs little CPU; it keeps its connections alive, reads
// every response body fully and checks the status (and, for batches, that no
// item failed). Latencies are recorded per request during the measured
// phase (after the warm-up) and the percentiles are exact.
//
// It prints exactly one line on stdout:
//
//	encrypt_rps=… p50_ms=… p99_ms=… errors=… requests=… duration_s=…   (single encrypt)
//	decrypt_rps=… p50_ms=… p99_ms=… errors=… requests=… duration_s=…   (single decrypt)
//	batch_items_per_s=… batch_rps=… p50_ms=… p99_ms=… errors=…         (batch, either op)
//
// rps and items/s count successful requests of the measured phase;
// "requests" counts all requests of the measured phase; "errors" counts the
// failed requests of the whole run, warm-up included (a non-200 status, a
// transport error, or a 200 batch with a failed item). The exit status is 1
// when any request failed, 2 on bad usage. After -max-errors failures (default
// 1000) the run stops early rather than spin against a broken server.
//
// It only targets loopback addresses (127.0.0.0/8, ::1, localhost): this is a
// load test, and nothing else is ever to receive one. The total number of
// requests is bounded by -max-requests whatever the duration.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keymesh/keymesh/node/apiv1"
)

// benchContext is the encryption context of every item.
var benchContext = map[string]string{"field": "bench"}

type config struct {
	baseURL     string
	token       string
	key         string
	conc        int
	duration    time.Duration
	warmup      time.Duration
	batch       int
	size        int
	maxRequests int64
	mode        string
	op          string
	bodies      int
	timeout     time.Duration
	maxErrors   int64
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 2
	}
	client := newClient(cfg)
	defer client.CloseIdleConnections()

	encBodies, plaintexts, err := buildEncryptBodies(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 2
	}
	path := "/v1/encrypt"
	bodies := encBodies
	if cfg.op == "decrypt" {
		bodies, err = buildDecryptBodies(ctx, client, cfg, encBodies, plaintexts)
		if err != nil {
			fmt.Fprintf(stderr, "loadgen: preparing decrypt bodies: %v\n", err)
			return 1
		}
		path = "/v1/decrypt"
	}
	for _, b := range bodies {
		if len(b) > apiv1.MaxBodyBytes {
			fmt.Fprintf(stderr, "loadgen: a request body of %d bytes is over the server's limit of %d; lower -batch or -size\n", len(b), apiv1.MaxBodyBytes)
			return 2
		}
	}

	fmt.Fprintf(stderr, "loadgen: POST %s%s op=%s mode=%s c=%d warmup=%s d=%s batch=%d size=%d bodies=%d (%d B each) GOMAXPROCS=%d\n",
		cfg.baseURL, path, cfg.op, cfg.mode, cfg.conc, cfg.warmup, cfg.duration, cfg.batch, cfg.size,
		len(bodies), len(bodies[0]), runtime.GOMAXPROCS(0))

	res := drive(ctx, client, cfg, cfg.baseURL+path, bodies, stderr)
	fmt.Fprintln(stdout, res.line(cfg))
	if res.errors > 0 {
		return 1
	}
	if res.measured == 0 {
		fmt.Fprintln(stderr, "loadgen: no request completed in the measured phase (interrupted, or -max-requests spent in the warm-up)")
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.baseURL, "url", "http://127.0.0.1:18420", "keymesh base `URL` (loopback only)")
	fs.StringVar(&cfg.token, "token", "", "bearer `token` (prefer -token-file: arguments are visible to other users)")
	tokenFile := fs.String("token-file", "", "read the bearer token from `file`")
	fs.StringVar(&cfg.key, "key", "bench/field", "key `name`")
	fs.IntVar(&cfg.conc, "c", 16, "concurrency (workers, one connection each)")
	fs.DurationVar(&cfg.duration, "d", 10*time.Second, "measured `duration`")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "warm-up `duration` before measuring")
	fs.IntVar(&cfg.batch, "batch", 0, "items per request: 0 = single-item requests, N = batch requests of N items")
	fs.IntVar(&cfg.size, "size", 64, "plaintext `bytes` per item")
	fs.Int64Var(&cfg.maxRequests, "max-requests", 5_000_000, "hard bound on the total number of requests, warm-up included")
	fs.StringVar(&cfg.mode, "mode", "random", "encryption mode: random or endorsement (generated tx_id and tx_time; since issue 10 the node grants endorsement mode only to a chaincode token with a verified signed proposal, so this answers 403 with other tokens)")
	fs.StringVar(&cfg.op, "op", "encrypt", "operation: encrypt or decrypt (decrypt first encrypts one envelope per body item)")
	fs.IntVar(&cfg.bodies, "bodies", 0, "distinct request bodies to cycle through (default 16 single, 4 batch)")
	fs.DurationVar(&cfg.timeout, "timeout", 30*time.Second, "per-request `timeout`")
	fs.Int64Var(&cfg.maxErrors, "max-errors", 1000, "stop the run early after this many failed requests (0 = never)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := checkLoopback(cfg.baseURL); err != nil {
		return cfg, err
	}
	cfg.baseURL = strings.TrimRight(cfg.baseURL, "/")
	if *tokenFile != "" {
		if cfg.token != "" {
			return cfg, errors.New("give -token or -token-file, not both")
		}
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return cfg, err
		}
		cfg.token = strings.TrimSpace(string(b))
	}
	if cfg.token == "" {
		return cfg, errors.New("a bearer token is required (-token or -token-file)")
	}
	switch {
	case cfg.key == "":
		return cfg, errors.New("-key is required")
	case cfg.conc < 1:
		return cfg, errors.New("-c must be at least 1")
	case cfg.duration <= 0:
		return cfg, errors.New("-d must be positive")
	case cfg.warmup < 0:
		return cfg, errors.New("-warmup must not be negative")
	case cfg.batch < 0 || cfg.batch > apiv1.MaxBatchItems:
		return cfg, fmt.Errorf("-batch must be between 0 and %d", apiv1.MaxBatchItems)
	case cfg.size < 0:
		return cfg, errors.New("-size must not be negative")
	case cfg.maxRequests < 1:
		return cfg, errors.New("-max-requests must be at least 1")
	case cfg.mode != "random" && cfg.mode != "endorsement":
		return cfg, fmt.Errorf("-mode %q: want random or endorsement", cfg.mode)
	case cfg.op != "encrypt" && cfg.op != "decrypt":
		return cfg, fmt.Errorf("-op %q: want encrypt or decrypt", cfg.op)
	case cfg.bodies < 0:
		return cfg, errors.New("-bodies must not be negative")
	case cfg.timeout <= 0:
		return cfg, errors.New("-timeout must be positive")
	case cfg.maxErrors < 0:
		return cfg, errors.New("-max-errors must not be negative")
	}
	if cfg.bodies == 0 {
		cfg.bodies = 16
		if cfg.batch > 0 {
			cfg.bodies = 4
		}
	}
	return cfg, nil
}

// checkLoopback refuses any target that is not on this machine's loopback.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("-url: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("-url %q: want an http:// or https:// base URL", raw)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("-url %q: want a bare base URL (scheme://host:port)", raw)
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-url %q: refusing a non-loopback target (only 127.0.0.0/8, ::1 and localhost)", raw)
	}
	return nil
}

func newClient(cfg config) *http.Client {
	dialer := &net.Dialer{
		Timeout:   5 * time.Second,
		KeepAlive: 30 * time.Second,
		// Defence in depth for names such as localhost: whatever a name
		// resolves to, connect to loopback addresses only.
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("refusing to connect to non-loopback address %s", address)
			}
			return nil
		},
	}
	tr := &http.Transport{
		Proxy:                 nil, // never send loopback traffic through a proxy from the environment
		DialContext:           dialer.DialContext,
		MaxIdleConns:          cfg.conc,
		MaxIdleConnsPerHost:   cfg.conc,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		ResponseHeaderTimeout: cfg.timeout,
		WriteBufferSize:       64 << 10,
		ReadBufferSize:        64 << 10,
	}
	return &http.Client{Transport: tr, Timeout: cfg.timeout}
}

// buildEncryptBodies returns cfg.bodies distinct encrypt request bodies and
// the plaintexts of each (one per item).
func buildEncryptBodies(cfg config) ([][]byte, [][][]byte, error) {
	items := max(cfg.batch, 1)
	txTime := time.Now().UTC()
	runID := make([]byte, 6)
	if _, err := rand.Read(runID); err != nil {
		return nil, nil, err
	}
	bodies := make([][]byte, cfg.bodies)
	pts := make([][][]byte, cfg.bodies)
	for b := range cfg.bodies {
		pts[b] = make([][]byte, items)
		enc := make([]apiv1.EncryptItem, items)
		for i := range items {
			pt := make([]byte, cfg.size)
			if _, err := rand.Read(pt); err != nil {
				return nil, nil, err
			}
			pts[b][i] = pt
			enc[i] = apiv1.EncryptItem{Plaintext: pt, Context: benchContext}
			if cfg.mode == "endorsement" {
				enc[i].TxID = fmt.Sprintf("bench-%s-%d-%d", hex.EncodeToString(runID), b, i)
				enc[i].TxTime = &txTime
			}
		}
		req := apiv1.EncryptRequest{Key: cfg.key}
		if cfg.mode == "endorsement" {
			req.Mode = "endorsement"
		}
		if cfg.batch > 0 {
			req.Batch = enc
		} else {
			req.Plaintext, req.Context, req.TxID, req.TxTime = enc[0].Plaintext, enc[0].Context, enc[0].TxID, enc[0].TxTime
		}
		body, err := json.Marshal(req)
		if err != nil {
			return nil, nil, err
		}
		bodies[b] = body
	}
	return bodies, pts, nil
}

// buildDecryptBodies encrypts each encrypt body once and turns the envelopes
// into decrypt bodies; it checks one round trip of every body.
func buildDecryptBodies(ctx context.Context, client *http.Client, cfg config, encBodies [][]byte, pts [][][]byte) ([][]byte, error) {
	out := make([][]byte, len(encBodies))
	for b, eb := range encBodies {
		var er apiv1.EncryptResponse
		if err := postJSON(ctx, client, cfg, "/v1/encrypt", eb, &er); err != nil {
			return nil, err
		}
		var dreq apiv1.DecryptRequest
		if cfg.batch > 0 {
			if len(er.Batch) != len(pts[b]) {
				return nil, fmt.Errorf("encrypt: %d results for %d items", len(er.Batch), len(pts[b]))
			}
			dreq.Batch = make([]apiv1.DecryptItem, len(er.Batch))
			for i, r := range er.Batch {
				if r.Error != nil {
					return nil, fmt.Errorf("encrypt: item %d: %s: %s", i, r.Error.Code, r.Error.Message)
				}
				dreq.Batch[i] = apiv1.DecryptItem{Ciphertext: r.Ciphertext, Context: benchContext}
			}
		} else {
			if er.Ciphertext == "" {
				return nil, errors.New("encrypt: no ciphertext in the response")
			}
			dreq.Ciphertext, dreq.Context = er.Ciphertext, benchContext
		}
		body, err := json.Marshal(dreq)
		if err != nil {
			return nil, err
		}
		var dr apiv1.DecryptResponse
		if err := postJSON(ctx, client, cfg, "/v1/decrypt", body, &dr); err != nil {
			return nil, err
		}
		if cfg.batch > 0 {
			if len(dr.Batch) != len(pts[b]) {
				return nil, fmt.Errorf("decrypt: %d results for %d items", len(dr.Batch), len(pts[b]))
			}
			for i, r := range dr.Batch {
				if r.Error != nil {
					return nil, fmt.Errorf("decrypt: item %d: %s: %s", i, r.Error.Code, r.Error.Message)
				}
				if !bytes.Equal(r.Plaintext, pts[b][i]) {
					return nil, fmt.Errorf("decrypt: item %d: the plaintext differs from the one encrypted", i)
				}
			}
		} else if !bytes.Equal(dr.Plaintext, pts[b][0]) {
			return nil, errors.New("decrypt: the plaintext differs from the one encrypted")
		}
		out[b] = body
	}
	return out, nil
}

func postJSON(ctx context.Context, client *http.Client, cfg config, path string, body []byte, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.baseURL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, truncate(data))
	}
	return json.Unmarshal(data, v)
}

type result struct {
	measured  int64           // requests started in the measured phase and completed
	ok        int64           // of which succeeded
	errors    int64           // failed requests of the whole run
	latencies []time.Duration // successful measured requests, sorted
	elapsed   time.Duration   // measured phase, until the last worker finished
	items     int             // items per request
}

func (r result) percentile(p float64) time.Duration {
	n := len(r.latencies)
	if n == 0 {
		return 0
	}
	// Nearest rank: the smallest value with at least p of the samples at or below it.
	i := int(p*float64(n)+0.999999999) - 1
	return r.latencies[min(max(i, 0), n-1)]
}

func (r result) line(cfg config) string {
	secs := r.elapsed.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(r.ok) / secs
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	p50, p99 := ms(r.percentile(0.50)), ms(r.percentile(0.99))
	if cfg.batch > 0 {
		return fmt.Sprintf("batch_items_per_s=%.0f batch_rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d",
			rate*float64(r.items), rate, p50, p99, r.errors)
	}
	return fmt.Sprintf("%s_rps=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d requests=%d duration_s=%.2f",
		cfg.op, rate, p50, p99, r.errors, r.measured, secs)
}

type worker struct {
	lat      []time.Duration
	measured int64
	ok       int64
	errors   int64
}

// drive runs cfg.conc workers for the warm-up and the measured phase.
func drive(ctx context.Context, client *http.Client, cfg config, target string, bodies [][]byte, stderr io.Writer) result {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	measureStart := start.Add(cfg.warmup)
	end := measureStart.Add(cfg.duration)

	var issued, failed atomic.Int64
	var firstErr sync.Once
	report := func(msg string) {
		firstErr.Do(func() { fmt.Fprintf(stderr, "loadgen: first error: %s\n", msg) })
		if n := failed.Add(1); cfg.maxErrors > 0 && n == cfg.maxErrors {
			fmt.Fprintf(stderr, "loadgen: %d failed requests; stopping early\n", n)
			cancel()
		}
	}
	auth := []string{"Bearer " + cfg.token}
	ctype := []string{"application/json"}
	batch := cfg.batch > 0
	// A failed batch item carries {"error":{…}}; ciphertexts (base64url) and
	// plaintexts (base64) never hold a quote, so the bytes cannot appear otherwise.
	itemErr := []byte(`"error":{`)

	// Preallocate for a generous rate; append grows past it if need be.
	perWorker := min(cfg.maxRequests/int64(cfg.conc)+1, int64(cfg.duration.Seconds()*80_000/float64(cfg.conc))+1024)
	workers := make([]worker, cfg.conc)
	var wg sync.WaitGroup
	for w := range workers {
		wk := &workers[w]
		wk.lat = make([]time.Duration, 0, perWorker)
		wg.Go(func() {
			var buf bytes.Buffer
			next := w % len(bodies)
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(end) || issued.Add(1) > cfg.maxRequests {
					return
				}
				body := bodies[next]
				next++
				if next == len(bodies) {
					next = 0
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
				if err != nil {
					wk.errors++
					report(err.Error())
					return
				}
				req.Header = http.Header{"Authorization": auth, "Content-Type": ctype}
				resp, err := client.Do(req)
				if err == nil {
					buf.Reset()
					_, err = buf.ReadFrom(resp.Body)
					resp.Body.Close()
				}
				d := time.Since(t0)
				measured := !t0.Before(measureStart)
				if err != nil {
					if ctx.Err() != nil {
						return // interrupted: not the server's failure
					}
					wk.errors++
					if measured {
						wk.measured++
					}
					report(err.Error())
					continue
				}
				if measured {
					wk.measured++
				}
				if resp.StatusCode != http.StatusOK {
					wk.errors++
					report(resp.Status + ": " + truncate(buf.Bytes()))
					continue
				}
				if batch {
					if i := bytes.Index(buf.Bytes(), itemErr); i >= 0 {
						wk.errors++
						b := buf.Bytes()[i:]
						report("200 with a failed batch item: …" + truncate(b[:min(len(b), 160)]))
						continue
					}
				}
				if measured {
					wk.ok++
					wk.lat = append(wk.lat, d)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(measureStart)

	res := result{items: max(cfg.batch, 1), elapsed: max(elapsed, 0)}
	n := 0
	for i := range workers {
		n += len(workers[i].lat)
	}
	res.latencies = make([]time.Duration, 0, n)
	for i := range workers {
		w := &workers[i]
		res.latencies = append(res.latencies, w.lat...)
		res.measured += w.measured
		res.ok += w.ok
		res.errors += w.errors
	}
	slices.Sort(res.latencies)
	return res
}

func truncate(b []byte) string {
	const limit = 512
	if len(b) > limit {
		return strings.ToValidUTF8(string(b[:limit]), "") + "…"
	}
	return strings.TrimSpace(string(b))
}
