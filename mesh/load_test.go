package mesh

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/kv"
)

// TestOpenLoadsEveryBatchInOrder: a log of more events than OpenLog
// scans ahead (loadAhead batches of loadBatch) reopens to the same state,
// and a damaged or missing event far into it fails OpenLog with an error,
// in every one of several reopenings (the pipeline's scan and parsers are
// stopped and drained, not left reading the store).
func TestOpenLoadsEveryBatchInOrder(t *testing.T) {
	t.Parallel()
	w := newWorld(t, []string{"Org1MSP"}, 1)
	store := kv.NewMem()
	l, err := OpenLog(store, w.g, w.nodes[0].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := json.Marshal(w.record(t, w.nodes[0]))
	if _, err := l.Issue(event.KindNodeRecord, rec); err != nil {
		t.Fatal(err)
	}
	n := loadBatch*(loadAhead+2) + loadBatch/2
	for i := range n {
		kc, _ := json.Marshal(event.KeyCreate{Key: fmt.Sprintf("load/k%d", i)})
		if _, err := l.Issue(event.KindKeyCreate, kc); err != nil {
			t.Fatal(err)
		}
	}
	var want []byte
	l.View(func(s *State) { want = s.Canonical() })
	l2, err := OpenLog(store, w.g, w.nodes[0].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	l2.View(func(s *State) { got = s.Canonical() })
	if !bytes.Equal(got, want) || l2.Height() != n+1 {
		t.Fatalf("reopened log: height %d (want %d), same state %v", l2.Height(), n+1, bytes.Equal(got, want))
	}

	// A gap: the event at seq 2*loadBatch+3 is gone.
	gap := cloneMem(t, store)
	if err := gap.Update(func(tx kv.Txn) error { return tx.Delete(evKey(w.nodes[0].key, 2*loadBatch+3)) }); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := OpenLog(gap, w.g, w.nodes[0].priv, LogOptions{}); err == nil || !strings.Contains(err.Error(), "gap") {
			t.Fatalf("OpenLog(log with a gap) = %v, want a gap error", err)
		}
	}
	// A stored event that does not parse, in the middle of a batch.
	bad := cloneMem(t, store)
	if err := bad.Update(func(tx kv.Txn) error {
		return tx.Set(evKey(w.nodes[0].key, 3*loadBatch+7), []byte{2, 0xff, 0xff})
	}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := OpenLog(bad, w.g, w.nodes[0].priv, LogOptions{}); err == nil {
			t.Fatal("OpenLog(log with a damaged event) succeeded")
		}
	}
}

func cloneMem(t *testing.T, from *kv.Mem) *kv.Mem {
	t.Helper()
	to := kv.NewMem()
	err := to.Update(func(tx kv.Txn) error {
		return from.Scan(nil, func(k, v []byte) error { return tx.Set(bytes.Clone(k), bytes.Clone(v)) })
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}
