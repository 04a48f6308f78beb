package secret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const canary = "hunter2-canary-0123456789"

func TestRedaction(t *testing.T) {
	s := New([]byte(canary))
	outs := map[string]string{
		"%s":  fmt.Sprintf("%s", s),
		"%v":  fmt.Sprintf("%v", s),
		"%+v": fmt.Sprintf("%+v", s),
		"%#v": fmt.Sprintf("%#v", s),
		"%x":  fmt.Sprintf("%x", s),
		"%q":  fmt.Sprintf("%q", s),
		"%d":  fmt.Sprintf("%d", s),
		"struct": fmt.Sprintf("%+v", struct {
			K *Bytes
		}{s}),
	}
	j, err := json.Marshal(map[string]any{"k": s})
	if err != nil {
		t.Fatal(err)
	}
	outs["json"] = string(j)
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("msg", "key", s)
	outs["slog-json"] = buf.String()
	buf.Reset()
	slog.New(slog.NewTextHandler(&buf, nil)).Info("msg", "key", s)
	outs["slog-text"] = buf.String()
	for name, out := range outs {
		if strings.Contains(out, canary) || strings.Contains(out, fmt.Sprintf("%x", canary)) {
			t.Errorf("%s output leaks the secret: %q", name, out)
		}
		if !strings.Contains(out, Redacted) {
			t.Errorf("%s output = %q, want it to contain %q", name, out, Redacted)
		}
	}
}

func TestCopyInOut(t *testing.T) {
	in := []byte(canary)
	s := New(in)
	in[0] = 'X'
	out, err := s.Copy()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != canary {
		t.Fatalf("Copy() = %q, want %q (New must copy its input)", out, canary)
	}
	out[0] = 'Y'
	again, _ := s.Copy()
	if string(again) != canary {
		t.Fatalf("Copy() after modifying a copy = %q, want %q", again, canary)
	}
}

func TestEqual(t *testing.T) {
	tests := []struct {
		name string
		a, b []byte
		want bool
	}{
		{"ok/equal", []byte("abc"), []byte("abc"), true},
		{"ok/empty", nil, []byte{}, true},
		{"fail/differ", []byte("abc"), []byte("abd"), false},
		{"fail/length", []byte("abc"), []byte("abcd"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := New(tt.a).Equal(New(tt.b)); got != tt.want {
				t.Errorf("Equal = %v, want %v", got, tt.want)
			}
			if got := New(tt.a).EqualBytes(tt.b); got != tt.want {
				t.Errorf("EqualBytes = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClear(t *testing.T) {
	s := New([]byte(canary))
	var inner []byte
	_ = s.Use(func(b []byte) error { inner = b; return nil })
	s.Clear()
	s.Clear() // idempotent
	if !bytes.Equal(inner, make([]byte, len(canary))) {
		t.Errorf("backing array after Clear = %q, want zeros", inner)
	}
	if _, err := s.Copy(); !errors.Is(err, ErrCleared) {
		t.Errorf("Copy() after Clear error = %v, want %v", err, ErrCleared)
	}
	if err := s.Use(func([]byte) error { return nil }); !errors.Is(err, ErrCleared) {
		t.Errorf("Use() after Clear error = %v, want %v", err, ErrCleared)
	}
	if s.Equal(s) || s.EqualBytes(nil) {
		t.Error("a cleared secret compared equal")
	}
	if !s.Cleared() {
		t.Error("Cleared() = false after Clear")
	}
}
