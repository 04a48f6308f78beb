package badgerstore

import (
	"errors"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// TestBadgerstore_ReopenWhileChildrenStart is the regression test of the
// "Cannot acquire directory lock" that failed CI: a child process forked
// while the store was open holds a copy of badger's lock descriptor until
// it execs, so a close followed at once by an open in the same process
// could find the directory still locked. Open waits out such a copy.
func TestBadgerstore_ReopenWhileChildrenStart(t *testing.T) {
	t.Parallel()
	sh, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1) to fork")
	}
	dir := t.TempDir()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = exec.Command(sh).Run()
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; i < 60 && time.Now().Before(deadline); i++ {
		db, err := Open(dir, nil)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		mustClose(t, db)
	}
}

// TestBadgerstore_HeldLockIsErrLocked: a store open elsewhere (here, the
// same directory still open) is refused after LockWait with ErrLocked.
func TestBadgerstore_HeldLockIsErrLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := mustOpen(t, dir)
	defer mustClose(t, db)
	start := time.Now()
	second, err := Open(dir, nil)
	if err == nil {
		second.Close()
		t.Fatal("a second Open of an open store succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("second Open = %v, want ErrLocked", err)
	}
	if took := time.Since(start); took < LockWait/2 {
		t.Errorf("second Open failed after %v, before waiting out LockWait %v", took, LockWait)
	}
}
