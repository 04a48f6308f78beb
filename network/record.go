package network

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault/transport"
)

// Limits of node records.
const (
	MaxPeerIDLen = 128
	MaxAddrs     = 16
	MaxAddrLen   = 256
)

const (
	nodeRecordLabel = "keymesh/v1 node-record\x00"
	deregisterLabel = "keymesh/v2 deregister\x00"
)

// NodeRecord registers a node: its org's admin vouches that the node with
// this signing key and libp2p peer id belongs to the org, receives wrapped
// keys under this KEM public key, and is reachable at these addresses,
// between NotBefore and NotAfter. It is the payload of KindNodeRecord.
//
// AdminSig is ed25519.Sign(admin, "keymesh/v1 node-record\x00" || network id
// || the record's canonical encoding), where the canonical encoding is, with
// lp(x) = uint32 len(x) || x and all integers big-endian:
//
//	lp(Org) || lp(PeerID) || SignKey (32) || lp(KEMKey) ||
//	uint32 len(Addrs) || lp(Addrs[0]) || … ||
//	int64 NotBefore.UnixNano() || int64 NotAfter.UnixNano() || AdminKey (32)
//
// The record counts only if AdminKey is a genesis admin key of Org
// (Genesis.VerifyNodeRecord checks both).
type NodeRecord struct {
	// Org is the org id, [A-Za-z0-9][A-Za-z0-9._-]{0,63}.
	Org string
	// PeerID is the node's libp2p peer id, 1..MaxPeerIDLen bytes of
	// printable ASCII. (This package does not derive it from SignKey; the
	// p2p layer checks that they match.)
	PeerID string
	// SignKey is the node's Ed25519 signing key: events it issues carry it
	// as their Issuer.
	SignKey NodeKey
	// KEMKey is the node's HPKE public key (transport.PublicKeySize bytes,
	// suite MLKEM768-P256).
	KEMKey []byte
	// Addrs are the node's multiaddrs: at most MaxAddrs distinct strings of
	// 1..MaxAddrLen bytes of printable ASCII starting with '/'.
	Addrs []string
	// NotBefore and NotAfter bound the record's validity: NotBefore ≤ t <
	// NotAfter. Both are set, NotAfter after NotBefore.
	NotBefore, NotAfter time.Time
	// AdminKey is the Ed25519 public key of the org admin who signed.
	AdminKey [32]byte
	// AdminSig is the admin's signature.
	AdminSig [64]byte
}

// nodeRecordJSON is the JSON form of NodeRecord: fixed-size keys and
// signatures as lower-case hex, KEMKey as standard base64.
type nodeRecordJSON struct {
	Org       string
	PeerID    string
	SignKey   NodeKey
	KEMKey    []byte
	Addrs     []string
	NotBefore time.Time
	NotAfter  time.Time
	AdminKey  hex32
	AdminSig  hex64
}

type hex32 [32]byte
type hex64 [64]byte

func (h hex32) MarshalText() ([]byte, error)     { return hexText(h[:]), nil }
func (h *hex32) UnmarshalText(text []byte) error { return unhexText(h[:], text, "public key") }
func (h hex64) MarshalText() ([]byte, error)     { return hexText(h[:]), nil }
func (h *hex64) UnmarshalText(text []byte) error { return unhexText(h[:], text, "signature") }

// MarshalJSON encodes r with its keys and signature in lower-case hex and
// KEMKey in base64. Addrs are always written as an array, never null.
func (r NodeRecord) MarshalJSON() ([]byte, error) {
	addrs := r.Addrs
	if addrs == nil {
		addrs = []string{}
	}
	return json.Marshal(nodeRecordJSON{
		Org: r.Org, PeerID: r.PeerID, SignKey: r.SignKey, KEMKey: r.KEMKey, Addrs: addrs,
		NotBefore: r.NotBefore, NotAfter: r.NotAfter, AdminKey: r.AdminKey, AdminSig: r.AdminSig,
	})
}

// UnmarshalJSON decodes the form MarshalJSON writes, rejecting unknown
// fields. It does not validate; DecodeNodeRecord does.
func (r *NodeRecord) UnmarshalJSON(data []byte) error {
	var w nodeRecordJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	*r = NodeRecord{
		Org: w.Org, PeerID: w.PeerID, SignKey: w.SignKey, KEMKey: w.KEMKey, Addrs: w.Addrs,
		NotBefore: w.NotBefore, NotAfter: w.NotAfter, AdminKey: w.AdminKey, AdminSig: w.AdminSig,
	}
	return nil
}

// Validate reports whether r's fields are well formed (see NodeRecord). It
// does not check the signature. Its errors wrap ErrMalformed.
func (r NodeRecord) Validate() error {
	if !policy.ValidOrgID(r.Org) {
		return malformed("node record org %q is not a valid org id", cut(r.Org))
	}
	if !printableASCII(r.PeerID, MaxPeerIDLen) {
		return malformed("node record peer id is not 1..%d bytes of printable ASCII", MaxPeerIDLen)
	}
	if r.SignKey == (NodeKey{}) {
		return malformed("node record has the zero signing key")
	}
	if err := transport.CheckPublicKey(r.KEMKey); err != nil {
		return fmt.Errorf("%w: node record KEM key: %w", ErrMalformed, err)
	}
	if err := checkAddrs(r.Addrs, MaxAddrs, "node record"); err != nil {
		return err
	}
	if err := checkTime(r.NotBefore, "node record not-before"); err != nil {
		return err
	}
	if err := checkTime(r.NotAfter, "node record not-after"); err != nil {
		return err
	}
	if !r.NotAfter.After(r.NotBefore) {
		return malformed("node record not-after is not after not-before")
	}
	if r.AdminKey == ([32]byte{}) {
		return malformed("node record has the zero admin key")
	}
	return nil
}

// ValidAt reports whether t is within the record's validity period.
func (r NodeRecord) ValidAt(t time.Time) bool {
	return !t.Before(r.NotBefore) && t.Before(r.NotAfter)
}

// checkTime requires a non-zero time representable as int64 Unix
// nanoseconds (years 1678 to 2262), as the signed encodings hold it so.
func checkTime(t time.Time, what string) error {
	if t.IsZero() {
		return malformed("%s is not set", what)
	}
	if _, ok := unixNano(t); !ok {
		return malformed("%s is out of range", what)
	}
	return nil
}

func printableASCII(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// checkAddrs checks a list of multiaddr strings: at most max, distinct,
// each 1..MaxAddrLen bytes of printable ASCII starting with '/'. Parsing
// them as multiaddrs is the p2p layer's job.
func checkAddrs(addrs []string, max int, what string) error {
	if len(addrs) > max {
		return malformed("%s has %d addresses, at most %d", what, len(addrs), max)
	}
	seen := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		if !printableASCII(a, MaxAddrLen) || a[0] != '/' {
			return malformed("%s address %q is not a multiaddr of 1..%d printable ASCII bytes", what, cut(a), MaxAddrLen)
		}
		if seen[a] {
			return malformed("%s lists address %q twice", what, cut(a))
		}
		seen[a] = true
	}
	return nil
}

func appendLP(b []byte, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixNano()))
}

// signedMessage returns what the admin signs for r in network nid.
func (r NodeRecord) signedMessage(nid NetworkID) []byte {
	b := make([]byte, 0, 512+len(r.KEMKey)+len(r.Addrs)*(4+MaxAddrLen))
	b = append(b, nodeRecordLabel...)
	b = append(b, nid[:]...)
	b = appendLP(b, []byte(r.Org))
	b = appendLP(b, []byte(r.PeerID))
	b = append(b, r.SignKey[:]...)
	b = appendLP(b, r.KEMKey)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Addrs)))
	for _, a := range r.Addrs {
		b = appendLP(b, []byte(a))
	}
	b = appendTime(b, r.NotBefore)
	b = appendTime(b, r.NotAfter)
	return append(b, r.AdminKey[:]...)
}

// SignNodeRecord signs r as an admin of r.Org for network nid. It sets
// AdminKey to the admin's public key and AdminSig, and returns the signed
// record with its times in UTC and its slices copied. r must be valid.
func SignNodeRecord(adminPriv ed25519.PrivateKey, nid NetworkID, r NodeRecord) (NodeRecord, error) {
	if len(adminPriv) != ed25519.PrivateKeySize {
		return NodeRecord{}, fmt.Errorf("network: admin private key of %d bytes, want %d", len(adminPriv), ed25519.PrivateKeySize)
	}
	r.AdminKey = [32]byte(adminPriv.Public().(ed25519.PublicKey))
	r.KEMKey = bytes.Clone(r.KEMKey)
	r.Addrs = append([]string{}, r.Addrs...)
	r.NotBefore, r.NotAfter = r.NotBefore.Round(0).UTC(), r.NotAfter.Round(0).UTC()
	if err := r.Validate(); err != nil {
		return NodeRecord{}, err
	}
	r.AdminSig = [64]byte(ed25519.Sign(adminPriv, r.signedMessage(nid)))
	return r, nil
}

// VerifyAdmin checks that r is valid and that AdminSig is AdminKey's
// signature of r for network nid. A bad signature gives ErrBadSignature, as
// is. It does not check that AdminKey is an admin of r.Org: use
// Genesis.VerifyNodeRecord, which does both.
func (r NodeRecord) VerifyAdmin(nid NetworkID) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if !ed25519.Verify(r.AdminKey[:], r.signedMessage(nid), r.AdminSig[:]) {
		return ErrBadSignature
	}
	return nil
}

// DecodeNodeRecord parses the payload of a KindNodeRecord event: the JSON
// of a valid NodeRecord, exactly as json.Marshal writes it, at most 16 KiB.
// It does not check the admin signature. Errors wrap ErrMalformed.
func DecodeNodeRecord(payload []byte) (NodeRecord, error) {
	var r NodeRecord
	if err := decodeStrict(payload, maxNodeRecordJSON, "node-record", &r); err != nil {
		return NodeRecord{}, err
	}
	if err := r.Validate(); err != nil {
		return NodeRecord{}, err
	}
	r.NotBefore, r.NotAfter = r.NotBefore.UTC(), r.NotAfter.UTC()
	return r, nil
}

// Deregister removes a registered node: its org's admin says that the node
// with SignKey no longer belongs to Org. It is a causal cut: the node's
// events up to and including sequence number LastSeq still count, and none
// after it does, in whatever order they arrive (0: none of its events
// counts). At is when the admin signed, for people. It is the payload of
// KindDeregister. AdminSig is ed25519.Sign(admin,
// "keymesh/v2 deregister\x00" || network id || lp(Org) || SignKey (32) ||
// uint64 LastSeq || int64 At.UnixNano() || AdminKey (32)), encoded as for
// NodeRecord.
type Deregister struct {
	Org      string
	SignKey  NodeKey
	LastSeq  uint64
	At       time.Time
	AdminKey [32]byte
	AdminSig [64]byte
}

type deregisterJSON struct {
	Org      string
	SignKey  NodeKey
	LastSeq  uint64
	At       time.Time
	AdminKey hex32
	AdminSig hex64
}

// MarshalJSON encodes d with its keys and signature in lower-case hex.
func (d Deregister) MarshalJSON() ([]byte, error) {
	return json.Marshal(deregisterJSON{Org: d.Org, SignKey: d.SignKey, LastSeq: d.LastSeq, At: d.At, AdminKey: d.AdminKey, AdminSig: d.AdminSig})
}

// UnmarshalJSON decodes the form MarshalJSON writes, rejecting unknown
// fields. It does not validate; DecodeDeregister does.
func (d *Deregister) UnmarshalJSON(data []byte) error {
	var w deregisterJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	*d = Deregister{Org: w.Org, SignKey: w.SignKey, LastSeq: w.LastSeq, At: w.At, AdminKey: w.AdminKey, AdminSig: w.AdminSig}
	return nil
}

// Validate reports whether d's fields are well formed. It does not check
// the signature. Its errors wrap ErrMalformed.
func (d Deregister) Validate() error {
	if !policy.ValidOrgID(d.Org) {
		return malformed("deregister org %q is not a valid org id", cut(d.Org))
	}
	if d.SignKey == (NodeKey{}) {
		return malformed("deregister of the zero signing key")
	}
	if err := checkTime(d.At, "deregister time"); err != nil {
		return err
	}
	if d.AdminKey == ([32]byte{}) {
		return malformed("deregister has the zero admin key")
	}
	return nil
}

func (d Deregister) signedMessage(nid NetworkID) []byte {
	b := make([]byte, 0, len(deregisterLabel)+32+4+len(d.Org)+32+8+8+32)
	b = append(b, deregisterLabel...)
	b = append(b, nid[:]...)
	b = appendLP(b, []byte(d.Org))
	b = append(b, d.SignKey[:]...)
	b = binary.BigEndian.AppendUint64(b, d.LastSeq)
	b = appendTime(b, d.At)
	return append(b, d.AdminKey[:]...)
}

// SignDeregister signs d as an admin of d.Org for network nid, setting
// AdminKey and AdminSig, and returns it with At in UTC. d must be valid.
func SignDeregister(adminPriv ed25519.PrivateKey, nid NetworkID, d Deregister) (Deregister, error) {
	if len(adminPriv) != ed25519.PrivateKeySize {
		return Deregister{}, fmt.Errorf("network: admin private key of %d bytes, want %d", len(adminPriv), ed25519.PrivateKeySize)
	}
	d.AdminKey = [32]byte(adminPriv.Public().(ed25519.PublicKey))
	d.At = d.At.Round(0).UTC()
	if err := d.Validate(); err != nil {
		return Deregister{}, err
	}
	d.AdminSig = [64]byte(ed25519.Sign(adminPriv, d.signedMessage(nid)))
	return d, nil
}

// VerifyAdmin checks that d is valid and that AdminSig is AdminKey's
// signature of d for network nid (ErrBadSignature, as is, if not). Use
// Genesis.VerifyDeregister to also check that AdminKey is an admin of d.Org.
func (d Deregister) VerifyAdmin(nid NetworkID) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if !ed25519.Verify(d.AdminKey[:], d.signedMessage(nid), d.AdminSig[:]) {
		return ErrBadSignature
	}
	return nil
}

// DecodeDeregister parses the payload of a KindDeregister event, strictly
// as DecodeNodeRecord does. It does not check the admin signature.
func DecodeDeregister(payload []byte) (Deregister, error) {
	var d Deregister
	if err := decodeStrict(payload, maxSmallJSON, "deregister", &d); err != nil {
		return Deregister{}, err
	}
	if err := d.Validate(); err != nil {
		return Deregister{}, err
	}
	d.At = d.At.UTC()
	return d, nil
}
