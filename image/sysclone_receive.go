package image

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// CaptureStats describes a finished capture (or the part of it that was done).
type CaptureStats struct {
	Entries   int64 // entries the golden node sent
	Files     int64 // regular files (first names)
	Changed   int64 // regular files whose data was transferred
	Unchanged int64 // regular files found up to date (size and time)
	Deleted   int64 // local entries removed because the golden node no longer has them
	DataBytes int64 // bytes of file data transferred (holes not counted)
	WireBytes int64 // bytes received from the agent, framing included
	SentBytes int64 // bytes sent to the agent (requests)
	Warnings  []string
	Elapsed   time.Duration
}

// receiver lays a sysclone stream into a directory: a capture's local side (inline for
// a first capture, or asking the agent for the files that changed), or a deploy.
type receiver struct {
	dir    string
	rootFD int
	inline bool // data comes with the entries; the directory started empty
	fresh  bool // nothing there before: no comparisons, no deletions
	// overlay lays the stream over what is there (SystemImager overrides): files are
	// replaced, nothing is deleted, and the top directory keeps its own metadata.
	overlay bool
	root0   bool
	log     *slog.Logger
	stats   *CaptureStats
	prog    *progress

	stack    []*dirState
	dirTimes []dirTime
	pending  map[uint64]*cloneEntry   // requested files, by id
	waiting  map[string][]*cloneEntry // hard links whose first name is still pending, by that name
	cur      *openFile
	walkDone bool
	reqs     *requestQueue // nil without an agent to ask
}

type dirState struct {
	rel   string
	fd    int
	local map[string]bool // names there before, for deletions; nil when fresh
}

type dirTime struct {
	rel    string
	sec    int64
	ns     uint32
	xattrs []xattr
}

type openFile struct {
	e    *cloneEntry
	f    *os.File
	pfd  int // parent directory (owned when closeP)
	base string
	tmp  string // temporary name to rename from; "" when written in place
	off  int64
}

func newReceiver(dir string, stats *CaptureStats, log *slog.Logger) (*receiver, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("image: %s: %w", dir, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &receiver{dir: dir, rootFD: fd, root0: os.Geteuid() == 0, log: log, stats: stats,
		pending: map[uint64]*cloneEntry{}, waiting: map[string][]*cloneEntry{}}, nil
}

func (r *receiver) close() {
	if r.cur != nil {
		r.cur.f.Close()
		unix.Close(r.cur.pfd)
		r.cur = nil
	}
	for _, d := range r.stack {
		unix.Close(d.fd)
	}
	r.stack = nil
	unix.Close(r.rootFD)
}

// emptyDir reports whether dir does not exist or holds nothing.
func emptyDir(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	defer f.Close()
	names, _ := f.Readdirnames(1)
	return len(names) == 0
}

// run reads frames until the stream ends. For a capture, it ends after the walk when
// every requested file has arrived; for a packed image, at the end of the input.
func (r *receiver) run(ctx context.Context, fr *frameReader, onInfo func([]byte) error) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		typ, p, err := fr.next()
		r.stats.WireBytes = fr.n
		if err == io.EOF {
			if r.reqs != nil && !(r.walkDone && len(r.pending) == 0) {
				return fmt.Errorf("image: the agent's stream ended early: %w", io.ErrUnexpectedEOF)
			}
			if r.reqs == nil && !r.walkDone {
				return fmt.Errorf("image: clone stream ended before its end: %w", io.ErrUnexpectedEOF)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("image: clone stream: %w", err)
		}
		switch typ {
		case frameInfo:
			if onInfo != nil {
				if err := onInfo(p); err != nil {
					return err
				}
			}
		case frameTotals:
			var t walkTotals
			if json.Unmarshal(p, &t) == nil && r.prog != nil {
				r.prog.total = t.Bytes
			}
		case frameEntry:
			e, err := decodeEntry(p)
			if err != nil {
				return fmt.Errorf("image: clone stream: %w", err)
			}
			if err := r.entry(&e); err != nil {
				return err
			}
		case frameData, frameHole:
			d := &dec{b: p}
			id := d.uvarint()
			var n uint64
			if typ == frameHole {
				n = d.uvarint()
			}
			if d.err != nil {
				return fmt.Errorf("image: clone stream: %w", d.err)
			}
			if err := r.data(id, d.b, int64(n), typ == frameHole); err != nil {
				return err
			}
		case frameFileEnd:
			d := &dec{b: p}
			id := d.uvarint()
			status := d.byte1()
			if d.err != nil {
				return fmt.Errorf("image: clone stream: %w", d.err)
			}
			if err := r.fileEnd(id, status, string(d.b)); err != nil {
				return err
			}
		case frameUp:
			if err := r.up(); err != nil {
				return err
			}
		case frameWalkEnd:
			if len(r.stack) != 0 {
				return fmt.Errorf("image: clone stream: walk ended with %d directories open: %w", len(r.stack), ErrStream)
			}
			r.walkDone = true
			if r.reqs == nil {
				return nil
			}
		case frameWarning:
			r.warn(string(p))
		case frameError:
			return fmt.Errorf("image: golden node: %s", p)
		case frameHello:
		default:
			return fmt.Errorf("image: clone stream: unexpected frame %q: %w", typ, ErrStream)
		}
		if r.reqs != nil && r.walkDone && len(r.pending) == 0 && r.cur == nil {
			r.reqs.quit()
			// Read to the end: the agent closes its side after the quit.
		}
	}
}

func (r *receiver) warn(msg string) {
	if len(r.stats.Warnings) < 1000 {
		r.stats.Warnings = append(r.stats.Warnings, msg)
	}
	r.log.Warn("capture: " + msg)
}

// parent returns the directory fd for entry rel: the top of the stack for entries in
// walk order. owned says whether the caller must close it.
func (r *receiver) parent(rel string) (fd int, base string, owned bool, err error) {
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	if n := len(r.stack); n > 0 && r.stack[n-1].rel == dir {
		return r.stack[n-1].fd, base, false, nil
	}
	fd, err = r.openDir(dir)
	return fd, base, true, err
}

// openDir opens dir below the root without following any symlink.
func (r *receiver) openDir(dir string) (int, error) {
	if dir == "." {
		return unix.Dup(r.rootFD)
	}
	fd, err := unix.Openat2(r.rootFD, dir, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return -1, fmt.Errorf("image: %s: %w", dir, err)
	}
	return fd, nil
}

func (r *receiver) entry(e *cloneEntry) error {
	r.stats.Entries++
	if e.path == "." {
		if len(r.stack) != 0 {
			return fmt.Errorf("image: clone stream: a second root entry: %w", ErrStream)
		}
		fd, err := unix.Dup(r.rootFD)
		if err != nil {
			return err
		}
		return r.pushDir(e, fd)
	}
	n := len(r.stack)
	if n == 0 || path.Dir(e.path) != r.stack[n-1].rel {
		return fmt.Errorf("image: clone stream: %s is not in the directory being listed: %w", e.path, ErrStream)
	}
	top := r.stack[n-1]
	base := path.Base(e.path)
	if top.local != nil {
		delete(top.local, base)
	}
	var st unix.Stat_t
	exists := false
	if !r.fresh {
		exists = unix.Fstatat(top.fd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
	}
	switch {
	case e.hardlink():
		if _, ok := r.pendingName(e.link); ok {
			r.waiting[e.link] = append(r.waiting[e.link], e)
			return nil
		}
		return r.hardlink(e)
	case e.typ() == unix.S_IFDIR:
		if exists && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := unix.Unlinkat(top.fd, base, 0); err != nil {
				return fmt.Errorf("image: replace %s: %w", e.path, err)
			}
			exists = false
		}
		if !exists {
			if err := unix.Mkdirat(top.fd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("image: mkdir %s: %w", e.path, err)
			}
		}
		fd, err := unix.Openat(top.fd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("image: %s: %w", e.path, err)
		}
		return r.pushDir(e, fd)
	case e.typ() == unix.S_IFREG:
		r.stats.Files++
		if exists && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == e.size &&
			st.Mtim.Sec == e.mtime && st.Mtim.Nsec == int64(e.mtimeNs) && e.flags&flagInline == 0 {
			r.stats.Unchanged++
			r.prog.add(e.size)
			return r.syncMeta(top.fd, base, e, &st)
		}
		if e.flags&flagInline != 0 {
			return r.startFile(e, top.fd, base, false, exists)
		}
		if r.reqs == nil {
			return fmt.Errorf("image: clone stream: %s has no data and nobody to ask: %w", e.path, ErrStream)
		}
		if _, dup := r.pending[e.id]; dup {
			return fmt.Errorf("image: clone stream: file id %d twice: %w", e.id, ErrStream)
		}
		r.pending[e.id] = e
		r.reqs.push(e.id, e.path)
		return nil
	case e.typ() == unix.S_IFLNK:
		if exists && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			if t, err := readlinkat(top.fd, base); err == nil && t == e.link {
				return r.syncMeta(top.fd, base, e, &st)
			}
		}
		if exists {
			if err := r.removeAt(top.fd, base, e.path, &st); err != nil {
				return err
			}
		}
		if err := unix.Symlinkat(e.link, top.fd, base); err != nil {
			return fmt.Errorf("image: symlink %s: %w", e.path, err)
		}
		return r.setMeta(top.fd, base, e, -1)
	default: // devices, fifos, sockets
		if exists && st.Mode&unix.S_IFMT == e.typ() && st.Rdev == e.rdev {
			return r.syncMeta(top.fd, base, e, &st)
		}
		if exists {
			if err := r.removeAt(top.fd, base, e.path, &st); err != nil {
				return err
			}
		}
		if err := unix.Mknodat(top.fd, base, e.mode, int(e.rdev)); err != nil {
			if !r.root0 && errors.Is(err, unix.EPERM) {
				r.warn(fmt.Sprintf("%s: device node left out (not root)", e.path))
				return nil
			}
			return fmt.Errorf("image: mknod %s: %w", e.path, err)
		}
		return r.setMeta(top.fd, base, e, -1)
	}
}

func (r *receiver) pendingName(p string) (*cloneEntry, bool) {
	if r.cur != nil && r.cur.e.path == p {
		return r.cur.e, true
	}
	for _, e := range r.pending {
		if e.path == p {
			return e, true
		}
	}
	return nil, false
}

func (r *receiver) pushDir(e *cloneEntry, fd int) error {
	d := &dirState{rel: e.path, fd: fd}
	if r.overlay && e.path == "." {
		r.stack = append(r.stack, d)
		return nil
	}
	if !r.fresh && !r.overlay {
		d.local = map[string]bool{}
		if dfd, err := unix.Dup(fd); err == nil {
			f := os.NewFile(uintptr(dfd), e.path)
			names, _ := f.Readdirnames(-1)
			f.Close()
			for _, n := range names {
				d.local[n] = true
			}
		}
	}
	// A directory's xattrs wait for the end: a default ACL set now would be inherited by
	// the files made in it, which have their own.
	xs := e.xattrs
	e.xattrs = nil
	err := r.setMetaFD(fd, e, false)
	e.xattrs = xs
	if err != nil {
		unix.Close(fd)
		return err
	}
	r.stack = append(r.stack, d)
	r.dirTimes = append(r.dirTimes, dirTime{e.path, e.mtime, e.mtimeNs, xs})
	return nil
}

// up ends the listing of the directory on top: what it had that the golden node did not
// send goes.
func (r *receiver) up() error {
	n := len(r.stack)
	if n == 0 {
		return fmt.Errorf("image: clone stream: 'U' with no directory open: %w", ErrStream)
	}
	d := r.stack[n-1]
	r.stack = r.stack[:n-1]
	defer unix.Close(d.fd)
	for _, name := range slices.Sorted(mapKeys(d.local)) {
		var st unix.Stat_t
		if unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
			continue
		}
		rel := name
		if d.rel != "." {
			rel = d.rel + "/" + name
		}
		if err := r.removeAt(d.fd, name, rel, &st); err != nil {
			return err
		}
		r.stats.Deleted++
	}
	return nil
}

// removeAt removes name (a whole tree if it is a directory).
func (r *receiver) removeAt(pfd int, name, rel string, st *unix.Stat_t) error {
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlinkat(pfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("image: remove %s: %w", rel, err)
		}
		return nil
	}
	fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("image: remove %s: %w", rel, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	names, _ := f.Readdirnames(-1)
	for _, n := range names {
		var cst unix.Stat_t
		if unix.Fstatat(fd, n, &cst, unix.AT_SYMLINK_NOFOLLOW) == nil {
			if err := r.removeAt(fd, n, rel+"/"+n, &cst); err != nil {
				f.Close()
				return err
			}
		}
	}
	f.Close()
	if err := unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("image: remove %s: %w", rel, err)
	}
	return nil
}

const tmpPrefix = ".provkit-part."

// startFile opens the file an entry's data goes to: in place when nothing was there,
// else a temporary name renamed over the old file at the end (a reader never sees half
// a file, and an interrupted capture leaves the old one).
func (r *receiver) startFile(e *cloneEntry, pfd int, base string, ownP, exists bool) error {
	if r.cur != nil {
		return fmt.Errorf("image: clone stream: %s starts before %s ended: %w", e.path, r.cur.e.path, ErrStream)
	}
	name, tmp := base, ""
	if exists {
		tmp = tmpPrefix + base
		if len(tmp) > 255 {
			tmp = tmpPrefix + fmt.Sprint(e.id)
		}
		name = tmp
	}
	fd, err := unix.Openat(pfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		if ownP {
			unix.Close(pfd)
		}
		return fmt.Errorf("image: create %s: %w", e.path, err)
	}
	if !ownP {
		if pfd, err = unix.Dup(pfd); err != nil {
			unix.Close(fd)
			return err
		}
	}
	r.cur = &openFile{e: e, f: os.NewFile(uintptr(fd), e.path), pfd: pfd, base: base, tmp: tmp}
	return nil
}

func (r *receiver) data(id uint64, b []byte, hole int64, isHole bool) error {
	if r.cur == nil || r.cur.e.id != id {
		if r.cur != nil {
			return fmt.Errorf("image: clone stream: data for file %d while %s is open: %w", id, r.cur.e.path, ErrStream)
		}
		e, ok := r.pending[id]
		if !ok {
			return fmt.Errorf("image: clone stream: data for unknown file %d: %w", id, ErrStream)
		}
		pfd, base, owned, err := r.parent(e.path)
		if err != nil {
			return err
		}
		if !owned {
			if pfd, err = unix.Dup(pfd); err != nil {
				return err
			}
		}
		var st unix.Stat_t
		exists := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
		if err := r.startFile(e, pfd, base, true, exists); err != nil {
			return err
		}
	}
	c := r.cur
	if isHole {
		if hole < 0 || c.off+hole > c.e.size {
			return fmt.Errorf("image: clone stream: %s: hole past the end: %w", c.e.path, ErrStream)
		}
		c.off += hole
		r.prog.add(hole)
		return nil
	}
	if c.off+int64(len(b)) > c.e.size {
		return fmt.Errorf("image: clone stream: %s: more data than its %d bytes: %w", c.e.path, c.e.size, ErrStream)
	}
	if _, err := c.f.WriteAt(b, c.off); err != nil {
		return fmt.Errorf("image: write %s: %w", c.e.path, err)
	}
	c.off += int64(len(b))
	r.stats.DataBytes += int64(len(b))
	r.prog.add(int64(len(b)))
	return nil
}

func (r *receiver) fileEnd(id uint64, status byte, msg string) error {
	c := r.cur
	if c == nil || c.e.id != id {
		e, ok := r.pending[id]
		if !ok || (c != nil && c.e.id != id) {
			return fmt.Errorf("image: clone stream: end of unknown file %d: %w", id, ErrStream)
		}
		// No data frames: an empty file (or one that is gone).
		if status != fileGone {
			pfd, base, owned, err := r.parent(e.path)
			if err != nil {
				return err
			}
			if !owned {
				if pfd, err = unix.Dup(pfd); err != nil {
					return err
				}
			}
			var st unix.Stat_t
			exists := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
			if err := r.startFile(e, pfd, base, true, exists); err != nil {
				return err
			}
			c = r.cur
		}
	}
	delete(r.pending, id)
	if status == fileGone {
		e := r.cur
		if c != nil {
			name := c.base
			if c.tmp != "" {
				name = c.tmp
			}
			_ = unix.Unlinkat(c.pfd, name, 0)
			c.f.Close()
			unix.Close(c.pfd)
			r.cur = nil
			r.warn(fmt.Sprintf("%s: %s: left out", e.e.path, msg))
		} else {
			r.warn(fmt.Sprintf("file %d: %s: left out", id, msg))
		}
		return nil
	}
	if status == fileChanged {
		r.warn(fmt.Sprintf("%s: %s (capture again for a consistent copy)", c.e.path, msg))
	}
	r.cur = nil
	defer unix.Close(c.pfd)
	err := r.finishFile(c)
	c.f.Close()
	if err != nil {
		return err
	}
	if c.tmp != "" {
		var st unix.Stat_t
		if unix.Fstatat(c.pfd, c.base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if err := r.removeAt(c.pfd, c.base, c.e.path, &st); err != nil {
				return err
			}
		}
		if err := unix.Renameat(c.pfd, c.tmp, c.pfd, c.base); err != nil {
			return fmt.Errorf("image: rename %s: %w", c.e.path, err)
		}
	}
	r.stats.Changed++
	for _, l := range r.waiting[c.e.path] {
		if err := r.hardlink(l); err != nil {
			return err
		}
	}
	delete(r.waiting, c.e.path)
	return nil
}

func (r *receiver) finishFile(c *openFile) error {
	fd := int(c.f.Fd())
	if err := unix.Ftruncate(fd, c.e.size); err != nil {
		return fmt.Errorf("image: %s: %w", c.e.path, err)
	}
	if err := r.setMetaFD(fd, c.e, true); err != nil {
		return err
	}
	ts := []unix.Timespec{{Sec: c.e.mtime, Nsec: int64(c.e.mtimeNs)}, {Sec: c.e.mtime, Nsec: int64(c.e.mtimeNs)}}
	if err := unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH); err != nil {
		// Kernels before 5.8 refuse AT_EMPTY_PATH here: go through the name.
		name := c.base
		if c.tmp != "" {
			name = c.tmp
		}
		if err := unix.UtimesNanoAt(c.pfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("image: times of %s: %w", c.e.path, err)
		}
	}
	return nil
}

// hardlink makes e.path a link to e.link (both below the root), unless it already is.
func (r *receiver) hardlink(e *cloneEntry) error {
	tfd, tbase, towned, err := r.parent(e.link)
	if err != nil {
		return err
	}
	if towned {
		defer unix.Close(tfd)
	}
	pfd, base, owned, err := r.parent(e.path)
	if err != nil {
		return err
	}
	if owned {
		defer unix.Close(pfd)
	}
	var tst, st unix.Stat_t
	if err := unix.Fstatat(tfd, tbase, &tst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		r.warn(fmt.Sprintf("%s: hard link to %s, which is missing: left out", e.path, e.link))
		return nil
	}
	if unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		if st.Ino == tst.Ino && st.Dev == tst.Dev {
			return nil
		}
		if err := r.removeAt(pfd, base, e.path, &st); err != nil {
			return err
		}
	}
	if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
		return fmt.Errorf("image: link %s to %s: %w", e.path, e.link, err)
	}
	return nil
}

// syncMeta brings an existing entry's owner, mode, xattrs and time to e's.
func (r *receiver) syncMeta(pfd int, base string, e *cloneEntry, st *unix.Stat_t) error {
	same := st.Uid == e.uid && st.Gid == e.gid && st.Mode == e.mode &&
		(e.typ() == unix.S_IFDIR || (st.Mtim.Sec == e.mtime && st.Mtim.Nsec == int64(e.mtimeNs)))
	if same {
		local, _ := listXattrs(r.abs(e.path))
		if xattrsEqual(local, e.xattrs) {
			return nil
		}
	}
	return r.setMeta(pfd, base, e, -1)
}

func xattrsEqual(a, b []xattr) bool {
	return slices.EqualFunc(a, b, func(x, y xattr) bool { return x.name == y.name && string(x.value) == string(y.value) })
}

func (r *receiver) abs(rel string) string {
	if rel == "." {
		return r.dir
	}
	return r.dir + "/" + rel
}

// setMeta sets owner, mode, xattrs and (not for directories) the time of pfd/base
// without following a symlink.
func (r *receiver) setMeta(pfd int, base string, e *cloneEntry, _ int) error {
	if err := unix.Fchownat(pfd, base, int(e.uid), int(e.gid), unix.AT_SYMLINK_NOFOLLOW); err != nil && !r.ignoreOwner(err) {
		return fmt.Errorf("image: chown %s: %w", e.path, err)
	}
	if e.typ() != unix.S_IFLNK {
		if err := unix.Fchmodat(pfd, base, e.mode&0o7777, 0); err != nil {
			return fmt.Errorf("image: chmod %s: %w", e.path, err)
		}
	}
	r.setXattrs(e.path, e.xattrs, func() ([]xattr, error) { return listXattrs(r.abs(e.path)) },
		func(n string, v []byte) error { return unix.Lsetxattr(r.abs(e.path), n, v, 0) },
		func(n string) error { return unix.Lremovexattr(r.abs(e.path), n) })
	if e.typ() != unix.S_IFDIR {
		ts := []unix.Timespec{{Sec: e.mtime, Nsec: int64(e.mtimeNs)}, {Sec: e.mtime, Nsec: int64(e.mtimeNs)}}
		if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("image: times of %s: %w", e.path, err)
		}
	}
	return nil
}

// setMetaFD sets owner, mode and xattrs through an open fd (regular files, directories).
func (r *receiver) setMetaFD(fd int, e *cloneEntry, withXattrs bool) error {
	if err := unix.Fchown(fd, int(e.uid), int(e.gid)); err != nil && !r.ignoreOwner(err) {
		return fmt.Errorf("image: chown %s: %w", e.path, err)
	}
	if err := unix.Fchmod(fd, e.mode&0o7777); err != nil {
		return fmt.Errorf("image: chmod %s: %w", e.path, err)
	}
	if withXattrs && (len(e.xattrs) > 0 || !r.fresh) {
		r.setXattrs(e.path, e.xattrs, func() ([]xattr, error) { return flistXattrs(fd) },
			func(n string, v []byte) error { return unix.Fsetxattr(fd, n, v, 0) },
			func(n string) error { return unix.Fremovexattr(fd, n) })
	}
	return nil
}

// setXattrs makes the xattrs exactly want: set what differs, remove what is extra. Those
// the filesystem refuses are warnings (a target without ACL or SELinux support).
func (r *receiver) setXattrs(rel string, want []xattr, list func() ([]xattr, error), set func(string, []byte) error, remove func(string) error) {
	var have []xattr
	if !r.fresh {
		have, _ = list()
	}
	for _, x := range want {
		if i := slices.IndexFunc(have, func(h xattr) bool { return h.name == x.name }); i >= 0 && string(have[i].value) == string(x.value) {
			continue
		}
		if err := set(x.name, x.value); err != nil {
			r.warn(fmt.Sprintf("%s: xattr %s: %v", rel, x.name, err))
		}
	}
	for _, h := range have {
		if !slices.ContainsFunc(want, func(x xattr) bool { return x.name == h.name }) {
			if err := remove(h.name); err != nil && !errors.Is(err, unix.ENODATA) {
				r.warn(fmt.Sprintf("%s: remove xattr %s: %v", rel, h.name, err))
			}
		}
	}
}

func (r *receiver) ignoreOwner(err error) bool {
	return !r.root0 && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL))
}

// finish sets the directories' times, deepest last written first.
func (r *receiver) finish() error {
	if len(r.pending) > 0 || r.cur != nil {
		return fmt.Errorf("image: clone stream ended with %d files outstanding: %w", len(r.pending), io.ErrUnexpectedEOF)
	}
	for name := range r.waiting {
		r.warn(fmt.Sprintf("hard links to %s, which never arrived: left out", name))
	}
	for i := len(r.dirTimes) - 1; i >= 0; i-- {
		d := r.dirTimes[i]
		fd, err := r.openDir(d.rel)
		if err != nil {
			continue
		}
		if len(d.xattrs) > 0 || !r.fresh {
			r.setXattrs(d.rel, d.xattrs, func() ([]xattr, error) { return flistXattrs(fd) },
				func(n string, v []byte) error { return unix.Fsetxattr(fd, n, v, 0) },
				func(n string) error { return unix.Fremovexattr(fd, n) })
		}
		ts := []unix.Timespec{{Sec: d.sec, Nsec: int64(d.ns)}, {Sec: d.sec, Nsec: int64(d.ns)}}
		err = unix.UtimesNanoAt(fd, ".", ts, 0)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("image: times of %s: %w", d.rel, err)
		}
	}
	return nil
}

func readlinkat(dfd int, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(dfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, len(buf)*4)
	}
}

func flistXattrs(fd int) ([]xattr, error) {
	return listXattrs(fmt.Sprintf("/proc/self/fd/%d", fd))
}

// requestQueue sends 'R' frames to the agent from its own goroutine, so that the reader
// never blocks on a full pipe while the agent waits for us to read (an unbounded queue:
// a few bytes per changed file).
type requestQueue struct {
	mu    sync.Mutex
	items []request
	done  bool
	wake  chan struct{}
	fw    *frameWriter
	err   error
	exit  chan struct{}
}

type request struct {
	id   uint64
	path string
}

func newRequestQueue(w io.Writer) *requestQueue {
	q := &requestQueue{wake: make(chan struct{}, 1), fw: newFrameWriter(w), exit: make(chan struct{})}
	go q.loop()
	return q
}

func (q *requestQueue) push(id uint64, p string) {
	q.mu.Lock()
	q.items = append(q.items, request{id, p})
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *requestQueue) quit() {
	q.mu.Lock()
	q.done = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// stop ends the loop (after a quit, or on error) and returns its error.
func (q *requestQueue) wait() error {
	<-q.exit
	return q.err
}

func (q *requestQueue) loop() {
	defer close(q.exit)
	for range q.wake {
		q.mu.Lock()
		items, done := q.items, q.done
		q.items = nil
		q.mu.Unlock()
		for _, it := range items {
			if err := q.fw.request(it.id, it.path); err != nil {
				q.err = err
				return
			}
		}
		if done {
			if err := q.fw.frame(frameQuit, nil); err != nil {
				q.err = err
				return
			}
		}
		if err := q.fw.flush(); err != nil {
			q.err = err
			return
		}
		if done {
			return
		}
	}
}

// abort stops the loop without a quit.
func (q *requestQueue) abort() {
	q.mu.Lock()
	q.done = true
	q.items = nil
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

var _ = binary.MaxVarintLen64
