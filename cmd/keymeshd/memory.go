package main

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"sync/atomic"
	"time"
)

// returnMemory hands memory that a burst left behind back to the system.
// With GOGC at 400 an idle process runs no collection (the runtime forces
// one only every two minutes), and the runtime's scavenger keeps free
// pages up to the heap goal, which the governor sets at twice the live
// heap: so the garbage of a burst of large or hostile requests keeps its
// pages. Every interval, if the heap the process holds (mustReturn)
// exceeds the live heap of the last collection by more than slack, it
// collects and returns the free pages (debug.FreeOSMemory, a few
// milliseconds of CPU for keymeshd's small live heap). It also checks
// once as it starts: keymeshd starts it when the node begins to serve, so
// the garbage of loading a large node's state (up to a few hundred MB at
// 100k keys, collected at GOGC=100 only) is handed back then, not ten
// seconds into serving.
func returnMemory(ctx context.Context, interval time.Duration, slack uint64) {
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
	check := func() {
		metrics.Read(samples)
		if mustReturn(samples[0].Value.Uint64(), samples[1].Value.Uint64(), samples[2].Value.Uint64(), slack) {
			debug.FreeOSMemory()
		}
	}
	check()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		check()
	}
}

// mustReturn reports whether a heap of objects bytes of objects (live,
// or dead and not yet swept) and free bytes of free pages not yet
// returned holds more than slack beyond live, the live heap of the last
// collection. The free pages count: once a collection has swept the
// garbage of a load or a burst, its pages are free but still the
// process's, until the scavenger or FreeOSMemory returns them.
func mustReturn(objects, free, live, slack uint64) bool {
	return objects+free > live+slack
}

// Memory governor: keymeshd's soft memory limit follows its live heap.
//
// A fixed limit serves one size of node only. Under a limit well above the
// live heap (a small node) the collector idles while garbage piles up to
// the limit: a soak with grant and revoke traffic held ~250 MiB for a
// live heap of ~100 MB. Under a limit below the live heap (a node with
// 100k keys or grants) the collector runs back to back, up to half the
// CPU. So after every collection the governor sets the limit to
//
//	max(floor, 2 × base + memoryLimitSlack, 1.25 × live heap + memoryLimitSlack)
//
// where base is the smallest live heap of the last liveWindow collections
// (limitFor says why), and GOGC stays at 400: a small node collects when
// its heap reaches the floor (GOGC 400 alone would let it reach five times
// its live heap); a large one collects as at GOGC 100, never back to back,
// whatever it holds. The trade is explicit: collections are more frequent than at a
// plain GOGC 400, and the floor sets how much (docs/benchmarks.md,
// "Memory governor").
//
// In a container with a memory limit (cgroup.go) the limit never exceeds
// a ceiling of two thirds of the container's (heapCeiling), and the floor
// not either: near the ceiling the collector works harder, up to the
// runtime's own cap of half the CPU, instead of the process being killed
// at the container's limit (docs/benchmarks.md, "In a memory cgroup").
// A live heap past three quarters of the ceiling is logged as a warning,
// at most once a minute: the container is too small for what the node
// holds, and only a larger limit helps.
const (
	// liveWindow is how many collections' live heaps limitFor's base is
	// the smallest of.
	liveWindow       = 4
	defaultHeapFloor = 96 << 20
	// memoryLimitSlack covers what the limit counts beside the heap:
	// goroutine stacks, the collector's metadata, the runtime's own.
	memoryLimitSlack = 16 << 20
)

// heapCeiling is the highest soft limit for a container whose memory
// limit is limit bytes (0: none, and no ceiling): two thirds of it. The
// third left over is for what the container counts beside the runtime's
// memory: the page cache of the binary and of badger's mapped tables,
// which the kernel reclaims as the container nears its limit, and the
// memory the runtime does not manage.
func heapCeiling(limit uint64) uint64 { return limit / 3 * 2 }

// limitFor is the soft memory limit for a live heap of live bytes whose
// base, the smallest live heap of the last liveWindow collections, is
// base bytes, under ceiling (0: none): twice the base, and never less
// than a quarter over the live heap. The base keeps a passing peak of
// the live heap from doubling the limit: badger's compactions hold tens of
// MB of table builders for a few seconds, and a limit of twice a live
// heap measured during one let the heap grow by as much again once the
// builders were garbage. The quarter over the live heap keeps the
// collector from running back to back while such a peak lasts, or while
// a live heap that really grew is still above twice the base: a limit
// just over the live heap cut a soak's RSS high-water mark from ~215 to
// 151 MiB but its throughput by 28 % (docs/benchmarks.md, "Sixth
// session").
func limitFor(live, base, floor, ceiling uint64) int64 {
	l := max(floor, 2*base+memoryLimitSlack, live+live/4+memoryLimitSlack)
	if ceiling > 0 {
		l = min(l, ceiling)
	}
	if l > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(l)
}

// governor sets the soft memory limit after every collection.
type governor struct {
	floor   uint64
	ceiling uint64 // 0: none
	stopped atomic.Bool
	// readLive returns the live heap of the last collection (tests
	// replace it).
	readLive func() uint64
	// recent holds the live heap of the last liveWindow collections
	// (next: where the next goes); limitFor's base is its smallest.
	recent [liveWindow]uint64
	next   int
	// set is debug.SetMemoryLimit (tests record it instead).
	set func(int64) int64
	// crowded, if set, is called when the live heap has grown past three
	// quarters of the ceiling (at most once per crowdedEvery): the
	// container is too small for what the node holds.
	crowded   func(live, ceiling uint64)
	lastWarn  time.Time
	clockFunc func() time.Time
}

// crowdedEvery is how often the governor says, at most, that the live
// heap crowds the ceiling.
const crowdedEvery = time.Minute

// governMemory starts the governor of the process's soft memory limit,
// which stays at or under ceiling (0: none).
// crowded, if set, hears when the live heap crowds the ceiling.
func governMemory(ctx context.Context, floor, ceiling uint64, crowded func(live, ceiling uint64)) {
	g := newGovernor(floor, ceiling, debug.SetMemoryLimit)
	g.crowded = crowded
	g.start(ctx)
}

func newGovernor(floor, ceiling uint64, set func(int64) int64) *governor {
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	readLive := func() uint64 {
		metrics.Read(live)
		return live[0].Value.Uint64()
	}
	return &governor{floor: floor, ceiling: ceiling, readLive: readLive, set: set, clockFunc: time.Now}
}

// start sets the limit for the current live heap now and again after each
// collection until ctx is done.
func (g *governor) start(ctx context.Context) {
	g.adjust()
	g.arm()
	context.AfterFunc(ctx, func() { g.stopped.Store(true) })
}

// adjust sets the limit for the live heap of the last collection.
func (g *governor) adjust() {
	live := g.readLive()
	if g.next == 0 && g.recent[0] == 0 {
		for i := range g.recent { // the first: the base is the live heap
			g.recent[i] = live
		}
	}
	g.recent[g.next] = live
	g.next = (g.next + 1) % liveWindow
	g.set(limitFor(live, slices.Min(g.recent[:]), g.floor, g.ceiling))
	if g.crowded != nil && g.ceiling > 0 && live > g.ceiling/4*3 {
		if now := g.clockFunc(); g.lastWarn.IsZero() || now.Sub(g.lastWarn) >= crowdedEvery {
			g.lastWarn = now
			g.crowded(live, g.ceiling)
		}
	}
}

// arm registers a cleanup on a fresh object, which runs after the
// collection that frees it: each collection adjusts the limit and arms
// the next. The object is 32 bytes with a pointer, out of reach of the
// tiny allocator (whose objects may never get their cleanups run).
func (g *governor) arm() {
	type sentinel struct {
		_ *byte
		_ [24]byte
	}
	runtime.AddCleanup(new(sentinel), func(g *governor) {
		if g.stopped.Load() {
			return
		}
		g.adjust()
		g.arm()
	}, g)
}
