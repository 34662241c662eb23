//go:build integration

package dhcp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

	"github.com/provkit/provkit/internal/testenv"
)

// TestNetnsBOOTP sends RFC 951 BOOTP requests from a client namespace with no address, as
// a BOOTP ROM does (from 0.0.0.0:68 to 255.255.255.255:67), to a server on a packet
// socket, and reads the replies off the client's link: one to the client's MAC at its
// reserved address (no broadcast flag), one broadcast (flag set).
func TestNetnsBOOTP(t *testing.T) {
	testenv.Require(t, testenv.Root(), testenv.Program("ip"))
	noLeaks(t)
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x91, 0x0e, 0x01}
	srvNS, cliNS := pair(t, "10.91.14.1/24", "", mac)
	s := &Server{
		Networks: []Network{{
			Prefix: netip.MustParsePrefix("10.91.14.0/24"), Interface: "srv0",
			Routers: []netip.Addr{ip("10.91.14.254")},
		}},
		Hosts: hostsOf(t, Host{Name: "p01", MAC: mac, IP: ip("10.91.14.11"),
			Boot: Boot{BOOTP: "boot/grub2/grub2-p01"}}),
		DenyUnknown: true,
	}
	serveIn(t, srvNS, s)

	var sendFD, capFD int
	if err := cliNS.Do(func() error {
		ifi, err := net.InterfaceByName("cli0")
		if err != nil {
			return err
		}
		if capFD, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(unix.ETH_P_IP))); err != nil {
			return err
		}
		if err := unix.Bind(capFD, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index}); err != nil {
			return err
		}
		if sendFD, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0); err != nil {
			return err
		}
		for _, o := range []struct{ level, opt int }{{unix.SOL_SOCKET, unix.SO_BROADCAST}, {unix.SOL_SOCKET, unix.SO_REUSEADDR}} {
			if err := unix.SetsockoptInt(sendFD, o.level, o.opt, 1); err != nil {
				return err
			}
		}
		if err := unix.BindToDevice(sendFD, "cli0"); err != nil {
			return err
		}
		return unix.Bind(sendFD, &unix.SockaddrInet4{Port: 68})
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(capFD)
	defer unix.Close(sendFD)
	_ = unix.SetsockoptTimeval(capFD, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000})

	for _, broadcast := range []bool{false, true} {
		xid := uint32(0x0e01)
		if broadcast {
			xid++
		}
		req := bootpRequest(mac, xid, false, netip.Addr{})
		if broadcast {
			req[10] = 0x80
		}
		var got *dhcpv4.DHCPv4
		var dst net.IP
		buf := make([]byte, 2048)
		for try := 0; try < 10 && got == nil; try++ {
			if err := unix.Sendto(sendFD, req, 0, &unix.SockaddrInet4{Port: 67, Addr: [4]byte{255, 255, 255, 255}}); err != nil {
				t.Fatalf("send BOOTREQUEST: %v", err)
			}
			deadline := time.Now().Add(time.Second)
			for got == nil && time.Now().Before(deadline) {
				n, _, err := unix.Recvfrom(capFD, buf, 0)
				if err != nil {
					continue
				}
				pkt := buf[:n]
				if n < 28+dhcpFixedLen || pkt[9] != 17 || binary.BigEndian.Uint16(pkt[22:]) != 68 {
					continue
				}
				p, err := dhcpv4.FromBytes(pkt[28:])
				if err != nil || p.OpCode != dhcpv4.OpcodeBootReply || binary.BigEndian.Uint32(p.TransactionID[:]) != xid {
					continue
				}
				got, dst = p, net.IP(pkt[16:20])
			}
		}
		if got == nil {
			t.Fatalf("broadcast flag %v: no BOOTREPLY on the client's link", broadcast)
		}
		wantDst := "10.91.14.11"
		if broadcast {
			wantDst = "255.255.255.255"
		}
		for _, c := range []struct{ what, got, want string }{
			{"IP destination", dst.String(), wantDst},
			{"yiaddr", got.YourIPAddr.String(), "10.91.14.11"},
			{"siaddr", got.ServerIPAddr.String(), "10.91.14.1"},
			{"file", got.BootFileName, "boot/grub2/grub2-p01"},
			{"router", net.IP(got.Options.Get(dhcpv4.OptionRouter)).String(), "10.91.14.254"},
		} {
			if c.got != c.want {
				t.Errorf("broadcast flag %v: %s = %s, want %s", broadcast, c.what, c.got, c.want)
			}
		}
		if got.Options.Has(dhcpv4.OptionDHCPMessageType) {
			t.Errorf("BOOTREPLY carries a DHCP message type")
		}
	}
}
