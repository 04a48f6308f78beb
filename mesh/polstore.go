package mesh

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/policy"
)

// Storage of the policy's history, derived from the events and rebuilt
// from them by every OpenLog (which first checks and drops "mesh/pol/",
// or deletes it record by record on a store that cannot drop a prefix:
// polStore.reset), under a generation (8 bytes) chosen at random by each
// OpenLog:
//
//   - "mesh/pol/a/" + generation + key + 0 + epoch + the rest of a record
//     name of the policy state's archive (policy.Archive; its names start
//     with the key and a 0 byte): its ended grants and placed
//     revocations. A key's epoch (8 bytes, from 0) moves on each time the
//     policy state drops the key (a refold), which deletes the old
//     epoch's records;
//   - "mesh/pol/e/" + generation + key + 0 + Lamport + issuer + seq, one
//     per grant and revocation event of the key (value: the event's kind,
//     ID and party): what a refold of the key reads back, in the fold's
//     order (compareOrder: the name sorts as (Lamport, issuer, seq) does).
//
// The generation and the epochs keep new records apart from the deleted
// ones, so the fold's lookups of new ids (every grant's and revocation's
// conflict check) miss on the store's filters instead of finding the
// deleted records' markers, and scans do not step over them. (A dropped
// history leaves no markers; a refold's deleted epochs, and a history
// deleted record by record, do.)
//
// So a key's memory does not grow with its grants and revocations: the
// fold keeps no list of them (Key has none), and the policy state keeps
// only their summary (package policy, "Memory").
var (
	polPrefix     = []byte("mesh/pol/")
	polArchPrefix = []byte("mesh/pol/a/")
	polEvPrefix   = []byte("mesh/pol/e/")
)

// polFlushAt is how many buffered writes polStore gathers before it
// writes them to the store.
const polFlushAt = 4096

// polChunk bounds the writes of one store transaction of a flush.
const polChunk = 4096

// polStore keeps the policy's history in the log's store. Its records
// can be rebuilt from the events, so it does not pay a durable write per
// change: writes gather in a buffer (read through, so they are visible at
// once) and go to the store every polFlushAt of them, in chunked
// transactions. Records lost to a crash before a flush are written again
// by the next OpenLog, which rebuilds them all.
//
// The fold writes (under the log's lock, or the policy state's write lock
// for the archive); readers (the policy state's listings, without the
// log's lock) may run beside a flush. Both read the buffer, then the
// writes being flushed, then the store.
type polStore struct {
	store  kv.Store
	logger *slog.Logger
	gen    [8]byte
	mu     sync.Mutex
	// epochs holds the epoch of each key the policy state dropped.
	epochs map[string]uint64
	buf    *polLayer // writes since the last flush
	// flushing holds the writes a flush is writing (nil if none).
	flushing *polLayer
	// retryAt is the buffer size at which a failed flush is tried again.
	retryAt int
}

// polLayer is a set of writes over what lies below it: the prefixes
// deleted, then the records set (never nil).
type polLayer struct {
	puts map[string][]byte
	gone []string
}

func newPolLayer() *polLayer { return &polLayer{puts: map[string][]byte{}} }

func (l *polLayer) size() int { return len(l.puts) + len(l.gone) }

// lookup returns what l says of name: its record, or that it is
// deleted (nil, true), or nothing (nil, false).
func (l *polLayer) lookup(name string) ([]byte, bool) {
	if v, ok := l.puts[name]; ok {
		return v, true
	}
	return nil, l.hides(name)
}

// hides reports whether name is under a prefix l deleted.
func (l *polLayer) hides(name string) bool {
	for _, p := range l.gone {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func (l *polLayer) deletePrefix(prefix string) {
	for n := range l.puts {
		if strings.HasPrefix(n, prefix) {
			delete(l.puts, n)
		}
	}
	if !l.hides(prefix) {
		l.gone = append(l.gone, prefix)
	}
}

// over returns the writes of l applied on top of below (which it
// changes).
func (l *polLayer) over(below *polLayer) *polLayer {
	for _, p := range l.gone {
		below.deletePrefix(p)
	}
	for n, v := range l.puts {
		below.puts[n] = v
	}
	return below
}

func newPolStore(store kv.Store, logger *slog.Logger) *polStore {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &polStore{store: store, logger: logger, buf: newPolLayer(), retryAt: polFlushAt, epochs: map[string]uint64{}}
	if _, err := rand.Read(p.gen[:]); err != nil {
		panic(err) // crypto/rand does not fail
	}
	return p
}

// layers returns the buffer and the writes being flushed, newest first.
// p.mu is held.
func (p *polStore) layers() []*polLayer {
	if p.flushing != nil {
		return []*polLayer{p.buf, p.flushing}
	}
	return []*polLayer{p.buf}
}

// get returns the record under store key name, or nil if there is none.
func (p *polStore) get(name []byte) ([]byte, error) {
	p.mu.Lock()
	for _, l := range p.layers() {
		if v, decided := l.lookup(string(name)); decided {
			p.mu.Unlock()
			return bytes.Clone(v), nil
		}
	}
	p.mu.Unlock()
	v, err := p.store.Get(name)
	if errors.Is(err, kv.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mesh: read policy history %q: %w", name, err)
	}
	return v, nil
}

// scan calls fn for every record whose store key starts with prefix, in
// key order, the buffered writes merged with the store's records.
func (p *polStore) scan(prefix []byte, fn func(name, rec []byte) error) error {
	pre := string(prefix)
	// A snapshot of the buffered records under prefix, and of what the
	// layers hide; bounded by the buffer.
	p.mu.Lock()
	ls := p.layers()
	puts := map[string][]byte{}
	var hidden []*polLayer
	for i := len(ls) - 1; i >= 0; i-- { // oldest first, newer ones on top
		l := ls[i]
		for n := range puts {
			if l.hides(n) {
				delete(puts, n)
			}
		}
		for n, v := range l.puts {
			if strings.HasPrefix(n, pre) {
				puts[n] = v
			}
		}
		if len(l.gone) > 0 {
			hidden = append(hidden, &polLayer{gone: slices.Clone(l.gone)})
		}
	}
	p.mu.Unlock()
	names := make([]string, 0, len(puts))
	for n := range puts {
		names = append(names, n)
	}
	slices.Sort(names)
	i := 0
	err := p.store.Scan(prefix, func(k, v []byte) error {
		for ; i < len(names) && names[i] < string(k); i++ {
			if err := fn([]byte(names[i]), puts[names[i]]); err != nil {
				return err
			}
		}
		if i < len(names) && names[i] == string(k) {
			i++
			return fn(k, puts[string(k)])
		}
		for _, l := range hidden {
			if l.hides(string(k)) {
				return nil
			}
		}
		return fn(k, v)
	})
	if err != nil {
		return err
	}
	for ; i < len(names); i++ {
		if err := fn([]byte(names[i]), puts[names[i]]); err != nil {
			return err
		}
	}
	return nil
}

func (p *polStore) set(name, rec []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf.puts[string(name)] = rec
}

func (p *polStore) deletePrefix(prefix []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf.deletePrefix(string(prefix))
}

// maybeFlush writes the buffer to the store once it holds polFlushAt
// writes. A failed flush is logged and kept, and tried again once the
// buffer has doubled: nothing is lost meanwhile, reads see the buffer.
func (p *polStore) maybeFlush() {
	p.mu.Lock()
	n := p.buf.size()
	p.mu.Unlock()
	if n < p.retryAt {
		return
	}
	if err := p.flush(); err != nil {
		p.logger.Error("mesh: write the policy history", "err", err)
		p.retryAt = 2 * n
		return
	}
	p.retryAt = polFlushAt
}

// flush writes the buffer to the store. The fold calls it (one flush at
// a time).
func (p *polStore) flush() error {
	p.mu.Lock()
	f := p.buf
	if f.size() == 0 {
		p.mu.Unlock()
		return nil
	}
	p.flushing, p.buf = f, newPolLayer()
	p.mu.Unlock()
	err := p.write(f)
	p.mu.Lock()
	if err != nil {
		p.buf = p.buf.over(f) // the newer writes on top of those not written
	}
	p.flushing = nil
	p.mu.Unlock()
	return err
}

// write writes layer l to the store: its deletions, then its records,
// in transactions of at most polChunk writes.
func (p *polStore) write(l *polLayer) error {
	for _, prefix := range l.gone {
		if err := p.deleteStored([]byte(prefix), p.store.Scan); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(l.puts))
	for n := range l.puts {
		names = append(names, n)
	}
	slices.Sort(names)
	for len(names) > 0 {
		chunk := names[:min(len(names), polChunk)]
		names = names[len(chunk):]
		err := p.store.Update(func(tx kv.Txn) error {
			for _, n := range chunk {
				if err := tx.Set([]byte(n), l.puts[n]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("mesh: write policy history: %w", err)
		}
	}
	return nil
}

// deleteStored deletes every stored record under prefix, listing them
// with scan, in transactions of at most polChunk deletions.
func (p *polStore) deleteStored(prefix []byte, scan func([]byte, func(k, v []byte) error) error) error {
	var batch [][]byte
	del := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := p.store.Update(func(tx kv.Txn) error {
			for _, k := range batch {
				if err := tx.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		batch = batch[:0]
		if err != nil {
			return fmt.Errorf("mesh: delete policy history under %q: %w", prefix, err)
		}
		return nil
	}
	err := scan(prefix, func(k, _ []byte) error {
		batch = append(batch, bytes.Clone(k))
		if len(batch) < polChunk {
			return nil
		}
		return del()
	})
	if err != nil {
		return fmt.Errorf("mesh: list policy history under %q: %w", prefix, err)
	}
	return del()
}

// reset deletes the whole policy history from the store and the buffer;
// OpenLog then rebuilds it from the events.
//
// A store that can drop a prefix at once (prefixDropper: badgerstore,
// kv.Mem, kv.Authenticated over one of them) drops "mesh/pol/": badger
// writes no deletion marker per record, so a start-up no longer writes
// one tombstone per record of the history for its compactions to carry
// (a record per grant and revocation event and three per grant a
// revocation ended: docs/benchmarks.md, "Policy history reset at start
// (fifth session)"). A store that cannot has every record
// deleted, in transactions of polChunk deletions, as before.
//
// Either way every record under the prefix is first read with the
// store's checked scan (scanAll): LoadChecked lists "mesh/pol/", so a
// node's vault leaves those records' tags to OpenLog, and a record there
// that does not authenticate must still refuse start-up (with an error
// wrapping kv.ErrTampered) as a damaged record anywhere in the store
// does, even though nothing reads it again. The check reads the records
// before the drop: dropping first would lose them unchecked. A store
// without a checked scan (a plain kv.Store: nothing to check) is not
// read before a drop.
func (p *polStore) reset() error {
	p.mu.Lock()
	p.buf, p.flushing, p.epochs = newPolLayer(), nil, map[string]uint64{}
	p.mu.Unlock()
	checked := func(prefix []byte, fn func(k, v []byte) error) error {
		return scanAll(p.store, prefix, fn)
	}
	drop := prefixDropper(p.store)
	if drop == nil {
		return p.deleteStored(polPrefix, checked)
	}
	if _, ok := p.store.(checkedScanner); ok {
		if err := checked(polPrefix, func(_, _ []byte) error { return nil }); err != nil {
			return fmt.Errorf("mesh: check policy history under %q: %w", polPrefix, err)
		}
	}
	if err := drop(polPrefix); err != nil {
		// Nothing is lost by deleting instead: the same records go,
		// one deletion marker each.
		p.logger.Warn("mesh: drop the policy history at once; deleting it record by record", "err", err)
		return p.deleteStored(polPrefix, p.store.Scan)
	}
	return nil
}

// prefixDropper returns how store removes every record under a prefix at
// once, without a deletion marker per record: its kv.Dropper's
// DropPrefix, else its kv.Eraser's Erase (which also shreds, at a cost);
// or nil if it can do neither. A wrapper that has the method but whose
// inner store may not (kv.Authenticated) says which with CanDrop and
// CanErase.
func prefixDropper(store kv.Store) func(prefix []byte) error {
	if d, ok := store.(kv.Dropper); ok {
		if c, ok := store.(interface{ CanDrop() bool }); !ok || c.CanDrop() {
			return d.DropPrefix
		}
	}
	if e, ok := store.(kv.Eraser); ok {
		if c, ok := store.(interface{ CanErase() bool }); !ok || c.CanErase() {
			return e.Erase
		}
	}
	return nil
}

// polArchive is the policy state's archive in the log's store: its
// record names under "mesh/pol/a/".
type polArchive struct{ p *polStore }

var _ policy.Archive = polArchive{}

// keyPrefix returns the store prefix of key's records in its current
// epoch.
func (a polArchive) keyPrefix(key []byte) []byte {
	a.p.mu.Lock()
	epoch := a.p.epochs[string(key)]
	a.p.mu.Unlock()
	b := append(append(slices.Clip(polArchPrefix), a.p.gen[:]...), key...)
	return binary.BigEndian.AppendUint64(append(b, 0), epoch)
}

// name maps a record name of the policy state (key, 0, rest) to its store
// key; split says where the rest starts in the record name.
func (a polArchive) name(n []byte) (store []byte, split int) {
	i := bytes.IndexByte(n, 0)
	if i < 0 {
		i = len(n) // not a name the state makes; kept under a key of its own
		n = append(slices.Clip(n), 0)
	}
	return append(a.keyPrefix(n[:i]), n[i+1:]...), i + 1
}

// Get implements policy.Archive.
func (a polArchive) Get(name []byte) ([]byte, error) {
	k, _ := a.name(name)
	return a.p.get(k)
}

// Scan implements policy.Archive.
func (a polArchive) Scan(prefix []byte, fn func(name, rec []byte) error) error {
	k, split := a.name(prefix)
	head := len(k) - (len(prefix) - split) // the store key's part before the rest
	var name []byte
	return a.p.scan(k, func(sk, v []byte) error {
		name = append(append(name[:0], prefix[:split]...), sk[head:]...)
		return fn(name, v)
	})
}

// Set implements policy.Archive: buffered, it does not fail.
func (a polArchive) Set(name, rec []byte) error {
	k, _ := a.name(name)
	a.p.set(k, rec)
	return nil
}

// DeletePrefix implements policy.Archive: buffered, it does not fail. A
// whole key (the state's DropKey) moves on to its next epoch.
func (a polArchive) DeletePrefix(prefix []byte) error {
	k, split := a.name(prefix)
	a.p.deletePrefix(k)
	if split == len(prefix) {
		a.p.mu.Lock()
		a.p.epochs[string(prefix[:split-1])]++
		a.p.mu.Unlock()
	}
	return nil
}

// polRef is a grant or revocation event as a key's refold finds it in
// the store: enough to read it back and to know, if it cannot be, which
// pair a revocation named.
type polRef struct {
	issuer  [32]byte
	seq     uint64
	lamport uint64
	kind    event.Kind
	id      [32]byte
	party   policy.Party
}

func (p *polStore) evKeyPrefix(key string) []byte {
	return append(append(append(slices.Clip(polEvPrefix), p.gen[:]...), key...), 0)
}

// addEvent records grant or revocation event e of key, naming party.
func (p *polStore) addEvent(key string, e *entry, party policy.Party) {
	name := binary.BigEndian.AppendUint64(p.evKeyPrefix(key), e.ev.Lamport)
	name = append(name, e.ev.Issuer[:]...)
	name = binary.BigEndian.AppendUint64(name, e.ev.Seq)
	v := make([]byte, 0, 1+32+len(party))
	v = append(v, byte(e.ev.Kind))
	v = append(v, e.id[:]...)
	v = append(v, party...)
	p.set(name, v)
}

// eachEvent calls fn for every grant and revocation event of key, in the
// fold's order (Lamport, issuer, seq).
func (p *polStore) eachEvent(key string, fn func(polRef) error) error {
	prefix := p.evKeyPrefix(key)
	return p.scan(prefix, func(k, v []byte) error {
		rest := k[len(prefix):]
		if len(rest) != 8+32+8 || len(v) < 1+32 {
			return fmt.Errorf("mesh: malformed policy event record %q", k)
		}
		r := polRef{lamport: binary.BigEndian.Uint64(rest), seq: binary.BigEndian.Uint64(rest[40:]), kind: event.Kind(v[0])}
		copy(r.issuer[:], rest[8:40])
		copy(r.id[:], v[1:33])
		r.party = policy.Party(v[33:])
		return fn(r)
	})
}
