package mesh

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/kv/kvtest"
)

// TestOpenLoadsEveryBatchInOrder: a log of more events than OpenLog
// scans ahead (loadAhead batches of loadBatch) reopens to the same state,
// and a damaged or missing event far into it fails OpenLog with an error,
// in every one of several reopenings (the pipeline's scan and parsers are
// stopped and drained, not left reading the store).
func TestOpenLoadsEveryBatchInOrder(t *testing.T) {
	// Not parallel: it lowers loadAhead before any parallel test runs.
	defer func(n int) { loadAhead = n }(loadAhead)
	loadAhead = 2
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

// TestOpenReadsAttachmentsInOneScan: the wrapped copies a log held are
// held again by the reopened log (found by one scan of the attachments,
// not a read per event, and read back from the store by CopiesFor), a copy
// missing from the store is simply not held, and a stored copy that does
// not authenticate fails OpenLog.
func TestOpenReadsAttachmentsInOneScan(t *testing.T) {
	t.Parallel()
	w := newWorld(t, []string{"Org1MSP"}, 2)
	raw := kv.NewMem()
	store := kv.NewAuthenticated(raw, kvtest.HMACTagger("a test key of sixteen+ bytes"), nil, nil)
	l, err := OpenLog(store, w.g, w.nodes[1].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	iss := newIssuers(w)
	a, b := iss[0], iss[1]
	for _, raw := range [][]byte{
		a.event(t, event.KindNodeRecord, w.record(t, w.nodes[0])),
		b.event(t, event.KindNodeRecord, w.record(t, w.nodes[1])),
	} {
		if v := l.Deliver(raw); v != Accept {
			t.Fatalf("Deliver = %v", v)
		}
	}
	blobs := map[string][]byte{}
	for i := range 5 {
		key := fmt.Sprintf("att/k%d", i)
		blob := bytes.Repeat([]byte{byte(i + 1)}, 1208)
		blobs[key] = blob
		for _, raw := range [][]byte{
			a.event(t, event.KindKeyCreate, event.KeyCreate{Key: key}),
			a.event(t, event.KindKeyVersion, event.KeyVersion{Key: key, Version: 1, ActivateAt: w.t0, Check: event.DigestOf([]byte("c")),
				Wraps: []event.Wrap{{Recipient: w.nodes[1].key, Digest: event.DigestOf(blob)}}}, blob),
		} {
			if v := l.Deliver(raw); v != Accept {
				t.Fatalf("Deliver(%s) = %v", key, v)
			}
		}
	}
	blobOf := func(l *Log, key string) []byte {
		var got []byte
		l.View(func(s *State) {
			if cs := s.CopiesFor(key, s.Keys[key].Versions[0], w.nodes[1].key); len(cs) > 0 {
				got = cs[0].Blob
			}
		})
		return got
	}
	l2, err := OpenLog(store, w.g, w.nodes[1].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for key, blob := range blobs {
		if got := blobOf(l2, key); !bytes.Equal(got, blob) {
			t.Errorf("reopened log: %s's copy = %d bytes, want the %d held before", key, len(got), len(blob))
		}
	}
	// One copy gone from the store: that version is simply not held.
	gone := attKey("att/k2", event.DigestOf(blobs["att/k2"]))
	if err := store.Update(func(tx kv.Txn) error { return tx.Delete(gone) }); err != nil {
		t.Fatal(err)
	}
	l3, err := OpenLog(store, w.g, w.nodes[1].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := blobOf(l3, "att/k2"); got != nil {
		t.Errorf("a copy removed from the store came back (%d bytes)", len(got))
	}
	if got := blobOf(l3, "att/k3"); !bytes.Equal(got, blobs["att/k3"]) {
		t.Error("the other copies did not load")
	}
	// A copy that does not authenticate: OpenLog fails.
	damaged := attKey("att/k4", event.DigestOf(blobs["att/k4"]))
	v, err := raw.Get(damaged)
	if err != nil {
		t.Fatal(err)
	}
	v[0] ^= 1
	if err := raw.Update(func(tx kv.Txn) error { return tx.Set(damaged, v) }); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLog(store, w.g, w.nodes[1].priv, LogOptions{}); !errors.Is(err, kv.ErrTampered) {
		t.Errorf("OpenLog(a damaged copy) = %v, want %v", err, kv.ErrTampered)
	}
}
