package vault

import (
	"errors"
	"fmt"
	"io"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/vault/envelope"
)

// sealerIDKey holds this vault's sealer id, sealed under the KEK with
// sealerIDAAD, so that it is authenticated like every other record: whoever
// writes the store without the master secret cannot change it.
var sealerIDKey = []byte("vault/sealer-id")

const sealerIDAAD = "keymesh/v1 sealer-id"

// ErrSealerID is returned by Open when the stored sealer id does not
// authenticate, or differs from the one WithSealerID asks for.
var ErrSealerID = errors.New("vault: sealer id")

// WithSealerID pins the vault's sealer id (tests, and a node that must keep
// an id it was given). On a store without one it is stored; on a store that
// holds another, Open fails with ErrSealerID rather than change it.
func WithSealerID(id envelope.SealerID) Option {
	return func(o *options) { o.sealerID = &id }
}

// SealerID returns this vault's sealer id: 8 random bytes drawn when the
// store is first opened and kept in it. Every random-mode envelope this
// vault seals names it and is sealed under the version's subkey for it, so
// the nonce budget of a key version (2^31 encryptions, rotation at 2^30) is
// per holder, and no GCM key sees more than SP 800-38D's 2^32 nonces however
// many nodes hold the version. It is public.
func (v *Vault) SealerID() envelope.SealerID { return v.sealerID }

// loadSealerID reads the sealer id, or draws and stores one on a store that
// has none.
func (v *Vault) loadSealerID() (envelope.SealerID, error) {
	var id envelope.SealerID
	sealed, err := v.store.Get(sealerIDKey)
	switch {
	case err == nil:
		b, ok := v.openKEK(sealed, []byte(sealerIDAAD))
		if !ok || len(b) != envelope.SealerIDSize {
			return id, fmt.Errorf("%w: the stored sealer id does not authenticate", ErrSealerID)
		}
		copy(id[:], b)
		if p := v.opts.sealerID; p != nil && *p != id {
			return id, fmt.Errorf("%w: the store holds %x, not %x", ErrSealerID, id[:], p[:])
		}
		return id, nil
	case !errors.Is(err, kv.ErrNotFound):
		return id, fmt.Errorf("vault: read sealer id: %w", err)
	}
	if p := v.opts.sealerID; p != nil {
		id = *p
	} else if _, err := io.ReadFull(v.opts.rand, id[:]); err != nil {
		return id, fmt.Errorf("vault: generate sealer id: %w", err)
	}
	sealed, err = v.sealKEK(id[:], []byte(sealerIDAAD))
	if err != nil {
		return id, err
	}
	err = v.store.Update(func(tx kv.Txn) error {
		if _, err := tx.Get(sealerIDKey); err == nil {
			return fmt.Errorf("%w: appeared concurrently", ErrSealerID)
		}
		return tx.Set(sealerIDKey, sealed)
	})
	if err != nil {
		return id, fmt.Errorf("vault: write sealer id: %w", err)
	}
	v.opts.logger.Info("vault sealer id created", "sealer_id", fmt.Sprintf("%x", id[:]))
	return id, nil
}
