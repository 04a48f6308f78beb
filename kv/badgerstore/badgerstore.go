// Package badgerstore is keymesh's durable [kv.Store], backed by badger/v4.
// It is the only package in keymesh that imports badger.
//
// Open gives synchronous writes: when Update returns, the change is on disk
// and survives kill -9 and power loss. (The audit log, which must not cap
// request throughput with one fsync per request, is not kept here: package
// audit writes its own segment files.)
//
// Memory options are sized for a small daemon (about 120 MB RSS under load
// instead of badger's ~250 MB defaults).
//
// # A full disk
//
// Badger writes through memory-mapped files: on a full disk the kernel
// answers a write into a mapped page with SIGBUS, which kills the process.
// So every Update first checks the free space of the store's file system
// (statfs) and refuses the write with an error wrapping [kv.ErrNoSpace]
// when less than the reserve is left (default [DefaultReserve], see
// [WithReserve]); the reserve leaves room for badger's own flushes and
// compactions. Reads are never refused, and writes succeed again as soon as
// space is freed: there is no state to reset. [DB.CheckSpace] says whether
// the store would accept a write now (for readiness and metrics).
//
// # File modes
//
// Badger creates its memory-mapped files (memtables, value log, tables) with
// mode 0666 less the umask, throughout its life, not only at Open. Open
// therefore adds 077 to the process umask (it only ever removes
// permissions), makes the directory 0700 and every file already in it 0600,
// so files of a data directory created by an older keymesh are tightened
// too. Every file of the store is then readable by its owner only.
package badgerstore

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/keymesh/keymesh/kv"
)

// DefaultReserve is the free space below which writes are refused.
const DefaultReserve = 64 << 20

// Option configures Open.
type Option func(*DB)

// WithReserve sets the free space, in bytes, below which Update refuses
// to write (default DefaultReserve). 0 disables the check.
func WithReserve(bytes uint64) Option { return func(d *DB) { d.reserve = bytes } }

// withStatfs injects the statfs call (tests).
func withStatfs(f func(path string, st *syscall.Statfs_t) error) Option {
	return func(d *DB) { d.statfs = f }
}

// DB is a badger-backed kv.Store.
type DB struct {
	dir     string
	realDir string // dir, absolute, with symbolic links resolved
	reserve uint64
	statfs  func(path string, st *syscall.Statfs_t) error
	refused atomic.Uint64 // writes refused for lack of space

	// erasing is held for writing by Erase and DropPrefix and for
	// reading by Update: badger's DropPrefix blocks (fails) every
	// concurrent write, so writes wait for an erase instead of failing.
	erasing sync.RWMutex
	db      *badger.DB
}

var (
	_ kv.Store   = (*DB)(nil)
	_ kv.Eraser  = (*DB)(nil)
	_ kv.Dropper = (*DB)(nil)
)

// Open opens (creating if needed) the badger database in dir. logger may be
// nil; badger's own messages are logged at debug level, its warnings and
// errors at warn and error.
func Open(dir string, logger *slog.Logger, opts ...Option) (*DB, error) {
	return open(dir, logger, opts)
}

// Sync forces the store to disk.
func (d *DB) Sync() error {
	if err := d.db.Sync(); err != nil {
		return fmt.Errorf("badgerstore: sync: %w", err)
	}
	return nil
}

// restrictModes makes the process umask 077, dir 0700 and every file in
// it 0600 (see the package doc).
func restrictModes(dir string) error {
	syscall.Umask(syscall.Umask(0o077) | 0o077) // only ever removes permissions
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o600)
		if d.IsDir() {
			mode = 0o700
		} else if !d.Type().IsRegular() {
			return nil
		}
		return os.Chmod(path, mode)
	})
}

func open(dir string, logger *slog.Logger, dopts []Option) (*DB, error) {
	d := &DB{dir: dir, reserve: DefaultReserve, statfs: syscall.Statfs}
	for _, o := range dopts {
		o(d)
	}
	if err := restrictModes(dir); err != nil {
		return nil, fmt.Errorf("badgerstore: open %s: file modes: %w", dir, err)
	}
	// The kernel names mapped files by their absolute path with symbolic
	// links resolved (ReleaseMapped).
	abs, err := filepath.Abs(dir)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return nil, fmt.Errorf("badgerstore: open %s: %w", dir, err)
	}
	d.realDir = abs
	// Memory (docs/benchmarks.md, "Memory"): the store holds up to
	// NumMemtables skiplist arenas of MemTableSize in the Go heap, its
	// index cache, and, while compacting, table builders of twice the
	// target table size of the level they write, up to 8 of them in
	// flight per compaction besides one per split being filled. The
	// fold's history (ended grants, revocations, the per-key event index)
	// is written here, so a grant/revoke soak compacts all the time: with
	// badger's 2 MiB base tables its builders held up to ~100 MB of the
	// heap at once; 512 KiB base tables cut that about fourfold (levels
	// below the base level still grow their tables by
	// TableSizeMultiplier, so a large store does not end up with many
	// more files). Badger keeps up to 8 finished builders' buffers for the
	// next ones, each as large as the largest table it ever built (a
	// flushed memtable's): 63–96 MiB under the soak. Tables are not
	// compressed: a builder then holds each block once, not also its
	// compressed copy, which cut those buffers to 44–49 MiB and the
	// soak's anonymous memory by 20–50 MiB at the same throughput
	// (docs/benchmarks.md, "Seventh session"), for tables 1.5 to 2 times
	// as large, whose pages the node hands back (ReleaseMapped).
	// Uncompressed tables need no block cache: badger reads their blocks
	// in place. A store written with Snappy (before this) reads as it
	// did; compaction rewrites its tables uncompressed (checkTables reads
	// each table's compression from the manifest).
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithMemTableSize(8 << 20).WithNumMemtables(2).
		WithNumLevelZeroTables(2).WithNumLevelZeroTablesStall(8).
		WithCompression(options.None).
		WithBlockCacheSize(0).WithIndexCacheSize(8 << 20).
		WithValueLogFileSize(64 << 20).WithValueThreshold(1 << 10).
		WithNumCompactors(2).WithBaseTableSize(512 << 10).
		// Every table's blocks are verified before badger opens it
		// (checkTables, below) and every block's checksum when badger
		// reads it: a damaged table is then an error, not a panic in
		// badger's own goroutines or wrong data. Badger's own check of
		// whole tables at open (OnTableAndBlockRead) would read every
		// table a second time at each start.
		WithChecksumVerificationMode(options.OnBlockRead).
		WithLogger(nil)
	if logger != nil {
		opts = opts.WithLogger(slogAdapter{logger.With("component", "badger")})
	}
	if err := d.CheckSpace(); err != nil {
		// Opening replays the log and may flush a memtable: refuse to
		// start into a full disk rather than die of SIGBUS.
		return nil, fmt.Errorf("badgerstore: open %s: %w", dir, err)
	}
	if err := checkTables(dir); err != nil {
		return nil, fmt.Errorf("badgerstore: open %s: %w", dir, err)
	}
	db, err := openLocked(opts)
	if err != nil {
		return nil, fmt.Errorf("badgerstore: open %s: %w", dir, err)
	}
	d.db = db
	return d, nil
}

// ErrLocked is the error (wrapped) Open returns when another process holds
// the store's directory lock.
var ErrLocked = errors.New("the data directory is in use by another process (is another keymeshd running on it?)")

// LockWait bounds how long Open waits for a directory lock held by
// someone else before it fails with ErrLocked.
const LockWait = 2 * time.Second

// openLocked is badger.Open, waiting out a directory lock held for a
// moment. Badger locks the directory with flock on a descriptor opened
// close-on-exec, and a child process forked while the store was open (the
// daemon runs none, but its host process may: tests, an embedding program)
// shares that lock until it execs. So a close followed at once by an open
// can find the lock held by a process that is about to let go of it. A
// lock still held after LockWait is another process using the store.
func openLocked(opts badger.Options) (*badger.DB, error) {
	deadline := time.Now().Add(LockWait)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		db, err := badger.Open(opts)
		// Badger formats the flock error into its message (y.Wrapf keeps
		// no chain), so its text is the only sign of a held lock.
		if err == nil || !strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return db, err
		}
		if time.Now().Add(wait).After(deadline) {
			return nil, fmt.Errorf("%w: %w", ErrLocked, err)
		}
		time.Sleep(wait)
	}
}

// SpaceError is the error CheckSpace and a refused Update return. It
// wraps kv.ErrNoSpace.
type SpaceError struct {
	Dir           string
	Free, Reserve uint64
}

func (e *SpaceError) Error() string {
	return fmt.Sprintf("badgerstore: %s has %d MiB free, less than the %d MiB reserve; writes are refused until space is freed",
		e.Dir, e.Free>>20, e.Reserve>>20)
}

// Unwrap returns kv.ErrNoSpace.
func (e *SpaceError) Unwrap() error { return kv.ErrNoSpace }

// FreeBytes returns the space available to the process on the store's
// file system.
func (d *DB) FreeBytes() (uint64, error) {
	var st syscall.Statfs_t
	if err := d.statfs(d.dir, &st); err != nil {
		return 0, fmt.Errorf("badgerstore: statfs %s: %w", d.dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// CheckSpace returns a *SpaceError if a write would be refused now for
// lack of space. A failing statfs is not treated as a full disk.
func (d *DB) CheckSpace() error {
	if d.reserve == 0 {
		return nil
	}
	free, err := d.FreeBytes()
	if err != nil {
		return nil
	}
	if free < d.reserve {
		return &SpaceError{Dir: d.dir, Free: free, Reserve: d.reserve}
	}
	return nil
}

// RefusedWrites returns how many writes were refused for lack of space.
func (d *DB) RefusedWrites() uint64 { return d.refused.Load() }

// Get implements kv.Reader.
func (d *DB) Get(key []byte) ([]byte, error) {
	var out []byte
	err := d.db.View(func(txn *badger.Txn) error {
		var err error
		out, err = get(txn, key)
		return err
	})
	return out, err
}

// Scan implements kv.Reader.
func (d *DB) Scan(prefix []byte, fn func(k, v []byte) error) error {
	return d.db.View(func(txn *badger.Txn) error { return scan(txn, prefix, nil, fn) })
}

// ScanSkipping is Scan leaving out every key under one of the skip
// prefixes: the iterator seeks past each, reading none of their values
// (kv.Authenticated.VerifyRest uses it to pass over what the caller
// checks itself).
func (d *DB) ScanSkipping(prefix []byte, skip [][]byte, fn func(k, v []byte) error) error {
	return d.db.View(func(txn *badger.Txn) error { return scan(txn, prefix, skip, fn) })
}

// maxConflictRetries bounds how often Update retries a transaction that lost
// an optimistic-concurrency race to another writer.
const maxConflictRetries = 16

// Update implements kv.Store: fn runs in a read-write transaction that is
// committed with a synchronous write. A transaction that conflicts with a
// concurrent one is retried a bounded number of times.
func (d *DB) Update(fn func(kv.Txn) error) error {
	if err := d.CheckSpace(); err != nil {
		d.refused.Add(1)
		return err
	}
	d.erasing.RLock()
	defer d.erasing.RUnlock()
	var err error
	for range maxConflictRetries {
		err = d.db.Update(func(txn *badger.Txn) error { return fn(txnAdapter{txn}) })
		if !errors.Is(err, badger.ErrConflict) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("badgerstore: update: %w", err)
	}
	return nil
}

// Close flushes and closes the database.
func (d *DB) Close() error {
	if err := d.db.Close(); err != nil {
		return fmt.Errorf("badgerstore: close: %w", err)
	}
	return nil
}

type txnAdapter struct{ txn *badger.Txn }

func (t txnAdapter) Get(key []byte) ([]byte, error) { return get(t.txn, key) }
func (t txnAdapter) Scan(prefix []byte, fn func(k, v []byte) error) error {
	return scan(t.txn, prefix, nil, fn)
}
func (t txnAdapter) Set(key, value []byte) error { return t.txn.Set(key, value) }
func (t txnAdapter) Delete(key []byte) error     { return t.txn.Delete(key) }

func get(txn *badger.Txn, key []byte) ([]byte, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, kv.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

func scan(txn *badger.Txn, prefix []byte, skip [][]byte, fn func(k, v []byte) error) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	it.Seek(prefix)
	for it.ValidForPrefix(prefix) {
		item := it.Item()
		if s := skipped(item.Key(), skip); s != nil {
			end, ok := prefixEnd(s)
			if !ok {
				return nil // every key from here on is under s
			}
			it.Seek(end) // the first key past s, read on the next turn
			continue
		}
		var ferr error
		if err := item.Value(func(v []byte) error {
			ferr = fn(item.Key(), v)
			return nil
		}); err != nil {
			return err
		}
		if ferr != nil {
			return ferr
		}
		it.Next()
	}
	return nil
}

// skipped returns the prefix in skip that key is under, or nil.
func skipped(key []byte, skip [][]byte) []byte {
	for _, s := range skip {
		if bytes.HasPrefix(key, s) {
			return s
		}
	}
	return nil
}

// prefixEnd returns the least key above every key under p, or false if
// there is none (p is empty or all 0xff).
func prefixEnd(p []byte) ([]byte, bool) {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1], true
		}
	}
	return nil, false
}

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Errorf(f string, v ...any)   { a.l.Error(fmt.Sprintf(f, v...)) }
func (a slogAdapter) Warningf(f string, v ...any) { a.l.Warn(fmt.Sprintf(f, v...)) }
func (a slogAdapter) Infof(f string, v ...any)    { a.l.Debug(fmt.Sprintf(f, v...)) }
func (a slogAdapter) Debugf(f string, v ...any)   { a.l.Debug(fmt.Sprintf(f, v...)) }

// Erase physically removes every key with prefix from disk: badger's
// DropPrefix flushes the memtables and rewrites the tables without them,
// then the value log is garbage-collected (bounded). keymesh erases a
// destroyed key's wrapped material so it does not linger in old tables, as
// deleted data otherwise does in any log-structured store until compaction.
func (d *DB) Erase(prefix []byte) error {
	d.erasing.Lock()
	defer d.erasing.Unlock()
	if err := d.db.DropPrefix(prefix); err != nil {
		return fmt.Errorf("badgerstore: erase: %w", err)
	}
	return d.gcValueLog()
}

// DropPrefix implements kv.Dropper: badger's DropPrefix, as Erase, but
// without the value-log garbage collection after it. Badger writes no
// deletion marker per key: it flushes the memtables, compacts level 0
// down without the prefix's keys, drops the tables of the other levels
// that hold only keys under prefix and rewrites without them those that
// hold some. Values of 1 KiB or more live in the value log and stay in its
// files until badger's GC of them reclaims the space; Erase runs that GC
// at once (rewriting up to 16 value-log files) to shred, which a prefix
// that holds nothing secret and is written again at once (the mesh's
// policy history at start-up) does not need to wait for. Like Update it
// first checks the free space: dropping flushes the memtables and
// rewrites tables.
func (d *DB) DropPrefix(prefix []byte) error {
	if err := d.CheckSpace(); err != nil {
		d.refused.Add(1)
		return err
	}
	d.erasing.Lock()
	defer d.erasing.Unlock()
	if err := d.db.DropPrefix(prefix); err != nil {
		return fmt.Errorf("badgerstore: drop prefix: %w", err)
	}
	return nil
}

// gcValueLog runs the value log's GC until it has nothing to rewrite,
// at most 16 times. d.erasing is held.
func (d *DB) gcValueLog() error {
	for range 16 {
		if err := d.db.RunValueLogGC(0.01); err != nil {
			if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
				return nil
			}
			return fmt.Errorf("badgerstore: value log gc: %w", err)
		}
	}
	return nil
}
