package audit

import (
	"os"
	"syscall"
)

// fdatasync flushes f's data (and the metadata needed to read it back, such
// as its size) without its other metadata.
func fdatasync(f *os.File) error {
	for range 8 { // EINTR is retried, a few times at most
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
	return syscall.EINTR
}
