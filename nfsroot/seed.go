package nfsroot

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// seed opens the node's state directory and gives it a copy of every writable path it
// lacks, taken from the node's view of the image. A copy is made under a temporary name and
// renamed into place, so a crash never leaves half a /var behind.
func (v *view) seed() error {
	x := v.x
	if len(x.writable) == 0 {
		return nil
	}
	if err := os.MkdirAll(x.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("nfsroot: state dir: %w", err)
	}
	dir := filepath.Join(x.cfg.StateDir, v.node)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("nfsroot: state dir of node %s: %w", v.node, err)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("nfsroot: state dir of node %s: %w", v.node, err)
	}
	v.stateFD = fd
	v.seeding = true
	defer func() { v.seeding = false }()
	for _, w := range x.writable {
		var st unix.Stat_t
		if err := statAtRel(v.stateFD, w, &st); err == nil {
			continue
		}
		if err := v.seedPath(w); err != nil {
			return fmt.Errorf("nfsroot: seed %s for node %s: %w", w, v.node, err)
		}
	}
	return nil
}

func (v *view) seedPath(w string) error {
	// Parents inside the state directory, with the image's metadata.
	parent := parentOf(w)
	if parent != "" {
		if err := v.mkdirParents(parent); err != nil {
			return err
		}
	}
	pfd, err := openIn(v.stateFD, parent, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	base := filepath.Base(w)
	tmp := ".seed-" + base + "-" + randHex()
	src, err := v.resolve(w)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if v.statLoc(src, &st) != nil {
		// Not in the image: start empty.
		if err := unix.Mkdirat(pfd, tmp, 0o755); err != nil {
			return err
		}
	} else if err := v.copyView(w, src, pfd, tmp); err != nil {
		removeAllAt(pfd, tmp)
		return err
	}
	if err := unix.Renameat(pfd, tmp, pfd, base); err != nil {
		removeAllAt(pfd, tmp)
		return err
	}
	return nil
}

// mkdirParents creates the directories of view path dir inside the state directory.
func (v *view) mkdirParents(dir string) error {
	cur := ""
	for _, c := range splitPath(dir) {
		next := joinRel(cur, c)
		pfd, err := openIn(v.stateFD, cur, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		err = unix.Mkdirat(pfd, c, 0o755)
		if err == nil {
			if src, rerr := v.resolve(next); rerr == nil {
				var st unix.Stat_t
				if v.statLoc(src, &st) == nil {
					copyMeta(pfd, c, &st)
				}
			}
		}
		unix.Close(pfd)
		if err != nil && err != unix.EEXIST {
			return err
		}
		cur = next
	}
	return nil
}

func splitPath(p string) []string {
	if p == "" {
		return nil
	}
	var out []string
	for {
		i := 0
		for i < len(p) && p[i] != '/' {
			i++
		}
		out = append(out, p[:i])
		if i == len(p) {
			return out
		}
		p = p[i+1:]
	}
}

// copyView copies the view path p (resolved to src) to name in the directory dstDir, like
// cp -a of what the node sees: CDSLs below p are resolved, other links copied as links.
func (v *view) copyView(p string, src loc, dstDir int, name string) error {
	sfd, err := v.openLoc(src)
	if err != nil {
		return err
	}
	defer unix.Close(sfd)
	var st unix.Stat_t
	if err := fstat(sfd, &st); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := unix.Mkdirat(dstDir, name, 0o700); err != nil {
			return err
		}
		dfd, err := openIn(dstDir, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		defer unix.Close(dfd)
		ents, err := v.list(p, src)
		if err != nil {
			return err
		}
		for _, e := range ents {
			cl := loc{src.layer, joinRel(src.rel, e.name)}
			if e.at != nil {
				cl = *e.at
			}
			if err := v.copyView(joinRel(p, e.name), cl, dfd, e.name); err != nil {
				return err
			}
		}
		if rfd, err := reopen(sfd, unix.O_RDONLY|unix.O_DIRECTORY); err == nil {
			copyXattrs(rfd, dfd)
			unix.Close(rfd)
		}
	case unix.S_IFREG:
		in, err := reopen(sfd, unix.O_RDONLY)
		if err != nil {
			return err
		}
		// The *os.File values own the descriptors from here on (their finalizers would
		// close them again otherwise).
		fin := os.NewFile(uintptr(in), "src")
		defer fin.Close()
		out, err := unix.Openat(dstDir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		fout := os.NewFile(uintptr(out), "dst")
		_, err = io.Copy(fout, fin)
		copyXattrs(in, out)
		if cerr := fout.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := readlinkFD(sfd)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(target, dstDir, name); err != nil {
			return err
		}
	case unix.S_IFSOCK:
		return nil
	default:
		if err := unix.Mknodat(dstDir, name, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
	}
	copyMeta(dstDir, name, &st)
	return nil
}

// copyMeta gives name (in dir) the owner, mode and times of st, without following links.
func copyMeta(dir int, name string, st *unix.Stat_t) {
	_ = unix.Fchownat(dir, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW)
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		_ = unix.Fchmodat(dir, name, st.Mode&0o7777, 0)
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	_ = unix.UtimesNanoAt(dir, name, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func copyXattrs(in, out int) {
	buf := make([]byte, 4096)
	n, err := unix.Flistxattr(in, buf)
	if err != nil || n <= 0 {
		return
	}
	val := make([]byte, 64<<10)
	start := 0
	for i := 0; i < n; i++ {
		if buf[i] != 0 {
			continue
		}
		if i > start {
			name := string(buf[start:i])
			if m, err := unix.Fgetxattr(in, name, val); err == nil {
				_ = unix.Fsetxattr(out, name, val[:m], 0)
			}
		}
		start = i + 1
	}
}

// readlinkFD reads the target of the link an O_PATH descriptor refers to.
func readlinkFD(fd int) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		if len(buf) >= 1<<16 {
			return "", unix.ENAMETOOLONG
		}
		buf = make([]byte, len(buf)*4)
	}
}

// removeAllAt removes name in dir recursively (best effort), never following links.
func removeAllAt(dir int, name string) {
	if err := unix.Unlinkat(dir, name, 0); err == nil {
		return
	}
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == nil {
		names, _ := readNames(fd)
		for _, n := range names {
			removeAllAt(fd, n)
		}
		unix.Close(fd)
	}
	_ = unix.Unlinkat(dir, name, unix.AT_REMOVEDIR)
}

func randHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statAtRel stats rel below dir safely.
func statAtRel(dir int, rel string, st *unix.Stat_t) error {
	fd, err := openPath(dir, rel)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return fstat(fd, st)
}
