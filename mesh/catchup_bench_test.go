package mesh

import (
	"fmt"
	"testing"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/policy"
)

// BenchmarkCatchUp: a node that missed n grant events (one issuer, 100
// keys, as benchsim -scale grows its mesh) takes them in batches of 1,000,
// as anti-entropy hands them over: signature checks, admission, fold and
// the durable writes. Run with
//
//	go test ./mesh -run XXX -bench CatchUp -benchtime 3x
func BenchmarkCatchUp(b *testing.B) {
	const n, keys = 10_000, 100
	w := newWorld(b, []string{"Org1MSP", "Org2MSP"}, 1)
	is := newIssuers(w)[0]
	pre := IDPrefix(is.n.key)
	evs := [][]byte{is.event(b, event.KindNodeRecord, w.record(b, is.n))}
	for k := range keys {
		evs = append(evs, is.event(b, event.KindKeyCreate, event.KeyCreate{Key: fmt.Sprintf("trade/s%d", k)}))
	}
	for i := 0; len(evs) < n; i++ {
		evs = append(evs, is.event(b, event.KindGrant, policy.Grant{ID: pre + fmt.Sprintf("g%d", i), Key: fmt.Sprintf("trade/s%d", i%keys),
			Party: policy.Party(fmt.Sprintf("token:p%d", i)), Ops: policy.OpsOf(policy.OpDecrypt), Issuer: "a", IssuedAt: w.t0}))
	}
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		l, err := OpenLog(kv.NewMem(), w.g, w.nodes[1].priv, LogOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		deliverBatches(b, l, evs, 1000)
	}
	b.ReportMetric(float64(n), "events/op")
}
