package main

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// returnMemory hands memory that a burst left behind back to the system.
// With GOGC at 400 an idle process runs no collection (the runtime forces
// one only every two minutes), so the garbage of a burst of large or
// hostile requests keeps its pages. Every interval, if the heap the
// process holds exceeds the live heap of the last collection by more than
// slack, it collects and returns the free pages (debug.FreeOSMemory, a few
// milliseconds of CPU for keymeshd's small live heap).
func returnMemory(ctx context.Context, interval time.Duration, slack uint64) {
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(samples)
		held, live := samples[0].Value.Uint64(), samples[1].Value.Uint64()
		if held > live+slack {
			debug.FreeOSMemory()
		}
	}
}
