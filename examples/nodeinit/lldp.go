package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// LLDP: the switch port a NIC is cabled to, from the frames the switch sends
// (IEEE 802.1AB), for discovery by switch port.

const etherTypeLLDP = 0x88cc

// lldpGroup is the nearest-bridge group address switches send LLDP frames to.
var lldpGroup = net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e}

// Neighbor is what one LLDP frame says about the switch and its port.
type Neighbor struct {
	ChassisID string `json:"chassisid,omitempty"`
	PortID    string `json:"portid,omitempty"`
	PortDesc  string `json:"portdesc,omitempty"`
	SysName   string `json:"sysname,omitempty"`
	SysDesc   string `json:"sysdesc,omitempty"`
	MgmtAddr  string `json:"mgmtaddr,omitempty"`
}

var errNotLLDP = errors.New("not an LLDP frame")

// ParseLLDP reads an Ethernet frame carrying an LLDPDU: the mandatory chassis ID, port
// ID and TTL TLVs first, then optional ones up to End. Chassis and port IDs that are MAC
// addresses or network addresses are rendered as such; the others as text.
func ParseLLDP(frame []byte) (Neighbor, error) {
	var n Neighbor
	if len(frame) < 14 {
		return n, errNotLLDP
	}
	off := 12
	if binary.BigEndian.Uint16(frame[off:]) == 0x8100 { // 802.1Q tag
		off += 4
		if len(frame) < off+2 {
			return n, errNotLLDP
		}
	}
	if binary.BigEndian.Uint16(frame[off:]) != etherTypeLLDP {
		return n, errNotLLDP
	}
	p := frame[off+2:]
	seen := 0
	for len(p) >= 2 {
		h := binary.BigEndian.Uint16(p)
		typ, l := int(h>>9), int(h&0x1ff)
		if len(p) < 2+l {
			return n, fmt.Errorf("lldp: TLV type %d of %d bytes overruns the frame", typ, l)
		}
		v := p[2 : 2+l]
		p = p[2+l:]
		if seen < 3 && typ != seen+1 {
			return n, fmt.Errorf("lldp: TLV %d comes before the mandatory chassis ID, port ID and TTL", typ)
		}
		seen++
		switch typ {
		case 0: // End of LLDPDU
			return n, nil
		case 1:
			if l < 2 {
				return n, errors.New("lldp: empty chassis ID")
			}
			n.ChassisID = idString(v[0], v[1:], 4)
		case 2:
			if l < 2 {
				return n, errors.New("lldp: empty port ID")
			}
			n.PortID = idString(v[0], v[1:], 3)
		case 3:
			if l != 2 {
				return n, errors.New("lldp: TTL is not 2 bytes")
			}
		case 4:
			n.PortDesc = text(v)
		case 5:
			n.SysName = text(v)
		case 6:
			n.SysDesc = text(v)
		case 8:
			// Management address: length (subtype + address), subtype (1 IPv4, 2 IPv6).
			if l >= 2 && int(v[0]) >= 1 && int(v[0]) < l && n.MgmtAddr == "" {
				if a, ok := netip.AddrFromSlice(v[2 : 1+int(v[0])]); ok && (v[1] == 1 && a.Is4() || v[1] == 2 && a.Is6()) {
					n.MgmtAddr = a.String()
				}
			}
		}
	}
	if seen < 3 {
		return n, errors.New("lldp: frame ends before the mandatory TLVs")
	}
	return n, nil
}

// idString renders a chassis or port ID: a MAC address (subtype macSub), a network
// address (subtype 5: family 1 IPv4, 2 IPv6), or text.
func idString(sub byte, v []byte, macSub byte) string {
	switch {
	case sub == macSub && len(v) == 6:
		return net.HardwareAddr(v).String()
	case sub == 5 && len(v) >= 5 && (v[0] == 1 && len(v) == 5 || v[0] == 2 && len(v) == 17):
		a, _ := netip.AddrFromSlice(v[1:])
		return a.String()
	}
	return text(v)
}

// text keeps the printable part of a TLV's string.
func text(v []byte) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.ToValidUTF8(string(v), ""))
}

// listenLLDP collects the first LLDP frame that arrives on interface ifindex until ctx
// ends; nil when none came (or the socket could not be opened).
func listenLLDP(ctx context.Context, ifindex int) (*Neighbor, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(etherTypeLLDP)))
	if err != nil {
		return nil, fmt.Errorf("lldp: socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(etherTypeLLDP), Ifindex: ifindex}); err != nil {
		return nil, fmt.Errorf("lldp: bind: %w", err)
	}
	// Join the group, so that a NIC that filters multicast passes the frames up.
	mreq := unix.PacketMreq{Ifindex: int32(ifindex), Type: unix.PACKET_MR_MULTICAST, Alen: 6}
	copy(mreq.Address[:], lldpGroup)
	_ = unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq)
	buf := make([]byte, 1600)
	for ctx.Err() == nil {
		tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return nil, fmt.Errorf("lldp: read: %w", err)
		}
		if nb, err := ParseLLDP(buf[:n]); err == nil {
			return &nb, nil
		}
	}
	return nil, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
