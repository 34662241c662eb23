package image

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrUnsafePath is wrapped by errors about an archive entry whose name would land
// outside the target directory.
var ErrUnsafePath = errors.New("unsafe path in archive")

// node is one archive entry as the extractor needs it, from cpio or tar.
type node struct {
	name     string // cleaned, relative, slash-separated; "." for the root
	mode     uint32 // S_IFMT type bits and permissions (Linux encoding)
	uid, gid int
	mtime    int64
	rdev     uint64 // device number of a device node
	linkname string // symlink target
	hardlink string // cleaned name of an earlier entry this one is a hard link to
	xattrs   map[string]string
	size     int64 // bytes of data in r
	r        io.Reader
}

// extractor creates archive entries below a root directory. Every path is resolved with
// openat2(RESOLVE_IN_ROOT): ".." and absolute symlinks stay inside the root, the way
// they would after a chroot, so an archive cannot write outside it and an image whose
// /lib is a symlink to usr/lib unpacks its lib/ entries into usr/lib as it should.
type extractor struct {
	rootFD  int
	root    string
	root0   bool // running as root: owners, devices and privileged xattrs must work
	log     *slog.Logger
	buf     []byte
	dirs    []dirMeta              // directory metadata, applied at the end
	pending []node                 // hard links whose target does not exist yet
	cpioIno map[cpioLinkKey]string // cpio hard-link groups: first name by inode
	stats   *UnpackStats
	// parent fd cache: archives are ordered, so consecutive entries share a directory.
	pdir   string
	pdirFD int
}

type cpioLinkKey struct{ ino, major, minor uint32 }

type dirMeta struct {
	name     string
	mode     uint32
	uid, gid int
	mtime    int64
	xattrs   map[string]string
}

func newExtractor(dir string, log *slog.Logger, stats *UnpackStats) (*extractor, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("image: unpack into %s: %w", dir, err)
	}
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("image: unpack into %s: %w", dir, err)
	}
	return &extractor{rootFD: fd, root: dir, root0: os.Geteuid() == 0, log: log,
		buf: make([]byte, 256<<10), cpioIno: map[cpioLinkKey]string{}, stats: stats, pdirFD: -1}, nil
}

func (x *extractor) close() {
	if x.pdirFD >= 0 {
		unix.Close(x.pdirFD)
		x.pdirFD = -1
	}
	unix.Close(x.rootFD)
}

// cleanName turns an archive name into a relative slash path inside the root, or fails.
// Leading "/" and "./" are dropped (GNU tar does the same).
func cleanName(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("image: empty name: %w", ErrUnsafePath)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("image: name %q: %w", name, ErrUnsafePath)
	}
	c := path.Clean("/" + name)
	if c == "/" {
		return ".", nil
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", fmt.Errorf("image: name %q has a .. element: %w", name, ErrUnsafePath)
		}
	}
	return c[1:], nil
}

// parent returns an fd of the directory that holds name (creating missing directories
// with mode 0755) and the last element of name.
func (x *extractor) parent(name string) (int, string, error) {
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	if dir == x.pdir && x.pdirFD >= 0 {
		return x.pdirFD, base, nil
	}
	fd, err := x.openDir(dir, true)
	if err != nil {
		return -1, "", err
	}
	if x.pdirFD >= 0 {
		unix.Close(x.pdirFD)
	}
	x.pdir, x.pdirFD = dir, fd
	return fd, base, nil
}

// forgetParent drops the cached parent fd (a directory was replaced).
func (x *extractor) forgetParent() {
	if x.pdirFD >= 0 {
		unix.Close(x.pdirFD)
	}
	x.pdir, x.pdirFD = "", -1
}

func (x *extractor) openDir(dir string, create bool) (int, error) {
	how := &unix.OpenHow{Flags: unix.O_DIRECTORY | unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT}
	fd, err := unix.Openat2(x.rootFD, dir, how)
	if err == nil {
		return fd, nil
	}
	if !create || !errors.Is(err, unix.ENOENT) {
		return -1, fmt.Errorf("image: directory %s: %w", dir, err)
	}
	// Make the missing directories one by one, each resolved inside the root.
	parts := strings.Split(dir, "/")
	cur := "."
	for _, p := range parts {
		next := path.Join(cur, p)
		pfd, err := unix.Openat2(x.rootFD, cur, how)
		if err != nil {
			return -1, fmt.Errorf("image: directory %s: %w", cur, err)
		}
		err = unix.Mkdirat(pfd, p, 0o755)
		unix.Close(pfd)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, fmt.Errorf("image: mkdir %s: %w", next, err)
		}
		cur = next
	}
	fd, err = unix.Openat2(x.rootFD, dir, how)
	if err != nil {
		return -1, fmt.Errorf("image: directory %s: %w", dir, err)
	}
	return fd, nil
}

// add creates one entry.
func (x *extractor) add(n node) error {
	if n.name == "." {
		if n.mode&unix.S_IFMT == unix.S_IFDIR {
			x.dirs = append(x.dirs, dirMeta{name: ".", mode: n.mode, uid: n.uid, gid: n.gid, mtime: n.mtime, xattrs: n.xattrs})
			x.stats.Entries++
			return nil
		}
		return fmt.Errorf("image: entry \".\" is not a directory: %w", ErrUnsafePath)
	}
	if n.hardlink != "" {
		return x.link(n, true)
	}
	pfd, base, err := x.parent(n.name)
	if err != nil {
		return err
	}
	typ := n.mode & unix.S_IFMT
	if typ == unix.S_IFDIR {
		var st unix.Stat_t
		err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := unix.Unlinkat(pfd, base, 0); err != nil {
				return fmt.Errorf("image: replace %s with a directory: %w", n.name, err)
			}
			err = unix.ENOENT
		}
		if err != nil {
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
				return fmt.Errorf("image: mkdir %s: %w", n.name, err)
			}
		}
		x.dirs = append(x.dirs, dirMeta{name: n.name, mode: n.mode, uid: n.uid, gid: n.gid, mtime: n.mtime, xattrs: n.xattrs})
		x.stats.Entries++
		return nil
	}
	if err := x.removeExisting(pfd, base, n.name); err != nil {
		return err
	}
	switch typ {
	case unix.S_IFREG:
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("image: create %s: %w", n.name, err)
		}
		f := os.NewFile(uintptr(fd), n.name)
		err = x.writeData(f, n)
		if err == nil {
			err = x.fileMeta(fd, n)
		}
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("image: %s: %w", n.name, cerr)
		}
		if err != nil {
			return err
		}
	case unix.S_IFLNK:
		if err := unix.Symlinkat(n.linkname, pfd, base); err != nil {
			return fmt.Errorf("image: symlink %s: %w", n.name, err)
		}
		if err := x.chown(pfd, base, n, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		x.setXattrsAt(pfd, base, n.name, n.xattrs)
		x.utimes(pfd, base, n.mtime)
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err := unix.Mknodat(pfd, base, n.mode&(unix.S_IFMT|0o777), int(n.rdev)); err != nil {
			if !x.root0 && errors.Is(err, unix.EPERM) {
				x.stats.Skipped++
				x.log.Warn("image: not root: device node left out", "path", n.name)
				return nil
			}
			return fmt.Errorf("image: mknod %s: %w", n.name, err)
		}
		if err := x.chown(pfd, base, n, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if err := unix.Fchmodat(pfd, base, n.mode&0o7777, 0); err != nil {
			return fmt.Errorf("image: chmod %s: %w", n.name, err)
		}
		x.setXattrsAt(pfd, base, n.name, n.xattrs)
		x.utimes(pfd, base, n.mtime)
	default:
		return fmt.Errorf("image: %s: unknown file type %#o: %w", n.name, typ, ErrFormat)
	}
	x.stats.Entries++
	return nil
}

func (x *extractor) removeExisting(pfd int, base, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil
	}
	flag := 0
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		// A file replaces a directory only if the directory is empty, as with tar.
		flag = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(pfd, base, flag); err != nil {
		return fmt.Errorf("image: replace %s: %w", name, err)
	}
	if flag != 0 {
		x.forgetParent()
	}
	return nil
}

func (x *extractor) writeData(f *os.File, n node) error {
	if n.size == 0 || n.r == nil {
		return nil
	}
	var w int64
	var err error
	if wt, ok := n.r.(io.WriterTo); ok {
		w, err = wt.WriteTo(f)
	} else {
		w, err = io.CopyBuffer(f, io.LimitReader(n.r, n.size), x.buf)
	}
	x.stats.Bytes += w
	if err != nil {
		return fmt.Errorf("image: write %s: %w", n.name, err)
	}
	if w != n.size {
		return fmt.Errorf("image: write %s: archive ends after %d of %d bytes: %w", n.name, w, n.size, ErrFormat)
	}
	return nil
}

// fileMeta sets owner, mode (after the owner: chown clears set-id bits), xattrs and
// mtime of an open regular file.
func (x *extractor) fileMeta(fd int, n node) error {
	if err := unix.Fchown(fd, n.uid, n.gid); err != nil && !x.ignoreOwner(err) {
		return fmt.Errorf("image: chown %s: %w", n.name, err)
	}
	if err := unix.Fchmod(fd, n.mode&0o7777); err != nil {
		return fmt.Errorf("image: chmod %s: %w", n.name, err)
	}
	for _, k := range sortedKeys(n.xattrs) {
		if err := unix.Fsetxattr(fd, k, []byte(n.xattrs[k]), 0); err != nil {
			x.xattrFailed(n.name, k, err)
		}
	}
	tv := []unix.Timeval{{Sec: n.mtime}, {Sec: n.mtime}}
	if err := unix.Futimes(fd, tv); err != nil {
		return fmt.Errorf("image: set mtime of %s: %w", n.name, err)
	}
	return nil
}

func (x *extractor) ignoreOwner(err error) bool {
	return !x.root0 && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL))
}

func (x *extractor) chown(pfd int, base string, n node, flags int) error {
	if err := unix.Fchownat(pfd, base, n.uid, n.gid, flags); err != nil && !x.ignoreOwner(err) {
		return fmt.Errorf("image: chown %s: %w", n.name, err)
	}
	return nil
}

func (x *extractor) utimes(pfd int, base string, mtime int64) {
	ts := []unix.Timespec{{Sec: mtime}, {Sec: mtime}}
	_ = unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// setXattrsAt sets xattrs on a non-regular file through its /proc/self/fd path (there
// is no lsetxattrat).
func (x *extractor) setXattrsAt(pfd int, base, name string, xs map[string]string) {
	if len(xs) == 0 {
		return
	}
	p := fmt.Sprintf("/proc/self/fd/%d/%s", pfd, base)
	for _, k := range sortedKeys(xs) {
		if err := unix.Lsetxattr(p, k, []byte(xs[k]), 0); err != nil {
			x.xattrFailed(name, k, err)
		}
	}
}

func (x *extractor) xattrFailed(name, key string, err error) {
	x.stats.XattrsSkipped++
	x.log.Warn("image: cannot set xattr", "path", name, "xattr", key, "err", err)
}

// link makes n.name a hard link to n.hardlink. If the target does not exist yet (a
// flattened OCI image lists an upper layer's link before the lower layer's file), the
// link is retried at the end when defer is set.
func (x *extractor) link(n node, canDefer bool) error {
	tdir, tbase := path.Split(n.hardlink)
	tdir = strings.TrimSuffix(tdir, "/")
	if tdir == "" {
		tdir = "."
	}
	tfd, err := x.openDir(tdir, false)
	if err == nil {
		var st unix.Stat_t
		if err = unix.Fstatat(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			unix.Close(tfd)
			return fmt.Errorf("image: hard link %s to directory %s: %w", n.name, n.hardlink, ErrUnsafePath)
		}
	}
	if err != nil {
		if tfd >= 0 {
			unix.Close(tfd)
		}
		if canDefer {
			x.pending = append(x.pending, n)
			return nil
		}
		return fmt.Errorf("image: hard link %s: target %s: %w", n.name, n.hardlink, err)
	}
	defer unix.Close(tfd)
	pfd, base, err := x.parent(n.name)
	if err != nil {
		return err
	}
	if err := x.removeExisting(pfd, base, n.name); err != nil {
		return err
	}
	if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
		return fmt.Errorf("image: hard link %s to %s: %w", n.name, n.hardlink, err)
	}
	x.stats.Entries++
	// Data carried by a later link (GNU cpio puts it on the last one) goes into the file.
	if n.size > 0 && n.r != nil {
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("image: open %s: %w", n.name, err)
		}
		f := os.NewFile(uintptr(fd), n.name)
		err = x.writeData(f, n)
		if err == nil {
			err = x.fileMeta(fd, n)
		}
		f.Close()
		return err
	}
	return nil
}

// finish creates deferred hard links and applies directory metadata, deepest first so
// that setting a directory's mtime is not undone by changes inside it.
func (x *extractor) finish() error {
	for _, n := range x.pending {
		if err := x.link(n, false); err != nil {
			return err
		}
	}
	x.forgetParent()
	slices.SortStableFunc(x.dirs, func(a, b dirMeta) int { return strings.Count(b.name, "/") - strings.Count(a.name, "/") })
	for _, d := range x.dirs {
		fd, err := x.openDir(d.name, false)
		if err != nil {
			return err
		}
		// O_PATH fds do not allow fchown/fchmod: go through /proc.
		p := fmt.Sprintf("/proc/self/fd/%d", fd)
		err = unix.Chown(p, d.uid, d.gid)
		if err != nil && !x.ignoreOwner(err) {
			unix.Close(fd)
			return fmt.Errorf("image: chown %s: %w", d.name, err)
		}
		if err := unix.Chmod(p, d.mode&0o7777); err != nil {
			unix.Close(fd)
			return fmt.Errorf("image: chmod %s: %w", d.name, err)
		}
		for _, k := range sortedKeys(d.xattrs) {
			if err := unix.Setxattr(p, k, []byte(d.xattrs[k]), 0); err != nil {
				x.xattrFailed(d.name, k, err)
			}
		}
		ts := []unix.Timespec{{Sec: d.mtime}, {Sec: d.mtime}}
		_ = unix.UtimesNano(p, ts)
		unix.Close(fd)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	if len(m) == 0 {
		return nil
	}
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
