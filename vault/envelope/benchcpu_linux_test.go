package envelope

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// threadCPU starts measuring the CPU time of the benchmark's own OS thread
// and returns the function that reports it per operation as cpu-ns/op, next
// to ns/op. On a machine shared with other work, wall time includes waiting
// for a core; the thread's CPU time mostly does not. Call it before b.Loop
// and the returned function after.
func threadCPU(b *testing.B) func() {
	runtime.LockOSThread()
	start := threadCPUTime()
	return func() {
		d := threadCPUTime() - start
		runtime.UnlockOSThread()
		if b.N > 0 {
			b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

func threadCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
