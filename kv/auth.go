package kv

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// ErrTampered is wrapped by every error that reports a stored record that
// does not authenticate, or a set of records that does not match its
// authenticated summary. A store reporting it was changed by someone who
// does not hold the master secret, or damaged.
var ErrTampered = errors.New("kv: store record does not authenticate")

// TagSize is the size of the tag Authenticated appends to each value.
const TagSize = 32

// Tagger computes the tags that authenticate records: a keyed MAC (such as
// HMAC-SHA256 under a key only the vault holds) of domain, key and value,
// TagSize bytes long. The two domains keep record tags and summary digests
// apart.
type Tagger interface {
	Tag(domain byte, key, value []byte) [TagSize]byte
}

// Tag domains.
const (
	DomainRecord  byte = 1 // the tag stored after a record's value
	DomainSummary byte = 2 // a record's digest in its prefix's summary
)

// DamageError reports the first record found that does not authenticate,
// or a summarised prefix whose records do not match their summary. It
// wraps ErrTampered.
type DamageError struct {
	Key    string // the store key of the record, or the summarised prefix
	Reason string
}

func (e *DamageError) Error() string {
	return fmt.Sprintf("kv: store record %s %s: it was altered, replayed or removed without the master secret, or the disk damaged it", strconv.QuoteToASCII(e.Key), e.Reason)
}

// Unwrap returns ErrTampered.
func (e *DamageError) Unwrap() error { return ErrTampered }

// SummaryPrefix starts the keys of the summary records.
const SummaryPrefix = "kv/summary/"

// summarySize is a summary value: the XOR of the digests of every record
// under the prefix, and their count.
const summarySize = TagSize + 8

// Authenticated is a Store whose every value, except under the exempt
// prefixes, carries a tag over its store key and value (value ‖ tag).
// Reading a record whose tag does not verify fails with a *DamageError
// naming it, so a record moved to another key, altered or forged without
// the Tagger's key is refused, never served.
//
// A per-record tag does not stop a replay of an older, validly tagged
// value of the same key, or the removal of a record. For the summarised
// prefixes Authenticated therefore keeps, in one tagged record per prefix
// updated in the same transaction as the records, the XOR of a keyed
// digest of every (key, value) under that prefix and their count.
// VerifySummaries recomputes them: a record rolled back, replayed from
// elsewhere, removed or added changes the XOR. Only a rollback of every
// record under the prefix together with its summary to one earlier moment
// goes unseen (a whole-store restore); no store can tell that apart from
// the past without state kept outside it.
//
// Transactions that change a summarised prefix read and write its summary
// record, so concurrent ones conflict and are retried by the underlying
// store (badgerstore) or serialised (Mem). Erase and DropPrefix refuse a
// summarised prefix, since they bypass transactions.
type Authenticated struct {
	inner      Store
	tagger     Tagger
	exempt     [][]byte
	summarised [][]byte
}

var _ Store = (*Authenticated)(nil)

// NewAuthenticated wraps inner. The values of the exempt keys (exact
// keys, not prefixes) are stored as they are: records read before the tag
// key exists, such as the vault's seal record. summarised lists the prefixes whose records are
// summarised (see the type doc); they must not overlap each other.
func NewAuthenticated(inner Store, t Tagger, exempt, summarised []string) *Authenticated {
	a := &Authenticated{inner: inner, tagger: t}
	for _, k := range exempt {
		a.exempt = append(a.exempt, []byte(k))
	}
	for _, p := range summarised {
		a.summarised = append(a.summarised, []byte(p))
	}
	return a
}

func (a *Authenticated) isExempt(key []byte) bool {
	for _, k := range a.exempt {
		if bytes.Equal(key, k) {
			return true
		}
	}
	return false
}

// summaryOf returns the summarised prefix key falls under, or -1.
func (a *Authenticated) summaryOf(key []byte) int {
	for i, p := range a.summarised {
		if bytes.HasPrefix(key, p) {
			return i
		}
	}
	return -1
}

func (a *Authenticated) seal(key, value []byte) []byte {
	if a.isExempt(key) {
		return value
	}
	tag := a.tagger.Tag(DomainRecord, key, value)
	out := make([]byte, 0, len(value)+TagSize)
	return append(append(out, value...), tag[:]...)
}

// open verifies a stored value and returns the value without its tag (a
// subslice of stored).
func (a *Authenticated) open(key, stored []byte) ([]byte, error) {
	if a.isExempt(key) {
		return stored, nil
	}
	if len(stored) < TagSize {
		return nil, &DamageError{Key: string(key), Reason: "is too short to carry its tag"}
	}
	v := stored[:len(stored)-TagSize]
	tag := a.tagger.Tag(DomainRecord, key, v)
	if subtle.ConstantTimeCompare(tag[:], stored[len(v):]) != 1 {
		return nil, &DamageError{Key: string(key), Reason: "does not authenticate"}
	}
	return v, nil
}

// Get implements Reader.
func (a *Authenticated) Get(key []byte) ([]byte, error) {
	v, err := a.inner.Get(key)
	if err != nil {
		return nil, err
	}
	return a.open(key, v)
}

// Scan implements Reader. It stops at the first record that does not
// authenticate.
func (a *Authenticated) Scan(prefix []byte, fn func(k, v []byte) error) error {
	return scanOpen(a, a.inner, prefix, fn)
}

func scanOpen(a *Authenticated, r Reader, prefix []byte, fn func(k, v []byte) error) error {
	return r.Scan(prefix, func(k, stored []byte) error {
		if bytes.HasPrefix(k, []byte(SummaryPrefix)) && !bytes.HasPrefix(prefix, []byte(SummaryPrefix)) {
			return nil // bookkeeping, not data, unless asked for
		}
		v, err := a.open(k, stored)
		if err != nil {
			return err
		}
		return fn(k, v)
	})
}

// Update implements Store.
func (a *Authenticated) Update(fn func(Txn) error) error {
	return a.inner.Update(func(tx Txn) error {
		t := &authTxn{a: a, tx: tx, deltas: make([]summary, len(a.summarised)), touched: make([]bool, len(a.summarised))}
		if err := fn(t); err != nil {
			return err
		}
		return t.writeSummaries()
	})
}

// Close implements Store.
func (a *Authenticated) Close() error { return a.inner.Close() }

// Erase implements Eraser when the wrapped store does. It refuses a prefix
// that overlaps a summarised one.
func (a *Authenticated) Erase(prefix []byte) error {
	if err := a.unsummarised("erase", prefix); err != nil {
		return err
	}
	e, ok := a.inner.(Eraser)
	if !ok {
		return errors.New("kv: erase: the store cannot erase")
	}
	return e.Erase(prefix)
}

// CanErase reports whether the wrapped store implements Eraser.
func (a *Authenticated) CanErase() bool {
	_, ok := a.inner.(Eraser)
	return ok
}

// DropPrefix implements Dropper when the wrapped store does. Like Erase
// it bypasses transactions, so it refuses a prefix that overlaps a
// summarised one.
func (a *Authenticated) DropPrefix(prefix []byte) error {
	if err := a.unsummarised("drop", prefix); err != nil {
		return err
	}
	d, ok := a.inner.(Dropper)
	if !ok {
		return errors.New("kv: drop: the store cannot drop a prefix")
	}
	return d.DropPrefix(prefix)
}

// CanDrop reports whether the wrapped store implements Dropper.
func (a *Authenticated) CanDrop() bool {
	_, ok := a.inner.(Dropper)
	return ok
}

// unsummarised refuses (for op) a prefix that overlaps a summarised one.
func (a *Authenticated) unsummarised(op string, prefix []byte) error {
	for _, p := range a.summarised {
		if bytes.HasPrefix(prefix, p) || bytes.HasPrefix(p, prefix) {
			return fmt.Errorf("kv: %s %q: overlaps the summarised prefix %q", op, prefix, p)
		}
	}
	return nil
}

type summary struct {
	xor [TagSize]byte
	n   int64
}

func (s *summary) add(d [TagSize]byte, sign int64) {
	subtle.XORBytes(s.xor[:], s.xor[:], d[:])
	s.n += sign
}

func decodeSummary(v []byte) (summary, bool) {
	var s summary
	if len(v) != summarySize {
		return s, false
	}
	copy(s.xor[:], v)
	s.n = int64(binary.BigEndian.Uint64(v[TagSize:]))
	return s, s.n >= 0
}

func (s summary) encode() []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), s.xor[:]...), uint64(s.n))
}

type authTxn struct {
	a       *Authenticated
	tx      Txn
	deltas  []summary
	touched []bool
}

func (t *authTxn) Get(key []byte) ([]byte, error) {
	v, err := t.tx.Get(key)
	if err != nil {
		return nil, err
	}
	return t.a.open(key, v)
}

func (t *authTxn) Scan(prefix []byte, fn func(k, v []byte) error) error {
	return scanOpen(t.a, t.tx, prefix, fn)
}

// account takes key's current value out of its summary, if it has one.
func (t *authTxn) account(key []byte) (int, error) {
	i := t.a.summaryOf(key)
	if i < 0 {
		return -1, nil
	}
	old, err := t.Get(key)
	switch {
	case err == nil:
		t.deltas[i].add(t.a.tagger.Tag(DomainSummary, key, old), -1)
	case !errors.Is(err, ErrNotFound):
		return i, err
	}
	t.touched[i] = true
	return i, nil
}

func (t *authTxn) Set(key, value []byte) error {
	if bytes.HasPrefix(key, []byte(SummaryPrefix)) {
		return fmt.Errorf("kv: %q is reserved for summaries", key)
	}
	i, err := t.account(key)
	if err != nil {
		return err
	}
	if i >= 0 {
		t.deltas[i].add(t.a.tagger.Tag(DomainSummary, key, value), 1)
	}
	return t.tx.Set(key, t.a.seal(key, value))
}

func (t *authTxn) Delete(key []byte) error {
	if _, err := t.account(key); err != nil {
		return err
	}
	return t.tx.Delete(key)
}

func (t *authTxn) writeSummaries() error {
	for i, p := range t.a.summarised {
		if !t.touched[i] {
			continue
		}
		cur, err := t.a.readSummary(t.tx, p)
		if err != nil {
			return err
		}
		cur.add(t.deltas[i].xor, t.deltas[i].n)
		if cur.n < 0 {
			return &DamageError{Key: string(p), Reason: "summary counts fewer records than were removed"}
		}
		k := []byte(SummaryPrefix + string(p))
		if err := t.tx.Set(k, t.a.seal(k, cur.encode())); err != nil {
			return err
		}
	}
	return nil
}

func (a *Authenticated) readSummary(r Reader, prefix []byte) (summary, error) {
	k := []byte(SummaryPrefix + string(prefix))
	stored, err := r.Get(k)
	if errors.Is(err, ErrNotFound) {
		return summary{}, nil
	}
	if err != nil {
		return summary{}, err
	}
	v, err := a.open(k, stored)
	if err != nil {
		return summary{}, err
	}
	s, ok := decodeSummary(v)
	if !ok {
		return summary{}, &DamageError{Key: string(k), Reason: "is malformed"}
	}
	return s, nil
}

// compute returns the summary of what is stored under prefix, verifying
// every record on the way.
func (a *Authenticated) compute(prefix []byte) (summary, error) {
	var s summary
	err := a.Scan(prefix, func(k, v []byte) error {
		s.add(a.tagger.Tag(DomainSummary, k, v), 1)
		return nil
	})
	return s, err
}

// VerifySummaries checks every record under each summarised prefix and
// that together they match the prefix's summary. It returns a
// *DamageError naming the first record that does not authenticate, or the
// prefix whose records were rolled back, replayed, removed or added.
func (a *Authenticated) VerifySummaries() error {
	for _, p := range a.summarised {
		got, err := a.compute(p)
		if err != nil {
			return err
		}
		want, err := a.readSummary(a.inner, p)
		if err != nil {
			return err
		}
		if got != want {
			return summaryMismatch(p, got, want)
		}
	}
	return nil
}

func summaryMismatch(prefix []byte, got, want summary) error {
	return &DamageError{Key: string(prefix), Reason: fmt.Sprintf("holds %d records that do not match their summary (%d records): one was rolled back, replayed, removed or added", got.n, want.n)}
}

// Verify is VerifyAll and VerifySummaries in one scan of the store (a
// node's start-up checks every record once, not its summarised records
// twice): it returns a *DamageError naming the first record that does not
// authenticate, or else the first summarised prefix whose records were
// rolled back, replayed, removed or added.
func (a *Authenticated) Verify() error { return a.VerifyRest(nil) }

// VerifyRest is Verify for the records that are not under one of the
// checked prefixes: the caller reads every record under those with
// ScanChecked, which checks each tag (and a summarised prefix's summary)
// there, once, so a start-up that loads them checks them once rather than
// twice. A checked prefix must be a summarised prefix exactly or overlap
// none: VerifyRest refuses one that covers part of a summarised prefix,
// since neither check would then see the whole summary.
func (a *Authenticated) VerifyRest(checked [][]byte) error {
	skipSummary := make([]bool, len(a.summarised))
	for _, c := range checked {
		if len(c) == 0 {
			return errors.New("kv: verify: an empty checked prefix would skip the whole store")
		}
		for i, p := range a.summarised {
			switch {
			case bytes.Equal(c, p):
				skipSummary[i] = true
			case bytes.HasPrefix(c, p) || bytes.HasPrefix(p, c):
				return fmt.Errorf("kv: verify: checked prefix %q overlaps the summarised prefix %q", c, p)
			}
		}
	}
	isChecked := func(k []byte) bool {
		for _, c := range checked {
			if bytes.HasPrefix(k, c) {
				return true
			}
		}
		return false
	}
	got := make([]summary, len(a.summarised))
	scan := a.inner.Scan
	if ss, ok := a.inner.(skipScanner); ok && len(checked) > 0 {
		// Seek past the checked prefixes rather than read their values.
		scan = func(prefix []byte, fn func(k, v []byte) error) error { return ss.ScanSkipping(prefix, checked, fn) }
	}
	err := scan(nil, func(k, stored []byte) error {
		if len(checked) > 0 && isChecked(k) {
			return nil // checked by the caller's ScanChecked
		}
		v, err := a.open(k, stored)
		if err != nil {
			return err
		}
		// As compute: a summary record is no prefix's data unless the
		// prefix is under SummaryPrefix.
		isSummary := bytes.HasPrefix(k, []byte(SummaryPrefix))
		for i, p := range a.summarised {
			if bytes.HasPrefix(k, p) && (!isSummary || bytes.HasPrefix(p, []byte(SummaryPrefix))) {
				got[i].add(a.tagger.Tag(DomainSummary, k, v), 1)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, p := range a.summarised {
		if skipSummary[i] {
			continue
		}
		want, err := a.readSummary(a.inner, p)
		if err != nil {
			return err
		}
		if got[i] != want {
			return summaryMismatch(p, got[i], want)
		}
	}
	return nil
}

// skipScanner is a Reader that can scan leaving out the keys under some
// prefixes without reading their values (badgerstore.DB).
type skipScanner interface {
	ScanSkipping(prefix []byte, skip [][]byte, fn func(k, v []byte) error) error
}

// ScanChecked is Scan over every record under prefix, to the end: it
// checks each record's tag and, when prefix is a summarised prefix, that
// the records together match its summary. It hands fn each record that
// authenticates, in key order, until fn returns an error; the scan then
// goes on checking without calling fn, and a record or summary that does
// not authenticate is reported in preference to fn's error, as a separate
// Verify would have been. It is the check VerifyRest leaves to its caller.
func (a *Authenticated) ScanChecked(prefix []byte, fn func(k, v []byte) error) error {
	si := -1
	for i, p := range a.summarised {
		if bytes.Equal(prefix, p) {
			si = i
		}
	}
	var got summary
	var ferr error
	err := scanOpen(a, a.inner, prefix, func(k, v []byte) error {
		if si >= 0 {
			got.add(a.tagger.Tag(DomainSummary, k, v), 1)
		}
		if ferr == nil {
			ferr = fn(k, v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if si >= 0 {
		want, err := a.readSummary(a.inner, prefix)
		if err != nil {
			return err
		}
		if got != want {
			return summaryMismatch(prefix, got, want)
		}
	}
	return ferr
}

// VerifyAll checks the tag of every record in the store and returns a
// *DamageError naming the first that does not authenticate.
func (a *Authenticated) VerifyAll() error {
	return a.inner.Scan(nil, func(k, v []byte) error {
		_, err := a.open(k, v)
		return err
	})
}

// migrateBatch bounds the records Migrate rewrites per transaction.
const migrateBatch = 256

// Migrate tags every record that does not carry a valid tag yet (a store
// written before records were authenticated) and writes the summaries
// afresh. It runs in bounded transactions and may be repeated after a
// crash: records already tagged are kept. It trusts what is stored, so
// call it only once the caller has established that the store is one of
// the old format (the vault does: its seal record says so, under the
// master secret). It returns how many records it tagged.
func (a *Authenticated) Migrate() (int, error) {
	var keys [][]byte
	err := a.inner.Scan(nil, func(k, v []byte) error {
		if a.isExempt(k) || bytes.HasPrefix(k, []byte(SummaryPrefix)) {
			return nil
		}
		if _, err := a.open(k, v); err != nil {
			keys = append(keys, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("kv: migrate: %w", err)
	}
	tagged := 0
	for len(keys) > 0 {
		batch := keys[:min(len(keys), migrateBatch)]
		keys = keys[len(batch):]
		n := 0
		err := a.inner.Update(func(tx Txn) error {
			n = 0 // the store may retry the transaction
			for _, k := range batch {
				v, err := tx.Get(k)
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if _, err := a.open(k, v); err == nil {
					continue
				}
				if err := tx.Set(k, a.seal(k, v)); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("kv: migrate: %w", err)
		}
		tagged += n
	}
	for _, p := range a.summarised {
		s, err := a.compute(p)
		if err != nil {
			return 0, fmt.Errorf("kv: migrate: %w", err)
		}
		k := []byte(SummaryPrefix + string(p))
		if err := a.inner.Update(func(tx Txn) error { return tx.Set(k, a.seal(k, s.encode())) }); err != nil {
			return 0, fmt.Errorf("kv: migrate: %w", err)
		}
	}
	return tagged, nil
}
