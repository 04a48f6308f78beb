package kv

import (
	"bytes"
	"errors"
	"testing"
)

// TestAuthenticated_VerifyRestLeavesCheckedPrefixesToScanChecked: what
// VerifyRest skips, ScanChecked catches, so a start-up that splits the
// check between them still refuses every damaged record, once.
func TestAuthenticated_VerifyRestLeavesCheckedPrefixesToScanChecked(t *testing.T) {
	checked := [][]byte{[]byte("p/"), []byte("m/")}
	setup := func(t *testing.T) (*Mem, *Authenticated, map[string][]byte) {
		t.Helper()
		raw, a := newAuth()
		for _, k := range []string{"p/a", "p/b", "p/c", "m/a", "m/b", "q/a"} {
			put(t, a, k, "1")
		}
		old := map[string][]byte{}
		_ = raw.Scan(nil, func(k, v []byte) error { old[string(k)] = bytes.Clone(v); return nil })
		put(t, a, "p/a", "2")
		return raw, a, old
	}
	flip := func(t *testing.T, raw *Mem, k string) {
		t.Helper()
		v, err := raw.Get([]byte(k))
		if err != nil {
			t.Fatal(err)
		}
		v = bytes.Clone(v)
		v[0] ^= 1
		put(t, raw, k, string(v))
	}
	scanAll := func(a *Authenticated) (int, error) {
		n := 0
		for _, c := range checked {
			if err := a.ScanChecked(c, func(_, _ []byte) error { n++; return nil }); err != nil {
				return n, err
			}
		}
		return n, nil
	}

	t.Run("ok/intact", func(t *testing.T) {
		_, a, _ := setup(t)
		if err := a.VerifyRest(checked); err != nil {
			t.Fatalf("VerifyRest = %v, want nil", err)
		}
		if n, err := scanAll(a); err != nil || n != 5 {
			t.Fatalf("ScanChecked = %d records, %v; want 5, nil", n, err)
		}
	})
	for _, tc := range []struct {
		name, want string
		damage     func(t *testing.T, raw *Mem, old map[string][]byte)
	}{
		{"fail/flipped-summarised", "p/b", func(t *testing.T, raw *Mem, _ map[string][]byte) { flip(t, raw, "p/b") }},
		{"fail/flipped-unsummarised", "m/b", func(t *testing.T, raw *Mem, _ map[string][]byte) { flip(t, raw, "m/b") }},
		{"fail/replayed", "p/", func(t *testing.T, raw *Mem, old map[string][]byte) { put(t, raw, "p/a", string(old["p/a"])) }},
		{"fail/removed", "p/", func(t *testing.T, raw *Mem, _ map[string][]byte) {
			_ = raw.Update(func(tx Txn) error { return tx.Delete([]byte("p/c")) })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, a, old := setup(t)
			tc.damage(t, raw, old)
			// The damage is under a checked prefix: VerifyRest leaves it
			// to ScanChecked, and Verify, which checks everything, sees it.
			if err := a.VerifyRest(checked); err != nil {
				t.Fatalf("VerifyRest = %v, want nil (the damage is under a checked prefix)", err)
			}
			var de *DamageError
			if err := a.Verify(); !errors.As(err, &de) || de.Key != tc.want {
				t.Errorf("Verify = %v, want a *DamageError naming %q", err, tc.want)
			}
			if _, err := scanAll(a); !errors.As(err, &de) || de.Key != tc.want || !errors.Is(err, ErrTampered) {
				t.Errorf("ScanChecked = %v, want a *DamageError naming %q", err, tc.want)
			}
		})
	}
	t.Run("fail/flipped-outside-checked", func(t *testing.T) {
		raw, a, _ := setup(t)
		flip(t, raw, "q/a")
		var de *DamageError
		if err := a.VerifyRest(checked); !errors.As(err, &de) || de.Key != "q/a" {
			t.Errorf("VerifyRest = %v, want a *DamageError naming q/a", err)
		}
	})
	t.Run("fail/damage-wins-over-fn-error", func(t *testing.T) {
		raw, a, _ := setup(t)
		flip(t, raw, "p/c")
		errFn := errors.New("fn failed")
		calls := 0
		err := a.ScanChecked([]byte("p/"), func(_, _ []byte) error { calls++; return errFn })
		var de *DamageError
		if !errors.As(err, &de) || de.Key != "p/c" {
			t.Errorf("ScanChecked = %v, want a *DamageError naming p/c, not fn's error", err)
		}
		if calls != 1 {
			t.Errorf("fn called %d times, want 1 (not again after its error)", calls)
		}
	})
	t.Run("ok/fn-error-returned", func(t *testing.T) {
		_, a, _ := setup(t)
		errFn := errors.New("fn failed")
		if err := a.ScanChecked([]byte("p/"), func(_, _ []byte) error { return errFn }); !errors.Is(err, errFn) {
			t.Errorf("ScanChecked = %v, want %v", err, errFn)
		}
	})
	t.Run("fail/overlapping-checked-prefix", func(t *testing.T) {
		_, a, _ := setup(t)
		for _, c := range []string{"p/a", "", "p"} {
			if err := a.VerifyRest([][]byte{[]byte(c)}); err == nil {
				t.Errorf("VerifyRest(%q) = nil, want it refused", c)
			}
		}
	})
}
