package kms_test

import (
	"fmt"
	"testing"

	"github.com/keymesh/keymesh/kms"
	"github.com/keymesh/keymesh/vault/envelope"
)

// batchKinds are the batches of the benchmarks, by their contexts: shared,
// one Fabric context for every item (the fields of one record, or a
// client's batch under one context) in one map, as the REST API's decoder
// gives consecutive items with the same context text; copies, the same
// context in a map of its own for every item (the strict decoder, or an
// in-process caller building one each time); runs, the same field of
// records in turn, a context per run of 8 items; distinct, another
// state_key for every item.
var batchKinds = []string{"shared", "copies", "runs", "distinct"}

// batchContexts returns the contexts of a batch of n items of kind.
func batchContexts(kind string, n int) []envelope.Context {
	out := make([]envelope.Context, n)
	for i := range out {
		k := 0
		switch kind {
		case "runs":
			k = i / 8
		case "distinct":
			k = i
		}
		if i > 0 && kind != "copies" && kind != "distinct" && (kind != "runs" || i%8 != 0) {
			out[i] = out[i-1]
			continue
		}
		out[i] = envelope.Context{"channel": "trade-channel", "chaincode": "settlement", "state_key": fmt.Sprintf("order~%012d", k), "field": "price"}
	}
	return out
}

// BenchmarkEncryptBatch is the domain core's batch encrypt of 256 fields of
// 64 bytes (decision, one audit entry, a seal per item), per item.
func BenchmarkEncryptBatch(b *testing.B) {
	for _, kind := range batchKinds {
		b.Run(kind, func(b *testing.B) {
			s := newCore(b)
			ctxs := batchContexts(kind, 256)
			items := make([]kms.EncryptItem, len(ctxs))
			for i := range items {
				items[i] = kms.EncryptItem{Plaintext: make([]byte, 64), Context: ctxs[i]}
			}
			b.ReportAllocs()
			done := processCPU(b, len(items))
			for b.Loop() {
				if _, err := s.Core.Encrypt(ctx, app, "demo/k", envelope.ModeRandom, items); err != nil {
					b.Fatal(err)
				}
			}
			done()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(items)), "ns/item")
		})
	}
}

// BenchmarkDecryptBatch is the domain core's batch decrypt of the same
// items, per item.
func BenchmarkDecryptBatch(b *testing.B) {
	for _, kind := range batchKinds {
		b.Run(kind, func(b *testing.B) {
			s := newCore(b)
			ctxs := batchContexts(kind, 256)
			enc := make([]kms.EncryptItem, len(ctxs))
			for i := range enc {
				enc[i] = kms.EncryptItem{Plaintext: make([]byte, 64), Context: ctxs[i]}
			}
			sealed, err := s.Core.Encrypt(ctx, app, "demo/k", envelope.ModeRandom, enc)
			if err != nil {
				b.Fatal(err)
			}
			items := make([]kms.DecryptItem, len(sealed))
			for i, r := range sealed {
				items[i] = kms.DecryptItem{Ciphertext: r.Envelope.Text(), Context: ctxs[i]}
			}
			b.ReportAllocs()
			done := processCPU(b, len(items))
			for b.Loop() {
				if _, err := s.Core.Decrypt(ctx, app, items, nil); err != nil {
					b.Fatal(err)
				}
			}
			done()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(items)), "ns/item")
		})
	}
}
