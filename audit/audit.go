// Package audit is keymesh's tamper-evident audit log: an append-only,
// hash-chained sequence of [Entry] records kept in a [kv.Store].
//
// Start with [Open]. Record every policy decision and every administrative
// change with [Log.Append], show recent history with [Log.Tail], and check
// the whole chain with [Log.Verify] (what `keymesh audit verify` runs).
//
// # Guarantees
//
//   - Durable before acknowledged. Append returns only after its entry has
//     been committed with [kv.Store.Update], which is durable (the badger
//     store syncs to disk). If the write fails, Append returns an error
//     wrapping [ErrUnavailable] and no entry of that write is acknowledged.
//     Callers must fail closed: a request whose decision could not be
//     audited is refused.
//   - Ordered and chained. Entries are numbered 1, 2, 3, … without gaps.
//     Each entry's Hash is SHA-256 over a domain string, the previous
//     entry's hash (Prev) and an unambiguous, length-prefixed binary
//     encoding of every other field. A head record (last seq and hash) is
//     written in the same transaction as the entries it covers.
//   - A failed write never breaks the chain: the in-memory head advances
//     only after a successful commit, so the next write chains from the last
//     durable entry, and entries of a failed write are overwritten (or
//     deleted) by the next successful one.
//   - Group commit. Appends from many goroutines are collected by one
//     committer goroutine and written together, up to [WithMaxBatch]
//     entries per transaction, so the cost of a synchronous disk write is
//     shared by every entry in the batch.
//
// # What Verify detects, and what it cannot
//
// [Log.Verify] walks the stored log and reports, as a [*VerifyError] that
// wraps [ErrTampered], the first entry that was altered, dropped, reordered
// or is missing from the tail, and a head record that does not match the
// last entry. The log is tamper-evident, not tamper-proof: someone who can
// write the store and rewrites every entry from some point to the end,
// together with the head record, produces a chain that verifies. To detect
// that, record [Log.Head] somewhere the attacker cannot reach (an operator's
// notes, a ledger transaction) and compare it later.
//
// If [Open] finds that the head record does not match the stored entries
// (for instance because the last entry was deleted or the head was rolled
// back), it still opens the log so that Verify and Tail can show the
// damage, but Append refuses to extend it and returns an error wrapping
// [ErrTampered]: a damaged log is never silently extended or overwritten.
// Repairing it is an operator's decision.
//
// # No secrets
//
// Entries are stored and shown unencrypted. Callers pass principals, key
// names and versions, actions and outcomes — never plaintext field values,
// bearer tokens, signatures or key material, in any field, including
// Reason.
//
// # Storage layout
//
//	audit/e/<8-byte big-endian seq>  encoded entry (format version, Prev,
//	                                 Seq, Time, fields, Hash)
//	audit/head                       format version, last seq, last hash
package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/keymesh/keymesh/kv"
)

// Outcomes recorded in [Entry.Outcome]. Append rejects any other value.
const (
	OutcomeAllow = "allow" // a policy decision that permitted the request
	OutcomeDeny  = "deny"  // a policy decision that refused the request
	OutcomeOK    = "ok"    // an administrative change that succeeded
	OutcomeError = "error" // a request that failed for another reason
)

const (
	// DefaultMaxBatch is the default number of entries written per store
	// transaction.
	DefaultMaxBatch = 512
	// MaxBatchLimit is the largest value [WithMaxBatch] accepts.
	MaxBatchLimit = 4096
	// MaxTail is the largest number of entries [Log.Tail] returns.
	MaxTail = 1000
	// MaxFieldLen is the largest length, in bytes, of each string field of
	// an [Entry]. Append rejects longer fields, except Reason, which it cuts
	// (on a UTF-8 boundary, marked "...") so that a long error message never
	// blocks a request.
	MaxFieldLen = 1024
)

var (
	// ErrTampered is wrapped by every error that reports a stored log that
	// does not verify; the detail is in a [*VerifyError].
	ErrTampered = errors.New("audit log tampered")
	// ErrUnavailable is wrapped by errors that come from the store: the
	// entries were not (or could not be shown to be) durably written.
	ErrUnavailable = errors.New("audit log unavailable")
	// ErrClosed is returned by Append after Close.
	ErrClosed = errors.New("audit log closed")
	// ErrInvalidEntry is wrapped by Append for an entry it refuses (a field
	// too long, an unknown outcome): nothing was written.
	ErrInvalidEntry = errors.New("invalid audit entry")
)

// VerifyError reports where a stored log fails verification. It unwraps to
// [ErrTampered].
type VerifyError struct {
	Seq    uint64 // the first sequence number at which the log is wrong
	Reason string // what is wrong there
}

// Error implements error.
func (e *VerifyError) Error() string {
	return fmt.Sprintf("audit log tampered at seq %d: %s", e.Seq, e.Reason)
}

// Unwrap returns [ErrTampered].
func (e *VerifyError) Unwrap() error { return ErrTampered }

// Entry is one audit record. Append assigns Seq, Time, Prev and Hash; the
// caller fills in the rest. Never put a secret in any field (see the package
// documentation).
type Entry struct {
	Seq       uint64    // assigned by Append, starting at 1
	Time      time.Time // assigned by Append from the clock, in UTC
	Principal string    // who asked, e.g. "token:app"; "" if unauthenticated
	Action    string    // "encrypt", "decrypt", "key.create", "grant.create", "token.revoke", …; required
	Key       string    // key name, or ""
	Version   uint32    // key version, or 0
	Outcome   string    // one of OutcomeAllow, OutcomeDeny, OutcomeOK, OutcomeError
	Reason    string    // why, for deny and error outcomes; cut to MaxFieldLen bytes
	Count     int       // items covered by a batch request; 0 is stored as 1
	Prev      [32]byte  // Hash of the previous entry; zero for Seq 1
	Hash      [32]byte  // SHA-256 over a domain string, Prev and every other field
}

// Report summarises a log that verified.
type Report struct {
	Entries uint64   // number of entries, which is also the last Seq
	Head    [32]byte // Hash of the last entry; zero for an empty log
}

// Option configures [Open].
type Option func(*options)

type options struct {
	clock    func() time.Time
	maxBatch int
	logger   *slog.Logger
}

// WithClock sets the clock that stamps entries (default time.Now). Times
// are stored in UTC with nanosecond precision; the entries of one batch
// share the time at which the batch was formed. If the clock goes backwards,
// entries keep the time of the last committed entry, so Time never
// decreases along the chain.
func WithClock(clock func() time.Time) Option {
	return func(o *options) {
		if clock != nil {
			o.clock = clock
		}
	}
}

// WithMaxBatch sets the largest number of entries written in one store
// transaction (default [DefaultMaxBatch]; between 1 and [MaxBatchLimit]).
func WithMaxBatch(n int) Option { return func(o *options) { o.maxBatch = n } }

// WithLogger sets the logger for store failures (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// Log is a hash-chained audit log. It is safe for concurrent use. A Log
// must be the only writer of the "audit/" keys of its store.
type Log struct {
	store kv.Store
	opts  options

	// damaged is non-nil when Open found the stored head inconsistent;
	// Append then refuses to write. Set once in Open.
	damaged *VerifyError

	mu     sync.RWMutex // held for reading while sending on reqs; for writing to close it
	closed bool
	reqs   chan *request
	done   chan struct{} // closed when the committer exits

	headMu   sync.Mutex
	headSeq  uint64   // last durable entry
	headHash [32]byte // its hash

	// Owned by the committer goroutine (and by Open before it starts).
	lastTime  time.Time // Time of the last durable entry
	attempted uint64    // highest seq ever written in an attempt
	// Reused by every commit: the store keeps no reference to keys or
	// values once Update has returned (kv.Txn.Set).
	entries []Entry
	vals    [][]byte
	buf     []byte // encoded entries, then their keys
}

// maxKeptBuf bounds the encoding buffer the committer keeps between
// commits.
const maxKeptBuf = 1 << 20

type request struct {
	ctx  context.Context
	e    Entry
	done chan result // buffered (1): the committer never blocks on it
}

// requests recycles the requests whose answer their Append has received:
// the committer is done with a request once it has answered it. A request
// whose Append gave up waiting (its ctx ended) is left to the garbage
// collector, since the committer may still answer it.
var requests = sync.Pool{New: func() any { return &request{done: make(chan result, 1)} }}

func (r *request) recycle() {
	r.ctx, r.e = nil, Entry{}
	requests.Put(r)
}

type result struct {
	e   Entry
	err error
}

// Open loads the head of the log in store and starts the committer
// goroutine. Call Close to stop it; Close does not close the store.
//
// Open fails only if the store cannot be read or an option is invalid. A
// head that does not match the stored entries is reported by Append and
// Verify (see the package documentation).
func Open(store kv.Store, opts ...Option) (*Log, error) {
	o := options{clock: time.Now, maxBatch: DefaultMaxBatch, logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.maxBatch < 1 || o.maxBatch > MaxBatchLimit {
		return nil, fmt.Errorf("audit: open: max batch %d out of range [1, %d]", o.maxBatch, MaxBatchLimit)
	}
	l := &Log{
		store: store,
		opts:  o,
		reqs:  make(chan *request, o.maxBatch),
		done:  make(chan struct{}),
	}
	if err := l.load(); err != nil {
		return nil, err
	}
	if l.damaged != nil {
		l.opts.logger.Error("audit: stored log is damaged; appends are refused until it is repaired",
			"seq", l.damaged.Seq, "reason", l.damaged.Reason)
	}
	go l.run()
	return l, nil
}

// load reads the head record and checks that it names the last stored
// entry: that entry exists and has the head's hash, and no entry follows it.
func (l *Log) load() error {
	v, err := l.store.Get([]byte(headKey))
	if errors.Is(err, kv.ErrNotFound) {
		return l.checkAbsent(1, "entries present but head record missing")
	}
	if err != nil {
		return fmt.Errorf("audit: open: read head: %w: %w", ErrUnavailable, err)
	}
	seq, hash, err := decodeHead(v)
	if err != nil {
		l.damaged = &VerifyError{Seq: 0, Reason: "malformed head record: " + err.Error()}
		return nil
	}
	l.headSeq, l.headHash, l.attempted = seq, hash, seq
	if seq > 0 {
		v, err := l.store.Get(entryKey(seq))
		if errors.Is(err, kv.ErrNotFound) {
			l.damaged = &VerifyError{Seq: seq, Reason: "entry named by the head record is missing"}
			return nil
		}
		if err != nil {
			return fmt.Errorf("audit: open: read entry %d: %w: %w", seq, ErrUnavailable, err)
		}
		e, err := decodeEntry(v)
		switch {
		case err != nil:
			l.damaged = &VerifyError{Seq: seq, Reason: "malformed entry: " + err.Error()}
			return nil
		case e.Seq != seq || e.Hash != hash || entryHash(v) != hash:
			l.damaged = &VerifyError{Seq: seq, Reason: "head record does not match the last entry"}
			return nil
		}
		l.lastTime = e.Time
	}
	return l.checkAbsent(seq+1, "entry beyond the head record")
}

// checkAbsent marks the log damaged if entry seq exists.
func (l *Log) checkAbsent(seq uint64, reason string) error {
	_, err := l.store.Get(entryKey(seq))
	switch {
	case err == nil:
		l.damaged = &VerifyError{Seq: seq, Reason: reason}
		return nil
	case errors.Is(err, kv.ErrNotFound):
		return nil
	default:
		return fmt.Errorf("audit: open: read entry %d: %w: %w", seq, ErrUnavailable, err)
	}
}

// Append records e and blocks until it is durably committed, then returns
// the stored entry with Seq, Time, Prev and Hash filled in (values the
// caller set there are ignored).
//
// If the store write fails, Append returns an error wrapping
// [ErrUnavailable] and the entry is not in the log. If ctx ends first,
// Append returns an error wrapping ctx.Err(); the entry is then either
// committed or not, but the chain stays intact either way. An entry whose
// ctx has ended before its batch is formed is not written.
func (l *Log) Append(ctx context.Context, e Entry) (Entry, error) {
	if err := validate(&e); err != nil {
		return Entry{}, fmt.Errorf("audit: append: %w: %w", ErrInvalidEntry, err)
	}
	if l.damaged != nil {
		return Entry{}, fmt.Errorf("audit: append: refusing to extend a damaged log: %w", l.damaged)
	}
	if err := ctx.Err(); err != nil {
		return Entry{}, fmt.Errorf("audit: append: %w", err)
	}
	r := requests.Get().(*request)
	r.ctx, r.e = ctx, e
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		r.recycle()
		return Entry{}, fmt.Errorf("audit: append: %w", ErrClosed)
	}
	select {
	case l.reqs <- r:
	case <-ctx.Done():
		l.mu.RUnlock()
		r.recycle() // never sent
		return Entry{}, fmt.Errorf("audit: append: %w", ctx.Err())
	}
	l.mu.RUnlock()
	select {
	case res := <-r.done:
		r.recycle()
		return res.e, res.err
	case <-ctx.Done():
		return Entry{}, fmt.Errorf("audit: append: %w", ctx.Err())
	}
}

// validate checks the caller's fields and normalises Count.
func validate(e *Entry) error {
	if e.Action == "" {
		return errors.New("action is required")
	}
	switch e.Outcome {
	case OutcomeAllow, OutcomeDeny, OutcomeOK, OutcomeError:
	default:
		return fmt.Errorf("unknown outcome %q", e.Outcome)
	}
	if e.Count == 0 {
		e.Count = 1
	}
	if len(e.Reason) > MaxFieldLen {
		e.Reason = truncate(e.Reason, MaxFieldLen)
	}
	if e.Count < 0 || e.Count > math.MaxInt32 {
		return fmt.Errorf("count %d out of range [1, %d]", e.Count, math.MaxInt32)
	}
	for _, f := range [...]struct{ name, v string }{
		{"principal", e.Principal}, {"action", e.Action}, {"key", e.Key},
		{"outcome", e.Outcome}, {"reason", e.Reason},
	} {
		if len(f.v) > MaxFieldLen {
			return fmt.Errorf("%s is %d bytes, longer than %d", f.name, len(f.v), MaxFieldLen)
		}
	}
	return nil
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut
// with "...".
func truncate(s string, n int) string {
	cut := n - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// run is the committer: it takes everything pending, up to maxBatch, and
// commits it in one transaction, until reqs is closed and drained.
func (l *Log) run() {
	defer close(l.done)
	batch := make([]*request, 0, l.opts.maxBatch)
	for {
		r, ok := <-l.reqs
		if !ok {
			return
		}
		batch = append(batch[:0], r)
		batch = l.fill(batch)
		l.commit(batch)
		clear(batch)
	}
}

// fill adds pending requests to batch, up to maxBatch. Between drains it
// yields the processor, so that appenders the previous commit just
// released, and that are runnable, queue their next entries in this batch;
// it stops as soon as a yield brings nothing new. Without this, batches
// alternate between a few entries and all the rest.
func (l *Log) fill(batch []*request) []*request {
	for len(batch) < l.opts.maxBatch {
		select {
		case r, ok := <-l.reqs:
			if !ok {
				return batch // closed: commit what we have; run sees the close next
			}
			batch = append(batch, r)
		default:
			runtime.Gosched()
			if len(l.reqs) == 0 {
				return batch
			}
		}
	}
	return batch
}

// commit chains, encodes and writes one batch, then releases its waiters.
func (l *Log) commit(batch []*request) {
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- result{err: fmt.Errorf("audit: append: %w", err)}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}

	now := l.opts.clock().UTC()
	if now.Before(l.lastTime) {
		now = l.lastTime
	}
	l.headMu.Lock()
	seq, prev := l.headSeq, l.headHash
	l.headMu.Unlock()
	first := seq + 1

	entries := slices.Grow(l.entries[:0], len(live))[:len(live)]
	size := 0
	for i, r := range live {
		e := r.e
		seq++
		e.Seq, e.Time = seq, now
		entries[i] = e
		size += encodedLen(&e) + entryKeyLen
	}
	// One buffer for the whole batch, values then keys, and the store may
	// keep references to them until Update returns: nothing else touches
	// the buffer until the next commit.
	buf := slices.Grow(l.buf[:0], size)
	vals := slices.Grow(l.vals[:0], 2*len(entries))[:2*len(entries)]
	keys := vals[len(entries):]
	for i := range entries {
		e := &entries[i]
		e.Prev = prev
		start := len(buf)
		buf = appendEntry(buf, e)
		vals[i] = buf[start:len(buf):len(buf)]
		prev = e.Hash
	}
	for i := range entries {
		start := len(buf)
		buf = appendEntryKey(buf, entries[i].Seq)
		keys[i] = buf[start:len(buf):len(buf)]
	}
	l.entries, l.vals, l.buf = entries, vals, buf
	if cap(buf) > maxKeptBuf {
		l.buf = nil // a batch of long entries: not kept for the next
	}
	defer clear(l.entries) // no caller's strings kept alive until the next commit
	stale := l.attempted
	l.attempted = max(l.attempted, seq)

	err := l.store.Update(func(txn kv.Txn) error {
		for i := range entries {
			if err := txn.Set(keys[i], vals[i]); err != nil {
				return err
			}
		}
		// Entries of an earlier failed write that went further than this
		// one may have reached the store; they are not part of the chain.
		for s := seq + 1; s <= stale; s++ {
			if err := txn.Delete(entryKey(s)); err != nil {
				return err
			}
		}
		return txn.Set([]byte(headKey), encodeHead(seq, prev))
	})
	if err != nil {
		l.opts.logger.Error("audit: commit failed; entries not acknowledged",
			"first_seq", first, "entries", len(entries), "err", err)
		err = fmt.Errorf("audit: append: %w: %w", ErrUnavailable, err)
		for _, r := range live {
			r.done <- result{err: err}
		}
		return
	}

	l.headMu.Lock()
	l.headSeq, l.headHash = seq, prev
	l.headMu.Unlock()
	l.lastTime = now
	l.attempted = seq
	for i, r := range live {
		r.done <- result{e: entries[i]}
	}
}

// Head returns the sequence number and hash of the last durably committed
// entry (0 and the zero hash for an empty log).
func (l *Log) Head() (seq uint64, hash [32]byte) {
	l.headMu.Lock()
	defer l.headMu.Unlock()
	return l.headSeq, l.headHash
}

// Tail returns the last n entries, oldest first; n is bounded to
// [MaxTail], and n <= 0 returns none. Each returned entry's hash and its
// link to the one before are checked; a mismatch is reported as a
// [*VerifyError].
func (l *Log) Tail(n int) ([]Entry, error) {
	if n <= 0 {
		return nil, nil
	}
	n = min(n, MaxTail)
	seq, hash := l.Head()
	if uint64(n) > seq {
		n = int(seq)
	}
	out := make([]Entry, 0, n)
	for s := seq - uint64(n) + 1; s <= seq; s++ {
		v, err := l.store.Get(entryKey(s))
		if errors.Is(err, kv.ErrNotFound) {
			return nil, fmt.Errorf("audit: tail: %w", &VerifyError{Seq: s, Reason: "entry missing"})
		}
		if err != nil {
			return nil, fmt.Errorf("audit: tail: read entry %d: %w: %w", s, ErrUnavailable, err)
		}
		e, err := decodeEntry(v)
		if err != nil {
			return nil, fmt.Errorf("audit: tail: %w", &VerifyError{Seq: s, Reason: "malformed entry: " + err.Error()})
		}
		if reason := checkEntry(v, &e, s); reason != "" {
			return nil, fmt.Errorf("audit: tail: %w", &VerifyError{Seq: s, Reason: reason})
		}
		if len(out) > 0 && e.Prev != out[len(out)-1].Hash {
			return nil, fmt.Errorf("audit: tail: %w", &VerifyError{Seq: s, Reason: "prev does not match the previous entry's hash"})
		}
		out = append(out, e)
	}
	if len(out) > 0 && out[len(out)-1].Hash != hash {
		return nil, fmt.Errorf("audit: tail: %w", &VerifyError{Seq: seq, Reason: "last entry does not match the head"})
	}
	return out, nil
}

// Close stops accepting appends (they return [ErrClosed]), waits until
// every append already queued has been committed or failed, and stops the
// committer. It does not close the store. Close is idempotent.
func (l *Log) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.reqs)
	}
	l.mu.Unlock()
	<-l.done
	return nil
}
