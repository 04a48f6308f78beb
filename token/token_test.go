package token

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/kv/badgerstore"
	"github.com/keymesh/keymesh/policy"
)

var (
	app   = policy.MustParseParty("token:app")
	admin = policy.AdminParty
	t0    = time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
)

// testClock is a settable clock.
type testClock struct{ ns atomic.Int64 }

func newClock() *testClock {
	c := &testClock{}
	c.set(t0)
	return c
}
func (c *testClock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func openReg(t testing.TB, s kv.Store, opts ...Option) *Registry {
	t.Helper()
	r, err := Open(s, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return r
}

func mustCreate(t testing.TB, r *Registry, p policy.Party, role Role, label string, ttl time.Duration) (string, Token) {
	t.Helper()
	secret, tok, err := r.Create(p, role, label, ttl)
	if err != nil {
		t.Fatalf("Create(%q, %v) = %v", p, role, err)
	}
	return secret, tok
}

func openBadger(t testing.TB, dir string) *badgerstore.DB {
	t.Helper()
	db, err := badgerstore.Open(dir, nil)
	if err != nil {
		t.Fatalf("badgerstore.Open: %v", err)
	}
	return db
}

var secretRE = regexp.MustCompile(`^kmt_([0-9a-f]{16})_[A-Za-z0-9_-]{43}$`)

func TestCreateAuthenticate(t *testing.T) {
	clk := newClock()
	r := openReg(t, kv.NewMem(), WithClock(clk.now))
	secret, tok, err := r.Create(app, RoleClient, "settlement service", time.Hour)
	if err != nil {
		t.Fatalf("Create() = %v", err)
	}
	m := secretRE.FindStringSubmatch(secret)
	if m == nil || m[1] != tok.ID {
		t.Fatalf("Create() secret does not match %v with id %q", secretRE, tok.ID)
	}
	want := Token{ID: tok.ID, Party: app, Role: RoleClient, Label: "settlement service", Created: t0, Expires: t0.Add(time.Hour)}
	if tok != want {
		t.Fatalf("Create() token = %+v, want %+v", tok, want)
	}
	got, err := r.Authenticate(secret)
	if err != nil || got != want {
		t.Fatalf("Authenticate(secret) = %+v, %v; want %+v", got, err, want)
	}
	if g, err := r.Get(tok.ID); err != nil || g != want {
		t.Fatalf("Get(%q) = %+v, %v; want %+v", tok.ID, g, err, want)
	}

	adminSecret, at := mustCreate(t, r, admin, RoleAdmin, "", 0)
	got, err = r.Authenticate(adminSecret)
	if err != nil || got.Role != RoleAdmin || got.Party != admin || !got.Expires.IsZero() {
		t.Fatalf("Authenticate(admin secret) = %+v, %v; want admin token that never expires", got, err)
	}
	clk.advance(100 * 365 * 24 * time.Hour)
	if _, err := r.Authenticate(adminSecret); err != nil {
		t.Fatalf("Authenticate(non-expiring token) a century later = %v", err)
	}
	if at.ID == tok.ID {
		t.Fatalf("two tokens share id %q", at.ID)
	}
}

func TestAuthenticateRejects(t *testing.T) {
	clk := newClock()
	r := openReg(t, kv.NewMem(), WithClock(clk.now))
	good, tok := mustCreate(t, r, app, RoleClient, "good", time.Hour)
	expiring, _ := mustCreate(t, r, app, RoleClient, "short", time.Minute)
	revoked, rtok := mustCreate(t, r, app, RoleClient, "revoked", 0)
	if err := r.Revoke(rtok.ID); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Minute) // exactly at expiry: expired

	last := good[len(good)-1]
	other := "A"
	if last == 'A' {
		other = "E"
	}
	flip := func(i int, c byte) string { b := []byte(good); b[i] = c; return string(b) }
	for _, tc := range []struct {
		name, secret, reason, id string
	}{
		{"fail/wrong-secret", good[:len(good)-1] + other, ReasonWrongSecret, tok.ID},
		{"fail/wrong-secret-middle", flip(30, map[bool]byte{true: 'b', false: 'a'}[good[30] == 'a']), ReasonWrongSecret, tok.ID},
		{"fail/unknown-id", "kmt_0123456789abcdef" + good[20:], ReasonUnknownID, "0123456789abcdef"},
		{"fail/expired", expiring, ReasonExpired, ""},
		{"fail/revoked", revoked, ReasonRevoked, rtok.ID},
		{"fail/empty", "", ReasonMalformed, ""},
		{"fail/prefix-only", "kmt_", ReasonMalformed, ""},
		{"fail/truncated", good[:len(good)-1], ReasonMalformed, ""},
		{"fail/extended", good + "A", ReasonMalformed, ""},
		{"fail/trailing-newline", good + "\n", ReasonMalformed, ""},
		{"fail/padded", good[:len(good)-1] + "=", ReasonMalformed, ""},
		{"fail/wrong-prefix", "kmx_" + good[4:], ReasonMalformed, ""},
		{"fail/upper-case-id", strings.ToUpper(good[:20]) + good[20:], ReasonMalformed, ""},
		{"fail/bad-separator", flip(20, '-'), ReasonMalformed, ""},
		{"fail/std-base64-char", flip(30, '+'), ReasonMalformed, ""},
		{"fail/non-canonical-last-char", good[:len(good)-1] + "B", ReasonMalformed, ""},
		{"fail/bearer-prefix", "Bearer " + good, ReasonMalformed, ""},
		{"fail/huge", strings.Repeat("k", 1<<20), ReasonMalformed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.secret == good {
				t.Skip("mutation produced the original secret")
			}
			got, err := r.Authenticate(tc.secret)
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("Authenticate() = %+v, %v; want ErrUnauthenticated", got, err)
			}
			if got != (Token{}) {
				t.Fatalf("Authenticate() returned token %+v with an error", got)
			}
			if err.Error() != "token: invalid token" {
				t.Fatalf("Authenticate() error = %q, want the uniform %q", err, "token: invalid token")
			}
			var ae *AuthError
			if !errors.As(err, &ae) || ae.Reason != tc.reason {
				t.Fatalf("Authenticate() = %#v, want *AuthError with reason %q", err, tc.reason)
			}
			if tc.id != "" && ae.ID != tc.id {
				t.Fatalf("AuthError.ID = %q, want %q", ae.ID, tc.id)
			}
		})
	}
	if _, err := r.Authenticate(good); err != nil {
		t.Fatalf("Authenticate(good) = %v", err)
	}
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	db := openBadger(t, dir)
	r := openReg(t, db, WithClock(clk.now))
	s1, _ := mustCreate(t, r, app, RoleClient, "one", 0)
	clk.advance(time.Second)
	s2, t2 := mustCreate(t, r, policy.MustParseParty("org:Org1MSP"), RoleClient, "two ✓", 24*time.Hour)
	clk.advance(time.Second)
	s3, t3 := mustCreate(t, r, admin, RoleAdmin, "ops", 0)
	if err := r.Revoke(t3.ID); err != nil {
		t.Fatal(err)
	}
	before := r.List()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openBadger(t, dir)
	defer db.Close()
	r = openReg(t, db, WithClock(clk.now))
	if after := r.List(); !slices.Equal(after, before) {
		t.Fatalf("List() after reopen =\n%+v\nwant\n%+v", after, before)
	}
	if _, err := r.Authenticate(s1); err != nil {
		t.Fatalf("Authenticate(s1) after reopen = %v", err)
	}
	if got, err := r.Authenticate(s2); err != nil || got != t2 {
		t.Fatalf("Authenticate(s2) after reopen = %+v, %v; want %+v", got, err, t2)
	}
	if _, err := r.Authenticate(s3); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("Authenticate(revoked) after reopen = %v, want ErrUnauthenticated", err)
	}
}

// recordingRand is a deterministic random source that remembers what it
// handed out.
type recordingRand struct {
	mu   sync.Mutex
	next byte
	out  [][]byte
}

func (r *recordingRand) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range p {
		r.next = r.next*167 + 13
		p[i] = r.next
	}
	r.out = append(r.out, bytes.Clone(p))
	return len(p), nil
}

// TestSecretNeverStored scans every key and value in the store, and every
// file of the badger directory, for the secrets, their random parts and
// the raw random bytes.
func TestSecretNeverStored(t *testing.T) {
	dir := t.TempDir()
	db := openBadger(t, dir)
	rnd := &recordingRand{}
	r := openReg(t, db, WithRand(rnd))
	var needles [][]byte
	for i := range 5 {
		secret, tok := mustCreate(t, r, app, RoleClient, "label", time.Duration(i)*time.Hour)
		if i == 3 {
			if err := r.Revoke(tok.ID); err != nil {
				t.Fatal(err)
			}
		}
		randPart := secret[len(SecretPrefix)+idLen+1:]
		raw, err := base64.RawURLEncoding.DecodeString(randPart)
		if err != nil {
			t.Fatal(err)
		}
		needles = append(needles, []byte(secret), []byte(randPart), raw, raw[:16], raw[16:])
	}
	for _, out := range rnd.out {
		needles = append(needles, out[idBytes:])
	}
	check := func(where string, data []byte) {
		t.Helper()
		for _, n := range needles {
			if bytes.Contains(data, n) {
				t.Fatalf("%s contains secret material", where)
			}
		}
	}
	values := 0
	if err := db.Scan(nil, func(k, v []byte) error {
		values++
		check("key "+string(k), k)
		check("value of "+string(k), v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if values != 5 {
		t.Fatalf("store holds %d values, want 5", values)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		check("file "+d.Name(), data)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestCreateStoreFailure(t *testing.T) {
	s := kv.NewMem()
	rnd := &recordingRand{}
	r := openReg(t, s, WithRand(rnd))
	errDisk := errors.New("disk on fire")
	s.SetFailure(errDisk)
	secret, tok, err := r.Create(app, RoleClient, "x", 0)
	if !errors.Is(err, errDisk) || secret != "" || tok != (Token{}) {
		t.Fatalf("Create with a failing store = %q, %+v, %v; want no secret, no token, the cause", secret, tok, err)
	}
	// The secret Create would have returned does not authenticate.
	raw := rnd.out[0]
	would := SecretPrefix + hexString(raw[:idBytes]) + "_" + base64.RawURLEncoding.EncodeToString(raw[idBytes:])
	if _, err := r.Authenticate(would); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("Authenticate(secret of a failed Create) = %v, want ErrUnauthenticated", err)
	}
	if l := r.List(); len(l) != 0 {
		t.Fatalf("List() after failed Create = %+v, want empty", l)
	}
	s.SetFailure(nil)
	secret, _ = mustCreate(t, r, app, RoleClient, "x", 0)
	if _, err := r.Authenticate(secret); err != nil {
		t.Fatalf("Authenticate after recovery = %v", err)
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	var sb strings.Builder
	for _, c := range b {
		sb.WriteByte(digits[c>>4])
		sb.WriteByte(digits[c&15])
	}
	return sb.String()
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestCreateRandFailure(t *testing.T) {
	r := openReg(t, kv.NewMem(), WithRand(errReader{}))
	if _, _, err := r.Create(app, RoleClient, "", 0); err == nil {
		t.Fatalf("Create with a failing random source = nil error")
	}
	if _, _, err := r.Create(app, RoleClient, "", 0); err == nil {
		t.Fatalf("Create with a failing random source = nil error")
	}
	r = openReg(t, kv.NewMem(), WithRand(io.LimitReader(&recordingRand{}, 10)))
	if _, _, err := r.Create(app, RoleClient, "", 0); err == nil {
		t.Fatalf("Create with a short random source = nil error")
	}
}

func TestRevoke(t *testing.T) {
	s := kv.NewMem()
	r := openReg(t, s)
	secret, tok := mustCreate(t, r, app, RoleClient, "", 0)

	if err := r.Revoke("0123456789abcdef"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Revoke(unknown) = %v, want ErrNotFound", err)
	}
	err := r.Revoke(secret)
	if !errors.Is(err, ErrNotFound) || strings.Contains(err.Error(), secret[21:]) {
		t.Fatalf("Revoke(secret pasted as id) = %v, want ErrNotFound without the secret", err)
	}

	s.SetFailure(errors.New("disk on fire"))
	if err := r.Revoke(tok.ID); err == nil {
		t.Fatalf("Revoke with a failing store = nil error")
	}
	if _, err := r.Authenticate(secret); err != nil {
		t.Fatalf("Authenticate after a failed Revoke = %v; want still valid", err)
	}
	s.SetFailure(nil)
	for range 2 { // idempotent
		if err := r.Revoke(tok.ID); err != nil {
			t.Fatalf("Revoke(%q) = %v", tok.ID, err)
		}
	}
	if _, err := r.Authenticate(secret); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("Authenticate(revoked) = %v, want ErrUnauthenticated", err)
	}
	if g, err := r.Get(tok.ID); err != nil || !g.Revoked {
		t.Fatalf("Get(revoked) = %+v, %v; want Revoked", g, err)
	}
	r2 := openReg(t, s)
	if g, err := r2.Get(tok.ID); err != nil || !g.Revoked {
		t.Fatalf("Get(revoked) after reopen = %+v, %v; want Revoked", g, err)
	}
}

func TestGet(t *testing.T) {
	r := openReg(t, kv.NewMem())
	secret, tok := mustCreate(t, r, app, RoleClient, "", 0)
	if _, err := r.Get(tok.ID); err != nil {
		t.Fatalf("Get(%q) = %v", tok.ID, err)
	}
	if _, err := r.Get("ffffffffffffffff"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"ffffffffffffffff"`) {
		t.Fatalf("Get(unknown) = %v, want ErrNotFound quoting the id", err)
	}
	if _, err := r.Get(secret); !errors.Is(err, ErrNotFound) || strings.Contains(err.Error(), secret) {
		t.Fatalf("Get(secret) = %v, want ErrNotFound without the secret", err)
	}
}

func TestCreateValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		party policy.Party
		role  Role
		label string
		ttl   time.Duration
	}{
		{"fail/admin-role-other-party", app, RoleAdmin, "", 0},
		{"fail/client-role-admin-party", admin, RoleClient, "", 0},
		{"fail/role-zero", app, 0, "", 0},
		{"fail/role-unknown", app, 4, "", 0},
		{"fail/chaincode-role-admin-party", admin, RoleChaincode, "", 0},
		{"fail/party-empty", "", RoleClient, "", 0},
		{"fail/party-not-canonical", "eth:0xABCDEF0123456789ABCDEF0123456789ABCDEF01", RoleClient, "", 0},
		{"fail/party-unknown-kind", "user:bob", RoleClient, "", 0},
		{"fail/negative-ttl", app, RoleClient, "", -time.Second},
		{"fail/label-too-long", app, RoleClient, strings.Repeat("x", MaxLabelLen+1), 0},
		{"fail/label-control", app, RoleClient, "a\nb", 0},
		{"fail/label-bidi", app, RoleClient, "a\u202eb", 0},
		{"fail/label-invalid-utf8", app, RoleClient, "a\xffb", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := kv.NewMem()
			r := openReg(t, s)
			if secret, _, err := r.Create(tc.party, tc.role, tc.label, tc.ttl); err == nil || secret != "" {
				t.Fatalf("Create(%q, %v, %q, %v) = %v, want error and no secret", tc.party, tc.role, tc.label, tc.ttl, err)
			}
			if l := r.List(); len(l) != 0 {
				t.Fatalf("List() = %+v, want empty", l)
			}
		})
	}
	r := openReg(t, kv.NewMem())
	mustCreate(t, r, policy.MustParseParty("eth:0xabcdef0123456789abcdef0123456789abcdef01"), RoleClient, strings.Repeat("é", MaxLabelLen/2), 0)
	mustCreate(t, r, policy.MustParseParty("fabric:Org1MSP/CN=alice,OU=client"), RoleClient, "", 0)
}

func TestList(t *testing.T) {
	clk := newClock()
	r := openReg(t, kv.NewMem(), WithClock(clk.now))
	var want []Token
	for i := range 6 {
		if i%2 == 0 {
			clk.advance(time.Second)
		}
		_, tok := mustCreate(t, r, app, RoleClient, "", 0)
		want = append(want, tok)
	}
	// Same-second pairs are ordered by ID.
	for i := 0; i < len(want); i += 2 {
		if want[i].ID > want[i+1].ID {
			want[i], want[i+1] = want[i+1], want[i]
		}
	}
	if got := r.List(); !slices.Equal(got, want) {
		t.Fatalf("List() =\n%+v\nwant\n%+v", got, want)
	}
}

func TestRolePinned(t *testing.T) {
	// Persisted values: never change them.
	if RoleClient != 1 || RoleAdmin != 2 || RoleChaincode != 3 {
		t.Fatalf("RoleClient, RoleAdmin, RoleChaincode = %d, %d, %d; want 1, 2, 3", RoleClient, RoleAdmin, RoleChaincode)
	}
	for r, want := range map[Role]string{RoleClient: "client", RoleAdmin: "admin", RoleChaincode: "chaincode", 0: "Role(0)", 9: "Role(9)"} {
		if got := r.String(); got != want {
			t.Errorf("Role(%d).String() = %q, want %q", r, got, want)
		}
	}
}

func TestOpenRejectsDamagedRecords(t *testing.T) {
	s := kv.NewMem()
	r := openReg(t, s)
	_, tok := mustCreate(t, r, app, RoleClient, "", 0)
	v, err := s.Get([]byte(keyPrefix + tok.ID))
	if err != nil {
		t.Fatal(err)
	}
	for name, write := range map[string]func(kv.Txn) error{
		"fail/garbage":    func(txn kv.Txn) error { return txn.Set([]byte(keyPrefix+tok.ID), []byte("x")) },
		"fail/wrong-key":  func(txn kv.Txn) error { return txn.Set([]byte(keyPrefix+"0000000000000000"), v) },
		"fail/truncated":  func(txn kv.Txn) error { return txn.Set([]byte(keyPrefix+tok.ID), v[:len(v)-1]) },
		"fail/role-bad-4": func(txn kv.Txn) error { b := bytes.Clone(v); b[41] = 4; return txn.Set([]byte(keyPrefix+tok.ID), b) },
	} {
		t.Run(name, func(t *testing.T) {
			m := kv.NewMem()
			if err := m.Update(write); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(m); err == nil {
				t.Fatalf("Open(damaged store) = nil error")
			}
		})
	}
}

func TestAuthErrorLog(t *testing.T) {
	r := openReg(t, kv.NewMem())
	secret, tok := mustCreate(t, r, app, RoleClient, "", 0)
	_, err := r.Authenticate(secret[:len(secret)-1] + "A")
	if secret[len(secret)-1] == 'A' {
		_, err = r.Authenticate(secret[:len(secret)-1] + "E")
	}
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("Authenticate(wrong) = %v, want *AuthError", err)
	}
	logged := ae.LogValue().String()
	if !strings.Contains(logged, tok.ID) || !strings.Contains(logged, ReasonWrongSecret) || strings.Contains(logged, secret[21:30]) {
		t.Fatalf("AuthError.LogValue() = %s, want id and reason, no secret", logged)
	}
}

func TestConcurrentUse(t *testing.T) {
	r := openReg(t, kv.NewMem())
	secret, _ := mustCreate(t, r, app, RoleClient, "", 0)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 2000 {
				if _, err := r.Authenticate(secret); err != nil {
					t.Errorf("Authenticate = %v", err)
					return
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range 50 {
				_, tok, err := r.Create(app, RoleClient, "", 0)
				if err != nil {
					t.Errorf("Create = %v", err)
					return
				}
				if err := r.Revoke(tok.ID); err != nil {
					t.Errorf("Revoke = %v", err)
					return
				}
				r.List()
			}
		})
	}
	wg.Wait()
	if n := len(r.List()); n != 101 {
		t.Fatalf("len(List()) = %d, want 101", n)
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	r := openReg(b, kv.NewMem())
	for range 1000 {
		mustCreate(b, r, app, RoleClient, "", time.Hour)
	}
	secret, _ := mustCreate(b, r, app, RoleClient, "", time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Authenticate(secret); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAuthenticateParallel(b *testing.B) {
	r := openReg(b, kv.NewMem())
	secret, _ := mustCreate(b, r, app, RoleClient, "", time.Hour)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.Authenticate(secret); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
