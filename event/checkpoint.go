package event

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/binary"
	"slices"
	"time"

	"github.com/keymesh/keymesh/network"
)

// CheckpointFormat is the first byte of a checkpoint's binary form. It is
// distinct from every event format version, so one gossip topic carries
// both.
const CheckpointFormat = 0xC2

// MaxHeads is the most heads a checkpoint carries.
const MaxHeads = 256

// CheckpointSize bounds a checkpoint's binary form.
const CheckpointSize = 1 + 32 + 32 + 8 + 2 + MaxHeads*HeadSize + SignatureSize

// HeadSize is the size of one encoded head.
const HeadSize = 32 + 8

const checkpointLabel = "keymesh/v2 checkpoint\x00"

// Head is how far one issuer's hash chain is held: every event of Issuer
// up to and including Seq.
type Head struct {
	Issuer network.NodeKey
	Seq    uint64
}

// Checkpoint is a node's signed liveness beacon. Nodes gossip one every few
// seconds; they are not events (nobody stores them, so an idle mesh does
// not write). A checkpoint says "at Time, I held every event of my org's
// nodes up to these heads": a node of another org that holds at least as
// much, and heard it within its staleness bound, knows it has missed no
// grant, revocation or rotation that org made before Time (package mesh).
//
// The binary form, integers big-endian:
//
//	[0]      CheckpointFormat (0xC2)
//	[1:33]   network id
//	[33:65]  issuer
//	[65:73]  time, int64 Unix nanoseconds, > 0
//	[73:75]  n = number of heads, uint16, at most MaxHeads
//	then     n × (issuer 32 || seq uint64), sorted by issuer, seq ≥ 1
//	then     signature, 64 bytes: Ed25519(issuer,
//	         "keymesh/v2 checkpoint\x00" || every byte before it)
type Checkpoint struct {
	Network network.NetworkID
	Issuer  network.NodeKey
	Time    time.Time
	Heads   []Head
	Sig     [SignatureSize]byte
}

// IsCheckpoint reports whether b is (the start of) a checkpoint rather
// than an event.
func IsCheckpoint(b []byte) bool { return len(b) > 0 && b[0] == CheckpointFormat }

func (c *Checkpoint) check() error {
	if len(c.Heads) > MaxHeads {
		return malformed("checkpoint with %d heads, at most %d", len(c.Heads), MaxHeads)
	}
	if n, ok := unixNano(c.Time); !ok || n <= 0 {
		return malformed("checkpoint time is not after 1970 and before 2262")
	}
	for i, h := range c.Heads {
		if h.Seq == 0 {
			return malformed("checkpoint head %d at sequence number 0", i)
		}
		if i > 0 && bytes.Compare(c.Heads[i-1].Issuer[:], h.Issuer[:]) >= 0 {
			return malformed("checkpoint heads not sorted by issuer, or one issuer twice")
		}
	}
	return nil
}

func (c *Checkpoint) appendSigned(b []byte) []byte {
	b = append(b, CheckpointFormat)
	b = append(b, c.Network[:]...)
	b = append(b, c.Issuer[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Time.UnixNano()))
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.Heads)))
	for _, h := range c.Heads {
		b = append(b, h.Issuer[:]...)
		b = binary.BigEndian.AppendUint64(b, h.Seq)
	}
	return b
}

// Marshal returns the binary form of c.
func (c *Checkpoint) Marshal() []byte {
	b := c.appendSigned(make([]byte, 0, 75+len(c.Heads)*HeadSize+SignatureSize))
	return append(b, c.Sig[:]...)
}

func (c *Checkpoint) signedMessage() []byte {
	return c.appendSigned([]byte(checkpointLabel))
}

// SignCheckpoint signs c with the issuer's key, setting Issuer and Sig, and
// returns the signed checkpoint (heads copied, time in UTC) and its binary
// form.
func SignCheckpoint(priv crypto.Signer, c Checkpoint) (Checkpoint, []byte, error) {
	issuer, err := signerKey(priv)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	c.Issuer = issuer
	c.Time = time.Unix(0, c.Time.UnixNano()).UTC()
	c.Heads = slices.Clone(c.Heads)
	if err := c.check(); err != nil {
		return Checkpoint{}, nil, err
	}
	if c.Sig, err = signWith(priv, c.signedMessage()); err != nil {
		return Checkpoint{}, nil, err
	}
	return c, c.Marshal(), nil
}

// ParseCheckpoint parses the binary form of a checkpoint, strictly: only
// what Marshal writes for a valid checkpoint. It does not verify the
// signature (call Verify). Errors wrap ErrMalformed.
func ParseCheckpoint(b []byte) (*Checkpoint, error) {
	if !IsCheckpoint(b) {
		return nil, malformed("not a checkpoint")
	}
	if len(b) < 75+SignatureSize || len(b) > CheckpointSize {
		return nil, malformed("checkpoint of %d bytes", len(b))
	}
	c := &Checkpoint{Network: network.NetworkID(b[1:33]), Issuer: network.NodeKey(b[33:65])}
	nanos := int64(binary.BigEndian.Uint64(b[65:73]))
	if nanos <= 0 {
		return nil, malformed("checkpoint time %d is not after 1970", nanos)
	}
	c.Time = time.Unix(0, nanos).UTC()
	n := int(binary.BigEndian.Uint16(b[73:75]))
	if len(b) != 75+n*HeadSize+SignatureSize {
		return nil, malformed("checkpoint of %d bytes with %d heads", len(b), n)
	}
	if n > 0 {
		c.Heads = make([]Head, n)
		for i := range c.Heads {
			h := b[75+i*HeadSize:]
			c.Heads[i] = Head{Issuer: network.NodeKey(h[:32]), Seq: binary.BigEndian.Uint64(h[32:40])}
		}
	}
	c.Sig = [SignatureSize]byte(b[75+n*HeadSize:])
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// Verify checks the issuer's signature; ErrBadSignature, as is, on any
// failure.
func (c *Checkpoint) Verify() error {
	if c.check() != nil || !ed25519.Verify(c.Issuer[:], c.signedMessage(), c.Sig[:]) {
		return ErrBadSignature
	}
	return nil
}
