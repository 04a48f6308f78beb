package kms

import (
	"context"
	"fmt"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault"
	"github.com/keymesh/keymesh/vault/envelope"
	"github.com/keymesh/keymesh/vault/secret"
)

// This file serves the KMIP front door (package kmip, node/kmipbackend.go)
// in the same order as the envelopes: decide, audit durably, then seal,
// open or export. KMIP Encrypt and Decrypt are raw AES-256-GCM under the
// key's material (vault.RawSeal), and KMIP Get exports the material
// (vault.Export): only for a key created exportable, and only for a
// caller granted the export operation.

// KMIPObject is a key's KMIP side, for listings: its KMIP Unique
// Identifier (the key name), the party that created it over KMIP and its
// KMIP Name attributes.
type KMIPObject struct {
	UID   string
	Owner string
	Names []string
}

// decide decides op on key for c, audits the decision under action and
// returns the denial as an error.
func (s *Service) decide(ctx context.Context, c Caller, action, key string, op policy.Op) (audit.Entry, error) {
	if err := envelope.CheckKeyName(key); err != nil {
		return audit.Entry{}, err
	}
	d := s.cfg.Keys.Policy().Decide(c.Principal, key, op, s.cfg.Clock())
	s.cfg.OnDecision(op.String(), d.Allowed)
	e := audit.Entry{Principal: c.Name, Action: action, Key: key, Outcome: audit.OutcomeAllow, Reason: d.Reason}
	if !d.Allowed {
		e.Outcome = audit.OutcomeDeny
		if err := s.Record(ctx, e); err != nil {
			return e, err
		}
		return e, s.denied(d)
	}
	if err := s.Record(ctx, e); err != nil {
		return e, err
	}
	return e, nil
}

// failed audits an operation that was allowed but failed.
func (s *Service) failed(ctx context.Context, e audit.Entry, err error) error {
	e.Outcome, e.Reason = audit.OutcomeError, s.cfg.Reason(err)
	if aerr := s.Record(ctx, e); aerr != nil {
		return aerr
	}
	return err
}

// RawEncrypt seals plaintext with AES-256-GCM under key's current version
// for c (KMIP Encrypt), aad as additional data. The caller needs encrypt.
func (s *Service) RawEncrypt(ctx context.Context, c Caller, key string, plaintext, aad []byte) (vault.RawCiphertext, error) {
	e, err := s.decide(ctx, c, "kmip.encrypt", key, policy.OpEncrypt)
	if err != nil {
		return vault.RawCiphertext{}, err
	}
	ct, err := s.cfg.Vault.RawSeal(key, plaintext, aad)
	if err != nil {
		s.cfg.OnItems("encrypt", 0, 1)
		return vault.RawCiphertext{}, s.failed(ctx, e, err)
	}
	s.cfg.OnItems("encrypt", 1, 0)
	return ct, nil
}

// RawDecrypt opens what RawEncrypt sealed, for c (KMIP Decrypt). The caller
// needs decrypt. The decision is audited before the open; the plaintext
// leaves only after it.
func (s *Service) RawDecrypt(ctx context.Context, c Caller, key string, nonce, ciphertext, tag, aad []byte) ([]byte, error) {
	e, err := s.decide(ctx, c, "kmip.decrypt", key, policy.OpDecrypt)
	if err != nil {
		return nil, err
	}
	pt, _, err := s.cfg.Vault.RawOpen(key, nonce, ciphertext, tag, aad)
	if err != nil {
		s.cfg.OnItems("decrypt", 0, 1)
		return nil, s.failed(ctx, e, err)
	}
	s.cfg.OnItems("decrypt", 1, 0)
	return pt, nil
}

// Export returns key's material for c (KMIP Get): the key must have been
// created exportable (vault.ErrNotExportable, audited as a denial) and c
// must hold a grant for export. The caller clears the secret.
func (s *Service) Export(ctx context.Context, c Caller, key string) (*secret.Bytes, error) {
	k, err := s.cfg.Vault.Get(key)
	if err != nil {
		return nil, err
	}
	if !k.Exportable {
		err := fmt.Errorf("%w: %q", vault.ErrNotExportable, key)
		if aerr := s.Record(ctx, audit.Entry{Principal: c.Name, Action: "kmip.get", Key: key, Outcome: audit.OutcomeDeny, Reason: "the key was not created exportable"}); aerr != nil {
			return nil, aerr
		}
		return nil, err
	}
	e, err := s.decide(ctx, c, "kmip.get", key, policy.OpExport)
	if err != nil {
		return nil, err
	}
	m, _, err := s.cfg.Vault.Export(key)
	if err != nil {
		return nil, s.failed(ctx, e, err)
	}
	return m, nil
}
