package glue

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/dhcp"
)

// DHCPHosts answers the DHCP server's reservation lookups from memory: a table of the
// cluster's nodes by MAC, rebuilt when the view changes (the packet path never touches
// the store).
type DHCPHosts struct {
	Boot *Boot

	mu    sync.Mutex
	gen   *cluster.View // the view the table was built from
	table map[string]dhcp.Host
}

var _ dhcp.Hosts = (*DHCPHosts)(nil)

// LookupHost implements dhcp.Hosts.
func (h *DHCPHosts) LookupHost(_ context.Context, mac net.HardwareAddr) (dhcp.Host, error) {
	t := h.current()
	host, ok := t[string(mac)]
	if !ok {
		return dhcp.Host{}, fmt.Errorf("MAC %s: %w", mac, dhcp.ErrNotFound)
	}
	return host, nil
}

func (h *DHCPHosts) current() map[string]dhcp.Host {
	v := h.Boot.Views.Current()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen != v {
		h.table = h.build(v)
		h.gen = v
	}
	return h.table
}

// Reservations returns the reservations provd serves for the current view, by node:
// every node with a MAC and an IP, one Host per MAC (makedhcp -q shows them).
func (h *DHCPHosts) Reservations() []dhcp.Host {
	t := h.current()
	out := make([]dhcp.Host, 0, len(t))
	for _, host := range t {
		out = append(out, host)
	}
	slices.SortFunc(out, func(a, b dhcp.Host) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return bytes.Compare(a.MAC, b.MAC)
	})
	return out
}

// build makes the reservation table of view v: every node with a MAC and an IP.
func (h *DHCPHosts) build(v *cluster.View) map[string]dhcp.Host {
	t := make(map[string]dhcp.Host, len(v.Nodes()))
	for _, name := range v.Nodes() {
		macs := v.NodeAttr(name, "mac")
		if macs == "" {
			continue
		}
		ip, err := netip.ParseAddr(v.NodeAttr(name, "ip"))
		if err != nil {
			continue // a node without an address cannot have a reservation
		}
		host := dhcp.Host{Name: name, IP: ip, Boot: h.bootAnswer(v, name, ip)}
		for _, item := range strings.Split(macs, "|") {
			addr, extra, _ := strings.Cut(strings.TrimSpace(item), "!")
			hw, err := net.ParseMAC(addr)
			if err != nil {
				continue
			}
			hh := host
			hh.MAC = hw
			switch {
			case strings.EqualFold(extra, "*NOIP*"):
				// xCAT's "mac!*NOIP*": this NIC must not get an address.
				hh.Deny = true
			case extra != "":
				hh.Hostname = extra
			}
			if _, dup := t[string(hw)]; !dup {
				t[string(hw)] = hh
			}
		}
	}
	return t
}

// bootAnswer is what node name's firmware is told to load, by its noderes.netboot, with
// xCAT's file names (artifacts.md §3): xnba gets iPXE (xcat/xnba.kpxe, xcat/xnba.efi) and
// then its script over HTTP; pxe gets pxelinux.0; grub2 its GRUB image (also to BOOTP
// clients: IBM POWER firmware).
func (h *DHCPHosts) bootAnswer(v *cluster.View, name string, ip netip.Addr) dhcp.Boot {
	n := &cluster.Node{Name: name, IP: ip, TFTPServer: v.NodeAttr(name, "tftpserver"), XCATMaster: v.NodeAttr(name, "xcatmaster")}
	srv := h.Boot.ServerFor(v, n)
	b := dhcp.Boot{}
	if a, err := netip.ParseAddr(n.TFTPServer); err == nil {
		b.NextServer = a
	}
	switch v.NodeAttr(name, "netboot") {
	case "pxe":
		b.BIOS = "pxelinux.0"
	case "grub2", "grub2-tftp", "grub2-http":
		b.EFI64 = "boot/grub2/grub2-" + name
		b.ARM64 = "boot/grub2/grub2-" + name
		b.BOOTP = "boot/grub2/grub2-" + name // POWER firmware boots over BOOTP
	default: // xnba and unset: iPXE, then the node's script over HTTP
		b.BIOS = "xcat/xnba.kpxe"
		b.EFI64 = "xcat/xnba.efi"
		if srv.IsValid() {
			b.IPXE = h.Boot.BaseURL(srv) + "/tftpboot/xcat/xnba/nodes/" + name
		}
	}
	return b
}

// DHCPNetworks maps the networks table (and site) onto the DHCP server's networks.
func DHCPNetworks(v *cluster.View, addrs *LocalAddrs) ([]dhcp.Network, error) {
	lease := 43200 * time.Second
	if s := v.Site("dhcplease"); s != "" {
		var secs int
		if _, err := fmt.Sscanf(s, "%d", &secs); err != nil || secs <= 0 {
			return nil, fmt.Errorf("site.dhcplease %q is not a number of seconds", s)
		}
		lease = time.Duration(secs) * time.Second
	}
	var out []dhcp.Network
	for _, r := range v.TableRows("networks") {
		p, err := cluster.NetworkPrefix(r["net"], r["mask"])
		if err != nil {
			return nil, fmt.Errorf("network %s: %w", r["netname"], err)
		}
		n := dhcp.Network{Prefix: p, LeaseTime: lease, Domain: r["domain"]}
		if n.Domain == "" {
			n.Domain = v.Site("domain")
		}
		if ifc := r["mgtifname"]; ifc != "" && !strings.HasPrefix(ifc, "!remote!") {
			n.Interface = ifc
		}
		if a, ok := addrs.Facing(p.Addr()); ok {
			n.ServerAddr = a
		}
		master := func(s string) (netip.Addr, bool) {
			if s == "<xcatmaster>" {
				return n.ServerAddr, n.ServerAddr.IsValid()
			}
			a, err := netip.ParseAddr(s)
			return a, err == nil
		}
		list := func(col, s string) ([]netip.Addr, error) {
			var as []netip.Addr
			for _, x := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
				a, ok := master(x)
				if !ok {
					return nil, fmt.Errorf("network %s: %s %q is not an address", r["netname"], col, x)
				}
				as = append(as, a)
			}
			return as, nil
		}
		if n.Routers, err = list("gateway", r["gateway"]); err != nil {
			return nil, err
		}
		dns := r["nameservers"]
		if dns == "" {
			dns = v.Site("nameservers")
		}
		if n.DNS, err = list("nameservers", dns); err != nil {
			return nil, err
		}
		if n.NTP, err = list("ntpservers", r["ntpservers"]); err != nil {
			return nil, err
		}
		if r["tftpserver"] != "" {
			if a, ok := master(r["tftpserver"]); ok {
				n.NextServer = a
			}
		}
		if r["mtu"] != "" {
			if _, err := fmt.Sscanf(r["mtu"], "%d", &n.MTU); err != nil {
				return nil, fmt.Errorf("network %s: mtu %q is not a number", r["netname"], r["mtu"])
			}
		}
		if n.Ranges, err = dhcpRanges(r["dynamicrange"]); err != nil {
			return nil, fmt.Errorf("network %s: %w", r["netname"], err)
		}
		n.Boot = dhcp.Boot{BIOS: "xcat/xnba.kpxe", EFI64: "xcat/xnba.efi"}
		out = append(out, n)
	}
	return out, nil
}

// dhcpRanges parses networks.dynamicrange: "a.b.c.d-e.f.g.h", several joined by "," or
// ";", or a CIDR.
func dhcpRanges(s string) ([]dhcp.Range, error) {
	var out []dhcp.Range
	for _, item := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' }) {
		item = strings.TrimSpace(item)
		if p, err := netip.ParsePrefix(item); err == nil {
			first := p.Masked().Addr().Next()
			last := lastAddr(p)
			out = append(out, dhcp.Range{First: first, Last: last.Prev()})
			continue
		}
		a, b, ok := strings.Cut(item, "-")
		first, err1 := netip.ParseAddr(strings.TrimSpace(a))
		last, err2 := netip.ParseAddr(strings.TrimSpace(b))
		if !ok || err1 != nil || err2 != nil || last.Less(first) {
			return nil, fmt.Errorf("dynamicrange %q: want first-last addresses or a CIDR", item)
		}
		out = append(out, dhcp.Range{First: first, Last: last})
	}
	return out, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= (1 << host) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
