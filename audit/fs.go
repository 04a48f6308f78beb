package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
)

// FS is the directory a [Log] keeps its segment files in. [DirFS] is the
// one on disk; [MemFS] keeps the files in memory (tests, tools) and can be
// made to fail writes. A Log must be the only writer of its FS.
type FS interface {
	// List returns the names of the regular files in the directory.
	List() ([]string, error)
	// Open opens an existing file for reading and writing.
	Open(name string) (File, error)
	// Create creates name (mode 0600), truncating it if it exists.
	Create(name string) (File, error)
	// Rename renames a file atomically, replacing newName.
	Rename(oldName, newName string) error
	// Remove removes a file.
	Remove(name string) error
	// SyncDir makes the directory's entries (created, renamed and
	// removed files) durable.
	SyncDir() error
	// Free returns the space available for new data, in bytes.
	Free() (uint64, error)
}

// File is one segment file of an [FS].
type File interface {
	io.ReaderAt
	io.WriterAt
	// Truncate changes the file's size.
	Truncate(size int64) error
	// Size returns the file's size.
	Size() (int64, error)
	// Sync makes the file's data durable (fdatasync).
	Sync() error
	Close() error
}

// DirFS returns the FS of the directory path, creating it (mode 0700) if
// it does not exist and making it 0700 if it does. Files are written with
// pwrite(2) and never memory-mapped: their pages stay in the kernel's page
// cache, not in the process's resident memory.
func DirFS(path string) (FS, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if err := os.Chmod(path, 0o700); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return dirFS(path), nil
}

type dirFS string

func (d dirFS) path(name string) (string, error) {
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
		return "", fmt.Errorf("audit: bad file name %q", name)
	}
	return filepath.Join(string(d), name), nil
}

func (d dirFS) List() ([]string, error) {
	ents, err := os.ReadDir(string(d))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func (d dirFS) Open(name string) (File, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (d dirFS) Create(name string) (File, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (d dirFS) Rename(oldName, newName string) error {
	o, err := d.path(oldName)
	if err != nil {
		return err
	}
	n, err := d.path(newName)
	if err != nil {
		return err
	}
	return os.Rename(o, n)
}

func (d dirFS) Remove(name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	return os.Remove(p)
}

func (d dirFS) SyncDir() error { return SyncDir(string(d)) }

func (d dirFS) Free() (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(string(d), &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", string(d), err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// SyncDir fsyncs the directory path, making the creation, renaming and
// removal of its entries durable.
func SyncDir(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

type osFile struct{ f *os.File }

func (o osFile) ReadAt(p []byte, off int64) (int, error)  { return o.f.ReadAt(p, off) }
func (o osFile) WriteAt(p []byte, off int64) (int, error) { return o.f.WriteAt(p, off) }
func (o osFile) Truncate(size int64) error                { return o.f.Truncate(size) }
func (o osFile) Close() error                             { return o.f.Close() }
func (o osFile) Sync() error                              { return fdatasync(o.f) }

func (o osFile) Size() (int64, error) {
	st, err := o.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// MemFS is an in-memory [FS]: a real implementation (files grow, truncate,
// rename and are read back as on disk) whose writes can be made to fail.
// Its zero value is not usable; call NewMemFS.
type MemFS struct {
	mu    sync.Mutex
	files map[string]*memData
	free  uint64
	fail  error // if non-nil, WriteAt writes partial bytes, then returns it
	part  int
}

type memData struct{ b []byte }

// NewMemFS returns an empty in-memory FS reporting 1 TiB free.
func NewMemFS() *MemFS { return &MemFS{files: map[string]*memData{}, free: 1 << 40} }

// SetWriteFailure makes every later write store its first partial bytes
// (all of them if partial is larger than the write) and then return err;
// nil clears the failure. Truncate and Sync keep working.
func (m *MemFS) SetWriteFailure(err error, partial int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail, m.part = err, partial
}

// SetFree sets what Free reports.
func (m *MemFS) SetFree(n uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.free = n
}

// ReadFile returns a copy of a file's contents.
func (m *MemFS) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.files[name]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return bytes.Clone(d.b), nil
}

// WriteFile replaces a file's contents (creating it), as someone with
// access to the disk could.
func (m *MemFS) WriteFile(name string, b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[name] = &memData{b: bytes.Clone(b)}
}

// List implements FS.
func (m *MemFS) List() ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.files))
	for k := range m.files {
		out = append(out, k)
	}
	slices.Sort(out)
	return out, nil
}

// Open implements FS.
func (m *MemFS) Open(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &memFile{fs: m, d: d}, nil
}

// Create implements FS.
func (m *MemFS) Create(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := &memData{}
	m.files[name] = d
	return &memFile{fs: m, d: d}, nil
}

// Rename implements FS.
func (m *MemFS) Rename(oldName, newName string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.files[oldName]
	if !ok {
		return &fs.PathError{Op: "rename", Path: oldName, Err: fs.ErrNotExist}
	}
	delete(m.files, oldName)
	m.files[newName] = d
	return nil
}

// Remove implements FS.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.files[name]; !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(m.files, name)
	return nil
}

// SyncDir implements FS.
func (m *MemFS) SyncDir() error { return nil }

// Free implements FS.
func (m *MemFS) Free() (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.free, nil
}

type memFile struct {
	fs *MemFS
	d  *memData
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= int64(len(f.d.b)) {
		return 0, io.EOF
	}
	n := copy(p, f.d.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	n, err := len(p), error(nil)
	if f.fs.fail != nil {
		n, err = min(f.fs.part, len(p)), f.fs.fail
	}
	if end := off + int64(n); end > int64(len(f.d.b)) {
		f.d.b = append(f.d.b, make([]byte, end-int64(len(f.d.b)))...)
	}
	copy(f.d.b[off:], p[:n])
	return n, err
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if size < 0 {
		return errors.New("negative size")
	}
	if size <= int64(len(f.d.b)) {
		f.d.b = f.d.b[:size:size]
	} else {
		f.d.b = append(f.d.b, make([]byte, size-int64(len(f.d.b)))...)
	}
	return nil
}

func (f *memFile) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return int64(len(f.d.b)), nil
}

func (f *memFile) Sync() error  { return nil }
func (f *memFile) Close() error { return nil }
