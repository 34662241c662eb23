package dhcp

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// bootpRequest is a BOOTREQUEST as RFC 951 lays it out: 300 bytes, the vend field zero
// (no RFC 1497 cookie) unless cookie is set, and giaddr when relayed.
func bootpRequest(mac net.HardwareAddr, xid uint32, cookie bool, giaddr netip.Addr) []byte {
	b := make([]byte, bootpMinLen)
	b[0], b[1], b[2] = 1, 1, byte(len(mac))
	binary.BigEndian.PutUint32(b[4:], xid)
	if giaddr.IsValid() {
		a := giaddr.As4()
		copy(b[24:28], a[:])
		b[3] = 1 // hops
	}
	copy(b[28:], mac)
	if cookie {
		copy(b[dhcpFixedLen:], magicCookie[:])
		b[dhcpFixedLen+4] = 255
	}
	return b
}

func TestBOOTP(t *testing.T) {
	n := testNet()
	n.Boot.RootPath = "10.91.0.1:/install/netboot/rhels/ppc64/compute"
	node := Host{Name: "p01", MAC: mac1, IP: ip("10.91.0.21"), Hostname: "p01.cluster.test",
		Boot: Boot{BIOS: "/boot/grub2/grub2.ppc", TFTPServerName: "mn1"}}
	denied := Host{Name: "p03", MAC: mac3, IP: ip("10.91.0.23"), Deny: true}
	relayed := Host{Name: "r01", MAC: net.HardwareAddr{0x52, 0x54, 0x00, 0x91, 0x08, 0x01}, IP: ip("10.91.8.21")}
	hosts := hostsOf(t, node, denied, relayed)

	for _, cookie := range []bool{false, true} {
		h := newHarness(t, &Server{Networks: []Network{n, relayNet()}, Hosts: hosts})
		h.w.meta = eth0()
		rt, ok := h.st.handle(context.Background(), h.w, bootpRequest(mac1, 0x1234, cookie, netip.Addr{}))
		if !ok {
			t.Fatalf("cookie %v: no reply to a BOOTP request from a host with a reservation", cookie)
		}
		if len(rt.payload) != bootpMinLen {
			t.Errorf("cookie %v: reply is %d bytes, want BOOTP's %d", cookie, len(rt.payload), bootpMinLen)
		}
		r, err := dhcpv4.FromBytes(rt.payload)
		if err != nil {
			t.Fatalf("reply does not decode: %v", err)
		}
		if r.OpCode != dhcpv4.OpcodeBootReply || r.TransactionID != [4]byte{0, 0, 0x12, 0x34} {
			t.Errorf("op %v xid %v, want BootReply 0x00001234", r.OpCode, r.TransactionID)
		}
		if r.Options.Has(dhcpv4.OptionDHCPMessageType) || r.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || r.Options.Has(dhcpv4.OptionServerIdentifier) {
			t.Errorf("BOOTP reply carries DHCP options: %v", r.Options)
		}
		for _, c := range []struct{ what, got, want string }{
			{"yiaddr", yi(r).String(), "10.91.0.21"},
			{"siaddr", r.ServerIPAddr.String(), "10.91.0.1"},
			{"file", r.BootFileName, "/boot/grub2/grub2.ppc"},
			{"sname", r.ServerHostName, "mn1"},
			{"mask", net.IP(r.Options.Get(dhcpv4.OptionSubnetMask)).String(), "255.255.255.0"},
			{"router", net.IP(r.Options.Get(dhcpv4.OptionRouter)).String(), "10.91.0.254"},
			{"hostname", string(r.Options.Get(dhcpv4.OptionHostName)), "p01.cluster.test"},
		} {
			if c.got != c.want {
				t.Errorf("cookie %v: %s = %q, want %q", cookie, c.what, c.got, c.want)
			}
		}
		if rt.kind != routeLink || rt.dst.Addr() != ip("10.91.0.21") {
			t.Errorf("route %v to %v, want the client's MAC at 10.91.0.21", rt.kind, rt.dst)
		}
		if l := h.st.leases.byKey[hwKey(1, mac1)]; l != nil {
			t.Errorf("BOOTP recorded a lease: %+v", l)
		}
	}

	h := newHarness(t, &Server{Networks: []Network{n, relayNet()}, Hosts: hosts})
	silent := func(what string, pkt []byte, m pktMeta) {
		t.Helper()
		h.w.meta = m
		if _, ok := h.st.handle(context.Background(), h.w, pkt); ok {
			t.Errorf("%s: answered", what)
		}
	}
	silent("unknown client", bootpRequest(mac2, 1, false, netip.Addr{}), eth0())
	silent("denied host", bootpRequest(mac3, 1, false, netip.Addr{}), eth0())
	silent("reservation on another network", bootpRequest(relayed.MAC, 1, false, netip.Addr{}), eth0())

	// Relayed: the reply goes to the relay.
	h.w.meta = eth0()
	rt, ok := h.st.handle(context.Background(), h.w, bootpRequest(relayed.MAC, 2, true, ip("10.91.8.1")))
	if !ok {
		t.Fatal("no reply to a relayed BOOTP request")
	}
	if rt.kind != routeRelay || rt.dst.Addr() != ip("10.91.8.1") {
		t.Errorf("relayed BOOTP reply routed %v to %v, want the relay 10.91.8.1", rt.kind, rt.dst)
	}

	// A DHCP client holding the reserved address keeps it.
	hd := newHarness(t, &Server{Networks: []Network{n}, Hosts: hostsOf(t, node)})
	hd.st.leases.mu.Lock()
	hd.st.leases.bind(hwKey(1, mac2), addrU32(node.IP), hd.clock.now().Unix()+3600, nil, nil)
	hd.st.leases.mu.Unlock()
	hd.w.meta = eth0()
	if _, ok := hd.st.handle(context.Background(), hd.w, bootpRequest(mac1, 3, false, netip.Addr{})); ok {
		t.Error("BOOTP reply with an address another client holds")
	}

	// DenyBOOTP.
	hn := newHarness(t, &Server{Networks: []Network{n}, Hosts: hostsOf(t, node), DenyBOOTP: true})
	hn.w.meta = eth0()
	if _, ok := hn.st.handle(context.Background(), hn.w, bootpRequest(mac1, 4, false, netip.Addr{})); ok {
		t.Error("DenyBOOTP: answered")
	}
}
