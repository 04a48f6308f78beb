package main

import (
	"bufio"
	"bytes"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// The memory limit of keymeshd's container: the smallest memory limit of
// its cgroup and the cgroup's ancestors, cgroup v2 (memory.max) or v1
// (the memory controller's memory.limit_in_bytes). The Go runtime does
// not read it, so a process that does not look keeps collecting as if
// the machine's memory were its own and is killed at the limit. The
// governor (memory.go) keeps its soft limit below it.
//
// What the cgroup counts is more than the runtime's memory: the page
// cache charged to it as well, here the binary's pages and badger's
// memory-mapped tables, which the kernel reclaims when the cgroup nears
// its limit. So the governor's ceiling leaves a third of the limit to
// them (heapCeiling).

// maxCgroupFile bounds what containerLimit reads of one file.
const maxCgroupFile = 64 << 10

// noLimit is a limit at or above which a cgroup has none: v2 writes
// "max"; v1 writes the largest page-aligned int64.
const noLimit = 1 << 62

// containerLimit returns the memory limit of the cgroup that
// /proc/self/cgroup names, in bytes, or 0 if there is none or it cannot
// be read. root is the file system holding /proc and /sys (os.DirFS("/")
// in keymeshd; a test's map in tests).
func containerLimit(root fs.FS) uint64 {
	self, err := readSmall(root, "proc/self/cgroup")
	if err != nil {
		return 0
	}
	v2, v1 := parseProcCgroup(self)
	var limit uint64
	if v1 != "" {
		limit = smallest(limit, walkLimits(root, "sys/fs/cgroup/memory", v1, "memory.limit_in_bytes"))
	}
	if v2 != "" {
		limit = smallest(limit, walkLimits(root, "sys/fs/cgroup", v2, "memory.max"))
		// A hybrid host mounts v2 under unified/.
		limit = smallest(limit, walkLimits(root, "sys/fs/cgroup/unified", v2, "memory.max"))
	}
	return limit
}

// parseProcCgroup returns the cgroup paths that /proc/self/cgroup's lines
// (hierarchy-ID:controllers:path) give for v2 (hierarchy 0, no
// controllers) and for v1's memory controller; "" for none.
func parseProcCgroup(b []byte) (v2, v1 string) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxCgroupFile)
	for sc.Scan() {
		id, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		controllers, p, ok := strings.Cut(rest, ":")
		if !ok || !strings.HasPrefix(p, "/") {
			continue
		}
		switch {
		case id == "0" && controllers == "":
			v2 = p
		case hasController(controllers, "memory"):
			v1 = p
		}
	}
	return v2, v1
}

func hasController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// walkLimits returns the smallest limit in file of cgroup p under mount
// and of each of its ancestors up to the mount's root, or 0 for none. A
// path that leaves the mount (a cgroup namespace shows "/" or a path
// relative to its own root) stops at the root.
func walkLimits(root fs.FS, mount, p, file string) uint64 {
	var limit uint64
	p = path.Clean(p)
	for range 64 {
		dir := path.Join(mount, p)
		if b, err := readSmall(root, path.Join(dir, file)); err == nil {
			limit = smallest(limit, parseLimit(b))
		}
		if p == "/" || p == "." {
			break
		}
		p = path.Dir(p)
	}
	return limit
}

// parseLimit reads a cgroup memory limit: bytes in decimal, or "max";
// 0 for none or for anything it cannot read.
func parseLimit(b []byte) uint64 {
	s := strings.TrimSpace(string(b))
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n >= noLimit {
		return 0
	}
	return n
}

// smallest returns the smaller of two limits, 0 being none.
func smallest(a, b uint64) uint64 {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

func readSmall(root fs.FS, name string) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(io.LimitReader(f, maxCgroupFile))
	return buf.Bytes(), err
}
