package badgerstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/dgraph-io/ristretto/v2/z"
	"google.golang.org/protobuf/proto"
)

// ErrDamaged is wrapped when a store file is damaged so that badger could
// not open it safely.
var ErrDamaged = errors.New("badgerstore: store file damaged")

// checkTables reads the footer of every table (.sst) in dir the way badger
// will and verifies the index checksum, then every block's checksum
// (checkBlocks), before badger opens them. Badger parses a table's footer
// lengths before it verifies anything, in its own goroutines, so a damaged
// footer would crash the process with a slice bounds panic no caller can
// recover; here it is an error naming the file. This is the one check of
// whole tables at open: badger itself then verifies each block as it reads
// it (options.OnBlockRead), not every table again. The tables are checked
// on every core (a 100k-key store has ~50 tables); the first damaged one
// in file-name order is the one named.
//
// Each table is read with the compression badger's manifest records for
// it: tables written before keymesh stopped compressing (see Open) are
// Snappy, later ones are not, and a store holds both until compaction has
// rewritten the old ones. A table the manifest does not list (one a crash
// left behind before its manifest entry was written) is not read: badger
// deletes it at open without reading it. Tables without a manifest are
// refused, as a damaged manifest is: badger would start an empty store
// and delete them.
func checkTables(dir string) error {
	paths, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return nil
	}
	listed, err := tableCompressions(dir)
	if err != nil {
		return fmt.Errorf("%w: %s: %w; restore the data directory from a backup", ErrDamaged, filepath.Join(dir, badger.ManifestFilename), err)
	}
	type listedTable struct {
		path string
		c    options.CompressionType
	}
	var tables []listedTable
	for _, p := range paths {
		if c, ok := listed[tableID(p)]; ok {
			tables = append(tables, listedTable{p, c})
		}
	}
	errs := make([]error, len(tables))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(tables)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(tables); i = int(next.Add(1) - 1) {
				errs[i] = checkTable(tables[i].path, tables[i].c)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("%w: %s: %v; restore the data directory from a backup", ErrDamaged, tables[i].path, err)
		}
	}
	return nil
}

func checkTable(path string, c options.CompressionType) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	pos := len(b) - 4
	if pos < 0 {
		return errors.New("shorter than its footer")
	}
	n := int(binary.BigEndian.Uint32(b[pos:]))
	if n > pos {
		return errors.New("checksum length out of range")
	}
	pos -= n
	var chk pb.Checksum
	if err := proto.Unmarshal(b[pos:pos+n], &chk); err != nil {
		return fmt.Errorf("checksum: %v", err)
	}
	if chk.Algo != pb.Checksum_CRC32C && chk.Algo != pb.Checksum_XXHash64 {
		return fmt.Errorf("unknown checksum algorithm %d", chk.Algo) // badger would panic
	}
	pos -= 4
	if pos < 0 {
		return errors.New("index length missing")
	}
	n = int(binary.BigEndian.Uint32(b[pos:]))
	if n > pos {
		return errors.New("index length out of range")
	}
	pos -= n
	if err := y.VerifyChecksum(b[pos:pos+n], &chk); err != nil {
		return fmt.Errorf("index: %v", err)
	}
	return checkBlocks(path, c)
}

// checkBlocks opens the table read-only as badger would and verifies every
// block's checksum, on this goroutine and under recover: a sound index can
// still point into a damaged block, whose trailer badger slices before it
// verifies anything (a panic in badger's own goroutines), and a table that
// fails its checksum badger skips with a log line — data lost without an
// error. Both are refusals here. c is the table's compression.
func checkBlocks(path string, c options.CompressionType) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("a block is unreadable")
		}
	}()
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer func() { _ = mf.Close(-1) }()
	def := badger.DefaultOptions("")
	// OnBlockRead: OpenTable does not verify the table itself, and
	// VerifyChecksum reads (and so verifies) every block once, here.
	t, err := table.OpenTable(mf, table.Options{ChkMode: options.OnBlockRead, Compression: c,
		BlockSize: def.BlockSize, BloomFalsePositive: def.BloomFalsePositive})
	if err != nil {
		return fmt.Errorf("blocks: %v", err)
	}
	if err := t.VerifyChecksum(); err != nil {
		return fmt.Errorf("blocks: %v", err)
	}
	return nil
}

// errNoManifest reports tables in a store directory without badger's
// manifest.
var errNoManifest = errors.New("the store has tables but no manifest")

// tableCompressions reads badger's manifest in dir as badger does at open
// and returns the compression of each table it lists, by file ID.
func tableCompressions(dir string) (map[uint64]options.CompressionType, error) {
	f, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoManifest
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, _, err := badger.ReplayManifestFile(f, 0, badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		return nil, err
	}
	out := make(map[uint64]options.CompressionType, len(m.Tables))
	for id, t := range m.Tables {
		out[id] = t.Compression
	}
	return out, nil
}

// tableID is the file ID of the table at path, as badger names tables
// (table.IDToFilename), or math.MaxUint64 for a name badger does not give
// a table: no manifest lists it, since badger's file IDs count up from 1.
// (table.ParseFileID exits the process on some names, "-1.sst".)
func tableID(path string) uint64 {
	name, ok := strings.CutSuffix(filepath.Base(path), ".sst")
	if !ok {
		return math.MaxUint64
	}
	id, err := strconv.ParseUint(name, 10, 64)
	if err != nil {
		return math.MaxUint64
	}
	return id
}
