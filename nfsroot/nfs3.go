package nfsroot

import (
	"errors"
	"math"
	"sort"
	"strconv"

	nfs "github.com/willscott/go-nfs"
	"golang.org/x/sys/unix"

	"github.com/provkit/provkit/nfsroot/internal/xdr"
)

// NFSv3 procedures (RFC 1813).
const (
	procNull        = 0
	procGetattr     = 1
	procSetattr     = 2
	procLookup      = 3
	procAccess      = 4
	procReadlink    = 5
	procRead        = 6
	procWrite       = 7
	procCreate      = 8
	procMkdir       = 9
	procSymlink     = 10
	procMknod       = 11
	procRemove      = 12
	procRmdir       = 13
	procRename      = 14
	procLink        = 15
	procReaddir     = 16
	procReaddirplus = 17
	procFsstat      = 18
	procFsinfo      = 19
	procPathconf    = 20
	procCommit      = 21
)

// sendfileMin is the smallest READ whose data is sent with sendfile(2) rather than read
// into the reply: below it, one pread and one write cost less than the extra system calls.
const sendfileMin = 32 << 10

const (
	maxName = 255
	maxPath = 4096
	fhMax   = 64
)

type status = nfs.NFSStatus

// req is one NFS call being answered.
type req struct {
	c    *conn
	call xdr.Call
	d    *xdr.Decoder
	e    *xdr.Encoder
	// replied is set when the procedure sent its reply itself (a READ with sendfile).
	replied bool
}

// nfs answers one NFS call natively, or hands it to go-nfs (returning nil: the lane
// replies; a READ sent with sendfile has replied too). It owns bp.
func (c *conn) nfs(call xdr.Call, bp *[]byte) []byte {
	r := &req{c: c, call: call, d: xdr.NewDecoder(call.Args)}
	switch call.Proc {
	case procWrite, procSymlink, procRemove, procRmdir, procRename, procCommit:
		return c.forward(r, bp)
	}
	defer putBuf(bp)
	r.e = newReply(call.XID, xdr.Success)
	var ok bool
	switch call.Proc {
	case procNull:
		ok = true
	case procGetattr:
		ok = r.getattr()
	case procSetattr:
		ok = r.setattr()
	case procLookup:
		ok = r.lookup()
	case procAccess:
		ok = r.access()
	case procReadlink:
		ok = r.readlink()
	case procRead:
		ok = r.read()
	case procCreate:
		ok = r.create()
	case procMkdir:
		ok = r.mkdir()
	case procMknod:
		ok = r.mknod()
	case procLink:
		ok = r.link()
	case procReaddir:
		ok = r.readdir(false)
	case procReaddirplus:
		ok = r.readdir(true)
	case procFsstat:
		ok = r.fsstat()
	case procFsinfo:
		ok = r.fsinfo()
	case procPathconf:
		ok = r.pathconf()
	default:
		return acceptReply(call.XID, xdr.ProcUnavail)
	}
	if !ok {
		return acceptReply(call.XID, xdr.GarbageArgs)
	}
	if r.replied {
		return nil
	}
	return r.e.B
}

// object is a file handle resolved in the caller's view.
type object struct {
	x    *export
	v    *view
	n    uint32 // table entry
	id   uint64
	path string // view path
	loc  loc
}

// resolve decodes fh and finds its object in the caller's view. Errors map to NFS status:
// a handle of the wrong shape is BADHANDLE, an unknown or vanished one STALE, and a handle of
// an export the client may not use ACCES.
func (r *req) resolve(fh []byte) (*object, status) {
	h, err := decodeHandle(fh)
	if err != nil {
		return nil, nfs.NFSStatusBadHandle
	}
	x := r.c.st.byID[h.export]
	if x == nil {
		return nil, nfs.NFSStatusStale
	}
	v, err := r.c.viewOf(x)
	if err != nil {
		if errors.Is(err, errNotAllowed) || errors.Is(err, ErrUnknownClient) {
			return nil, nfs.NFSStatusAccess
		}
		r.c.st.log.Error("view", "ip", r.c.remote.Addr().String(), "err", err)
		return nil, nfs.NFSStatusServerFault
	}
	n, ok := v.lookupID(h.id)
	if !ok {
		return nil, nfs.NFSStatusStale
	}
	p := x.table.path(n)
	l, err := v.resolve(p)
	if err != nil {
		return nil, nfs.NFSStatusStale
	}
	return &object{x: x, v: v, n: n, id: h.id, path: p, loc: l}, nfs.NFSStatusOk
}

// stat stats the object (ESTALE-style errors when it vanished).
func (o *object) stat(st *unix.Stat_t) error { return o.v.statLoc(o.loc, st) }

// fromErrno maps a system error to an NFS status.
func fromErrno(err error) status {
	switch errno(err) {
	case 0:
		if err == nil {
			return nfs.NFSStatusOk
		}
		return nfs.NFSStatusIO
	case unix.ENOENT:
		return nfs.NFSStatusNoEnt
	case unix.EPERM:
		return nfs.NFSStatusPerm
	case unix.EACCES:
		return nfs.NFSStatusAccess
	case unix.EEXIST:
		return nfs.NFSStatusExist
	case unix.EXDEV:
		return nfs.NFSStatusXDev
	case unix.ENOTDIR:
		return nfs.NFSStatusNotDir
	case unix.EISDIR:
		return nfs.NFSStatusIsDir
	case unix.EINVAL:
		return nfs.NFSStatusInval
	case unix.EFBIG:
		return nfs.NFSStatusFBig
	case unix.ENOSPC:
		return nfs.NFSStatusNoSPC
	case unix.EROFS:
		return nfs.NFSStatusROFS
	case unix.EMLINK:
		return nfs.NFSStatusMlink
	case unix.ENAMETOOLONG:
		return nfs.NFSStatusNameTooLong
	case unix.ENOTEMPTY:
		return nfs.NFSStatusNotEmpty
	case unix.EDQUOT:
		return nfs.NFSStatusDQuot
	case unix.ESTALE, unix.ELOOP:
		return nfs.NFSStatusStale
	case unix.EOPNOTSUPP:
		return nfs.NFSStatusNotSupp
	}
	return nfs.NFSStatusIO
}

// staleIfGone maps errors on an object reached through a handle: vanished means STALE.
func staleIfGone(err error) status {
	if errno(err) == unix.ENOENT || errno(err) == unix.ENOTDIR {
		return nfs.NFSStatusStale
	}
	return fromErrno(err)
}

// checkName validates a file name from a client.
func checkName(name []byte) status {
	switch {
	case len(name) == 0:
		return nfs.NFSStatusInval
	case len(name) > maxName:
		return nfs.NFSStatusNameTooLong
	case string(name) == "." || string(name) == "..":
		return nfs.NFSStatusInval
	}
	for _, b := range name {
		if b == '/' || b == 0 {
			return nfs.NFSStatusInval
		}
	}
	return nfs.NFSStatusOk
}

// Attribute encoding.

func (r *req) attr(st *unix.Stat_t, fileid uint64) {
	e := r.e
	var t uint32
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		t = uint32(nfs.FileTypeRegular)
	case unix.S_IFDIR:
		t = uint32(nfs.FileTypeDirectory)
	case unix.S_IFBLK:
		t = uint32(nfs.FileTypeBlock)
	case unix.S_IFCHR:
		t = uint32(nfs.FileTypeCharacter)
	case unix.S_IFLNK:
		t = uint32(nfs.FileTypeLink)
	case unix.S_IFSOCK:
		t = uint32(nfs.FileTypeSocket)
	case unix.S_IFIFO:
		t = uint32(nfs.FileTypeFIFO)
	}
	e.Uint32(t)
	e.Uint32(st.Mode & 0o7777)
	e.Uint32(uint32(st.Nlink))
	e.Uint32(st.Uid)
	e.Uint32(st.Gid)
	e.Uint64(uint64(st.Size))
	e.Uint64(uint64(st.Blocks) * 512)
	e.Uint32(unix.Major(st.Rdev))
	e.Uint32(unix.Minor(st.Rdev))
	e.Uint64(0) // fsid: one file system per export, as go-nfs reports it
	e.Uint64(fileid)
	for _, ts := range []unix.Timespec{st.Atim, st.Mtim, st.Ctim} {
		e.Uint32(uint32(ts.Sec))
		e.Uint32(uint32(ts.Nsec))
	}
}

const attrLen = 84

func (r *req) postOp(st *unix.Stat_t, fileid uint64) {
	if st == nil {
		r.e.Bool(false)
		return
	}
	r.e.Bool(true)
	r.attr(st, fileid)
}

// postOpObj writes the attributes of o, or none when it cannot be stat'ed.
func (r *req) postOpObj(o *object) {
	if o == nil {
		r.e.Bool(false)
		return
	}
	var st unix.Stat_t
	if o.stat(&st) != nil {
		r.e.Bool(false)
		return
	}
	r.postOp(&st, o.id)
}

// wcc writes wcc_data: pre-operation size and times, then post-operation attributes.
func (r *req) wcc(pre *unix.Stat_t, o *object) {
	if pre == nil {
		r.e.Bool(false)
	} else {
		r.e.Bool(true)
		r.e.Uint64(uint64(pre.Size))
		r.e.Uint32(uint32(pre.Mtim.Sec))
		r.e.Uint32(uint32(pre.Mtim.Nsec))
		r.e.Uint32(uint32(pre.Ctim.Sec))
		r.e.Uint32(uint32(pre.Ctim.Nsec))
	}
	r.postOpObj(o)
}

// GETATTR

func (r *req) getattr() bool {
	fh := r.d.Opaque(fhMax)
	if r.d.Err() != nil {
		return false
	}
	o, s := r.resolve(fh)
	if s != nfs.NFSStatusOk {
		r.e.Uint32(uint32(s))
		return true
	}
	var st unix.Stat_t
	if err := o.stat(&st); err != nil {
		r.e.Uint32(uint32(staleIfGone(err)))
		return true
	}
	r.e.Uint32(uint32(nfs.NFSStatusOk))
	r.attr(&st, o.id)
	return true
}

// LOOKUP

func (r *req) lookup() bool {
	fh := r.d.Opaque(fhMax)
	name := r.d.Opaque(maxPath)
	if r.d.Err() != nil {
		return false
	}
	dir, s := r.resolve(fh)
	if s != nfs.NFSStatusOk {
		r.e.Uint32(uint32(s))
		r.e.Bool(false)
		return true
	}
	var dst unix.Stat_t
	if err := dir.stat(&dst); err != nil {
		r.e.Uint32(uint32(staleIfGone(err)))
		r.e.Bool(false)
		return true
	}
	fail := func(s status) bool {
		r.e.Uint32(uint32(s))
		r.postOp(&dst, dir.id)
		return true
	}
	if dst.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fail(nfs.NFSStatusNotDir)
	}
	var n uint32
	var st unix.Stat_t
	switch string(name) {
	case ".":
		n, st = dir.n, dst
	case "..":
		n = dir.x.table.parentOf(dir.n)
		l, err := dir.v.resolve(dir.x.table.path(n))
		if err != nil {
			return fail(nfs.NFSStatusStale)
		}
		if err := dir.v.statLoc(l, &st); err != nil {
			return fail(fromErrno(err))
		}
	default:
		if s := checkName(name); s != nfs.NFSStatusOk {
			return fail(s)
		}
		l, err := dir.v.child(dir.path, dir.loc, string(name))
		if err != nil {
			return fail(nfs.NFSStatusNoEnt)
		}
		if err := dir.v.statLoc(l, &st); err != nil {
			return fail(fromErrno(err))
		}
	}
	var id uint64
	if string(name) != "." && string(name) != ".." {
		_, id = dir.x.table.child(dir.n, string(name))
	} else {
		id = dir.x.table.idOf(n)
	}
	r.e.Uint32(uint32(nfs.NFSStatusOk))
	putHandle(r.e, dir.x.id, id)
	r.postOp(&st, id)
	r.postOp(&dst, dir.id)
	return true
}

// ACCESS

const (
	accessRead    = 0x01
	accessLookup  = 0x02
	accessModify  = 0x04
	accessExtend  = 0x08
	accessDelete  = 0x10
	accessExecute = 0x20
)

// permBits returns the rwx bits (4, 2, 1) the caller has on an object.
func permBits(st *unix.Stat_t, cr *xdr.Creds) uint32 {
	if cr.UID == 0 {
		bits := uint32(6)
		if st.Mode&0o111 != 0 || st.Mode&unix.S_IFMT == unix.S_IFDIR {
			bits |= 1
		}
		return bits
	}
	switch {
	case st.Uid == cr.UID:
		return (st.Mode >> 6) & 7
	case cr.InGroup(st.Gid):
		return (st.Mode >> 3) & 7
	}
	return st.Mode & 7
}

func grantAccess(st *unix.Stat_t, cr *xdr.Creds, want uint32, writable bool) uint32 {
	bits := permBits(st, cr)
	var got uint32
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if bits&4 != 0 {
		got |= accessRead
	}
	if bits&2 != 0 && writable {
		got |= accessModify | accessExtend
		if isDir {
			got |= accessDelete
		}
	}
	if bits&1 != 0 {
		if isDir {
			got |= accessLookup
		} else {
			got |= accessExecute
		}
	}
	return got & want
}

func (r *req) access() bool {
	fh := r.d.Opaque(fhMax)
	want := r.d.Uint32()
	if r.d.Err() != nil {
		return false
	}
	o, s := r.resolve(fh)
	if s != nfs.NFSStatusOk {
		r.e.Uint32(uint32(s))
		r.e.Bool(false)
		return true
	}
	var st unix.Stat_t
	if err := o.stat(&st); err != nil {
		r.e.Uint32(uint32(staleIfGone(err)))
		r.e.Bool(false)
		return true
	}
	r.e.Uint32(uint32(nfs.NFSStatusOk))
	r.postOp(&st, o.id)
	r.e.Uint32(grantAccess(&st, &r.call.Creds, want, o.loc.layer == layerState))
	return true
}

// READLINK

func (r *req) readlink() bool {
	fh := r.d.Opaque(fhMax)
	if r.d.Err() != nil {
		return false
	}
	o, s := r.resolve(fh)
	if s != nfs.NFSStatusOk {
		r.e.Uint32(uint32(s))
		r.e.Bool(false)
		return true
	}
	fd, err := o.v.openLoc(o.loc)
	if err != nil {
		r.e.Uint32(uint32(staleIfGone(err)))
		r.e.Bool(false)
		return true
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := fstat(fd, &st); err != nil {
		r.e.Uint32(uint32(staleIfGone(err)))
		r.e.Bool(false)
		return true
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		r.e.Uint32(uint32(nfs.NFSStatusInval))
		r.postOp(&st, o.id)
		return true
	}
	target, err := readlinkFD(fd)
	if err != nil {
		r.e.Uint32(uint32(fromErrno(err)))
		r.postOp(&st, o.id)
		return true
	}
	r.e.Uint32(uint32(nfs.NFSStatusOk))
	r.postOp(&st, o.id)
	r.e.String(target)
	return true
}

// READ

func (r *req) read() bool {
	fh := r.d.Opaque(fhMax)
	offset := r.d.Uint64()
	count := r.d.Uint32()
	if r.d.Err() != nil {
		return false
	}
	o, s := r.resolve(fh)
	if s != nfs.NFSStatusOk {
		r.e.Uint32(uint32(s))
		r.e.Bool(false)
		return true
	}
	var st unix.Stat_t
	f, err := o.openRead(&st)
	if err != nil {
		r.e.Uint32(uint32(staleIfGone(err)))
		r.e.Bool(false)
		return true
	}
	if f != nil {
		defer o.x.files.release(f)
	}
	fail := func(s status) bool {
		r.e.Uint32(uint32(s))
		r.postOp(&st, o.id)
		return true
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		return fail(nfs.NFSStatusIsDir)
	}
	if f == nil {
		// Never open devices or FIFOs of a node's writable area on the server.
		return fail(nfs.NFSStatusInval)
	}
	if permBits(&st, &r.call.Creds)&4 == 0 && st.Uid != r.call.Creds.UID {
		return fail(nfs.NFSStatusAccess)
	}
	count = min(count, maxIO)
	if offset > math.MaxInt64 {
		offset = math.MaxInt64
	}
	rfd := f.fd
	r.e.Uint32(uint32(nfs.NFSStatusOk))
	r.postOp(&st, o.id)
	if n := min(int64(count), max(st.Size-int64(offset), 0)); r.c.raw != nil && n >= sendfileMin && n&3 == 0 && !f.noSendfile.Load() {
		// A large READ: the data goes from the file to the socket with sendfile, and
		// this call has replied itself.
		r.e.Uint32(uint32(n))
		r.e.Bool(int64(offset)+n >= st.Size)
		r.e.Uint32(uint32(n))
		if err := r.c.writeFile(r.e.B, rfd, int64(offset), int(n)); err != nil {
			r.c.st.log.Warn("READ with sendfile failed; the file's next READs use pread", "path", o.path, "err", err)
			f.noSendfile.Store(true)
		}
		putReply(r.e.B)
		r.e.B, r.replied = nil, true
		return true
	}
	// count, eof, then the data as opaque: read straight into the reply.
	hdr := len(r.e.B)
	need := hdr + 12 + int(count) + 4
	if cap(r.e.B) < need {
		b := getReply()
		if cap(b) < need {
			b = make([]byte, 0, need)
		}
		b = append(b, r.e.B...)
		r.e.B = b
	}
	r.e.B = r.e.B[:hdr+12]
	data := r.e.B[hdr+12 : hdr+12+int(count)]
	n := 0
	var rerr error
	for n < len(data) {
		m, err := unix.Pread(rfd, data[n:], int64(offset)+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			rerr = err
			break
		}
		if m == 0 {
			break
		}
		n += m
	}
	if rerr != nil && n == 0 {
		r.e.B = r.e.B[:0]
		r.e = newReply(r.call.XID, xdr.Success)
		return fail(fromErrno(rerr))
	}
	// A short read ends at the end of the file, even one that shrank since st was read.
	eof := rerr == nil && n < int(count) || int64(offset)+int64(n) >= st.Size
	r.e.B = r.e.B[:hdr]
	r.e.Uint32(uint32(n))
	r.e.Bool(eof)
	r.e.Uint32(uint32(n))
	r.e.B = r.e.B[:hdr+12+n]
	r.e.B = append(r.e.B, make([]byte, (4-n&3)&3)...)
	return true
}

// FSSTAT, FSINFO, PATHCONF

func (r *req) fsstat() bool {
	fh := r.d.Opaque(fhMax)
	if r.d.Err() != nil {
		return false
	}
	o, s := r.resolve(fh)
	if s != nfs.NFSStatusOk {
		r.e.Uint32(uint32(s))
		r.e.Bool(false)
		return true
	}
	var sf unix.Statfs_t
	fd := o.v.fd(layerBase)
	writable := o.v.stateFD >= 0
	if writable {
		fd = o.v.stateFD
	}
	if err := unix.Fstatfs(fd, &sf); err != nil {
		r.e.Uint32(uint32(fromErrno(err)))
		r.postOpObj(o)
		return true
	}
	r.e.Uint32(uint32(nfs.NFSStatusOk))
	r.postOpObj(o)
	bs := uint64(sf.Bsize)
	r.e.Uint64(sf.Blocks * bs)
	if writable {
		r.e.Uint64(sf.Bfree * bs)
		r.e.Uint64(sf.Bavail * bs)
		r.e.Uint64(sf.Files)
		r.e.Uint64(sf.Ffree)
		r.e.Uint64(sf.Ffree)
	} else {
		r.e.Uint64(0)
		r.e.Uint64(0)
		r.e.Uint64(sf.Files)
		r.e.Uint64(0)
		r.e.Uint64(0)
	}
	r.e.Uint32(0) // invarsec
	return true
}

func (r *req) fsinfo() bool {
	fh := r.d.Opaque(fhMax)
	if r.d.Err() != nil {
		return false
	}
	o, s := r.resolve(fh)
	if s != nfs.NFSStatusOk {
		r.e.Uint32(uint32(s))
		r.e.Bool(false)
		return true
	}
	r.e.Uint32(uint32(nfs.NFSStatusOk))
	r.postOpObj(o)
	r.e.Uint32(maxIO)     // rtmax
	r.e.Uint32(maxIO)     // rtpref
	r.e.Uint32(4096)      // rtmult
	r.e.Uint32(maxIO)     // wtmax
	r.e.Uint32(maxIO)     // wtpref
	r.e.Uint32(4096)      // wtmult
	r.e.Uint32(64 << 10)  // dtpref
	r.e.Uint64(1<<63 - 1) // maxfilesize
	r.e.Uint32(0)         // time_delta: 1 ns
	r.e.Uint32(1)
	r.e.Uint32(nfs.FSInfoPropertyLink | nfs.FSInfoPropertySymlink | nfs.FSInfoPropertyHomogeneous | nfs.FSInfoPropertyCanSetTime)
	return true
}

func (r *req) pathconf() bool {
	fh := r.d.Opaque(fhMax)
	if r.d.Err() != nil {
		return false
	}
	o, s := r.resolve(fh)
	if s != nfs.NFSStatusOk {
		r.e.Uint32(uint32(s))
		r.e.Bool(false)
		return true
	}
	r.e.Uint32(uint32(nfs.NFSStatusOk))
	r.postOpObj(o)
	r.e.Uint32(65000)   // linkmax
	r.e.Uint32(maxName) // name_max
	r.e.Bool(true)      // no_trunc
	r.e.Bool(true)      // chown_restricted
	r.e.Bool(false)     // case_insensitive
	r.e.Bool(true)      // case_preserving
	return true
}

// READDIR and READDIRPLUS

// cookieOf is an entry's cookie: a hash of its name, so cookies stay valid while the
// directory changes (entries are served in cookie order). 1 and 2 are "." and "..".
func cookieOf(name string) uint64 {
	return fnvAdd(fnvOffset, name)&(1<<62-1) | 1<<62
}

type listed struct {
	dirent
	cookie uint64
	st     *unix.Stat_t // with READDIRPLUS, nil when unknown
}

func (r *req) readdir(plus bool) bool {
	fh := r.d.Opaque(fhMax)
	cookie := r.d.Uint64()
	r.d.Fixed(8) // cookie verifier: cookies are stable, so it is not checked
	var maxcount uint32
	if plus {
		r.d.Uint32() // dircount: a hint only, as knfsd treats it
		maxcount = r.d.Uint32()
	} else {
		maxcount = r.d.Uint32()
	}
	if r.d.Err() != nil {
		return false
	}
	dir, s := r.resolve(fh)
	if s != nfs.NFSStatusOk {
		r.e.Uint32(uint32(s))
		r.e.Bool(false)
		return true
	}
	var dst unix.Stat_t
	if err := dir.stat(&dst); err != nil {
		r.e.Uint32(uint32(staleIfGone(err)))
		r.e.Bool(false)
		return true
	}
	fail := func(s status) bool {
		r.e.Uint32(uint32(s))
		r.postOp(&dst, dir.id)
		return true
	}
	if dst.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fail(nfs.NFSStatusNotDir)
	}
	if permBits(&dst, &r.call.Creds)&4 == 0 {
		return fail(nfs.NFSStatusAccess)
	}
	var all []listed
	lazy := false
	if dir.loc.layer == layerBase && dir.x.cache != nil && !dir.v.hasSpecials(dir.path) {
		// The common case: a directory of the image with nothing node-specific in it,
		// served from the cache in cookie order with its attributes.
		info, err := dir.v.dirInfo(dir.loc)
		if err != nil {
			return fail(staleIfGone(err))
		}
		all = make([]listed, len(info.names))
		for i, n := range info.names {
			all[i] = listed{dirent: dirent{name: n}, cookie: info.cookies[i]}
			if info.ok[i] {
				all[i].st = &info.st[i]
			}
		}
	} else {
		ents, err := dir.v.list(dir.path, dir.loc)
		if err != nil {
			return fail(staleIfGone(err))
		}
		all = make([]listed, len(ents))
		for i, e := range ents {
			all[i] = listed{dirent: e, cookie: cookieOf(e.name)}
		}
		sort.Slice(all, func(i, j int) bool { return all[i].cookie < all[j].cookie })
		lazy = plus
	}
	// Attributes of entries of the general case are read for the entries sent only: with
	// fstatat on the directory, or through their own resolution for mapping points.
	dfd := -1
	defer func() {
		if dfd >= 0 {
			unix.Close(dfd)
		}
	}()
	statOf := func(e *listed) *unix.Stat_t {
		if !lazy || e.st != nil {
			return e.st
		}
		var st unix.Stat_t
		var err error
		if e.at != nil {
			err = dir.v.statLoc(*e.at, &st)
		} else {
			if dfd < 0 {
				if dfd, err = dir.v.openLoc(dir.loc); err != nil {
					dfd = -1
					return nil
				}
			}
			err = statAt(dfd, e.name, &st)
		}
		if err != nil {
			return nil
		}
		return &st
	}

	limit := int(min(maxcount, 1<<20))
	if cap(r.e.B) < len(r.e.B)+limit+64 {
		b := make([]byte, len(r.e.B), len(r.e.B)+limit+64)
		copy(b, r.e.B)
		r.e.B = b
	}
	start := len(r.e.B)
	r.e.Uint32(uint32(nfs.NFSStatusOk))
	r.postOp(&dst, dir.id)
	r.e.Fixed(make([]byte, 8)) // cookie verifier
	t := dir.x.table
	emitted := 0
	// entry writes one entry if it fits; it reports false when the reply is full.
	entry := func(name string, id uint64, c uint64, st *unix.Stat_t) bool {
		size := 4 + 8 + xdr.PaddedLen(len(name)) + 8
		if plus {
			size += 4 + 4 + xdr.PaddedLen(handleLen)
			if st != nil {
				size += attrLen
			}
		}
		if len(r.e.B)-start+size+8 > limit {
			return false
		}
		r.e.Bool(true)
		r.e.Uint64(id)
		r.e.String(name)
		r.e.Uint64(c)
		if plus {
			r.postOp(st, id)
			r.e.Bool(true)
			putHandle(r.e, dir.x.id, id)
		}
		emitted++
		return true
	}
	eof := true
	if cookie == 0 {
		if !entry(".", dir.id, 1, &dst) {
			eof = false
		}
	}
	if eof && cookie <= 1 {
		pn := t.parentOf(dir.n)
		var pst *unix.Stat_t
		if plus {
			if pl, err := dir.v.resolve(t.path(pn)); err == nil {
				var s unix.Stat_t
				if dir.v.statLoc(pl, &s) == nil {
					pst = &s
				}
			}
		}
		if !entry("..", t.idOf(pn), 2, pst) {
			eof = false
		}
	}
	if eof {
		i := sort.Search(len(all), func(i int) bool { return all[i].cookie > cookie })
		for ; i < len(all); i++ {
			e := &all[i]
			_, id := t.child(dir.n, e.name)
			if !entry(e.name, id, e.cookie, statOf(e)) {
				eof = false
				break
			}
		}
	}
	if emitted == 0 && !eof {
		r.e = newReply(r.call.XID, xdr.Success)
		return fail(nfs.NFSStatusTooSmall)
	}
	r.e.Bool(false) // no more entries
	r.e.Bool(eof)
	return true
}

// debugProc names a procedure for logs.
func debugProc(p uint32) string {
	names := []string{"NULL", "GETATTR", "SETATTR", "LOOKUP", "ACCESS", "READLINK", "READ", "WRITE", "CREATE",
		"MKDIR", "SYMLINK", "MKNOD", "REMOVE", "RMDIR", "RENAME", "LINK", "READDIR", "READDIRPLUS", "FSSTAT",
		"FSINFO", "PATHCONF", "COMMIT"}
	if int(p) < len(names) {
		return names[p]
	}
	return "proc" + strconv.Itoa(int(p))
}

// putHandle appends a file handle as opaque data, without allocating.
func putHandle(e *xdr.Encoder, export uint32, id uint64) {
	e.Uint32(handleLen)
	e.B = append(e.B, handleVersion, 0, 0, 0)
	e.Uint32(export)
	e.Uint64(id)
}

// hasSpecials reports whether a directory of the view holds entries that resolve on their
// own (writable roots, CDSLs, per-node trees).
func (v *view) hasSpecials(p string) bool {
	cs := v.tree.Load().cs
	return cs.special[p] != nil || v.x.synth[p] != nil || cs.tree != "" && p == cs.tree
}

// dirInfo returns a directory of the image, listed in cookie order with attributes.
func (v *view) dirInfo(l loc) (*dirInfo, error) {
	c := v.x.cache
	if d, ok := c.info(l.rel); ok {
		return d, nil
	}
	fd, err := v.openDir(l)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	raw, err := readDirents(fd)
	if err != nil {
		return nil, err
	}
	type ent struct {
		name   string
		cookie uint64
	}
	es := make([]ent, len(raw))
	for i, r := range raw {
		es[i] = ent{r.name, cookieOf(r.name)}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].cookie < es[j].cookie })
	d := &dirInfo{names: make([]string, len(es)), cookies: make([]uint64, len(es)),
		st: make([]unix.Stat_t, len(es)), ok: make([]bool, len(es))}
	for i, e := range es {
		d.names[i], d.cookies[i] = e.name, e.cookie
		if statAt(fd, e.name, &d.st[i]) == nil {
			d.ok[i] = true
			c.putStat(joinRel(l.rel, e.name), &d.st[i])
		}
	}
	c.putInfo(l.rel, d)
	return d, nil
}
