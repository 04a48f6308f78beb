package member

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/policy"
)

// Records of a standalone keymesh 0.1 node's grants and revocations.
const (
	legacyGrantPrefix  = "policy/grant/"
	legacyRevokePrefix = "policy/revoke/"
)

// UpgradeStandalone gives the network what a standalone keymesh 0.1 node
// held: every key of the vault (Adopt), and every grant in force in its old
// policy records in store, issued again (with a new id, which renamed
// reports; revoked grants are not carried over: their effect was to end
// grants, and their history is in the audit log). The old records are then
// deleted. Run again after an interruption, it issues nothing twice.
func (m *Member) UpgradeStandalone(store kv.Store, renamed func(oldID, newID string)) (keys, grants int, err error) {
	legacy := policy.NewState()
	var records [][]byte
	err = store.Scan([]byte(legacyGrantPrefix), func(k, v []byte) error {
		var g policy.Grant
		if err := json.Unmarshal(v, &g); err != nil {
			return fmt.Errorf("decode %q: %w", k, err)
		}
		records = append(records, slices.Clone(k))
		return legacy.AddGrant(g)
	})
	if err == nil {
		err = store.Scan([]byte(legacyRevokePrefix), func(k, v []byte) error {
			var r policy.Revocation
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode %q: %w", k, err)
			}
			records = append(records, slices.Clone(k))
			return legacy.AddRevocation(r)
		})
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read the old grants: %w", err)
	}
	for _, k := range m.vault.List() {
		done, err := m.Adopt(k)
		if err != nil {
			return keys, grants, fmt.Errorf("key %q: %w", k.Name, err)
		}
		if done {
			keys++
		}
	}
	for _, st := range legacy.Grants("") {
		if !st.InForce {
			continue
		}
		g := st.Grant
		if m.hasGrantLike(g) {
			continue // issued before an interruption
		}
		old := g.ID
		g.ID, g.Observed = "", nil
		ng, err := m.Grant(g)
		if err != nil {
			return keys, grants, fmt.Errorf("grant %s: %w", old, err)
		}
		renamed(old, ng.ID)
		grants++
	}
	err = store.Update(func(tx kv.Txn) error {
		for _, k := range records {
			if err := tx.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return keys, grants, fmt.Errorf("delete the old grants: %w", err)
	}
	return keys, grants, nil
}

// hasGrantLike reports whether a grant with g's key, party, operations,
// bounds and custodian is in the network's policy already.
func (m *Member) hasGrantLike(g policy.Grant) bool {
	for _, st := range m.log.Policy().Grants(g.Key) {
		h := st.Grant
		if st.InForce && h.Party == g.Party && h.Ops == g.Ops && h.NotBefore.Equal(g.NotBefore) && h.NotAfter.Equal(g.NotAfter) &&
			(h.Custodian == g.Custodian || g.Custodian == "" && h.Custodian == m.org) {
			return true
		}
	}
	return false
}
