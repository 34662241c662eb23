package dhcp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Socket is the server's link to the network on Linux: one UDP socket on port 67 that
// reports, with IP_PKTINFO, the interface each request arrived on and the address it was
// sent to, and an AF_PACKET socket that sends replies to clients that have no address yet
// straight to their MAC. Both belong to the network namespace of the thread that called
// ListenSocket, so a test can open a Socket inside a namespace and serve from anywhere.
//
// A Socket is a net.PacketConn; give it to Server.Conn.
type Socket struct {
	udp *net.UDPConn
	raw syscall.RawConn
	pfd int // AF_PACKET/SOCK_DGRAM for link-layer replies, -1 without CAP_NET_RAW

	mu    sync.RWMutex
	names map[int]ifName
}

type ifName struct {
	name string
	at   time.Time
}

// ifNameTTL bounds how long an interface name is cached (interfaces can be renamed).
const ifNameTTL = 30 * time.Second

// ListenSocket opens a Socket on addr (":67" for a server; a wildcard address is needed to
// receive broadcasts). It sets SO_REUSEADDR, SO_BROADCAST, IP_PKTINFO and large buffers.
// Without CAP_NET_RAW there is no packet socket and replies to clients without an address
// are broadcast instead.
func ListenSocket(addr string) (*Socket, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			for _, o := range []struct{ level, name, v int }{
				{unix.SOL_SOCKET, unix.SO_REUSEADDR, 1},
				{unix.SOL_SOCKET, unix.SO_BROADCAST, 1},
				{unix.IPPROTO_IP, unix.IP_PKTINFO, 1},
			} {
				if serr = unix.SetsockoptInt(int(fd), o.level, o.name, o.v); serr != nil {
					return
				}
			}
			// Room for a burst of a few thousand requests; FORCE needs CAP_NET_ADMIN.
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
			}
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("dhcp: listen %s: %w", addr, err)
	}
	udp := pc.(*net.UDPConn)
	raw, err := udp.SyscallConn()
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("dhcp: listen %s: %w", addr, err)
	}
	s := &Socket{udp: udp, raw: raw, pfd: -1, names: make(map[int]ifName)}
	// Protocol 0: this socket only sends, it never receives a copy of the traffic.
	if fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err == nil {
		s.pfd = fd
	}
	return s, nil
}

// LinkLayer reports whether the Socket can send to a client's MAC (it has CAP_NET_RAW).
func (s *Socket) LinkLayer() bool { return s.pfd >= 0 }

// ReadFrom implements net.PacketConn.
func (s *Socket) ReadFrom(b []byte) (int, net.Addr, error) { return s.udp.ReadFrom(b) }

// WriteTo implements net.PacketConn.
func (s *Socket) WriteTo(b []byte, a net.Addr) (int, error) { return s.udp.WriteTo(b, a) }

// Close closes both sockets.
func (s *Socket) Close() error {
	err := s.udp.Close()
	s.mu.Lock()
	if s.pfd >= 0 {
		unix.Close(s.pfd)
		s.pfd = -1
	}
	s.mu.Unlock()
	return err
}

// LocalAddr implements net.PacketConn.
func (s *Socket) LocalAddr() net.Addr { return s.udp.LocalAddr() }

// SetDeadline implements net.PacketConn.
func (s *Socket) SetDeadline(t time.Time) error { return s.udp.SetDeadline(t) }

// SetReadDeadline implements net.PacketConn.
func (s *Socket) SetReadDeadline(t time.Time) error { return s.udp.SetReadDeadline(t) }

// SetWriteDeadline implements net.PacketConn.
func (s *Socket) SetWriteDeadline(t time.Time) error { return s.udp.SetWriteDeadline(t) }

var (
	cmsgHdrLen  = unix.CmsgLen(0)
	pktinfoLen  = unix.CmsgLen(unix.SizeofInet4Pktinfo)
	pktinfoSpan = unix.CmsgSpace(unix.SizeofInet4Pktinfo)
)

// mmsghdr is struct mmsghdr of recvmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// sockBatch is a worker's recvmmsg and sendmmsg state.
type sockBatch struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4
	ll    unix.SockaddrLinklayer

	// sendmmsg: replies through the IP stack (u*) and through the packet socket (l*).
	uhdrs  []mmsghdr
	uiovs  []unix.Iovec
	unames []unix.RawSockaddrInet4
	lhdrs  []mmsghdr
	liovs  []unix.Iovec
	lnames []unix.RawSockaddrLinklayer
}

func (s *Socket) sockBatch(b *batch) *sockBatch {
	if sb, ok := b.sys.(*sockBatch); ok {
		return sb
	}
	n := len(b.slots)
	sb := &sockBatch{hdrs: make([]mmsghdr, n), iovs: make([]unix.Iovec, n), names: make([]unix.RawSockaddrInet4, n),
		uhdrs: make([]mmsghdr, 0, n), uiovs: make([]unix.Iovec, n), unames: make([]unix.RawSockaddrInet4, n),
		lhdrs: make([]mmsghdr, 0, n), liovs: make([]unix.Iovec, n), lnames: make([]unix.RawSockaddrLinklayer, n)}
	sb.ll = unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Halen: 6}
	b.sys = sb
	return sb
}

// readBatch reads up to len(b.slots) packets with one recvmmsg(2), waiting in the
// runtime's poller (not in the kernel) when there are none.
func (s *Socket) readBatch(b *batch) (int, error) {
	sb := s.sockBatch(b)
	for i, w := range b.slots {
		sb.iovs[i].Base = &w.in[0]
		sb.iovs[i].SetLen(len(w.in))
		h := &sb.hdrs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&sb.names[i]))
		h.Namelen = unix.SizeofSockaddrInet4
		h.Iov = &sb.iovs[i]
		h.SetIovlen(1)
		h.Control = &w.oob[0]
		h.SetControllen(len(w.oob))
		h.Flags = 0
	}
	var n int
	var errno syscall.Errno
	err := s.raw.Read(func(fd uintptr) bool {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&sb.hdrs[0])), uintptr(len(sb.hdrs)),
			unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false
		}
		n, errno = int(r), e
		return true
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, fmt.Errorf("recvmmsg: %w", errno)
	}
	for i, w := range b.slots[:n] {
		w.n = int(sb.hdrs[i].len)
		sa := &sb.names[i]
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		w.meta = pktMeta{src: netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port), link: true}
		s.parseControl(w, w.oob[:sb.hdrs[i].hdr.Controllen])
	}
	return n, nil
}

// parseControl reads IP_PKTINFO: the arrival interface and the address the packet was sent
// to (for a broadcast, the interface's address).
func (s *Socket) parseControl(w *slot, oob []byte) {
	for len(oob) >= cmsgHdrLen {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < cmsgHdrLen || l > len(oob) {
			break
		}
		if h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && l >= pktinfoLen {
			pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&oob[cmsgHdrLen]))
			w.meta.ifindex = int(pi.Ifindex)
			w.meta.local = binary.BigEndian.Uint32(pi.Spec_dst[:])
		}
		oob = oob[min(len(oob), unix.CmsgSpace(l-cmsgHdrLen)):]
	}
	if w.meta.ifindex > 0 {
		w.meta.ifname = s.ifname(w.meta.ifindex)
	}
}

// ifname returns the name of interface idx in the socket's namespace (SIOCGIFNAME on the
// socket itself, so it works from any thread).
func (s *Socket) ifname(idx int) string {
	s.mu.RLock()
	e, ok := s.names[idx]
	s.mu.RUnlock()
	if ok && time.Since(e.at) < ifNameTTL {
		return e.name
	}
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return ""
	}
	ifr.SetUint32(uint32(idx))
	var ierr error
	if err := s.raw.Control(func(fd uintptr) { ierr = unix.IoctlIfreq(int(fd), unix.SIOCGIFNAME, ifr) }); err != nil || ierr != nil {
		return ""
	}
	name := ifr.Name()
	s.mu.Lock()
	s.names[idx] = ifName{name, time.Now()}
	s.mu.Unlock()
	return name
}

func (s *Socket) send(b *batch, w *slot) error {
	rt := &w.rt
	switch rt.kind {
	case routeRelay, routeUnicast:
		_, _, err := s.udp.WriteMsgUDPAddrPort(rt.payload, nil, rt.dst)
		return err
	}
	r := w.rep
	if s.pfd >= 0 && r.htype == 1 && r.hlen == 6 && w.meta.ifindex > 0 {
		sa := &s.sockBatch(b).ll
		dst := uint32(0xffffffff)
		if rt.kind == routeLink {
			copy(sa.Addr[:6], r.chaddr[:6])
			dst = addrU32(rt.dst.Addr())
		} else {
			copy(sa.Addr[:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		}
		sa.Ifindex = w.meta.ifindex
		frame := r.frame(rt.src, dst, 67, rt.dst.Port())
		for try := 0; ; try++ {
			err := unix.Sendto(s.pfd, frame, 0, sa)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.ENOBUFS && try < 3:
				time.Sleep(50 * time.Microsecond)
				continue
			}
			return err
		}
	}
	// No packet socket, or not Ethernet: broadcast through the IP stack, out of the
	// arrival interface (IP_PKTINFO names it and our address).
	oob := b.soob[:pktinfoSpan]
	clear(oob)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level = unix.IPPROTO_IP
	h.Type = unix.IP_PKTINFO
	h.SetLen(pktinfoLen)
	pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&oob[cmsgHdrLen]))
	pi.Ifindex = int32(w.meta.ifindex)
	binary.BigEndian.PutUint32(pi.Spec_dst[:], rt.src)
	dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), rt.dst.Port())
	if w.meta.ifindex == 0 {
		oob = nil
	}
	_, _, err := s.udp.WriteMsgUDPAddrPort(rt.payload, oob, dst)
	if errors.Is(err, unix.EINVAL) && oob != nil {
		// Our address may have gone; let the kernel choose the source.
		binary.BigEndian.PutUint32(pi.Spec_dst[:], 0)
		_, _, err = s.udp.WriteMsgUDPAddrPort(rt.payload, oob, dst)
	}
	return err
}

// sendBatch sends the replies of a batch: those through the IP stack (relay, ciaddr) with
// one sendmmsg(2) on the UDP socket, those to a client's MAC or broadcast with one
// sendmmsg(2) on the packet socket; the rest one by one. It returns how many were sent.
func (s *Socket) sendBatch(b *batch, slots []*slot, logErr func(*slot, error)) int {
	sb := s.sockBatch(b)
	sb.uhdrs, sb.lhdrs = sb.uhdrs[:0], sb.lhdrs[:0]
	var uslots, lslots [batchSize]*slot
	sent := 0
	for _, w := range slots {
		rt := &w.rt
		switch {
		case rt.kind == routeRelay || rt.kind == routeUnicast:
			i := len(sb.uhdrs)
			if i >= len(uslots) {
				break
			}
			sa := &sb.unames[i]
			sa.Family = unix.AF_INET
			binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], rt.dst.Port())
			sa.Addr = rt.dst.Addr().As4()
			sb.uiovs[i].Base = &rt.payload[0]
			sb.uiovs[i].SetLen(len(rt.payload))
			var h mmsghdr
			h.hdr.Name = (*byte)(unsafe.Pointer(sa))
			h.hdr.Namelen = unix.SizeofSockaddrInet4
			h.hdr.Iov = &sb.uiovs[i]
			h.hdr.SetIovlen(1)
			sb.uhdrs = append(sb.uhdrs, h)
			uslots[i] = w
			continue
		case s.pfd >= 0 && w.rep.htype == 1 && w.rep.hlen == 6 && w.meta.ifindex > 0:
			i := len(sb.lhdrs)
			if i >= len(lslots) {
				break
			}
			r := w.rep
			sa := &sb.lnames[i]
			*sa = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(unix.ETH_P_IP),
				Ifindex: int32(w.meta.ifindex), Halen: 6}
			dst := uint32(0xffffffff)
			if rt.kind == routeLink {
				copy(sa.Addr[:6], r.chaddr[:6])
				dst = addrU32(rt.dst.Addr())
			} else {
				copy(sa.Addr[:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
			}
			frame := r.frame(rt.src, dst, 67, rt.dst.Port())
			sb.liovs[i].Base = &frame[0]
			sb.liovs[i].SetLen(len(frame))
			var h mmsghdr
			h.hdr.Name = (*byte)(unsafe.Pointer(sa))
			h.hdr.Namelen = unix.SizeofSockaddrLinklayer
			h.hdr.Iov = &sb.liovs[i]
			h.hdr.SetIovlen(1)
			sb.lhdrs = append(sb.lhdrs, h)
			lslots[i] = w
			continue
		}
		if err := s.send(b, w); err != nil {
			logErr(w, err)
			continue
		}
		sent++
	}
	if len(sb.uhdrs) > 0 {
		start := 0
		err := s.raw.Write(func(fd uintptr) bool {
			for start < len(sb.uhdrs) {
				r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&sb.uhdrs[start])),
					uintptr(len(sb.uhdrs)-start), unix.MSG_DONTWAIT, 0, 0)
				switch {
				case e == unix.EAGAIN:
					return false
				case e == unix.EINTR:
				case e != 0:
					logErr(uslots[start], e) // this message fails; go on with the next
					start++
				default:
					sent += int(r)
					start += int(r)
				}
			}
			return true
		})
		if err != nil {
			for _, w := range uslots[start:len(sb.uhdrs)] {
				logErr(w, err)
			}
		}
	}
	for start := 0; start < len(sb.lhdrs); {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.pfd), uintptr(unsafe.Pointer(&sb.lhdrs[start])),
			uintptr(len(sb.lhdrs)-start), 0, 0, 0)
		switch {
		case e == unix.EINTR:
		case e == unix.ENOBUFS:
			time.Sleep(50 * time.Microsecond)
		case e != 0:
			logErr(lslots[start], e)
			start++
		default:
			sent += int(r)
			start += int(r)
		}
	}
	return sent
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
