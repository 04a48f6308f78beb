package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/event"
	"github.com/keymesh/keymesh/kmip"
	"github.com/keymesh/keymesh/kms"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/mesh/member"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault"
	"github.com/keymesh/keymesh/vault/secret"
)

// kmipBackend is kmip.Backend over the node's domain core (package kms)
// and its mesh member: a KMIP object is a keymesh key (named
// <namespace>/<16 hex digits>, its KMIP Unique Identifier), created,
// changed and destroyed through kms (so through signed events, mirrored to
// the org's other nodes), decided, audited (durably, before the answer)
// and sealed by kms like every other request. What is KMIP's own — the
// owner party and the client-settable attributes — travels in KMIPAttrs
// events (mesh/member/kmip.go).
//
// Authority, for a caller of party kmip:<CN>:
//   - Create and Register: any authenticated KMIP client, in the KMIP
//     namespace. The creator becomes the key's KMIP owner and is granted
//     encrypt and decrypt on it; export is never granted automatically:
//     an operator grants it (keymesh grant KEY kmip:<CN> --ops export).
//   - Activate, Revoke, Destroy, attribute changes: the key's KMIP owner
//     only.
//   - Encrypt, Decrypt, Get (export): a grant in force for the operation,
//     decided by kms like a REST request (custodian: this node's org).
//     Get also needs a key created exportable.
//   - Seeing a key (Get Attributes, Locate): its owner, or a party with a
//     grant in force for some operation on it.
type kmipBackend struct {
	core    *kms.Service
	member  *member.Member
	vault   *vault.Vault
	org, ns string
	maxKeys int // per KMIP owner; 0: no bound
}

var _ kmip.Backend = (*kmipBackend)(nil)

// kmipRecord is what a key's KMIP side adds to it: the owner party and the
// client-settable attributes.
type kmipRecord struct {
	Owner string
	Attrs []kmip.Attr
}

func (b *kmipBackend) getRecord(name string) (kmipRecord, bool) {
	a, ok := b.member.KMIPAttrs(name)
	if !ok {
		return kmipRecord{}, false
	}
	rec := kmipRecord{Owner: string(a.Owner)}
	for _, at := range a.Attrs {
		rec.Attrs = append(rec.Attrs, kmip.Attr{Name: at.Name, Index: at.Index, TTLV: at.TTLV})
	}
	return rec, true
}

func (b *kmipBackend) putRecord(name string, rec kmipRecord) error {
	a := event.KMIPAttrs{Key: name, Owner: policy.Party(rec.Owner)}
	for _, at := range rec.Attrs {
		a.Attrs = append(a.Attrs, event.KMIPAttr{Name: at.Name, Index: at.Index, TTLV: at.TTLV})
	}
	return b.member.SetKMIPAttrs(a)
}

// Audit actions of the KMIP-only steps (kms names its own: key.create,
// grant.create, key.state, key.destroy, kmip.encrypt, kmip.decrypt,
// kmip.get).
const (
	kmipActCreate   = "kmip.create"
	kmipActRegister = "kmip.register"
	kmipActAttrs    = "kmip.attributes"
	kmipActSetAttrs = "kmip.set_attributes"
	kmipActActivate = "kmip.activate"
	kmipActRevoke   = "kmip.revoke"
	kmipActDestroy  = "kmip.destroy"
	kmipActLocate   = "kmip.locate"
)

func (b *kmipBackend) record(ctx context.Context, e audit.Entry) error {
	if err := b.core.Record(ctx, e); err != nil {
		return fmt.Errorf("%w: audit log: %v", kmip.ErrUnavailable, err)
	}
	return nil
}

func (b *kmipBackend) caller(c kmip.Caller) kms.Caller {
	return kms.Caller{Principal: policy.Principal{Parties: []policy.Party{policy.Party(c.Party)}, Custodian: b.org}, Name: c.Party}
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
	case errors.Is(err, vault.ErrNotExportable):
		return fmt.Errorf("%w: the key was not created exportable", kmip.ErrDenied)
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
	case errors.Is(err, audit.ErrUnavailable):
		return fmt.Errorf("%w: audit log", kmip.ErrUnavailable)
	}
	return err
}

// fail audits a refused or failed KMIP step and returns its error.
func (b *kmipBackend) fail(ctx context.Context, c kmip.Caller, action, key string, err error) error {
	err = kmipErr(err)
	outcome := audit.OutcomeError
	if errors.Is(err, kmip.ErrDenied) || errors.Is(err, kmip.ErrNotFound) {
		outcome = audit.OutcomeDeny
	}
	if aerr := b.record(ctx, audit.Entry{Principal: c.Party, Action: action, Key: key, Outcome: outcome, Reason: err.Error()}); aerr != nil {
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
	if b.maxKeys > 0 && b.ownedBy(c.Party) >= b.maxKeys {
		return kmip.Object{}, b.fail(ctx, c, action, "", fmt.Errorf("%w: this client created %d keys, the most allowed (kmip.max_keys_per_client)", kmip.ErrDenied, b.maxKeys))
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
	kc := b.caller(c)
	if req.Material != nil {
		_, err = b.member.CreateKeyWithMaterial(name, vault.CreateOptions{Exportable: req.Exportable, PreActive: true}, req.Material)
		err = b.core.Record(ctx, kmsChanged(c.Party, "key.create", name, "registered material", err))
		if err == nil {
			_, err = b.vault.Get(name)
		}
	} else {
		_, err = b.core.CreateKey(ctx, kc, name, vault.CreateOptions{Exportable: req.Exportable, PreActive: true})
	}
	if err != nil {
		return kmip.Object{}, b.fail(ctx, c, action, name, err)
	}
	if err := b.putRecord(name, kmipRecord{Owner: c.Party, Attrs: req.Attrs}); err != nil {
		return kmip.Object{}, b.fail(ctx, c, action, name, err)
	}
	st, err := b.core.Grant(ctx, kc, policy.Grant{Key: name, Party: policy.Party(c.Party), Ops: policy.OpsAll, Custodian: b.org})
	if err != nil {
		return kmip.Object{}, b.fail(ctx, c, action, name, err)
	}
	if err := b.record(ctx, audit.Entry{Principal: c.Party, Action: action, Key: name, Version: 1, Outcome: audit.OutcomeOK,
		Reason: "created pre-active; grant " + st.Grant.ID + " gives its creator encrypt,decrypt"}); err != nil {
		return kmip.Object{}, err
	}
	return b.describe(name)
}

// ownedBy counts the keys, destroyed or not, that party created over KMIP
// in this node's namespace.
func (b *kmipBackend) ownedBy(party string) int {
	n := 0
	for _, ki := range b.vault.List() {
		if !strings.HasPrefix(ki.Name, b.ns+"/") {
			continue
		}
		if rec, ok := b.getRecord(ki.Name); ok && rec.Owner == party {
			n++
		}
	}
	return n
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
	rec, _ := b.getRecord(name)
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
	now := b.core.Now()
	p := b.caller(c).Principal
	for _, op := range []policy.Op{policy.OpEncrypt, policy.OpDecrypt, policy.OpExport} {
		if d := b.core.Policy().Decide(p, o.ID, op, now); d.Allowed || d.Stale() {
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
// only identifiers of keys the caller may see) but as one entry. It looks
// only at the keys the caller owns over KMIP or has a grant or revocation
// on (Member.KMIPCandidates): no other key can be visible to it.
func (b *kmipBackend) List(ctx context.Context, c kmip.Caller) ([]kmip.Object, error) {
	var out []kmip.Object
	for _, name := range b.member.KMIPCandidates(policy.Party(c.Party)) {
		o, err := b.describe(name)
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
	if err := b.putRecord(id, kmipRecord{Owner: o.Owner, Attrs: attrs}); err != nil {
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
		_, err := b.core.SetKeyState(ctx, b.caller(c), id, vault.StateActive)
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
		_, err := b.core.SetKeyState(ctx, b.caller(c), id, to)
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
		ki, err := b.core.DestroyKey(ctx, b.caller(c), id)
		if err == nil && ki.EraseError != "" {
			return "destroyed; erase_error", nil
		}
		return "destroyed", err
	})
}

// Export implements kmip.Backend.
func (b *kmipBackend) Export(ctx context.Context, c kmip.Caller, id string) (kmip.Object, *secret.Bytes, error) {
	o, err := b.describe(id)
	if err == nil && !b.visible(c, o) {
		err = kmip.ErrNotFound
	}
	if err != nil {
		return kmip.Object{}, nil, b.fail(ctx, c, "kmip.get", id, err)
	}
	m, err := b.core.Export(ctx, b.caller(c), id)
	if err != nil {
		return kmip.Object{}, nil, kmipErr(err)
	}
	return o, m, nil
}

// Encrypt implements kmip.Backend.
func (b *kmipBackend) Encrypt(ctx context.Context, c kmip.Caller, id string, plaintext, aad []byte) (kmip.Sealed, error) {
	if _, err := b.vault.Get(id); err != nil {
		return kmip.Sealed{}, b.fail(ctx, c, "kmip.encrypt", id, err)
	}
	ct, err := b.core.RawEncrypt(ctx, b.caller(c), id, plaintext, aad)
	if err != nil {
		return kmip.Sealed{}, kmipErr(err)
	}
	return kmip.Sealed{Nonce: ct.Nonce, Ciphertext: ct.Ciphertext, Tag: ct.Tag}, nil
}

// Decrypt implements kmip.Backend.
func (b *kmipBackend) Decrypt(ctx context.Context, c kmip.Caller, id string, s kmip.Sealed, aad []byte) ([]byte, error) {
	if _, err := b.vault.Get(id); err != nil {
		return nil, b.fail(ctx, c, "kmip.decrypt", id, err)
	}
	pt, err := b.core.RawDecrypt(ctx, b.caller(c), id, s.Nonce, s.Ciphertext, s.Tag, aad)
	if err != nil {
		return nil, kmipErr(err)
	}
	return pt, nil
}

// kmsChanged is the audit entry of a change made outside kms (Register's
// key creation, which kms.Keys does not offer).
func kmsChanged(principal, action, key, reason string, err error) audit.Entry {
	e := audit.Entry{Principal: principal, Action: action, Key: key, Version: 1, Outcome: audit.OutcomeOK, Reason: reason}
	if err != nil {
		e.Outcome, e.Version, e.Reason = audit.OutcomeError, 0, err.Error()
	}
	return e
}
