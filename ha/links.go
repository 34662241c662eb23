package ha

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// BackupSuffix is appended to a local path that Activate moves aside to link the shared data
// in its place; Deactivate moves it back.
const BackupSuffix = ".provkit-standby"

// linkChange is Activate's step for one link.
type linkChange struct {
	l       Link
	linked  bool // we made the symbolic link
	movedTo string
}

func (c *linkChange) apply(l Link) (string, error) {
	c.l = l
	fi, err := os.Stat(l.Shared)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("shared data %s does not exist (run Setup, provctl hasetup): %w", l.Shared, ErrNotSetUp)
		}
		return "", fmt.Errorf("shared data %s: %w", l.Shared, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("shared data %s is not a directory", l.Shared)
	}
	if target, err := os.Readlink(l.Local); err == nil && filepath.Clean(target) == l.Shared {
		return fmt.Sprintf("%s already links to %s", l.Local, l.Shared), nil
	}
	switch _, err := os.Lstat(l.Local); {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(l.Local), 0o755); err != nil {
			return "", err
		}
	case err != nil:
		return "", err
	default:
		backup := l.Local + BackupSuffix
		if _, err := os.Lstat(backup); err == nil {
			return "", fmt.Errorf("%s exists: an earlier activation was not undone (deactivate first)", backup)
		}
		if err := os.Rename(l.Local, backup); err != nil {
			return "", fmt.Errorf("move %s aside: %w", l.Local, err)
		}
		c.movedTo = backup
	}
	if err := os.Symlink(l.Shared, l.Local); err != nil {
		if c.movedTo != "" {
			if rerr := os.Rename(c.movedTo, l.Local); rerr == nil {
				c.movedTo = ""
			}
		}
		return "", fmt.Errorf("link %s: %w", l.Local, err)
	}
	c.linked = true
	if c.movedTo != "" {
		return fmt.Sprintf("%s -> %s (local copy kept as %s)", l.Local, l.Shared, c.movedTo), nil
	}
	return fmt.Sprintf("%s -> %s", l.Local, l.Shared), nil
}

func (c *linkChange) revert() error {
	if c.linked {
		if err := removeOurLink(c.l); err != nil {
			return err
		}
		c.linked = false
	}
	if c.movedTo != "" {
		if err := os.Rename(c.movedTo, c.l.Local); err != nil {
			return fmt.Errorf("put %s back: %w", c.l.Local, err)
		}
		c.movedTo = ""
	}
	return nil
}

// removeOurLink removes l.Local if it is a symbolic link to l.Shared.
func removeOurLink(l Link) error {
	target, err := os.Readlink(l.Local)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.EINVAL) {
			return nil // gone, or not a link: not ours
		}
		return err
	}
	if filepath.Clean(target) != l.Shared {
		return nil
	}
	if err := os.Remove(l.Local); err != nil {
		return fmt.Errorf("remove link %s: %w", l.Local, err)
	}
	return nil
}

// unlink is Deactivate's step for one link: remove the link to the shared data and put the
// local copy back, whatever process made them.
func unlink(l Link) error {
	if err := removeOurLink(l); err != nil {
		return err
	}
	backup := l.Local + BackupSuffix
	if _, err := os.Lstat(backup); err != nil {
		return nil
	}
	if _, err := os.Lstat(l.Local); err == nil {
		return fmt.Errorf("both %s and %s exist: keep one by hand", l.Local, backup)
	}
	if err := os.Rename(backup, l.Local); err != nil {
		return fmt.Errorf("put %s back: %w", l.Local, err)
	}
	return nil
}

// seedChange is Setup's step for one link: when the shared directory does not exist, copy
// the local one there (or make an empty one).
type seedChange struct {
	created string
}

func (c *seedChange) apply(l Link) (string, error) {
	if fi, err := os.Stat(l.Shared); err == nil {
		if !fi.IsDir() {
			return "", fmt.Errorf("%s exists and is not a directory", l.Shared)
		}
		return "exists, kept", nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(l.Shared), 0o755); err != nil {
		return "", err
	}
	tmp := l.Shared + ".provkit-setup"
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	src := l.Local
	if target, err := os.Readlink(src); err == nil && filepath.Clean(target) == l.Shared {
		src = "" // a dangling link to where we are about to create the copy
	}
	detail := "copied from " + l.Local
	fi, err := os.Stat(src)
	switch {
	case src == "" || errors.Is(err, fs.ErrNotExist):
		detail = "created empty"
		if err := os.Mkdir(tmp, 0o755); err != nil {
			return "", err
		}
	case err != nil:
		return "", err
	case !fi.IsDir():
		return "", fmt.Errorf("%s is not a directory", src)
	default:
		if err := copyTree(src, tmp); err != nil {
			os.RemoveAll(tmp)
			return "", fmt.Errorf("copy %s to %s: %w", src, l.Shared, err)
		}
	}
	if err := os.Rename(tmp, l.Shared); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	c.created = l.Shared
	return detail, nil
}

func (c *seedChange) revert() error {
	if c.created == "" {
		return nil
	}
	err := os.RemoveAll(c.created)
	c.created = ""
	return err
}

// copyTree copies the directory src to dst (which must not exist): files, directories and
// symbolic links, with their modes, owners and modification times.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(to, info.Mode().Perm()|0o700); err != nil {
				return err
			}
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, to); err != nil {
				return err
			}
		case d.Type().IsRegular():
			if err := copyFile(path, to, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return nil // sockets, fifos, devices: not data to share
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			if err := os.Lchown(to, int(st.Uid), int(st.Gid)); err != nil && !errors.Is(err, fs.ErrPermission) {
				return err
			}
		}
		if d.Type()&fs.ModeSymlink == 0 {
			if err := os.Chmod(to, info.Mode().Perm()); err != nil {
				return err
			}
			return os.Chtimes(to, info.ModTime(), info.ModTime())
		}
		return nil
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// MarkerFile is the file Setup writes in the shared-data directory: the database type the
// shared data holds (xCAT reads the same from <shared>/etc/xcat/cfgloc).
const MarkerFile = "provkit-ha.json"

// Marker is the content of MarkerFile.
type Marker struct {
	DBType   string    `json:"dbtype"`
	VIP      string    `json:"vip"`
	Hostname string    `json:"hostname"`
	Created  time.Time `json:"created"`
}

// ReadMarker reads the marker of a shared-data directory.
func ReadMarker(sharedDir string) (Marker, error) {
	var mk Marker
	path := filepath.Join(sharedDir, MarkerFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return mk, fmt.Errorf("%s does not exist (run Setup, provctl hasetup): %w", path, ErrNotSetUp)
	}
	if err != nil {
		return mk, err
	}
	if err := json.Unmarshal(b, &mk); err != nil {
		return mk, fmt.Errorf("%s: %w", path, err)
	}
	if mk.DBType != SQLite && mk.DBType != PostgreSQL {
		return mk, fmt.Errorf("%s: database type %q: want %s or %s", path, mk.DBType, SQLite, PostgreSQL)
	}
	return mk, nil
}

// markerChange is Setup's database-type step.
type markerChange struct {
	created string
}

func (c *markerChange) apply(s *settings) (string, error) {
	mk, err := ReadMarker(s.shared)
	switch {
	case err == nil:
		if mk.DBType != s.dbType {
			return "", fmt.Errorf("the shared data in %s holds a %s store, not %s: %w", s.shared, mk.DBType, s.dbType, ErrDBType)
		}
		return s.dbType + ", as recorded in " + filepath.Join(s.shared, MarkerFile), nil
	case !errors.Is(err, ErrNotSetUp):
		return "", err
	}
	if err := checkStore(s); err != nil {
		return "", err
	}
	if err := os.MkdirAll(s.shared, 0o755); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(Marker{DBType: s.dbType, VIP: s.vip.String(), Hostname: s.hostname, Created: time.Now().UTC()}, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(s.shared, MarkerFile)
	if err := writeFileAtomic(path, append(b, '\n')); err != nil {
		return "", err
	}
	c.created = path
	return s.dbType + ", recorded in " + path, nil
}

func (c *markerChange) revert() error {
	if c.created == "" {
		return nil
	}
	err := os.Remove(c.created)
	c.created = ""
	return err
}

// checkDBType is Activate's database-type step: the type asked for must be the one the
// shared data was set up with, and agree with the store's DSN.
func checkDBType(s *settings) (string, error) {
	mk, err := ReadMarker(s.shared)
	if err != nil {
		return "", err
	}
	if mk.DBType != s.dbType {
		return "", fmt.Errorf("asked for %s, but the shared data in %s holds a %s store: %w", s.dbType, s.shared, mk.DBType, ErrDBType)
	}
	if err := checkStore(s); err != nil {
		return "", err
	}
	return s.dbType, nil
}

// checkStore checks the store's DSN against the database type: a postgres:// URL for
// PostgreSQL; for SQLite a file path under one of the shared-data links, or the store would
// not follow the virtual IP.
func checkStore(s *settings) error {
	if s.store == "" {
		return nil
	}
	isPG := strings.HasPrefix(s.store, "postgres://") || strings.HasPrefix(s.store, "postgresql://")
	switch {
	case s.dbType == PostgreSQL && !isPG:
		return fmt.Errorf("database type %s, but the store %q is not a postgres:// URL: %w", s.dbType, s.store, ErrDBType)
	case s.dbType == SQLite && isPG:
		return fmt.Errorf("database type %s, but the store is a PostgreSQL URL: %w", s.dbType, ErrDBType)
	case s.dbType == SQLite:
		path := strings.TrimPrefix(s.store, "file:")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		if !filepath.IsAbs(path) {
			return fmt.Errorf("SQLite store %q: want an absolute path inside a shared-data link", s.store)
		}
		for _, l := range s.links {
			if within(filepath.Clean(path), l.Local) {
				return nil
			}
		}
		return fmt.Errorf("SQLite store %s is not inside any shared-data link, so it would not move with the virtual IP: %w", path, ErrDBType)
	}
	return nil
}
