package main

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestLimitFor(t *testing.T) {
	for _, tc := range []struct {
		live, base, floor, ceiling uint64
		want                       int64
	}{
		{0, 0, 96 << 20, 0, 96 << 20},
		{30 << 20, 30 << 20, 96 << 20, 0, 96 << 20},    // a small node: the floor
		{40 << 20, 40 << 20, 96 << 20, 0, 96 << 20},    // 2×40+16 = 96: at the floor
		{100 << 20, 100 << 20, 96 << 20, 0, 216 << 20}, // a large one: twice its live heap
		{1 << 62, 1 << 62, 96 << 20, 0, 1<<63 - 1},     // no overflow
		{300 << 20, 300 << 20, 0, 0, (600 + 16) << 20}, // no floor
		// A passing peak of the live heap: twice the base, or a quarter
		// over the live heap, whichever is more.
		{100 << 20, 54 << 20, 96 << 20, 0, 141 << 20},
		{70 << 20, 54 << 20, 96 << 20, 0, 124 << 20},
		{400 << 20, 100 << 20, 96 << 20, 0, 516 << 20}, // a heap that really grew: never below it
		// In a container: never above the ceiling, the floor included.
		{30 << 20, 30 << 20, 96 << 20, 100 << 20, 96 << 20},
		{60 << 20, 60 << 20, 96 << 20, 100 << 20, 100 << 20},
		{30 << 20, 30 << 20, 96 << 20, 64 << 20, 64 << 20},
		{1 << 62, 1 << 62, 96 << 20, 1 << 30, 1 << 30},
	} {
		if got := limitFor(tc.live, tc.base, tc.floor, tc.ceiling); got != tc.want {
			t.Errorf("limitFor(%d MiB, base %d MiB, %d MiB, %d MiB) = %d MiB, want %d MiB", tc.live>>20, tc.base>>20, tc.floor>>20, tc.ceiling>>20, got>>20, tc.want>>20)
		}
	}
}

// TestGovernorBaseIgnoresAPassingPeak: one collection that finds a peak
// of the live heap raises the limit to a quarter over it, not to twice it;
// a live heap that stays up raises the limit to twice it within
// liveWindow collections.
func TestGovernorBaseIgnoresAPassingPeak(t *testing.T) {
	var live uint64
	var limits []int64
	g := newGovernor(8<<20, 0, func(l int64) int64 { limits = append(limits, l); return 0 })
	g.readLive = func() uint64 { return live }
	for _, l := range []uint64{50, 50, 50, 50, 150, 50, 50} {
		live = l << 20
		g.adjust()
	}
	if got, want := limits[4]>>20, int64(150+150/4+16); got != want {
		t.Errorf("limit at a peak of 150 MiB over a base of 50 = %d MiB, want %d", got, want)
	}
	if got := limits[6] >> 20; got != 116 {
		t.Errorf("limit after the peak = %d MiB, want 116 (twice the base of 50, + 16)", got)
	}
	for range liveWindow {
		live = 150 << 20
		g.adjust()
	}
	if got := limits[len(limits)-1] >> 20; got != 316 {
		t.Errorf("limit after %d collections at 150 MiB = %d MiB, want 316", liveWindow, got)
	}
}

// TestGovernorFollowsCollections: after each collection the governor sets
// the limit for the live heap, so a heap that grows past the floor raises
// the limit (never leaving it below the live heap) and one that shrinks
// lowers it back to the floor.
func TestGovernorFollowsCollections(t *testing.T) {
	var mu sync.Mutex
	var limits []int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const floor = 8 << 20
	newGovernor(floor, 0, func(l int64) int64 {
		mu.Lock()
		defer mu.Unlock()
		limits = append(limits, l)
		return 0
	}).start(ctx)
	last := func() int64 {
		mu.Lock()
		defer mu.Unlock()
		return limits[len(limits)-1]
	}
	// waitFor collects until the governor set a limit that satisfies ok.
	waitFor := func(what string, ok func(int64) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for i := 0; i < 200 && time.Now().Before(deadline); i++ {
			runtime.GC()
			time.Sleep(5 * time.Millisecond) // cleanups run on their own goroutine
			if ok(last()) {
				return
			}
		}
		t.Fatalf("after collections the limit is %d MiB; want %s", last()>>20, what)
	}
	held := make([][]byte, 0, 64)
	for range 64 {
		held = append(held, make([]byte, 1<<20)) // 64 MiB live
	}
	waitFor("at least twice a 64 MiB live heap", func(l int64) bool { return l >= 2*64<<20 })
	runtime.KeepAlive(held)
	held = nil
	waitFor("back near the floor", func(l int64) bool { return l < 48<<20 })
}

// TestGovernorSaysWhenCrowded: a live heap past three quarters of the
// ceiling is reported, once per crowdedEvery, and the limit stays at the
// ceiling.
func TestGovernorSaysWhenCrowded(t *testing.T) {
	var mu sync.Mutex
	var calls int
	var lastLimit int64
	const ceiling = 16 << 20
	now := time.Unix(0, 0)
	g := newGovernor(8<<20, ceiling, func(l int64) int64 {
		mu.Lock()
		defer mu.Unlock()
		lastLimit = l
		return 0
	})
	g.clockFunc = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	g.crowded = func(live, c uint64) {
		mu.Lock()
		defer mu.Unlock()
		if c != ceiling || live <= ceiling/4*3 {
			t.Errorf("crowded(%d, %d): not past three quarters of the ceiling", live, c)
		}
		calls++
	}
	held := make([][]byte, 0, 32)
	for range 32 {
		held = append(held, make([]byte, 1<<20)) // 32 MiB live, past the ceiling
	}
	runtime.GC()
	g.adjust()
	g.adjust()
	mu.Lock()
	if calls != 1 || lastLimit != ceiling {
		t.Errorf("after two adjustments: %d reports, limit %d; want 1 and the ceiling %d", calls, lastLimit, ceiling)
	}
	now = now.Add(crowdedEvery)
	mu.Unlock()
	g.adjust()
	mu.Lock()
	if calls != 2 {
		t.Errorf("a minute later: %d reports, want 2", calls)
	}
	mu.Unlock()
	runtime.KeepAlive(held)
}

// TestMustReturn: the heap held is its objects and its free pages not yet
// returned. After a start-up whose last collection came before the load
// ended, and a collection since, the objects are back at the live heap
// but hundreds of MB of freed pages are still the process's: the old rule,
// which compared the objects alone, kept them (a node with 100k keys held
// ~200 MiB more than its live heap for tens of seconds after ready).
func TestMustReturn(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name                string
		objects, free, live uint64
		want                bool
	}{
		{"garbage not yet collected", 400 * mib, 0, 200 * mib, true},
		{"garbage swept, pages free but not returned", 205 * mib, 250 * mib, 200 * mib, true},
		{"within the slack", 210 * mib, 10 * mib, 200 * mib, false},
		{"just returned", 200 * mib, 0, 200 * mib, false},
		{"small node", 3 * mib, 20 * mib, 2 * mib, false},
	} {
		if got := mustReturn(c.objects, c.free, c.live, 32*mib); got != c.want {
			t.Errorf("%s: mustReturn(%d, %d, %d MiB) = %v, want %v", c.name, c.objects/mib, c.free/mib, c.live/mib, got, c.want)
		}
	}
}
