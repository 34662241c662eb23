package tftp

import (
	"net"

	"golang.org/x/sys/unix"
)

// gsoConn sends a packed window of equal-sized DATA packets with one sendmsg using UDP
// generic segmentation offload (UDP_SEGMENT, Linux 4.18): the kernel cuts the buffer into
// datagrams of the slot size, the last one may be shorter.
type gsoConn struct {
	c       *net.UDPConn
	oob     []byte
	seg     int
	maxSegs int
}

func newGSOConn(c net.Conn) *gsoConn {
	uc, ok := c.(*net.UDPConn)
	if !ok {
		return nil
	}
	return &gsoConn{c: uc}
}

// init prepares for packets of seg bytes in windows of ws packets. It reports false when
// GSO cannot help (one packet per window, or packets too large to batch).
func (g *gsoConn) init(seg, ws int) bool {
	// One UDP datagram carries at most 65507 bytes; at most 64 segments per call.
	g.maxSegs = min(64, 65507/seg)
	if ws < 2 || g.maxSegs < 2 {
		return false
	}
	g.seg = seg
	g.oob = make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafePointer(&g.oob[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	putNative16(g.oob[unix.CmsgLen(0):], uint16(seg))
	return true
}

func (g *gsoConn) write(b []byte) error {
	step := g.seg * g.maxSegs
	for off := 0; off < len(b); off += step {
		chunk := b[off:min(off+step, len(b))]
		var err error
		if len(chunk) <= g.seg {
			_, err = g.c.Write(chunk)
		} else {
			_, _, err = g.c.WriteMsgUDP(chunk, g.oob, nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
