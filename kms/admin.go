package kms

import (
	"context"
	"fmt"
	"time"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault"
	"github.com/keymesh/keymesh/vault/envelope"
)

// Key is a key as the node knows it: the vault's view plus, from the
// network, the nodes holding it and the destroy acknowledgements still
// outstanding.
type Key struct {
	vault.KeyInfo
	Holders     []string
	PendingAcks []string
	KMIP        *KMIPObject // nil unless the key is managed over KMIP
}

func (s *Service) describe(k vault.KeyInfo) Key {
	out := Key{KeyInfo: k}
	out.Holders, out.PendingAcks = s.cfg.Keys.DescribeKey(k.Name)
	if s.cfg.KMIP != nil {
		out.KMIP = s.cfg.KMIP(k.Name)
	}
	return out
}

// Key returns the named key.
func (s *Service) Key(name string) (Key, error) {
	k, err := s.cfg.Vault.Get(name)
	if err != nil {
		return Key{}, err
	}
	return s.describe(k), nil
}

// Keys returns every key, sorted by name.
func (s *Service) Keys() []Key {
	ks := s.cfg.Vault.List()
	out := make([]Key, len(ks))
	for i, k := range ks {
		out[i] = s.describe(k)
	}
	return out
}

// KeysPage returns, in name order, up to limit keys whose names sort
// after after, and whether more follow: a listing costs its page, not
// every key.
func (s *Service) KeysPage(after string, limit int) ([]Key, bool) {
	ks, more := s.cfg.Vault.ListPage(after, limit)
	out := make([]Key, len(ks))
	for i, k := range ks {
		out[i] = s.describe(k)
	}
	return out, more
}

// CountKeys returns how many keys the node holds.
func (s *Service) CountKeys() int { return s.cfg.Vault.Count() }

// changed audits a change that was made (outcome "ok", or "error" for a
// destroy whose erasure failed) or refused. A change that was made stands
// even when its audit entry cannot be written: the error says the node
// could not record it, and the operator sees it in the answer and the logs.
func (s *Service) changed(ctx context.Context, c Caller, action, key string, version uint32, reason string, err error) error {
	e := audit.Entry{Principal: c.Name, Action: action, Key: key, Version: version, Outcome: "ok", Reason: reason}
	if err != nil {
		e.Outcome, e.Version, e.Reason = audit.OutcomeError, 0, s.cfg.Reason(err)
	}
	if aerr := s.Record(ctx, e); aerr != nil {
		return aerr
	}
	return err
}

// CreateKey creates key name with options o.
func (s *Service) CreateKey(ctx context.Context, c Caller, name string, o vault.CreateOptions) (Key, error) {
	if err := envelope.CheckKeyName(name); err != nil {
		return Key{}, err
	}
	k, err := s.cfg.Keys.CreateKey(name, o)
	if err := s.changed(ctx, c, "key.create", name, 1, "", err); err != nil {
		return Key{}, err
	}
	return s.describe(k), nil
}

// RotateKey adds a version to key name, active now or after activateIn.
func (s *Service) RotateKey(ctx context.Context, c Caller, name string, activateIn *time.Duration) (Key, error) {
	if err := envelope.CheckKeyName(name); err != nil {
		return Key{}, err
	}
	k, err := s.cfg.Keys.RotateKey(name, activateIn)
	if err := s.changed(ctx, c, "key.rotate", name, k.LatestVersion, "", err); err != nil {
		return Key{}, err
	}
	return s.describe(k), nil
}

// SetKeyState moves key name to state to (active, deactivated or
// compromised; destroy is DestroyKey).
func (s *Service) SetKeyState(ctx context.Context, c Caller, name string, to vault.State) (Key, error) {
	if err := envelope.CheckKeyName(name); err != nil {
		return Key{}, err
	}
	if to == vault.StateDestroyed || to == vault.StatePreActive {
		return Key{}, fmt.Errorf("%w: state must be active, deactivated or compromised (destroy is its own operation)", vault.ErrInvalidRequest)
	}
	k, err := s.cfg.Keys.SetKeyState(name, to)
	if err := s.changed(ctx, c, "key.state", name, 0, "to "+to.String(), err); err != nil {
		return Key{}, err
	}
	return s.describe(k), nil
}

// SetMinDecryptionVersion refuses versions below n of key name for
// decryption.
func (s *Service) SetMinDecryptionVersion(ctx context.Context, c Caller, name string, n uint32) (Key, error) {
	if err := envelope.CheckKeyName(name); err != nil {
		return Key{}, err
	}
	k, err := s.cfg.Keys.SetMinDecryptionVersion(name, n)
	if err := s.changed(ctx, c, "key.config", name, n, "min_decryption_version", err); err != nil {
		return Key{}, err
	}
	return s.describe(k), nil
}

// DestroyKey crypto-shreds key name on every node that holds it. A key
// destroyed whose erasure from this node's disk failed is returned with
// its EraseError set, and audited with outcome "error".
func (s *Service) DestroyKey(ctx context.Context, c Caller, name string) (Key, error) {
	if err := envelope.CheckKeyName(name); err != nil {
		return Key{}, err
	}
	k, err := s.cfg.Keys.DestroyKey(name)
	if err != nil || k.EraseError == "" {
		if err := s.changed(ctx, c, "key.destroy", name, 0, "crypto-shredded", err); err != nil {
			return Key{}, err
		}
		return s.describe(k), nil
	}
	// Destroyed, but not (yet) erased from this node's disk: say so in the
	// audit log and the answer, not only in the node's log.
	if err := s.Record(ctx, audit.Entry{Principal: c.Name, Action: "key.destroy", Key: name, Outcome: audit.OutcomeError,
		Reason: "destroyed; erasing it from disk failed: " + k.EraseError}); err != nil {
		return Key{}, err
	}
	return s.describe(k), nil
}

// Grant issues g (its ID, Issuer and IssuedAt are assigned: Issuer is c)
// and returns it with its status now. The key must exist here.
func (s *Service) Grant(ctx context.Context, c Caller, g policy.Grant) (policy.Status, error) {
	if err := envelope.CheckKeyName(g.Key); err != nil {
		return policy.Status{}, err
	}
	if _, err := s.cfg.Vault.Get(g.Key); err != nil {
		return policy.Status{}, err
	}
	g.Issuer = c.Name
	g, err := s.cfg.Keys.Grant(g)
	if err := s.changed(ctx, c, "grant.create", g.Key, 0, string(g.Party)+" "+g.Ops.String(), err); err != nil {
		return policy.Status{}, err
	}
	// A grant just issued is the newest event on its key: no revocation
	// can end it yet, so its bounds alone judge it.
	st := policy.Status{Grant: g}
	st.InForce, st.Reason = g.StatusAt(s.cfg.Clock())
	return st, nil
}

// GrantsPage is one page of Grants: up to limit grants after the cursor,
// and the cursor of the next page (zero on the last). Ended grants are
// read back from the store; if that fails, so does the page (an error
// wrapping policy.ErrArchive).
func (s *Service) GrantsPage(key string, after policy.GrantCursor, limit int) ([]policy.Status, policy.GrantCursor, error) {
	sts, next, err := s.cfg.Keys.Policy().GrantsAtPage(key, s.cfg.Clock(), after, limit)
	if err != nil {
		return nil, policy.GrantCursor{}, fmt.Errorf("kms: list grants: %w", err)
	}
	return sts, next, nil
}

// Revoke ends every grant of key to party p, and returns the revocation and
// how many grants it ended.
func (s *Service) Revoke(ctx context.Context, c Caller, key string, p policy.Party) (policy.Revocation, int, error) {
	if err := envelope.CheckKeyName(key); err != nil {
		return policy.Revocation{}, 0, err
	}
	r, ended, err := s.cfg.Keys.Revoke(key, p, c.Name)
	if err := s.changed(ctx, c, "grant.revoke", key, 0, string(p), err); err != nil {
		return policy.Revocation{}, 0, err
	}
	return r, ended, nil
}

// CountGrants returns how many grants the policy holds, revoked ones
// included.
func (s *Service) CountGrants() int { return s.cfg.Keys.Policy().CountGrants() }
