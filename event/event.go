package event

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/keymesh/keymesh/network"
)

// Kind says what an event's payload is. Its value is written into every
// event: the values are pinned and never change.
type Kind uint8

// The event kinds.
const (
	KindNodeRecord Kind = 1  // payload NodeRecord: an org admin registers a node
	KindDeregister Kind = 2  // payload Deregister: an org admin removes a node
	KindKeyCreate  Kind = 3  // payload KeyCreate: a node of the owner org creates a key
	KindKeyVersion Kind = 4  // payload KeyVersion: a new key version, wrapped for its holders
	KindKeyShare   Kind = 5  // payload KeyShare: existing versions re-wrapped for more nodes
	KindKeyState   Kind = 6  // payload KeyState: a lifecycle change
	KindKeyDestroy Kind = 7  // payload KeyDestroy: crypto-shredding
	KindDestroyAck Kind = 8  // payload DestroyAck: a holder confirms it destroyed a key
	KindGrant      Kind = 9  // payload policy.Grant
	KindRevoke     Kind = 10 // payload policy.Revocation
	KindKMIPAttrs  Kind = 11 // payload KMIPAttrs: a key's KMIP attributes (event/kmip.go)
)

var kindNames = [...]string{
	KindNodeRecord: "node-record",
	KindDeregister: "deregister",
	KindKeyCreate:  "key-create",
	KindKeyVersion: "key-version",
	KindKeyShare:   "key-share",
	KindKeyState:   "key-state",
	KindKeyDestroy: "key-destroy",
	KindDestroyAck: "destroy-ack",
	KindGrant:      "grant",
	KindRevoke:     "revoke",
	KindKMIPAttrs:  "kmip-attrs",
}

// String returns the kind's name ("node-record", "key-version", "grant", …),
// or "kind(N)" for a value that is not a kind.
func (k Kind) String() string {
	if k.Valid() {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Valid reports whether k is one of the kinds above.
func (k Kind) Valid() bool { return k >= KindNodeRecord && k <= KindKMIPAttrs }

// Errors callers branch on.
var (
	// ErrMalformed is wrapped by every error about bytes that do not follow
	// a format of this package (an event, a payload, a checkpoint) or of
	// package network (a genesis, a node record, a key): it is
	// network.ErrMalformed, so one check covers both.
	ErrMalformed = network.ErrMalformed
	// ErrBadSignature is the one error for a signature that does not
	// verify, whatever the reason. It is returned as is.
	ErrBadSignature = network.ErrBadSignature
	// ErrForeignNetwork is returned by Event.CheckNetwork for an event of
	// another network.
	ErrForeignNetwork = errors.New("event: foreign network")
	// ErrOldFormat is returned by Parse for an event of an earlier format
	// version, as found in the data directory of an older keymesh.
	ErrOldFormat = errors.New("event: earlier event format")
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// FormatVersion is the first byte of every event.
const FormatVersion = 2

// MaxPayload is the largest payload an event carries, in bytes.
const MaxPayload = 512 << 10

// Sizes of the binary form.
const (
	// HeaderSize is the size of everything before the payload of an event
	// without dependencies (each adds DepSize).
	HeaderSize = 1 + 32 + 32 + 8 + 32 + 8 + 8 + 1 + 1 + 4
	// SignatureSize is the size of the trailing Ed25519 signature.
	SignatureSize = ed25519.SignatureSize
	// MaxSize is the size of the largest event: header, payload,
	// signature, and MaxWraps attachments of MaxWrapBlob bytes.
	MaxSize = HeaderSize + MaxDeps*DepSize + MaxPayload + SignatureSize + 2 + MaxWraps*(4+MaxWrapBlob)
)

const signLabel = "keymesh/v2 event\x00"

// Event is a signed change. See the package doc for its binary form. Its
// fields are authoritative: Marshal, ID and Verify read them as they are.
type Event struct {
	// Network is the network the event belongs to.
	Network network.NetworkID
	// Issuer is the signing key of the node that issued the event.
	Issuer network.NodeKey
	// Seq is the issuer's sequence number, from 1, one more for each event
	// the issuer issues.
	Seq uint64
	// Prev is the ID of the issuer's event at Seq-1, and zero exactly when
	// Seq is 1: every issuer's events form a hash chain, so two different
	// events at one position (equivocation) cannot both be extended.
	Prev [32]byte
	// Lamport is the issuer's Lamport clock: exactly one more than the
	// largest Lamport clock of Prev and of every dependency. The receiver
	// derives it from the events it holds and refuses a different value
	// (package mesh), so it cannot be backdated.
	Lamport uint64
	// Deps are the other issuers' events this one causally follows (the
	// heads the issuer had seen that its earlier events did not name), at
	// most MaxDeps, sorted by issuer, one per issuer, never the issuer
	// itself (Prev is its own chain).
	Deps []Dep
	// Time is the issuer's wall clock when it issued the event, with
	// nanosecond precision, after 1970 and before 2262 (int64 Unix
	// nanoseconds). Parse returns it in UTC. Informational: it orders
	// nothing and authorises nothing by itself.
	Time time.Time
	// Kind says what Payload holds.
	Kind Kind
	// Payload is the kind's JSON payload (network.DecodeNodeRecord, DecodeGrant, …),
	// at most MaxPayload bytes.
	Payload []byte
	// Sig is the issuer's Ed25519 signature.
	Sig [SignatureSize]byte
	// Attachments are the wrapped key copies that the payload of a
	// KeyVersion or KeyShare names by digest (Wrap.Digest). They are not
	// signed — the signed digests bind them — so a node can prune them
	// (after a key is destroyed, crypto-shredding) without invalidating the
	// event. At most MaxWraps, each 1..MaxWrapBlob bytes.
	Attachments [][]byte
}

// Dep names another issuer's event: its issuer, its sequence number and its
// ID. A receiver holds an event only once it holds every dependency with
// that ID at that position.
type Dep struct {
	Issuer network.NodeKey
	Seq    uint64
	ID     [32]byte
}

// DepSize is the size of one encoded dependency.
const DepSize = 32 + 8 + 32

// MaxDeps is the most dependencies an event names.
const MaxDeps = 64

// Attachment returns the attachment whose SHA-256 is d, or nil.
func (e *Event) Attachment(d Digest) []byte {
	for _, a := range e.Attachments {
		if sha256.Sum256(a) == d {
			return a
		}
	}
	return nil
}

// Pruned returns a copy of e without attachments: the same event (same ID,
// valid signature) with its wrapped key copies removed.
func (e *Event) Pruned() *Event {
	c := *e
	c.Attachments = nil
	return &c
}

// check reports whether e's fields, other than the signature, can be
// encoded as an event that Parse accepts.
func (e *Event) check() error {
	switch {
	case e.Seq == 0:
		return malformed("sequence number 0")
	case e.Seq == 1 && e.Prev != [32]byte{}:
		return malformed("first event of an issuer names a previous event")
	case e.Seq > 1 && e.Prev == [32]byte{}:
		return malformed("event %d of an issuer names no previous event", e.Seq)
	case e.Lamport < e.Seq:
		return malformed("lamport clock %d below sequence number %d", e.Lamport, e.Seq)
	case len(e.Deps) > MaxDeps:
		return malformed("%d dependencies, at most %d", len(e.Deps), MaxDeps)
	case !e.Kind.Valid():
		return malformed("unknown kind %d", e.Kind)
	case len(e.Payload) > MaxPayload:
		return malformed("payload of %d bytes exceeds %d", len(e.Payload), MaxPayload)
	case len(e.Attachments) > MaxWraps:
		return malformed("%d attachments, at most %d", len(e.Attachments), MaxWraps)
	}
	for i, d := range e.Deps {
		switch {
		case d.Issuer == e.Issuer && e.Issuer != (network.NodeKey{}):
			return malformed("dependency %d on the issuer's own chain", i)
		case d.Seq == 0:
			return malformed("dependency %d at sequence number 0", i)
		case d.Seq >= e.Lamport:
			// A dependency's Lamport clock is at least its Seq, and ours
			// exceeds it.
			return malformed("dependency %d at sequence number %d not below lamport clock %d", i, d.Seq, e.Lamport)
		case i > 0 && bytes.Compare(e.Deps[i-1].Issuer[:], d.Issuer[:]) >= 0:
			return malformed("dependencies not sorted by issuer, or one issuer twice")
		}
	}
	for i, a := range e.Attachments {
		if len(a) == 0 || len(a) > MaxWrapBlob {
			return malformed("attachment %d of %d bytes, want 1..%d", i, len(a), MaxWrapBlob)
		}
	}
	if _, ok := unixNano(e.Time); !ok || e.Time.UnixNano() <= 0 {
		return malformed("time %s is not after 1970 and before 2262", e.Time.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// unixNano returns t as Unix nanoseconds, and whether t is representable
// so (years 1678 to 2262).
func unixNano(t time.Time) (int64, bool) {
	n := t.UnixNano()
	return n, time.Unix(0, n).Equal(t)
}

// appendSigned appends everything before the signature.
func (e *Event) appendSigned(b []byte) []byte {
	b = append(b, FormatVersion)
	b = append(b, e.Network[:]...)
	b = append(b, e.Issuer[:]...)
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = append(b, e.Prev[:]...)
	b = binary.BigEndian.AppendUint64(b, e.Lamport)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixNano()))
	b = append(b, byte(e.Kind))
	b = append(b, byte(len(e.Deps)))
	for _, d := range e.Deps {
		b = append(b, d.Issuer[:]...)
		b = binary.BigEndian.AppendUint64(b, d.Seq)
		b = append(b, d.ID[:]...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Payload)))
	return append(b, e.Payload...)
}

// SignedSize is the size of e's binary form up to and including the
// signature: everything but the attachment trailer.
func (e *Event) SignedSize() int {
	return HeaderSize + len(e.Deps)*DepSize + len(e.Payload) + SignatureSize
}

// Marshal returns the binary form of e, attachments included, in a new
// slice. It does not validate e: an event that is not valid marshals to
// bytes Parse rejects.
func (e *Event) Marshal() []byte {
	size := HeaderSize + len(e.Deps)*DepSize + len(e.Payload) + SignatureSize + 2
	for _, a := range e.Attachments {
		size += 4 + len(a)
	}
	b := make([]byte, 0, size)
	b = e.appendSigned(b)
	b = append(b, e.Sig[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.Attachments)))
	for _, a := range e.Attachments {
		b = binary.BigEndian.AppendUint32(b, uint32(len(a)))
		b = append(b, a...)
	}
	return b
}

// ID returns the event's id: the SHA-256 of its signed part and signature
// (attachments excluded, so pruning keeps the id). Two encodings signed by
// the same issuer for the same sequence number have different ids; that is
// equivocation, and the caller detects it by (Issuer, Seq).
func (e *Event) ID() [32]byte {
	b := make([]byte, 0, HeaderSize+len(e.Deps)*DepSize+len(e.Payload)+SignatureSize)
	b = e.appendSigned(b)
	return sha256.Sum256(append(b, e.Sig[:]...))
}

// signedMessage returns what the issuer signs: the label followed by every
// byte of the binary form before the signature.
func (e *Event) signedMessage() []byte {
	b := make([]byte, 0, len(signLabel)+HeaderSize+len(e.Deps)*DepSize+len(e.Payload))
	b = append(b, signLabel...)
	return e.appendSigned(b)
}

// Sign signs e with the issuer's Ed25519 key (an ed25519.PrivateKey, or
// the node's vault.Signer, whose private half stays in the vault): it sets
// e.Issuer to the public key and e.Sig to the signature, and returns the
// signed event (with its own copy of the payload, its Time in UTC) and its
// binary form. e's Seq, Lamport, Time, Kind and Payload must be valid (see
// Event); Sign does not look inside the payload.
func Sign(priv crypto.Signer, e Event) (Event, []byte, error) {
	issuer, err := signerKey(priv)
	if err != nil {
		return Event{}, nil, err
	}
	if err := e.check(); err != nil {
		return Event{}, nil, err
	}
	e.Issuer = issuer
	e.Time = time.Unix(0, e.Time.UnixNano()).UTC()
	e.Payload = bytes.Clone(e.Payload)
	if e.Payload == nil {
		e.Payload = []byte{}
	}
	e.Deps = slices.Clone(e.Deps)
	if err := e.check(); err != nil { // now with the issuer set
		return Event{}, nil, err
	}
	if e.Sig, err = signWith(priv, e.signedMessage()); err != nil {
		return Event{}, nil, err
	}
	return e, e.Marshal(), nil
}

// signerKey returns the Ed25519 public key of s as a network.NodeKey.
func signerKey(s crypto.Signer) (network.NodeKey, error) {
	if s == nil {
		return network.NodeKey{}, errors.New("event: no signing key")
	}
	if k, ok := s.(ed25519.PrivateKey); ok && len(k) != ed25519.PrivateKeySize {
		return network.NodeKey{}, fmt.Errorf("event: private key of %d bytes, want %d", len(k), ed25519.PrivateKeySize)
	}
	pub, ok := s.Public().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return network.NodeKey{}, fmt.Errorf("event: signing key is %T, want an Ed25519 key", s.Public())
	}
	return network.NodeKey(pub), nil
}

// signWith signs msg with s (pure Ed25519).
func signWith(s crypto.Signer, msg []byte) ([SignatureSize]byte, error) {
	sig, err := s.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		return [SignatureSize]byte{}, fmt.Errorf("event: sign: %w", err)
	}
	if len(sig) != SignatureSize {
		return [SignatureSize]byte{}, fmt.Errorf("event: signature of %d bytes, want %d", len(sig), SignatureSize)
	}
	return [SignatureSize]byte(sig), nil
}

// Parse parses the binary form of an event. It is strict: it accepts only
// what Marshal writes for a valid event (format version 1, sequence number
// and Lamport clock at least 1, a time after 1970, a known kind, a payload of
// at most MaxPayload bytes, then the attachment trailer and nothing after
// it), so
// Parse(b).Marshal() equals b. The event does not alias b. Parse does not
// verify the signature (call Verify) nor look inside the payload (call the
// kind's Decode function). Its errors wrap ErrMalformed.
func Parse(b []byte) (*Event, error) {
	if len(b) > 0 && b[0] != FormatVersion {
		if b[0] == 1 {
			return nil, fmt.Errorf("%w: %w (format version 1: this keymesh reads version %d)", ErrMalformed, ErrOldFormat, FormatVersion)
		}
		return nil, malformed("unknown format version %d", b[0])
	}
	if len(b) < HeaderSize+SignatureSize {
		return nil, malformed("truncated event of %d bytes", len(b))
	}
	e := &Event{
		Network: network.NetworkID(b[1:33]),
		Issuer:  network.NodeKey(b[33:65]),
		Seq:     binary.BigEndian.Uint64(b[65:73]),
		Prev:    [32]byte(b[73:105]),
		Lamport: binary.BigEndian.Uint64(b[105:113]),
		Kind:    Kind(b[121]),
	}
	nanos := int64(binary.BigEndian.Uint64(b[113:121]))
	if nanos <= 0 {
		return nil, malformed("time %d is not after 1970", nanos)
	}
	e.Time = time.Unix(0, nanos).UTC()
	nd := int(b[122])
	if nd > MaxDeps {
		return nil, malformed("%d dependencies, at most %d", nd, MaxDeps)
	}
	off := 123
	if len(b) < off+nd*DepSize+4+SignatureSize {
		return nil, malformed("truncated event of %d bytes", len(b))
	}
	if nd > 0 {
		e.Deps = make([]Dep, nd)
		for i := range e.Deps {
			d := b[off+i*DepSize:]
			e.Deps[i] = Dep{Issuer: network.NodeKey(d[:32]), Seq: binary.BigEndian.Uint64(d[32:40]), ID: [32]byte(d[40:72])}
		}
	}
	off += nd * DepSize
	n := binary.BigEndian.Uint32(b[off : off+4])
	off += 4
	if n > MaxPayload {
		return nil, malformed("payload of %d bytes exceeds %d", n, MaxPayload)
	}
	end := off + int(n) + SignatureSize
	if len(b) < end+2 {
		return nil, malformed("event of %d bytes, its payload length says at least %d", len(b), end+2)
	}
	e.Payload = bytes.Clone(b[off : off+int(n)])
	if e.Payload == nil {
		e.Payload = []byte{}
	}
	e.Sig = [SignatureSize]byte(b[off+int(n) : end])
	rest := b[end:]
	count := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if count > MaxWraps {
		return nil, malformed("%d attachments, at most %d", count, MaxWraps)
	}
	for i := range count {
		if len(rest) < 4 {
			return nil, malformed("attachment %d truncated", i)
		}
		l := int(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if l == 0 || l > MaxWrapBlob || len(rest) < l {
			return nil, malformed("attachment %d of %d bytes, want 1..%d present", i, l, MaxWrapBlob)
		}
		e.Attachments = append(e.Attachments, bytes.Clone(rest[:l]))
		rest = rest[l:]
	}
	if len(rest) != 0 {
		return nil, malformed("%d trailing bytes after the attachments", len(rest))
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	return e, nil
}

// Verify checks the issuer's signature. It returns ErrBadSignature, as is,
// for any failure. It does not check that the issuer is registered or
// allowed to issue the event: that is the caller's job.
func (e *Event) Verify() error {
	if e.check() != nil || !ed25519.Verify(e.Issuer[:], e.signedMessage(), e.Sig[:]) {
		return ErrBadSignature
	}
	return nil
}

// CheckNetwork returns ErrForeignNetwork, as is, if e belongs to another
// network than nid.
func (e *Event) CheckNetwork(nid network.NetworkID) error {
	if e.Network != nid {
		return ErrForeignNetwork
	}
	return nil
}

// VerifyAttachments checks e's attachments against its payload: a
// KeyVersion or KeyShare may carry only blobs whose digests its wraps name,
// each at most once; other kinds carry none. Missing attachments (pruned or
// stripped) are allowed. Errors wrap ErrMalformed.
func (e *Event) VerifyAttachments() error {
	var wraps []Wrap
	switch e.Kind {
	case KindKeyVersion:
		v, err := DecodeKeyVersion(e.Payload)
		if err != nil {
			return err
		}
		wraps = v.Wraps
	case KindKeyShare:
		s, err := DecodeKeyShare(e.Payload)
		if err != nil {
			return err
		}
		for _, sh := range s.Shares {
			wraps = append(wraps, sh.Wrap)
		}
	}
	seen := make(map[Digest]bool, len(e.Attachments))
	for i, a := range e.Attachments {
		d := DigestOf(a)
		if seen[d] {
			return malformed("attachment %d repeats another", i)
		}
		seen[d] = true
		named := false
		for _, w := range wraps {
			if w.Digest == d {
				named = true
				break
			}
		}
		if !named {
			return malformed("attachment %d is named by no wrap of the payload", i)
		}
	}
	return nil
}
