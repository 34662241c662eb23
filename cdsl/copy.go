package cdsl

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// copyTree copies src to dst inside r like `cp -a`: regular files, directories, symbolic
// links, device nodes and FIFOs with their mode, owner, times and extended attributes.
// Sockets are skipped and hard links become separate files. dst must not exist; its parent
// must.
func copyTree(r *os.Root, src, dst string) error {
	fi, err := r.Lstat(src)
	if err != nil {
		return err
	}
	switch typ := fi.Mode().Type(); {
	case typ == 0:
		if err := copyFile(r, src, dst, fi); err != nil {
			return err
		}
	case typ == fs.ModeDir:
		if err := r.Mkdir(dst, 0o700); err != nil {
			return err
		}
		d, err := r.Open(src)
		if err != nil {
			return err
		}
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return fmt.Errorf("read directory %s: %w", src, err)
		}
		for _, n := range names {
			if err := copyTree(r, src+"/"+n, dst+"/"+n); err != nil {
				return err
			}
		}
		copyXattrs(r, src, dst)
	case typ == fs.ModeSymlink:
		target, err := r.Readlink(src)
		if err != nil {
			return err
		}
		if err := r.Symlink(target, dst); err != nil {
			return err
		}
	case typ == fs.ModeSocket:
		return nil
	default: // devices and FIFOs
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no device number", src)
		}
		if err := mknodIn(r, dst, st.Mode, st.Rdev); err != nil {
			return err
		}
	}
	return copyMeta(r, dst, fi)
}

func copyFile(r *os.Root, src, dst string, fi fs.FileInfo) error {
	in, err := r.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := r.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	copyFdXattrs(in, out)
	return out.Close()
}

// copyMeta gives dst the owner, mode and times of fi (the source's Lstat).
func copyMeta(r *os.Root, dst string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok {
		if err := r.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil && !errors.Is(err, syscall.EPERM) {
			return err
		}
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil // no portable lutimes through os.Root; the link's own times do not matter
	}
	// Chmod after Lchown: chown clears set-user-ID bits.
	if err := r.Chmod(dst, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return err
	}
	atime := fi.ModTime()
	if ok {
		atime = time.Unix(st.Atim.Unix())
	}
	return r.Chtimes(dst, atime, fi.ModTime())
}

// mknodIn makes a device node or FIFO at name (relative to r) through its parent's fd.
func mknodIn(r *os.Root, name string, mode uint32, dev uint64) error {
	dir, base := path.Split(name)
	if dir == "" {
		dir = "."
	}
	d, err := r.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Mknodat(int(d.Fd()), base, mode, int(dev)); err != nil {
		return &fs.PathError{Op: "mknod", Path: name, Err: err}
	}
	return nil
}

// copyXattrs copies extended attributes between two directories (best effort).
func copyXattrs(r *os.Root, src, dst string) {
	in, err := r.Open(src)
	if err != nil {
		return
	}
	defer in.Close()
	out, err := r.Open(dst)
	if err != nil {
		return
	}
	defer out.Close()
	copyFdXattrs(in, out)
}

// copyFdXattrs copies extended attributes (file capabilities, ACLs, SELinux labels) from one
// open file to another. Best effort: file systems without xattrs are fine.
func copyFdXattrs(in, out *os.File) {
	buf := make([]byte, 4096)
	n, err := unix.Flistxattr(int(in.Fd()), buf)
	if err != nil || n <= 0 {
		return
	}
	val := make([]byte, 64<<10)
	for _, name := range splitNul(buf[:n]) {
		m, err := unix.Fgetxattr(int(in.Fd()), name, val)
		if err != nil {
			continue
		}
		_ = unix.Fsetxattr(int(out.Fd()), name, val[:m], 0)
	}
}

func splitNul(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}

// mkdirParents creates the missing parent directories of dst, giving each the metadata of
// the directory at the same place below srcBase (or 0755 root when there is none).
// It returns the topmost directory it created ("" if none), for rollback.
func mkdirParents(r *os.Root, dst, dstBase, srcBase string) (string, error) {
	rel := dirOf(dst)
	if !under(rel, dstBase) || rel == dstBase {
		return "", nil
	}
	var missing []string
	for d := rel; d != dstBase && d != ""; d = dirOf(d) {
		fi, err := r.Lstat(d)
		if err == nil {
			if !fi.IsDir() {
				return "", fmt.Errorf("%s: %w: not a directory", d, ErrSymlinkInPath)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		missing = append(missing, d)
	}
	top := ""
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		if err := r.Mkdir(d, 0o755); err != nil {
			return top, err
		}
		if top == "" {
			top = d
		}
		suffix := d
		if dstBase != "" {
			suffix = d[len(dstBase)+1:]
		}
		if fi, err := r.Lstat(join(srcBase, suffix)); err == nil && fi.IsDir() {
			if err := copyMeta(r, d, fi); err != nil {
				return top, err
			}
		}
	}
	return top, nil
}
