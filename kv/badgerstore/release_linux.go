package badgerstore

import (
	"bufio"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func releaseMapped(dir string) (int, error) {
	var ranges []mapping
	err := eachLine("/proc/self/maps", func(line string) error {
		if m, ok := parseMapsLine(line); ok && storeFile(dir, m.path) {
			ranges = append(ranges, m)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("badgerstore: release mapped pages: %w", err)
	}
	advised := 0
	for _, m := range ranges {
		// Not unix.Madvise: it takes a []byte, and the range is not Go
		// memory. ENOMEM: the range was unmapped meanwhile (a table
		// compacted away), nothing to release.
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.lo), uintptr(m.hi-m.lo), unix.MADV_PAGEOUT)
		switch {
		case errno == 0:
			advised++
		case errno == unix.EINVAL:
			return advised, ErrUnsupported // a kernel before 5.4
		case errno != unix.ENOMEM:
			return advised, fmt.Errorf("badgerstore: release mapped pages: %w", errno)
		}
	}
	return advised, nil
}

func fileResident() (int64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, fmt.Errorf("badgerstore: file-backed resident memory: %w", err)
	}
	pages, err := statmShared(string(b))
	if err != nil {
		return 0, fmt.Errorf("badgerstore: file-backed resident memory: %w", err)
	}
	return pages * int64(os.Getpagesize()), nil
}

// eachLine calls fn with each line of the file at path (a /proc file of
// this process), until fn fails.
func eachLine(path string, fn func(string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 64<<10) // a line is at most a path (PATH_MAX) and its fields
	for sc.Scan() {
		if err := fn(sc.Text()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}
