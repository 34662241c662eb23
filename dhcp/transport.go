package dhcp

import (
	"fmt"
	"net"
	"net/netip"
)

// pktMeta is what the socket tells about a received packet.
type pktMeta struct {
	ifindex int
	ifname  string
	local   uint32 // the address the packet was sent to or arrived at; 0 if unknown
	src     netip.AddrPort
	link    bool // the socket knows the link: arrival interface, link-layer replies
}

type routeKind uint8

const (
	routeRelay     routeKind = iota + 1 // giaddr, port 67, through the IP stack
	routeUnicast                        // ciaddr, port 68, through the IP stack
	routeBroadcast                      // 255.255.255.255 on the arrival interface
	routeLink                           // yiaddr at chaddr, on the arrival interface
)

// route says where a reply goes (RFC 2131 4.1).
type route struct {
	kind    routeKind
	dst     netip.AddrPort // routeRelay, routeUnicast; the IP destination of routeLink
	src     uint32         // our address: the server identifier
	payload []byte
}

func (r *route) String() string {
	switch r.kind {
	case routeRelay:
		return "relay " + r.dst.String()
	case routeUnicast:
		return "unicast " + r.dst.String()
	case routeBroadcast:
		return "broadcast"
	case routeLink:
		return "link " + r.dst.String()
	}
	return "none"
}

// worker holds the buffers of one worker goroutine; nothing in the packet path allocates
// them again.
type worker struct {
	in   []byte
	oob  []byte
	soob []byte // control message for sends
	meta pktMeta
	rep  *reply
	ll   any // per-worker link-layer address for the packet socket (Linux)
}

const maxPacket = 4096

func newWorker() *worker {
	return &worker{
		in:   make([]byte, maxPacket),
		oob:  make([]byte, 128),
		soob: make([]byte, 64),
		rep:  newReply(),
	}
}

type transport interface {
	read(w *worker) (int, error)
	send(w *worker, rt *route) error
}

func newTransport(c net.PacketConn) transport {
	if s, ok := c.(*Socket); ok {
		return s
	}
	if u, ok := c.(*net.UDPConn); ok {
		return &udpTransport{c: u}
	}
	return &pcTransport{c: c}
}

// pcTransport serves on any PacketConn. It has no link layer: replies that would go to a
// MAC or to the broadcast address go back to the sender's address.
type pcTransport struct {
	c net.PacketConn
}

func (t *pcTransport) read(w *worker) (int, error) {
	n, addr, err := t.c.ReadFrom(w.in)
	if err != nil {
		return 0, err
	}
	w.meta = pktMeta{local: localAddr(t.c)}
	if ua, ok := addr.(*net.UDPAddr); ok {
		w.meta.src = ua.AddrPort()
	}
	return n, nil
}

func (t *pcTransport) send(w *worker, rt *route) error {
	dst := rt.dst
	if rt.kind == routeBroadcast || rt.kind == routeLink {
		dst = w.meta.src
	}
	if !dst.IsValid() {
		return fmt.Errorf("no address to reply to")
	}
	_, err := t.c.WriteTo(rt.payload, net.UDPAddrFromAddrPort(dst))
	return err
}

// udpTransport is pcTransport for a *net.UDPConn, without allocating per packet.
type udpTransport struct {
	c *net.UDPConn
}

func (t *udpTransport) read(w *worker) (int, error) {
	n, src, err := t.c.ReadFromUDPAddrPort(w.in)
	if err != nil {
		return 0, err
	}
	w.meta = pktMeta{local: localAddr(t.c), src: src}
	return n, nil
}

func (t *udpTransport) send(w *worker, rt *route) error {
	dst := rt.dst
	if rt.kind == routeBroadcast || rt.kind == routeLink {
		dst = w.meta.src
	}
	if !dst.IsValid() {
		return fmt.Errorf("no address to reply to")
	}
	_, err := t.c.WriteToUDPAddrPort(rt.payload, dst)
	return err
}

func localAddr(c net.PacketConn) uint32 {
	if ua, ok := c.LocalAddr().(*net.UDPAddr); ok {
		if a, ok := netip.AddrFromSlice(ua.IP); ok {
			if a = a.Unmap(); a.Is4() {
				return addrU32(a)
			}
		}
	}
	return 0
}
