package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestParseParty(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name string
		in   string
		want Party // "" means an error is expected
		kind string
		org  string
	}{
		{name: "ok/org", in: "org:Org1MSP", want: "org:Org1MSP", kind: "org", org: "Org1MSP"},
		{name: "ok/org-punct", in: "org:a.b_c-d", want: "org:a.b_c-d", kind: "org", org: "a.b_c-d"},
		{name: "ok/org-64", in: "org:" + long(64), want: Party("org:" + long(64)), kind: "org", org: long(64)},
		{name: "ok/fabric", in: "fabric:Org1MSP/alice", want: "fabric:Org1MSP/alice", kind: "fabric", org: "Org1MSP"},
		{name: "ok/fabric-x509", in: "fabric:Org1MSP/CN=alice,OU=client/O=Org1 + é", want: "fabric:Org1MSP/CN=alice,OU=client/O=Org1 + é", kind: "fabric", org: "Org1MSP"},
		{name: "ok/fabric-512", in: "fabric:O/" + long(512), want: Party("fabric:O/" + long(512)), kind: "fabric", org: "O"},
		{name: "ok/eth", in: "eth:0x52908400098527886e0f7030069857d2e4169ee7", want: "eth:0x52908400098527886e0f7030069857d2e4169ee7", kind: "eth"},
		{name: "ok/eth-normalised", in: "eth:0x52908400098527886E0F7030069857D2E4169EE7", want: "eth:0x52908400098527886e0f7030069857d2e4169ee7", kind: "eth"},
		{name: "ok/token", in: "token:app", want: "token:app", kind: "token"},
		{name: "ok/token-admin", in: "token:admin", want: AdminParty, kind: "token"},
		{name: "ok/token-punct", in: "token:0app.v2_x-y", want: "token:0app.v2_x-y", kind: "token"},
		{name: "ok/token-64", in: "token:" + long(64), want: Party("token:" + long(64)), kind: "token"},
		{name: "ok/kmip", in: "kmip:mongodb prod", want: "kmip:mongodb prod", kind: "kmip"},
		{name: "ok/kmip-256", in: "kmip:" + long(256), want: Party("kmip:" + long(256)), kind: "kmip"},
		{name: "fail/kmip-empty", in: "kmip:"},
		{name: "fail/kmip-257", in: "kmip:" + long(257)},
		{name: "fail/kmip-control", in: "kmip:a\nb"},

		{name: "fail/empty", in: ""},
		{name: "fail/no-kind", in: "Org1MSP"},
		{name: "fail/unknown-kind", in: "user:bob"},
		{name: "fail/kind-case", in: "ORG:Org1MSP"},
		{name: "fail/org-empty", in: "org:"},
		{name: "fail/org-65", in: "org:" + long(65)},
		{name: "fail/org-leading-dot", in: "org:.Org1"},
		{name: "fail/org-slash", in: "org:Org1/x"},
		{name: "fail/org-space", in: "org: Org1MSP"},
		{name: "fail/fabric-no-identity", in: "fabric:Org1MSP"},
		{name: "fail/fabric-empty-identity", in: "fabric:Org1MSP/"},
		{name: "fail/fabric-empty-org", in: "fabric:/alice"},
		{name: "fail/fabric-bad-org", in: "fabric:Org 1/alice"},
		{name: "fail/fabric-513", in: "fabric:O/" + long(513)},
		{name: "fail/fabric-newline", in: "fabric:Org1MSP/alice\nbob"},
		{name: "fail/fabric-nul", in: "fabric:Org1MSP/alice\x00"},
		{name: "fail/fabric-del", in: "fabric:Org1MSP/alice\x7f"},
		{name: "fail/fabric-c1", in: "fabric:Org1MSP/alice\u0085"},
		{name: "fail/fabric-rlo", in: "fabric:Org1MSP/alice\u202e"},
		{name: "fail/fabric-line-separator", in: "fabric:Org1MSP/a\u2028b"},
		{name: "fail/fabric-bad-utf8", in: "fabric:Org1MSP/alice\xff"},
		{name: "fail/eth-short", in: "eth:0x123"},
		{name: "fail/eth-41", in: "eth:0x52908400098527886e0f7030069857d2e4169ee71"},
		{name: "fail/eth-no-0x", in: "eth:52908400098527886e0f7030069857d2e4169ee7"},
		{name: "fail/eth-0X", in: "eth:0X52908400098527886e0f7030069857d2e4169ee7"},
		{name: "fail/eth-not-hex", in: "eth:0x52908400098527886e0f7030069857d2e4169eeg"},
		{name: "fail/token-empty", in: "token:"},
		{name: "fail/token-upper", in: "token:Admin"},
		{name: "fail/token-leading-dash", in: "token:-app"},
		{name: "fail/token-65", in: "token:" + long(65)},
		{name: "fail/token-space", in: "token:my app"},
		{name: "fail/trailing-space", in: "token:app "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseParty(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ParseParty(%q) = %q, want error", tt.in, got)
				}
				if !errors.Is(err, ErrInvalidParty) {
					t.Errorf("ParseParty(%q) error = %v, want it to wrap ErrInvalidParty", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseParty(%q) = %q, %v, want %q, nil", tt.in, got, err, tt.want)
			}
			if k := got.Kind(); k != tt.kind {
				t.Errorf("%q.Kind() = %q, want %q", got, k, tt.kind)
			}
			if o := got.Org(); o != tt.org {
				t.Errorf("%q.Org() = %q, want %q", got, o, tt.org)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("%q.Validate() = %v, want nil", got, err)
			}
		})
	}
}

func TestParsePartyErrorQuotesInput(t *testing.T) {
	in := "org:" + strings.Repeat("x", 200)
	_, err := ParseParty(in)
	if err == nil {
		t.Fatalf("ParseParty(long) = nil error, want error")
	}
	msg := err.Error()
	if !strings.Contains(msg, `"org:xxxx`) {
		t.Errorf("ParseParty(long) error = %q, want it to quote the input", msg)
	}
	if strings.Contains(msg, strings.Repeat("x", 80)) {
		t.Errorf("ParseParty(long) error = %q, want the input cut to 80 bytes", msg)
	}
	// A multi-byte rune straddling the cut is not split.
	in = "fabric:O/" + strings.Repeat("é", 300)
	_, err = ParseParty(in)
	if err == nil || strings.Contains(err.Error(), `\x`) {
		t.Errorf("ParseParty(long UTF-8) error = %v, want a clean cut", err)
	}
}

func TestPartyValidateNonCanonical(t *testing.T) {
	p := Party("eth:0x52908400098527886E0F7030069857D2E4169EE7")
	if err := p.Validate(); !errors.Is(err, ErrInvalidParty) {
		t.Errorf("%q.Validate() = %v, want ErrInvalidParty", p, err)
	}
}

func TestPartyUnmarshalText(t *testing.T) {
	var p Party
	if err := p.UnmarshalText([]byte("eth:0xAB00000000000000000000000000000000000000")); err != nil {
		t.Fatalf("UnmarshalText = %v, want nil", err)
	}
	if want := Party("eth:0xab00000000000000000000000000000000000000"); p != want {
		t.Errorf("UnmarshalText gave %q, want %q", p, want)
	}
	if err := p.UnmarshalText([]byte("token:Admin")); !errors.Is(err, ErrInvalidParty) {
		t.Errorf("UnmarshalText(token:Admin) = %v, want ErrInvalidParty", err)
	}
}

func TestKindOrgOfNonCanonical(t *testing.T) {
	for _, tt := range []struct {
		p         Party
		kind, org string
	}{
		{"", "", ""},
		{"user:x", "", ""},
		{"fabric:NoSlash", "fabric", ""},
		{"token:app", "token", ""},
		{"eth:0x00", "eth", ""},
	} {
		if k, o := tt.p.Kind(), tt.p.Org(); k != tt.kind || o != tt.org {
			t.Errorf("%q.Kind(), Org() = %q, %q, want %q, %q", tt.p, k, o, tt.kind, tt.org)
		}
	}
}

func TestPrincipalString(t *testing.T) {
	for _, tt := range []struct {
		p    Principal
		want string
	}{
		{Principal{}, "(no party)"},
		{Principal{Parties: []Party{"token:app"}}, "token:app"},
		{Principal{Parties: []Party{"fabric:Org1MSP/alice", "org:Org1MSP"}}, "fabric:Org1MSP/alice+org:Org1MSP"},
	} {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("Principal%v.String() = %q, want %q", tt.p.Parties, got, tt.want)
		}
	}
}

// FuzzParseParty checks that ParseParty never panics, that what it accepts
// is canonical (parsing it again gives it back) and that its kind is known.
func FuzzParseParty(f *testing.F) {
	for _, s := range []string{
		"org:Org1MSP", "fabric:Org1MSP/alice", "eth:0x52908400098527886E0F7030069857D2E4169EE7",
		"token:admin", "token:Admin", "eth:0x123", "fabric:Org1MSP", "org:", "fabric:O/a\u202eb",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseParty(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidParty) {
				t.Fatalf("ParseParty(%q) error = %v, want ErrInvalidParty", s, err)
			}
			return
		}
		q, err := ParseParty(string(p))
		if err != nil || q != p {
			t.Fatalf("ParseParty(ParseParty(%q)) = %q, %v, want %q, nil", s, q, err, p)
		}
		if p.Kind() == "" {
			t.Fatalf("ParseParty(%q).Kind() = \"\", want a kind", s)
		}
		if (p.Kind() == KindOrg || p.Kind() == KindFabric) != (p.Org() != "") {
			t.Fatalf("ParseParty(%q).Org() = %q for kind %q", s, p.Org(), p.Kind())
		}
	})
}
