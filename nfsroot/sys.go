package nfsroot

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Every access to the exported trees goes through openat2(2) relative to a layer's
// directory with these flags: no symbolic link is followed in any component (clients
// resolve links themselves), nothing climbs out of the layer and no mount point inside it is
// crossed. So neither a hostile link in a node's writable area nor a link planted in an image
// can make the server touch anything outside what it exports.
const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// openIn opens rel (relative to dirfd, "" for dirfd itself) with flags.
func openIn(dirfd int, rel string, flags int, mode uint32) (int, error) {
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW), Resolve: resolveFlags}
	if flags&unix.O_CREAT != 0 {
		how.Mode = uint64(mode)
	}
	for try := 0; ; try++ {
		fd, err := unix.Openat2(dirfd, rel, &how)
		if (err == unix.EINTR || err == unix.EAGAIN) && try < 8 {
			continue
		}
		return fd, err
	}
}

// openPath opens rel as an O_PATH descriptor: it refers to the object itself (a symbolic
// link stays a link) and allows fstat, readlink and *at calls, but no I/O.
func openPath(dirfd int, rel string) (int, error) {
	return openIn(dirfd, rel, unix.O_PATH, 0)
}

// reopen opens the object behind an O_PATH descriptor for I/O. Going through /proc reopens
// the same inode, so a client cannot swap the object between the check and the open.
func reopen(pathfd int, flags int) (int, error) {
	for try := 0; ; try++ {
		fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pathfd), flags|unix.O_CLOEXEC, 0)
		if err == unix.EINTR && try < 8 {
			continue
		}
		return fd, err
	}
}

func fstat(fd int, st *unix.Stat_t) error {
	return unix.Fstatat(fd, "", st, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
}

func statAt(dirfd int, name string, st *unix.Stat_t) error {
	return unix.Fstatat(dirfd, name, st, unix.AT_SYMLINK_NOFOLLOW)
}

// fileInfo adapts a Stat_t to fs.FileInfo for go-nfs. Mode carries Go's type bits and the
// permission bits; the set-user-ID, set-group-ID and sticky bits ride in bits 9-11, which Go
// leaves unused, so go-nfs passes them on to clients as the Unix mode. Sys returns what
// go-nfs's file.GetInfo reads, with the handle id as file id.
type fileInfo struct {
	name   string
	st     unix.Stat_t
	fileid uint64
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.st.Size }
func (fi *fileInfo) ModTime() time.Time { return time.Unix(fi.st.Mtim.Unix()) }
func (fi *fileInfo) IsDir() bool        { return fi.st.Mode&unix.S_IFMT == unix.S_IFDIR }
func (fi *fileInfo) Sys() any           { return goNFSInfo(&fi.st, fi.fileid) }

func (fi *fileInfo) Mode() fs.FileMode {
	m := fs.FileMode(fi.st.Mode & 0o7777)
	switch fi.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	}
	return m
}

// errno maps an error to a syscall errno when it wraps one.
func errno(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return errno(pe.Err)
	}
	return 0
}
