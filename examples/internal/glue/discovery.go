package glue

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/dhcp"
	"github.com/provkit/provkit/tftp"
)

// DiscoveryReport is the JSON a node in discovery mode posts to provd
// (nodeinit's provkit.discover=<url>; examples/nodeinit/doc.go has the contract).
type DiscoveryReport struct {
	UUID      string         `json:"uuid"`
	BootMAC   string         `json:"bootmac"`
	Arch      string         `json:"arch,omitempty"`
	CPUType   string         `json:"cputype,omitempty"`
	CPUCount  int            `json:"cpucount,omitempty"`
	MemoryMiB int64          `json:"memory_mib,omitempty"`
	MTM       string         `json:"mtm,omitempty"`
	Serial    string         `json:"serial,omitempty"`
	Vendor    string         `json:"vendor,omitempty"`
	Disks     []string       `json:"disks,omitempty"`
	NICs      []DiscoveryNIC `json:"nics,omitempty"`
}

// DiscoveryNIC is one interface of a DiscoveryReport.
type DiscoveryNIC struct {
	Name   string         `json:"name"`
	MAC    string         `json:"mac"`
	Driver string         `json:"driver,omitempty"`
	IPv4   string         `json:"ipv4,omitempty"` // "10.0.0.5/24"
	LLDP   *DiscoveryLLDP `json:"lldp,omitempty"`
}

// DiscoveryLLDP is the switch port an LLDP frame named.
type DiscoveryLLDP struct {
	SysName   string `json:"sysname,omitempty"`
	SysDesc   string `json:"sysdesc,omitempty"`
	ChassisID string `json:"chassisid,omitempty"`
	MgmtAddr  string `json:"mgmtaddr,omitempty"`
	PortID    string `json:"portid,omitempty"`
	PortDesc  string `json:"portdesc,omitempty"`
}

// DiscoveryAnswer is provd's JSON answer to a report.
type DiscoveryAnswer struct {
	Node string `json:"node,omitempty"`
	IP   string `json:"ip,omitempty"`
	// Action is what the node does: "reboot" (into what discovery set up), "shell",
	// "wait" (ask again after Retry seconds: not matched yet, or the chain says
	// standby).
	Action  string `json:"action"`
	Retry   int    `json:"retry,omitempty"`
	Message string `json:"message,omitempty"`
	// BMC is what the chain's runcmd=bmcsetup sets on the node's BMC, over in-band
	// IPMI, before the node acts; the node posts what it did (DiscoveryBMCResult) to
	// <discovery URL>/bmcsetup. The password travels in this answer, in plain HTTP on
	// the provisioning network, as in xCAT.
	BMC *DiscoveryBMC `json:"bmc,omitempty"`
	// RunImages are the chain's runimage= URLs, in order: the node fetches each archive,
	// unpacks it and runs its runme.sh (after bmcsetup), then acts.
	RunImages []string `json:"runimages,omitempty"`
}

// DiscoveryBMC is runcmd=bmcsetup's settings (cluster.BMCSetup) in a DiscoveryAnswer.
type DiscoveryBMC struct {
	Addr     string `json:"addr"` // "10.98.1.7/16"
	Gateway  string `json:"gateway,omitempty"`
	User     string `json:"user"`
	Password string `json:"password"`
	VLAN     int    `json:"vlan,omitempty"`
}

// NewDiscoveryBMC is the answer's form of b.
func NewDiscoveryBMC(b *cluster.BMCSetup) *DiscoveryBMC {
	d := &DiscoveryBMC{Addr: b.Addr.String(), User: b.User, Password: b.Password, VLAN: b.VLAN}
	if b.Gateway.IsValid() {
		d.Gateway = b.Gateway.String()
	}
	return d
}

// DiscoveryBMCResult is what a node posts after runcmd=bmcsetup: whether its BMC took the
// settings, the steps done (never the password) or the error.
type DiscoveryBMCResult struct {
	UUID    string   `json:"uuid"`
	Node    string   `json:"node"`
	OK      bool     `json:"ok"`
	Channel int      `json:"channel,omitempty"`
	UserID  int      `json:"userid,omitempty"`
	Steps   []string `json:"steps,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// maxReportNICs bounds the interfaces of a report.
const maxReportNICs = 64

// Discovered checks a report and turns it into the cluster's form; from is the address
// the report came from (the node's address in the discovery range).
func (r *DiscoveryReport) Discovered(from netip.Addr) (cluster.Discovered, error) {
	d := cluster.Discovered{UUID: r.UUID, IP: from, Arch: r.Arch, CPUType: r.CPUType, CPUCount: r.CPUCount,
		MemoryMiB: r.MemoryMiB, MTM: r.MTM, Serial: r.Serial, Vendor: r.Vendor}
	mac, err := net.ParseMAC(r.BootMAC)
	if err != nil || len(mac) != 6 {
		return d, fmt.Errorf("bootmac %q is not an Ethernet MAC address", r.BootMAC)
	}
	d.BootMAC = mac
	if len(r.NICs) > maxReportNICs || len(r.Disks) > 256 {
		return d, fmt.Errorf("more than %d interfaces or 256 disks", maxReportNICs)
	}
	if r.CPUCount < 0 || r.MemoryMiB < 0 {
		return d, errors.New("negative cpucount or memory")
	}
	for _, s := range r.Disks {
		if len(s) > 64 || strings.ContainsAny(s, ", \n") {
			return d, fmt.Errorf("disk %q: want name:size without blanks or commas", s)
		}
	}
	d.Disks = r.Disks
	for _, n := range r.NICs {
		if n.Name == "" || len(n.Name) > 15 || strings.ContainsAny(n.Name, "!,| /") {
			return d, fmt.Errorf("interface name %q", n.Name)
		}
		nic := cluster.DiscoveredNIC{Name: n.Name, Driver: n.Driver}
		if nic.MAC, err = net.ParseMAC(n.MAC); err != nil {
			return d, fmt.Errorf("interface %s: MAC %q: %w", n.Name, n.MAC, err)
		}
		if n.IPv4 != "" {
			if nic.IPv4, err = netip.ParsePrefix(n.IPv4); err != nil {
				return d, fmt.Errorf("interface %s: ipv4 %q: %w", n.Name, n.IPv4, err)
			}
		}
		if l := n.LLDP; l != nil {
			for _, s := range []string{l.SysName, l.SysDesc, l.ChassisID, l.PortID, l.PortDesc} {
				if len(s) > 255 || strings.ContainsAny(s, "\n\x00") {
					return d, fmt.Errorf("interface %s: LLDP field longer than 255 bytes or with a newline", n.Name)
				}
			}
			nic.Switch = cluster.LLDPNeighbor{SysName: l.SysName, SysDesc: l.SysDesc, ChassisID: l.ChassisID, PortID: l.PortID, PortDesc: l.PortDesc}
			if l.MgmtAddr != "" {
				if nic.Switch.MgmtAddr, err = netip.ParseAddr(l.MgmtAddr); err != nil {
					return d, fmt.Errorf("interface %s: LLDP management address %q: %w", n.Name, l.MgmtAddr, err)
				}
			}
		}
		d.NICs = append(d.NICs, nic)
	}
	return d, nil
}

// DiscoveryURL is where nodes post their reports, on provd at srv.
func (g *Boot) DiscoveryURL(srv netip.Addr) string { return g.BaseURL(srv) + "/api/v1/discover" }

// netScriptPrefix is where the per-network boot script of unknown nodes lives, xCAT's
// name for it: xcat/xnba/nets/<net>_<bits>.
const netScriptPrefix = "xcat/xnba/nets/"

// DiscoveryBoot points the unknown clients of each network that has a dynamic range at
// the network's iPXE script (xcat/xnba/nets/<net>_<bits>), which DiscoveryFiles serves:
// they boot the discovery image. The firmware's own PXE gets iPXE first, as known nodes
// do.
func (g *Boot) DiscoveryBoot(v *cluster.View, nets []dhcp.Network) {
	for i := range nets {
		n := &nets[i]
		if len(n.Ranges) == 0 {
			continue
		}
		srv := n.ServerAddr
		if !srv.IsValid() {
			srv, _ = netip.ParseAddr(v.Site("master"))
		}
		if !srv.IsValid() {
			continue
		}
		n.Boot.IPXE = g.BaseURL(srv) + "/tftpboot/" + netScriptPrefix + fmt.Sprintf("%s_%d", n.Prefix.Masked().Addr(), n.Prefix.Bits())
	}
}

// DiscoveryFiles serves the per-network boot scripts (xcat/xnba/nets/<net>_<bits> and
// .uefi): an unknown node gets the discovery image (genesis.kernel.<arch> and
// genesis.fs.<arch>.gz in <tftpdir>/xcat, which provctl mknb builds) with
// provkit.discover=<provd>/api/v1/discover; a known node that asks (its firmware is iPXE
// and its netboot is not xnba) is sent on to its own script.
func (g *Boot) DiscoveryFiles() tftp.Files {
	return tftp.FilesFunc(func(_ context.Context, client netip.Addr, name string) (tftp.File, error) {
		rest, ok := strings.CutPrefix(name, netScriptPrefix)
		if !ok {
			return nil, fs.ErrNotExist
		}
		rest = strings.TrimSuffix(rest, ".uefi")
		a, bits, ok := strings.Cut(rest, "_")
		addr, err := netip.ParseAddr(a)
		nb, err2 := strconv.Atoi(bits)
		if !ok || err != nil || err2 != nil {
			return nil, fs.ErrNotExist
		}
		p, err := addr.Prefix(nb)
		if err != nil || p.Addr() != addr {
			return nil, fs.ErrNotExist
		}
		v := g.Views.Current()
		srv, ok := g.Addrs.Facing(addr)
		if !ok {
			srv, _ = netip.ParseAddr(v.Site("master"))
		}
		var script string
		if n, err := v.NodeByIP(client); err == nil && client.IsValid() {
			script = fmt.Sprintf("#!ipxe\n#known node %s\nchain %s/tftpboot/xcat/xnba/nodes/%s\n", n.Name, g.BaseURL(srv), n.Name)
		} else {
			script = g.DiscoveryScript(v, srv)
		}
		return tftp.NewFile(name, time.Now(), []byte(script)), nil
	})
}

// DiscoveryScript is the iPXE script that boots the discovery image from provd at srv.
// site.discoverykcmdline, if set, is added to the kernel command line.
func (g *Boot) DiscoveryScript(v *cluster.View, srv netip.Addr) string {
	base := g.BaseURL(srv)
	args := []string{"provkit.discover=" + g.DiscoveryURL(srv), "BOOTIF=01-${netX/mac:hexhyp}", "console=tty0", "console=ttyS0,115200", "panic=30"}
	if extra := v.Site("discoverykcmdline"); extra != "" {
		args = append(args, extra)
	}
	return "#!ipxe\n#discovery\n" +
		"kernel " + base + "/tftpboot/xcat/genesis.kernel.x86_64 " + strings.Join(args, " ") + "\n" +
		"initrd " + base + "/tftpboot/xcat/genesis.fs.x86_64.gz\n" +
		"boot\n"
}

// DiscoveryImageReady reports whether the discovery image is in tftpdir.
func DiscoveryImageReady(tftpdir string) error {
	for _, f := range []string{"genesis.kernel.x86_64", "genesis.fs.x86_64.gz"} {
		if _, err := os.Stat(path.Join(tftpdir, "xcat", f)); err != nil {
			return fmt.Errorf("no discovery image (run provctl mknb): %w", err)
		}
	}
	return nil
}
