package audit

import (
	"bytes"
	"errors"
	"testing"

	"github.com/keymesh/keymesh/internal/tamper"
	"github.com/keymesh/keymesh/kv"
)

// TestVerify_EveryFlippedByteIsReportedNotAnError flips every bit of
// sampled bytes (every byte under KEYMESH_EXHAUSTIVE=1; see
// internal/tamper) of every stored record of a small log, one at a time, and reopens the log on the
// damaged store: Open must not fail and Verify must report the damage as a
// *VerifyError (the API's "ok": false with the first bad entry), never
// another error (which the API answered with a 5xx) and never a panic.
func TestVerify_EveryFlippedByteIsReportedNotAnError(t *testing.T) {
	t.Parallel()
	base := kv.NewMem()
	l := openLog(t, base)
	appendN(t, l, 4)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	type rec struct{ k, v []byte }
	var recs []rec
	_ = base.Scan(nil, func(k, v []byte) error {
		recs = append(recs, rec{bytes.Clone(k), bytes.Clone(v)})
		return nil
	})
	trials := 0
	for _, r := range recs {
		for _, i := range tamper.Bytes(t, len(r.v)) {
			for bit := range 8 {
				store := kv.NewMem()
				for _, o := range recs {
					v := o.v
					if bytes.Equal(o.k, r.k) {
						v = bytes.Clone(o.v)
						v[i] ^= 1 << bit
					}
					_ = store.Update(func(tx kv.Txn) error { return tx.Set(o.k, v) })
				}
				trials++
				l, err := Open(store, WithClock(stepClock()), WithLogger(quiet))
				if err != nil {
					t.Fatalf("Open with bit %d of byte %d of %q flipped = %v; want the damage reported by Verify", bit, i, r.k, err)
				}
				_, err = l.Verify()
				var ve *VerifyError
				if err != nil && !errors.As(err, &ve) {
					t.Fatalf("Verify with bit %d of byte %d of %q flipped = %v, want a *VerifyError", bit, i, r.k, err)
				}
				l.Close()
			}
		}
	}
	if trials < 100 {
		t.Fatalf("only %d trials", trials)
	}
}

// TestVerify_StoreReadErrorIsReported: a store that fails while Verify
// reads it (badger reporting a damaged table) is reported as damage at the
// next entry, not as an error the API would answer with a 5xx.
func TestVerify_StoreReadErrorIsReported(t *testing.T) {
	t.Parallel()
	base := kv.NewMem()
	appendN(t, openLog(t, base), 3)
	l := openLog(t, &failingScan{Store: base, after: 2, err: errors.New("checksum mismatch in table 7")})
	_, err := l.Verify()
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Seq != 3 {
		t.Fatalf("Verify over a store failing after 2 entries = %v, want a *VerifyError at seq 3", err)
	}
}

type failingScan struct {
	kv.Store
	after int
	err   error
}

func (f *failingScan) Scan(prefix []byte, fn func(k, v []byte) error) error {
	n := 0
	return f.Store.Scan(prefix, func(k, v []byte) error {
		if n == f.after {
			return f.err
		}
		n++
		return fn(k, v)
	})
}
