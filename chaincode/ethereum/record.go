package ethereum

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/keymesh/keymesh/node/apiv1"
	"github.com/keymesh/keymesh/node/client"
)

// RecordVersion is the version of the record digest's encoding.
const RecordVersion = 1

// ErrDigestMismatch reports an off-chain record that is not the one whose
// digest was committed on-chain. Nothing was decrypted.
var ErrDigestMismatch = errors.New("ethereum: record does not match its on-chain digest")

// Record is a record kept off-chain (a database, IPFS) whose fields are
// envelopes; its Digest is what the contract stores on-chain. It marshals
// to JSON as it is.
type Record struct {
	Version  int               `json:"version"`
	ChainID  string            `json:"chain_id"`
	Contract string            `json:"contract"`
	ID       string            `json:"id"`
	Fields   map[string]string `json:"fields"` // field name → envelope text form
}

// Digest returns the SHA-256 of the record's canonical encoding:
//
//	"keymesh-record-v1\n" chain_id "\n" contract "\n" id "\n"
//	then, for each field in byte order of its name: name "\n" envelope "\n"
//
// Names, id and envelopes hold no line break (SealRecord and OpenRecord
// check), so the encoding has one reading.
func (r *Record) Digest() ([32]byte, error) {
	if err := r.check(); err != nil {
		return [32]byte{}, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "keymesh-record-v%d\n%s\n%s\n%s\n", r.Version, r.ChainID, r.Contract, r.ID)
	names := make([]string, 0, len(r.Fields))
	for n := range r.Fields {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&b, "%s\n%s\n", n, r.Fields[n])
	}
	return sha256.Sum256(b.Bytes()), nil
}

func (r *Record) check() error {
	if r.Version != RecordVersion {
		return fmt.Errorf("ethereum: record version %d, want %d", r.Version, RecordVersion)
	}
	for what, s := range map[string]string{"chain id": r.ChainID, "contract": r.Contract, "id": r.ID} {
		if s == "" || strings.ContainsAny(s, "\r\n") {
			return fmt.Errorf("ethereum: record %s is empty or holds a line break", what)
		}
	}
	for n, v := range r.Fields {
		if n == "" || strings.ContainsAny(n, "\r\n") || strings.ContainsAny(v, "\r\n") {
			return errors.New("ethereum: a record field name is empty, or a name or envelope holds a line break")
		}
	}
	return nil
}

// recordContext is a record field's AAD context: the contract's, plus the
// record id, so a field cannot move between records either.
func (c *Contract) recordContext(id, field string) map[string]string {
	m := c.Context(field)
	m["record"] = id
	return m
}

// SealRecord encrypts the fields of the record id (each under the key the
// field map gives its bare name) and returns the record to store off-chain
// and its digest to commit on-chain.
func (c *Contract) SealRecord(ctx context.Context, id string, fields map[string][]byte) (*Record, [32]byte, error) {
	r := &Record{Version: RecordVersion, ChainID: c.chainID.String(), Contract: strings.ToLower(c.address.Hex()), ID: id, Fields: map[string]string{}}
	for name := range fields {
		r.Fields[name] = "" // validated before any encryption
	}
	if err := r.check(); err != nil {
		return nil, [32]byte{}, err
	}
	for name, pt := range fields {
		key := c.fields[name]
		if key == "" {
			return nil, [32]byte{}, fmt.Errorf("ethereum: record field %q is not tagged", name)
		}
		env, err := c.seal(ctx, key, pt, c.recordContext(id, name))
		if err != nil {
			return nil, [32]byte{}, err
		}
		r.Fields[name] = env.Text()
	}
	d, err := r.Digest()
	if err != nil {
		return nil, [32]byte{}, err
	}
	return r, d, nil
}

// OpenRecord checks r against committed, the digest read from the chain,
// and that r belongs to this contract and chain, then decrypts its fields
// with d. It decrypts nothing from a record that does not match.
func (c *Contract) OpenRecord(ctx context.Context, d Decrypter, r *Record, committed [32]byte) (map[string][]byte, error) {
	got, err := r.Digest()
	if err != nil {
		return nil, err
	}
	if got != committed {
		return nil, ErrDigestMismatch
	}
	if r.ChainID != c.chainID.String() || r.Contract != strings.ToLower(c.address.Hex()) {
		return nil, fmt.Errorf("%w: record of chain %s, contract %s", ErrWrongContract, r.ChainID, r.Contract)
	}
	names := make([]string, 0, len(r.Fields))
	for n := range r.Fields {
		names = append(names, n)
	}
	slices.Sort(names)
	items := make([]apiv1.DecryptItem, len(names))
	for i, n := range names {
		items[i] = apiv1.DecryptItem{Ciphertext: r.Fields[n], Context: c.recordContext(r.ID, n)}
	}
	out := make(map[string][]byte, len(names))
	if len(items) == 0 {
		return out, nil
	}
	res, err := d.Decrypt(ctx, items)
	if err != nil {
		return nil, fmt.Errorf("ethereum: decrypting record %q: %w", r.ID, err)
	}
	if len(res) != len(items) {
		return nil, fmt.Errorf("ethereum: decrypting record %q: %d results for %d fields", r.ID, len(res), len(items))
	}
	for i, n := range names {
		if e := res[i].Error; e != nil {
			return nil, fmt.Errorf("ethereum: decrypting record %q field %q: %w", r.ID, n, &client.APIError{Code: e.Code, Message: e.Message})
		}
		out[n] = res[i].Plaintext
		if out[n] == nil {
			out[n] = []byte{}
		}
	}
	return out, nil
}
