package dhcp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// request is what the handler reads from a decoded packet, pulled out once.
type request struct {
	p           *dhcpv4.DHCPv4
	mt          dhcpv4.MessageType
	htype, hlen uint8
	chaddr      [16]byte
	mac         net.HardwareAddr
	key         string
	giaddr      uint32
	linkAddr    uint32 // the client's link: link selection (82.5 / 118), else giaddr
	ciaddr      uint32
	requested   uint32 // option 50
	serverID    uint32 // option 54
	hasServerID bool
	clientID    []byte
	hostname    []byte
	relayInfo   []byte
	prl         []byte
	maxMsg      int
	broadcast   bool
	bootp       bool // a BOOTP request: no option 53
	boot        bootClient
}

var msgTypeByte = [...]string{
	dhcpv4.MessageTypeOffer: "\x02",
	dhcpv4.MessageTypeAck:   "\x05",
	dhcpv4.MessageTypeNak:   "\x06",
}

// parse checks the fixed header before decoding and fills rq. It returns false for
// anything that is not a well-formed DHCP request a server should answer.
func parse(pkt []byte, rq *request) bool {
	if len(pkt) < dhcpFixedLen+4 || pkt[0] != 1 || pkt[2] > 16 {
		return false
	}
	if [4]byte(pkt[dhcpFixedLen:dhcpFixedLen+4]) != magicCookie {
		// An RFC 951 BOOTP request: its vend field holds no RFC 1497 options. Decode the
		// fixed header alone.
		var b [dhcpFixedLen + 5]byte
		copy(b[:], pkt[:dhcpFixedLen])
		copy(b[dhcpFixedLen:], magicCookie[:])
		b[dhcpFixedLen+4] = 255
		pkt = b[:]
	}
	p, err := dhcpv4.FromBytes(pkt)
	if err != nil {
		return false
	}
	rq.p = p
	if v, ok := p.Options[53]; ok {
		if len(v) != 1 {
			return false
		}
		rq.mt = dhcpv4.MessageType(v[0])
	}
	switch rq.mt {
	case dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeDecline,
		dhcpv4.MessageTypeRelease, dhcpv4.MessageTypeInform:
	case dhcpv4.MessageTypeNone:
		rq.bootp = true // no DHCP message type: a BOOTP client (RFC 951, 1542)
	default:
		return false
	}
	rq.htype, rq.hlen = pkt[1], pkt[2]
	copy(rq.chaddr[:], pkt[28:44])
	rq.giaddr = binary.BigEndian.Uint32(pkt[24:28])
	rq.ciaddr = binary.BigEndian.Uint32(pkt[12:16])
	rq.broadcast = pkt[10]&0x80 != 0
	o := p.Options
	rq.clientID = o[61]
	switch {
	case rq.hlen > 0:
		rq.mac = net.HardwareAddr(rq.chaddr[:rq.hlen])
		rq.key = hwKey(rq.htype, rq.mac)
	case len(rq.clientID) > 0:
		rq.key = idKey(rq.clientID)
	default:
		return false // nothing to know the client by
	}
	if v := o[50]; len(v) == 4 {
		rq.requested = binary.BigEndian.Uint32(v)
	}
	if v := o[54]; len(v) == 4 {
		rq.serverID = binary.BigEndian.Uint32(v)
		rq.hasServerID = true
	}
	rq.hostname = bytes.TrimRight(o[12], "\x00")
	rq.prl = o[55]
	rq.maxMsg = minMaxMsg
	if v := o[57]; len(v) == 2 {
		rq.maxMsg = max(minMaxMsg, int(binary.BigEndian.Uint16(v)))
	}
	rq.linkAddr = rq.giaddr
	if v, ok := o[82]; ok {
		rq.relayInfo = v
		if sel := subOption(v, 5); len(sel) == 4 && rq.giaddr != 0 {
			rq.linkAddr = binary.BigEndian.Uint32(sel)
		}
	}
	if v := o[118]; len(v) == 4 && rq.linkAddr == rq.giaddr {
		if sel := binary.BigEndian.Uint32(v); sel != 0 {
			rq.linkAddr = sel
		}
	}
	rq.boot.arch = archNone
	if v := o[93]; len(v) >= 2 {
		rq.boot.arch = binary.BigEndian.Uint16(v)
	}
	rq.boot.vendorClass = o[60]
	rq.boot.ipxe = isIPXE(o[77])
	_, rq.boot.ipxeEncap = o[175]
	return true
}

// subOption returns sub-option code of an option 82 value.
func subOption(v []byte, code byte) []byte {
	for len(v) >= 2 {
		c, l := v[0], int(v[1])
		if len(v) < 2+l {
			return nil
		}
		if c == code {
			return v[2 : 2+l]
		}
		v = v[2+l:]
	}
	return nil
}

// isIPXE reports whether user class option 77 names iPXE (or xCAT's xNBA), either as the
// raw string iPXE sends or as an RFC 3004 list.
func isIPXE(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	if bytes.Equal(v, []byte(userClassIPXE)) || bytes.Equal(v, []byte(userClassXNBA)) {
		return true
	}
	for len(v) >= 1 {
		l := int(v[0])
		if len(v) < 1+l {
			return false
		}
		s := v[1 : 1+l]
		if bytes.Equal(s, []byte(userClassIPXE)) || bytes.Equal(s, []byte(userClassXNBA)) {
			return true
		}
		v = v[1+l:]
	}
	return false
}

func (rq *request) requestedOption(code uint8) bool {
	return rq.prl == nil || bytes.IndexByte(rq.prl, code) >= 0
}

// matches reports whether the client of rq is on network ns.
func (st *state) matches(ns *netState, m *pktMeta, rq *request) bool {
	if rq.giaddr != 0 {
		return ns.contains(rq.linkAddr)
	}
	if !m.link {
		return true // a PacketConn cannot tell the link: every network is a candidate
	}
	if ns.n.Interface != "" {
		return ns.n.Interface == m.ifname
	}
	return m.local != 0 && ns.contains(m.local)
}

// pickNet returns the first network of the client's link that contains ip, or the first
// network of the link when ip is 0.
func (st *state) pickNet(m *pktMeta, rq *request, ip uint32) *netState {
	for _, ns := range st.nets {
		if st.matches(ns, m, rq) && (ip == 0 || ns.contains(ip)) {
			return ns
		}
	}
	return nil
}

func (st *state) serverID(ns *netState, m *pktMeta) uint32 {
	if ns.serverAddr != 0 {
		return ns.serverAddr
	}
	return m.local
}

func (st *state) isOurs(id uint32, m *pktMeta) bool {
	if id == m.local {
		return true
	}
	for _, ns := range st.nets {
		if ns.serverAddr == id {
			return true
		}
	}
	return false
}

// lookup finds the reservation of the client. ok is false when the lookup failed for
// another reason than "not found": the request is then ignored (the client retries).
func (st *state) lookup(ctx context.Context, rq *request) (h Host, known, ok bool) {
	if st.hosts == nil {
		return Host{}, false, true
	}
	var err error = ErrNotFound
	if rq.hlen > 0 {
		h, err = st.hosts.LookupHost(ctx, rq.mac)
	}
	if errors.Is(err, ErrNotFound) && st.idHosts != nil && len(rq.clientID) > 0 {
		h, err = st.idHosts.LookupClientID(ctx, rq.clientID)
	}
	switch {
	case err == nil:
		if h.IP.IsValid() && !h.IP.Is4() {
			st.log.Error("dhcp: reservation has a non-IPv4 address", "node", h.Name, "mac", rq.mac.String(), "ip", h.IP)
			return h, true, false
		}
		return h, true, true
	case errors.Is(err, ErrNotFound):
		return Host{}, false, true
	}
	st.log.Error("dhcp: host lookup", "mac", rq.mac.String(), "err", err)
	return Host{}, false, false
}

// usable reports whether the dynamic pool may give ip to the client: no reservation
// belongs to another host.
func (st *state) usable(ctx context.Context, ip uint32, rq *request) bool {
	if st.addrHosts == nil {
		return true
	}
	h, err := st.addrHosts.LookupAddr(ctx, u32Addr(ip))
	if err != nil {
		return errors.Is(err, ErrNotFound)
	}
	return rq.hlen > 0 && bytes.Equal(h.MAC, rq.mac)
}

func (ns *netState) advance() {
	c := ns.cursor
	for i, r := range ns.ranges {
		if r.lo <= c && c <= r.hi {
			if c < r.hi {
				ns.cursor = c + 1
			} else {
				ns.cursor = ns.ranges[(i+1)%len(ns.ranges)].lo
			}
			return
		}
	}
	ns.cursor = ns.ranges[0].lo
}

// allocate picks a dynamic address for rq in ns: the client's current one, else the one it
// asks for, else the next free one. Called with the lease table locked. 0 if none.
func (st *state) allocate(ctx context.Context, ns *netState, rq *request, now int64) uint32 {
	t := st.leases
	if l := t.byKey[rq.key]; l != nil && l.state != LeaseDeclined && ns.inRanges(l.ip) && !ns.special[l.ip] && st.usable(ctx, l.ip, rq) {
		return l.ip
	}
	if ip := rq.requested; ip != 0 && ns.inRanges(ip) && !ns.special[ip] && t.freeFor(ip, rq.key, now) && st.usable(ctx, ip, rq) {
		return ip
	}
	for range ns.poolSize {
		ip := ns.cursor
		ns.advance()
		if !ns.special[ip] && t.freeFor(ip, rq.key, now) && st.usable(ctx, ip, rq) {
			return ip
		}
	}
	return 0
}

func secs(d time.Duration) int64 { return int64(d / time.Second) }

// reservedNet returns the network of host's reserved address ip as seen from the client
// of rq, or nil (logged) when the address is not on the client's network.
func (st *state) reservedNet(m *pktMeta, rq *request, host *Host, ip uint32) *netState {
	ns := st.pickNet(m, rq, ip)
	if ns == nil {
		st.log.Warn("dhcp: reserved address is not on the client's network", "node", host.Name,
			"mac", rq.mac.String(), "ip", host.IP, "iface", m.ifname, "relay", u32Addr(rq.giaddr))
	}
	return ns
}

// heldByOther reports (and logs) that another client holds a bound lease on host's
// reserved address ip. The caller holds st.leases.mu.
func (st *state) heldByOther(rq *request, host *Host, ip uint32, now int64) bool {
	h := st.leases.otherHolder(ip, rq.key, now)
	if h == nil || h.state != LeaseBound {
		return false
	}
	st.log.Warn("dhcp: reserved address is leased to another client", "node", host.Name,
		"mac", rq.mac.String(), "ip", host.IP, "holder", h.export().MAC.String())
	return true
}

// siaddr is the next server for boot: the boot's own, the network's, else the server.
func siaddr(boot *Boot, ns *netState, sid uint32) uint32 {
	switch {
	case boot.NextServer.IsValid():
		return addrU32(boot.NextServer)
	case ns.nextServer != 0:
		return ns.nextServer
	}
	return sid
}

// handle decides the answer to one packet. It encodes the reply in w.rep and returns its
// route, or false to stay silent. A reply that acknowledges a lease sets w.seq: the
// journal record that must be written before it is sent.
func (st *state) handle(ctx context.Context, w *slot, pkt []byte) (route, bool) {
	w.seq = 0
	var rq request
	if !parse(pkt, &rq) {
		return route{}, false
	}
	m := &w.meta
	if rq.bootp {
		return st.bootp(ctx, w, m, &rq)
	}
	switch rq.mt {
	case dhcpv4.MessageTypeDiscover:
		return st.discover(ctx, w, m, &rq)
	case dhcpv4.MessageTypeRequest:
		return st.request(ctx, w, m, &rq)
	case dhcpv4.MessageTypeDecline:
		st.decline(ctx, m, &rq)
	case dhcpv4.MessageTypeRelease:
		st.release(m, &rq)
	case dhcpv4.MessageTypeInform:
		return st.inform(ctx, w, m, &rq)
	}
	return route{}, false
}

func (st *state) discover(ctx context.Context, w *slot, m *pktMeta, rq *request) (route, bool) {
	host, known, ok := st.lookup(ctx, rq)
	if !ok || (known && host.Deny) {
		return route{}, false
	}
	now := st.now().Unix()
	t := st.leases
	var ns *netState
	var ip uint32
	if known && host.IP.IsValid() {
		ip = addrU32(host.IP)
		if ns = st.reservedNet(m, rq, &host, ip); ns == nil {
			return route{}, false
		}
		t.mu.Lock()
		if st.heldByOther(rq, &host, ip, now) {
			t.mu.Unlock()
			return route{}, false
		}
		t.offer(rq.key, ip, now, now+secs(offerHold))
		t.mu.Unlock()
	} else {
		if !known && st.deny {
			st.discovered(m, rq, nil, 0)
			return route{}, false
		}
		t.mu.Lock()
		for _, cand := range st.nets {
			if len(cand.ranges) == 0 || !st.matches(cand, m, rq) {
				continue
			}
			if ip = st.allocate(ctx, cand, rq, now); ip != 0 {
				ns = cand
				t.offer(rq.key, ip, now, now+secs(offerHold))
				break
			}
		}
		t.mu.Unlock()
		if !known {
			st.discovered(m, rq, ns, ip)
		}
		if ip == 0 {
			if st.pickNet(m, rq, 0) != nil {
				st.log.Warn("dhcp: no free address", "mac", rq.mac.String(), "iface", m.ifname, "relay", u32Addr(rq.giaddr))
			}
			return route{}, false
		}
	}
	var hp *Host
	if known {
		hp = &host
	}
	return st.reply(w, m, rq, ns, dhcpv4.MessageTypeOffer, ip, hp)
}

func (st *state) discovered(m *pktMeta, rq *request, ns *netState, ip uint32) {
	if st.onDiscover == nil {
		return
	}
	d := Discovery{
		MAC:         bytes.Clone(rq.mac),
		HWType:      rq.htype,
		ClientID:    bytes.Clone(rq.clientID),
		Interface:   m.ifname,
		Arch:        rq.boot.arch,
		VendorClass: string(rq.boot.vendorClass),
		UserClass:   rq.p.UserClass(),
		Hostname:    string(rq.hostname),
	}
	if rq.giaddr != 0 {
		d.Relay = u32Addr(rq.giaddr)
	}
	if ns == nil {
		ns = st.pickNet(m, rq, 0)
	}
	if ns != nil {
		d.Network = ns.prefix
	}
	if ip != 0 {
		d.Offered = u32Addr(ip)
	}
	st.onDiscover(d)
}

func (st *state) request(ctx context.Context, w *slot, m *pktMeta, rq *request) (route, bool) {
	var ip uint32
	switch {
	case rq.hasServerID: // SELECTING
		ip = rq.requested
		if ip == 0 {
			ip = rq.ciaddr
		}
	case rq.requested != 0 && rq.ciaddr == 0: // INIT-REBOOT
		ip = rq.requested
	case rq.ciaddr != 0: // RENEWING, REBINDING
		ip = rq.ciaddr
	}
	if ip == 0 {
		return route{}, false
	}
	t := st.leases
	if rq.hasServerID && !st.isOurs(rq.serverID, m) {
		// The client took another server's offer: withdraw ours.
		t.mu.Lock()
		if l := t.byKey[rq.key]; l != nil && l.state == LeaseOffered {
			delete(t.byKey, rq.key)
			if t.byIP[l.ip] == l {
				delete(t.byIP, l.ip)
			}
		}
		t.mu.Unlock()
		return route{}, false
	}
	host, known, ok := st.lookup(ctx, rq)
	if !ok || (known && host.Deny) || (!known && st.deny) {
		return route{}, false
	}
	ns := st.pickNet(m, rq, ip)
	if ns == nil {
		// Not an address of the client's network: tell it to start over (authoritative).
		if any := st.pickNet(m, rq, 0); any != nil {
			return st.nak(w, m, rq, any)
		}
		return route{}, false
	}
	now := st.now().Unix()
	expires := now + int64(ns.leaseSecs)
	t.mu.Lock()
	if known && host.IP.IsValid() {
		if addrU32(host.IP) != ip {
			t.mu.Unlock()
			return st.nak(w, m, rq, ns)
		}
		if st.heldByOther(rq, &host, ip, now) {
			t.mu.Unlock()
			return st.nak(w, m, rq, ns)
		}
	} else {
		l := t.byKey[rq.key]
		mine := l != nil && l.ip == ip && l.state != LeaseDeclined
		if !ns.inRanges(ip) || ns.special[ip] || !(mine || t.freeFor(ip, rq.key, now)) || !st.usable(ctx, ip, rq) {
			t.mu.Unlock()
			return st.nak(w, m, rq, ns)
		}
	}
	w.seq = t.bind(rq.key, ip, expires, rq.clientID, rq.hostname)
	t.mu.Unlock()
	var hp *Host
	if known {
		hp = &host
	}
	return st.reply(w, m, rq, ns, dhcpv4.MessageTypeAck, ip, hp)
}

func (st *state) decline(ctx context.Context, m *pktMeta, rq *request) {
	ip := rq.requested
	if ip == 0 || (rq.hasServerID && !st.isOurs(rq.serverID, m)) {
		return
	}
	t := st.leases
	reserved := false
	if h, known, ok := st.lookup(ctx, rq); ok && known && h.IP.IsValid() && addrU32(h.IP) == ip {
		reserved = true
	}
	now := st.now().Unix()
	t.mu.Lock()
	var did bool
	if reserved {
		did = t.release(rq.key, ip)
	} else {
		did = t.decline(rq.key, ip, now+secs(declineHold))
	}
	t.mu.Unlock()
	if did {
		st.log.Warn("dhcp: client declined its address: another machine uses it", "mac", rq.mac.String(),
			"ip", u32Addr(ip), "reserved", reserved)
	}
}

func (st *state) release(m *pktMeta, rq *request) {
	if rq.ciaddr == 0 || (rq.hasServerID && !st.isOurs(rq.serverID, m)) {
		return
	}
	t := st.leases
	t.mu.Lock()
	did := t.release(rq.key, rq.ciaddr)
	t.mu.Unlock()
	if did && st.debug {
		st.log.Debug("dhcp: released", "mac", rq.mac.String(), "ip", u32Addr(rq.ciaddr))
	}
}

func (st *state) inform(ctx context.Context, w *slot, m *pktMeta, rq *request) (route, bool) {
	if rq.ciaddr == 0 {
		return route{}, false
	}
	ns := st.pickNet(m, rq, rq.ciaddr)
	if ns == nil {
		return route{}, false
	}
	host, known, ok := st.lookup(ctx, rq)
	if !ok || (known && host.Deny) {
		return route{}, false
	}
	var hp *Host
	if known {
		hp = &host
	}
	return st.reply(w, m, rq, ns, dhcpv4.MessageTypeAck, 0, hp)
}

func (st *state) nak(w *slot, m *pktMeta, rq *request, ns *netState) (route, bool) {
	sid := st.serverID(ns, m)
	if sid == 0 {
		return route{}, false
	}
	r := w.rep
	st.header(r, rq)
	r.setString(53, msgTypeByte[dhcpv4.MessageTypeNak], false)
	r.setUint32(54, sid)
	r.setString(56, "requested address not available", true)
	if rq.clientID != nil {
		r.setBytes(61, rq.clientID, false)
	}
	if rq.giaddr != 0 {
		r.flags |= 0x8000 // RFC 2131 4.3.2: the relay broadcasts it
	}
	r.relayInfo = rq.relayInfo
	payload := r.encode()
	if st.debug {
		st.log.Debug("dhcp: NAK", "mac", rq.mac.String(), "xid", rq.p.TransactionID.String(),
			"iface", m.ifname, "requested", u32Addr(rq.requested), "ciaddr", u32Addr(rq.ciaddr))
	}
	return st.route(rq, dhcpv4.MessageTypeNak, 0, sid, payload), true
}

func (st *state) header(r *reply, rq *request) {
	r.reset()
	r.op = 2
	r.htype, r.hlen = rq.htype, rq.hlen
	r.xid = rq.p.TransactionID
	if rq.broadcast {
		r.flags = 0x8000
	}
	r.giaddr = rq.giaddr
	r.chaddr = rq.chaddr
	r.maxLen = rq.maxMsg - headerRoom
}

// reply encodes an OFFER or ACK (yiaddr 0: the ACK to an INFORM) for rq.
func (st *state) reply(w *slot, m *pktMeta, rq *request, ns *netState, mt dhcpv4.MessageType, yiaddr uint32, host *Host) (route, bool) {
	sid := st.serverID(ns, m)
	if sid == 0 {
		st.log.Warn("dhcp: no server address for network: set Network.ServerAddr", "network", ns.prefix)
		return route{}, false
	}
	r := w.rep
	st.header(r, rq)
	if mt == dhcpv4.MessageTypeAck {
		r.ciaddr = rq.ciaddr
	}
	r.yiaddr = yiaddr
	r.setString(53, msgTypeByte[mt], false)
	r.setUint32(54, sid)
	if yiaddr != 0 {
		r.setUint32(51, ns.leaseSecs)
		r.setUint32(58, ns.leaseSecs/2)
		r.setUint32(59, ns.leaseSecs/8*7)
	}
	r.setString(1, ns.mask, false)
	r.setString(3, ns.routers, false)
	r.setString(6, ns.dns, false)
	if host != nil {
		r.setString(12, host.hostname(), false)
	}
	r.setString(15, ns.domain, false)
	if rq.requestedOption(28) {
		r.setString(28, ns.bcast, true)
	}
	if rq.requestedOption(26) {
		r.setString(26, ns.mtu, true)
	}
	if rq.requestedOption(42) {
		r.setString(42, ns.ntp, true)
	}
	if rq.requestedOption(7) {
		r.setString(7, ns.logs, true)
	}
	if rq.requestedOption(119) {
		r.setString(119, ns.search, true)
	}
	if rq.boot.ipxeEncap {
		// iPXE waits a second for ProxyDHCP offers unless told there are none; xCAT's
		// dhcpd.conf says so for every client (option gpxe.no-pxedhcp 1). A network or
		// host option 175 replaces this.
		r.setBytes(175, noPXEDHCP, false)
	}
	for i := range ns.n.Options {
		o := &ns.n.Options[i]
		if rq.requestedOption(o.Code) {
			r.setBytes(o.Code, o.Value, true)
		}
	}

	boot := &ns.n.Boot
	var merged Boot
	if host != nil {
		merged = host.Boot.merge(boot)
		boot = &merged
	}
	r.siaddr = siaddr(boot, ns, sid)
	file, kind := boot.chooseFile(&rq.boot)
	if file != "" {
		if len(file) <= maxBootFileFieldLen {
			r.file = file
		}
		if len(file) > maxBootFileFieldLen || (rq.prl != nil && bytes.IndexByte(rq.prl, bootFileOptionCode) >= 0) {
			r.setString(bootFileOptionCode, file, false)
		}
		if kind == bootKindHTTP {
			r.setString(60, vendorHTTPClient, false)
		}
	}
	r.setString(66, boot.TFTPServerName, false)
	r.setString(17, boot.RootPath, false)
	if host != nil {
		for i := range host.Options {
			r.setBytes(host.Options[i].Code, host.Options[i].Value, false)
		}
	}
	if rq.clientID != nil {
		r.setBytes(61, rq.clientID, false)
	}
	r.relayInfo = rq.relayInfo
	payload := r.encode()
	if st.debug {
		st.log.Debug("dhcp: reply", "type", mt.String(), "mac", rq.mac.String(), "ip", u32Addr(yiaddr),
			"xid", rq.p.TransactionID.String(), "iface", m.ifname, "file", file)
	}
	return st.route(rq, mt, yiaddr, sid, payload), true
}

// route applies RFC 2131 4.1: relay first, then NAK broadcast, ciaddr unicast, broadcast
// flag, else the client's MAC at yiaddr.
func (st *state) route(rq *request, mt dhcpv4.MessageType, yiaddr, sid uint32, payload []byte) route {
	rt := route{src: sid, payload: payload}
	switch {
	case rq.giaddr != 0:
		rt.kind = routeRelay
		rt.dst = netip.AddrPortFrom(u32Addr(rq.giaddr), st.relayPort)
	case mt == dhcpv4.MessageTypeNak:
		rt.kind = routeBroadcast
		rt.dst = netip.AddrPortFrom(netip.IPv4Unspecified(), st.clientPort)
	case rq.ciaddr != 0:
		rt.kind = routeUnicast
		rt.dst = netip.AddrPortFrom(u32Addr(rq.ciaddr), st.clientPort)
	case rq.broadcast || yiaddr == 0:
		rt.kind = routeBroadcast
		rt.dst = netip.AddrPortFrom(netip.IPv4Unspecified(), st.clientPort)
	default:
		rt.kind = routeLink
		rt.dst = netip.AddrPortFrom(u32Addr(yiaddr), st.clientPort)
	}
	return rt
}
