//go:build !linux

package envelope

import "testing"

// threadCPU reports nothing where the thread's CPU time is not available.
func threadCPU(*testing.B) func() { return func() {} }
