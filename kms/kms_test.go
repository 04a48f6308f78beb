package kms_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/kms"
	"github.com/keymesh/keymesh/kms/kmstest"
	"github.com/keymesh/keymesh/policy"
	"github.com/keymesh/keymesh/vault"
	"github.com/keymesh/keymesh/vault/envelope"
)

var (
	ctx   = context.Background()
	admin = kms.Caller{Principal: policy.Principal{Parties: []policy.Party{"token:admin"}}, Name: "token:admin"}
	app   = kms.Caller{Principal: policy.Principal{Parties: []policy.Party{"token:app"}}, Name: "token:app"}
	other = kms.Caller{Principal: policy.Principal{Parties: []policy.Party{"token:other"}}, Name: "token:other"}
)

// newCore is a network of one with key demo/k, which token:app may encrypt
// and decrypt.
func newCore(t testing.TB) *kmstest.Solo {
	t.Helper()
	s := kmstest.New(t, kmstest.Options{})
	if _, err := s.Core.CreateKey(ctx, admin, "demo/k", vault.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Core.Grant(ctx, admin, policy.Grant{Key: "demo/k", Party: "token:app", Ops: policy.OpsAll}); err != nil {
		t.Fatal(err)
	}
	return s
}

func lastEntries(t *testing.T, s *kmstest.Solo, n int) []audit.Entry {
	t.Helper()
	es, err := s.Audit.Tail(n)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestEncryptDecryptRoundTripAudited(t *testing.T) {
	s := newCore(t)
	items := []kms.EncryptItem{{Plaintext: []byte("4200"), Context: envelope.Context{"f": "price"}}, {Plaintext: []byte{}, Context: envelope.Context{"f": "none"}}}
	sealed, err := s.Core.Encrypt(ctx, app, "demo/k", envelope.ModeRandom, items)
	if err != nil {
		t.Fatal(err)
	}
	in := make([]kms.DecryptItem, len(sealed))
	for i, r := range sealed {
		if r.Err != nil {
			t.Fatalf("item %d: %v", i, r.Err)
		}
		in[i] = kms.DecryptItem{Ciphertext: r.Envelope.Text(), Context: items[i].Context}
	}
	opened, err := s.Core.Decrypt(ctx, app, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range opened {
		if o.Err != nil || string(o.Plaintext) != string(items[i].Plaintext) || o.Plaintext == nil || o.Key != "demo/k" || o.Version != 1 {
			t.Errorf("item %d = %+v, want %q under demo/k v1", i, o, items[i].Plaintext)
		}
	}
	es := lastEntries(t, s, 2)
	if es[0].Action != "encrypt" || es[0].Outcome != audit.OutcomeAllow || es[0].Count != 2 || es[0].Principal != "token:app" {
		t.Errorf("encrypt audit entry = %+v", es[0])
	}
	if es[1].Action != "decrypt" || es[1].Outcome != audit.OutcomeAllow || es[1].Count != 2 || es[1].Key != "demo/k" {
		t.Errorf("decrypt audit entry = %+v", es[1])
	}
}

// TestNothingLeavesWithoutAudit: when the audit log cannot be written, no
// envelope and no plaintext is returned.
func TestNothingLeavesWithoutAudit(t *testing.T) {
	s := newCore(t)
	sealed, err := s.Core.Encrypt(ctx, app, "demo/k", envelope.ModeRandom, []kms.EncryptItem{{Plaintext: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	text := sealed[0].Envelope.Text()
	s.AuditFS.SetWriteFailure(errors.New("disk on fire"), 0)
	if out, err := s.Core.Encrypt(ctx, app, "demo/k", envelope.ModeRandom, []kms.EncryptItem{{Plaintext: []byte("y")}}); err == nil || out != nil {
		t.Errorf("Encrypt with a failing audit log = %v, %v; want an error and no envelope", out, err)
	}
	if out, err := s.Core.Decrypt(ctx, app, []kms.DecryptItem{{Ciphertext: text}}, nil); err == nil || out != nil {
		t.Errorf("Decrypt with a failing audit log = %v, %v; want an error and no plaintext", out, err)
	}
	if _, err := s.Core.CreateKey(ctx, admin, "demo/new", vault.CreateOptions{}); !errors.Is(err, audit.ErrUnavailable) {
		t.Errorf("CreateKey with a failing audit log = %v, want audit.ErrUnavailable", err)
	}
}

func TestDenialsAuditedAndTyped(t *testing.T) {
	s := newCore(t)
	_, err := s.Core.Encrypt(ctx, other, "demo/k", envelope.ModeRandom, []kms.EncryptItem{{Plaintext: []byte("x")}})
	if !errors.Is(err, policy.ErrNotGranted) {
		t.Errorf("Encrypt by an ungranted caller = %v, want ErrNotGranted", err)
	}
	if e := lastEntries(t, s, 1)[0]; e.Outcome != audit.OutcomeDeny || e.Principal != "token:other" {
		t.Errorf("denial audit entry = %+v", e)
	}
	_, err = s.Core.Encrypt(ctx, app, "demo/k", envelope.ModeEndorsement, []kms.EncryptItem{{Plaintext: []byte("x")}})
	if !errors.Is(err, kms.ErrEndorsementRefused) {
		t.Errorf("endorsement mode without a verified transaction = %v, want ErrEndorsementRefused", err)
	}
	if e := lastEntries(t, s, 1)[0]; e.Outcome != audit.OutcomeDeny {
		t.Errorf("endorsement refusal audit entry = %+v", e)
	}
}

// TestBatchPerItem: in a batch, each item has its own result; malformed
// envelopes are audited apart from the keys' decisions.
func TestBatchPerItem(t *testing.T) {
	s := newCore(t)
	if _, err := s.Core.CreateKey(ctx, admin, "demo/closed", vault.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sealed, _ := s.Core.Encrypt(ctx, app, "demo/k", envelope.ModeRandom, []kms.EncryptItem{{Plaintext: []byte("a"), Context: envelope.Context{"f": "1"}}})
	good := sealed[0].Envelope.Text()
	closedEnv, err := s.Vault.Encrypt(vault.EncryptInput{Key: "demo/closed", Plaintext: []byte("c")})
	if err != nil {
		t.Fatal(err)
	}
	in := []kms.DecryptItem{
		{Ciphertext: good, Context: envelope.Context{"f": "1"}},
		{Ciphertext: good, Context: envelope.Context{"f": "2"}}, // wrong context
		{Ciphertext: "km1:not-an-envelope"},
		{Ciphertext: closedEnv.Text()}, // no grant
	}
	opened, err := s.Core.Decrypt(ctx, app, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	wants := []error{nil, envelope.ErrDecrypt, envelope.ErrMalformed, policy.ErrNotGranted}
	for i, want := range wants {
		if got := opened[i].Err; want == nil && got != nil || want != nil && !errors.Is(got, want) {
			t.Errorf("item %d: error %v, want %v", i, got, want)
		}
		if want != nil && opened[i].Plaintext != nil {
			t.Errorf("item %d failed but carries a plaintext", i)
		}
	}
	es := lastEntries(t, s, 3)
	if es[0].Key != "demo/k" || es[0].Outcome != audit.OutcomeAllow || es[0].Count != 2 ||
		es[1].Key != "demo/closed" || es[1].Outcome != audit.OutcomeDeny ||
		es[2].Reason != "malformed envelope" || es[2].Count != 1 {
		t.Errorf("audit entries of the batch = %+v", es)
	}
}

// TestPreDecisions: decisions made before (a wallet's nonce is spent only
// when something can be served) are the ones Decrypt applies.
func TestPreDecisions(t *testing.T) {
	s := newCore(t)
	sealed, _ := s.Core.Encrypt(ctx, app, "demo/k", envelope.ModeRandom, []kms.EncryptItem{{Plaintext: []byte("a")}})
	in := []kms.DecryptItem{{Ciphertext: sealed[0].Envelope.Text()}, {Ciphertext: "garbage"}}
	ds := s.Core.DecideDecrypt(app, in)
	if len(ds) != 1 || !ds.Allows() {
		t.Fatalf("DecideDecrypt = %+v, want demo/k allowed", ds)
	}
	if s.Core.DecideDecrypt(other, in).Allows() {
		t.Error("DecideDecrypt allows an ungranted caller")
	}
	// Revoked after deciding: the decision made stands for this request.
	if _, _, err := s.Core.Revoke(ctx, admin, "demo/k", "token:app"); err != nil {
		t.Fatal(err)
	}
	opened, err := s.Core.Decrypt(ctx, app, in[:1], ds)
	if err != nil || opened[0].Err != nil || string(opened[0].Plaintext) != "a" {
		t.Errorf("Decrypt with the decision made before = %+v, %v", opened, err)
	}
	opened, _ = s.Core.Decrypt(ctx, app, in[:1], nil)
	if !errors.Is(opened[0].Err, policy.ErrNotGranted) {
		t.Errorf("Decrypt deciding now = %v, want ErrNotGranted", opened[0].Err)
	}
}

// TestDestroyedKeySaysSo: a destroyed key keeps no grants, but its
// envelopes' holders are told it is destroyed, not that they lack a grant.
func TestDestroyedKeySaysSo(t *testing.T) {
	s := newCore(t)
	sealed, _ := s.Core.Encrypt(ctx, app, "demo/k", envelope.ModeRandom, []kms.EncryptItem{{Plaintext: []byte("a")}})
	if _, err := s.Core.DestroyKey(ctx, admin, "demo/k"); err != nil {
		t.Fatal(err)
	}
	opened, err := s.Core.Decrypt(ctx, app, []kms.DecryptItem{{Ciphertext: sealed[0].Envelope.Text()}}, nil)
	if err != nil || !errors.Is(opened[0].Err, vault.ErrKeyDestroyed) {
		t.Errorf("Decrypt after destroy = %v, %v; want ErrKeyDestroyed", opened[0].Err, err)
	}
	if _, err := s.Core.Encrypt(ctx, app, "demo/k", envelope.ModeRandom, []kms.EncryptItem{{Plaintext: []byte("b")}}); !errors.Is(err, vault.ErrKeyDestroyed) {
		t.Errorf("Encrypt after destroy = %v, want ErrKeyDestroyed", err)
	}
}

// TestAdminChangesAudited: each change, and each refusal, has its entry
// with the reason the core was configured to give.
func TestAdminChangesAudited(t *testing.T) {
	s := kmstest.New(t, kmstest.Options{Reason: func(err error) string {
		if errors.Is(err, vault.ErrKeyExists) {
			return "conflict"
		}
		return err.Error()
	}})
	c := s.Core
	if _, err := c.CreateKey(ctx, admin, "demo/k", vault.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateKey(ctx, admin, "demo/k", vault.CreateOptions{}); !errors.Is(err, vault.ErrKeyExists) {
		t.Fatalf("second CreateKey = %v, want ErrKeyExists", err)
	}
	d := time.Duration(0)
	if k, err := c.RotateKey(ctx, admin, "demo/k", &d); err != nil || k.LatestVersion != 2 {
		t.Fatalf("RotateKey = %+v, %v", k, err)
	}
	if k, err := c.SetMinDecryptionVersion(ctx, admin, "demo/k", 2); err != nil || k.MinDecryptionVersion != 2 {
		t.Fatalf("SetMinDecryptionVersion = %+v, %v", k, err)
	}
	if _, err := c.SetKeyState(ctx, admin, "demo/k", vault.StateDestroyed); !errors.Is(err, vault.ErrInvalidRequest) {
		t.Errorf("SetKeyState(destroyed) = %v, want ErrInvalidRequest (destroy is its own operation)", err)
	}
	if k, err := c.SetKeyState(ctx, admin, "demo/k", vault.StateDeactivated); err != nil || k.State != vault.StateDeactivated {
		t.Fatalf("SetKeyState = %+v, %v", k, err)
	}
	st, err := c.Grant(ctx, admin, policy.Grant{Key: "demo/k", Party: "token:app", Ops: policy.OpsDecrypt, NotBefore: time.Now().Add(time.Hour)})
	if err != nil || st.InForce || st.Reason != policy.StatusNotYetValid || st.Grant.Issuer != "token:admin" {
		t.Errorf("Grant not yet valid = %+v, %v; want not in force, %q, issued by the caller", st, err, policy.StatusNotYetValid)
	}
	if _, err := c.Grant(ctx, admin, policy.Grant{Key: "demo/none", Party: "token:app", Ops: policy.OpsDecrypt}); !errors.Is(err, vault.ErrKeyNotFound) {
		t.Errorf("Grant on a missing key = %v, want ErrKeyNotFound", err)
	}
	if sts, _, err := c.GrantsPage("demo/k", policy.GrantCursor{}, 10); c.CountKeys() != 1 || c.CountGrants() != 1 || err != nil || len(sts) != 1 {
		t.Errorf("counts: %d keys, %d grants; GrantsPage(demo/k) = %d grants, %v", c.CountKeys(), c.CountGrants(), len(sts), err)
	}
	es := lastEntries(t, s, 6) // a grant on a missing key is a malformed request, not a change

	want := []struct{ action, outcome, reason string }{
		{"key.create", "ok", ""}, {"key.create", audit.OutcomeError, "conflict"}, {"key.rotate", "ok", ""},
		{"key.config", "ok", "min_decryption_version"}, {"key.state", "ok", "to deactivated"},
		{"grant.create", "ok", "token:app decrypt"},
	}
	for i, w := range want {
		if es[i].Action != w.action || es[i].Outcome != w.outcome || es[i].Reason != w.reason {
			t.Errorf("audit entry %d = %s %s %q, want %s %s %q", i, es[i].Action, es[i].Outcome, es[i].Reason, w.action, w.outcome, w.reason)
		}
	}
}

// TestDecryptManyKeys: a batch over more keys than the scan of groups
// covers (the map takes over) is decided and audited once per key, in the
// order the keys first appear, with each item's result in place.
func TestDecryptManyKeys(t *testing.T) {
	s := kmstest.New(t, kmstest.Options{})
	const keys = 12
	var in []kms.DecryptItem
	for k := range keys {
		name := fmt.Sprintf("demo/k%02d", k)
		if _, err := s.Core.CreateKey(ctx, admin, name, vault.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Core.Grant(ctx, admin, policy.Grant{Key: name, Party: "token:app", Ops: policy.OpsAll}); err != nil {
			t.Fatal(err)
		}
		sealed, err := s.Core.Encrypt(ctx, app, name, envelope.ModeRandom, []kms.EncryptItem{{Plaintext: []byte(name)}})
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, kms.DecryptItem{Ciphertext: sealed[0].Envelope.Text()})
	}
	// Every key twice, the second round in reverse: 2 items per key.
	for k := keys - 1; k >= 0; k-- {
		in = append(in, in[k])
	}
	opened, err := s.Core.Decrypt(ctx, app, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range opened {
		k := i
		if i >= keys {
			k = 2*keys - 1 - i
		}
		if want := fmt.Sprintf("demo/k%02d", k); o.Err != nil || o.Key != want || string(o.Plaintext) != want {
			t.Errorf("item %d = %+v, want %s", i, o, want)
		}
	}
	es := lastEntries(t, s, keys)
	for k, e := range es {
		if want := fmt.Sprintf("demo/k%02d", k); e.Key != want || e.Count != 2 || e.Outcome != audit.OutcomeAllow {
			t.Errorf("audit entry %d = %+v, want key %s, count 2, allow", k, e, want)
		}
	}
	// The other party is denied every key: each item says so, one entry per key.
	opened, err = s.Core.Decrypt(ctx, other, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range opened {
		if !errors.Is(o.Err, policy.ErrNotGranted) {
			t.Errorf("item %d for token:other = %v, want ErrNotGranted", i, o.Err)
		}
	}
	for k, e := range lastEntries(t, s, keys) {
		if want := fmt.Sprintf("demo/k%02d", k); e.Key != want || e.Count != 2 || e.Outcome != audit.OutcomeDeny {
			t.Errorf("audit entry %d = %+v, want key %s, count 2, deny", k, e, want)
		}
	}
}

// errText is err's message, or "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestBatchSharedContexts: items that share one context map (prepared once
// by the core) get exactly the results and errors each would get alone,
// with invalid contexts, failures inside a run and equal maps that are
// not shared among them.
func TestBatchSharedContexts(t *testing.T) {
	s := newCore(t)
	a := envelope.Context{"channel": "trade", "chaincode": "settlement", "state_key": "order~1", "field": "price"}
	b := envelope.Context{"channel": "trade", "chaincode": "settlement", "state_key": "order~1", "field": "quantity"}
	bad := envelope.Context{"field": "price", "bad\x00key": "x"}
	items := []kms.EncryptItem{
		{Plaintext: []byte("1"), Context: a},
		{Plaintext: []byte("2"), Context: a},
		{Plaintext: make([]byte, envelope.MaxPlaintextSize+1), Context: a}, // too large, inside the run
		{Plaintext: []byte("4"), Context: a},
		{Plaintext: []byte("5"), Context: bad},
		{Plaintext: []byte("6"), Context: bad},
		{Plaintext: []byte("7"), Context: nil},
		{Plaintext: []byte("8"), Context: maps.Clone(a)},
		{Plaintext: []byte("9"), Context: b},
		{Plaintext: []byte("10"), Context: b},
		{Plaintext: []byte("11"), Context: a}, // back to the first run's map
		{Plaintext: []byte("12"), Context: nil},
	}
	sealed, err := s.Core.Encrypt(ctx, app, "demo/k", envelope.ModeRandom, items)
	if err != nil {
		t.Fatal(err)
	}
	var dec []kms.DecryptItem
	for i, it := range items {
		alone, err := s.Core.Encrypt(ctx, app, "demo/k", envelope.ModeRandom, []kms.EncryptItem{it})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := errText(sealed[i].Err), errText(alone[0].Err); got != want {
			t.Errorf("item %d: batch error %q, alone %q", i, got, want)
		}
		if sealed[i].Err != nil {
			continue
		}
		pt, err := s.Vault.Open(sealed[i].Envelope, maps.Clone(it.Context))
		if err != nil || string(pt) != string(it.Plaintext) {
			t.Errorf("item %d: Open(batch envelope) = %q, %v, want %q", i, pt, err, it.Plaintext)
		}
		dec = append(dec, kms.DecryptItem{Ciphertext: sealed[i].Envelope.Text(), Context: it.Context})
	}
	if errs := []int{2, 4, 5}; len(dec) != len(items)-len(errs) {
		t.Fatalf("%d items sealed, want %d (items %v fail)", len(dec), len(items)-len(errs), errs)
	}
	// Decrypt: the same runs, plus a wrong context, an invalid one and a
	// malformed envelope inside them.
	dec = append(dec,
		kms.DecryptItem{Ciphertext: dec[0].Ciphertext, Context: b}, // sealed under a
		kms.DecryptItem{Ciphertext: dec[5].Ciphertext, Context: b}, // b's own
		kms.DecryptItem{Ciphertext: "km1:AQ", Context: b},
		kms.DecryptItem{Ciphertext: dec[0].Ciphertext, Context: bad},
		kms.DecryptItem{Ciphertext: dec[1].Ciphertext, Context: bad},
	)
	opened, err := s.Core.Decrypt(ctx, app, dec, nil)
	if err != nil {
		t.Fatal(err)
	}
	failures := 0
	for i, it := range dec {
		alone, err := s.Core.Decrypt(ctx, app, []kms.DecryptItem{it}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := errText(opened[i].Err), errText(alone[0].Err); got != want {
			t.Errorf("decrypt item %d: batch error %q, alone %q", i, got, want)
		}
		if string(opened[i].Plaintext) != string(alone[0].Plaintext) || (opened[i].Err == nil) != (opened[i].Plaintext != nil) {
			t.Errorf("decrypt item %d: batch plaintext %q, alone %q", i, opened[i].Plaintext, alone[0].Plaintext)
		}
		if opened[i].Err != nil {
			failures++
		}
	}
	if failures != 4 {
		t.Errorf("%d decrypt items failed, want 4 (wrong context, malformed, invalid context twice)", failures)
	}
	for i, want := range map[int]error{len(dec) - 5: envelope.ErrDecrypt, len(dec) - 3: envelope.ErrMalformed, len(dec) - 2: envelope.ErrInvalidContext, len(dec) - 1: envelope.ErrInvalidContext} {
		if !errors.Is(opened[i].Err, want) {
			t.Errorf("decrypt item %d: %v, want %v", i, opened[i].Err, want)
		}
	}
}
