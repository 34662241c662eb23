package dhcp

import (
	"fmt"
	"net/netip"
	"time"
)

// A Network is one IPv4 subnet the server answers on, as xCAT's networks table describes it
// (net/mask, mgtifname, dynamicrange, gateway, nameservers, domain, tftpserver, ntpservers,
// mtu). It is a plain struct: examples/provd fills it from the cluster store.
type Network struct {
	// Prefix is the subnet, e.g. 10.0.0.0/16. Required; must be IPv4.
	Prefix netip.Prefix

	// Interface is the name of the local interface that faces the subnet (networks.mgtifname).
	// Requests that arrive on that interface are answered from this network. If empty, the
	// network serves requests arriving on any interface that has an address inside Prefix,
	// and requests relayed from an agent inside Prefix.
	Interface string

	// Ranges are the dynamic ranges handed to clients without a reservation
	// (networks.dynamicrange). If empty, only reserved hosts get an address here.
	Ranges []Range

	// ServerAddr is this server's own address facing the network ("my IP facing" the subnet
	// in xCAT; for a network behind a relay, the address the relay sends to): the server
	// identifier, and the default next-server, NTP and log server of the ISC rendering. If
	// zero, the address the request arrived at is used.
	ServerAddr netip.Addr

	// Routers is option 3 (networks.gateway). Each must be inside Prefix.
	Routers []netip.Addr
	// DNS is option 6 (networks.nameservers).
	DNS []netip.Addr
	// Domain is option 15 (networks.domain, else site.domain).
	Domain string
	// DomainSearch is option 119, in order.
	DomainSearch []string
	// NTP is option 42 (networks.ntpservers).
	NTP []netip.Addr
	// LogServers is option 7 (networks.logservers).
	LogServers []netip.Addr
	// MTU is option 26 (networks.mtu). If zero, not sent.
	MTU int

	// NextServer is the TFTP server put in siaddr (networks.tftpserver). If zero, the
	// server's own address (ServerAddr, or the address the request arrived at).
	NextServer netip.Addr

	// LeaseTime is the lease length given to clients (site.dhcplease). If zero, 12 hours
	// (43200 s, xCAT's default).
	LeaseTime time.Duration

	// Boot is the network-wide boot answer; a host's Boot overrides it field by field.
	Boot Boot

	// Options are extra options sent to every client of the network (when requested, see
	// Server); a host's Options with the same code win.
	Options []Option
}

// A Range is an inclusive range of IPv4 addresses, First <= Last.
type Range struct {
	First, Last netip.Addr
}

// Contains reports whether a lies in r.
func (r Range) Contains(a netip.Addr) bool {
	return a.Is4() && r.First.Compare(a) <= 0 && a.Compare(r.Last) <= 0
}

// Size returns the number of addresses in r.
func (r Range) Size() int {
	if !r.First.Is4() || !r.Last.Is4() || r.Last.Less(r.First) {
		return 0
	}
	return int(addrU32(r.Last)-addrU32(r.First)) + 1
}

// String returns "first-last", the notation of xCAT's dynamicrange column.
func (r Range) String() string { return r.First.String() + "-" + r.Last.String() }

// DefaultLeaseTime is the lease length of a Network whose LeaseTime is zero.
const DefaultLeaseTime = 43200 * time.Second

func (n *Network) leaseTime() time.Duration {
	if n.LeaseTime > 0 {
		return n.LeaseTime
	}
	return DefaultLeaseTime
}

// Validate checks the network and returns an error that names the network and the field at
// fault. Serve validates every network before it opens a socket.
func (n *Network) Validate() error {
	name := n.Prefix.String()
	if !n.Prefix.IsValid() || !n.Prefix.Addr().Is4() {
		return fmt.Errorf("dhcp: network %q: prefix must be an IPv4 prefix such as 10.0.0.0/16", name)
	}
	if n.Prefix.Bits() > 30 {
		return fmt.Errorf("dhcp: network %s: prefix /%d leaves no room for hosts, want at most /30", name, n.Prefix.Bits())
	}
	if n.Prefix.Masked() != n.Prefix {
		return fmt.Errorf("dhcp: network %s: host bits set, want %s", name, n.Prefix.Masked())
	}
	for _, r := range n.Ranges {
		if !r.First.Is4() || !r.Last.Is4() || r.Last.Less(r.First) {
			return fmt.Errorf("dhcp: network %s: range %s: want two IPv4 addresses, first <= last", name, r)
		}
		if !n.Prefix.Contains(r.First) || !n.Prefix.Contains(r.Last) {
			return fmt.Errorf("dhcp: network %s: range %s lies outside the network", name, r)
		}
	}
	if n.ServerAddr.IsValid() && !n.ServerAddr.Is4() {
		return fmt.Errorf("dhcp: network %s: server address %s is not an IPv4 address", name, n.ServerAddr)
	}
	for _, r := range n.Routers {
		if !r.Is4() || !n.Prefix.Contains(r) {
			return fmt.Errorf("dhcp: network %s: router %s is not in the network, must be on the same network", name, r)
		}
	}
	for _, l := range []struct {
		what  string
		addrs []netip.Addr
	}{{"DNS server", n.DNS}, {"NTP server", n.NTP}, {"log server", n.LogServers}} {
		for _, a := range l.addrs {
			if !a.Is4() {
				return fmt.Errorf("dhcp: network %s: %s %s is not an IPv4 address", name, l.what, a)
			}
		}
	}
	if n.NextServer.IsValid() && !n.NextServer.Is4() {
		return fmt.Errorf("dhcp: network %s: next-server %s is not an IPv4 address", name, n.NextServer)
	}
	if n.MTU != 0 && (n.MTU < 68 || n.MTU > 65535) {
		return fmt.Errorf("dhcp: network %s: MTU %d out of range 68..65535", name, n.MTU)
	}
	if n.LeaseTime < 0 {
		return fmt.Errorf("dhcp: network %s: negative lease time %s", name, n.LeaseTime)
	}
	if err := n.Boot.validate("network " + name); err != nil {
		return err
	}
	return checkOptions("network "+name, n.Options)
}

func addrU32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func u32Addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
