package vault

import (
	"fmt"
	"time"

	"github.com/keymesh/keymesh/vault/envelope"
)

// EncryptInput is one field to encrypt.
type EncryptInput struct {
	Key     string
	Mode    envelope.Mode // zero means ModeRandom
	Context envelope.Context
	// TxID and TxTime are required in endorsement mode: the nonce is derived
	// from TxID, and the version is the newest active at TxTime.
	TxID      string
	TxTime    time.Time
	Plaintext []byte
	// Prepared, if set, is Context as envelope.PrepareContext prepared it
	// and seals in its place: the same envelope, without checking and
	// encoding the context again (a batch prepares a context its items
	// share once). Context is then not read. A nil Prepared means Context.
	Prepared *envelope.PreparedContext
}

// Encrypt seals in.Plaintext under the newest active version of in.Key and
// returns the envelope. The caller has already checked policy.
func (v *Vault) Encrypt(in EncryptInput) (*envelope.Envelope, error) {
	r, err := v.ring(in.Key)
	if err != nil {
		return nil, err
	}
	mode := in.Mode
	if mode == 0 {
		mode = envelope.ModeRandom
	}
	at := v.opts.clock()
	switch mode {
	case envelope.ModeRandom:
		if in.TxID != "" {
			return nil, fmt.Errorf("%w: tx_id is only for endorsement mode", ErrInvalidRequest)
		}
	case envelope.ModeEndorsement:
		if in.TxTime.IsZero() {
			return nil, fmt.Errorf("%w: endorsement mode needs the transaction timestamp", ErrInvalidRequest)
		}
		at = in.TxTime
	case envelope.ModeDeterministic:
		if in.TxID != "" {
			return nil, fmt.Errorf("%w: tx_id is only for endorsement mode", ErrInvalidRequest)
		}
	default:
		return nil, fmt.Errorf("%w: unknown mode %d", ErrInvalidRequest, mode)
	}

	r.mu.RLock()
	ver, err := r.encryptVersion(mode, at)
	if err != nil {
		r.mu.RUnlock()
		return nil, err
	}
	n := ver.count.Add(1)
	if n > v.opts.hardLimit {
		r.mu.RUnlock()
		return nil, &UsableError{Key: in.Key, Op: "encrypt", Reason: fmt.Sprintf("version %d reached its limit of %d encryptions; rotate the key", ver.n, v.opts.hardLimit)}
	}
	needLease := n > ver.reserved.Load()
	if !needLease {
		s, err := v.sealerOf(in.Key, ver)
		if err != nil {
			r.mu.RUnlock()
			return nil, err
		}
		env, err := v.seal(s, v.header(mode, in.Key, ver.n), &in)
		r.mu.RUnlock()
		v.maybeRotate(r, ver, n)
		return env, err
	}
	r.mu.RUnlock()
	// Extend the persisted count lease before sealing, so a crash can never
	// forget an encryption. This takes the ring's write lock.
	if err := v.extendLease(r, ver, n); err != nil {
		return nil, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if !ver.held {
		return nil, fmt.Errorf("%w: %q", ErrKeyDestroyed, in.Key)
	}
	s, err := v.sealerOf(in.Key, ver)
	if err != nil {
		return nil, err
	}
	env, err := v.seal(s, v.header(mode, in.Key, ver.n), &in)
	if err == nil {
		go v.maybeRotate(r, ver, n)
	}
	return env, err
}

// seal seals in under s with header h, with its prepared context if it has
// one. Seal is given no random source, so the cryptographic module draws
// every nonce.
func (v *Vault) seal(s *envelope.Sealer, h envelope.Header, in *EncryptInput) (*envelope.Envelope, error) {
	if in.Prepared != nil {
		return s.SealPrepared(h, v.opts.network, in.Prepared, in.TxID, in.Plaintext, nil)
	}
	return s.Seal(h, v.opts.network, in.Context, in.TxID, in.Plaintext, nil)
}

// header is the envelope header for sealing with version n of key: in random
// mode it names this vault's sealer id, whose subkey seals. Seal is given no
// random source, so the cryptographic module draws every nonce.
func (v *Vault) header(mode envelope.Mode, key string, n uint32) envelope.Header {
	h := envelope.Header{Mode: mode, Key: key, Version: n}
	if mode == envelope.ModeRandom {
		h.Sealer = v.sealerID
	}
	return h
}

// encryptVersion picks the version to encrypt with at time at. r.mu is held.
func (r *ring) encryptVersion(mode envelope.Mode, at time.Time) (*version, error) {
	name := r.rec.Name
	switch r.rec.State {
	case StateActive:
	case StateDestroyed:
		return nil, fmt.Errorf("%w: %q", ErrKeyDestroyed, name)
	default:
		return nil, &UsableError{Key: name, Op: "encrypt", Reason: "key is " + r.rec.State.String()}
	}
	if mode == envelope.ModeDeterministic && !r.rec.Deterministic {
		return nil, fmt.Errorf("%w: %q was not created deterministic", ErrModeNotAllowed, name)
	}
	floor := r.rec.MinDecrypt
	if mode == envelope.ModeEndorsement {
		floor = max(floor, r.floor) // endorse.go
	}
	for i := len(r.versions) - 1; i >= 0; i-- {
		ver := r.versions[i]
		if ver.n < floor {
			break
		}
		if ver.activateAt.After(at) && !(mode == envelope.ModeEndorsement && ver.n == r.floor) {
			continue
		}
		// The version to use is this one: never fall back to an older
		// one this node still holds (endorsers would disagree, and the
		// older one may be held by an org whose grant ended).
		if ver.held {
			return ver, nil
		}
		if r.rec.Versions[i].NotHeld {
			return nil, fmt.Errorf("%w: this node does not hold version %d of %q, the version to encrypt with (its organisation's grant on the key ended, or the version has not arrived yet); a node without the key cannot endorse writes under it: see the client-sealed pattern", ErrVersionNotHeld, ver.n, name)
		}
		// A destroyed version: an older one may serve.
	}
	return nil, &UsableError{Key: name, Op: "encrypt", Reason: "no version is active at " + at.UTC().Format(time.RFC3339Nano)}
}

func (v *Vault) extendLease(r *ring, ver *version, n uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n <= ver.reserved.Load() {
		return nil
	}
	if r.rec.State == StateDestroyed {
		return fmt.Errorf("%w: %q", ErrKeyDestroyed, r.rec.Name)
	}
	reserved := min(n-1+v.opts.lease, v.opts.hardLimit)
	rec := r.rec
	rec.Versions = append([]versionRecord(nil), r.rec.Versions...)
	rec.Versions[ver.n-1].Reserved = reserved
	if err := v.persist(rec, nil); err != nil {
		return err
	}
	r.rec = rec
	ver.reserved.Store(reserved)
	return nil
}

// maybeRotate rotates r when ver, its newest version, has reached the
// rotation threshold. At most one rotation runs per key at a time; a failed
// one is retried by the next encryption.
func (v *Vault) maybeRotate(r *ring, ver *version, n uint64) {
	if n < v.opts.rotateAt || !r.rotating.CompareAndSwap(false, true) {
		return
	}
	defer r.rotating.Store(false)
	r.mu.RLock()
	newest, name := int(ver.n) == len(r.versions), r.rec.Name
	r.mu.RUnlock()
	if !newest {
		return // a newer version exists already
	}
	if v.opts.rotateHook == nil {
		v.opts.logger.Warn("key version reached its rotation threshold; no rotate hook to rotate it", "key", name, "version", ver.n)
		return
	}
	v.opts.rotateHook(name)
}

// Decrypt opens a text envelope under ctx.
func (v *Vault) Decrypt(text string, ctx envelope.Context) ([]byte, error) {
	env, err := envelope.ParseText(text)
	if err != nil {
		return nil, err
	}
	return v.Open(env, ctx)
}

// Open opens a parsed envelope under ctx. The key must exist here and be
// active, deactivated or compromised, and the envelope's version must exist,
// not be destroyed, and be at or above the minimum decryption version.
func (v *Vault) Open(env *envelope.Envelope, ctx envelope.Context) ([]byte, error) {
	return v.open(env, ctx, nil)
}

// OpenPrepared is Open with a context prepared by envelope.PrepareContext
// (a nil pc is the empty context): the same checks, plaintext and errors,
// without checking and encoding the context again.
func (v *Vault) OpenPrepared(env *envelope.Envelope, pc *envelope.PreparedContext) ([]byte, error) {
	if pc == nil {
		pc, _ = envelope.PrepareContext(nil) // the empty context: no error
	}
	return v.open(env, nil, pc)
}

// open is Open with ctx, or with pc in its place if pc is not nil.
func (v *Vault) open(env *envelope.Envelope, ctx envelope.Context, pc *envelope.PreparedContext) ([]byte, error) {
	r, err := v.ring(env.Key)
	if err != nil {
		return nil, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	switch r.rec.State {
	case StateActive, StateDeactivated, StateCompromised:
	case StateDestroyed:
		return nil, fmt.Errorf("%w: %q", ErrKeyDestroyed, env.Key)
	default:
		return nil, &UsableError{Key: env.Key, Op: "decrypt", Reason: "key is " + r.rec.State.String()}
	}
	if env.Version < 1 || int(env.Version) > len(r.versions) {
		return nil, ErrDecrypt
	}
	if env.Version < r.rec.MinDecrypt {
		return nil, &UsableError{Key: env.Key, Op: "decrypt", Reason: fmt.Sprintf("version %d is below the minimum decryption version %d", env.Version, r.rec.MinDecrypt)}
	}
	ver := r.versions[env.Version-1]
	if !ver.held {
		if r.rec.Versions[env.Version-1].NotHeld {
			return nil, fmt.Errorf("%w: %q version %d", ErrVersionNotHeld, env.Key, env.Version)
		}
		return nil, fmt.Errorf("%w: %q version %d", ErrKeyDestroyed, env.Key, env.Version)
	}
	s, err := v.sealerOf(env.Key, ver)
	if err != nil {
		return nil, err
	}
	if pc != nil {
		return s.OpenPrepared(env, v.opts.network, pc)
	}
	return s.Open(env, v.opts.network, ctx)
}
