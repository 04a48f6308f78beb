// Package fabrictest is a faithful in-memory stand-in for a Fabric peer's
// chaincode stub, for testing contracts without a peer: a [Ledger] of
// committed world state and private data, [Proposal]s that carry what a
// client sends (function and arguments, transient map, creator, a Fabric
// transaction id and timestamp, channel and chaincode, and the creator's
// signature over the proposal, as a keymesh node verifies it), and a [Stub] per
// endorsement that reads committed state and records its write set, as an
// endorsing peer simulates a transaction.
//
// Drive a contract the way the peer does:
//
//	cc, _ := contractapi.NewChaincode(contract)
//	p := fabrictest.NewSignedProposal("mychannel", "asset", id, "CreateAsset", "asset1") // id: a fabricidtest.Identity
//	stub := fabrictest.NewStub(ledger, p)
//	resp := cc.Invoke(stub)              // resp.Status 200 (shim.OK) or 500
//	ledger.Commit(stub.WriteSet())       // what the orderer and committers would do
//
// Two stubs of the same Proposal are two endorsing peers: their
// WriteSet().Bytes() must be equal for the endorsements to match.
//
// Stub embeds shim.ChaincodeStubInterface, so a method it does not
// implement (range and rich queries, history, validation parameters,
// chaincode-to-chaincode calls) panics with a nil dereference: a test
// then shows plainly what the fake lacks.
package fabrictest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keymesh/keymesh/node/fabricid/fabricidtest"
)

// Ledger is committed state: the world state and each private data
// collection. It is safe for concurrent use.
type Ledger struct {
	mu      sync.RWMutex
	state   map[string][]byte
	private map[string]map[string][]byte
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{state: map[string][]byte{}, private: map[string]map[string][]byte{}}
}

// Get returns a copy of the committed world-state value at key, or nil.
func (l *Ledger) Get(key string) []byte {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return clone(l.state[key])
}

// GetPrivate returns a copy of the committed private value, or nil.
func (l *Ledger) GetPrivate(collection, key string) []byte {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return clone(l.private[collection][key])
}

// Set writes a world-state value directly, bypassing any transaction (for
// tests that tamper with the ledger). A nil value deletes.
func (l *Ledger) Set(key string, value []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if value == nil {
		delete(l.state, key)
		return
	}
	l.state[key] = clone(value)
}

// SetPrivate writes a private value directly. A nil value deletes.
func (l *Ledger) SetPrivate(collection, key string, value []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if value == nil {
		delete(l.private[collection], key)
		return
	}
	if l.private[collection] == nil {
		l.private[collection] = map[string][]byte{}
	}
	l.private[collection][key] = clone(value)
}

// Commit applies a write set, as the committing peers do after ordering.
func (l *Ledger) Commit(ws WriteSet) {
	for _, w := range ws.Public {
		l.Set(w.Key, writeValue(w))
	}
	for _, coll := range slices.Sorted(maps.Keys(ws.Private)) {
		for _, w := range ws.Private[coll] {
			l.SetPrivate(coll, w.Key, writeValue(w))
		}
	}
}

func writeValue(w KVWrite) []byte {
	if w.IsDelete {
		return nil
	}
	return w.Value
}

// Proposal is what a client sends to the endorsing peers.
type Proposal struct {
	TxID      string
	Timestamp time.Time
	Channel   string
	Chaincode string
	Creator   []byte            // marshalled msp.SerializedIdentity
	Args      [][]byte          // function name, then arguments
	Transient map[string][]byte // never written to the ledger
	Nonce     []byte
	// Sign signs the proposal bytes as the creator (nil: the proposal is
	// unsigned, as a forger without the creator's key would send it).
	Sign func(proposal []byte) []byte
}

// Signer is a client identity that signs proposals, as
// fabricidtest.Identity does.
type Signer interface {
	Creator() []byte
	Sign(msg []byte) []byte
}

// NewSignedProposal is NewProposal for id, signed with id's key as a
// Fabric client SDK signs it.
func NewSignedProposal(channel, chaincode string, id Signer, fn string, args ...string) Proposal {
	p := NewProposal(channel, chaincode, id.Creator(), fn, args...)
	// A client signs a proposal once and sends the same SignedProposal to
	// every endorser; ECDSA signatures are randomised, so remember them.
	var mu sync.Mutex
	sigs := map[string][]byte{}
	p.Sign = func(prop []byte) []byte {
		mu.Lock()
		defer mu.Unlock()
		if sig, ok := sigs[string(prop)]; ok {
			return sig
		}
		sig := id.Sign(prop)
		sigs[string(prop)] = sig
		return sig
	}
	return p
}

// NewProposal returns an unsigned proposal with a fresh nonce, the Fabric
// transaction id hex(SHA-256(nonce ‖ creator)) and the current time,
// truncated to microseconds as a client SDK's protobuf timestamp is in
// practice. A keymesh node refuses an unsigned proposal: use
// NewSignedProposal unless the test is about a forgery.
func NewProposal(channel, chaincode string, creator []byte, fn string, args ...string) Proposal {
	nonce := make([]byte, 24)
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	h := sha256.Sum256(append(append([]byte{}, nonce...), creator...))
	p := Proposal{
		TxID: hex.EncodeToString(h[:]), Timestamp: time.Now().UTC().Truncate(time.Microsecond),
		Channel: channel, Chaincode: chaincode, Creator: clone(creator), Nonce: nonce,
		Args: [][]byte{[]byte(fn)},
	}
	for _, a := range args {
		p.Args = append(p.Args, []byte(a))
	}
	return p
}

// WithTransient returns a copy of p whose transient map holds name → the
// JSON encoding of v.
func (p Proposal) WithTransient(name string, v any) Proposal {
	b, err := json.Marshal(v)
	if err != nil {
		panic("fabrictest: WithTransient: " + err.Error())
	}
	m := maps.Clone(p.Transient)
	if m == nil {
		m = map[string][]byte{}
	}
	m[name] = b
	p.Transient = m
	return p
}

// KVWrite is one write of a write set.
type KVWrite struct {
	Key      string `json:"key"`
	Value    []byte `json:"value,omitempty"`
	IsDelete bool   `json:"is_delete,omitempty"`
}

// WriteSet is the writes of one simulated transaction, in key order (as
// Fabric's rwset builder sorts them), the last write of a key winning.
type WriteSet struct {
	Public  []KVWrite            `json:"public"`
	Private map[string][]KVWrite `json:"private,omitempty"`
	Events  map[string][]byte    `json:"events,omitempty"`
}

// Bytes is a canonical encoding: two endorsements agree exactly when their
// Bytes are equal.
func (ws WriteSet) Bytes() []byte {
	b, err := json.Marshal(ws)
	if err != nil {
		panic(err)
	}
	return b
}

// Stub is one endorsing peer's simulation of a proposal.
type Stub struct {
	shim.ChaincodeStubInterface // not implemented: panics if called

	ledger *Ledger
	p      Proposal
	signed *peer.SignedProposal

	mu      sync.Mutex
	writes  map[string]KVWrite
	private map[string]map[string]KVWrite
	event   map[string][]byte
}

// NewStub returns a stub that simulates p against ledger's committed state.
func NewStub(ledger *Ledger, p Proposal) *Stub {
	return &Stub{ledger: ledger, p: p, signed: signedProposal(p),
		writes: map[string]KVWrite{}, private: map[string]map[string]KVWrite{}, event: map[string][]byte{}}
}

func signedProposal(p Proposal) *peer.SignedProposal {
	spec := fabricidtest.ProposalSpec{Channel: p.Channel, Chaincode: p.Chaincode, Creator: p.Creator, Nonce: p.Nonce,
		TxID: p.TxID, Timestamp: p.Timestamp, Args: p.Args, Transient: p.Transient}
	_, prop := spec.Build()
	sp := &peer.SignedProposal{ProposalBytes: prop}
	if p.Sign != nil {
		sp.Signature = p.Sign(prop)
	}
	return sp
}

// WriteSet returns the writes so far.
func (s *Stub) WriteSet() WriteSet {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := WriteSet{Public: sortedWrites(s.writes)}
	if len(s.private) > 0 {
		ws.Private = map[string][]KVWrite{}
		for c, m := range s.private {
			ws.Private[c] = sortedWrites(m)
		}
	}
	if len(s.event) > 0 {
		ws.Events = maps.Clone(s.event)
	}
	return ws
}

func sortedWrites(m map[string]KVWrite) []KVWrite {
	out := make([]KVWrite, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return out
}

// GetArgs returns the function name and arguments.
func (s *Stub) GetArgs() [][]byte {
	out := make([][]byte, len(s.p.Args))
	for i, a := range s.p.Args {
		out[i] = clone(a)
	}
	return out
}

// GetStringArgs returns GetArgs as strings.
func (s *Stub) GetStringArgs() []string {
	out := make([]string, len(s.p.Args))
	for i, a := range s.p.Args {
		out[i] = string(a)
	}
	return out
}

// GetFunctionAndParameters splits GetStringArgs into the function name and
// its parameters.
func (s *Stub) GetFunctionAndParameters() (string, []string) {
	a := s.GetStringArgs()
	if len(a) == 0 {
		return "", []string{}
	}
	return a[0], a[1:]
}

// GetTxID returns the proposal's transaction id.
func (s *Stub) GetTxID() string { return s.p.TxID }

// GetChannelID returns the proposal's channel.
func (s *Stub) GetChannelID() string { return s.p.Channel }

// GetTxTimestamp returns the proposal's timestamp.
func (s *Stub) GetTxTimestamp() (*timestamppb.Timestamp, error) {
	return timestamppb.New(s.p.Timestamp), nil
}

// GetCreator returns the marshalled SerializedIdentity of the creator.
func (s *Stub) GetCreator() ([]byte, error) { return clone(s.p.Creator), nil }

// GetTransient returns a copy of the transient map.
func (s *Stub) GetTransient() (map[string][]byte, error) {
	out := make(map[string][]byte, len(s.p.Transient))
	for k, v := range s.p.Transient {
		out[k] = clone(v)
	}
	return out, nil
}

// GetSignedProposal returns the signed proposal: as on a peer, its
// payload holds the arguments and the transient map, and it carries the
// creator's signature if the Proposal has a Sign function.
func (s *Stub) GetSignedProposal() (*peer.SignedProposal, error) {
	return proto.Clone(s.signed).(*peer.SignedProposal), nil
}

// GetDecorations returns no decorations.
func (s *Stub) GetDecorations() map[string][]byte { return map[string][]byte{} }

func checkKey(key string) error {
	if key == "" {
		return errors.New("key must not be an empty string")
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("key %q is not valid UTF-8", key)
	}
	return nil
}

// GetState returns the committed value at key, or nil. As on a peer, a
// write made earlier in the same transaction is not visible.
func (s *Stub) GetState(key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return s.ledger.Get(key), nil
}

// PutState records a write. A nil or empty value is a delete, as on a
// peer.
func (s *Stub) PutState(key string, value []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes[key] = KVWrite{Key: key, Value: clone(value), IsDelete: len(value) == 0}
	return nil
}

// DelState records a delete.
func (s *Stub) DelState(key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes[key] = KVWrite{Key: key, IsDelete: true}
	return nil
}

// GetPrivateData returns the committed private value, or nil.
func (s *Stub) GetPrivateData(collection, key string) ([]byte, error) {
	if collection == "" {
		return nil, errors.New("collection must not be an empty string")
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return s.ledger.GetPrivate(collection, key), nil
}

// GetPrivateDataHash returns the SHA-256 of the committed private value,
// or nil, as a non-member peer would see it.
func (s *Stub) GetPrivateDataHash(collection, key string) ([]byte, error) {
	v, err := s.GetPrivateData(collection, key)
	if err != nil || v == nil {
		return nil, err
	}
	h := sha256.Sum256(v)
	return h[:], nil
}

// PutPrivateData records a private write; as with PutState, an empty
// value is a delete.
func (s *Stub) PutPrivateData(collection, key string, value []byte) error {
	if collection == "" {
		return errors.New("collection must not be an empty string")
	}
	if err := checkKey(key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.private[collection] == nil {
		s.private[collection] = map[string]KVWrite{}
	}
	s.private[collection][key] = KVWrite{Key: key, Value: clone(value), IsDelete: len(value) == 0}
	return nil
}

// DelPrivateData records a private delete.
func (s *Stub) DelPrivateData(collection, key string) error {
	if collection == "" {
		return errors.New("collection must not be an empty string")
	}
	if err := checkKey(key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.private[collection] == nil {
		s.private[collection] = map[string]KVWrite{}
	}
	s.private[collection][key] = KVWrite{Key: key, IsDelete: true}
	return nil
}

// SetEvent records the transaction's event (the last one wins, as on a
// peer).
func (s *Stub) SetEvent(name string, payload []byte) error {
	if name == "" {
		return errors.New("event name can not be empty string")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.event)
	s.event[name] = clone(payload)
	return nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}
