package kms_test

import (
	"syscall"
	"testing"
	"time"
)

// processCPU starts measuring the CPU time of the whole process (the
// benchmark's goroutine, the garbage collector's workers, anything the
// core starts) and returns the function that reports it per item as
// cpu-ns/item. On a machine shared with other work, wall time includes
// waiting for a core; CPU time mostly does not.
func processCPU(b *testing.B, items int) func() {
	start := processCPUTime()
	return func() {
		if d := processCPUTime() - start; b.N > 0 && d > 0 {
			b.ReportMetric(float64(d.Nanoseconds())/float64(b.N*items), "cpu-ns/item")
		}
	}
}

func processCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
