package dhcp

import (
	"context"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// bootp answers a BOOTP request (RFC 951 and 1542: no DHCP message type), as ISC dhcpd
// does by default ("allow bootp") for a host with a fixed address: only a client with a
// reservation gets a reply, with its reserved address, the boot file and server in the
// fixed fields, and the basic RFC 1497 options (mask, routers, DNS, host and domain name,
// root path). BOOTP has no leases: the address is the host's for good, so no lease is
// recorded; the reply is refused while a DHCP client holds the address. Firmware that
// still boots over BOOTP includes IBM POWER's SMS network boot, which xCAT's dhcpd.conf
// serves with "allow bootp".
func (st *state) bootp(ctx context.Context, w *slot, m *pktMeta, rq *request) (route, bool) {
	if st.denyBOOTP {
		return route{}, false
	}
	host, known, ok := st.lookup(ctx, rq)
	if !ok || !known || host.Deny || !host.IP.IsValid() {
		if ok && !known && st.debug {
			st.log.Debug("dhcp: BOOTP request from a client without a reservation", "mac", rq.mac.String(), "iface", m.ifname)
		}
		return route{}, false
	}
	ip := addrU32(host.IP)
	ns := st.reservedNet(m, rq, &host, ip)
	if ns == nil {
		return route{}, false
	}
	st.leases.mu.Lock()
	held := st.heldByOther(rq, &host, ip, st.now().Unix())
	st.leases.mu.Unlock()
	if held {
		return route{}, false
	}
	sid := st.serverID(ns, m)
	if sid == 0 {
		st.log.Warn("dhcp: no server address for network: set Network.ServerAddr", "network", ns.prefix)
		return route{}, false
	}

	r := w.rep
	st.header(r, rq)
	r.ciaddr = rq.ciaddr
	r.yiaddr = ip
	boot := host.Boot.merge(&ns.n.Boot)
	r.siaddr = siaddr(&boot, ns, sid)
	// BOOTP clients read the boot file and server name from the fixed fields only.
	file := boot.BOOTP
	if file == "" {
		file = boot.BIOS
	}
	if len(file) <= maxBootFileFieldLen {
		r.file = file
	}
	if len(boot.TFTPServerName) < 64 {
		r.sname = boot.TFTPServerName
	}
	// A BOOTP reply is RFC 951's 300 bytes: the vend field leaves 59 bytes for options
	// after the cookie and before End. They go in by importance while they fit.
	room := bootpMinLen - dhcpFixedLen - len(magicCookie) - 1
	if rq.relayInfo != nil {
		room -= 2 + len(rq.relayInfo)
	}
	add := func(code uint8, v string) {
		if v != "" && 2+len(v) <= room {
			r.setString(code, v, false)
			room -= 2 + len(v)
		}
	}
	add(1, ns.mask)
	add(3, ns.routers)
	add(12, host.hostname())
	add(17, boot.RootPath)
	add(6, ns.dns)
	add(15, ns.domain)
	for i := range host.Options {
		add(host.Options[i].Code, string(host.Options[i].Value))
	}
	r.relayInfo = rq.relayInfo
	payload := r.encode()
	if st.debug {
		st.log.Debug("dhcp: BOOTP reply", "mac", rq.mac.String(), "ip", host.IP,
			"xid", rq.p.TransactionID.String(), "iface", m.ifname, "file", file)
	}
	return st.route(rq, dhcpv4.MessageTypeNone, ip, sid, payload), true
}
