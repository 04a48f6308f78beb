package mesh

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/kv/badgerstore"
	"github.com/keymesh/keymesh/kv/kvtest"
	"github.com/keymesh/keymesh/policy"
)

// BenchmarkPolicyReset times what a start-up's reset of the policy
// history costs on a badgerstore of n grants on one key (each to another
// party, as scripts/benchscale's grants-one), through kv.Authenticated
// as a node has it: polStore.reset alone and the whole OpenLog, each on a
// fresh copy of the store, with the history deleted record by record (a
// store that cannot drop) and dropped at once, interleaved, three rounds;
// and reset alone over the bare store, which drops without the checked
// scan (the records' tags unread).
// cpu_s is the process's CPU time (badger's compactions included). Run it
// with -benchtime=1x: it runs once whatever b.N is.
func BenchmarkPolicyReset(b *testing.B) {
	const n = 100_000
	w := newWorld(b, []string{"Org1MSP"}, 2)
	iss := newIssuers(w)
	var evs [][]byte
	for i, nd := range w.nodes {
		evs = append(evs, iss[i].event(b, event.KindNodeRecord, w.record(b, nd)))
	}
	a := iss[1]
	evs = append(evs, a.event(b, event.KindKeyCreate, event.KeyCreate{Key: "one/k"}))
	for i := range n {
		evs = append(evs, a.event(b, event.KindGrant, policy.Grant{ID: fmt.Sprintf("%sg%d", IDPrefix(a.n.key), i), Key: "one/k",
			Party: policy.Party(fmt.Sprintf("token:p%d", i)), Ops: policy.OpsOf(policy.OpDecrypt), Issuer: "a", IssuedAt: w.t0}))
	}
	tagger := kvtest.HMACTagger("a test key of sixteen+ bytes")
	src := filepath.Join(b.TempDir(), "src")
	db, err := badgerstore.Open(src, nil)
	if err != nil {
		b.Fatal(err)
	}
	l, err := OpenLog(kv.NewAuthenticated(db, tagger, nil, nil), w.g, w.nodes[0].priv, LogOptions{})
	if err != nil {
		b.Fatal(err)
	}
	deliverBatches(b, l, evs, 1000)
	l.View(func(s *State) {
		if err := s.pol.flush(); err != nil {
			b.Fatal(err)
		}
	})
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	modes := []struct {
		name string
		wrap func(kv.Store) kv.Store
	}{
		{"delete", func(s kv.Store) kv.Store { return kv.NewAuthenticated(&deleteCounter{Store: s}, tagger, nil, nil) }},
		{"drop", func(s kv.Store) kv.Store {
			return kv.NewAuthenticated(&dropCounter{deleteCounter: deleteCounter{Store: s}}, tagger, nil, nil)
		}},
		// Without kv.Authenticated (whose tags the records carry, unread
		// here): the drop without the checked scan before it.
		{"drop-unchecked", func(s kv.Store) kv.Store { return &dropCounter{deleteCounter: deleteCounter{Store: s}} }},
	}
	type figures struct{ reset, resetCPU, open, openCPU []time.Duration }
	got := make([]figures, len(modes))
	b.ResetTimer()
	for round := range 3 {
		for i, m := range modes {
			for _, whole := range []bool{false, true} {
				dir := filepath.Join(b.TempDir(), fmt.Sprintf("%s-%d-%v", m.name, round, whole))
				if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
					b.Fatal(err)
				}
				db, err := badgerstore.Open(dir, nil)
				if err != nil {
					b.Fatal(err)
				}
				store := m.wrap(db)
				if whole && m.name == "drop-unchecked" {
					db.Close()
					continue // OpenLog cannot read the tagged events without kv.Authenticated
				}
				c0, t0 := cpu(), time.Now()
				if whole {
					_, err = OpenLog(store, w.g, w.nodes[0].priv, LogOptions{})
				} else {
					err = newPolStore(store, nil).reset()
				}
				el, c := time.Since(t0), cpu()-c0
				if err != nil {
					b.Fatal(err)
				}
				if whole {
					got[i].open, got[i].openCPU = append(got[i].open, el), append(got[i].openCPU, c)
				} else {
					got[i].reset, got[i].resetCPU = append(got[i].reset, el), append(got[i].resetCPU, c)
				}
				if err := db.Close(); err != nil {
					b.Fatal(err)
				}
				os.RemoveAll(dir)
			}
		}
	}
	b.StopTimer()
	for i, m := range modes {
		f := got[i]
		b.Logf("%s: reset %v (cpu %v), OpenLog %v (cpu %v)", m.name, f.reset, f.resetCPU, f.open, f.openCPU)
	}
}
