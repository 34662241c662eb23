package nfsroot

import (
	"errors"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/provkit/provkit/cdsl"
	"github.com/provkit/provkit/nfsroot/internal/xdr"
)

// MOUNT v3 (RFC 1813 appendix I).
const (
	mntNull    = 0
	mntMnt     = 1
	mntDump    = 2
	mntUmnt    = 3
	mntUmntAll = 4
	mntExport  = 5

	mnt3OK          = 0
	mnt3ErrNoEnt    = 2
	mnt3ErrAcces    = 13
	mnt3ErrNotDir   = 20
	mnt3ErrInval    = 22
	mnt3ErrNameLen  = 63
	mnt3ErrServFail = 10006
)

func (c *conn) mount(call xdr.Call) []byte {
	d := xdr.NewDecoder(call.Args)
	switch call.Proc {
	case mntNull, mntUmntAll:
		return acceptReply(call.XID, xdr.Success)
	case mntUmnt:
		d.String(1024)
		if d.Err() != nil {
			return acceptReply(call.XID, xdr.GarbageArgs)
		}
		return acceptReply(call.XID, xdr.Success)
	case mntDump:
		e := newReply(call.XID, xdr.Success)
		e.Bool(false)
		return e.B
	case mntExport:
		e := newReply(call.XID, xdr.Success)
		for _, x := range c.st.exports {
			e.Bool(true)
			e.String(x.path)
			for _, p := range x.cfg.Clients {
				e.Bool(true)
				e.String(p.String())
			}
			e.Bool(false)
		}
		e.Bool(false)
		return e.B
	case mntMnt:
		dirpath := d.Opaque(1024)
		if d.Err() != nil {
			if errors.Is(d.Err(), xdr.ErrTooLong) {
				e := newReply(call.XID, xdr.Success)
				e.Uint32(mnt3ErrNameLen)
				return e.B
			}
			return acceptReply(call.XID, xdr.GarbageArgs)
		}
		status, fh := c.mnt(string(dirpath))
		e := newReply(call.XID, xdr.Success)
		e.Uint32(status)
		if status == mnt3OK {
			e.Opaque(fh)
			e.Uint32(1) // one flavor: AUTH_SYS
			e.Uint32(xdr.AuthSys)
		}
		return e.B
	}
	return acceptReply(call.XID, xdr.ProcUnavail)
}

// mnt resolves a mount request: the export whose path is the longest prefix of dirpath,
// then the rest of dirpath inside the client's view.
func (c *conn) mnt(dirpath string) (uint32, []byte) {
	ip := c.remote.Addr().Unmap().String()
	if strings.IndexByte(dirpath, 0) >= 0 || !strings.HasPrefix(dirpath, "/") {
		return mnt3ErrInval, nil
	}
	var x *export
	var rest string
	for _, e := range c.st.exports {
		switch {
		case e.path == "/":
			if x == nil {
				x, rest = e, dirpath
			}
		case dirpath == e.path || strings.HasPrefix(dirpath, e.path+"/"):
			if x == nil || len(e.path) > len(x.path) {
				x, rest = e, dirpath[len(e.path):]
			}
		}
	}
	if x == nil {
		c.st.log.Info("mount refused: no such export", "ip", ip, "path", dirpath)
		return mnt3ErrNoEnt, nil
	}
	v, err := c.viewOf(x)
	if err != nil {
		c.st.log.Warn("mount refused", "ip", ip, "path", dirpath, "err", err)
		if errors.Is(err, errNotAllowed) || errors.Is(err, ErrUnknownClient) || errors.Is(err, cdsl.ErrInvalidNode) {
			return mnt3ErrAcces, nil
		}
		return mnt3ErrServFail, nil
	}
	n := uint32(0)
	p := ""
	if strings.Trim(rest, "/") != "" {
		clean, err := cdsl.CleanPath(rest)
		if err != nil {
			return mnt3ErrInval, nil
		}
		var st unix.Stat_t
		n, p, _, err = v.walkPath(clean, &st)
		switch {
		case err != nil:
			return mnt3ErrNoEnt, nil
		case st.Mode&unix.S_IFMT != unix.S_IFDIR:
			return mnt3ErrNotDir, nil
		}
	}
	c.st.log.Info("mount", "ip", ip, "node", v.node, "export", x.path, "path", "/"+p)
	return mnt3OK, handle{export: x.id, id: x.table.idOf(n)}.encode()
}

// walkPath looks up a clean view path from the root one component at a time, as LOOKUPs
// would, adding every component to the handle table.
func (v *view) walkPath(p string, st *unix.Stat_t) (uint32, string, loc, error) {
	t := v.x.table
	n := uint32(0)
	dir := ""
	dl, err := v.resolve("")
	if err != nil {
		return 0, "", loc{}, err
	}
	if err := v.statLoc(dl, st); err != nil {
		return 0, "", loc{}, err
	}
	for _, comp := range splitPath(p) {
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return 0, "", loc{}, unix.ENOTDIR
		}
		cl, err := v.child(dir, dl, comp)
		if err != nil {
			return 0, "", loc{}, unix.ENOENT
		}
		if err := v.statLoc(cl, st); err != nil {
			return 0, "", loc{}, err
		}
		n, _ = t.child(n, comp)
		dir = joinRel(dir, comp)
		dl = cl
	}
	return n, dir, dl, nil
}
