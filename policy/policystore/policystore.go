// Package policystore persists keymesh's grants and revocations and keeps
// the in-memory policy.State in step with the store. A grant or revocation
// is durable before it takes effect or is acknowledged; at start the state
// is rebuilt by folding every stored record, in any order (the fold is
// order-independent, see package policy).
package policystore

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/policy"
)

const (
	grantPrefix  = "policy/grant/"
	revokePrefix = "policy/revoke/"
)

// Store is the durable set of grants and revocations of one node.
type Store struct {
	kv    kv.Store
	state *policy.State
	clock func() time.Time
	rand  io.Reader

	mu sync.Mutex // serialises writers so Observed sets are complete
}

// Open loads every stored grant and revocation into a new policy.State.
func Open(store kv.Store, clock func() time.Time, r io.Reader) (*Store, error) {
	if clock == nil {
		clock = time.Now
	}
	if r == nil {
		r = rand.Reader
	}
	s := &Store{kv: store, state: policy.NewState(), clock: clock, rand: r}
	err := store.Scan([]byte(grantPrefix), func(k, v []byte) error {
		var g policy.Grant
		if err := json.Unmarshal(v, &g); err != nil {
			return fmt.Errorf("decode %q: %w", k, err)
		}
		return s.state.AddGrant(g)
	})
	if err != nil {
		return nil, fmt.Errorf("policystore: load grants: %w", err)
	}
	err = store.Scan([]byte(revokePrefix), func(k, v []byte) error {
		var r policy.Revocation
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode %q: %w", k, err)
		}
		return s.state.AddRevocation(r)
	})
	if err != nil {
		return nil, fmt.Errorf("policystore: load revocations: %w", err)
	}
	return s, nil
}

// State returns the live policy state, for decisions.
func (s *Store) State() *policy.State { return s.state }

func (s *Store) newID() (string, error) {
	b := make([]byte, 12)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", fmt.Errorf("policystore: id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Grant issues a grant. ID, IssuedAt and Observed are filled in here:
// Observed lists every revocation of the same key and party known now, so
// the new grant is in force despite earlier revocations (remove-wins only
// ends grants that did not see the revocation).
func (s *Store) Grant(g policy.Grant) (policy.Grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, err := s.newID()
	if err != nil {
		return policy.Grant{}, err
	}
	g.ID = id
	g.IssuedAt = s.clock().UTC()
	g.Observed = s.state.RevocationIDs(g.Key, g.Party)
	if err := g.Validate(); err != nil {
		return policy.Grant{}, err
	}
	b, err := json.Marshal(g)
	if err != nil {
		return policy.Grant{}, fmt.Errorf("policystore: encode grant: %w", err)
	}
	if err := s.kv.Update(func(tx kv.Txn) error { return tx.Set([]byte(grantPrefix+g.ID), b) }); err != nil {
		return policy.Grant{}, fmt.Errorf("policystore: write grant: %w", err)
	}
	if err := s.state.AddGrant(g); err != nil {
		return policy.Grant{}, err
	}
	return g, nil
}

// Revoke ends every grant of party on key that is in force now, and any
// grant issued without having seen this revocation. It returns the
// revocation and how many grants were in force before it.
func (s *Store) Revoke(key string, party policy.Party, issuer string) (policy.Revocation, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, err := s.newID()
	if err != nil {
		return policy.Revocation{}, 0, err
	}
	now := s.clock().UTC()
	r := policy.Revocation{ID: id, Key: key, Party: party, Issuer: issuer, IssuedAt: now}
	if err := r.Validate(); err != nil {
		return policy.Revocation{}, 0, err
	}
	ended := s.state.InForceAt(key, party, now)
	b, err := json.Marshal(r)
	if err != nil {
		return policy.Revocation{}, 0, fmt.Errorf("policystore: encode revocation: %w", err)
	}
	if err := s.kv.Update(func(tx kv.Txn) error { return tx.Set([]byte(revokePrefix+r.ID), b) }); err != nil {
		return policy.Revocation{}, 0, fmt.Errorf("policystore: write revocation: %w", err)
	}
	if err := s.state.AddRevocation(r); err != nil {
		return policy.Revocation{}, 0, err
	}
	return r, ended, nil
}
