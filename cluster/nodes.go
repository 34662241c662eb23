package cluster

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// A Node is the typed, resolved view of one node that the service glue (provd's DHCP,
// TFTP, NFS and BMC adapters) reads: every field is the attribute after group inheritance
// and regex evaluation. Attrs holds all set attributes by their lsdef names.
type Node struct {
	Name      string
	Groups    []string
	IP        netip.Addr // hosts.ip; invalid when unset or not an address
	MACs      []MAC      // mac.mac, in order; the first is the install NIC
	Interface string     // mac.interface
	Hostnames []string   // hosts.hostnames

	OS, Arch, Profile string
	// ProvMethod is nodetype.provmethod: install, netboot, statelite, sysclone or the
	// name of an osimage. OSImage is that name when it is one (else "").
	ProvMethod, OSImage string
	Netboot             string // noderes.netboot: pxe, xnba, grub2, ...

	TFTPServer, XCATMaster, NFSServer string
	InstallNIC, PrimaryNIC            string

	Mgt   string // nodehm.mgt (ipmi, openbmc, redfish ...)
	Power string // nodehm.power, falling back to Mgt
	// BMC is the BMC's address as host or host:port; BMCUser and BMCPassword fall back to
	// the passwd table (key=ipmi or key=openbmc) when the node has none.
	BMC, BMCPort, BMCUser, BMCPassword string

	SerialPort, SerialSpeed, SerialFlow   string
	Kernel, Initrd, Kcmdline, AddKcmdline string

	CurrState          string // chain.currstate, as nodeset wrote it
	Status, StatusTime string // nodelist.status and statustime

	Attrs map[string]string
}

// A MAC is one of a node's MAC addresses; Host is the extra DHCP host name given with
// the "mac!name" form, if any.
type MAC struct {
	Addr net.HardwareAddr
	Host string
}

// parseMACs splits mac.mac ("aa:bb:..!name|cc:dd:..") into addresses. Items that are not
// MAC addresses are skipped.
func parseMACs(s string) []MAC {
	var out []MAC
	for _, item := range strings.Split(s, "|") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		addr, host, _ := strings.Cut(item, "!")
		hw, err := net.ParseMAC(strings.TrimSpace(addr))
		if err != nil {
			continue
		}
		out = append(out, MAC{Addr: hw, Host: host})
	}
	return out
}

// Node returns the resolved view of node name, or an error wrapping ErrNotFound.
func (v *View) Node(name string) (*Node, error) {
	if !v.IsNode(name) {
		return nil, fmt.Errorf("node %q: %w", name, ErrNotFound)
	}
	a := v.NodeAttrs(name)
	n := &Node{
		Name:        name,
		Groups:      slices.Clone(v.NodeGroups(name)),
		MACs:        parseMACs(a["mac"]),
		Interface:   a["interface"],
		OS:          a["os"],
		Arch:        a["arch"],
		Profile:     a["profile"],
		ProvMethod:  a["provmethod"],
		Netboot:     a["netboot"],
		TFTPServer:  a["tftpserver"],
		XCATMaster:  a["xcatmaster"],
		NFSServer:   a["nfsserver"],
		InstallNIC:  a["installnic"],
		PrimaryNIC:  a["primarynic"],
		Mgt:         a["mgt"],
		Power:       a["power"],
		BMC:         a["bmc"],
		BMCPort:     a["bmcport"],
		BMCUser:     a["bmcusername"],
		BMCPassword: a["bmcpassword"],
		SerialPort:  a["serialport"],
		SerialSpeed: a["serialspeed"],
		SerialFlow:  a["serialflow"],
		Kernel:      a["kernel"],
		Initrd:      a["initrd"],
		Kcmdline:    a["kcmdline"],
		AddKcmdline: a["addkcmdline"],
		CurrState:   a["currstate"],
		Status:      a["status"],
		StatusTime:  a["statustime"],
		Attrs:       a,
	}
	if ip, err := netip.ParseAddr(a["ip"]); err == nil {
		n.IP = ip
	}
	n.Hostnames = strings.FieldsFunc(a["hostnames"], func(r rune) bool { return r == ',' || r == ' ' })
	if n.Power == "" {
		n.Power = n.Mgt
	}
	switch n.ProvMethod {
	case "", "install", "netboot", "statelite", "sysclone":
	default:
		n.OSImage = n.ProvMethod
	}
	if n.BMCUser == "" || n.BMCPassword == "" {
		user, pass := v.passwd(n.Mgt)
		if n.BMCUser == "" {
			n.BMCUser = user
		}
		if n.BMCPassword == "" {
			n.BMCPassword = pass
		}
	}
	return n, nil
}

// passwd returns the default credentials of the passwd table for key (e.g. "ipmi").
func (v *View) passwd(key string) (user, pass string) {
	if key == "" {
		return "", ""
	}
	for _, r := range v.rows["passwd"] {
		if r["key"] == key {
			return r["username"], r["password"]
		}
	}
	return "", ""
}

// Password returns the passwd table's credentials for key and, when user is not empty,
// that user (e.g. Password("system", "root")).
func (v *View) Password(key, user string) (string, string, bool) {
	for _, r := range v.rows["passwd"] {
		if r["key"] == key && (user == "" || r["username"] == user) {
			return r["username"], r["password"], true
		}
	}
	return "", "", false
}

func (v *View) buildIndexes() {
	v.indexOnce.Do(func() {
		v.byMAC = make(map[string]string, len(v.names))
		v.byIP = make(map[string]string, len(v.names))
		for _, n := range v.names {
			for _, m := range parseMACs(v.NodeAttr(n, "mac")) {
				if _, dup := v.byMAC[m.Addr.String()]; !dup {
					v.byMAC[m.Addr.String()] = n
				}
			}
			if ip, err := netip.ParseAddr(v.NodeAttr(n, "ip")); err == nil {
				if _, dup := v.byIP[ip.String()]; !dup {
					v.byIP[ip.String()] = n
				}
			}
		}
	})
}

// NodeByMAC returns the node that has mac among its MAC addresses.
func (v *View) NodeByMAC(mac net.HardwareAddr) (*Node, error) {
	v.buildIndexes()
	name, ok := v.byMAC[mac.String()]
	if !ok {
		return nil, fmt.Errorf("no node with MAC %s: %w", mac, ErrNotFound)
	}
	return v.Node(name)
}

// NodeByIP returns the node whose hosts.ip is ip.
func (v *View) NodeByIP(ip netip.Addr) (*Node, error) {
	v.buildIndexes()
	name, ok := v.byIP[ip.Unmap().String()]
	if !ok {
		return nil, fmt.Errorf("no node with IP %s: %w", ip, ErrNotFound)
	}
	return v.Node(name)
}
