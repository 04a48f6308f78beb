package badgerstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// ReleaseMapped hands the pages of the store's tables and value log that
// are mapped into the process back to the kernel, and returns how many
// mappings it advised. Badger reads its files through mmap and a
// node's start-up reads the whole store (every key, event and record), so
// after it the process holds the store's every page: at 100k keys ~200
// MiB of RSS, file-backed but resident until the kernel needs the memory.
// Once the state is loaded those pages are cold. A node calls this when it
// begins to serve, and again whenever its file-backed memory
// (FileResident) has grown by more than a little since
// (node.storePagesSlack).
//
// Nothing is lost: the kernel drops clean pages and keeps dirty ones for
// the usual writeback, and a read of a dropped page faults it in from the
// file again, as after any reclaim.
// The advice (Linux MADV_PAGEOUT) is a reclaim hint that never changes
// what memory holds, so a range that was unmapped and mapped again by
// someone else between the read of the process's mappings and the advice
// loses nothing either. On systems without it, ReleaseMapped does nothing
// and returns ErrUnsupported.
func (d *DB) ReleaseMapped() (int, error) {
	return releaseMapped(d.realDir)
}

// FileResident returns how many bytes of file-backed memory the whole
// process has resident (its binary's pages, the store's mapped files and
// any other mapping of a file): the shared field of /proc/self/statm, one
// short line the kernel computes from counters, cheap enough to read
// several times a second where /proc/self/smaps is a walk of every
// mapping (under 10 ms at 100k keys, too slow to read that often). Its
// growth since the store's pages were last released is (but for a few
// pages of the binary) what the store mapped since. Elsewhere it returns
// ErrUnsupported.
func FileResident() (int64, error) { return fileResident() }

// ErrUnsupported is returned by ReleaseMapped and FileResident where the system cannot release or count mapped pages (not
// Linux, or for ReleaseMapped a kernel older than 5.4).
var ErrUnsupported = errors.New("badgerstore: releasing mapped pages is not supported here")

// mapping is one line of /proc/self/maps: an address range and the path
// of the file mapped there ("" for anonymous memory).
type mapping struct {
	lo, hi uint64
	path   string
}

// parseMapsLine parses one line of /proc/<pid>/maps: "lo-hi perms offset
// dev inode path", where path (absent for anonymous memory) may contain
// spaces and ends in " (deleted)" for a file removed since it was mapped.
func parseMapsLine(line string) (mapping, bool) {
	rangeField, rest, ok := strings.Cut(line, " ")
	if !ok {
		return mapping{}, false
	}
	los, his, ok := strings.Cut(rangeField, "-")
	if !ok {
		return mapping{}, false
	}
	lo, err1 := strconv.ParseUint(los, 16, 64)
	hi, err2 := strconv.ParseUint(his, 16, 64)
	if err1 != nil || err2 != nil || hi <= lo {
		return mapping{}, false
	}
	for range 4 { // perms, offset, dev, inode
		rest = strings.TrimLeft(rest, " ")
		var field string
		if field, rest, _ = strings.Cut(rest, " "); field == "" {
			return mapping{}, false
		}
	}
	return mapping{lo: lo, hi: hi, path: strings.TrimLeft(rest, " ")}, true
}

// storeFile reports whether a mapping of path is of a table or value log
// file directly in dir (an absolute path with symbolic links resolved,
// as the kernel prints them): the files badger maps for reading.
// Memtable logs (.mem), which badger writes through their mapping, and
// files deleted since they were mapped are left alone.
func storeFile(dir, path string) bool {
	if filepath.Dir(path) != dir {
		return false
	}
	return strings.HasSuffix(path, ".sst") || strings.HasSuffix(path, ".vlog")
}

// statmShared returns the shared field of a /proc/<pid>/statm line, in
// pages: "size resident shared text lib data dt", the resident pages
// backed by a file or shared memory (RssFile + RssShmem).
func statmShared(line string) (int64, error) {
	f := strings.Fields(line)
	if len(f) < 3 {
		return 0, fmt.Errorf("statm %q: want at least 3 fields", line)
	}
	n, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("statm %q: shared field is not a page count", line)
	}
	return n, nil
}
