package kv

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"github.com/keymesh/keymesh/internal/tamper"
)

type hmacTagger []byte

func (h hmacTagger) Tag(domain byte, key, value []byte) [TagSize]byte {
	m := hmac.New(sha256.New, h)
	m.Write([]byte{domain, byte(len(key))})
	m.Write(key)
	m.Write(value)
	var out [TagSize]byte
	m.Sum(out[:0])
	return out
}

func newAuth() (*Mem, *Authenticated) {
	m := NewMem()
	return m, NewAuthenticated(m, hmacTagger("a test key of sixteen+ bytes"), []string{"seal"}, []string{"p/"})
}

func put(t *testing.T, s Store, k, v string) {
	t.Helper()
	if err := s.Update(func(tx Txn) error { return tx.Set([]byte(k), []byte(v)) }); err != nil {
		t.Fatal(err)
	}
}

func TestAuthenticated_TagBindsValueToKey(t *testing.T) {
	raw, a := newAuth()
	put(t, a, "x/one", "secret-ish")
	put(t, a, "seal", "exempt")
	if v, err := a.Get([]byte("x/one")); err != nil || string(v) != "secret-ish" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if v, _ := raw.Get([]byte("seal")); string(v) != "exempt" {
		t.Errorf("exempt record stored as %q, want it untagged", v)
	}
	moved, _ := raw.Get([]byte("x/one"))
	put(t, raw, "x/two", string(moved))
	var de *DamageError
	if _, err := a.Get([]byte("x/two")); !errors.As(err, &de) || de.Key != "x/two" || !errors.Is(err, ErrTampered) {
		t.Errorf("Get of a value moved to another key = %v, want a *DamageError naming x/two", err)
	}
	if err := a.VerifyAll(); !errors.As(err, &de) || de.Key != "x/two" {
		t.Errorf("VerifyAll = %v, want the moved record named", err)
	}
	if err := a.Verify(); !errors.As(err, &de) || de.Key != "x/two" {
		t.Errorf("Verify = %v, want the moved record named", err)
	}
}

func TestAuthenticated_SummaryCatchesReplayRemovalAndAddition(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, raw *Mem, old map[string][]byte)
	}{
		{"fail/replay", func(t *testing.T, raw *Mem, old map[string][]byte) { put(t, raw, "p/a", string(old["p/a"])) }},
		{"fail/remove", func(t *testing.T, raw *Mem, _ map[string][]byte) {
			_ = raw.Update(func(tx Txn) error { return tx.Delete([]byte("p/b")) })
		}},
		{"fail/add-replayed-deleted", func(t *testing.T, raw *Mem, old map[string][]byte) { put(t, raw, "p/gone", string(old["p/gone"])) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, a := newAuth()
			put(t, a, "p/a", "1")
			put(t, a, "p/b", "1")
			put(t, a, "p/gone", "1")
			old := map[string][]byte{}
			_ = raw.Scan(nil, func(k, v []byte) error { old[string(k)] = bytes.Clone(v); return nil })
			put(t, a, "p/a", "2")
			if err := a.Update(func(tx Txn) error { return tx.Delete([]byte("p/gone")) }); err != nil {
				t.Fatal(err)
			}
			if err := a.VerifySummaries(); err != nil {
				t.Fatalf("VerifySummaries before the damage = %v", err)
			}
			if err := a.Verify(); err != nil {
				t.Fatalf("Verify before the damage = %v", err)
			}
			tc.damage(t, raw, old)
			var de *DamageError
			if err := a.VerifySummaries(); !errors.As(err, &de) || de.Key != "p/" {
				t.Errorf("VerifySummaries after %s = %v, want a *DamageError naming p/", tc.name, err)
			}
			// Records outside the summarised prefix do not count in it.
			put(t, a, "q/other", "1")
			if err := a.Verify(); !errors.As(err, &de) || de.Key != "p/" {
				t.Errorf("Verify after %s = %v, want a *DamageError naming p/", tc.name, err)
			}
		})
	}
}

func TestAuthenticated_MigrateTagsOnceAndKeepsTagged(t *testing.T) {
	raw, a := newAuth()
	put(t, raw, "p/a", "legacy")
	put(t, raw, "x/b", "legacy")
	put(t, a, "x/c", "new")
	if _, err := a.Get([]byte("p/a")); !errors.Is(err, ErrTampered) {
		t.Fatalf("Get of an untagged record = %v, want ErrTampered", err)
	}
	n, err := a.Migrate()
	if err != nil || n != 2 {
		t.Fatalf("Migrate = %d, %v; want 2 records tagged", n, err)
	}
	if err := errors.Join(a.VerifyAll(), a.VerifySummaries()); err != nil {
		t.Fatalf("after Migrate: %v", err)
	}
	if err := a.Verify(); err != nil {
		t.Fatalf("Verify after Migrate: %v", err)
	}
	if n, err := a.Migrate(); err != nil || n != 0 {
		t.Errorf("second Migrate = %d, %v; want 0", n, err)
	}
	for k, want := range map[string]string{"p/a": "legacy", "x/b": "legacy", "x/c": "new"} {
		if v, err := a.Get([]byte(k)); err != nil || string(v) != want {
			t.Errorf("Get(%s) after Migrate = %q, %v; want %q", k, v, err, want)
		}
	}
}

func TestAuthenticated_EraseRefusesSummarisedPrefix(t *testing.T) {
	_, a := newAuth()
	put(t, a, "p/a", "1")
	if err := a.Erase([]byte("p/")); err == nil {
		t.Error("Erase of a summarised prefix succeeded; it would bypass the summary")
	}
	if err := a.Erase([]byte("x/")); err != nil {
		t.Errorf("Erase(x/) = %v", err)
	}
}

func TestAuthenticated_DropPrefixRefusesSummarisedPrefix(t *testing.T) {
	_, a := newAuth()
	put(t, a, "p/a", "1")
	put(t, a, "x/b", "1")
	if !a.CanDrop() {
		t.Fatal("CanDrop() over kv.Mem = false")
	}
	for _, p := range []string{"p/", "p", "p/a", ""} {
		if err := a.DropPrefix([]byte(p)); err == nil {
			t.Errorf("DropPrefix(%q) overlapping a summarised prefix succeeded; it would bypass the summary", p)
		}
	}
	if err := a.DropPrefix([]byte("x/")); err != nil {
		t.Errorf("DropPrefix(x/) = %v", err)
	}
	if _, err := a.Get([]byte("x/b")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(x/b) after DropPrefix(x/) = %v, want %v", err, ErrNotFound)
	}
	if err := a.Verify(); err != nil {
		t.Errorf("Verify() after DropPrefix = %v", err)
	}
	b := NewAuthenticated(struct{ Store }{NewMem()}, a.tagger, nil, nil)
	if b.CanDrop() || b.DropPrefix([]byte("x/")) == nil {
		t.Error("over a store that cannot drop, CanDrop() is true or DropPrefix succeeds")
	}
}

// TestAuthenticated_BitFlipsAndCuts flips bits of a stored record and cuts
// it (every bit and length under KEYMESH_EXHAUSTIVE=1, else a sample
// covering the value's ends and the tag; see internal/tamper): each Get
// and Scan reports a *DamageError naming the record, never a value.
func TestAuthenticated_BitFlipsAndCuts(t *testing.T) {
	t.Parallel()
	raw, a := newAuth()
	for _, k := range []string{"x/one", "p/summarised"} {
		const value = "a value long enough to have a middle to sample from"
		put(t, a, k, value)
		stored, err := raw.Get([]byte(k))
		if err != nil {
			t.Fatal(err)
		}
		check := func(what string, damaged []byte) {
			t.Helper()
			put(t, raw, k, string(damaged))
			var de *DamageError
			if v, err := a.Get([]byte(k)); !errors.As(err, &de) || de.Key != k || !errors.Is(err, ErrTampered) || v != nil {
				t.Fatalf("%s %s: Get = %q, %v; want a *DamageError naming it", k, what, v, err)
			}
			if err := a.Scan([]byte(k), func(_, v []byte) error { return nil }); !errors.As(err, &de) || de.Key != k {
				t.Fatalf("%s %s: Scan = %v; want a *DamageError naming it", k, what, err)
			}
		}
		for _, i := range tamper.Bits(t, len(stored), len(stored)-TagSize) {
			check(fmt.Sprintf("bit %d flipped", i), tamper.Flip(stored, i))
		}
		for _, n := range tamper.Bytes(t, len(stored), len(stored)-TagSize) {
			check(fmt.Sprintf("cut to %d bytes", n), stored[:n])
		}
		put(t, raw, k, string(stored))
		if v, err := a.Get([]byte(k)); err != nil || string(v) != value {
			t.Fatalf("%s restored: Get = %q, %v", k, v, err)
		}
	}
}
