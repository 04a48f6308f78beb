package vault

import (
	"fmt"
	"sync"
	"time"

	"github.com/keymesh/keymesh/vault/transport"
)

// The vault follows the network's agreement on its keys (mesh/member
// applies it); it decides nothing about lifecycles itself. These helpers
// play the member's part for the vault's own tests: they make and change
// keys through the follower operations only — SyncKey for metadata, and a
// version generated, wrapped for this vault and accepted against its
// commitment, as any node receives one.

// testSelf is the node key the test vaults' versions are wrapped for.
var testSelf = [32]byte{0x7e, 0x57}

var (
	kemMu   sync.Mutex
	kemPubs = map[*Vault][]byte{}
)

// kemPub returns the vault's KEM public key, sealing a new pair in it the
// first time.
func kemPub(v *Vault) ([]byte, error) {
	kemMu.Lock()
	defer kemMu.Unlock()
	if pub, ok := kemPubs[v]; ok {
		return pub, nil
	}
	priv, pub, err := transport.GenerateKey()
	if err != nil {
		return nil, err
	}
	defer clear(priv)
	if err := v.sealSecret(SecretKEMKey, priv); err != nil {
		return nil, err
	}
	kemPubs[v] = pub
	return pub, nil
}

// addVersion gives key name its version n, active at activateAt, as a
// member delivers it.
func addVersion(v *Vault, name string, n uint32, activateAt time.Time) error {
	pub, err := kemPub(v)
	if err != nil {
		return err
	}
	b := transport.Binding{Network: v.opts.network, Key: name, Version: n, Recipient: testSelf}
	check, blobs, err := v.GenerateVersion(b.Network, name, n, []Recipient{{KEMKey: pub, Binding: b}})
	if err != nil {
		return err
	}
	return v.AcceptVersion(b, activateAt, check, blobs[0])
}

// create makes key name with version 1, active now (or pre-active).
func create(v *Vault, name string, co CreateOptions) (KeyInfo, error) {
	if _, err := v.Get(name); err == nil {
		return KeyInfo{}, fmt.Errorf("%w: %q", ErrKeyExists, name)
	}
	state := StateActive
	if co.PreActive {
		state = StatePreActive
	}
	now := v.opts.clock().UTC()
	meta := KeyMeta{Name: name, Owner: v.opts.owner, Deterministic: co.Deterministic, Exportable: co.Exportable, State: state, Created: now}
	if err := v.SyncKey(meta); err != nil {
		return KeyInfo{}, err
	}
	if err := addVersion(v, name, 1, now); err != nil {
		return KeyInfo{}, err
	}
	return v.Get(name)
}

// rotate adds the next version of name, active after activateIn (nil: the
// vault's grace).
func rotate(v *Vault, name string, activateIn *time.Duration) (KeyInfo, error) {
	k, err := v.Get(name)
	if err != nil {
		return KeyInfo{}, err
	}
	d := v.opts.grace
	if activateIn != nil {
		d = *activateIn
	}
	if err := addVersion(v, name, k.LatestVersion+1, v.opts.clock().Add(d)); err != nil {
		return KeyInfo{}, err
	}
	return v.Get(name)
}

// setMeta changes name's state and minimum decryption version (0: kept).
func setMeta(v *Vault, name string, to State, minDecrypt uint32) (KeyInfo, error) {
	k, err := v.Get(name)
	if err != nil {
		return KeyInfo{}, err
	}
	meta := KeyMeta{Name: name, Owner: k.Owner, Deterministic: k.Deterministic, Exportable: k.Exportable,
		State: to, MinDecryptionVersion: minDecrypt, Created: k.Created}
	if err := v.SyncKey(meta); err != nil {
		return KeyInfo{}, err
	}
	return v.Get(name)
}

// rotateHook is the member's part in automatic rotation (mesh/member
// AutoRotate): it rotates *v at once, synchronously, so a test sees the
// new version as soon as the threshold is crossed.
func rotateHook(v **Vault) Option {
	return WithRotateHook(func(name string) { _, _ = rotate(*v, name, nil) })
}

// setState moves name to state to, refusing what the lifecycle forbids as
// the member does (CanTransition).
func setState(v *Vault, name string, to State) (KeyInfo, error) {
	k, err := v.Get(name)
	if err != nil {
		return KeyInfo{}, err
	}
	if k.State != to && !CanTransition(k.State, to) {
		return KeyInfo{}, fmt.Errorf("%w: %q is %s and cannot become %s", ErrInvalidTransition, name, k.State, to)
	}
	return setMeta(v, name, to, 0)
}

// setMinDecrypt refuses versions below n for decryption; n must name a
// version, as the member checks.
func setMinDecrypt(v *Vault, name string, n uint32) (KeyInfo, error) {
	k, err := v.Get(name)
	if err != nil {
		return KeyInfo{}, err
	}
	if n < 1 || n > k.LatestVersion {
		return KeyInfo{}, fmt.Errorf("%w: minimum decryption version %d: key %q has versions 1..%d", ErrInvalidRequest, n, name, k.LatestVersion)
	}
	return setMeta(v, name, k.State, n)
}
