package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	kmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/payloads"

	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
	"github.com/keymesh/keymesh/vault"
)

// Benchmarks of the KMIP front door beside the REST API on loopback, the
// clients in the same process as the node (they share its cores). Each
// reports ops/s and the p99 latency of one request; run with
//
//	go test ./node -run XXX -bench 'KMIP|RESTEncrypt' -benchtime 5s -cpu 2
//
// (the figures are in docs/benchmarks.md). Parallelism is the number of
// client connections (b.SetParallelism × GOMAXPROCS).

type benchEnv struct {
	n     *Node
	pki   *kmipPKI
	id    string
	rest  string // a token granted encrypt on restKey
	stop  func()
	admin *client.Client
}

var restKey = "kmip/rest-bench"

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	pki := newKMIPPKI(b)
	n, admin, stop := startKMIPNode(b, pki)
	e := &benchEnv{n: n, pki: pki, stop: stop}
	c, err := dialKMIP(b, n.KMIPAddr(), pki, pki.mongo)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	res, err := c.Batch(context.Background(),
		&payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey, TemplateAttribute: aesTemplate("bench", usageAll)},
		&payloads.ActivateRequestPayload{})
	if err != nil || res[0].ResultStatus != kmip.ResultStatusSuccess || res[1].ResultStatus != kmip.ResultStatusSuccess {
		b.Fatalf("create: %v %v", res, err)
	}
	e.id = res[0].ResponsePayload.(*payloads.CreateResponsePayload).UniqueIdentifier
	e.admin, _ = client.New(n.URL(), admin)
	ctx := context.Background()
	if _, err := e.admin.CreateGrant(ctx, apiv1.CreateGrantRequest{Key: e.id, Party: "kmip:mongo", Ops: []string{"export"}}); err != nil {
		b.Fatal(err)
	}
	if _, err := e.admin.CreateKey(ctx, apiv1.CreateKeyRequest{Name: restKey}); err != nil {
		b.Fatal(err)
	}
	tok, err := e.admin.CreateToken(ctx, apiv1.CreateTokenRequest{Party: "token:bench"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.admin.CreateGrant(ctx, apiv1.CreateGrantRequest{Key: restKey, Party: "token:bench", Ops: []string{"encrypt", "decrypt"}}); err != nil {
		b.Fatal(err)
	}
	e.rest = tok.Token
	return e
}

// runParallel runs op from benchConns goroutines, each with its own
// connection from open, and reports ops/s and p99.
func runParallel[C any](b *testing.B, open func() C, op func(C) error) {
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(4) // × GOMAXPROCS (2 here): 8 connections
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		c := open()
		var mine []time.Duration
		for pb.Next() {
			t0 := time.Now()
			if err := op(c); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
}

func (e *benchEnv) kmipClient(b *testing.B) func() *kmipclient.Client {
	return func() *kmipclient.Client {
		c, err := dialKMIP(b, e.n.KMIPAddr(), e.pki, e.pki.mongo)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
}

func kmipOK(c *kmipclient.Client, pl kmip.OperationPayload) error {
	_, err := c.Request(context.Background(), pl)
	return err
}

// BenchmarkKMIPEncrypt: KMIP Encrypt of 64 bytes (AES-256-GCM), one
// request per item.
func BenchmarkKMIPEncrypt(b *testing.B) {
	e := newBenchEnv(b)
	defer e.stop()
	data := make([]byte, 64)
	runParallel(b, e.kmipClient(b), func(c *kmipclient.Client) error {
		return kmipOK(c, &payloads.EncryptRequestPayload{UniqueIdentifier: e.id, Data: data})
	})
}

// BenchmarkKMIPGet: KMIP Get of an exportable AES-256 key.
func BenchmarkKMIPGet(b *testing.B) {
	e := newBenchEnv(b)
	defer e.stop()
	runParallel(b, e.kmipClient(b), func(c *kmipclient.Client) error {
		return kmipOK(c, &payloads.GetRequestPayload{UniqueIdentifier: e.id})
	})
}

// BenchmarkRESTEncrypt: POST /v1/encrypt of 64 bytes, for comparison.
func BenchmarkRESTEncrypt(b *testing.B) {
	e := newBenchEnv(b)
	defer e.stop()
	data := make([]byte, 64)
	runParallel(b, func() *client.Client {
		c, err := client.New(e.n.URL(), e.rest)
		if err != nil {
			b.Fatal(err)
		}
		return c
	}, func(c *client.Client) error {
		_, _, err := c.EncryptValue(context.Background(), restKey, data, map[string]string{"field": "bench"}, "")
		return err
	})
}

// BenchmarkKMIPLocate: KMIP Locate (no filter) by a client that owns one
// key, on a node that holds n other keys, none of them the client's: the
// cost follows what the client may see, not the keys the node holds.
func BenchmarkKMIPLocate(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("keys-%d", n), func(b *testing.B) {
			e := newBenchEnv(b)
			defer e.stop()
			for i := range n {
				if _, err := e.n.Member().CreateKey(fmt.Sprintf("bench/other-%06d", i), vault.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			c := e.kmipClient(b)()
			b.ResetTimer()
			for b.Loop() {
				res, err := c.Request(context.Background(), &payloads.LocateRequestPayload{})
				if err != nil {
					b.Fatal(err)
				}
				if ids := res.(*payloads.LocateResponsePayload).UniqueIdentifier; len(ids) != 1 || ids[0] != e.id {
					b.Fatalf("Locate = %v, want [%s]", ids, e.id)
				}
			}
		})
	}
}
