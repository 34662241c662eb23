package nfsroot

import (
	"fmt"
	"net/netip"

	"github.com/provkit/provkit/nfsroot/internal/xdr"
)

// The portmapper (RFC 1833): PMAP v2 GETPORT is what the Linux kernel asks (over TCP, for
// MOUNT v3 then NFS v3) before an nfsroot= or a plain mount; rpcbind v3/v4 GETADDR is what
// nfs-utils' mount.nfs asks first. Only the programs served here are known; SET and UNSET
// are refused.
const (
	pmapNull    = 0
	pmapSet     = 1
	pmapUnset   = 2
	pmapGetport = 3
	pmapDump    = 4

	rpcbGetaddr = 3 // v3 and v4

	ipprotoTCP = 6
)

type mapping struct{ prog, vers, prot uint32 }

// port returns the port of a (prog, vers, protocol), 0 when not served.
func (st *serving) port(m mapping) uint32 {
	if m.prot != ipprotoTCP {
		return 0
	}
	switch {
	case m.prog == progNFS && m.vers == 3, m.prog == progMount && m.vers == 3:
		return uint32(st.nfsPort)
	}
	return 0
}

// portmap answers a portmapper call that came over TCP on the connection.
func (c *conn) portmapCall(call xdr.Call) []byte {
	local := addrPortOf(c.nc.LocalAddr())
	return c.st.portmapReply(call, local, true)
}

func (st *serving) portmapReply(call xdr.Call, local netip.AddrPort, stream bool) []byte {
	switch call.Vers {
	case 2:
	case 3, 4:
		if !stream || !local.Addr().IsValid() || local.Addr().IsUnspecified() {
			e := newReply(call.XID, xdr.ProgMismatch)
			e.Uint32(2)
			e.Uint32(2)
			return e.B
		}
		return st.rpcbind(call, local)
	default:
		e := newReply(call.XID, xdr.ProgMismatch)
		e.Uint32(2)
		e.Uint32(4)
		return e.B
	}
	d := xdr.NewDecoder(call.Args)
	switch call.Proc {
	case pmapNull:
		return acceptReply(call.XID, xdr.Success)
	case pmapSet, pmapUnset:
		d.Uint32()
		d.Uint32()
		d.Uint32()
		d.Uint32()
		if d.Err() != nil {
			return acceptReply(call.XID, xdr.GarbageArgs)
		}
		e := newReply(call.XID, xdr.Success)
		e.Bool(false)
		return e.B
	case pmapGetport:
		m := mapping{prog: d.Uint32(), vers: d.Uint32(), prot: d.Uint32()}
		d.Uint32() // port, ignored
		if d.Err() != nil {
			return acceptReply(call.XID, xdr.GarbageArgs)
		}
		e := newReply(call.XID, xdr.Success)
		e.Uint32(st.port(m))
		st.log.Debug("portmapper GETPORT", "prog", m.prog, "vers", m.vers, "prot", m.prot, "port", st.port(m))
		return e.B
	case pmapDump:
		e := newReply(call.XID, xdr.Success)
		for _, m := range []mapping{{progNFS, 3, ipprotoTCP}, {progMount, 3, ipprotoTCP}} {
			e.Bool(true)
			e.Uint32(m.prog)
			e.Uint32(m.vers)
			e.Uint32(m.prot)
			e.Uint32(st.port(m))
		}
		e.Bool(false)
		return e.B
	}
	return acceptReply(call.XID, xdr.ProcUnavail)
}

// rpcbind answers rpcbind v3/v4 calls: GETADDR with the universal address of the local
// end of the connection.
func (st *serving) rpcbind(call xdr.Call, local netip.AddrPort) []byte {
	d := xdr.NewDecoder(call.Args)
	switch call.Proc {
	case pmapNull:
		return acceptReply(call.XID, xdr.Success)
	case rpcbGetaddr:
		prog, vers := d.Uint32(), d.Uint32()
		netid := d.String(64)
		d.String(256) // r_addr
		d.String(256) // r_owner
		if d.Err() != nil {
			return acceptReply(call.XID, xdr.GarbageArgs)
		}
		var uaddr string
		if (netid == "tcp" && local.Addr().Is4()) || (netid == "tcp6" && local.Addr().Is6() && !local.Addr().Is4In6()) {
			if port := st.port(mapping{prog, vers, ipprotoTCP}); port != 0 {
				uaddr = universalAddr(local.Addr().Unmap(), port)
			}
		} else if netid == "tcp" && local.Addr().Is4In6() {
			if port := st.port(mapping{prog, vers, ipprotoTCP}); port != 0 {
				uaddr = universalAddr(local.Addr().Unmap(), port)
			}
		}
		e := newReply(call.XID, xdr.Success)
		e.String(uaddr)
		return e.B
	}
	return acceptReply(call.XID, xdr.ProcUnavail)
}

// universalAddr formats addr and port as an rpcbind universal address ("10.0.0.1.8.1").
func universalAddr(a netip.Addr, port uint32) string {
	return fmt.Sprintf("%s.%d.%d", a.String(), port>>8, port&0xff)
}

// udpCall answers one portmapper datagram; other programs get PROG_UNAVAIL.
func (st *serving) udpCall(pkt []byte) []byte {
	call, err := xdr.ParseCall(pkt)
	if err != nil {
		return nil
	}
	var rec []byte
	if call.Prog != progPortmap {
		rec = acceptReply(call.XID, xdr.ProgUnavail)
	} else {
		rec = st.portmapReply(call, netip.AddrPort{}, false)
	}
	return rec[4:] // no record mark over UDP
}
