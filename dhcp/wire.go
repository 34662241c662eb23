package dhcp

import (
	"encoding/binary"
)

// Replies are encoded by hand into a buffer each worker owns: decoding uses the
// insomniacslk/dhcp codec, but its encoder allocates a buffer, an options map and a slice
// per option for every reply. The layout is RFC 2131's; options follow in the order they
// were added, relay agent information (82) last as RFC 3046 wants, then End, then padding
// to the 300 bytes of a BOOTP message.

const (
	headerRoom   = 28  // IPv4 + UDP header, written in front of the payload for link-layer sends
	bootpMinLen  = 300 // RFC 951
	dhcpFixedLen = 236
	maxOptions   = 64
	minMaxMsg    = 576 // RFC 2132 9.10
)

var magicCookie = [4]byte{99, 130, 83, 99}

type optEntry struct {
	code     uint8
	optional bool // dropped first when the reply would exceed the client's maximum size
	s        string
	b        []byte
}

// reply is one worker's reply under construction.
type reply struct {
	buf  []byte // headerRoom + payload; reused
	opts [maxOptions]optEntry
	n    int
	// fixed fields
	op, htype, hlen uint8
	xid             [4]byte
	flags           uint16
	ciaddr, yiaddr  uint32
	siaddr, giaddr  uint32
	chaddr          [16]byte
	sname, file     string
	relayInfo       []byte // option 82 echoed from the request
	maxLen          int    // payload limit
	scratch         [64]byte
	scratchN        int
}

func newReply() *reply {
	return &reply{buf: make([]byte, 0, 2048)}
}

func (r *reply) reset() {
	r.n = 0
	r.scratchN = 0
	r.relayInfo = nil
	r.sname, r.file = "", ""
	r.ciaddr, r.yiaddr, r.siaddr, r.giaddr = 0, 0, 0, 0
	r.flags = 0
	r.maxLen = minMaxMsg - headerRoom
}

// find returns the index of code among the options, or -1.
func (r *reply) find(code uint8) int {
	for i := 0; i < r.n; i++ {
		if r.opts[i].code == code {
			return i
		}
	}
	return -1
}

func (r *reply) set(e optEntry) {
	if i := r.find(e.code); i >= 0 {
		r.opts[i] = e
		return
	}
	if r.n < maxOptions {
		r.opts[r.n] = e
		r.n++
	}
}

func (r *reply) setString(code uint8, s string, optional bool) {
	if s == "" {
		return
	}
	r.set(optEntry{code: code, s: s, optional: optional})
}

func (r *reply) setBytes(code uint8, b []byte, optional bool) {
	r.set(optEntry{code: code, b: b, optional: optional})
}

// small returns n bytes of per-reply scratch space (for lease times and the like).
func (r *reply) small(n int) []byte {
	if r.scratchN+n > len(r.scratch) {
		return make([]byte, n)
	}
	b := r.scratch[r.scratchN : r.scratchN+n : r.scratchN+n]
	r.scratchN += n
	return b
}

func (r *reply) setUint32(code uint8, v uint32) {
	b := r.small(4)
	binary.BigEndian.PutUint32(b, v)
	r.setBytes(code, b, false)
}

// encode writes the reply after headerRoom bytes of buf and returns the payload.
// Optional options are left out if the whole would exceed maxLen.
func (r *reply) encode() []byte {
	p := r.encodeWith(true)
	if len(p) > r.maxLen {
		p = r.encodeWith(false)
	}
	return p
}

func (r *reply) encodeWith(optional bool) []byte {
	b := r.buf[:headerRoom]
	b = append(b, r.op, r.htype, r.hlen, 0)
	b = append(b, r.xid[:]...)
	b = append(b, 0, 0) // secs
	b = binary.BigEndian.AppendUint16(b, r.flags)
	b = binary.BigEndian.AppendUint32(b, r.ciaddr)
	b = binary.BigEndian.AppendUint32(b, r.yiaddr)
	b = binary.BigEndian.AppendUint32(b, r.siaddr)
	b = binary.BigEndian.AppendUint32(b, r.giaddr)
	b = append(b, r.chaddr[:]...)
	b = appendFixed(b, r.sname, 64)
	b = appendFixed(b, r.file, 128)
	b = append(b, magicCookie[:]...)
	for i := 0; i < r.n; i++ {
		e := &r.opts[i]
		if e.optional && !optional {
			continue
		}
		if e.b != nil {
			b = appendOption(b, e.code, e.b)
		} else {
			b = appendOptionString(b, e.code, e.s)
		}
	}
	if r.relayInfo != nil {
		b = appendOption(b, 82, r.relayInfo)
	}
	b = append(b, 255)
	for len(b)-headerRoom < bootpMinLen {
		b = append(b, 0)
	}
	r.buf = b
	return b[headerRoom:]
}

func appendFixed(b []byte, s string, n int) []byte {
	if len(s) >= n {
		s = s[:n-1] // keep a terminating NUL
	}
	b = append(b, s...)
	for i := len(s); i < n; i++ {
		b = append(b, 0)
	}
	return b
}

// appendOption writes code and value, split into 255-byte pieces (RFC 3396) if longer.
func appendOption(b []byte, code uint8, v []byte) []byte {
	if len(v) == 0 {
		return append(b, code, 0)
	}
	for len(v) > 0 {
		n := min(len(v), 255)
		b = append(b, code, byte(n))
		b = append(b, v[:n]...)
		v = v[n:]
	}
	return b
}

func appendOptionString(b []byte, code uint8, v string) []byte {
	for len(v) > 0 {
		n := min(len(v), 255)
		b = append(b, code, byte(n))
		b = append(b, v[:n]...)
		v = v[n:]
	}
	return b
}

// frame writes an IPv4 and UDP header in the headerRoom before payload (which must be the
// slice encode returned, still backed by r.buf) and returns the whole datagram.
func (r *reply) frame(src, dst uint32, sport, dport uint16) []byte {
	b := r.buf
	udpLen := len(b) - 20
	ip := b[:20]
	ip[0] = 0x45
	ip[1] = 0x10 // low delay, as ISC dhcpd marks its replies
	binary.BigEndian.PutUint16(ip[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(ip[4:], 0) // id
	binary.BigEndian.PutUint16(ip[6:], 0x4000)
	ip[8] = 64
	ip[9] = 17
	binary.BigEndian.PutUint16(ip[10:], 0)
	binary.BigEndian.PutUint32(ip[12:], src)
	binary.BigEndian.PutUint32(ip[16:], dst)
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum(ip, 0)))

	u := b[20:28]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(udpLen))
	binary.BigEndian.PutUint16(u[6:], 0)
	// Pseudo-header: src, dst, zero, protocol, UDP length.
	ps := uint32(src>>16) + uint32(src&0xffff) + uint32(dst>>16) + uint32(dst&0xffff) + 17 + uint32(udpLen)
	c := ^fold(sum(b[20:], ps))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
	return b
}

func sum(b []byte, acc uint32) uint32 {
	for len(b) >= 2 {
		acc += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

func fold(acc uint32) uint16 {
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}
