package fabricid

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strconv"
	"sync"
	"time"
)

// DefaultReplayCapacity bounds the transactions a [Replay] remembers.
// Entries live twice the proposal window, so the default serves
// ~430 transactions a second sustained with a 5-minute window.
const DefaultReplayCapacity = 1 << 18

// MaxEndorsementsPerTx bounds the distinct (key, context) pairs one
// transaction may encrypt in endorsement mode.
const MaxEndorsementsPerTx = 4096

// ErrReplayFull reports that the node remembers as many live
// transactions as it may; it refuses new ones until old ones expire
// rather than forget one that could then be replayed.
var ErrReplayFull = errors.New("fabricid: too many transactions in flight; retry later")

// ErrEndorsementConflict reports a second, different plaintext for the
// same key, context and transaction in endorsement mode: with a derived
// nonce that would let the caller test guesses against an envelope.
var ErrEndorsementConflict = errors.New("fabricid: a different plaintext was already encrypted for this key, context and transaction")

// Replay is a node's bounded memory of the transactions that chaincode
// tokens presented. A chaincode legitimately calls the node several times
// in one transaction, so repeated uses of one proposal through one token
// are admitted, while the window lasts; it refuses the transaction id
// with another proposal, through another token, or after the window
// since its first use. It is safe for concurrent use.
type Replay struct {
	window time.Duration
	max    int
	key    [32]byte // HMAC key for plaintext digests, random per process

	mu       sync.Mutex
	txs      map[string]*txUse
	byDigest map[[sha256.Size]byte]*txUse
	order    []txExpiry // insertion order; expiries are non-decreasing
	head     int
}

type txUse struct {
	p       Proposal // as verified at its first use
	digest  [sha256.Size]byte
	token   string
	first   time.Time
	endorse map[string][sha256.Size]byte // key ‖ context → HMAC(plaintext)
}

type txExpiry struct {
	txID    string
	expires time.Time
}

// NewReplay returns a replay cache for proposals verified with window,
// remembering at most capacity transactions (DefaultReplayCapacity if
// capacity <= 0).
func NewReplay(window time.Duration, capacity int) *Replay {
	if capacity <= 0 {
		capacity = DefaultReplayCapacity
	}
	r := &Replay{window: window, max: capacity, txs: map[string]*txUse{}, byDigest: map[[sha256.Size]byte]*txUse{}}
	if _, err := rand.Read(r.key[:]); err != nil {
		panic("fabricid: random: " + err.Error())
	}
	return r
}

// Check admits one use of p through the chaincode token tokenID at now.
// Errors wrap ErrInvalidCreator and ErrReplay, or are ErrReplayFull.
func (r *Replay) Check(p Proposal, tokenID string, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if u, ok := r.txs[p.TxID]; ok {
		return u.admit(p, tokenID, now, r.window)
	}
	r.expire(now)
	if len(r.txs) >= r.max {
		return ErrReplayFull
	}
	u := &txUse{p: p, digest: p.Digest, token: tokenID, first: now}
	r.txs[p.TxID] = u
	r.byDigest[p.Digest] = u
	// A proposal is accepted while |now - timestamp| <= window, so once
	// first + 2*window has passed, its timestamp refuses it anyway.
	r.order = append(r.order, txExpiry{txID: p.TxID, expires: now.Add(2 * r.window)})
	return nil
}

func (u *txUse) admit(p Proposal, tokenID string, now time.Time, window time.Duration) error {
	refuse := func(reason string) error {
		return &Error{MSPID: p.Creator.MSPID, Kind: ErrReplay, Reason: "transaction " + p.TxID + ": " + reason}
	}
	switch {
	case u.digest != p.Digest:
		return refuse("its id was already used with another proposal")
	case u.token != tokenID:
		return refuse("it was already used through another chaincode token")
	case now.Sub(u.first) > window:
		return refuse("its first use was more than " + window.String() + " ago")
	}
	return nil
}

// Known returns the proposal that the marshalled SignedProposal signed
// verified to at its first use, if this cache admitted exactly those bytes
// before and its timestamp still lies within window of now: a chaincode
// calls the node several times per transaction, and the bytes' SHA-256
// stands for the signature and certificate checks already made. The
// caller must still [Replay.Check] the result.
func (r *Replay) Known(signed []byte, now time.Time, window time.Duration) (Proposal, bool) {
	d := sha256.Sum256(signed)
	r.mu.Lock()
	defer r.mu.Unlock()
	u, ok := r.byDigest[d]
	if !ok {
		return Proposal{}, false
	}
	if age := now.Sub(u.p.Timestamp); age > window || age < -window {
		return Proposal{}, false
	}
	return u.p, true
}

// expire drops the entries whose time has passed. r.mu is held.
func (r *Replay) expire(now time.Time) {
	for r.head < len(r.order) && !r.order[r.head].expires.After(now) {
		if u, ok := r.txs[r.order[r.head].txID]; ok {
			delete(r.byDigest, u.digest)
		}
		delete(r.txs, r.order[r.head].txID)
		r.order[r.head] = txExpiry{}
		r.head++
	}
	if r.head > 1024 && r.head*2 > len(r.order) {
		r.order = append(r.order[:0:0], r.order[r.head:]...)
		r.head = 0
	}
}

// Endorse records that transaction txID (admitted by Check) encrypts
// plaintext under key and context (a canonical encoding of the envelope
// context) in endorsement mode. The same plaintext again is fine (every
// endorsement of one proposal repeats it); a different one returns
// ErrEndorsementConflict.
func (r *Replay) Endorse(txID, key, context string, plaintext []byte) error {
	m := hmac.New(sha256.New, r.key[:])
	m.Write(plaintext)
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	slot := strconv.Itoa(len(key)) + ":" + key + context
	r.mu.Lock()
	defer r.mu.Unlock()
	u, ok := r.txs[txID]
	if !ok {
		return &Error{Kind: ErrReplay, Reason: "transaction " + txID + " was not admitted"}
	}
	if prev, ok := u.endorse[slot]; ok {
		if !hmac.Equal(prev[:], sum[:]) {
			return ErrEndorsementConflict
		}
		return nil
	}
	if len(u.endorse) >= MaxEndorsementsPerTx {
		return &Error{MSPID: "", Kind: ErrReplay, Reason: "transaction " + txID + " encrypts more than " + strconv.Itoa(MaxEndorsementsPerTx) + " fields in endorsement mode"}
	}
	if u.endorse == nil {
		u.endorse = map[string][sha256.Size]byte{}
	}
	u.endorse[slot] = sum
	return nil
}
