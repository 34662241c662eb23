package dhcp_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/provkit/provkit/dhcp"
)

// A server with one reservation, on a loopback socket, and a client that boots as iPXE.
func ExampleServer() {
	hosts := &dhcp.HostTable{}
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	if err := hosts.Put(dhcp.Host{Name: "node01", MAC: mac, IP: netip.MustParseAddr("10.0.0.11"),
		Boot: dhcp.Boot{IPXE: "http://10.0.0.1/boot/node01.ipxe"}}); err != nil {
		panic(err)
	}
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &dhcp.Server{
		Networks: []dhcp.Network{{
			Prefix:     netip.MustParsePrefix("10.0.0.0/24"),
			ServerAddr: netip.MustParseAddr("10.0.0.1"),
			Boot:       dhcp.Boot{BIOS: "undionly.kpxe"},
		}},
		Hosts:       hosts,
		DenyUnknown: true,
		Conn:        conn, // loopback: replies go back to the sender
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx) }()

	cconn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	client, err := nclient4.NewWithConn(cconn, mac, nclient4.WithServerAddr(conn.LocalAddr().(*net.UDPAddr)),
		nclient4.WithTimeout(time.Second))
	if err != nil {
		panic(err)
	}
	lease, err := client.Request(ctx, dhcpv4.WithOption(dhcpv4.OptClientArch(0)),
		dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE")))
	if err != nil {
		panic(err)
	}
	client.Close()
	fmt.Println(lease.ACK.YourIPAddr, lease.ACK.HostName(), lease.ACK.BootFileName)
	cancel()
	fmt.Println(<-done)
	// Output:
	// 10.0.0.11 node01 http://10.0.0.1/boot/node01.ipxe
	// <nil>
}

// RenderISC writes xCAT's dhcpd.conf; here, the subnet and range lines of one network.
func ExampleRenderISC() {
	var b bytes.Buffer
	err := dhcp.RenderISC(&b, dhcp.ISCConfig{
		Networks: []dhcp.Network{{
			Prefix:     netip.MustParsePrefix("10.0.0.0/24"),
			Interface:  "eth0",
			ServerAddr: netip.MustParseAddr("10.0.0.1"),
			Routers:    []netip.Addr{netip.MustParseAddr("10.0.0.254")},
			Ranges:     []dhcp.Range{{First: netip.MustParseAddr("10.0.0.200"), Last: netip.MustParseAddr("10.0.0.250")}},
		}},
		OMAPISecret: "secret",
	})
	if err != nil {
		panic(err)
	}
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.Contains(l, "subnet") || strings.Contains(l, "range") || strings.Contains(l, "routers") ||
			strings.Contains(l, "nic_end") || strings.HasPrefix(l, "shared-network") {
			fmt.Println(l)
		}
	}
	// Output:
	// shared-network eth0 {
	//   subnet 10.0.0.0 netmask 255.255.255.0 {
	//     option routers  10.0.0.254;
	//     range dynamic-bootp 10.0.0.200 10.0.0.250;
	//   } # 10.0.0.0/255.255.255.0 subnet_end
	// } # eth0 nic_end
}

// HostTable is an in-memory Hosts: what `makedhcp <noderange>`, `-d` and `-q` edit.
func ExampleHostTable() {
	var t dhcp.HostTable
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, 0x01}
	_ = t.Put(dhcp.Host{Name: "node01", MAC: mac, IP: netip.MustParseAddr("10.0.0.11")})
	h, err := t.LookupHost(context.Background(), mac)
	fmt.Println(h.Name, h.IP, err)
	t.Delete(mac)
	_, err = t.LookupHost(context.Background(), mac)
	fmt.Println(err)
	// Output:
	// node01 10.0.0.11 <nil>
	// dhcp: host not found
}
