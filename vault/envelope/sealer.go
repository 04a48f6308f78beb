package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"
)

const (
	aadDomain = "keymesh/v1 envelope"

	// HKDF-SHA256 info strings of the keys derived from a version key.
	prfInfo       = "keymesh/v1 nonce-prf"     // format 1 derived nonces
	subkeyInfo    = "keymesh/v1 random subkey" // format 2 random mode, per sealer
	sivIVInfo     = "keymesh/v2 siv iv"        // format 2 derived modes: IV PRF
	sivEncInfo    = "keymesh/v2 siv enc"       // format 2 derived modes: AES-CTR
	sivMACInfo    = "keymesh/v2 siv mac"       // format 2 derived modes: tag
	sivTagPrefix  = 0x04                       // leading byte of the tag input
	maxSubkeys    = 256                        // subkeys cached for Open
	prfTagEndorse = 0x02                       // leading byte of the IV PRF input, endorsement
	prfTagDeterm  = 0x03                       // leading byte of the IV PRF input, deterministic
)

var errDestroyed = fmt.Errorf("%w: sealer destroyed", ErrInvalidKey)

// subkeyIDs numbers the subkeys made in this process.
var subkeyIDs atomic.Uint64

// Sealer seals and opens envelopes under one key version. It is safe for
// concurrent use. The zero Sealer is not usable; create one with NewSealer.
type Sealer struct {
	mu sync.RWMutex
	// st holds the secrets behind a pointer so that printing a Sealer
	// shows an address, not key bytes. It is nil after Destroy.
	st *sealerState
}

type sealerState struct {
	key []byte // the version key: HKDF input of the random-mode subkeys

	// v1 opens format 1 envelopes: AES-256-GCM under the version key, with
	// the nonce read from the input (NewGCMWithRandomNonce's Open).
	v1     cipher.AEAD
	prfKey []byte // HKDF(key, prfInfo): format 1 derived nonces

	// The derived modes of format 2.
	sivIVKey  []byte // HMAC-SHA256 key of the synthetic IV
	sivMACKey []byte // HMAC-SHA256 key of the tag
	sivBlock  cipher.Block

	last    atomic.Pointer[subkey] // the subkey Seal used last
	subMu   sync.RWMutex
	subkeys map[string]*subkey // by HKDF info, for Open

	// checkedName is the last key name that passed CheckKeyName here: a
	// Sealer holds one version of one key, so Seal and Open see one name
	// and need not check it on every call.
	checkedName atomic.Pointer[string]

	contexts contextCache // the key set of recent contexts

	pool sync.Pool // of *scratch
}

// subkey is the random-mode key of one sealer of one key version.
type subkey struct {
	id   uint64 // unique in the process (subkeyIDs): names sk in caches without holding it
	info string
	aead cipher.AEAD // NewGCMWithRandomNonce: module-generated nonces
	key  []byte      // kept only to seal with a caller's nonce (tests)

	// aad is the additional data of the sealer's envelopes up to the
	// context: "keymesh/v1 envelope" || header || network id; aad0 is the
	// whole additional data with the empty context, aad || 0x0000.
	aad, aad0 []byte

	// What info is made of, so that the last subkey is recognised
	// without building info.
	nid     NetworkID
	name    string
	version uint32
	sealer  SealerID
}

// is reports whether sk is the subkey of h's sealer under nid.
func (sk *subkey) is(nid *NetworkID, h *Header) bool {
	return sk.version == h.Version && sk.sealer == h.Sealer && sk.name == h.Key && sk.nid == *nid
}

// scratch is the per-call working state, reused through sealerState.pool.
type scratch struct {
	iv   hash.Hash // HMAC-SHA256 keyed with sivIVKey
	mac  hash.Hash // HMAC-SHA256 keyed with sivMACKey
	prf  hash.Hash // HMAC-SHA256 keyed with prfKey (format 1)
	buf  []byte    // PRF input prefix and additional data
	ct   []byte    // nonce || ciphertext for Open
	info []byte    // subkey info
	sum  [sha256.Size]byte
	pre  [5]byte
}

const (
	scratchBufSize   = 1024
	maxPooledBufSize = 16 << 10
)

func hkdfKey(key []byte, info string) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, key, nil, info, 32)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	return k, nil
}

// NewSealer returns a Sealer for one key version of KeySize bytes. It keeps
// its own copy of key, which Destroy clears, so the caller may clear key.
// Every key the Sealer uses is the version key or derived from it with
// HKDF-SHA256 (see the package doc). A key of the wrong size returns an error
// wrapping ErrInvalidKey.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidKey, len(key), KeySize)
	}
	st := &sealerState{key: append([]byte(nil), key...), subkeys: map[string]*subkey{}}
	var err error
	if st.v1, err = randomNonceGCM(key); err != nil {
		return nil, err
	}
	if st.prfKey, err = hkdfKey(key, prfInfo); err != nil {
		return nil, err
	}
	if st.sivIVKey, err = hkdfKey(key, sivIVInfo); err != nil {
		return nil, err
	}
	if st.sivMACKey, err = hkdfKey(key, sivMACInfo); err != nil {
		return nil, err
	}
	encKey, err := hkdfKey(key, sivEncInfo)
	if err != nil {
		return nil, err
	}
	defer clear(encKey)
	if st.sivBlock, err = aes.NewCipher(encKey); err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	st.pool.New = func() any {
		// Called from get, under the Sealer's read lock, so the keys are
		// not being cleared.
		return &scratch{
			iv:  hmac.New(sha256.New, st.sivIVKey),
			mac: hmac.New(sha256.New, st.sivMACKey),
			prf: hmac.New(sha256.New, st.prfKey),
			buf: make([]byte, 0, scratchBufSize),
		}
	}
	return &Sealer{st: st}, nil
}

// randomNonceGCM returns AES-256-GCM under key with nonces generated by the
// cryptographic module: Seal prepends a fresh 12-byte nonce to its output,
// Open reads it from the front of its input. It is the only GCM that
// GODEBUG=fips140=only allows.
func randomNonceGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	return aead, nil
}

func (st *sealerState) get() *scratch { return st.pool.Get().(*scratch) }

func (st *sealerState) put(sc *scratch) {
	if cap(sc.buf) > maxPooledBufSize {
		sc.buf = make([]byte, 0, scratchBufSize)
	}
	if cap(sc.ct) > maxPooledBufSize {
		sc.ct = nil
	}
	st.pool.Put(sc)
}

// subkeyInfoOf appends to b the HKDF info of the random-mode subkey of h's
// sealer:
//
//	"keymesh/v1 random subkey" || network id (32) || uint8 len(key) || key ||
//	uint32 version || sealer id (8)
func subkeyInfoOf(b []byte, nid *NetworkID, h *Header) []byte {
	b = append(b, subkeyInfo...)
	b = append(b, nid[:]...)
	b = append(b, byte(len(h.Key)))
	b = append(b, h.Key...)
	b = binary.BigEndian.AppendUint32(b, h.Version)
	return append(b, h.Sealer[:]...)
}

// nameChecked reports whether name passed CheckKeyName in an earlier call.
// st may be nil.
func (st *sealerState) nameChecked(name string) bool {
	if st == nil {
		return false
	}
	p := st.checkedName.Load()
	return p != nil && *p == name
}

// setNameChecked records that name passed CheckKeyName.
func (st *sealerState) setNameChecked(name string) {
	p := new(string)
	*p = name
	st.checkedName.Store(p)
}

// subkey returns the random-mode subkey of h's sealer under nid, from the
// cache if it is there; h must be a valid random-mode header of format 2.
// forSeal marks the subkey Seal uses, which is looked up first.
func (st *sealerState) subkey(sc *scratch, nid *NetworkID, h *Header, forSeal bool) (*subkey, error) {
	if sk := st.last.Load(); sk != nil && sk.is(nid, h) {
		return sk, nil
	}
	sc.info = subkeyInfoOf(sc.info[:0], nid, h)
	info := sc.info
	st.subMu.RLock()
	sk := st.subkeys[string(info)]
	st.subMu.RUnlock()
	if sk == nil {
		k, err := hkdf.Key(sha256.New, st.key, nil, string(info), 32)
		if err != nil {
			return nil, fmt.Errorf("envelope: %w", err)
		}
		aead, err := randomNonceGCM(k)
		if err != nil {
			clear(k)
			return nil, err
		}
		aad0 := append(appendAADPrefix(make([]byte, 0, len(aadDomain)+h.len()+NetworkIDSize+2), h, nid), 0, 0)
		sk = &subkey{
			id: subkeyIDs.Add(1), info: string(info), aead: aead, key: k,
			aad: aad0[: len(aad0)-2 : len(aad0)-2], aad0: aad0,
			nid: *nid, name: h.Key, version: h.Version, sealer: h.Sealer,
		}
		st.subMu.Lock()
		if len(st.subkeys) >= maxSubkeys {
			// Bounded: envelopes naming many sealers cost a derivation
			// each, never unbounded memory. Evicted keys are left to the
			// garbage collector: a call in progress may still hold one.
			clear(st.subkeys)
		}
		st.subkeys[sk.info] = sk
		st.subMu.Unlock()
	}
	if forSeal {
		st.last.Store(sk)
	}
	return sk, nil
}

// layout writes to sc.buf the input of the mode's IV PRF up to the
// additional data included:
//
//	endorsement:   0x02 || uint32 len(txID) || txID || uint32 len(aad) || aad
//	deterministic: 0x03 || uint32 len(aad) || aad
//	random:        aad
//
// and returns it and the additional data within it. h must be valid; cc,
// which may be nil, is the Sealer's context cache. The error is ctx's, as
// Context.Validate reports it.
func (sc *scratch) layout(mode Mode, txID string, h *Header, nid *NetworkID, ctx Context, cc *contextCache) (prfInput, aad []byte, err error) {
	return sc.layoutWith(mode, txID, h, nid, ctxArg{c: ctx}, cc)
}

// layoutWith is layout for a Context or a PreparedContext; Seal and Open
// call it (layout, the Context form, serves the tests' reference checks).
func (sc *scratch) layoutWith(mode Mode, txID string, h *Header, nid *NetworkID, ca ctxArg, cc *contextCache) (prfInput, aad []byte, err error) {
	need := 1 + 4 + len(txID) + 4 + len(aadDomain) + h.len() + NetworkIDSize + 2 + ca.encodedLen()
	if cap(sc.buf) < need {
		sc.buf = make([]byte, 0, need)
	}
	b := sc.buf[:0]
	aadLenAt := -1
	switch mode {
	case ModeEndorsement:
		b = append(b, prfTagEndorse)
		b = binary.BigEndian.AppendUint32(b, uint32(len(txID)))
		b = append(b, txID...)
		aadLenAt, b = len(b), append(b, 0, 0, 0, 0)
	case ModeDeterministic:
		b = append(b, prfTagDeterm)
		aadLenAt, b = len(b), append(b, 0, 0, 0, 0)
	}
	start := len(b)
	b = appendAADPrefix(b, h, nid)
	if b, err = ca.appendTo(b, cc); err != nil {
		return nil, nil, err
	}
	if aadLenAt >= 0 {
		binary.BigEndian.PutUint32(b[aadLenAt:], uint32(len(b)-start))
	}
	sc.keep(b)
	return b, b[start:], nil
}

// keep keeps b, built from sc.buf[:0], as sc.buf if it grew past it. (An
// unconditional store would be a pointer write, with a GC write barrier
// while the collector runs.)
func (sc *scratch) keep(b []byte) {
	if cap(b) != cap(sc.buf) {
		sc.buf = b[:0]
	}
}

// appendAADPrefix appends the additional data up to the context:
// "keymesh/v1 envelope" || header || network id.
func appendAADPrefix(b []byte, h *Header, nid *NetworkID) []byte {
	b = append(b, aadDomain...)
	b = h.appendTo(b)
	return append(b, nid[:]...)
}

// randomAAD writes to sc.buf the additional data of a random-mode envelope
// of format 2 sealed under sk, and returns it; the error is the context's.
func (sc *scratch) randomAAD(sk *subkey, ca ctxArg, cc *contextCache) ([]byte, error) {
	b, err := ca.appendTo(append(sc.buf[:0], sk.aad...), cc)
	if err != nil {
		return nil, err
	}
	sc.keep(b)
	return b, nil
}

// hmac2 returns HMAC(m, a || b) in sc.sum.
func (sc *scratch) hmac2(m hash.Hash, a, b []byte) []byte {
	m.Reset()
	m.Write(a)
	m.Write(b)
	return m.Sum(sc.sum[:0])
}

// sivTag returns the first TagSize bytes of
// HMAC-SHA256(sivMACKey, 0x04 || uint32 len(aad) || aad || SIV || ciphertext).
func (sc *scratch) sivTag(aad, siv, ct []byte) []byte {
	sc.pre[0] = sivTagPrefix
	binary.BigEndian.PutUint32(sc.pre[1:], uint32(len(aad)))
	sc.mac.Reset()
	sc.mac.Write(sc.pre[:])
	sc.mac.Write(aad)
	sc.mac.Write(siv)
	sc.mac.Write(ct)
	return sc.mac.Sum(sc.sum[:0])[:TagSize]
}

// Seal encrypts plaintext under the Sealer's key version and returns the
// envelope, of format 2, with additional data binding h, nid and ctx.
// h.Format must be 0 or FormatVersion. h.Mode selects the construction:
//
//   - ModeRandom seals with AES-256-GCM under the subkey of h.Sealer. With
//     a nil rand the cryptographic module generates the nonce, the only way
//     GODEBUG=fips140=only allows; a non-nil rand supplies the nonce
//     instead (known-answer tests), which FIPS 140-only mode refuses.
//   - ModeEndorsement derives a synthetic IV from txID, the additional data
//     and the plaintext; txID is required, 1..MaxTxIDLen bytes;
//   - ModeDeterministic derives it from the additional data and the
//     plaintext.
//
// ModeRandom and ModeDeterministic take no txID: a non-empty one is an error
// rather than silently ignored. rand is used only by ModeRandom. h.Sealer
// must be zero in the derived modes.
//
// Errors wrap ErrMalformed (invalid mode or version 0), ErrFormat,
// ErrInvalidKeyName, ErrTooLarge, ErrInvalidContext, ErrInvalidTxID or
// ErrInvalidKey (after Destroy), or report a failure of rand or of the
// cryptographic module.
func (s *Sealer) Seal(h Header, nid NetworkID, ctx Context, txID string, plaintext []byte, rand io.Reader) (*Envelope, error) {
	// One defer and one return, so that the defer is open-coded.
	s.mu.RLock()
	defer s.mu.RUnlock()
	return seal(s.st, &h, &nid, ctxArg{c: ctx}, txID, plaintext, rand, nil)
}

// seal is Seal under the Sealer's read lock; st is nil after Destroy. With
// a nil dst it returns a new Envelope, otherwise dst.
func seal(st *sealerState, h *Header, nid *NetworkID, ca ctxArg, txID string, plaintext []byte, rand io.Reader, dst *Envelope) (*Envelope, error) {
	if h.Format != 0 && h.Format != FormatVersion {
		return nil, fmt.Errorf("%w: Seal writes format %d, not %d", ErrFormat, FormatVersion, h.Format)
	}
	h.Format = FormatVersion
	named := st.nameChecked(h.Key)
	if err := h.check(named); err != nil {
		return nil, err
	}
	if len(plaintext) > MaxPlaintextSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, len(plaintext), MaxPlaintextSize)
	}
	// An invalid context is reported first, then the transaction id, then
	// a destroyed Sealer.
	if err := checkTxID(h.Mode, txID); err != nil || st == nil {
		if cerr := ca.validate(); cerr != nil {
			return nil, cerr
		}
		if err != nil {
			return nil, err
		}
		return nil, errDestroyed
	}
	if !named {
		st.setNameChecked(h.Key)
	}
	if h.Mode == ModeRandom && rand == nil && (ca.p != nil || len(ca.c) == 0) {
		// A prepared or empty context under the subkey Seal used last:
		// the additional data is kept with the context or the subkey,
		// no scratch needed.
		if sk := st.last.Load(); sk != nil && sk.is(nid, h) {
			aad := sk.aad0
			if ca.p != nil {
				aad = ca.p.randomAAD(sk)
			}
			return sealGCM(sk, h, aad, plaintext, nil, dst)
		}
	}
	sc := st.get()
	e, err := st.seal(sc, h, nid, ca, txID, plaintext, rand, dst)
	st.put(sc)
	return e, err
}

func checkTxID(mode Mode, txID string) error {
	switch {
	case mode == ModeEndorsement && (len(txID) == 0 || len(txID) > MaxTxIDLen):
		return fmt.Errorf("%w: endorsement mode needs 1 to %d bytes, got %d", ErrInvalidTxID, MaxTxIDLen, len(txID))
	case mode != ModeEndorsement && txID != "":
		return fmt.Errorf("%w: %v mode takes none", ErrInvalidTxID, mode)
	}
	return nil
}

func (st *sealerState) seal(sc *scratch, h *Header, nid *NetworkID, ca ctxArg, txID string, plaintext []byte, rand io.Reader, dst *Envelope) (*Envelope, error) {
	if h.Mode == ModeRandom {
		sk, err := st.subkey(sc, nid, h, true)
		if err != nil {
			return nil, err
		}
		aad, err := sc.randomAAD(sk, ca, &st.contexts)
		if err != nil {
			return nil, err
		}
		return sealGCM(sk, h, aad, plaintext, rand, dst)
	}
	// Derived modes: SIV = HMAC(ivKey, prfInput || plaintext)[:16],
	// C = AES-256-CTR(encKey, SIV, plaintext), tag over aad || SIV || C.
	prfInput, aad, err := sc.layoutWith(h.Mode, txID, h, nid, ca, &st.contexts)
	if err != nil {
		return nil, err
	}
	var e *Envelope
	ct := outBuffer(dst, len(plaintext)+TagSize, plaintext)
	if ct == nil {
		e, ct = newEnvelope(h, len(plaintext)+TagSize)
	} else {
		e = dst
		setHeader(e, h)
		e.Nonce = [NonceSize]byte{}
	}
	copy(e.SIV[:], sc.hmac2(sc.iv, prfInput, plaintext))
	ct = ct[:len(plaintext)]
	cipher.NewCTR(st.sivBlock, e.SIV[:]).XORKeyStream(ct, plaintext)
	ct = append(ct, sc.sivTag(aad, e.SIV[:], ct)...)
	if e == dst {
		e.Ciphertext = ct
	} else {
		e.Ciphertext = ct[:len(ct):len(ct)]
	}
	return e, nil
}

// sealGCM seals plaintext with AES-256-GCM under sk with additional data
// aad, the nonce from the module (or from rand, known-answer tests only),
// into dst if it is not nil, or into a new Envelope.
func sealGCM(sk *subkey, h *Header, aad, plaintext []byte, rand io.Reader, dst *Envelope) (*Envelope, error) {
	// out = nonce || ciphertext || tag.
	out := outBuffer(dst, NonceSize+len(plaintext)+TagSize, plaintext)
	var e *Envelope
	if out == nil {
		e, out = newEnvelope(h, NonceSize+len(plaintext)+TagSize)
	}
	if rand == nil {
		out = sk.aead.Seal(out, nil, plaintext, aad)
	} else {
		var err error
		if out, err = sealWithNonce(out, sk.key, rand, plaintext, aad); err != nil {
			return nil, err
		}
	}
	if e != nil {
		e.Nonce = [NonceSize]byte(out)
		e.Ciphertext = out[NonceSize:len(out):len(out)]
		return e, nil
	}
	// In the caller's buffer: move the ciphertext down over the nonce, so
	// that the buffer keeps its capacity for the next call.
	setHeader(dst, h)
	dst.Nonce = [NonceSize]byte(out)
	dst.SIV = [SIVSize]byte{}
	dst.Ciphertext = out[:copy(out, out[NonceSize:])]
	return dst, nil
}

// outBuffer returns dst's ciphertext storage, emptied, if dst is not nil
// and it holds n bytes without overlapping plaintext; otherwise, if dst is
// not nil, a new buffer of capacity n; nil if dst is nil.
func outBuffer(dst *Envelope, n int, plaintext []byte) []byte {
	if dst == nil {
		return nil
	}
	if b := dst.Ciphertext[:0]; cap(b) >= n && !overlaps(b[:n], plaintext) {
		return b
	}
	return make([]byte, 0, n)
}

// overlaps reports whether a and b share memory. (The AEAD refuses an
// output that overlaps its input other than exactly.)
func overlaps(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	pa, pb := uintptr(unsafe.Pointer(unsafe.SliceData(a))), uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return pa < pb+uintptr(len(b)) && pb < pa+uintptr(len(a))
}

// setHeader sets e.Header to *h field by field (see newEnvelope).
func setHeader(e *Envelope, h *Header) {
	e.Mode, e.Key, e.Version, e.Format, e.Sealer = h.Mode, h.Key, h.Version, h.Format, h.Sealer
}

// inlinePlaintext is the largest plaintext whose envelope Seal allocates in
// one piece with its ciphertext: most fields are small, and one allocation
// instead of two is a good part of what a 64-byte seal costs.
const inlinePlaintext = 64

type inlineEnvelope struct {
	Envelope
	buf [NonceSize + inlinePlaintext + TagSize]byte
}

// newEnvelope returns an Envelope with header h and an empty buffer of
// capacity n for its nonce and ciphertext, in one allocation if n is small.
func newEnvelope(h *Header, n int) (*Envelope, []byte) {
	if n <= len(inlineEnvelope{}.buf) {
		// Field by field: copying *h whole into the new object (or
		// through a helper returning a Header) takes a bulk write barrier.
		ie := &inlineEnvelope{Envelope: Envelope{Header: Header{Mode: h.Mode, Key: h.Key, Version: h.Version, Format: h.Format, Sealer: h.Sealer}}}
		return &ie.Envelope, ie.buf[:0:n]
	}
	return &Envelope{Header: Header{Mode: h.Mode, Key: h.Key, Version: h.Version, Format: h.Format, Sealer: h.Sealer}}, make([]byte, 0, n)
}

// sealWithNonce appends to dst nonce || ciphertext || tag, sealed with
// AES-256-GCM under key with a nonce read from rand: only for known-answer
// tests. FIPS 140-only mode refuses it.
func sealWithNonce(dst, key []byte, rand io.Reader, plaintext, aad []byte) ([]byte, error) {
	dst = slices.Grow(dst, NonceSize+len(plaintext)+TagSize)
	nonce := dst[len(dst) : len(dst)+NonceSize]
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return nil, fmt.Errorf("envelope: reading random nonce: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("envelope: sealing with a caller's nonce: %w", err)
	}
	return aead.Seal(dst[:len(dst)+NonceSize], nonce, plaintext, aad), nil
}

// Open authenticates and decrypts e with additional data binding its header,
// nid and ctx, and returns the plaintext (non-nil, possibly empty). It opens
// both formats. Every failure to open, including an invalid envelope,
// returns ErrDecrypt itself; only an invalid ctx (an error wrapping
// ErrInvalidContext) and use after Destroy (ErrInvalidKey) are reported
// otherwise.
//
// In deterministic mode Open also derives the IV again from the recovered
// plaintext and refuses an envelope whose IV differs, so that whoever holds
// the key cannot mint a second valid envelope of the same value. In
// endorsement mode it cannot (the transaction id is not in the envelope);
// in random mode there is nothing to check.
func (s *Sealer) Open(e *Envelope, nid NetworkID, ctx Context) ([]byte, error) {
	// One defer and one return, so that the defer is open-coded.
	s.mu.RLock()
	defer s.mu.RUnlock()
	return open(s.st, e, &nid, ctxArg{c: ctx})
}

// open is Open under the Sealer's read lock; st is nil after Destroy.
func open(st *sealerState, e *Envelope, nid *NetworkID, ca ctxArg) ([]byte, error) {
	// An invalid context is reported first, then a destroyed Sealer.
	if st == nil || !st.openable(e) {
		if err := ca.validate(); err != nil {
			return nil, err
		}
		if st == nil {
			return nil, errDestroyed
		}
		return nil, ErrDecrypt
	}
	sc := st.get()
	pt, err := st.open(sc, e, nid, ca)
	st.put(sc)
	return pt, err
}

// openable reports whether e is a valid envelope, which Open may try to open.
func (st *sealerState) openable(e *Envelope) bool {
	if e == nil {
		return false
	}
	named := st.nameChecked(e.Key)
	if e.Header.check(named) != nil || len(e.Ciphertext) < TagSize || len(e.Ciphertext) > maxCiphertextLen ||
		(!e.siv() && e.SIV != [SIVSize]byte{}) || (e.siv() && e.Nonce != [NonceSize]byte{}) {
		return false
	}
	if !named {
		st.setNameChecked(e.Key)
	}
	return true
}

func (st *sealerState) open(sc *scratch, e *Envelope, nid *NetworkID, ca ctxArg) ([]byte, error) {
	if !e.siv() && e.format() == FormatVersion {
		sk, err := st.subkey(sc, nid, &e.Header, false)
		if err != nil {
			// Only an invalid context is reported as such.
			if err := ca.validate(); err != nil {
				return nil, err
			}
			return nil, ErrDecrypt
		}
		aad, err := sc.randomAAD(sk, ca, &st.contexts)
		if err != nil {
			return nil, err
		}
		pt, err := openGCM(sc, sk.aead, e, aad)
		if err != nil {
			return nil, ErrDecrypt
		}
		return pt, nil
	}
	prfInput, aad, err := sc.layoutWith(e.Mode, "", &e.Header, nid, ca, &st.contexts)
	if err != nil {
		return nil, err
	}
	var pt []byte
	switch {
	case e.siv():
		pt, err = st.openSIV(sc, e, prfInput, aad)
	default:
		pt, err = openGCM(sc, st.v1, e, aad)
		if err == nil && e.Mode == ModeDeterministic {
			// Format 1 deterministic: the nonce must be the one Seal
			// derived, HMAC(prfKey, prfInput || plaintext)[:12].
			want := sc.hmac2(sc.prf, prfInput, pt)[:NonceSize]
			if subtle.ConstantTimeCompare(want, e.Nonce[:]) != 1 {
				clear(pt)
				err = ErrDecrypt
			}
		}
	}
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// openGCM opens e with a random-nonce GCM, whose Open reads the nonce from
// the front of its input: it is given nonce || ciphertext in sc.ct.
func openGCM(sc *scratch, aead cipher.AEAD, e *Envelope, aad []byte) ([]byte, error) {
	need := NonceSize + len(e.Ciphertext)
	if cap(sc.ct) < need {
		sc.ct = make([]byte, 0, need)
	}
	// Within sc.ct's capacity: nothing to store back (see keep).
	in := append(append(sc.ct[:0], e.Nonce[:]...), e.Ciphertext...)
	return aead.Open(make([]byte, 0, len(e.Ciphertext)-TagSize), nil, in, aad)
}

// openSIV checks the tag of a derived-mode envelope of format 2, decrypts
// it, and in deterministic mode checks that the SIV is the one Seal derives
// from the plaintext.
func (st *sealerState) openSIV(sc *scratch, e *Envelope, prfInput, aad []byte) ([]byte, error) {
	n := len(e.Ciphertext) - TagSize
	ct, tag := e.Ciphertext[:n], e.Ciphertext[n:]
	if !hmac.Equal(sc.sivTag(aad, e.SIV[:], ct), tag) {
		return nil, ErrDecrypt
	}
	pt := make([]byte, n)
	cipher.NewCTR(st.sivBlock, e.SIV[:]).XORKeyStream(pt, ct)
	if e.Mode == ModeDeterministic {
		if !hmac.Equal(sc.hmac2(sc.iv, prfInput, pt)[:SIVSize], e.SIV[:]) {
			clear(pt)
			return nil, ErrDecrypt
		}
	}
	return pt, nil
}

// Destroy makes the Sealer unusable: later calls to Seal and Open return an
// error wrapping ErrInvalidKey. It clears the version key and the derived
// keys it holds and drops the cipher states. This is best effort: the AES key
// schedules inside crypto/cipher and the keyed HMAC states cannot be cleared
// through the standard library and stay in memory until the garbage
// collector reclaims them. Destroy waits for calls in progress and may be
// called more than once.
func (s *Sealer) Destroy() {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	if st == nil {
		return
	}
	clear(st.key)
	clear(st.prfKey)
	clear(st.sivIVKey)
	clear(st.sivMACKey)
	st.subMu.Lock()
	for _, sk := range st.subkeys {
		clear(sk.key)
	}
	clear(st.subkeys)
	st.subMu.Unlock()
	if sk := st.last.Load(); sk != nil {
		clear(sk.key)
	}
	s.st = nil
}
