//go:build !linux

package tftp

import (
	"net"
	"net/netip"
)

type nsDialer struct{}

func newNSDialer(net.PacketConn) (*nsDialer, error) { return &nsDialer{}, nil }

func (d *nsDialer) dial(local netip.Addr, client netip.AddrPort) (net.Conn, error) {
	var laddr *net.UDPAddr
	if local.IsValid() && !local.IsUnspecified() {
		laddr = &net.UDPAddr{IP: local.AsSlice(), Zone: local.Zone()}
	}
	return net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(client))
}

func (d *nsDialer) close() {}
