package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/kmip"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/mesh/member"
	"github.com/keymesh/keymesh/node/api"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault"
	"github.com/keymesh/keymesh/vault/secret"
)

// kmipBackend is kmip.Backend over this node's parts: a KMIP object is a
// keymesh key (named <namespace>/<16 hex digits>, its KMIP Unique
// Identifier), created, changed and destroyed through the node's admin
// Manager (so on a mesh node through signed events, mirrored to the org's
// other nodes), sealed by the vault, decided by the policy and audited
// (durably, before the answer) like every other request.
//
// Authority, for a caller of party kmip:<CN>:
//   - Create and Register: any authenticated KMIP client, in the KMIP
//     namespace. The creator becomes the key's KMIP owner and is granted
//     encrypt and decrypt on it (issuer "kmip"); export is never granted
//     automatically: an operator grants it (keymesh grant … --ops export).
//   - Activate, Revoke, Destroy, attribute changes: the key's KMIP owner
//     only (the owner party is mirrored with the attributes).
//   - Encrypt, Decrypt, Get (export): a grant in force for the operation,
//     decided like a REST request (custodian: this node's org). Get also
//     needs a key created exportable.
//   - Seeing a key (Get Attributes, Locate): its owner, or a party with a
//     grant in force for any operation on it.
//
// When package kms lands, this adapter calls it instead of the parts.
type kmipBackend struct {
	keys    api.Manager
	vault   *vault.Vault
	audit   *audit.Log
	org     string
	ns      string
	records kmipRecords
	clock   func() time.Time
}

var _ kmip.Backend = (*kmipBackend)(nil)

// kmipRecord is what a key's KMIP side adds to it: the owner party and the
// client-settable attributes.
type kmipRecord struct {
	Owner string      `json:"owner"`
	Attrs []kmip.Attr `json:"attrs"`
}

// kmipRecords stores the records: in the node's store on a standalone
// node, in the event log (mirrored) on a mesh node.
type kmipRecords interface {
	get(name string) (kmipRecord, bool)
	put(name string, r kmipRecord) error
	// register installs material as version 1 of the new key name (KMIP
	// Register).
	register(name string, exportable bool, material *secret.Bytes) error
}

// Audit actions.
const (
	kmipActCreate   = "kmip.create"
	kmipActRegister = "kmip.register"
	kmipActAttrs    = "kmip.attributes"
	kmipActSetAttrs = "kmip.set_attributes"
	kmipActActivate = "kmip.activate"
	kmipActRevoke   = "kmip.revoke"
	kmipActDestroy  = "kmip.destroy"
	kmipActGet      = "kmip.get"
	kmipActEncrypt  = "kmip.encrypt"
	kmipActDecrypt  = "kmip.decrypt"
)

func (b *kmipBackend) record(ctx context.Context, e audit.Entry) error {
	if e.Count == 0 {
		e.Count = 1
	}
	if _, err := b.audit.Append(ctx, e); err != nil {
		return fmt.Errorf("%w: audit log: %v", kmip.ErrUnavailable, err)
	}
	return nil
}

func (b *kmipBackend) principal(c kmip.Caller) policy.Principal {
	return policy.Principal{Parties: []policy.Party{policy.Party(c.Party)}, Custodian: b.org}
}

// kmipErr maps a domain error onto the kmip sentinels. Messages quote only
// public input (key names, states).
func kmipErr(err error) error {
	var ue *vault.UsableError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kmip.ErrUnavailable), errors.Is(err, kmip.ErrDenied), errors.Is(err, kmip.ErrNotFound),
		errors.Is(err, kmip.ErrWrongState), errors.Is(err, kmip.ErrInvalid), errors.Is(err, kmip.ErrDecrypt):
		return err
	case errors.Is(err, vault.ErrKeyNotFound):
		return kmip.ErrNotFound
	case errors.Is(err, policy.ErrStalePolicy):
		return fmt.Errorf("%w: this node has not heard from the key's owner organisation recently (stale policy)", kmip.ErrUnavailable)
	case errors.Is(err, policy.ErrNotGranted):
		return fmt.Errorf("%w: %s", kmip.ErrDenied, err.Error())
	case errors.Is(err, vault.ErrDecrypt):
		return kmip.ErrDecrypt
	case errors.Is(err, vault.ErrKeyDestroyed):
		return fmt.Errorf("%w: the key is destroyed", kmip.ErrWrongState)
	case errors.As(err, &ue), errors.Is(err, vault.ErrInvalidTransition):
		return fmt.Errorf("%w: %s", kmip.ErrWrongState, err.Error())
	case errors.Is(err, vault.ErrVersionNotHeld):
		return fmt.Errorf("%w: this node does not hold the key's material yet", kmip.ErrUnavailable)
	case errors.Is(err, kv.ErrNoSpace):
		return fmt.Errorf("%w: the disk is nearly full", kmip.ErrUnavailable)
	}
	return err
}

// fail audits a refused or failed request and returns its error.
func (b *kmipBackend) fail(ctx context.Context, c kmip.Caller, action, key string, err error) error {
	err = kmipErr(err)
	outcome := audit.OutcomeError
	if errors.Is(err, kmip.ErrDenied) || errors.Is(err, kmip.ErrNotFound) {
		outcome = audit.OutcomeDeny
	}
	reason := err.Error()
	if aerr := b.record(ctx, audit.Entry{Principal: c.Party, Action: action, Key: key, Outcome: outcome, Reason: reason}); aerr != nil {
		return aerr
	}
	return err
}

func (b *kmipBackend) newName() (string, error) {
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return b.ns + "/" + hex.EncodeToString(r[:]), nil
}

// Create implements kmip.Backend.
func (b *kmipBackend) Create(ctx context.Context, c kmip.Caller, req kmip.CreateRequest) (kmip.Object, error) {
	action := kmipActCreate
	if req.Material != nil {
		action = kmipActRegister
	}
	if err := checkAttrs(req.Attrs); err != nil {
		return kmip.Object{}, b.fail(ctx, c, action, "", err)
	}
	name, err := b.newName()
	if err != nil {
		return kmip.Object{}, b.fail(ctx, c, action, "", err)
	}
	// The decision (any KMIP client may create in the KMIP namespace) is
	// audited before the change.
	if err := b.record(ctx, audit.Entry{Principal: c.Party, Action: action, Key: name, Outcome: audit.OutcomeAllow, Reason: "kmip client creates in namespace " + b.ns}); err != nil {
		return kmip.Object{}, err
	}
	if req.Material != nil {
		err = b.records.register(name, req.Exportable, req.Material)
	} else {
		_, err = b.keys.CreateKey(name, vault.CreateOptions{Exportable: req.Exportable, PreActive: true})
	}
	if err != nil {
		return kmip.Object{}, b.fail(ctx, c, action, name, err)
	}
	if err := b.records.put(name, kmipRecord{Owner: c.Party, Attrs: req.Attrs}); err != nil {
		return kmip.Object{}, b.fail(ctx, c, action, name, err)
	}
	g, err := b.keys.Grant(policy.Grant{Key: name, Party: policy.Party(c.Party), Ops: policy.OpsAll, Custodian: b.org, Issuer: "kmip"})
	if err != nil {
		return kmip.Object{}, b.fail(ctx, c, action, name, err)
	}
	if err := b.record(ctx, audit.Entry{Principal: c.Party, Action: action, Key: name, Version: 1, Outcome: audit.OutcomeOK,
		Reason: "created pre-active; grant " + g.ID + " gives its creator encrypt,decrypt"}); err != nil {
		return kmip.Object{}, err
	}
	return b.describe(name)
}

func checkAttrs(attrs []kmip.Attr) error {
	if len(attrs) > kmip.MaxAttrs {
		return fmt.Errorf("%w: at most %d attributes", kmip.ErrInvalid, kmip.MaxAttrs)
	}
	for _, a := range attrs {
		if len(a.TTLV) > kmip.MaxAttrBytes || len(a.Name) > 256 {
			return fmt.Errorf("%w: attribute over %d bytes", kmip.ErrInvalid, kmip.MaxAttrBytes)
		}
	}
	return nil
}

// describe builds the object of key name (no authority check).
func (b *kmipBackend) describe(name string) (kmip.Object, error) {
	ki, err := b.vault.Get(name)
	if err != nil {
		return kmip.Object{}, kmipErr(err)
	}
	rec, _ := b.records.get(name)
	o := kmip.Object{ID: name, State: kmip.State(ki.State), Exportable: ki.Exportable, Owner: rec.Owner,
		Created: ki.Created, LastChange: ki.StateChanged, Attrs: rec.Attrs}
	switch ki.State {
	case vault.StateActive:
		o.Activated = ki.StateChanged
	case vault.StateDeactivated:
		o.Deactivated = ki.StateChanged
	case vault.StateCompromised:
		o.Compromised = ki.StateChanged
	case vault.StateDestroyed:
		o.Destroyed = ki.StateChanged
	}
	if ki.State == vault.StateActive && ki.StateChanged.Equal(ki.Created) {
		o.Activated = ki.Created // created active (through REST)
	}
	return o, nil
}

// visible reports whether c owns key name over KMIP or holds a grant in
// force on it.
func (b *kmipBackend) visible(c kmip.Caller, o kmip.Object) bool {
	if o.Owner != "" && o.Owner == c.Party {
		return true
	}
	now := b.clock()
	p := b.principal(c)
	for _, op := range []policy.Op{policy.OpEncrypt, policy.OpDecrypt, policy.OpExport} {
		if d := b.keys.Policy().Decide(p, o.ID, op, now); d.Allowed || d.Stale() {
			return true
		}
	}
	return false
}

// Object implements kmip.Backend.
func (b *kmipBackend) Object(ctx context.Context, c kmip.Caller, id string) (kmip.Object, error) {
	o, err := b.describe(id)
	if err == nil && !b.visible(c, o) {
		err = kmip.ErrNotFound
	}
	if err != nil {
		return kmip.Object{}, b.fail(ctx, c, kmipActAttrs, id, err)
	}
	return o, nil
}

// List implements kmip.Backend: it is not audited per key (Locate reveals
// only identifiers of keys the caller may see) but as one entry.
func (b *kmipBackend) List(ctx context.Context, c kmip.Caller) ([]kmip.Object, error) {
	var out []kmip.Object
	for _, ki := range b.vault.List() {
		o, err := b.describe(ki.Name)
		if err != nil || !b.visible(c, o) {
			continue
		}
		out = append(out, o)
	}
	if err := b.record(ctx, audit.Entry{Principal: c.Party, Action: "kmip.locate", Outcome: audit.OutcomeAllow, Count: max(len(out), 1),
		Reason: fmt.Sprintf("%d visible keys", len(out))}); err != nil {
		return nil, err
	}
	return out, nil
}

// owned returns the object id if c is its KMIP owner.
func (b *kmipBackend) owned(c kmip.Caller, id string) (kmip.Object, error) {
	o, err := b.describe(id)
	if err != nil {
		return kmip.Object{}, err
	}
	if o.Owner == "" || o.Owner != c.Party {
		if b.visible(c, o) {
			return kmip.Object{}, fmt.Errorf("%w: only the key's KMIP owner may change it", kmip.ErrDenied)
		}
		return kmip.Object{}, kmip.ErrNotFound
	}
	return o, nil
}

// SetAttributes implements kmip.Backend.
func (b *kmipBackend) SetAttributes(ctx context.Context, c kmip.Caller, id string, attrs []kmip.Attr) (kmip.Object, error) {
	o, err := b.owned(c, id)
	if err == nil {
		err = checkAttrs(attrs)
	}
	if err == nil && o.State == kmip.StateDestroyed {
		err = fmt.Errorf("%w: the key is destroyed", kmip.ErrWrongState)
	}
	if err != nil {
		return kmip.Object{}, b.fail(ctx, c, kmipActSetAttrs, id, err)
	}
	if err := b.record(ctx, audit.Entry{Principal: c.Party, Action: kmipActSetAttrs, Key: id, Outcome: audit.OutcomeAllow, Reason: "kmip owner"}); err != nil {
		return kmip.Object{}, err
	}
	if err := b.records.put(id, kmipRecord{Owner: o.Owner, Attrs: attrs}); err != nil {
		return kmip.Object{}, b.fail(ctx, c, kmipActSetAttrs, id, err)
	}
	return b.describe(id)
}

// lifecycle runs one owner-only state change.
func (b *kmipBackend) lifecycle(ctx context.Context, c kmip.Caller, action, id string, change func(kmip.Object) (string, error)) error {
	o, err := b.owned(c, id)
	if err != nil {
		return b.fail(ctx, c, action, id, err)
	}
	if err := b.record(ctx, audit.Entry{Principal: c.Party, Action: action, Key: id, Outcome: audit.OutcomeAllow, Reason: "kmip owner"}); err != nil {
		return err
	}
	reason, err := change(o)
	if err != nil {
		return b.fail(ctx, c, action, id, err)
	}
	return b.record(ctx, audit.Entry{Principal: c.Party, Action: action, Key: id, Outcome: audit.OutcomeOK, Reason: reason})
}

// Activate implements kmip.Backend.
func (b *kmipBackend) Activate(ctx context.Context, c kmip.Caller, id string) error {
	return b.lifecycle(ctx, c, kmipActActivate, id, func(o kmip.Object) (string, error) {
		if o.State != kmip.StatePreActive {
			return "", fmt.Errorf("%w: only a pre-active key can be activated", kmip.ErrWrongState)
		}
		_, err := b.keys.SetKeyState(id, vault.StateActive)
		return "active", err
	})
}

// Revoke implements kmip.Backend: key compromise makes the key
// compromised (decrypt only, audited as such), any other reason
// deactivated (decrypt only).
func (b *kmipBackend) Revoke(ctx context.Context, c kmip.Caller, id string, compromised bool) error {
	return b.lifecycle(ctx, c, kmipActRevoke, id, func(o kmip.Object) (string, error) {
		to := vault.StateDeactivated
		if compromised {
			to = vault.StateCompromised
		}
		if o.State == kmip.State(to) {
			return to.String() + " (already)", nil
		}
		_, err := b.keys.SetKeyState(id, to)
		return to.String(), err
	})
}

// Destroy implements kmip.Backend: crypto-shredding on every holder. As
// KMIP requires, an active key must be revoked first.
func (b *kmipBackend) Destroy(ctx context.Context, c kmip.Caller, id string) error {
	return b.lifecycle(ctx, c, kmipActDestroy, id, func(o kmip.Object) (string, error) {
		if o.State == kmip.StateActive {
			return "", fmt.Errorf("%w: an active key must be revoked before it is destroyed", kmip.ErrWrongState)
		}
		ki, err := b.keys.DestroyKey(id)
		if err == nil && ki.EraseError != "" {
			return "destroyed; erase_error", nil
		}
		return "destroyed", err
	})
}

// decide decides op on id for c and audits the decision.
func (b *kmipBackend) decide(ctx context.Context, c kmip.Caller, action, id string, op policy.Op) error {
	if _, err := b.vault.Get(id); err != nil {
		return b.fail(ctx, c, action, id, err)
	}
	d := b.keys.Policy().Decide(b.principal(c), id, op, b.clock())
	e := audit.Entry{Principal: c.Party, Action: action, Key: id, Outcome: audit.OutcomeAllow, Reason: d.Reason}
	if !d.Allowed {
		e.Outcome = audit.OutcomeDeny
	}
	if err := b.record(ctx, e); err != nil {
		return err
	}
	if !d.Allowed {
		return kmipErr(d.Err())
	}
	return nil
}

// Export implements kmip.Backend.
func (b *kmipBackend) Export(ctx context.Context, c kmip.Caller, id string) (kmip.Object, *secret.Bytes, error) {
	o, err := b.describe(id)
	if err == nil && !b.visible(c, o) {
		err = kmip.ErrNotFound
	}
	if err != nil {
		return kmip.Object{}, nil, b.fail(ctx, c, kmipActGet, id, err)
	}
	if !o.Exportable {
		return kmip.Object{}, nil, b.fail(ctx, c, kmipActGet, id, fmt.Errorf("%w: the key was not created exportable", kmip.ErrDenied))
	}
	if err := b.decide(ctx, c, kmipActGet, id, policy.OpExport); err != nil {
		return kmip.Object{}, nil, err
	}
	m, _, err := b.vault.Export(id)
	if err != nil {
		return kmip.Object{}, nil, b.fail(ctx, c, kmipActGet, id, err)
	}
	return o, m, nil
}

// Encrypt implements kmip.Backend.
func (b *kmipBackend) Encrypt(ctx context.Context, c kmip.Caller, id string, plaintext, aad []byte) (kmip.Sealed, error) {
	if err := b.decide(ctx, c, kmipActEncrypt, id, policy.OpEncrypt); err != nil {
		return kmip.Sealed{}, err
	}
	ct, err := b.vault.RawSeal(id, plaintext, aad)
	if err != nil {
		return kmip.Sealed{}, b.fail(ctx, c, kmipActEncrypt, id, err)
	}
	return kmip.Sealed{Nonce: ct.Nonce, Ciphertext: ct.Ciphertext, Tag: ct.Tag}, nil
}

// Decrypt implements kmip.Backend.
func (b *kmipBackend) Decrypt(ctx context.Context, c kmip.Caller, id string, s kmip.Sealed, aad []byte) ([]byte, error) {
	if err := b.decide(ctx, c, kmipActDecrypt, id, policy.OpDecrypt); err != nil {
		return nil, err
	}
	pt, _, err := b.vault.RawOpen(id, s.Nonce, s.Ciphertext, s.Tag, aad)
	if err != nil {
		return nil, b.fail(ctx, c, kmipActDecrypt, id, err)
	}
	return pt, nil
}

// storeRecords keeps the KMIP records of a standalone node in its
// (authenticated) store.
type storeRecords struct {
	store kv.Store
	vault *vault.Vault
	clock func() time.Time
}

func kmipRecordKey(name string) []byte { return []byte("kmip/object/" + name) }

func (s storeRecords) get(name string) (kmipRecord, bool) {
	b, err := s.store.Get(kmipRecordKey(name))
	if err != nil {
		return kmipRecord{}, false
	}
	var r kmipRecord
	if json.Unmarshal(b, &r) != nil {
		return kmipRecord{}, false
	}
	return r, true
}

func (s storeRecords) put(name string, r kmipRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.store.Update(func(tx kv.Txn) error { return tx.Set(kmipRecordKey(name), b) })
}

func (s storeRecords) register(name string, exportable bool, material *secret.Bytes) error {
	if _, err := s.vault.Create(name, vault.CreateOptions{Exportable: exportable, PreActive: true}); err != nil {
		return err
	}
	ki, err := s.vault.Get(name)
	if err != nil {
		return err
	}
	return material.Use(func(m []byte) error {
		return s.vault.ImportVersion(name, 1, ki.Versions[0].ActivateAt, m)
	})
}

// meshRecords keeps the KMIP records of a mesh node in the event log
// (KMIPAttrs events), mirrored to the org's other nodes.
type meshRecords struct{ m *member.Member }

func (r meshRecords) get(name string) (kmipRecord, bool) {
	a, ok := r.m.KMIPAttrs(name)
	if !ok {
		return kmipRecord{}, false
	}
	rec := kmipRecord{Owner: string(a.Owner)}
	for _, at := range a.Attrs {
		rec.Attrs = append(rec.Attrs, kmip.Attr{Name: at.Name, Index: at.Index, TTLV: at.TTLV})
	}
	return rec, true
}

func (r meshRecords) put(name string, rec kmipRecord) error {
	a := event.KMIPAttrs{Key: name, Owner: policy.Party(rec.Owner)}
	for _, at := range rec.Attrs {
		a.Attrs = append(a.Attrs, event.KMIPAttr{Name: at.Name, Index: at.Index, TTLV: at.TTLV})
	}
	return r.m.SetKMIPAttrs(a)
}

func (r meshRecords) register(name string, exportable bool, material *secret.Bytes) error {
	_, err := r.m.CreateKeyWithMaterial(name, vault.CreateOptions{Exportable: exportable, PreActive: true}, material)
	return err
}
