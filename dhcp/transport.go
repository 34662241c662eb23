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

// A slot is one packet of a worker's batch with everything its handling needs: the
// received bytes, what the socket said about them, the reply under construction and where
// it goes. Slots are allocated once per worker; nothing in the packet path allocates them
// again.
type slot struct {
	in   []byte // maxPacket bytes
	n    int
	oob  []byte
	meta pktMeta
	rep  *reply
	rt   route
	ok   bool   // a reply is to be sent
	seq  uint64 // the reply acknowledges a lease: journal record to wait for first
}

// batch is a worker's set of slots and the transport's own per-worker state.
type batch struct {
	slots []*slot
	ready []*slot // the slots whose replies go out now
	acks  []*slot // the slots whose replies wait for the journal
	soob  []byte
	sys   any // transport state (Linux: recvmmsg headers, link-layer address)
}

const (
	maxPacket = 4096
	batchSize = 16
)

func newSlot() *slot {
	return &slot{in: make([]byte, maxPacket), oob: make([]byte, 128), rep: newReply()}
}

func newBatch(n int) *batch {
	b := &batch{soob: make([]byte, 64), ready: make([]*slot, 0, n), acks: make([]*slot, 0, n)}
	for range n {
		b.slots = append(b.slots, newSlot())
	}
	return b
}

type transport interface {
	// readBatch blocks until at least one packet is read and fills the first n slots.
	readBatch(b *batch) (int, error)
	send(b *batch, s *slot) error
}

// batchSender is a transport that sends a batch's replies with few system calls. It
// returns how many went out and reports each failure.
type batchSender interface {
	sendBatch(b *batch, slots []*slot, logErr func(*slot, error)) int
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

func (t *pcTransport) readBatch(b *batch) (int, error) {
	w := b.slots[0]
	n, addr, err := t.c.ReadFrom(w.in)
	if err != nil {
		return 0, err
	}
	w.n = n
	w.meta = pktMeta{local: localAddr(t.c)}
	if ua, ok := addr.(*net.UDPAddr); ok {
		w.meta.src = ua.AddrPort()
	}
	return 1, nil
}

func (t *pcTransport) send(_ *batch, w *slot) error {
	rt := &w.rt
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

func (t *udpTransport) readBatch(b *batch) (int, error) {
	w := b.slots[0]
	n, src, err := t.c.ReadFromUDPAddrPort(w.in)
	if err != nil {
		return 0, err
	}
	w.n = n
	w.meta = pktMeta{local: localAddr(t.c), src: src}
	return 1, nil
}

func (t *udpTransport) send(_ *batch, w *slot) error {
	rt := &w.rt
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
