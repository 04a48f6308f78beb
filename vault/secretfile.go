package vault

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// maxSecretFileSize bounds what ReadPassphraseFile reads.
const maxSecretFileSize = 64 << 10

// readSecretFile reads a file that holds a secret. It opens path without
// following a symbolic link in its last component (O_NOFOLLOW) and checks
// the opened file — not the path, which could be swapped between a check
// and the open — with fstat: it must be a regular file readable and
// writable by its owner only. At most limit bytes are read; a longer file
// is refused.
func readSecretFile(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%s is a symbolic link; give the file itself", path)
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat() // fstat on the opened descriptor
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %04o; it must be readable by its owner only (chmod 600)", path, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		clear(b)
		return nil, err
	}
	if int64(len(b)) > limit {
		clear(b)
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// ReadPassphraseFile reads the passphrase a master secret derives from
// (see MasterPassphrase): the file's content without its trailing line
// break. Like ReadKeyFile it refuses a symbolic link, a file that is not
// regular, and one readable or writable by group or others, checked on the
// opened file. The caller clears the returned Master.
func ReadPassphraseFile(path string) (Master, error) {
	b, err := readSecretFile(path, maxSecretFileSize)
	if err != nil {
		return Master{}, fmt.Errorf("vault: passphrase file: %w", err)
	}
	defer clear(b)
	n := len(b)
	for n > 0 && (b[n-1] == '\n' || b[n-1] == '\r') {
		n--
	}
	return MasterPassphrase(b[:n]), nil
}

// Len returns the length of the master secret in bytes (for a passphrase,
// its length before PBKDF2).
func (m Master) Len() int {
	if m.secret == nil {
		return 0
	}
	return m.secret.Len()
}
