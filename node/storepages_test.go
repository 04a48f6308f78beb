package node

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestKeepStorePagesDown: the store's pages are released when more than
// the slack are resident, not otherwise, and the loop ends with its
// context or when the pages cannot be counted.
func TestKeepStorePagesDown(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		resident int64
		err      error
		release  bool
	}{
		{"over the slack", 65 << 20, nil, true},
		{"at the slack", 64 << 20, nil, false},
		{"few", 1 << 20, nil, false},
		{"cannot count", 0, errors.New("no smaps"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var counted, released atomic.Int32
			done := make(chan error, 1)
			go func() {
				done <- keepStorePagesDown(ctx, time.Millisecond, 64<<20,
					func() (int64, error) { counted.Add(1); return c.resident, c.err },
					func() { released.Add(1) })
			}()
			if c.err != nil {
				select {
				case err := <-done:
					if !errors.Is(err, c.err) {
						t.Fatalf("keepStorePagesDown = %v, want %v", err, c.err)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("keepStorePagesDown went on after it could not count the pages")
				}
				return
			}
			for deadline := time.Now().Add(10 * time.Second); counted.Load() < 3; {
				if time.Now().After(deadline) {
					t.Fatal("keepStorePagesDown did not check the pages")
				}
				time.Sleep(time.Millisecond)
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("keepStorePagesDown = %v after its context ended, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("keepStorePagesDown did not end with its context")
			}
			if got := released.Load() > 0; got != c.release {
				t.Errorf("released %d times after %d checks of %d MiB; want a release: %v", released.Load(), counted.Load(), c.resident>>20, c.release)
			}
		})
	}
}

// TestFileGrowth: growth counts from the last release; a fall below the
// mark (the kernel reclaimed pages itself) lowers it, so what grows after
// counts in full; an unreadable count is an error and leaves the mark.
func TestFileGrowth(t *testing.T) {
	t.Parallel()
	var now int64
	var fail error
	g := &fileGrowth{read: func() (int64, error) { return now, fail }}
	step := func(set int64, want int64) {
		t.Helper()
		now = set
		got, err := g.grown()
		if err != nil || got != want {
			t.Fatalf("at %d (mark %d): grown = %d, %v; want %d", set, g.mark, got, err, want)
		}
	}
	now = 100
	g.released()
	step(100, 0)
	step(130, 30)
	now = 140
	g.released()
	step(150, 10)
	step(90, 0)   // reclaimed below the mark
	step(120, 30) // counted from 90
	fail = errors.New("no statm")
	if _, err := g.grown(); !errors.Is(err, fail) {
		t.Fatalf("grown = %v, want %v", err, fail)
	}
	g.released() // a failed read keeps the mark
	fail = nil
	step(120, 30)
}
