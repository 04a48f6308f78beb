package ethereum_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The JavaScript tests (TestEthersClient, TestJSClient) need Node and the
// npm packages of their directories. Without them they skip, and TestMain
// says so in one line that `go test ./...` shows without -v: a passing
// package's own output is hidden in package-list mode, so the line also
// goes to the stderr of the go command that runs this test binary (its
// parent, on Linux, when that stderr is a terminal or a pipe, as in CI).
// KEYMESH_REQUIRE_JSTEST=1 (set by .ci/run) makes the missing packages a
// failure instead.
var jsSkips struct {
	sync.Mutex
	why []string
}

// jsMissing fails t (KEYMESH_REQUIRE_JSTEST=1) or skips it, and records the
// skip for TestMain's notice.
func jsMissing(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("KEYMESH_REQUIRE_JSTEST") == "1" {
		t.Fatal(what)
	}
	jsSkips.Lock()
	jsSkips.why = append(jsSkips.why, t.Name()+": "+what)
	jsSkips.Unlock()
	t.Skip(what)
}

func TestMain(m *testing.M) {
	code := m.Run()
	jsSkips.Lock()
	why := jsSkips.why
	jsSkips.Unlock()
	if len(why) > 0 {
		notice("keymesh: SKIPPED the JavaScript tests of chaincode/ethereum (" + strings.Join(why, "; ") + ")")
	}
	os.Exit(code)
}

// notice writes line to this binary's stderr and, when the parent is the
// go command with a terminal or pipe as stderr, to that stderr too.
func notice(line string) {
	fmt.Fprintln(os.Stderr, line)
	ppid := strconv.Itoa(os.Getppid())
	comm, err := os.ReadFile("/proc/" + ppid + "/comm")
	if err != nil || strings.TrimSpace(string(comm)) != "go" {
		return
	}
	fd := "/proc/" + ppid + "/fd/2"
	if fi, err := os.Stat(fd); err != nil || fi.Mode().IsRegular() {
		// A regular file would be opened at another offset than the go
		// command's own, and its later output would overwrite the line.
		return
	}
	f, err := os.OpenFile(fd, os.O_WRONLY, 0)
	if err != nil {
		return
	}
	fmt.Fprintln(f, line)
	f.Close()
}
