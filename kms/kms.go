// Package kms is keymesh's domain core: the order in which every front door
// — the REST API, wallet-signed requests, the KMIP endpoint, an in-process
// caller — serves a request for a principal:
//
//  1. the front door authenticates the caller and names it (a [Caller]);
//  2. the core decides, once per key, against the policy in force now;
//  3. the core writes the decision to the audit log, and the entry is
//     durable before any plaintext or envelope leaves (if it cannot be
//     written, the request fails closed with the audit log's error);
//  4. only then the core seals or opens, per item for batches, and returns
//     domain results: envelopes, plaintexts and per-item errors.
//
// Administrative changes (keys, grants, revocations) go through the same
// service: the change is made by [Keys] — on every node, the mesh member,
// which turns it into a signed event of the network — and then audited,
// with the refusal audited too.
//
// The core imports neither HTTP nor libp2p. Its errors are the domain
// sentinels of policy, vault, envelope, audit and mesh/member, wrapped with
// context; each front door maps them to its own wire (the REST API in one
// table, node/api/errors.go).
package kms

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault"
	"github.com/keymesh/keymesh/vault/envelope"
)

// Keys makes the administrative changes and answers policy questions. The
// mesh member (package mesh/member) implements it: each change becomes a
// signed event that every node of the network folds.
type Keys interface {
	CreateKey(name string, o vault.CreateOptions) (vault.KeyInfo, error)
	RotateKey(name string, activateIn *time.Duration) (vault.KeyInfo, error)
	SetKeyState(name string, to vault.State) (vault.KeyInfo, error)
	SetMinDecryptionVersion(name string, n uint32) (vault.KeyInfo, error)
	DestroyKey(name string) (vault.KeyInfo, error)
	Grant(g policy.Grant) (policy.Grant, error)
	Revoke(key string, p policy.Party, issuer string) (policy.Revocation, int, error)
	// Policy returns the grants and revocations in force now.
	Policy() *policy.State
	// DescribeKey names a key's holders across the network and the destroy
	// acknowledgements still outstanding.
	DescribeKey(name string) (holders, pendingAcks []string)
}

// Auditor is where decisions and changes are recorded; *audit.Log is one.
// Append returns once the entry survives a crash of the process.
type Auditor interface {
	Append(ctx context.Context, e audit.Entry) (audit.Entry, error)
}

// Config assembles a Service.
type Config struct {
	Vault *vault.Vault
	Keys  Keys
	Audit Auditor
	// Clock is the time decisions are made at; nil means time.Now.
	Clock func() time.Time
	// Reason names a refused change in its audit entry (the REST API passes
	// its stable error code); nil uses the error's text.
	Reason func(error) string
	// OnDecision and OnItems, if set, count decisions ("encrypt" or
	// "decrypt", allowed or not) and items served or failed.
	OnDecision func(op string, allowed bool)
	OnItems    func(op string, ok, failed int)
	// KMIP, if set, describes a key's KMIP side (kmip.go).
	KMIP func(name string) *KMIPObject
}

// Service is the domain core of a node.
type Service struct {
	cfg Config
}

// New returns the service of cfg.
func New(cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Reason == nil {
		cfg.Reason = func(err error) string { return err.Error() }
	}
	if cfg.OnDecision == nil {
		cfg.OnDecision = func(string, bool) {}
	}
	if cfg.OnItems == nil {
		cfg.OnItems = func(string, int, int) {}
	}
	return &Service{cfg: cfg}
}

// Caller is who a request is served for, as its front door authenticated
// it.
type Caller struct {
	// Principal is decided for; its parties must be canonical.
	Principal policy.Principal
	// Name is the principal recorded in audit entries, e.g. "token:app" or
	// "fabric:Org1MSP/CN=alice via token:cc tx 4f…".
	Name string
	// Endorser is set only for a caller that speaks for a verified Fabric
	// transaction: it alone may seal in endorsement mode.
	Endorser Endorser
}

// Endorser admits the items of an endorsement-mode request: the
// transaction they belong to supplies the nonce derivation input and time.
type Endorser interface {
	// Endorse admits one item for key and returns the derivation input and
	// the transaction time it is sealed with. Its refusals wrap
	// ErrEndorsementRefused or a conflict sentinel of its own. It must not
	// modify it.Context: items of a batch may share the map, prepared once.
	Endorse(key string, it EncryptItem) (txID string, txTime time.Time, err error)
}

// ErrEndorsementRefused is wrapped by a refused use of endorsement mode.
var ErrEndorsementRefused = errors.New("endorsement mode refused")

// Record appends e to the audit log for a front door's own events (a
// refused credential, a token minted); e.Count 0 counts as 1.
func (s *Service) Record(ctx context.Context, e audit.Entry) error {
	if e.Count == 0 {
		e.Count = 1
	}
	_, err := s.cfg.Audit.Append(ctx, e)
	return err
}

// Policy returns the grants and revocations in force now.
func (s *Service) Policy() *policy.State { return s.cfg.Keys.Policy() }

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.cfg.Clock() }

// EncryptItem is one field to seal.
type EncryptItem struct {
	Plaintext []byte
	Context   envelope.Context
	// TxID and TxTime feed endorsement and deterministic modes' inputs; in
	// endorsement mode they must be the verified transaction's, if given.
	TxID   string
	TxTime time.Time
}

// Sealed is the result of one item: its envelope or why it failed.
type Sealed struct {
	Envelope *envelope.Envelope
	Err      error
}

// Encrypt seals items under key for c. The decision is made once for the
// request; a denial (or a refused endorsement) is audited and returned as
// the error, and so is an audit log that cannot be written — then no
// envelope leaves. Otherwise each item has its envelope or its own error,
// and the one audit entry of the request counts them.
func (s *Service) Encrypt(ctx context.Context, c Caller, key string, mode envelope.Mode, items []EncryptItem) ([]Sealed, error) {
	if err := envelope.CheckKeyName(key); err != nil {
		return nil, err
	}
	if mode == envelope.ModeEndorsement && c.Endorser == nil {
		s.cfg.OnDecision("encrypt", false)
		err := fmt.Errorf("%w: endorsement mode is only for a chaincode token with a verified signed proposal (its transaction id and time come from the proposal); use random mode", ErrEndorsementRefused)
		if aerr := s.Record(ctx, audit.Entry{Principal: c.Name, Action: "encrypt", Key: key, Count: len(items),
			Outcome: audit.OutcomeDeny, Reason: "endorsement mode needs a chaincode token with a verified signed proposal"}); aerr != nil {
			return nil, aerr
		}
		return nil, err
	}
	d := s.cfg.Keys.Policy().Decide(c.Principal, key, policy.OpEncrypt, s.cfg.Clock())
	entry := audit.Entry{Principal: c.Name, Action: "encrypt", Key: key, Count: len(items), Reason: d.Reason}
	s.cfg.OnDecision("encrypt", d.Allowed)
	if !d.Allowed {
		entry.Outcome = audit.OutcomeDeny
		if err := s.Record(ctx, entry); err != nil {
			return nil, err
		}
		return nil, s.denied(d)
	}
	out := make([]Sealed, len(items))
	failed := 0
	var version uint32
	var shared sharedContexts
	for i, it := range items {
		in := vault.EncryptInput{Key: key, Mode: mode, Context: it.Context, TxID: it.TxID, TxTime: it.TxTime, Plaintext: it.Plaintext}
		var err error
		if mode == envelope.ModeEndorsement {
			in.TxID, in.TxTime, err = c.Endorser.Endorse(key, it)
		}
		var env *envelope.Envelope
		if err == nil {
			var next envelope.Context
			if i+1 < len(items) {
				next = items[i+1].Context
			}
			in.Prepared = shared.of(it.Context, next)
			env, err = s.cfg.Vault.Encrypt(in)
		}
		if err != nil {
			failed++
			out[i].Err = err
			continue
		}
		out[i].Envelope = env
		version = max(version, env.Version)
	}
	entry.Outcome, entry.Version = audit.OutcomeAllow, version
	if failed > 0 {
		entry.Reason += "; " + strconv.Itoa(failed) + " item(s) failed"
	}
	if err := s.Record(ctx, entry); err != nil {
		return nil, err
	}
	s.cfg.OnItems("encrypt", len(items)-failed, failed)
	return out, nil
}

// sharedContexts prepares a context that consecutive items of a batch
// share (envelope.PrepareContext) once for the run of them, so that the
// vault seals or opens each of them without checking and encoding the
// context again. Items share a context when they hold the same map: the
// REST API's decoder gives consecutive items with the same context text
// one map, as an in-process caller reusing its map does. (Equal maps that
// are not the same are left to the envelope's own cache of key sets:
// comparing them here would cost about what it saves.) An item that
// shares its map with neither the run before it nor the next item is
// sealed or opened with its Context as it is, as is one whose context is
// invalid: the vault then reports the error at the same point for that
// item, so every result and error is what the item alone would get.
type sharedContexts struct {
	src envelope.Context          // the map of the current run
	pc  *envelope.PreparedContext // src prepared
}

// of returns the prepared context of an item whose context is c, followed
// by an item whose context is next (nil for the last item), or nil if the
// item is to use c as it is. The core never writes to a context, so the
// same map holds the same entries for the whole batch.
func (sc *sharedContexts) of(c, next envelope.Context) *envelope.PreparedContext {
	if len(c) == 0 {
		return nil // nothing to check or encode
	}
	if sc.pc != nil && sameMap(c, sc.src) {
		return sc.pc
	}
	if sameMap(c, next) {
		if pc, err := envelope.PrepareContext(c); err == nil {
			sc.src, sc.pc = c, pc
			return pc
		}
	}
	return nil
}

// sameMap reports whether a and b are the same map (not merely equal).
func sameMap(a, b envelope.Context) bool {
	return a != nil && b != nil && reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// denied is the error of a denial: the decision's, or that the key is
// destroyed (a destroyed key keeps no grants, and "destroyed" is what its
// holders of envelopes need to hear; the envelope they hold names it).
func (s *Service) denied(d policy.Decision) error {
	if k, err := s.cfg.Vault.Get(d.Key); err == nil && k.State == vault.StateDestroyed {
		return fmt.Errorf("%w: %q", vault.ErrKeyDestroyed, d.Key)
	}
	return d.Err()
}

// DecryptItem is one envelope to open, in its text form.
type DecryptItem struct {
	Ciphertext string
	Context    envelope.Context
}

// Opened is the result of one item: its plaintext (never nil when Err is
// nil), the key and version that opened it, or why it failed.
type Opened struct {
	Plaintext []byte
	Key       string
	Version   uint32
	Err       error
}

// Decisions are a request's decisions, one per key.
type Decisions map[string]policy.Decision

// Allows reports whether any key of ds is allowed.
func (ds Decisions) Allows() bool {
	for _, d := range ds {
		if d.Allowed {
			return true
		}
	}
	return false
}

// DecideDecrypt decides, once per key named by a parseable envelope of
// items, whether c may decrypt. A front door that must know before it
// serves (a wallet's nonce is spent only for a request that can be served)
// decides first and passes the decisions to Decrypt.
func (s *Service) DecideDecrypt(c Caller, items []DecryptItem) Decisions {
	now := s.cfg.Clock()
	ds := Decisions{}
	for _, it := range items {
		env, err := envelope.ParseText(it.Ciphertext)
		if err != nil {
			continue
		}
		if _, ok := ds[env.Key]; !ok {
			ds[env.Key] = s.cfg.Keys.Policy().Decide(c.Principal, env.Key, policy.OpDecrypt, now)
		}
	}
	return ds
}

type decryptGroup struct {
	key      string
	decision policy.Decision
	count    int
	failed   int
	version  uint32
}

// decryptGroups are a request's groups in the order their keys first
// appear. Most requests name one key or a few: those are found by a scan,
// and a map is built only past smallGroups keys.
type decryptGroups struct {
	list  []decryptGroup
	index map[string]int
}

const smallGroups = 8

// find returns the group of key, or nil.
func (gs *decryptGroups) find(key string) *decryptGroup {
	if gs.index != nil {
		if i, ok := gs.index[key]; ok {
			return &gs.list[i]
		}
		return nil
	}
	for i := range gs.list {
		if gs.list[i].key == key {
			return &gs.list[i]
		}
	}
	return nil
}

// add appends the group of a key not yet found and returns it.
func (gs *decryptGroups) add(g decryptGroup) *decryptGroup {
	gs.list = append(gs.list, g)
	switch n := len(gs.list); {
	case gs.index != nil:
		gs.index[g.key] = n - 1
	case n > smallGroups:
		gs.index = make(map[string]int, 2*n)
		for i := range gs.list {
			gs.index[gs.list[i].key] = i
		}
	}
	return &gs.list[len(gs.list)-1]
}

// Decrypt opens items for c, deciding each key once (or taking the
// decision from pre, as DecideDecrypt made it). Every decision — one audit
// entry per key, and one for the envelopes that do not parse — is durable
// before any plaintext leaves; if one cannot be written, Decrypt returns
// that error and no plaintext. Each item has its plaintext or its error (a
// denial, a failed decryption, a malformed envelope).
func (s *Service) Decrypt(ctx context.Context, c Caller, items []DecryptItem, pre Decisions) ([]Opened, error) {
	now := s.cfg.Clock()
	out := make([]Opened, len(items))
	var groups decryptGroups
	var shared sharedContexts
	malformed := 0
	for i, it := range items {
		env, err := envelope.ParseText(it.Ciphertext)
		if err != nil {
			malformed++
			out[i].Err = err
			continue
		}
		g := groups.find(env.Key)
		if g == nil {
			d, decided := pre[env.Key]
			if !decided {
				d = s.cfg.Keys.Policy().Decide(c.Principal, env.Key, policy.OpDecrypt, now)
			}
			g = groups.add(decryptGroup{key: env.Key, decision: d})
		}
		g.count++
		out[i].Key, out[i].Version = env.Key, env.Version
		if !g.decision.Allowed {
			out[i].Err = s.denied(g.decision)
			continue
		}
		var pt []byte
		var next envelope.Context
		if i+1 < len(items) {
			next = items[i+1].Context
		}
		if pc := shared.of(it.Context, next); pc != nil {
			pt, err = s.cfg.Vault.OpenPrepared(env, pc)
		} else {
			pt, err = s.cfg.Vault.Open(env, it.Context)
		}
		if err != nil {
			g.failed++
			out[i].Err = err
			continue
		}
		if pt == nil {
			pt = []byte{}
		}
		g.version = max(g.version, env.Version)
		out[i].Plaintext = pt
	}
	fail := func(err error) ([]Opened, error) {
		for i := range out {
			clear(out[i].Plaintext)
		}
		return nil, err
	}
	for i := range groups.list {
		g := &groups.list[i]
		e := audit.Entry{Principal: c.Name, Action: "decrypt", Key: g.key, Count: g.count, Version: g.version, Reason: g.decision.Reason}
		s.cfg.OnDecision("decrypt", g.decision.Allowed)
		if g.decision.Allowed {
			e.Outcome = audit.OutcomeAllow
			if g.failed > 0 {
				e.Reason += "; " + strconv.Itoa(g.failed) + " item(s) failed to decrypt"
			}
		} else {
			e.Outcome = audit.OutcomeDeny
		}
		if err := s.Record(ctx, e); err != nil {
			return fail(err)
		}
	}
	if malformed > 0 {
		if err := s.Record(ctx, audit.Entry{Principal: c.Name, Action: "decrypt", Outcome: audit.OutcomeError, Reason: "malformed envelope", Count: malformed}); err != nil {
			return fail(err)
		}
	}
	failed := 0
	for _, o := range out {
		if o.Err != nil {
			failed++
		}
	}
	s.cfg.OnItems("decrypt", len(items)-failed, failed)
	return out, nil
}
