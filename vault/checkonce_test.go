package vault

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/keymesh/keymesh/kv"
)

// TestOpen_RecordsLoadSkipsAreStillRefused: Open's whole-store check
// (kv.Authenticated.VerifyRest) leaves the key records and the wrapped
// material to load's own scans (ScanChecked), which check each tag once.
// A record those scans do not use — material of a key that has no record,
// a record after the one load stopped at — is still checked, and a
// damaged one refuses the store with kv.ErrTampered naming it.
func TestOpen_RecordsLoadSkipsAreStillRefused(t *testing.T) {
	base := kv.NewMem()
	v := openVault(t, base, WithGrace(0))
	for _, name := range []string{"a/one", "b/two", "c/three"} {
		if _, err := create(v, name, CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	v.Close()
	recs := snapshot(t, base)
	if err := openErr(copyStore(t, recs, nil)); err != nil {
		t.Fatalf("Open of the intact store = %v, want nil", err)
	}
	// moved is a validly tagged value put under another key: its tag is
	// bound to the key it was written under.
	moved := func(from []byte) []byte { return bytes.Clone(recs[string(from)]) }
	for _, tc := range []struct {
		name, key string
		value     []byte
	}{
		{"fail/material-of-no-key", string(materialKey("z/none", 1)), moved(materialKey("a/one", 1))},
		{"fail/last-key-record-flipped", string(recordKey("c/three")), flipped(recs[string(recordKey("c/three"))], 3)},
		{"fail/last-material-flipped", string(materialKey("c/three", 1)), flipped(recs[string(materialKey("c/three", 1))], 0)},
		{"fail/key-record-moved", string(recordKey("b/zwei")), moved(recordKey("b/two"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := openErr(copyStore(t, recs, map[string][]byte{tc.key: tc.value}))
			var de *kv.DamageError
			if !errors.Is(err, kv.ErrTampered) || !errors.As(err, &de) {
				t.Fatalf("Open = %v, want a *kv.DamageError wrapping kv.ErrTampered", err)
			}
			if !strings.Contains(err.Error(), strconv.QuoteToASCII(tc.key)) {
				t.Errorf("Open = %v, want it to name %q", err, tc.key)
			}
		})
	}
	t.Run("fail/key-record-removed", func(t *testing.T) {
		s := copyStore(t, recs, nil)
		if err := s.Update(func(tx kv.Txn) error { return tx.Delete(recordKey("b/two")) }); err != nil {
			t.Fatal(err)
		}
		if err := openErr(s); !errors.Is(err, kv.ErrTampered) || !strings.Contains(err.Error(), `"vault/key/"`) {
			t.Fatalf("Open with a key record removed = %v, want kv.ErrTampered naming vault/key/", err)
		}
	})
}

func flipped(v []byte, i int) []byte {
	v = bytes.Clone(v)
	v[i] ^= 0x01
	return v
}

// copyStore is a store holding recs with the records of extra set on top.
func copyStore(t *testing.T, recs, extra map[string][]byte) kv.Store {
	t.Helper()
	s := kv.NewMem()
	for k, v := range recs {
		if e, ok := extra[k]; ok {
			v = e
		}
		setRaw(t, s, k, v)
	}
	for k, v := range extra {
		if _, ok := recs[k]; !ok {
			setRaw(t, s, k, v)
		}
	}
	return s
}
