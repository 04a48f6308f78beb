package badgerstore

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

func releaseMapped(dir string) (int, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("badgerstore: release mapped pages: %w", err)
	}
	var ranges []mapping
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 64<<10) // a line is at most a path (PATH_MAX) and its fields
	for sc.Scan() {
		if m, ok := parseMapsLine(sc.Text()); ok && storeFile(dir, m.path) {
			ranges = append(ranges, m)
		}
	}
	err = sc.Err()
	f.Close()
	if err != nil {
		return 0, fmt.Errorf("badgerstore: release mapped pages: read the process's mappings: %w", err)
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

func mappedResident(dir string) (int64, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("badgerstore: resident mapped pages: %w", err)
	}
	defer f.Close()
	var kib int64
	in := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		line := sc.Text()
		if m, ok := parseMapsLine(line); ok {
			in = storeFile(dir, m.path)
			continue
		}
		if rest, ok := strings.CutPrefix(line, "Rss:"); ok && in {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("badgerstore: resident mapped pages: smaps line %q", line)
			}
			kib += n
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("badgerstore: resident mapped pages: %w", err)
	}
	return kib << 10, nil
}
