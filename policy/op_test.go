package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestPinnedValues pins persisted values: changing one breaks every stored
// grant and event.
func TestPinnedValues(t *testing.T) {
	for _, tt := range []struct {
		name      string
		got, want uint8
	}{
		{"OpEncrypt", uint8(OpEncrypt), 1},
		{"OpDecrypt", uint8(OpDecrypt), 2},
		{"OpsEncrypt", uint8(OpsEncrypt), 1 << 1},
		{"OpsDecrypt", uint8(OpsDecrypt), 1 << 2},
		{"OpsAll", uint8(OpsAll), 6},
		{"OpsOf(encrypt,decrypt)", uint8(OpsOf(OpEncrypt, OpDecrypt)), 6},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
}

func TestOpString(t *testing.T) {
	for _, tt := range []struct {
		op   Op
		want string
	}{{OpEncrypt, "encrypt"}, {OpDecrypt, "decrypt"}, {OpExport, "export"}, {0, "op(0)"}, {4, "op(4)"}} {
		if got := tt.op.String(); got != tt.want {
			t.Errorf("Op(%d).String() = %q, want %q", tt.op, got, tt.want)
		}
	}
}

func TestParseOp(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		want Op
		ok   bool
	}{
		{"ok/encrypt", "encrypt", OpEncrypt, true},
		{"ok/decrypt", "decrypt", OpDecrypt, true},
		{"fail/empty", "", 0, false},
		{"fail/case", "Encrypt", 0, false},
		{"fail/unknown", "sign", 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOp(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("ParseOp(%q) = %v, %v, want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestParseOps(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		want Ops
		ok   bool
	}{
		{"ok/both", "encrypt,decrypt", OpsAll, true},
		{"ok/both-reversed", "decrypt,encrypt", OpsAll, true},
		{"ok/decrypt", "decrypt", OpsDecrypt, true},
		{"ok/encrypt", "encrypt", OpsEncrypt, true},
		{"ok/blanks", " encrypt , decrypt ", OpsAll, true},
		{"ok/repeat", "decrypt,decrypt", OpsDecrypt, true},
		{"fail/empty", "", 0, false},
		{"fail/blank", "  ", 0, false},
		{"fail/unknown", "encrypt,sign", 0, false},
		{"fail/empty-item", "encrypt,", 0, false},
		{"fail/case", "ENCRYPT", 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOps(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("ParseOps(%q) = %v, %v, want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestOps(t *testing.T) {
	for _, tt := range []struct {
		ops      Ops
		str      string
		list     []string
		enc, dec bool
	}{
		{OpsAll, "encrypt,decrypt", []string{"encrypt", "decrypt"}, true, true},
		{OpsEncrypt, "encrypt", []string{"encrypt"}, true, false},
		{OpsDecrypt, "decrypt", []string{"decrypt"}, false, true},
		{0, "", nil, false, false},
		{OpsDecrypt | 1<<7, "decrypt,op(7)", []string{"decrypt", "op(7)"}, false, true},
	} {
		if got := tt.ops.String(); got != tt.str {
			t.Errorf("Ops(%d).String() = %q, want %q", tt.ops, got, tt.str)
		}
		if got := tt.ops.List(); !slices.Equal(got, tt.list) {
			t.Errorf("Ops(%d).List() = %q, want %q", tt.ops, got, tt.list)
		}
		if got := tt.ops.Has(OpEncrypt); got != tt.enc {
			t.Errorf("Ops(%d).Has(encrypt) = %v, want %v", tt.ops, got, tt.enc)
		}
		if got := tt.ops.Has(OpDecrypt); got != tt.dec {
			t.Errorf("Ops(%d).Has(decrypt) = %v, want %v", tt.ops, got, tt.dec)
		}
	}
	for _, op := range []Op{0, 4, 7, 8, 255} {
		if Ops(255).Has(op) {
			t.Errorf("Ops(255).Has(%d) = true, want false", op)
		}
	}
}

func TestOpsJSON(t *testing.T) {
	type doc struct {
		Op  Op  `json:"op"`
		Ops Ops `json:"ops"`
	}
	b, err := json.Marshal(doc{OpDecrypt, OpsAll})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"op":"decrypt","ops":"encrypt,decrypt"}`; string(b) != want {
		t.Errorf("json.Marshal = %s, want %s", b, want)
	}
	var d doc
	if err := json.Unmarshal(b, &d); err != nil || d != (doc{OpDecrypt, OpsAll}) {
		t.Errorf("json.Unmarshal(%s) = %+v, %v", b, d, err)
	}
	if _, err := json.Marshal(doc{Op: 9}); err == nil {
		t.Errorf("json.Marshal(Op 9) = nil error, want error")
	}
	if err := json.Unmarshal([]byte(`{"ops":"sign"}`), &d); err == nil {
		t.Errorf("json.Unmarshal(ops sign) = nil error, want error")
	}
}

// TestGrantJSONRoundTrip checks that a Grant survives encoding/json, as a
// store that keeps grants as JSON relies on.
func TestGrantJSONRoundTrip(t *testing.T) {
	in := Grant{
		ID: "g1", Key: "demo/ssn", Party: "eth:0xab00000000000000000000000000000000000000", Ops: OpsAll,
		NotAfter: t0.Add(time.Hour), Custodian: "Org1MSP", Issuer: "node1", IssuedAt: t0, Observed: []string{"r1"},
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatalf("json.Marshal(grant) = %v", err)
	}
	var out Grant
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("json.Unmarshal(%s) = %v", b, err)
	}
	if !sameGrant(in.normal(), out.normal()) || !out.NotBefore.IsZero() {
		t.Errorf("json round trip = %+v, want %+v", out, in)
	}
	bad := bytes.Replace(b, []byte(`"eth:0xab`), []byte(`"eth:0xZZ`), 1)
	if err := json.Unmarshal(bad, &out); !errors.Is(err, ErrInvalidParty) {
		t.Errorf("json.Unmarshal(bad party) = %v, want ErrInvalidParty", err)
	}
}

func TestOpsExport(t *testing.T) {
	if OpsExport != 8 {
		t.Fatalf("OpsExport = %d, want 8 (persisted)", OpsExport)
	}
	set, err := ParseOps("export,decrypt")
	if err != nil || set != OpsExport|OpsDecrypt {
		t.Fatalf(`ParseOps("export,decrypt") = %v, %v`, set, err)
	}
	if OpsAll.Has(OpExport) {
		t.Fatal("OpsAll must not include export")
	}
	text, err := set.MarshalText()
	if err != nil || string(text) != "decrypt,export" {
		t.Fatalf("MarshalText = %q, %v", text, err)
	}
	var back Ops
	if err := back.UnmarshalText(text); err != nil || back != set {
		t.Fatalf("UnmarshalText(%q) = %v, %v", text, back, err)
	}
}
