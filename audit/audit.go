// Package audit is keymesh's tamper-evident audit log: an append-only,
// hash-chained sequence of [Entry] records kept in segment files written
// with plain write(2), each record authenticated by the vault's tagger.
//
// Start with [Open] over a directory ([DirFS], or [MemFS] in tests) and a
// [kv.Tagger] (the vault's: an HMAC under a key only the vault holds).
// Record every policy decision and every administrative change with
// [Log.Append], show recent history with [Log.Tail], and check the whole
// chain with [Log.Verify] (what `keymesh audit verify` runs). [Import]
// copies a log kept by an older keymesh in a [kv.Store] into a new
// directory.
//
// # Guarantees
//
//   - Durable before acknowledged. Append returns only after its entry has
//     been written to the segment file (write(2) returned), so it survives
//     the process being killed. With [WithSyncInterval] a background
//     fdatasync follows within the interval, bounding what a power loss can
//     take; without it every write is fdatasynced before Append returns.
//     If the write fails, Append returns an error wrapping
//     [ErrUnavailable] and no entry of that write is acknowledged. Callers
//     must fail closed: a request whose decision could not be audited is
//     refused. A failed fdatasync makes every later Append fail (the file's
//     state is then unknown) until the log is reopened.
//   - Ordered and chained. Entries are numbered 1, 2, 3, … without gaps.
//     Each entry's Hash is SHA-256 over a domain string, the previous
//     entry's hash (Prev) and an unambiguous, length-prefixed binary
//     encoding of every other field.
//   - Authenticated. Every record carries a tag (kv.Tagger, domain
//     kv.DomainRecord) over its seq and its bytes: a record forged,
//     altered or rewritten without the vault's key is reported, whatever
//     the chain says. The hash chain then orders the tagged records: a
//     record copied to another position, removed or reordered breaks it.
//   - A failed write never breaks the chain: the in-memory head advances
//     only after a successful write, and what a failed (or partial) write
//     left in the file is truncated away before the next write, so the
//     next write chains from the last durable entry.
//   - Group commit. Appends from many goroutines are written together, up
//     to [WithMaxBatch] entries per write. An Append that finds no write in
//     flight writes the pending batch itself (it leads); the others wait,
//     and the leader hands the next batch to the first of them. A lone
//     request costs no goroutine switch.
//   - Full disk. With [WithReserve], a write is refused with an error
//     wrapping [ErrUnavailable] and [kv.ErrNoSpace] while less than the
//     reserve is free (and a write that fails with ENOSPC wraps
//     kv.ErrNoSpace too); writes succeed again once space is freed.
//     [Log.CheckSpace] says whether a write would be refused now.
//
// # What Verify detects, and what it cannot
//
// [Log.Verify] streams every segment and reports, as a [*VerifyError] that
// wraps [ErrTampered] (and [kv.ErrTampered] for a record whose tag fails),
// the first entry that was forged, altered, dropped, reordered or copied
// to another position, a segment that is truncated or missing, and, in a
// running process, a log that ends before the last entry this process
// wrote. The log is tamper-evident, not tamper-proof: whoever can write
// the files can cut the log back to the end of any record (in practice to
// the end of a batch) — every remaining record still verifies, and no
// record the attacker could write without the vault's key would. A fresh
// process cannot tell that from a log that simply ended there. To detect
// it, record [Log.Head] somewhere the attacker cannot reach (an operator's
// notes, a ledger transaction) and compare it later.
//
// [Open] checks the boundaries of every segment and every record of the
// last one. If it finds damage there, it still opens the log so that
// Verify and Tail can show it, but Append refuses to extend it and returns
// an error wrapping [ErrTampered]: a damaged log is never silently
// extended or overwritten. Repairing it is an operator's decision. A torn
// final record — the last segment ends inside a record (its length, bytes
// or tag incomplete) with no whole, authenticated record ending the file
// after it, or in zero bytes only, as a crash during a write leaves it —
// was never acknowledged as fdatasynced and is truncated away with a
// warning; a complete record whose tag or chain fails, or whose length
// was damaged to run past whole records, is damage.
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
// The directory holds segment files named by the seq of their first entry,
// "%020d.seg", each at most [DefaultSegmentSize] (see [WithSegmentSize])
// unless one batch is larger. A new segment is made under a ".tmp" name,
// fdatasynced and renamed into place, and the one before it is fdatasynced
// first, so only the last segment can end in a torn record. A segment is
//
//	"KMAUDLG1" ‖ u64 first seq ‖ record…
//	record = u32 n ‖ encoded entry (n bytes: format version, Prev, Seq,
//	         Time, fields, Hash) ‖ tag ‖ u32 n
//	tag    = Tagger.Tag(kv.DomainRecord, "auditlog/" ‖ u64 seq, entry)
//
// (big-endian integers). The trailing length lets [Log.Tail] read from the
// end. Reads stream with a bounded buffer; memory does not grow with the
// log's history. Files are never memory-mapped.
package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
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
	// DefaultMaxBatch is the default number of entries written in one
	// write.
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
	// ErrUnavailable is wrapped by errors that come from the files: the
	// entries were not (or could not be shown to be) durably written.
	ErrUnavailable = errors.New("audit log unavailable")
	// ErrMissing is returned by Open with WithExisting for a directory
	// that holds no segment.
	ErrMissing = errors.New("audit log missing: the directory holds no segment file")
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

	forged bool // a record's tag does not verify
}

// Error implements error.
func (e *VerifyError) Error() string {
	return fmt.Sprintf("audit log tampered at seq %d: %s", e.Seq, e.Reason)
}

// Unwrap returns [ErrTampered], and [kv.ErrTampered] too for a record
// whose tag does not verify (written or altered without the vault's key).
func (e *VerifyError) Unwrap() []error {
	if e.forged {
		return []error{ErrTampered, kv.ErrTampered}
	}
	return []error{ErrTampered}
}

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
	clock        func() time.Time
	maxBatch     int
	logger       *slog.Logger
	syncInterval time.Duration // 0: fdatasync every write; <0 (Import): at rotation and Close only
	segmentSize  int64
	reserve      uint64
	spaceRecheck time.Duration // see checkSpaceCached; tests change it
	existing     bool
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

// WithMaxBatch sets the largest number of entries written in one write
// (default [DefaultMaxBatch]; between 1 and [MaxBatchLimit]).
func WithMaxBatch(n int) Option { return func(o *options) { o.maxBatch = n } }

// WithLogger sets the logger for write failures and repairs (default
// slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithSyncInterval makes Append return once its entry is written to the
// file (it survives a crash of the process), and fdatasyncs the file in
// the background every d while something was written (so a power loss
// takes at most about d of entries). The default, and d <= 0, is an
// fdatasync before every Append returns.
func WithSyncInterval(d time.Duration) Option {
	return func(o *options) { o.syncInterval = max(d, 0) }
}

// WithSegmentSize sets the size at which a segment is closed and the next
// started (default [DefaultSegmentSize]; at least 4 KiB).
func WithSegmentSize(n int64) Option { return func(o *options) { o.segmentSize = n } }

// WithReserve makes a write fail, with an error wrapping [kv.ErrNoSpace],
// while less than bytes are free on the log's file system (default 0: no
// check).
func WithReserve(bytes uint64) Option { return func(o *options) { o.reserve = bytes } }

// WithExisting makes Open fail with [ErrMissing] when the directory holds
// no segment, instead of starting a new log: for a caller that knows a log
// was created there before.
func WithExisting() Option { return func(o *options) { o.existing = true } }

// segment is one segment file: its name and first seq.
type segment struct {
	name  string
	first uint64
}

// view is what readers see of the log: the segments, the committed end of
// the last one, and the head.
type view struct {
	segs []segment // never modified in place: rotation makes a new slice
	end  int64     // committed size of the last segment
	seq  uint64    // last durable entry
	hash [32]byte  // its hash
}

// Log is a hash-chained audit log. It is safe for concurrent use. A Log
// must be the only writer of its FS.
type Log struct {
	fs     FS
	tagger kv.Tagger
	opts   options

	// damaged is non-nil when Open found the stored log damaged; Append
	// then refuses to write. Set once in Open.
	damaged *VerifyError

	// mu guards the queue of appends and the leader's baton.
	mu         sync.Mutex
	pending    []*request
	committing bool       // a leader is writing, or about to hand over
	idle       *sync.Cond // signalled (on mu) when committing ends
	closed     bool

	viewMu sync.Mutex
	view   view

	failed  atomic.Pointer[error] // a failed fdatasync: every later write fails
	refused atomic.Uint64         // writes refused for lack of space
	dirty   atomic.Bool           // written since the last background sync
	// The syncer fdatasyncs syncFile without holding up the leader's
	// writes (an fdatasync takes milliseconds; writes go on meanwhile).
	// syncMu is held while it syncs; rotation takes it before closing the
	// segment it replaced.
	syncFile atomic.Pointer[fileBox]
	syncMu   sync.Mutex
	stopSync chan struct{}
	syncDone chan struct{}
	close1   sync.Once
	closeErr error

	// Owned by the leader (one at a time; handed over under mu) and by
	// Open before the log is shared.
	active    File      // the last segment, open for writing
	activeN   int       // records in it
	end       int64     // its size (committed)
	truncate  bool      // a failed write may have left bytes after end
	lastTime  time.Time // Time of the last durable entry
	headSeq   uint64
	headHash  [32]byte
	batch     []*request
	entries   []Entry
	buf       []byte
	scanSpace []byte
	// The last space check that passed, and what was written since.
	spaceAt      time.Time
	spaceWritten int64
}

// fileBox holds a File for an atomic.Pointer.
type fileBox struct{ f File }

// maxKeptBuf bounds the encoding buffer the leader keeps between writes.
const maxKeptBuf = 1 << 20

// Request states, guarded by Log.mu.
const (
	stQueued = iota // in pending
	stTaken         // in a batch being written
	stLeader        // handed the baton: it writes the next batch
)

type request struct {
	ctx   context.Context
	e     Entry
	state int
	done  chan result // buffered (1): a leader never blocks on it
}

// requests recycles the requests whose answer their Append has received.
// A request whose Append gave up waiting (its ctx ended) while it was
// being written is left to the garbage collector, since its leader may
// still answer it.
var requests = sync.Pool{New: func() any { return &request{done: make(chan result, 1)} }}

func (r *request) recycle() {
	r.ctx, r.e = nil, Entry{}
	requests.Put(r)
}

type result struct {
	e    Entry
	err  error
	lead bool // not an answer: the receiver is to write the next batch
}

// Open opens the log in fsys (starting a new one if fsys holds no
// segment, unless [WithExisting]), checks it (see the package doc), and
// truncates a torn final record. tagger authenticates records: it must be
// the same at every opening. Call Close when done.
//
// Open fails only if fsys cannot be read, an option is invalid, or (with
// WithExisting) there is no log. Damage is reported by Append and Verify.
func Open(fsys FS, tagger kv.Tagger, opts ...Option) (*Log, error) {
	o := options{clock: time.Now, maxBatch: DefaultMaxBatch, logger: slog.Default(), segmentSize: DefaultSegmentSize, spaceRecheck: spaceRecheck}
	for _, opt := range opts {
		opt(&o)
	}
	if o.maxBatch < 1 || o.maxBatch > MaxBatchLimit {
		return nil, fmt.Errorf("audit: open: max batch %d out of range [1, %d]", o.maxBatch, MaxBatchLimit)
	}
	if o.segmentSize < 4<<10 {
		return nil, fmt.Errorf("audit: open: segment size %d below 4 KiB", o.segmentSize)
	}
	if tagger == nil {
		return nil, errors.New("audit: open: a tagger is required")
	}
	l := &Log{fs: fsys, tagger: tagger, opts: o, scanSpace: make([]byte, scanBuf)}
	l.idle = sync.NewCond(&l.mu)
	if err := l.load(); err != nil {
		if l.active != nil {
			l.active.Close()
		}
		return nil, err
	}
	if l.damaged != nil {
		l.opts.logger.Error("audit: stored log is damaged; appends are refused until it is repaired",
			"seq", l.damaged.Seq, "reason", l.damaged.Reason)
	}
	if o.syncInterval > 0 {
		l.stopSync, l.syncDone = make(chan struct{}), make(chan struct{})
		go l.syncLoop()
	}
	return l, nil
}

// load finds the segments, checks them and sets the head.
func (l *Log) load() error {
	names, err := l.fs.List()
	if err != nil {
		return fmt.Errorf("audit: open: list segments: %w: %w", ErrUnavailable, err)
	}
	var segs []segment
	for _, name := range names {
		if len(name) > len(tmpSuffix) && name[len(name)-len(tmpSuffix):] == tmpSuffix {
			// A segment being made when the process stopped: it holds
			// no acknowledged entry.
			if err := l.fs.Remove(name); err != nil {
				return fmt.Errorf("audit: open: remove %s: %w: %w", name, ErrUnavailable, err)
			}
			continue
		}
		if first, ok := parseSegName(name); ok {
			segs = append(segs, segment{name: name, first: first})
		}
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].first < segs[j].first })
	if len(segs) == 0 {
		if l.opts.existing {
			return fmt.Errorf("audit: open: %w", ErrMissing)
		}
		return l.create()
	}
	if segs[0].first != 1 {
		l.damaged = &VerifyError{Seq: 1, Reason: fmt.Sprintf("the first segment starts at seq %d: segments before it are missing", segs[0].first)}
	}
	// Boundaries: every segment but the last ends with the entry before
	// the next one's first, and that entry is sound.
	var prev Entry
	for i := 0; i < len(segs)-1 && l.damaged == nil; i++ {
		e, verr, err := l.lastOf(segs[i], segs[i+1].first)
		if err != nil {
			return err
		}
		if verr != nil {
			l.damaged = verr
			break
		}
		prev = e
	}
	last := segs[len(segs)-1]
	f, err := l.fs.Open(last.name)
	if err != nil {
		return fmt.Errorf("audit: open: %s: %w: %w", last.name, ErrUnavailable, err)
	}
	l.active = f
	l.syncFile.Store(&fileBox{f})
	size, err := f.Size()
	if err != nil {
		return fmt.Errorf("audit: open: %s: %w: %w", last.name, ErrUnavailable, err)
	}
	l.view = view{segs: segs, end: size, seq: last.first - 1, hash: prev.Hash}
	l.headSeq, l.headHash, l.lastTime, l.end = last.first-1, prev.Hash, prev.Time, size
	if l.damaged != nil {
		return nil
	}
	if last.first > 1 && prev.Seq != last.first-1 {
		return errors.New("audit: open: internal error: boundary check skipped") // unreachable
	}
	return l.loadLast(last, prev, size)
}

// lastOf reads and checks the last record of seg, which must be next-1,
// and its header.
func (l *Log) lastOf(seg segment, next uint64) (Entry, *VerifyError, error) {
	f, err := l.fs.Open(seg.name)
	if err != nil {
		return Entry{}, nil, fmt.Errorf("audit: open: %s: %w: %w", seg.name, ErrUnavailable, err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return Entry{}, nil, fmt.Errorf("audit: open: %s: %w: %w", seg.name, ErrUnavailable, err)
	}
	hdr := make([]byte, segHeaderLen)
	if n, _ := f.ReadAt(hdr, 0); n < segHeaderLen {
		return Entry{}, &VerifyError{Seq: seg.first, Reason: "segment header truncated"}, nil
	}
	if reason := checkSegHeader(hdr, seg.first); reason != "" {
		return Entry{}, &VerifyError{Seq: seg.first, Reason: reason}, nil
	}
	if size == int64(segHeaderLen) {
		return Entry{}, &VerifyError{Seq: seg.first, Reason: "a segment before the last is empty: its entries are missing"}, nil
	}
	e, _, err := readRecordBefore(f, l.tagger, size, int64(segHeaderLen), l.scanSpace)
	switch {
	case errors.Is(err, errMalformed):
		return Entry{}, recordError(next-1, fmt.Errorf("last record of segment %s: %w", seg.name, err)), nil
	case err != nil:
		return Entry{}, nil, fmt.Errorf("audit: open: %s: %w: %w", seg.name, ErrUnavailable, err)
	case e.Seq != next-1:
		return Entry{}, &VerifyError{Seq: min(e.Seq, next-1) + 1, Reason: fmt.Sprintf("segment %s ends at seq %d but the next starts at seq %d: entries missing", seg.name, e.Seq, next)}, nil
	}
	return e, nil, nil
}

// loadLast checks every record of the last segment, truncating a torn
// final record, and sets the head to its last entry.
func (l *Log) loadLast(seg segment, prev Entry, size int64) error {
	hdr := make([]byte, segHeaderLen)
	if n, _ := l.active.ReadAt(hdr, 0); n < segHeaderLen {
		l.damaged = &VerifyError{Seq: seg.first, Reason: "segment header truncated"}
		return nil
	}
	if reason := checkSegHeader(hdr, seg.first); reason != "" {
		l.damaged = &VerifyError{Seq: seg.first, Reason: reason}
		return nil
	}
	c := chain{next: seg.first, prev: prev.Hash, last: prev}
	s := newSegScan(l.active, l.tagger, size, l.scanSpace)
	n := 0
	for { // bounded: every round consumes a record or ends
		e, end, err := s.next()
		switch {
		case err == nil:
			if verr := c.add(&e); verr != nil {
				l.damaged = verr
				return nil
			}
			n++
			continue
		case errors.Is(err, io.EOF):
		case errors.Is(err, errTorn):
			// Torn only if nothing sound follows: a length damaged in a
			// complete record also runs past the end of the file, but a
			// whole, authenticated record still ends there.
			if e, ok := soundRecordAtEnd(l.active, l.tagger, size, end, l.scanSpace); ok {
				l.damaged = &VerifyError{Seq: c.next, Reason: fmt.Sprintf("record length damaged: it runs past the end of the segment, where the record of seq %d is whole", e.Seq)}
				return nil
			}
			if err := l.dropTorn(seg, end, size); err != nil {
				return err
			}
		case errors.Is(err, errMalformed):
			zero, zerr := allZero(l.active, end, size, l.scanSpace)
			if zerr != nil {
				return fmt.Errorf("audit: open: %s: %w: %w", seg.name, ErrUnavailable, zerr)
			}
			if !zero {
				l.damaged = recordError(c.next, err)
				return nil
			}
			if err := l.dropTorn(seg, end, size); err != nil {
				return err
			}
		default:
			return fmt.Errorf("audit: open: %s: %w: %w", seg.name, ErrUnavailable, err)
		}
		l.activeN = n
		l.headSeq, l.headHash, l.lastTime = c.last.Seq, c.last.Hash, c.last.Time
		l.view.seq, l.view.hash, l.view.end = l.headSeq, l.headHash, l.end
		return nil
	}
}

// dropTorn truncates the last segment to end, the start of its torn final
// record.
func (l *Log) dropTorn(seg segment, end, size int64) error {
	l.opts.logger.Warn("audit: dropping a torn final record (the process or machine stopped during a write)",
		"segment", seg.name, "offset", end, "bytes", size-end)
	if err := l.active.Truncate(end); err != nil {
		return fmt.Errorf("audit: open: truncate torn record: %w: %w", ErrUnavailable, err)
	}
	if err := l.active.Sync(); err != nil {
		return fmt.Errorf("audit: open: truncate torn record: %w: %w", ErrUnavailable, err)
	}
	l.end = end
	return nil
}

// create starts a new log: segment 1, made durable before it is used.
func (l *Log) create() error {
	f, err := l.newSegment(1)
	if err != nil {
		return fmt.Errorf("audit: open: create: %w: %w", ErrUnavailable, err)
	}
	l.active, l.end = f, int64(segHeaderLen)
	l.syncFile.Store(&fileBox{f})
	l.view = view{segs: []segment{{name: segName(1), first: 1}}, end: l.end}
	return nil
}

// newSegment makes the segment starting at first: written under a
// temporary name, fdatasynced, renamed into place, directory synced.
func (l *Log) newSegment(first uint64) (File, error) {
	name := segName(first)
	tmp := name + tmpSuffix
	f, err := l.fs.Create(tmp)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (File, error) {
		f.Close()
		_ = l.fs.Remove(tmp)
		return nil, err
	}
	if _, err := f.WriteAt(appendSegHeader(nil, first), 0); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := l.fs.Rename(tmp, name); err != nil {
		return fail(err)
	}
	if err := l.fs.SyncDir(); err != nil {
		// The segment may or may not be in the directory now: the log
		// cannot tell where its next entries belong. Refuse writes until
		// it is reopened (which sorts it out from what is on disk).
		f.Close()
		l.failed.Store(&err)
		return nil, err
	}
	return f, nil
}

// Damaged returns the damage Open found (a *VerifyError), or nil.
func (l *Log) Damaged() error {
	if l.damaged == nil {
		return nil
	}
	return l.damaged
}

// Append records e and blocks until it is durably written (see the package
// doc), then returns the stored entry with Seq, Time, Prev and Hash filled
// in (values the caller set there are ignored).
//
// If the write fails, Append returns an error wrapping [ErrUnavailable]
// and the entry is not in the log. If ctx ends first, Append returns an
// error wrapping ctx.Err(); the entry is then either written or not, but
// the chain stays intact either way. An entry whose ctx has ended before
// its batch is formed is not written.
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
	r.ctx, r.e, r.state = ctx, e, stQueued
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		r.recycle()
		return Entry{}, fmt.Errorf("audit: append: %w", ErrClosed)
	}
	l.pending = append(l.pending, r)
	lead := !l.committing
	l.committing = true
	l.mu.Unlock()
	if lead {
		l.lead()
	}
	for range 2 { // at most a baton, then the answer
		select {
		case res := <-r.done:
			if res.lead {
				l.lead()
				continue
			}
			r.recycle()
			return res.e, res.err
		case <-ctx.Done():
			l.mu.Lock()
			switch r.state {
			case stQueued: // not in any batch: never written
				if i := slices.Index(l.pending, r); i >= 0 {
					l.pending = slices.Delete(l.pending, i, i+1)
				}
				l.mu.Unlock()
				r.recycle()
				return Entry{}, fmt.Errorf("audit: append: %w", ctx.Err())
			case stLeader: // handed the baton: write the batch (this entry is skipped), then answer
				l.mu.Unlock()
				<-r.done // the baton, sent under mu
				l.lead()
				res := <-r.done // this request was in that batch
				r.recycle()
				return res.e, res.err
			default: // being written by a leader, which will answer into r.done
				l.mu.Unlock()
				return Entry{}, fmt.Errorf("audit: append: %w", ctx.Err())
			}
		}
	}
	return Entry{}, errors.New("audit: append: internal error: no answer") // unreachable: a baton is followed by the answer
}

// lead writes one batch from the front of pending, then hands the baton
// to the next pending request or, if there is none, puts it down.
func (l *Log) lead() {
	l.mu.Lock()
	n := min(len(l.pending), l.opts.maxBatch)
	batch := append(l.batch[:0], l.pending[:n]...)
	for _, r := range batch {
		r.state = stTaken
	}
	rest := copy(l.pending, l.pending[n:])
	clear(l.pending[rest:])
	l.pending = l.pending[:rest]
	l.mu.Unlock()

	l.commit(batch)
	clear(batch)
	l.batch = batch

	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) == 0 {
		l.committing = false
		l.idle.Broadcast()
		return
	}
	next := l.pending[0]
	next.state = stLeader
	next.done <- result{lead: true} // r.done is empty: its request is unanswered
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

// commit chains, encodes and writes one batch, then answers its requests.
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
	entries := slices.Grow(l.entries[:0], len(live))[:len(live)]
	seq := l.headSeq
	for i, r := range live {
		e := r.e
		seq++
		e.Seq, e.Time = seq, now
		entries[i] = e
	}
	l.entries = entries
	defer clear(l.entries) // no caller's strings kept alive until the next commit
	if err := l.write(entries); err != nil {
		l.opts.logger.Error("audit: write failed; entries not acknowledged",
			"first_seq", entries[0].Seq, "entries", len(entries), "err", err)
		err = fmt.Errorf("audit: append: %w: %w", ErrUnavailable, err)
		for _, r := range live {
			r.done <- result{err: err}
		}
		return
	}
	for i, r := range live {
		r.done <- result{e: entries[i]}
	}
}

// write chains entries (numbered from the head on, Time set) from the
// head, writes them in one write, and advances the head. On failure
// nothing of it stays in the log and the head is unchanged.
func (l *Log) write(entries []Entry) error {
	if p := l.failed.Load(); p != nil {
		return fmt.Errorf("refused after a failed fdatasync: %w", *p)
	}
	if err := l.checkSpaceCached(); err != nil {
		l.refused.Add(1)
		return err
	}
	prev := l.headHash
	buf := l.buf[:0]
	for i := range entries {
		e := &entries[i]
		e.Prev = prev
		buf = appendRecord(buf, e, l.tagger)
		prev = e.Hash
	}
	l.buf = buf
	if cap(buf) > maxKeptBuf {
		l.buf = nil // a batch of long entries: not kept for the next
	}
	if l.truncate {
		// A failed write may have left some of its bytes: they are not
		// part of the chain.
		if err := l.active.Truncate(l.end); err != nil {
			return fmt.Errorf("truncate the failed write: %w", err)
		}
		l.truncate = false
	}
	if l.activeN > 0 && l.end+int64(len(buf)) > l.opts.segmentSize {
		if err := l.rotate(entries[0].Seq); err != nil {
			return fmt.Errorf("start segment %d: %w", entries[0].Seq, err)
		}
	}
	if _, err := l.active.WriteAt(buf, l.end); err != nil {
		if terr := l.active.Truncate(l.end); terr != nil {
			l.truncate = true
		}
		if errors.Is(err, syscall.ENOSPC) {
			err = fmt.Errorf("%w: %w", kv.ErrNoSpace, err)
		}
		return err
	}
	if l.opts.syncInterval == 0 {
		if err := l.active.Sync(); err != nil {
			l.failed.Store(&err)
			return fmt.Errorf("fdatasync: %w", err)
		}
	} else {
		l.dirty.Store(true)
	}
	l.end += int64(len(buf))
	l.spaceWritten += int64(len(buf))
	l.activeN += len(entries)
	last := &entries[len(entries)-1]
	l.headSeq, l.headHash, l.lastTime = last.Seq, last.Hash, last.Time
	l.viewMu.Lock()
	l.view.end, l.view.seq, l.view.hash = l.end, l.headSeq, l.headHash
	l.viewMu.Unlock()
	return nil
}

// rotate closes the active segment (fdatasynced first, so that only the
// last segment can ever end torn) and starts the one whose first entry is
// first. Leader only.
func (l *Log) rotate(first uint64) error {
	if err := l.active.Sync(); err != nil {
		l.failed.Store(&err)
		return fmt.Errorf("fdatasync: %w", err)
	}
	f, err := l.newSegment(first)
	if err != nil {
		return err
	}
	old := l.active
	l.active, l.end, l.activeN = f, int64(segHeaderLen), 0
	l.syncFile.Store(&fileBox{f})
	l.syncMu.Lock() // a background fdatasync of the old segment finishes first
	err = old.Close()
	l.syncMu.Unlock()
	if err != nil {
		l.opts.logger.Warn("audit: close a full segment", "err", err)
	}
	l.viewMu.Lock()
	segs := append(slices.Clip(l.view.segs), segment{name: segName(first), first: first})
	l.view.segs, l.view.end = segs, l.end
	l.viewMu.Unlock()
	return nil
}

// syncLoop fdatasyncs the active segment every interval while something
// was written.
func (l *Log) syncLoop() {
	defer close(l.syncDone)
	t := time.NewTicker(l.opts.syncInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stopSync:
			return
		case <-t.C:
			// An idle log costs nothing: an fdatasync with nothing
			// written is still a device flush on most file systems.
			if !l.dirty.Swap(false) {
				continue
			}
			if err := l.sync(); err != nil {
				l.opts.logger.Error("audit: background fdatasync failed; refusing further writes", "err", err)
				return
			}
		}
	}
}

// sync fdatasyncs the active segment (the last one published), alongside
// the leader's writes.
func (l *Log) sync() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if p := l.failed.Load(); p != nil {
		return *p
	}
	if err := l.syncFile.Load().f.Sync(); err != nil {
		l.failed.Store(&err)
		return err
	}
	return nil
}

// Sync makes every entry written so far durable against a power loss.
func (l *Log) Sync() error {
	if err := l.sync(); err != nil {
		return fmt.Errorf("audit: sync: %w: %w", ErrUnavailable, err)
	}
	return nil
}

// SpaceError is the error a write refused for lack of space returns. It
// wraps kv.ErrNoSpace.
type SpaceError struct {
	Free, Reserve uint64
}

func (e *SpaceError) Error() string {
	return fmt.Sprintf("audit: the log's file system has %d MiB free, less than the %d MiB reserve; writes are refused until space is freed",
		e.Free>>20, e.Reserve>>20)
}

// Unwrap returns kv.ErrNoSpace.
func (e *SpaceError) Unwrap() error { return kv.ErrNoSpace }

// FreeBytes returns the space available on the log's file system.
func (l *Log) FreeBytes() (uint64, error) { return l.fs.Free() }

// CheckSpace returns a *SpaceError if a write would be refused now for
// lack of space (see [WithReserve]). A failing statfs is not treated as a
// full disk.
func (l *Log) CheckSpace() error {
	if l.opts.reserve == 0 {
		return nil
	}
	free, err := l.fs.Free()
	if err != nil {
		return nil
	}
	if free < l.opts.reserve {
		return &SpaceError{Free: free, Reserve: l.opts.reserve}
	}
	return nil
}

// spaceRecheck bounds how long a passed space check is trusted: a statfs
// per write cost as much as the write itself (docs/benchmarks.md). The
// check is made again sooner once an eighth of the reserve was written.
const spaceRecheck = 10 * time.Millisecond

// checkSpaceCached is CheckSpace, trusting a passed check for up to
// spaceRecheck or reserve/8 bytes written since. Leader only.
func (l *Log) checkSpaceCached() error {
	if l.opts.reserve == 0 {
		return nil
	}
	if !l.spaceAt.IsZero() && time.Since(l.spaceAt) < l.opts.spaceRecheck && uint64(l.spaceWritten) < l.opts.reserve/8 {
		return nil
	}
	if err := l.CheckSpace(); err != nil {
		l.spaceAt = time.Time{}
		return err
	}
	l.spaceAt, l.spaceWritten = time.Now(), 0
	return nil
}

// RefusedWrites returns how many writes were refused for lack of space.
func (l *Log) RefusedWrites() uint64 { return l.refused.Load() }

// Head returns the sequence number and hash of the last durably written
// entry (0 and the zero hash for an empty log).
func (l *Log) Head() (seq uint64, hash [32]byte) {
	l.viewMu.Lock()
	defer l.viewMu.Unlock()
	return l.view.seq, l.view.hash
}

func (l *Log) snapshot() view {
	l.viewMu.Lock()
	defer l.viewMu.Unlock()
	return l.view
}

// Tail returns the last n entries, oldest first; n is bounded to
// [MaxTail], and n <= 0 returns none. It reads from the end of the log.
// Each returned entry's tag and hash and its link to the one before are
// checked; a mismatch is reported as a [*VerifyError].
func (l *Log) Tail(n int) ([]Entry, error) {
	if n <= 0 {
		return nil, nil
	}
	if l.damaged != nil {
		return nil, fmt.Errorf("audit: tail: %w", l.damaged)
	}
	v := l.snapshot()
	n = int(min(uint64(min(n, MaxTail)), v.seq))
	out := make([]Entry, n)
	buf := make([]byte, maxRecordLen)
	i := n - 1
	want := v.seq // the seq the next record read back must have
	for s := len(v.segs) - 1; s >= 0 && i >= 0; s-- {
		seg := v.segs[s]
		if err := l.tailSegment(seg, s == len(v.segs)-1, v.end, out, &i, &want, buf); err != nil {
			return nil, fmt.Errorf("audit: tail: %w", err)
		}
	}
	if i >= 0 {
		return nil, fmt.Errorf("audit: tail: %w", &VerifyError{Seq: want, Reason: "entry missing"})
	}
	if n > 0 && out[n-1].Hash != v.hash {
		return nil, fmt.Errorf("audit: tail: %w", &VerifyError{Seq: v.seq, Reason: "last entry does not match the head"})
	}
	return out, nil
}

// tailSegment fills out[..*i] backwards from the end of seg.
func (l *Log) tailSegment(seg segment, last bool, lastEnd int64, out []Entry, i *int, want *uint64, buf []byte) error {
	f, err := l.fs.Open(seg.name)
	if err != nil {
		return fmt.Errorf("%s: %w: %w", seg.name, ErrUnavailable, err)
	}
	defer f.Close()
	end := lastEnd
	if !last {
		if end, err = f.Size(); err != nil {
			return fmt.Errorf("%s: %w: %w", seg.name, ErrUnavailable, err)
		}
	}
	for end > int64(segHeaderLen) && *i >= 0 { // bounded: end decreases by a record per round
		e, start, err := readRecordBefore(f, l.tagger, end, int64(segHeaderLen), buf)
		switch {
		case errors.Is(err, errMalformed):
			return recordError(*want, err)
		case err != nil:
			return fmt.Errorf("%s: %w: %w", seg.name, ErrUnavailable, err)
		case e.Seq != *want:
			return &VerifyError{Seq: *want, Reason: fmt.Sprintf("entry missing or out of place: found seq %d where seq %d belongs", e.Seq, *want)}
		case *i+1 < len(out) && out[*i+1].Prev != e.Hash:
			return &VerifyError{Seq: e.Seq + 1, Reason: "prev does not match the previous entry's hash"}
		}
		out[*i] = e
		*i--
		*want--
		end = start
	}
	return nil
}

// Close stops accepting appends (they return [ErrClosed]), waits until
// every append already queued has been written or failed, fdatasyncs and
// closes the active segment. Close is idempotent.
func (l *Log) Close() error {
	l.mu.Lock()
	l.closed = true
	for l.committing { // bounded: closed stops new appends, the leaders drain the rest
		l.idle.Wait()
	}
	l.mu.Unlock()
	l.close1.Do(func() {
		if l.stopSync != nil {
			close(l.stopSync)
			<-l.syncDone
		}
		if l.damaged == nil && l.active != nil {
			if err := l.sync(); err != nil {
				l.closeErr = fmt.Errorf("audit: close: final fdatasync: %w: %w", ErrUnavailable, err)
			}
		}
		if l.active == nil {
			return
		}
		if err := l.active.Close(); err != nil && l.closeErr == nil {
			l.closeErr = fmt.Errorf("audit: close: %w", err)
		}
	})
	return l.closeErr
}

// isNotExist reports whether err says a file does not exist.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
