package node

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/keymesh/keymesh/audit"
	"github.com/keymesh/keymesh/kv"
	"github.com/keymesh/keymesh/kv/badgerstore"
)

// The audit log's format, recorded under auditFormatKey in the main store
// (under the summarised "node/" prefix: removing or rolling the record
// back is noticed like any removal).
const (
	// auditFormatTagged: the log is a badger store under audit/, its
	// records tagged (a data directory of keymesh before 0.2).
	auditFormatTagged = "2"
	// auditFormatFile: the log is segment files under auditlog/ (package
	// audit); audit/ is gone or about to be removed.
	auditFormatFile = "3"
)

// ErrAuditLogMissing is returned by Open when the data directory's
// record says the audit log is in auditlog/ but that directory is gone or
// holds no segment: the log is never silently restarted.
var ErrAuditLogMissing = errors.New("node: the audit log is missing: the store records that it lives in auditlog/, but that directory is gone or holds no segment file; restore auditlog/ from a backup (keymeshd never starts a new log over a lost one)")

// AuditLogDir is where the audit log's segment files live.
func AuditLogDir(data string) string { return filepath.Join(data, "auditlog") }

// legacyAuditDir is where keymesh before the file log kept its audit log
// (a badger store).
func legacyAuditDir(data string) string { return filepath.Join(data, "audit") }

// openAuditLog opens the audit log, migrating a badger log of an older
// keymesh first (migrateAudit), or creating the log of a new node.
func (n *Node) openAuditLog(reserve uint64) (*audit.Log, error) {
	data := n.cfg.DataDir
	format, err := n.store.Get(auditFormatKey)
	switch {
	case errors.Is(err, kv.ErrNotFound):
		format = nil
	case err != nil:
		return nil, fmt.Errorf("node: audit format record: %w", err)
	}
	legacy, err := exists(legacyAuditDir(data))
	if err != nil {
		return nil, fmt.Errorf("node: audit log: %w", err)
	}
	switch string(format) {
	case auditFormatFile:
		if legacy {
			// A migration stopped after recording the new format: the
			// old store is a copy of what auditlog/ holds.
			if err := removeDir(data, legacyAuditDir(data)); err != nil {
				return nil, fmt.Errorf("node: audit log: remove the migrated badger log: %w", err)
			}
			n.logger.Info("audit log: removed the badger log left by an interrupted migration")
		}
	case auditFormatTagged, "":
		if legacy {
			if err := n.migrateAudit(reserve, format == nil); err != nil {
				return nil, err
			}
			break
		}
		if format != nil {
			return nil, fmt.Errorf("%w (the store records the badger log in audit/, which is gone)", ErrAuditLogMissing)
		}
		if err := n.createAuditLog(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("node: audit format record %q: unknown (written by a newer keymesh?)", format)
	}
	fsys, err := openAuditFS(data)
	if err != nil {
		return nil, err
	}
	l, err := audit.Open(fsys, n.vault.Tagger(), audit.WithExisting(),
		audit.WithSyncInterval(AuditSyncInterval), audit.WithReserve(reserve/2),
		audit.WithLogger(n.logger.With("component", "audit")), audit.WithClock(n.cfg.Clock))
	if errors.Is(err, audit.ErrMissing) {
		return nil, ErrAuditLogMissing
	}
	if err != nil {
		return nil, err
	}
	// A record that does not authenticate was written or changed without
	// the master secret: refused at start, as a forged record of the
	// store is. Other damage (a chain cut or reordered) leaves the node
	// up to show it, with every audited request refused.
	if d := l.Damaged(); errors.Is(d, kv.ErrTampered) {
		l.Close()
		return nil, fmt.Errorf("node: audit log: %w", d)
	}
	return l, nil
}

// openAuditFS opens auditlog/, which must exist.
func openAuditFS(data string) (audit.FS, error) {
	dir := AuditLogDir(data)
	if ok, err := exists(dir); err != nil {
		return nil, fmt.Errorf("node: audit log: %w", err)
	} else if !ok {
		return nil, ErrAuditLogMissing
	}
	return audit.DirFS(dir)
}

// createAuditLog makes the empty log of a new node: made in a temporary
// directory, renamed into place, then recorded.
func (n *Node) createAuditLog() error {
	data := n.cfg.DataDir
	if ok, err := exists(AuditLogDir(data)); err != nil {
		return fmt.Errorf("node: audit log: %w", err)
	} else if ok {
		// Left by a start that stopped before recording the format: it
		// can hold no entry, since nothing was served. A log with entries
		// but no record is refused.
		fsys, err := audit.DirFS(AuditLogDir(data))
		if err != nil {
			return err
		}
		l, err := audit.Open(fsys, n.vault.Tagger(), audit.WithLogger(n.logger))
		if err != nil {
			return err
		}
		seq, _ := l.Head()
		damaged := l.Damaged()
		if err := l.Close(); err != nil {
			return err
		}
		if seq > 0 || damaged != nil {
			return fmt.Errorf("node: auditlog/ holds an audit log but the store has no record of it: %w", kv.ErrTampered)
		}
		return n.recordAuditFormat()
	}
	tmp := AuditLogDir(data) + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("node: audit log: %w", err)
	}
	fsys, err := audit.DirFS(tmp)
	if err != nil {
		return err
	}
	l, err := audit.Open(fsys, n.vault.Tagger(), audit.WithLogger(n.logger))
	if err != nil {
		return err
	}
	if err := l.Close(); err != nil {
		return err
	}
	if err := renameDir(data, tmp, AuditLogDir(data)); err != nil {
		return fmt.Errorf("node: audit log: %w", err)
	}
	return n.recordAuditFormat()
}

func (n *Node) recordAuditFormat() error {
	if err := n.store.Update(func(tx kv.Txn) error { return tx.Set(auditFormatKey, []byte(auditFormatFile)) }); err != nil {
		return fmt.Errorf("node: audit format record: %w", err)
	}
	return nil
}

// migrateAudit moves the badger audit log of an older keymesh to segment
// files, crash-safely: the old entries are streamed (their tags and chain
// verified: a log that does not verify is refused, and the data directory
// left as it was) into auditlog.tmp/, which is fdatasynced, renamed to
// auditlog/ (the parent synced), then the new format is recorded in the
// store, and only then is audit/ removed. A migration interrupted before
// the record is redone from audit/ at the next start (auditlog/ is
// discarded); after it, only the removal is left to do. untagged is a log
// of a keymesh older still, whose records carry no tags yet: they are
// tagged first, as that keymesh's upgrade did.
func (n *Node) migrateAudit(reserve uint64, untagged bool) error {
	data := n.cfg.DataDir
	log := n.logger.With("component", "audit-migrate")
	db, err := badgerstore.Open(legacyAuditDir(data), slog.New(slog.DiscardHandler), badgerstore.WithReserve(reserve/2))
	if err != nil {
		return fmt.Errorf("node: audit log: open the badger log to migrate it: %w", err)
	}
	defer db.Close()
	src := n.vault.Authenticate(db)
	if untagged {
		tagged, err := src.Migrate()
		if err != nil {
			return fmt.Errorf("node: authenticate the audit log: %w", err)
		}
		if err := db.Sync(); err != nil {
			return err
		}
		log.Info("audit log: tagged the records of an untagged badger log", "entries_tagged", tagged)
	}
	dir, tmp := AuditLogDir(data), AuditLogDir(data)+".tmp"
	for _, d := range []string{tmp, dir} { // a copy left by an interrupted migration
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("node: audit log: %w", err)
		}
	}
	fsys, err := audit.DirFS(tmp)
	if err != nil {
		return err
	}
	rep, err := audit.Import(fsys, n.vault.Tagger(), src, audit.WithLogger(log))
	if err != nil {
		if rerr := os.RemoveAll(tmp); rerr != nil {
			log.Warn("audit log: remove the unfinished copy", "dir", tmp, "err", rerr)
		}
		return fmt.Errorf("node: audit log: migrating the badger log in %s refused (the data directory is unchanged): %w", legacyAuditDir(data), err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("node: audit log: %w", err)
	}
	if err := renameDir(data, tmp, dir); err != nil {
		return fmt.Errorf("node: audit log: %w", err)
	}
	if err := n.recordAuditFormat(); err != nil {
		return err
	}
	if err := removeDir(data, legacyAuditDir(data)); err != nil {
		return fmt.Errorf("node: audit log: remove the migrated badger log: %w", err)
	}
	log.Warn("audit log migrated from badger to segment files (first start after the upgrade)",
		"entries", rep.Entries, "head", fmt.Sprintf("%x", rep.Head))
	return nil
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	default:
		return false, err
	}
}

// renameDir renames old to new in parent and syncs parent.
func renameDir(parent, old, new string) error {
	if err := os.Rename(old, new); err != nil {
		return err
	}
	return audit.SyncDir(parent)
}

// removeDir removes dir and syncs parent.
func removeDir(parent, dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return audit.SyncDir(parent)
}
