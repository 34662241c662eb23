package nfsroot

import (
	"encoding/binary"
	"strconv"
	"strings"

	nfs "github.com/willscott/go-nfs"
	"golang.org/x/sys/unix"

	"github.com/provkit/provkit/nfsroot/internal/xdr"
)

// Procedures that change things and that nfsroot answers itself: go-nfs v0.0.4 drops the
// set-user-ID, set-group-ID and sticky bits in SETATTR and MKDIR, has no exclusive CREATE
// (which O_EXCL opens need), creates no device in MKNOD and misreads LINK's arguments.
// Everything here acts only in a node's writable state (anything else is NFS3ERR_ROFS),
// checks the caller's AUTH_SYS credentials like a local kernel would, and gives new
// objects the caller's owner.

// sattr is a decoded sattr3.
type sattr struct {
	mode, uid, gid *uint32
	size           *uint64
	atime, mtime   timeSet
}

type timeSet struct {
	how uint32 // 0 don't change, 1 server time, 2 client time
	ts  unix.Timespec
}

func decodeSattr(d *xdr.Decoder) sattr {
	var s sattr
	u32 := func() *uint32 {
		if d.Bool() {
			v := d.Uint32()
			return &v
		}
		return nil
	}
	s.mode, s.uid, s.gid = u32(), u32(), u32()
	if d.Bool() {
		v := d.Uint64()
		s.size = &v
	}
	for _, t := range []*timeSet{&s.atime, &s.mtime} {
		t.how = d.Uint32()
		if t.how == 2 {
			t.ts = unix.Timespec{Sec: int64(d.Uint32()), Nsec: int64(d.Uint32())}
		} else if t.how > 2 {
			d.Fixed(1 << 30) // invalid: fail decoding
		}
	}
	return s
}

// procPath is the /proc path that reopens an O_PATH descriptor's exact inode.
func procPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// openParent opens the directory holding a resolved path (O_PATH) and returns the name in it.
func (v *view) openParent(l loc) (int, string, error) {
	if l.rel == "" {
		return -1, "", unix.EINVAL
	}
	dir, name := "", l.rel
	if i := strings.LastIndexByte(l.rel, '/'); i >= 0 {
		dir, name = l.rel[:i], l.rel[i+1:]
	}
	fd, err := openIn(v.fd(l.layer), dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	return fd, name, err
}

// mayWriteDir checks that the caller can create or remove entries in a directory.
func mayWriteDir(st *unix.Stat_t, cr *xdr.Creds) bool {
	return permBits(st, cr)&3 == 3
}

// mayDelete checks the sticky-bit rule for removing or renaming victim out of dir.
func mayDelete(dir, victim *unix.Stat_t, cr *xdr.Creds) bool {
	if !mayWriteDir(dir, cr) {
		return false
	}
	if dir.Mode&unix.S_ISVTX == 0 || cr.UID == 0 {
		return true
	}
	return victim == nil || victim.Uid == cr.UID || dir.Uid == cr.UID
}

// applySattr applies attributes to the object behind the O_PATH descriptor fd (whose
// directory is pfd and name is name), checking the caller's rights first.
func applySattr(fd, pfd int, name string, st *unix.Stat_t, s sattr, cr *xdr.Creds) status {
	owner := cr.UID == 0 || cr.UID == st.Uid
	isLink := st.Mode&unix.S_IFMT == unix.S_IFLNK
	if s.uid != nil && *s.uid != st.Uid && cr.UID != 0 {
		return nfs.NFSStatusPerm
	}
	if s.gid != nil && *s.gid != st.Gid && !(owner && (cr.UID == 0 || cr.InGroup(*s.gid))) {
		return nfs.NFSStatusPerm
	}
	if s.mode != nil && !owner {
		return nfs.NFSStatusPerm
	}
	if (s.atime.how == 2 || s.mtime.how == 2) && !owner {
		return nfs.NFSStatusPerm
	}
	if (s.atime.how == 1 || s.mtime.how == 1) && !owner && permBits(st, cr)&2 == 0 {
		return nfs.NFSStatusAccess
	}
	if s.size != nil {
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return nfs.NFSStatusIsDir
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return nfs.NFSStatusInval
		}
		if !owner && permBits(st, cr)&2 == 0 {
			return nfs.NFSStatusAccess
		}
	}
	if s.uid != nil || s.gid != nil {
		uid, gid := -1, -1
		if s.uid != nil {
			uid = int(*s.uid)
		}
		if s.gid != nil {
			gid = int(*s.gid)
		}
		if err := unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fromErrno(err)
		}
	}
	if s.mode != nil && !isLink {
		mode := *s.mode & 0o7777
		if cr.UID != 0 && mode&unix.S_ISGID != 0 && !cr.InGroup(st.Gid) && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			mode &^= unix.S_ISGID
		}
		if err := unix.Chmod(procPath(fd), mode); err != nil {
			return fromErrno(err)
		}
	}
	if s.size != nil {
		wfd, err := reopen(fd, unix.O_WRONLY)
		if err != nil {
			return fromErrno(err)
		}
		err = unix.Ftruncate(wfd, int64(min(*s.size, 1<<62)))
		unix.Close(wfd)
		if err != nil {
			return fromErrno(err)
		}
	}
	if s.atime.how != 0 || s.mtime.how != 0 {
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		for i, t := range []timeSet{s.atime, s.mtime} {
			switch t.how {
			case 1:
				ts[i] = unix.Timespec{Nsec: unix.UTIME_NOW}
			case 2:
				ts[i] = t.ts
			}
		}
		if err := unix.UtimesNanoAt(pfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fromErrno(err)
		}
	}
	return nfs.NFSStatusOk
}

// SETATTR

func (r *req) setattr() bool {
	fh := r.d.Opaque(fhMax)
	s := decodeSattr(r.d)
	guard := r.d.Bool()
	var gsec, gnsec uint32
	if guard {
		gsec, gnsec = r.d.Uint32(), r.d.Uint32()
	}
	if r.d.Err() != nil {
		return false
	}
	o, st0 := r.resolve(fh)
	if st0 != nfs.NFSStatusOk {
		r.e.Uint32(uint32(st0))
		r.wcc(nil, nil)
		return true
	}
	var pre unix.Stat_t
	fd, err := o.v.openLoc(o.loc)
	if err == nil {
		defer unix.Close(fd)
		err = fstat(fd, &pre)
	}
	if err != nil {
		r.e.Uint32(uint32(staleIfGone(err)))
		r.wcc(nil, nil)
		return true
	}
	fail := func(s status) bool {
		r.e.Uint32(uint32(s))
		r.wcc(&pre, o)
		return true
	}
	if guard && (uint32(pre.Ctim.Sec) != gsec || uint32(pre.Ctim.Nsec) != gnsec) {
		return fail(nfs.NFSStatusNotSync)
	}
	if o.loc.layer != layerState {
		return fail(nfs.NFSStatusROFS)
	}
	pfd, name, err := o.v.openParent(o.loc)
	if err != nil {
		return fail(staleIfGone(err))
	}
	defer unix.Close(pfd)
	if s := applySattr(fd, pfd, name, &pre, s, &r.call.Creds); s != nfs.NFSStatusOk {
		return fail(s)
	}
	r.e.Uint32(uint32(nfs.NFSStatusOk))
	r.wcc(&pre, o)
	return true
}

// dirChange resolves the directory of a diropargs3 for a change: it must be a directory
// in the node's writable state that the caller may write. On failure the reply so far
// (status and dir_wcc) is written and ok is false. For a procedure that creates name
// (create), a name that exists in a read-only directory is NFS3ERR_EXIST, not
// NFS3ERR_ROFS: the Linux client skips the LOOKUP before an exclusive create (mkdir,
// open with O_EXCL) and counts on the server to say the name exists, so `mkdir -p /var/x`
// on a node whose /var is writable (below the read-only root) must not fail on /var.
type dirChange struct {
	dir  *object
	name string
	pre  unix.Stat_t
	fd   int // O_PATH of the directory
}

func (r *req) dirChange(fh, name []byte, create bool) (*dirChange, bool) {
	o, s := r.resolve(fh)
	if s != nfs.NFSStatusOk {
		r.e.Uint32(uint32(s))
		r.wcc(nil, nil)
		return nil, false
	}
	dc := &dirChange{dir: o, name: string(name), fd: -1}
	fd, err := o.v.openLoc(o.loc)
	if err == nil {
		err = fstat(fd, &dc.pre)
		if err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		r.e.Uint32(uint32(staleIfGone(err)))
		r.wcc(nil, nil)
		return nil, false
	}
	dc.fd = fd
	fail := func(s status) (*dirChange, bool) {
		unix.Close(fd)
		r.e.Uint32(uint32(s))
		r.wcc(&dc.pre, o)
		return nil, false
	}
	switch {
	case dc.pre.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fail(nfs.NFSStatusNotDir)
	case checkName(name) != nfs.NFSStatusOk:
		return fail(checkName(name))
	case o.loc.layer != layerState:
		if create && o.v.exists(o, string(name)) {
			return fail(nfs.NFSStatusExist)
		}
		return fail(nfs.NFSStatusROFS)
	case !mayWriteDir(&dc.pre, &r.call.Creds):
		return fail(nfs.NFSStatusAccess)
	}
	return dc, true
}

func (dc *dirChange) close() { unix.Close(dc.fd) }

// exists reports whether name, in directory dir, exists in the node's view.
func (v *view) exists(dir *object, name string) bool {
	l, err := v.child(dir.path, dir.loc, name)
	if err != nil {
		return false
	}
	var st unix.Stat_t
	return v.statLoc(l, &st) == nil
}

// newOwner is who a new object belongs to: the caller, with the directory's group when the
// directory is set-group-ID.
func (dc *dirChange) newOwner(cr *xdr.Creds) (int, int) {
	gid := cr.GID
	if dc.pre.Mode&unix.S_ISGID != 0 {
		gid = dc.pre.Gid
	}
	return int(cr.UID), int(gid)
}

// created finishes a reply for a new object: its handle, attributes and the directory's wcc.
func (r *req) created(dc *dirChange) {
	n, id := dc.dir.x.table.child(dc.dir.n, dc.name)
	_ = n
	var st unix.Stat_t
	err := statAt(dc.fd, dc.name, &st)
	r.e.Uint32(uint32(nfs.NFSStatusOk))
	r.e.Bool(true)
	r.e.Opaque(handle{export: dc.dir.x.id, id: id}.encode())
	if err != nil {
		r.e.Bool(false)
	} else {
		r.postOp(&st, id)
	}
	r.wcc(&dc.pre, dc.dir)
}

func (r *req) failChange(dc *dirChange, s status) {
	r.e.Uint32(uint32(s))
	r.wcc(&dc.pre, dc.dir)
}

// CREATE

const (
	createUnchecked = 0
	createGuarded   = 1
	createExclusive = 2
)

func (r *req) create() bool {
	fh := r.d.Opaque(fhMax)
	name := r.d.Opaque(maxPath)
	how := r.d.Uint32()
	var s sattr
	var verf []byte
	switch how {
	case createUnchecked, createGuarded:
		s = decodeSattr(r.d)
	case createExclusive:
		verf = r.d.Fixed(8)
	default:
		return false
	}
	if r.d.Err() != nil {
		return false
	}
	dc, ok := r.dirChange(fh, name, true)
	if !ok {
		return true
	}
	defer dc.close()
	cr := &r.call.Creds
	mode := uint32(0o644)
	if s.mode != nil {
		mode = *s.mode & 0o7777
	}
	if how == createExclusive {
		mode = 0o600
	}
	fd, err := unix.Openat(dc.fd, dc.name, unix.O_RDONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	isNew := err == nil
	if err == unix.EEXIST && how != createGuarded {
		fd, err = unix.Openat(dc.fd, dc.name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		r.failChange(dc, fromErrno(err))
		return true
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := fstat(fd, &st); err != nil {
		r.failChange(dc, fromErrno(err))
		return true
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		r.failChange(dc, nfs.NFSStatusExist)
		return true
	}
	switch {
	case how == createExclusive:
		vs := unix.Timespec{Sec: int64(binary.BigEndian.Uint32(verf))}
		vm := unix.Timespec{Sec: int64(binary.BigEndian.Uint32(verf[4:]))}
		if !isNew {
			// A retransmission of our own exclusive create carries the same verifier.
			if st.Atim.Sec != vs.Sec || st.Mtim.Sec != vm.Sec || st.Atim.Nsec != 0 || st.Mtim.Nsec != 0 {
				r.failChange(dc, nfs.NFSStatusExist)
				return true
			}
			break
		}
		uid, gid := dc.newOwner(cr)
		_ = unix.Fchown(fd, uid, gid)
		_ = unix.Fchmod(fd, mode)
		if err := unix.UtimesNanoAt(dc.fd, dc.name, []unix.Timespec{vs, vm}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			r.failChange(dc, fromErrno(err))
			return true
		}
	case isNew:
		uid, gid := dc.newOwner(cr)
		_ = unix.Fchown(fd, uid, gid)
		_ = unix.Fchmod(fd, mode)
		s.mode, s.uid, s.gid = nil, nil, nil
		if err := fstat(fd, &st); err == nil {
			if st := applySattr(fd, dc.fd, dc.name, &st, s, &serverCreds); st != nfs.NFSStatusOk {
				r.failChange(dc, st)
				return true
			}
		}
	default: // UNCHECKED on an existing file: only a size applies, as knfsd does
		if s.size != nil {
			if st := applySattr(fd, dc.fd, dc.name, &st, sattr{size: s.size}, cr); st != nfs.NFSStatusOk {
				r.failChange(dc, st)
				return true
			}
		}
	}
	r.created(dc)
	return true
}

// serverCreds is the server acting for itself (after its own checks).
var serverCreds = xdr.Creds{Flavor: xdr.AuthSys}

// MKDIR

func (r *req) mkdir() bool {
	fh := r.d.Opaque(fhMax)
	name := r.d.Opaque(maxPath)
	s := decodeSattr(r.d)
	if r.d.Err() != nil {
		return false
	}
	dc, ok := r.dirChange(fh, name, true)
	if !ok {
		return true
	}
	defer dc.close()
	mode := uint32(0o755)
	if s.mode != nil {
		mode = *s.mode & 0o7777
	}
	if dc.pre.Mode&unix.S_ISGID != 0 {
		mode |= unix.S_ISGID
	}
	if err := unix.Mkdirat(dc.fd, dc.name, 0o700); err != nil {
		r.failChange(dc, fromErrno(err))
		return true
	}
	r.finishNew(dc, mode, s)
	r.created(dc)
	return true
}

// finishNew gives a just-created object its owner, mode and the other requested attributes.
func (r *req) finishNew(dc *dirChange, mode uint32, s sattr) {
	uid, gid := dc.newOwner(&r.call.Creds)
	_ = unix.Fchownat(dc.fd, dc.name, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
	fd, err := unix.Openat(dc.fd, dc.name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if fstat(fd, &st) != nil {
		return
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		_ = unix.Chmod(procPath(fd), mode)
	}
	s.mode, s.uid, s.gid = nil, nil, nil
	if fstat(fd, &st) == nil {
		applySattr(fd, dc.fd, dc.name, &st, s, &serverCreds)
	}
}

// MKNOD

func (r *req) mknod() bool {
	fh := r.d.Opaque(fhMax)
	name := r.d.Opaque(maxPath)
	typ := r.d.Uint32()
	var s sattr
	var major, minor uint32
	var ifmt uint32
	switch nfs.FileType(typ) {
	case nfs.FileTypeCharacter, nfs.FileTypeBlock:
		s = decodeSattr(r.d)
		major, minor = r.d.Uint32(), r.d.Uint32()
		ifmt = unix.S_IFCHR
		if nfs.FileType(typ) == nfs.FileTypeBlock {
			ifmt = unix.S_IFBLK
		}
	case nfs.FileTypeSocket:
		s = decodeSattr(r.d)
		ifmt = unix.S_IFSOCK
	case nfs.FileTypeFIFO:
		s = decodeSattr(r.d)
		ifmt = unix.S_IFIFO
	}
	if r.d.Err() != nil {
		return false
	}
	dc, ok := r.dirChange(fh, name, true)
	if !ok {
		return true
	}
	defer dc.close()
	if ifmt == 0 {
		r.failChange(dc, nfs.NFSStatusBadType)
		return true
	}
	if (ifmt == unix.S_IFCHR || ifmt == unix.S_IFBLK) && r.call.Creds.UID != 0 {
		r.failChange(dc, nfs.NFSStatusPerm)
		return true
	}
	mode := uint32(0o644)
	if s.mode != nil {
		mode = *s.mode & 0o7777
	}
	if err := unix.Mknodat(dc.fd, dc.name, ifmt|0o600, int(unix.Mkdev(major, minor))); err != nil {
		r.failChange(dc, fromErrno(err))
		return true
	}
	r.finishNew(dc, mode, s)
	r.created(dc)
	return true
}

// LINK

func (r *req) link() bool {
	ffh := r.d.Opaque(fhMax)
	dfh := r.d.Opaque(fhMax)
	name := r.d.Opaque(maxPath)
	if r.d.Err() != nil {
		return false
	}
	src, s := r.resolve(ffh)
	if s != nfs.NFSStatusOk {
		r.e.Uint32(uint32(s))
		r.e.Bool(false)
		r.wcc(nil, nil)
		return true
	}
	// LINK3res puts the file's attributes before the directory's wcc_data, so build the
	// directory part first and splice.
	body := r.e
	r.e = &xdr.Encoder{}
	dc, ok := r.dirChange(dfh, name, true)
	dirPart := r.e
	r.e = body
	fileAttrs := func(s status) bool {
		r.e.Uint32(uint32(s))
		r.postOpObj(src)
		if ok {
			r.wcc(&dc.pre, dc.dir)
		} else {
			r.e.B = append(r.e.B, dirPart.B[4:]...) // skip the status the failed check wrote
		}
		return true
	}
	if !ok {
		return fileAttrs(nfs.NFSStatus(binary.BigEndian.Uint32(dirPart.B)))
	}
	defer dc.close()
	if src.loc.layer != layerState || dc.dir.x != src.x {
		return fileAttrs(nfs.NFSStatusXDev)
	}
	pfd, sname, err := src.v.openParent(src.loc)
	if err != nil {
		return fileAttrs(staleIfGone(err))
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := statAt(pfd, sname, &st); err != nil {
		return fileAttrs(staleIfGone(err))
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fileAttrs(nfs.NFSStatusIsDir)
	}
	if err := unix.Linkat(pfd, sname, dc.fd, dc.name, 0); err != nil {
		return fileAttrs(fromErrno(err))
	}
	dc.dir.x.table.child(dc.dir.n, dc.name)
	return fileAttrs(nfs.NFSStatusOk)
}
