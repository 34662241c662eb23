package nfsroot

import (
	"bufio"
	"context"
	"io/fs"
	"net"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	billy "github.com/go-git/go-billy/v5"
	nfs "github.com/willscott/go-nfs"
	nfsfile "github.com/willscott/go-nfs/file"
	"golang.org/x/sys/unix"

	"github.com/provkit/provkit/nfsroot/internal/xdr"
)

// go-nfs serves WRITE, COMMIT, SYMLINK, REMOVE, RMDIR and RENAME, through nfsroot's
// nfs.Handler (deterministic handles resolved in the caller's view) and a billy.Filesystem
// over the caller's view. Each client connection that needs it gets a lane: a go-nfs
// server of its own on an in-memory pipe, fed one call at a time after nfsroot has checked
// the call (handles, names, writability, the caller's rights) and knowing the caller's
// credentials for the objects it creates.

type laneReq struct {
	rec   []byte
	bp    *[]byte
	creds xdr.Creds
}

type lane struct {
	c      *conn
	ctx    context.Context
	cancel context.CancelFunc
	local  net.Conn
	ln     *pipeListener
	reqs   chan laneReq
	creds  atomic.Pointer[xdr.Creds]
	wg     sync.WaitGroup

	fsMu sync.Mutex
	fss  map[*view]*viewFS
}

func (c *conn) getLane() *lane {
	c.laneMu.Lock()
	defer c.laneMu.Unlock()
	if c.lane != nil {
		return c.lane
	}
	ctx, cancel := context.WithCancel(c.ctx)
	local, remote := net.Pipe()
	l := &lane{c: c, ctx: ctx, cancel: cancel, local: local, ln: newPipeListener(remote),
		reqs: make(chan laneReq, 8), fss: map[*view]*viewFS{}}
	srv := &nfs.Server{Handler: &goHandler{l: l}, ID: c.st.verifier, Context: ctx}
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		_ = srv.Serve(l.ln)
	}()
	go func() {
		defer l.wg.Done()
		l.run()
	}()
	c.lane = l
	return l
}

// run feeds go-nfs one call at a time and relays each reply to the client.
func (l *lane) run() {
	defer l.local.Close()
	br := bufio.NewReaderSize(l.local, 64<<10)
	var buf []byte
	for {
		var r laneReq
		select {
		case r = <-l.reqs:
		case <-l.ctx.Done():
			return
		}
		l.creds.Store(&r.creds)
		msg := make([]byte, 4+len(r.rec))
		copy(msg[4:], r.rec)
		putBuf(r.bp)
		xdr.MarkRecord(msg)
		_ = l.local.SetDeadline(time.Now().Add(2 * time.Minute))
		if _, err := l.local.Write(msg); err != nil {
			l.c.st.log.Error("go-nfs lane: write", "ip", l.c.remote.Addr().String(), "err", err)
			l.c.nc.Close()
			return
		}
		reply, err := xdr.ReadRecord(br, buf, maxRecord)
		if err != nil {
			l.c.st.log.Error("go-nfs lane: read", "ip", l.c.remote.Addr().String(), "err", err)
			l.c.nc.Close()
			return
		}
		out := make([]byte, 4+len(reply))
		copy(out[4:], reply)
		buf = reply[:0]
		l.c.write(out)
	}
}

// submit queues a checked call; it takes ownership of bp.
func (l *lane) submit(r laneReq) {
	select {
	case l.reqs <- r:
	case <-l.ctx.Done():
		putBuf(r.bp)
	}
}

func (l *lane) close() {
	l.cancel()
	l.ln.Close()
	l.wg.Wait()
	for {
		select {
		case r := <-l.reqs:
			putBuf(r.bp)
		default:
			return
		}
	}
}

func (l *lane) fsFor(v *view) *viewFS {
	l.fsMu.Lock()
	defer l.fsMu.Unlock()
	f := l.fss[v]
	if f == nil {
		f = &viewFS{v: v, l: l}
		l.fss[v] = f
	}
	return f
}

// pipeListener hands go-nfs's Serve the one connection of a lane.
type pipeListener struct {
	mu     sync.Mutex
	c      net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener(c net.Conn) *pipeListener {
	return &pipeListener{c: c, closed: make(chan struct{})}
}

func (p *pipeListener) Accept() (net.Conn, error) {
	p.mu.Lock()
	c := p.c
	p.c = nil
	p.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-p.closed
	return nil, net.ErrClosed
}

func (p *pipeListener) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

func (p *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "lane" }

// forward checks a call for go-nfs and queues it; it replies itself when the check fails.
func (c *conn) forward(r *req, bp *[]byte) []byte {
	r.e = newReply(r.call.XID, xdr.Success)
	if ok := r.precheck(); !ok {
		putBuf(bp)
		if r.e == nil {
			return acceptReply(r.call.XID, xdr.GarbageArgs)
		}
		return r.e.B
	}
	c.getLane().submit(laneReq{rec: *bp, bp: bp, creds: r.call.Creds})
	return nil
}

// precheck validates a forwarded call. It returns true to forward; false with r.e holding
// the reply (or nil for garbage arguments).
func (r *req) precheck() bool {
	cr := &r.call.Creds
	switch r.call.Proc {
	case procWrite, procCommit:
		fh := r.d.Opaque(fhMax)
		r.d.Uint64() // offset
		r.d.Uint32() // count
		if r.call.Proc == procWrite {
			if how := r.d.Uint32(); how > 2 {
				r.e = nil
				return false
			}
			r.d.Opaque(maxIO)
		}
		if r.d.Err() != nil {
			r.e = nil
			return false
		}
		o, s := r.resolve(fh)
		if s != nfs.NFSStatusOk {
			r.e.Uint32(uint32(s))
			r.wcc(nil, nil)
			return false
		}
		var st unix.Stat_t
		if err := o.stat(&st); err != nil {
			r.e.Uint32(uint32(staleIfGone(err)))
			r.wcc(nil, nil)
			return false
		}
		fail := func(s status) bool {
			r.e.Uint32(uint32(s))
			r.wcc(&st, o)
			return false
		}
		switch {
		case o.loc.layer != layerState:
			return fail(nfs.NFSStatusROFS)
		case st.Mode&unix.S_IFMT == unix.S_IFDIR:
			return fail(nfs.NFSStatusIsDir)
		case st.Mode&unix.S_IFMT != unix.S_IFREG:
			return fail(nfs.NFSStatusInval)
		case r.call.Proc == procWrite && permBits(&st, cr)&2 == 0 && st.Uid != cr.UID:
			return fail(nfs.NFSStatusAccess)
		}
		return true
	case procSymlink:
		fh := r.d.Opaque(fhMax)
		name := r.d.Opaque(maxPath)
		decodeSattr(r.d)
		target := r.d.Opaque(maxPath)
		if r.d.Err() != nil {
			r.e = nil
			return false
		}
		dc, ok := r.dirChange(fh, name, true)
		if !ok {
			return false
		}
		defer dc.close()
		if len(target) == 0 || strings.IndexByte(string(target), 0) >= 0 {
			r.failChange(dc, nfs.NFSStatusInval)
			return false
		}
		return true
	case procRemove, procRmdir:
		fh := r.d.Opaque(fhMax)
		name := r.d.Opaque(maxPath)
		if r.d.Err() != nil {
			r.e = nil
			return false
		}
		if r.call.Proc == procRmdir && (string(name) == "." || string(name) == "..") {
			o, s := r.resolve(fh)
			if s != nfs.NFSStatusOk {
				o = nil
			}
			r.e.Uint32(uint32(nfs.NFSStatusInval))
			r.wcc(nil, o)
			return false
		}
		dc, ok := r.dirChange(fh, name, false)
		if !ok {
			return false
		}
		defer dc.close()
		var vst unix.Stat_t
		if err := statAt(dc.fd, dc.name, &vst); err != nil {
			r.failChange(dc, fromErrno(err))
			return false
		}
		isDir := vst.Mode&unix.S_IFMT == unix.S_IFDIR
		switch {
		case r.call.Proc == procRemove && isDir:
			r.failChange(dc, nfs.NFSStatusIsDir)
			return false
		case r.call.Proc == procRmdir && !isDir:
			r.failChange(dc, nfs.NFSStatusNotDir)
			return false
		case !mayDelete(&dc.pre, &vst, cr):
			r.failChange(dc, nfs.NFSStatusAccess)
			return false
		case isDir && !emptyDir(dc.fd, dc.name):
			r.failChange(dc, nfs.NFSStatusNotEmpty)
			return false
		}
		return true
	case procRename:
		ffh := r.d.Opaque(fhMax)
		fname := r.d.Opaque(maxPath)
		tfh := r.d.Opaque(fhMax)
		tname := r.d.Opaque(maxPath)
		if r.d.Err() != nil {
			r.e = nil
			return false
		}
		return r.checkRename(ffh, fname, tfh, tname)
	}
	return true
}

func (r *req) checkRename(ffh, fname, tfh, tname []byte) bool {
	cr := &r.call.Creds
	reply := r.e
	r.e = &xdr.Encoder{}
	from, ok := r.dirChange(ffh, fname, false)
	fromPart := r.e
	r.e = &xdr.Encoder{}
	var to *dirChange
	if ok {
		defer from.close()
		to, ok = r.dirChange(tfh, tname, false)
		if ok {
			defer to.close()
		}
	}
	toPart := r.e
	r.e = reply
	wccOf := func(dc *dirChange) {
		if dc == nil {
			r.wcc(nil, nil)
		} else {
			r.wcc(&dc.pre, dc.dir)
		}
	}
	fail := func(s status) bool {
		r.e.Uint32(uint32(s))
		wccOf(from)
		wccOf(to)
		return false
	}
	if from == nil {
		// fromPart holds the status and the from directory's wcc.
		r.e.B = append(r.e.B, fromPart.B...)
		r.wcc(nil, nil)
		return false
	}
	if to == nil {
		r.e.B = append(r.e.B, toPart.B[:4]...)
		wccOf(from)
		r.e.B = append(r.e.B, toPart.B[4:]...)
		return false
	}
	if from.dir.v != to.dir.v {
		return fail(nfs.NFSStatusXDev)
	}
	var fst, tst unix.Stat_t
	if err := statAt(from.fd, from.name, &fst); err != nil {
		return fail(fromErrno(err))
	}
	if !mayDelete(&from.pre, &fst, cr) {
		return fail(nfs.NFSStatusAccess)
	}
	if err := statAt(to.fd, to.name, &tst); err == nil {
		fdir := fst.Mode&unix.S_IFMT == unix.S_IFDIR
		tdir := tst.Mode&unix.S_IFMT == unix.S_IFDIR
		switch {
		case fst.Ino == tst.Ino && fst.Dev == tst.Dev:
			// Same object: rename(2) does nothing and succeeds.
		case !mayDelete(&to.pre, &tst, cr):
			return fail(nfs.NFSStatusAccess)
		case fdir && !tdir:
			return fail(nfs.NFSStatusNotDir)
		case !fdir && tdir:
			return fail(nfs.NFSStatusIsDir)
		case tdir && !emptyDir(to.fd, to.name):
			return fail(nfs.NFSStatusNotEmpty)
		}
	}
	if fst.Mode&unix.S_IFMT == unix.S_IFDIR && within(joinRel(to.dir.path, to.name), joinRel(from.dir.path, from.name)) {
		return fail(nfs.NFSStatusInval)
	}
	return true
}

// emptyDir reports whether the directory name in dir has no entries.
func emptyDir(dir int, name string) bool {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	names, err := readNames(fd)
	return err == nil && len(names) == 0
}

// goHandler is nfsroot's nfs.Handler for one lane.
type goHandler struct{ l *lane }

func (h *goHandler) Mount(context.Context, net.Conn, nfs.MountRequest) (nfs.MountStatus, billy.Filesystem, []nfs.AuthFlavor) {
	return nfs.MountStatusErrAcces, nil, nil // MOUNT is served by nfsroot
}

func (h *goHandler) Change(f billy.Filesystem) billy.Change {
	if v, ok := f.(*viewFS); ok {
		return v
	}
	return nil
}

func (h *goHandler) FSStat(context.Context, billy.Filesystem, *nfs.FSStat) error { return nil }

func (h *goHandler) ToHandle(f billy.Filesystem, p []string) []byte {
	v, ok := f.(*viewFS)
	if !ok {
		return nil
	}
	n := uint32(0)
	for _, c := range p {
		n, _ = v.v.x.table.child(n, c)
	}
	return handle{export: v.v.x.id, id: v.v.x.table.idOf(n)}.encode()
}

func (h *goHandler) FromHandle(fh []byte) (billy.Filesystem, []string, error) {
	hd, err := decodeHandle(fh)
	if err != nil {
		return nil, nil, &nfs.NFSStatusError{NFSStatus: nfs.NFSStatusBadHandle, WrappedErr: err}
	}
	x := h.l.c.st.byID[hd.export]
	if x == nil {
		return nil, nil, &nfs.NFSStatusError{NFSStatus: nfs.NFSStatusStale, WrappedErr: errStale}
	}
	v, err := h.l.c.viewOf(x)
	if err != nil {
		return nil, nil, &nfs.NFSStatusError{NFSStatus: nfs.NFSStatusAccess, WrappedErr: err}
	}
	n, ok := v.lookupID(hd.id)
	if !ok {
		return nil, nil, &nfs.NFSStatusError{NFSStatus: nfs.NFSStatusStale, WrappedErr: errStale}
	}
	p := x.table.path(n)
	var parts []string
	if p != "" {
		parts = strings.Split(p, "/")
	}
	return h.l.fsFor(v), parts, nil
}

// InvalidateHandle does nothing: viewFS.Remove forgets a removed object's id itself, and a
// renamed object keeps its id so handles held for it follow it.
func (h *goHandler) InvalidateHandle(billy.Filesystem, []byte) error { return nil }

func (h *goHandler) HandleLimit() int { return 1 << 30 }

func goNFSInfo(st *unix.Stat_t, fileid uint64) nfsfile.FileInfo {
	return nfsfile.FileInfo{Nlink: uint32(st.Nlink), UID: st.Uid, GID: st.Gid,
		Major: unix.Major(st.Rdev), Minor: unix.Minor(st.Rdev), Fileid: fileid}
}

// viewFS is a billy.Filesystem over one node's view, for go-nfs. Paths are view paths;
// changes happen only in the node's writable state, through the same safe primitives as the
// rest of nfsroot.
type viewFS struct {
	v *view
	l *lane
}

var (
	_ billy.Filesystem = (*viewFS)(nil)
	_ billy.Change     = (*viewFS)(nil)
	_ billy.Capable    = (*viewFS)(nil)
)

func (f *viewFS) creds() *xdr.Creds {
	if c := f.l.creds.Load(); c != nil {
		return c
	}
	return &xdr.Creds{UID: xdr.Nobody, GID: xdr.Nobody}
}

func clean(p string) string { return strings.Trim(path.Clean("/"+p), "/") }

func pathErr(op, p string, err error) error {
	if err == nil {
		return nil
	}
	return &fs.PathError{Op: op, Path: "/" + p, Err: err}
}

var errROFS = &nfs.NFSStatusError{NFSStatus: nfs.NFSStatusROFS, WrappedErr: unix.EROFS}

// writable resolves p for a change and opens its directory.
func (f *viewFS) writable(p string) (int, string, error) {
	l, err := f.v.resolve(p)
	if err != nil {
		return -1, "", pathErr("resolve", p, unix.ENOENT)
	}
	if l.layer != layerState {
		return -1, "", errROFS
	}
	pfd, name, err := f.v.openParent(l)
	if err != nil {
		return -1, "", pathErr("open", p, err)
	}
	return pfd, name, nil
}

func (f *viewFS) Join(elem ...string) string {
	parts := elem[:0:0]
	for _, e := range elem {
		if e != "" {
			parts = append(parts, e)
		}
	}
	return strings.Join(parts, "/")
}

func (f *viewFS) Lstat(p string) (os.FileInfo, error) {
	p = clean(p)
	l, err := f.v.resolve(p)
	if err != nil {
		return nil, pathErr("lstat", p, unix.ENOENT)
	}
	fi := &fileInfo{name: path.Base("/" + p)}
	if err := f.v.statLoc(l, &fi.st); err != nil {
		return nil, pathErr("lstat", p, err)
	}
	t := f.v.x.table
	n := uint32(0)
	for _, c := range splitPath(p) {
		n, _ = t.child(n, c)
	}
	fi.fileid = t.idOf(n)
	return fi, nil
}

// Stat does not follow links either: the server never resolves a client's symbolic links.
func (f *viewFS) Stat(p string) (os.FileInfo, error) { return f.Lstat(p) }

func (f *viewFS) OpenFile(p string, flag int, _ os.FileMode) (billy.File, error) {
	p = clean(p)
	if flag&(os.O_CREATE|os.O_TRUNC|os.O_APPEND) != 0 {
		return nil, pathErr("open", p, unix.EOPNOTSUPP)
	}
	l, err := f.v.resolve(p)
	if err != nil {
		return nil, pathErr("open", p, unix.ENOENT)
	}
	if flag&(os.O_WRONLY|os.O_RDWR) != 0 && l.layer != layerState {
		return nil, errROFS
	}
	fd, err := f.v.openLoc(l)
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := fstat(fd, &st); err != nil {
		return nil, pathErr("open", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, pathErr("open", p, unix.EINVAL)
	}
	rfd, err := reopen(fd, flag&(os.O_WRONLY|os.O_RDWR))
	if err != nil {
		return nil, pathErr("open", p, err)
	}
	return &file{File: os.NewFile(uintptr(rfd), p), name: p}, nil
}

func (f *viewFS) Open(p string) (billy.File, error) { return f.OpenFile(p, os.O_RDONLY, 0) }

func (f *viewFS) Create(p string) (billy.File, error) {
	return nil, pathErr("create", clean(p), unix.EOPNOTSUPP) // CREATE is served natively
}

func (f *viewFS) Remove(p string) error {
	p = clean(p)
	pfd, name, err := f.writable(p)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := statAt(pfd, name, &st); err != nil {
		return pathErr("remove", p, err)
	}
	flags := 0
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		flags = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(pfd, name, flags); err != nil {
		return pathErr("remove", p, err)
	}
	if l, err := f.v.resolve(p); err == nil {
		f.v.forgetFile(l)
	}
	if n, ok := f.v.x.table.lookupPath(p); ok {
		f.v.x.table.forget(f.v.x.table.idOf(n))
	}
	return nil
}

func (f *viewFS) Rename(from, to string) error {
	from, to = clean(from), clean(to)
	fpfd, fname, err := f.writable(from)
	if err != nil {
		return err
	}
	defer unix.Close(fpfd)
	tpfd, tname, err := f.writable(to)
	if err != nil {
		return err
	}
	defer unix.Close(tpfd)
	if err := unix.Renameat(fpfd, fname, tpfd, tname); err != nil {
		return pathErr("rename", from, err)
	}
	for _, p := range []string{from, to} {
		if l, err := f.v.resolve(p); err == nil {
			f.v.forgetFile(l) // the file renamed away, and the one it replaced
		}
	}
	t := f.v.x.table
	if n, ok := t.lookupPath(to); ok {
		t.forget(t.idOf(n)) // the object that was there is gone
	}
	if n, ok := t.lookupPath(from); ok {
		dir := uint32(0)
		for _, c := range splitPath(parentOf(to)) {
			dir, _ = t.child(dir, c)
		}
		t.rename(n, dir, path.Base("/"+to))
	}
	return nil
}

func (f *viewFS) Symlink(target, link string) error {
	link = clean(link)
	pfd, name, err := f.writable(link)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := unix.Symlinkat(target, pfd, name); err != nil {
		return pathErr("symlink", link, err)
	}
	cr := f.creds()
	gid := cr.GID
	var dst unix.Stat_t
	if fstat(pfd, &dst) == nil && dst.Mode&unix.S_ISGID != 0 {
		gid = dst.Gid
	}
	_ = unix.Fchownat(pfd, name, int(cr.UID), int(gid), unix.AT_SYMLINK_NOFOLLOW)
	return nil
}

func (f *viewFS) Readlink(p string) (string, error) {
	p = clean(p)
	l, err := f.v.resolve(p)
	if err != nil {
		return "", pathErr("readlink", p, unix.ENOENT)
	}
	fd, err := f.v.openLoc(l)
	if err != nil {
		return "", pathErr("readlink", p, err)
	}
	defer unix.Close(fd)
	t, err := readlinkFD(fd)
	return t, pathErr("readlink", p, err)
}

func (f *viewFS) ReadDir(p string) ([]os.FileInfo, error) {
	p = clean(p)
	l, err := f.v.resolve(p)
	if err != nil {
		return nil, pathErr("readdir", p, unix.ENOENT)
	}
	ents, err := f.v.list(p, l)
	if err != nil {
		return nil, pathErr("readdir", p, err)
	}
	out := make([]os.FileInfo, 0, len(ents))
	for _, e := range ents {
		if fi, err := f.Lstat(joinRel(p, e.name)); err == nil {
			out = append(out, fi)
		}
	}
	return out, nil
}

func (f *viewFS) MkdirAll(p string, _ os.FileMode) error {
	return pathErr("mkdir", clean(p), unix.EOPNOTSUPP) // MKDIR is served natively
}

func (f *viewFS) TempFile(string, string) (billy.File, error) { return nil, billy.ErrNotSupported }

func (f *viewFS) Chroot(string) (billy.Filesystem, error) { return nil, billy.ErrNotSupported }

func (f *viewFS) Root() string { return "/" }

func (f *viewFS) Capabilities() billy.Capability { return billy.AllCapabilities }

// Change, for go-nfs's attribute updates after SYMLINK: only what the caller may do.
func (f *viewFS) change(p string, s sattr) error {
	p = clean(p)
	pfd, name, err := f.writable(p)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	fd, err := unix.Openat(pfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return pathErr("setattr", p, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := fstat(fd, &st); err != nil {
		return pathErr("setattr", p, err)
	}
	if s := applySattr(fd, pfd, name, &st, s, f.creds()); s != nfs.NFSStatusOk {
		return &nfs.NFSStatusError{NFSStatus: s}
	}
	return nil
}

func (f *viewFS) Chmod(p string, mode os.FileMode) error {
	m := uint32(mode.Perm())
	return f.change(p, sattr{mode: &m})
}

func (f *viewFS) Lchown(p string, uid, gid int) error {
	u, g := uint32(uid), uint32(gid)
	return f.change(p, sattr{uid: &u, gid: &g})
}

func (f *viewFS) Chown(p string, uid, gid int) error { return f.Lchown(p, uid, gid) }

func (f *viewFS) Chtimes(p string, atime, mtime time.Time) error {
	return f.change(p, sattr{
		atime: timeSet{how: 2, ts: unix.NsecToTimespec(atime.UnixNano())},
		mtime: timeSet{how: 2, ts: unix.NsecToTimespec(mtime.UnixNano())},
	})
}

// file is a billy.File over an *os.File.
type file struct {
	*os.File
	name string
}

func (f *file) Name() string  { return f.name }
func (f *file) Lock() error   { return nil }
func (f *file) Unlock() error { return nil }
