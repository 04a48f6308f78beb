package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The tests run `keymesh init` against a keymeshd built once from this
// checkout into a temporary directory (go build: a warm cache makes it a
// link).
var keymeshdBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	findKeymeshd = func() (string, error) {
		b := &keymeshdBuild
		b.once.Do(func() {
			if b.dir, b.err = os.MkdirTemp("", "keymesh-test-bin-"); b.err != nil {
				return
			}
			b.path = filepath.Join(b.dir, "keymeshd")
			out, err := exec.Command("go", "build", "-o", b.path, "../keymeshd").CombinedOutput()
			if err != nil {
				b.err = &buildError{err, string(out)}
			}
		})
		return b.path, b.err
	}
	code := m.Run()
	if keymeshdBuild.dir != "" {
		os.RemoveAll(keymeshdBuild.dir)
	}
	os.Exit(code)
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string {
	return "go build ./cmd/keymeshd: " + e.err.Error() + ": " + e.out
}

// TestInitWithoutKeymeshd: with no keymeshd beside keymesh or on PATH, init
// fails with a message that says what to install.
func TestInitWithoutKeymeshd(t *testing.T) {
	saved := findKeymeshd
	t.Cleanup(func() { findKeymeshd = saved })
	findKeymeshd = lookKeymeshd
	t.Setenv("PATH", t.TempDir())
	code, _, errs := runLocal(t, "init", "--data", filepath.Join(t.TempDir(), "node"))
	if code != 1 || !strings.Contains(errs, "keymeshd") || !strings.Contains(errs, "PATH") {
		t.Errorf("init without keymeshd = exit %d, stderr %q; want 1 and a message naming keymeshd and PATH", code, errs)
	}
}

// TestInitFindsKeymeshdOnPath: the lookup takes keymeshd from PATH when it
// is not beside the executable (the test binary's directory has none).
func TestInitFindsKeymeshdOnPath(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "keymeshd")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho '{\"data\":\"d\",\"org\":\"o\",\"admin_token\":\"kmt_x\"}'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	if p, err := lookKeymeshd(); err != nil || p != fake {
		t.Fatalf("lookKeymeshd() = %q, %v; want %q", p, err, fake)
	}
}
