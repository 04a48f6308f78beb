package mesh

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/kv/badgerstore"
	"github.com/keymesh/keymesh/kv/kvtest"
	"github.com/keymesh/keymesh/policy"
)

// deleteCounter is a store that counts the deletions of records under
// polPrefix its transactions make. It hides every method of the store
// it wraps but kv.Store's: OpenLog cannot drop a prefix of it.
type deleteCounter struct {
	kv.Store
	deletes atomic.Int64
}

func (c *deleteCounter) Update(fn func(kv.Txn) error) error {
	return c.Store.Update(func(tx kv.Txn) error { return fn(countingTxn{tx, c}) })
}

type countingTxn struct {
	kv.Txn
	c *deleteCounter
}

func (t countingTxn) Delete(k []byte) error {
	if bytes.HasPrefix(k, polPrefix) {
		t.c.deletes.Add(1)
	}
	return t.Txn.Delete(k)
}

// dropCounter is a deleteCounter that drops prefixes, through the
// wrapped store's kv.Dropper, and lists the prefixes it dropped.
type dropCounter struct {
	deleteCounter
	mu      sync.Mutex
	dropped []string
	fail    error
}

func (c *dropCounter) DropPrefix(prefix []byte) error {
	c.mu.Lock()
	c.dropped = append(c.dropped, string(prefix))
	fail := c.fail
	c.mu.Unlock()
	if fail != nil {
		return fail
	}
	return c.Store.(kv.Dropper).DropPrefix(prefix)
}

// failDrops makes every later DropPrefix fail with err (nil: succeed).
func (c *dropCounter) failDrops(err error) {
	c.mu.Lock()
	c.fail = err
	c.mu.Unlock()
}

func (c *dropCounter) drops() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.dropped)
}

var _ kv.Dropper = (*dropCounter)(nil)

// storeRecords returns every record of store: those under polPrefix and
// the others.
func storeRecords(t *testing.T, store kv.Reader) (pol, rest map[string]string) {
	t.Helper()
	pol, rest = map[string]string{}, map[string]string{}
	if err := store.Scan(nil, func(k, v []byte) error {
		if bytes.HasPrefix(k, polPrefix) {
			pol[string(k)] = string(v)
		} else {
			rest[string(k)] = string(v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return pol, rest
}

// polGenerations returns the generations the policy history records of
// pol are stored under.
func polGenerations(pol map[string]string) map[string]int {
	gens := map[string]int{}
	for k := range pol {
		rest := k[len(polArchPrefix):] // "a/" and "e/" have one length
		gens[rest[:8]]++
	}
	return gens
}

// checkReopenRebuilds opens a log over store (which holds the history
// of evs, flushed) again and checks that it sees the state of a fresh
// fold and that the store then holds the same history — as many
// records, all under the new generation — and, apart from the history,
// exactly the records it held before.
func checkReopenRebuilds(t *testing.T, w *world, store kv.Store, want []byte) {
	t.Helper()
	pol0, rest0 := storeRecords(t, store)
	l, err := OpenLog(store, w.g, w.nodes[0].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	l.View(func(s *State) {
		got = s.Canonical()
		if err := s.pol.flush(); err != nil {
			t.Fatal(err)
		}
	})
	if !bytes.Equal(got, want) {
		t.Fatalf("the reopened log's state differs from a fresh fold of the same events")
	}
	pol, rest := storeRecords(t, store)
	if len(pol) != len(pol0) {
		t.Errorf("the rebuilt history has %d records, want %d", len(pol), len(pol0))
	}
	if gens := polGenerations(pol); len(gens) != 1 {
		t.Errorf("the rebuilt history is under %d generations, want 1 (the old records are left): %v", len(gens), gens)
	}
	for g := range polGenerations(pol0) {
		if _, ok := polGenerations(pol)[g]; ok {
			t.Errorf("the rebuilt history is under the old generation %x", g)
		}
	}
	if fmt.Sprint(rest) != fmt.Sprint(rest0) {
		t.Errorf("OpenLog changed records outside %q", polPrefix)
	}
}

// buildHistory opens a log over store and delivers n grant/revoke
// cycles on one key, flushed to the store; it returns the log's state.
func buildHistory(t *testing.T, w *world, store kv.Store, n int) []byte {
	t.Helper()
	iss := newIssuers(w)
	evs := cycleEvents(t, w, iss, "trade/k", policy.Party("token:p"), n)
	l, err := OpenLog(store, w.g, w.nodes[0].priv, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for len(evs) > 0 {
		k := min(len(evs), 200)
		l.DeliverBatch(evs[:k])
		evs = evs[k:]
	}
	var st []byte
	l.View(func(s *State) {
		st = s.Canonical()
		if err := s.pol.flush(); err != nil {
			t.Fatal(err)
		}
	})
	return st
}

// neighbours are records just outside polPrefix that no reset may touch.
var neighbours = []string{"mesh/pol", "mesh/pol.", "mesh/pol0", "mesh/po/x", "mesh/pom/x", "zz/keep"}

func putNeighbours(t *testing.T, store kv.Store) {
	t.Helper()
	if err := store.Update(func(tx kv.Txn) error {
		for _, k := range neighbours {
			if err := tx.Set([]byte(k), []byte("v:"+k)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func checkNeighbours(t *testing.T, store kv.Reader) {
	t.Helper()
	for _, k := range neighbours {
		if v, err := store.Get([]byte(k)); err != nil || string(v) != "v:"+k {
			t.Errorf("%q after OpenLog = %q, %v, want it kept", k, v, err)
		}
	}
}

// TestOpenLogDropsPolicyHistory: over a store that can drop a prefix,
// OpenLog drops the stored policy history at once — one DropPrefix of
// "mesh/pol/", no deletion per record — and rebuilds it: a second open
// sees exactly the rebuilt history, and no record outside the prefix is
// touched, its neighbours included. Over a store that cannot, or when the
// drop fails, it deletes the history record by record, to the same end.
func TestOpenLogDropsPolicyHistory(t *testing.T) {
	t.Parallel()
	w := newWorld(t, []string{"Org1MSP"}, 2)
	store := &dropCounter{deleteCounter: deleteCounter{Store: kv.NewMem()}}
	putNeighbours(t, store)
	want := buildHistory(t, w, store, 1500) // ~7.5k history records: flushes
	pol, _ := storeRecords(t, store)
	if len(pol) < 5000 {
		t.Fatalf("the store holds %d history records, want the 1500 cycles' (5 each)", len(pol))
	}
	for range 2 {
		drops, deletes := len(store.drops()), store.deletes.Load()
		checkReopenRebuilds(t, w, store, want)
		if got := store.drops()[drops:]; len(got) != 1 || got[0] != string(polPrefix) {
			t.Errorf("OpenLog dropped %q, want [%q] once", got, polPrefix)
		}
		if n := store.deletes.Load() - deletes; n != 0 {
			t.Errorf("OpenLog deleted %d history records one by one (tombstones), want none", n)
		}
	}
	checkNeighbours(t, store)

	// A drop that fails: the history is deleted record by record.
	store.failDrops(errors.New("no drop today"))
	pol, _ = storeRecords(t, store)
	deletes := store.deletes.Load()
	checkReopenRebuilds(t, w, store, want)
	if n := store.deletes.Load() - deletes; n != int64(len(pol)) {
		t.Errorf("OpenLog after a failed drop deleted %d history records, want all %d", n, len(pol))
	}
	checkNeighbours(t, store)
	store.failDrops(nil)

	// A store that cannot drop: the history is deleted record by record.
	plain := &deleteCounter{Store: store.Store}
	pol, _ = storeRecords(t, plain)
	checkReopenRebuilds(t, w, plain, want)
	if n := plain.deletes.Load(); n != int64(len(pol)) {
		t.Errorf("OpenLog over a store that cannot drop deleted %d history records, want all %d", n, len(pol))
	}
	checkNeighbours(t, plain)
}

// TestOpenLogChecksPolicyHistoryBeforeDropping: a node's vault leaves the
// tags of the policy history to OpenLog (LoadChecked), which drops it:
// a record there that does not authenticate still refuses start-up, and
// is not dropped unread; over a store that cannot drop, likewise.
func TestOpenLogChecksPolicyHistoryBeforeDropping(t *testing.T) {
	t.Parallel()
	if !slices.Contains(LoadChecked(), string(polPrefix)) {
		t.Fatalf("LoadChecked() = %q, want it to name %q", LoadChecked(), polPrefix)
	}
	w := newWorld(t, []string{"Org1MSP"}, 2)
	raw := &dropCounter{deleteCounter: deleteCounter{Store: kv.NewMem()}}
	store := kv.NewAuthenticated(raw, kvtest.HMACTagger("a test key of sixteen+ bytes"), nil, nil)
	want := buildHistory(t, w, store, 300)
	checkReopenRebuilds(t, w, store, want)
	if got := raw.drops(); len(got) != 2 { // buildHistory's OpenLog and this one
		t.Fatalf("OpenLog over kv.Authenticated dropped %q, want %q twice", got, polPrefix)
	}
	pol, _ := storeRecords(t, raw)
	var victim string
	for k := range pol {
		victim = max(victim, k)
	}
	v := []byte(pol[victim])
	v[0] ^= 1
	if err := raw.Store.Update(func(tx kv.Txn) error { return tx.Set([]byte(victim), v) }); err != nil {
		t.Fatal(err)
	}
	drops := len(raw.drops())
	for _, s := range []kv.Store{store, kv.NewAuthenticated(&raw.deleteCounter, kvtest.HMACTagger("a test key of sixteen+ bytes"), nil, nil)} {
		if _, err := OpenLog(s, w.g, w.nodes[0].priv, LogOptions{}); !errors.Is(err, kv.ErrTampered) {
			t.Errorf("OpenLog(a damaged policy history record) = %v, want %v", err, kv.ErrTampered)
		}
	}
	if got := raw.drops()[drops:]; len(got) != 0 {
		t.Errorf("OpenLog dropped %q before refusing the damaged history", got)
	}
	if got, err := raw.Get([]byte(victim)); err != nil || !bytes.Equal(got, v) {
		t.Errorf("the damaged record after the refused starts = %x, %v; want it left as it was", got, err)
	}
}

// TestOpenLogDropsPolicyHistoryBadger: the same over badgerstore, through
// kv.Authenticated as a node has it, across closing and reopening the
// store: the history is dropped (no deletion markers), rebuilt under one
// generation, and a second open sees exactly it.
func TestOpenLogDropsPolicyHistoryBadger(t *testing.T) {
	t.Parallel()
	w := newWorld(t, []string{"Org1MSP"}, 2)
	dir := t.TempDir()
	tagger := kvtest.HMACTagger("a test key of sixteen+ bytes")
	open := func() (*badgerstore.DB, *dropCounter, kv.Store) {
		db, err := badgerstore.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := &dropCounter{deleteCounter: deleteCounter{Store: db}}
		return db, c, kv.NewAuthenticated(c, tagger, nil, nil)
	}
	db, _, store := open()
	putNeighbours(t, store)
	want := buildHistory(t, w, store, 1500)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		db, c, store := open()
		checkReopenRebuilds(t, w, store, want)
		if got := c.drops(); len(got) != 1 || got[0] != string(polPrefix) {
			t.Errorf("OpenLog dropped %q, want [%q] once", got, polPrefix)
		}
		if n := c.deletes.Load(); n != 0 {
			t.Errorf("OpenLog deleted %d history records one by one, want none", n)
		}
		checkNeighbours(t, store)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
