package dhcp

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ISCConfig is what `makedhcp -n` writes for sites that keep ISC dhcpd: xCAT's dhcpd.conf,
// byte for byte, from plain structs. examples/provctl fills it from the site, networks and
// passwd tables.
type ISCConfig struct {
	// Networks are written as subnet blocks, grouped in one "shared-network <Interface>"
	// block per interface, interfaces in the order they first appear. Each network needs an
	// Interface (networks.mgtifname; for a "!remote!<nic>" network, the local nic) and a
	// ServerAddr or NextServer (the management node's address facing it).
	Networks []Network

	// Domains are the domains of all networks and site.domain: option domain-search lists
	// the network's own domain, then these (without repeating it).
	Domains []string

	// Timezone is site.timezone, written as `option tcode` when set.
	Timezone string

	// OMAPIKeyName and OMAPIAlgorithm name the OMAPI key; if empty, "xcat_key" and
	// "hmac-md5". OMAPISecret is passwd.password for key=omapi.
	OMAPIKeyName, OMAPIAlgorithm, OMAPISecret string

	// HTTPPort is site.httpport. 0 and 80 put no port in http URLs.
	HTTPPort int

	// Hosts are written as static host blocks after the networks (the fallback xCAT uses
	// where OMAPI is not available).
	Hosts []ISCHost
}

// ISCHost is one static host block.
type ISCHost struct {
	// Node is the node name; Name the host name of this MAC ("aka"), Node if empty.
	Node, Name string
	MAC        net.HardwareAddr
	IP         netip.Addr
	// NextServer, when set, adds `next-server <ip>;` (noderes.tftpserver).
	NextServer netip.Addr
	// Statements is the boot rule, e.g. from ISCXNBAStatements.
	Statements string
	// Deny writes `deny booting;` instead of an address (a MAC marked *NOIP*).
	Deny bool
}

// ISCXNBAStatements returns xCAT's host statement for netboot=xnba: iPXE (user class xNBA)
// gets the node's script over HTTP from server (an address, with ":port" if not 80).
func ISCXNBAStatements(server, node string) string {
	return `if option user-class-identifier = "xNBA" and option client-architecture = 00:00 { always-broadcast on; filename = "http://` +
		server + `/tftpboot/xcat/xnba/nodes/` + node + `"; } else if option user-class-identifier = "xNBA" and (option client-architecture = 00:09 or option client-architecture = 00:07) { filename = "http://` +
		server + `/tftpboot/xcat/xnba/nodes/` + node + `.uefi"; } else if option client-architecture = 00:07 { filename = "xcat/xnba.efi"; } else if option client-architecture = 00:00 { filename = "xcat/xnba.kpxe"; } else { filename = ""; }`
}

// ISCPXEStatements returns xCAT's host statement for netboot=pxe.
func ISCPXEStatements() string {
	return `if option vendor-class-identifier = "ScaleMP" { filename = "vsmp/pxelinux.0"; } else { filename = "pxelinux.0"; }`
}

// ISCGRUB2Statements returns xCAT's host statement for netboot=grub2.
func ISCGRUB2Statements(node string) string {
	return `filename = "/boot/grub2/grub2-` + node + `";`
}

// ISCPetitbootStatements returns xCAT's host statement for netboot=petitboot.
func ISCPetitbootStatements(server, node string) string {
	return `option conf-file "http://` + server + `/tftpboot/petitboot/` + node + `";`
}

// ISCYabootStatements returns xCAT's host statement for netboot=yaboot.
func ISCYabootStatements(node string) string {
	return `filename = "/yb/node/yaboot-` + node + `";`
}

const iscHeader = `#xCAT generated dhcp configuration

option conf-file code 209 = text;
option space isan;
option isan-encap-opts code 43 = encapsulate isan;
option isan.iqn code 203 = string;
option isan.root-path code 201 = string;
option space gpxe;
option gpxe-encap-opts code 175 = encapsulate gpxe;
option gpxe.bus-id code 177 = string;
option user-class-identifier code 77 = string;
option gpxe.no-pxedhcp code 176 = unsigned integer 8;
option tcode code 101 = text;
option iscsi-initiator-iqn code 203 = string;
ddns-update-style interim;
ignore client-updates;
option client-architecture code 93 = unsigned integer 16;
`

const iscAfterTimezone = `option gpxe.no-pxedhcp 1;
option www-server code 114 = string;
option cumulus-provision-url code 239 = text;

omapi-port 7911;
`

// The inner lines of class "pxe" are indented by 3 spaces, the max-lease line by 4: as
// xCAT writes it.
const iscPXEClass = `class "pxe" {
   match if substring (option vendor-class-identifier, 0, 9) = "PXEClient";
   ddns-updates off;
    max-lease-time 600;
}
`

// RenderISC writes c as xCAT's dhcpd.conf. It checks every network first and writes
// nothing when one is wrong.
func RenderISC(w io.Writer, c ISCConfig) error {
	type group struct {
		iface string
		nets  []*Network
	}
	var groups []*group
	byIface := map[string]*group{}
	for i := range c.Networks {
		n := &c.Networks[i]
		if err := n.Validate(); err != nil {
			return err
		}
		if n.Interface == "" {
			return fmt.Errorf("dhcp: network %s: no interface: an ISC shared-network block needs one", n.Prefix)
		}
		if strings.ContainsAny(n.Interface, " \t\n{};\"") {
			return fmt.Errorf("dhcp: network %s: interface name %q is not valid in dhcpd.conf", n.Prefix, n.Interface)
		}
		if !n.NextServer.IsValid() && !n.ServerAddr.IsValid() {
			return fmt.Errorf("dhcp: network %s: neither NextServer nor ServerAddr is set: next-server unknown", n.Prefix)
		}
		if strings.ContainsAny(n.Domain, "\"\n\\") {
			return fmt.Errorf("dhcp: network %s: domain %q is not valid", n.Prefix, n.Domain)
		}
		g := byIface[n.Interface]
		if g == nil {
			g = &group{iface: n.Interface}
			byIface[n.Interface] = g
			groups = append(groups, g)
		}
		g.nets = append(g.nets, n)
	}
	for _, d := range c.Domains {
		if strings.ContainsAny(d, "\"\n\\") {
			return fmt.Errorf("dhcp: domain %q is not valid", d)
		}
	}
	for _, h := range c.Hosts {
		if err := h.validate(); err != nil {
			return err
		}
	}
	for _, s := range []struct{ what, v string }{{"timezone", c.Timezone}, {"OMAPI secret", c.OMAPISecret},
		{"OMAPI key name", c.OMAPIKeyName}, {"OMAPI algorithm", c.OMAPIAlgorithm}} {
		if strings.ContainsAny(s.v, "\"\n\\") {
			return fmt.Errorf("dhcp: %s %q is not valid in dhcpd.conf", s.what, s.v)
		}
	}
	keyName := c.OMAPIKeyName
	if keyName == "" {
		keyName = "xcat_key"
	}
	alg := c.OMAPIAlgorithm
	if alg == "" {
		alg = "hmac-md5"
	}
	port := ""
	if c.HTTPPort != 0 && c.HTTPPort != 80 {
		port = ":" + strconv.Itoa(c.HTTPPort)
	}

	b := bufio.NewWriter(w)
	b.WriteString(iscHeader)
	if c.Timezone != "" {
		fmt.Fprintf(b, "option tcode \"%s\";\n", c.Timezone)
	}
	b.WriteString(iscAfterTimezone)
	fmt.Fprintf(b, "key %s {\n  algorithm %s;\n  secret \"%s\";\n};\nomapi-key %s;\n", keyName, alg, c.OMAPISecret, keyName)
	b.WriteString(iscPXEClass)
	for _, g := range groups {
		fmt.Fprintf(b, "shared-network %s {\n", g.iface)
		for _, n := range g.nets {
			writeISCSubnet(b, n, c.Domains, port)
		}
		fmt.Fprintf(b, "} # %s nic_end\n", g.iface)
	}
	for _, h := range c.Hosts {
		writeISCHost(b, &h)
	}
	return b.Flush()
}

func writeISCSubnet(b *bufio.Writer, n *Network, domains []string, port string) {
	netAddr := n.Prefix.Addr().String()
	mask := net.IP(net.CIDRMask(n.Prefix.Bits(), 32)).String()
	self := n.ServerAddr
	tftp := n.NextServer
	if !tftp.IsValid() {
		tftp = self
	}
	srv := tftp.String() + port
	lease := strconv.FormatInt(int64(n.leaseTime().Seconds()), 10)
	netID := netAddr + "_" + strconv.Itoa(n.Prefix.Bits())

	fmt.Fprintf(b, "  subnet %s netmask %s {\n", netAddr, mask)
	b.WriteString("    authoritative;\n")
	fmt.Fprintf(b, "    max-lease-time %s;\n    min-lease-time %s;\n    default-lease-time %s;\n", lease, lease, lease)
	// Two spaces after routers, next-server and domain-name-servers: xCAT's output.
	if len(n.Routers) > 0 {
		fmt.Fprintf(b, "    option routers  %s;\n", iscList(n.Routers, self))
	}
	fmt.Fprintf(b, "    next-server  %s;\n", tftp)
	if logs := orSelf(n.LogServers, self); len(logs) > 0 {
		fmt.Fprintf(b, "    option log-servers %s;\n", iscList(logs, self))
	}
	if ntp := orSelf(n.NTP, self); len(ntp) > 0 {
		fmt.Fprintf(b, "    option ntp-servers %s;\n", iscList(ntp, self))
	}
	if len(n.DNS) > 0 {
		fmt.Fprintf(b, "    option domain-name \"%s\";\n", n.Domain)
		fmt.Fprintf(b, "    option domain-name-servers  %s;\n", iscList(n.DNS, self))
	}
	if n.MTU > 0 {
		fmt.Fprintf(b, "    option interface-mtu %d;\n", n.MTU)
	}
	if n.Domain != "" {
		s := `"` + n.Domain + `"`
		for _, d := range domains {
			if d != n.Domain {
				s += `, "` + d + `"`
			}
		}
		fmt.Fprintf(b, "    option domain-search  %s;\n", s)
	}
	fmt.Fprintf(b, "    option cumulus-provision-url \"http://%s/install/postscripts/cumulusztp\";\n", srv)
	// The boot chain. Lines ending "\n " carry one space into the next line, as xCAT's do.
	fmt.Fprintf(b, "    if option user-class-identifier = \"xNBA\" and option client-architecture = 00:00 { #x86, xCAT Network Boot Agent\n")
	b.WriteString("        always-broadcast on;\n")
	fmt.Fprintf(b, "        filename = \"http://%s/tftpboot/xcat/xnba/nets/%s\";\n", srv, netID)
	fmt.Fprintf(b, "    } else if option user-class-identifier = \"xNBA\" and option client-architecture = 00:09 { #x86, xCAT Network Boot Agent\n")
	fmt.Fprintf(b, "        filename = \"http://%s/tftpboot/xcat/xnba/nets/%s.uefi\";\n", srv, netID)
	fmt.Fprintf(b, "    } else if option user-class-identifier = \"xNBA\" and option client-architecture = 00:07 { #x86-64 UEFI, xCAT Network Boot Agent\n")
	fmt.Fprintf(b, "        filename = \"http://%s/tftpboot/xcat/xnba/nets/%s.uefi\";\n", srv, netID)
	b.WriteString("    } else if option client-architecture = 00:00  { #x86\n")
	b.WriteString("        filename \"xcat/xnba.kpxe\";\n")
	b.WriteString("    } else if option vendor-class-identifier = \"Etherboot-5.4\"  { #x86\n")
	b.WriteString("        filename \"xcat/xnba.kpxe\";\n")
	b.WriteString("    } else if option client-architecture = 00:07 { #x86_64 uefi\n ")
	b.WriteString("        filename \"xcat/xnba.efi\";\n")
	b.WriteString("    } else if option client-architecture = 00:09 { #x86_64 uefi alternative id\n ")
	b.WriteString("        filename \"xcat/xnba.efi\";\n")
	b.WriteString("    } else if option client-architecture = 00:02 { #ia64\n ")
	b.WriteString("        filename \"elilo.efi\";\n")
	b.WriteString("    } else if option client-architecture = 00:0b { #aaarch64\n ")
	b.WriteString("      filename \"boot/grub2/grub2.aarch64\";\n")
	b.WriteString("    } else if option client-architecture = 00:0e { #OPAL-v3\n ")
	fmt.Fprintf(b, "        option conf-file = \"http://%s/tftpboot/pxelinux.cfg/p/%s\";\n", srv, netID)
	b.WriteString("    } else if substring (option vendor-class-identifier,0,11) = \"onie_vendor\" { #for onie on cumulus switch\n")
	fmt.Fprintf(b, "        option www-server = \"http://%s/install/onie/onie-installer\";\n", srv)
	b.WriteString("    } else if substring(filename,0,1) = null { #otherwise, provide yaboot if the client isn't specific\n ")
	b.WriteString("        filename \"/yaboot\";\n")
	b.WriteString("    }\n")
	for _, r := range n.Ranges {
		fmt.Fprintf(b, "    range dynamic-bootp %s %s;\n", r.First, r.Last)
	}
	fmt.Fprintf(b, "  } # %s/%s subnet_end\n", netAddr, mask)
}

// orSelf returns l, or the server's own address when l is empty.
func orSelf(l []netip.Addr, self netip.Addr) []netip.Addr {
	if len(l) == 0 && self.IsValid() {
		return []netip.Addr{self}
	}
	return l
}

// iscList joins addresses with ", ", this server's own address first (xCAT's
// putmyselffirst).
func iscList(l []netip.Addr, self netip.Addr) string {
	var first, rest []string
	for _, a := range l {
		if a == self {
			first = append(first, a.String())
		} else {
			rest = append(rest, a.String())
		}
	}
	return strings.Join(append(first, rest...), ", ")
}

func (h *ISCHost) validate() error {
	if h.Node == "" || strings.ContainsAny(h.Node+h.Name, " \t\n{};\"\\") {
		return fmt.Errorf("dhcp: ISC host %q: want a node name without spaces, quotes or braces", h.Node)
	}
	if len(h.MAC) == 0 {
		return fmt.Errorf("dhcp: ISC host %s: no hardware address", h.Node)
	}
	if len(h.MAC) != 6 && len(h.MAC) != 20 {
		return fmt.Errorf("dhcp: ISC host %s: hardware address %s has an invalid length", h.Node, h.MAC)
	}
	if !h.Deny && !h.IP.Is4() {
		return fmt.Errorf("dhcp: ISC host %s: address %v is not IPv4", h.Node, h.IP)
	}
	if strings.Contains(h.Statements, "\n") {
		return fmt.Errorf("dhcp: ISC host %s: statements span lines", h.Node)
	}
	return nil
}

func writeISCHost(b *bufio.Writer, h *ISCHost) {
	name := h.Name
	if name == "" {
		name = h.Node
	}
	fmt.Fprintf(b, "#xCAT host declaration for %s aka host %s start\n", h.Node, name)
	fmt.Fprintf(b, "host %s {\n", name)
	fmt.Fprintf(b, "    hardware ethernet %s;\n", h.MAC)
	if h.Deny {
		b.WriteString("    deny booting;\n")
	} else {
		fmt.Fprintf(b, "    fixed-address %s;\n", h.IP)
		parts := []string{fmt.Sprintf("ddns-hostname \"%s\";", h.Node), fmt.Sprintf("option host-name \"%s\";", h.Node)}
		if h.NextServer.IsValid() {
			parts = append(parts, "next-server "+h.NextServer.String()+";")
		}
		if h.Statements != "" {
			parts = append(parts, h.Statements)
		}
		fmt.Fprintf(b, "    %s\n", strings.Join(parts, " "))
	}
	fmt.Fprintf(b, "} #xCAT host declaration for %s aka host %s end\n", h.Node, name)
}
