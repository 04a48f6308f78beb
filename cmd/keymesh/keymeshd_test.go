package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keymesh/keymesh/cmd/internal/initnode"
)

// The test binary doubles as keymeshd for `keymesh init`: run with
// KEYMESH_TEST_KEYMESHD=1 and "init ARGS", it is `keymeshd init ARGS` (the
// same initnode.Run keymeshd's main calls), so the tests exec a real child
// process without building keymeshd.
func TestMain(m *testing.M) {
	if os.Getenv("KEYMESH_TEST_KEYMESHD") == "1" {
		if len(os.Args) < 2 || os.Args[1] != "init" {
			os.Exit(2)
		}
		os.Exit(initnode.Run(os.Args[2:], os.Stdout, os.Stderr))
	}
	findKeymeshd = func() (string, error) { return os.Executable() }
	keymeshdEnv = []string{"KEYMESH_TEST_KEYMESHD=1"}
	os.Exit(m.Run())
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
	// And init runs what it found, passing its flags on.
	saved, savedEnv := findKeymeshd, keymeshdEnv
	t.Cleanup(func() { findKeymeshd, keymeshdEnv = saved, savedEnv })
	findKeymeshd, keymeshdEnv = lookKeymeshd, nil
	code, out, errs := runLocal(t, "init", "--data", "d", "-o", "json")
	if code != 0 || !strings.Contains(out, `"admin_token": "kmt_x"`) {
		t.Errorf("init through a keymeshd on PATH = exit %d, %q, stderr %q", code, out, errs)
	}
}
