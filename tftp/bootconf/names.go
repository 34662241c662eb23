package bootconf

import (
	"fmt"
	"net"
	"net/netip"
	"path"
	"strings"
)

// A Query names a node in one of three ways; exactly one field is set.
type Query struct {
	Name string           // the node's name
	MAC  net.HardwareAddr // an Ethernet MAC (pxelinux "01-" and GRUB2 "grub.cfg-01-" names)
	IP   netip.Addr       // an IPv4 address (the 8-hex-digit names)
}

func (q Query) String() string {
	switch {
	case q.MAC != nil:
		return "mac " + q.MAC.String()
	case q.IP.IsValid():
		return "ip " + q.IP.String()
	}
	return "node " + q.Name
}

// A Request is what a requested file name asks for: a format for a node.
type Request struct {
	Format Format
	Query  Query
}

// Directories of the generated names, relative to the TFTP root.
const (
	PXELinuxDir = "pxelinux.cfg"
	XNBADir     = "xcat/xnba/nodes"
	GRUB2Dir    = "boot/grub2"
)

// ParseName tells which node and format a boot loader asks for with name, a clean path
// relative to the TFTP root (as tftp.CleanName returns). It reports false for names that
// are not per-node configs: pxelinux's "default", UUID and partial-hex fallbacks, GRUB2's
// shortened hex names, and everything else. Recognised:
//
//	pxelinux.cfg/01-aa-bb-cc-dd-ee-ff    PXELinux by MAC (ARP type 1, any case)
//	pxelinux.cfg/0A5B0001                PXELinux by IP (8 hex digits)
//	pxelinux.cfg/<node>                  PXELinux by name
//	xcat/xnba/nodes/<node>               XNBA by name
//	xcat/xnba/nodes/<node>.uefi          XNBAUEFI by name
//	boot/grub2/<node>                    GRUB2 by name
//	<any dir>/grub.cfg-01-aa-bb-..       GRUB2 by MAC (also at the root)
//	<any dir>/grub.cfg-0A5B0001          GRUB2 by IP
//
// A name of 8 upper-case hex digits is always read as an IP address; node names of
// upper-case hex digits only cannot be asked for by name.
func ParseName(name string) (Request, bool) {
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if rest, ok := strings.CutPrefix(base, "grub.cfg-"); ok {
		if q, ok := parseMACOrHex(rest); ok {
			return Request{GRUB2, q}, true
		}
		return Request{}, false
	}
	switch dir {
	case PXELinuxDir:
		if q, ok := parseMACOrHex(base); ok {
			return Request{PXELinux, q}, true
		}
		if isUpperHex(base) || base == "default" {
			return Request{}, false
		}
		if validNodeName(base) {
			return Request{PXELinux, Query{Name: base}}, true
		}
	case XNBADir:
		f := XNBA
		if n, ok := strings.CutSuffix(base, ".uefi"); ok {
			f, base = XNBAUEFI, n
		}
		if validNodeName(base) && !strings.HasSuffix(base, ".elilo") && !strings.HasSuffix(base, ".pxelinux") {
			return Request{f, Query{Name: base}}, true
		}
	case GRUB2Dir:
		if validNodeName(base) && !strings.HasPrefix(base, "grub2") && base != "grub.cfg" {
			return Request{GRUB2, Query{Name: base}}, true
		}
	}
	return Request{}, false
}

// parseMACOrHex parses "01-aa-bb-cc-dd-ee-ff" or an 8-hex-digit IPv4 address.
func parseMACOrHex(s string) (Query, bool) {
	if rest, ok := strings.CutPrefix(s, "01-"); ok && len(rest) == 17 {
		mac, err := net.ParseMAC(rest)
		if err == nil && len(mac) == 6 && strings.Count(rest, "-") == 5 {
			return Query{MAC: mac}, true
		}
		return Query{}, false
	}
	if len(s) == 8 && isUpperHex(s) {
		var a [4]byte
		for i := range a {
			a[i] = unhex(s[2*i])<<4 | unhex(s[2*i+1])
		}
		return Query{IP: netip.AddrFrom4(a)}, true
	}
	return Query{}, false
}

func isUpperHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

// validNodeName accepts the names xCAT allows for nodes: letters, digits, '-', '_' and
// '.', starting with a letter or digit, at most 253 bytes.
func validNodeName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case (c == '-' || c == '_' || c == '.') && i > 0:
		default:
			return false
		}
	}
	return true
}

// HexIP is the 8-digit upper-case hex form of an IPv4 address ("0A5B0001"), or "" for
// anything else.
func HexIP(ip netip.Addr) string {
	ip = ip.Unmap()
	if !ip.Is4() {
		return ""
	}
	a := ip.As4()
	return fmt.Sprintf("%02X%02X%02X%02X", a[0], a[1], a[2], a[3])
}

// MACName is the "01-aa-bb-cc-dd-ee-ff" form of an Ethernet MAC, or "" for anything else.
func MACName(mac net.HardwareAddr) string {
	if len(mac) != 6 {
		return ""
	}
	return "01-" + strings.ReplaceAll(mac.String(), ":", "-")
}

// Names lists the paths under which node's config of format f is served (the files xCAT
// would write, symbolic links included): by name, and by MAC and IP where the format has
// such names and the node has them.
func Names(f Format, n Node) []string {
	var names []string
	add := func(s string) { names = append(names, s) }
	switch f {
	case PXELinux:
		add(PXELinuxDir + "/" + n.Name)
		if m := MACName(n.MAC); m != "" {
			add(PXELinuxDir + "/" + m)
		}
		if h := HexIP(n.IP); h != "" {
			add(PXELinuxDir + "/" + h)
		}
	case XNBA:
		add(XNBADir + "/" + n.Name)
	case XNBAUEFI:
		add(XNBADir + "/" + n.Name + ".uefi")
	case GRUB2:
		add(GRUB2Dir + "/" + n.Name)
		if m := MACName(n.MAC); m != "" {
			add(GRUB2Dir + "/grub.cfg-" + m)
		}
		if h := HexIP(n.IP); h != "" {
			add(GRUB2Dir + "/grub.cfg-" + h)
		}
	}
	return names
}
