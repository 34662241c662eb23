package cluster

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/provkit/provkit/internal/natural"
)

// Node discovery, as xCAT does it: a node whose MAC is in no table boots the discovery
// image, which reports the node's identity; Discover matches the report to a node
// defined in the tables (by MAC, by the switch port it is cabled to, or as the next free
// name of a running sequential discovery), records what was found, and works out what
// the node's chain asks for next.

// A Discovered is what a node in discovery mode reports about itself.
type Discovered struct {
	// UUID identifies the report (DMI product_uuid, else one the node made up); it is
	// the key of the discoverydata table and the -u of nodediscoverdef.
	UUID string
	// BootMAC is the MAC of the interface the node booted from; IP is the address it has
	// there (from the discovery range).
	BootMAC net.HardwareAddr
	IP      netip.Addr
	// Arch is the machine ("x86_64"); CPUType the CPU model; CPUCount the number of
	// logical CPUs; MemoryMiB the RAM.
	Arch      string
	CPUType   string
	CPUCount  int
	MemoryMiB int64
	// MTM is the machine type and model (DMI product_name), Serial its serial number
	// (DMI product_serial), Vendor the DMI sys_vendor.
	MTM, Serial, Vendor string
	// Disks are the node's disks, e.g. "sda:480GB".
	Disks []string
	// NICs are the node's network interfaces.
	NICs []DiscoveredNIC
}

// A DiscoveredNIC is one interface of a discovered node, with the switch port LLDP saw
// it cabled to, if a frame arrived.
type DiscoveredNIC struct {
	Name   string
	MAC    net.HardwareAddr
	Driver string
	IPv4   netip.Prefix // its address, if configured
	// Switch is the LLDP neighbour: system name, chassis ID, management address, port ID
	// and port description.
	Switch LLDPNeighbor
}

// LLDPNeighbor is what an LLDP frame from the switch says.
type LLDPNeighbor struct {
	SysName   string
	SysDesc   string
	ChassisID string // a MAC "aa:bb:..", or whatever the switch sends
	MgmtAddr  netip.Addr
	PortID    string
	PortDesc  string
}

func (n LLDPNeighbor) empty() bool { return n.SysName == "" && n.ChassisID == "" && n.PortID == "" }

// Discovery methods, as discoverydata.method records them.
const (
	MethodMAC        = "mac"
	MethodSwitch     = "switch"
	MethodSequential = "sequential"
	MethodManual     = "manual"
	MethodUndef      = "undef"
)

// ErrNoMatch is returned (wrapped) by Discover when no node matches a report: it is
// kept in discoverydata (method undef) for nodediscoverdef.
var ErrNoMatch = errors.New("no node matches")

// A DiscoverResult says what Discover did.
type DiscoverResult struct {
	Node   string
	Method string
	// IP is the node's address (hosts.ip), which it gets from DHCP from now on.
	IP netip.Addr
	// Done are the chain steps carried out ("osimage=img"), Skipped those provkit does
	// not do, with why.
	Done, Skipped []string
	// Next is what the node does now: "reboot" (into what nodeset set), "standby" (stay
	// in the discovery image; an empty chain), or "shell".
	Next string
	// State is the boot state nodeset recorded (chain.currstate), if any.
	State string
	// BMC is what the chain's runcmd=bmcsetup asks the node to set on its BMC, over
	// in-band IPMI, before it goes on; nil when the chain has no bmcsetup.
	BMC *BMCSetup
	// RunImages are the URLs of the chain's runimage= steps, in chain order: the
	// discovery image fetches each (a tar archive, usually gzip'd), unpacks it in a
	// fresh directory and runs its runme.sh there, as xCAT's genesis does, after
	// bmcsetup and before it goes on.
	RunImages []string
}

// A BMCSetup is the configuration xCAT's bmcsetup gives a discovered node's BMC: a
// static address, the administrator account and, optionally, a VLAN. Its String and
// LogValue leave the password out.
type BMCSetup struct {
	// Addr is the BMC's address (ipmi.bmc, or the hosts.ip of the node it names) with
	// the prefix length of the networks entry that contains it.
	Addr netip.Prefix
	// Gateway is that network's gateway (networks.gateway), if it is an address in it.
	Gateway netip.Addr
	// User and Password are ipmi.username and ipmi.password, else the passwd table's
	// key=ipmi entry.
	User, Password string
	// VLAN is ipmi.taggedvlan (1 to 4094), 0 for none.
	VLAN int
}

func (b BMCSetup) String() string {
	s := fmt.Sprintf("ip %s gateway %s user %s", b.Addr, b.Gateway, b.User)
	if b.VLAN != 0 {
		s += fmt.Sprintf(" vlan %d", b.VLAN)
	}
	return s
}

// LogValue is b for slog, without the password.
func (b BMCSetup) LogValue() slog.Value { return slog.StringValue(b.String()) }

// bmcSetup works out runcmd=bmcsetup's settings for node, or why there are none.
func (v *View) bmcSetup(node string) (*BMCSetup, error) {
	bmc := v.Column(node, "ipmi", "bmc")
	if bmc == "" {
		return nil, errors.New("the node has no ipmi.bmc")
	}
	ip, err := netip.ParseAddr(bmc)
	if err != nil {
		if ip, err = netip.ParseAddr(v.NodeAttr(bmc, "ip")); err != nil {
			return nil, fmt.Errorf("ipmi.bmc %q is neither an IPv4 address nor a name with hosts.ip", bmc)
		}
	}
	if !ip.Is4() {
		return nil, fmt.Errorf("ipmi.bmc %s is not an IPv4 address", ip)
	}
	b := &BMCSetup{User: v.Column(node, "ipmi", "username"), Password: v.Column(node, "ipmi", "password")}
	if b.User == "" || b.Password == "" {
		user, pass := v.passwd("ipmi")
		b.User, b.Password = cmp.Or(b.User, user), cmp.Or(b.Password, pass)
	}
	if b.User == "" || b.Password == "" {
		return nil, errors.New("no BMC user or password: set ipmi.username and ipmi.password, or the passwd table's key=ipmi")
	}
	if len(b.User) > 16 || len(b.Password) > 20 {
		return nil, errors.New("the BMC user name is longer than 16 bytes or its password longer than 20 (IPMI's limits)")
	}
	for _, n := range v.rows["networks"] {
		p, ok := networkPrefix(n["net"], n["mask"])
		if !ok || !p.Contains(ip) || IsDisabled(n["disable"]) {
			continue
		}
		b.Addr = netip.PrefixFrom(ip, p.Bits())
		if gw, err := netip.ParseAddr(n["gateway"]); err == nil && p.Contains(gw) && gw != ip {
			b.Gateway = gw
		}
		break
	}
	if !b.Addr.IsValid() {
		return nil, fmt.Errorf("no networks entry contains the BMC's address %s (its netmask and gateway come from there)", ip)
	}
	if vl := v.Column(node, "ipmi", "taggedvlan"); vl != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(strings.ToLower(vl), "vl"))
		if err != nil || n < 1 || n > 4094 {
			return nil, fmt.Errorf("ipmi.taggedvlan %q: want a VLAN ID from 1 to 4094", vl)
		}
		b.VLAN = n
	}
	return b, nil
}

// seqKey is the site key that holds the parameters of a running sequential discovery, as
// in xCAT ("noderange=cn[1-10],hostiprange=...,groups=...").
const seqKey = "__SEQDiscover"

// SeqParams are nodediscoverstart's parameters.
type SeqParams struct {
	// Noderange is the names to give, in order ("cn[1-40]"); they need not exist yet.
	Noderange string
	// HostIPRange gives addresses to nodes without hosts.ip: "a.b.c.d-e.f.g.h" or a
	// noderange of addresses ("10.0.0.[10-50]").
	HostIPRange string
	// Groups are set on nodes that are created ("all" if empty); OSImage is appended to
	// the node's chain as osimage=<image>.
	Groups  string
	OSImage string
}

func (p SeqParams) String() string {
	var parts []string
	for _, kv := range [][2]string{{"noderange", p.Noderange}, {"hostiprange", p.HostIPRange}, {"groups", p.Groups}, {"osimage", p.OSImage}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	return strings.Join(parts, ",")
}

// parseSeqParams reads site.__SEQDiscover. Group lists hold commas, so a value runs to
// the next "key=".
func parseSeqParams(s string) SeqParams {
	var p SeqParams
	known := map[string]*string{"noderange": &p.Noderange, "hostiprange": &p.HostIPRange, "groups": &p.Groups, "osimage": &p.OSImage}
	var cur *string
	for _, part := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(part, "="); ok && known[k] != nil {
			cur = known[k]
			*cur = v
			continue
		}
		if cur != nil {
			*cur += "," + part
		}
	}
	return p
}

// SeqDiscovery returns the parameters of the running sequential discovery, and whether
// one runs.
func (v *View) SeqDiscovery() (SeqParams, bool) {
	s := v.site[seqKey]
	if s == "" {
		return SeqParams{}, false
	}
	return parseSeqParams(s), true
}

// A SeqStart is what nodediscoverstart reports.
type SeqStart struct {
	FreeNodes []string
	FreeIPs   int // -1 when no hostiprange was given
}

// ErrDiscoveryRunning is returned by StartSeqDiscovery while one runs;
// ErrDiscoveryStopped by StopSeqDiscovery when none does.
var (
	ErrDiscoveryRunning = errors.New("Sequential Discovery is running. If you want to rerun the discovery, stop the running discovery first.")
	ErrDiscoveryStopped = errors.New("Sequential Discovery is stopped.")
)

// StartSeqDiscovery starts sequential discovery (nodediscoverstart): unknown nodes get
// the free names of p.Noderange in the order they report. It clears the results of the
// previous sequential discovery from discoverydata.
func StartSeqDiscovery(ctx context.Context, s Store, p SeqParams) (SeqStart, error) {
	var out SeqStart
	if p.Noderange == "" {
		return out, errors.New("For sequential discovery, the 'noderange' option must be specified.")
	}
	if strings.Contains(p.Noderange, "=") || strings.Contains(p.HostIPRange, "=") {
		return out, fmt.Errorf("nodediscoverstart: a value may not contain '='")
	}
	err := s.Update(ctx, func(tx Tx) error {
		v, err := viewInTx(ctx, tx)
		if err != nil {
			return err
		}
		if _, running := v.SeqDiscovery(); running {
			return ErrDiscoveryRunning
		}
		free, err := v.freeNodes(p.Noderange)
		if err != nil {
			return err
		}
		out.FreeNodes = free
		out.FreeIPs = -1
		if p.HostIPRange != "" {
			ips, err := v.freeIPs(p.HostIPRange, nil)
			if err != nil {
				return err
			}
			out.FreeIPs = len(ips)
		}
		if p.OSImage != "" {
			if _, err := v.Object("osimage", p.OSImage, ObjectOptions{}); err != nil {
				return fmt.Errorf("nodediscoverstart: osimage=%s: %w", p.OSImage, err)
			}
		}
		if _, err := tx.Delete("discoverydata", Row{"method": MethodSequential}); err != nil {
			return err
		}
		return tx.Put("site", Row{"key": seqKey, "value": p.String()})
	})
	return out, err
}

// StopSeqDiscovery stops sequential discovery (nodediscoverstop) and returns what it
// discovered.
func StopSeqDiscovery(ctx context.Context, s Store) ([]Row, error) {
	var out []Row
	err := s.Update(ctx, func(tx Tx) error {
		rows, err := tx.Rows("site", Row{"key": seqKey})
		if err != nil {
			return err
		}
		if len(rows) == 0 || rows[0]["value"] == "" {
			return ErrDiscoveryStopped
		}
		if out, err = tx.Rows("discoverydata", Row{"method": MethodSequential}); err != nil {
			return err
		}
		_, err = tx.Delete("site", Row{"key": seqKey})
		return err
	})
	return out, err
}

// DiscoveryRows returns the rows of discoverydata (nodediscoverls): of one method
// ("seq" is taken for sequential, "" or "all" for every method), or the one of uuid.
func DiscoveryRows(ctx context.Context, s Store, method, uuid string) ([]Row, error) {
	match := Row{}
	switch {
	case uuid != "":
		match["uuid"] = uuid
	case method == "seq":
		match["method"] = MethodSequential
	case method != "" && method != "all":
		match["method"] = method
	}
	var out []Row
	err := s.View(ctx, func(tx Tx) error {
		var err error
		out, err = tx.Rows("discoverydata", match)
		return err
	})
	return out, err
}

// freeNodes returns the names of noderange nr that discovery may still give, in
// natural order (cn2 before cn10, unlike a noderange's ASCII order): those that are not
// nodes yet, and nodes without a MAC.
func (v *View) freeNodes(nr string) ([]string, error) {
	names, err := ExpandNoderange(nr, v, RangeOptions{Generic: true})
	if err != nil {
		return nil, fmt.Errorf("nodediscoverstart: noderange=%s: %w", nr, err)
	}
	slices.SortFunc(names, natural.Compare)
	var free []string
	for _, n := range names {
		if !v.IsNode(n) || len(parseMACs(v.NodeAttr(n, "mac"))) == 0 {
			free = append(free, n)
		}
	}
	return free, nil
}

// freeIPs returns the addresses of a hostiprange that no node has, except those of
// nodes in keep (their predefined addresses are theirs).
func (v *View) freeIPs(r string, keep map[string]bool) ([]netip.Addr, error) {
	var cands []netip.Addr
	if a, b, ok := strings.Cut(r, "-"); ok && !strings.Contains(r, "[") {
		first, err1 := netip.ParseAddr(strings.TrimSpace(a))
		last, err2 := netip.ParseAddr(strings.TrimSpace(b))
		if err1 != nil || err2 != nil || !first.Is4() || !last.Is4() || last.Less(first) {
			return nil, fmt.Errorf("hostiprange %q: want first-last IPv4 addresses or a noderange of addresses", r)
		}
		for ip := first; ; ip = ip.Next() {
			cands = append(cands, ip)
			if ip == last || len(cands) > 1<<16 {
				break
			}
		}
	} else {
		names, err := ExpandNoderange(r, nil, RangeOptions{Generic: true})
		if err != nil {
			return nil, fmt.Errorf("hostiprange %q: %w", r, err)
		}
		for _, n := range names {
			ip, err := netip.ParseAddr(n)
			if err != nil {
				return nil, fmt.Errorf("hostiprange %q: %q is not an address", r, n)
			}
			cands = append(cands, ip)
		}
		slices.SortFunc(cands, netip.Addr.Compare)
	}
	used := map[netip.Addr]bool{}
	for _, n := range v.names {
		if keep[n] {
			continue
		}
		if ip, err := netip.ParseAddr(v.NodeAttr(n, "ip")); err == nil {
			used[ip] = true
		}
	}
	return slices.DeleteFunc(cands, func(a netip.Addr) bool { return used[a] }), nil
}

// Discover matches a report to a node, records it, and runs the node's chain (see the
// package comment on discovery above). It returns ErrNoMatch (wrapped) when no node
// matches; the report is then kept in discoverydata with method undef.
func Discover(ctx context.Context, s Store, d Discovered, now time.Time) (DiscoverResult, error) {
	return discover(ctx, s, d, "", now)
}

// DefineDiscovered binds a kept report to node by hand (nodediscoverdef -u <uuid> -n
// <node>): the node is recorded and its chain run as if it had matched.
func DefineDiscovered(ctx context.Context, s Store, uuid, node string, now time.Time) (DiscoverResult, error) {
	var d Discovered
	err := s.View(ctx, func(tx Tx) error {
		rows, err := tx.Rows("discoverydata", Row{"uuid": uuid})
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return fmt.Errorf("Cannot find discovery entry with uuid equals %s: %w", uuid, ErrNotFound)
		}
		d = discoveredFromRow(rows[0])
		return nil
	})
	if err != nil {
		return DiscoverResult{}, err
	}
	return discover(ctx, s, d, node, now)
}

func validateDiscovered(d *Discovered) error {
	if d.UUID == "" || len(d.UUID) > 64 || strings.ContainsAny(d.UUID, " ,|!\t\n") {
		return fmt.Errorf("discovery: uuid %q: want 1 to 64 characters without blanks, ',', '|' or '!'", d.UUID)
	}
	if len(d.BootMAC) != 6 {
		return fmt.Errorf("discovery %s: boot MAC %q is not an Ethernet address", d.UUID, d.BootMAC)
	}
	for _, s := range []string{d.Arch, d.CPUType, d.MTM, d.Serial, d.Vendor} {
		if len(s) > 256 || strings.ContainsAny(s, "\n\x00") {
			return fmt.Errorf("discovery %s: a field is longer than 256 bytes or holds a newline", d.UUID)
		}
	}
	return nil
}

func discover(ctx context.Context, s Store, d Discovered, manual string, now time.Time) (DiscoverResult, error) {
	if err := validateDiscovered(&d); err != nil {
		return DiscoverResult{}, err
	}
	var res DiscoverResult
	err := s.Update(ctx, func(tx Tx) error {
		res = DiscoverResult{}
		v, err := viewInTx(ctx, tx)
		if err != nil {
			return err
		}
		node, method, seq, err := v.match(tx, &d, manual)
		if err != nil {
			return err
		}
		if node == "" {
			row := discoveryRow(&d, "", MethodUndef, now)
			return tx.Put("discoverydata", row)
		}
		res.Node, res.Method = node, method
		return v.record(ctx, tx, &d, node, method, seq, now, &res)
	})
	if err != nil {
		return DiscoverResult{}, err
	}
	if res.Node == "" {
		return res, fmt.Errorf("discovery %s (MAC %s): %w", d.UUID, d.BootMAC, ErrNoMatch)
	}
	return res, nil
}

// match finds the node of a report: a hand-given one, then by MAC, then by switch port,
// then the next free name of a running sequential discovery.
func (v *View) match(tx Tx, d *Discovered, manual string) (node, method string, seq *SeqParams, err error) {
	if manual != "" {
		if !v.IsNode(manual) {
			return "", "", nil, fmt.Errorf("The node [%s] should be a valid node: %w", manual, ErrNotFound)
		}
		return manual, MethodManual, nil, nil
	}
	v.buildIndexes()
	macs := []net.HardwareAddr{d.BootMAC}
	for _, n := range d.NICs {
		macs = append(macs, n.MAC)
	}
	for _, m := range macs {
		if n, ok := v.byMAC[m.String()]; ok && m != nil {
			return n, MethodMAC, nil, nil
		}
	}
	if n, err := v.matchSwitch(tx, d); err != nil || n != "" {
		return n, MethodSwitch, nil, err
	}
	if p, running := v.SeqDiscovery(); running {
		free, err := v.freeNodes(p.Noderange)
		if err != nil {
			return "", "", nil, err
		}
		if len(free) == 0 {
			return "", "", nil, nil
		}
		return free[0], MethodSequential, &p, nil
	}
	return "", "", nil, nil
}

// matchSwitch finds the node cabled to the switch port a NIC's LLDP neighbour names, from
// the switch table (node, switch, port), the switch being known by its node name, its
// address (hosts.ip) or its MAC (mac.mac, against the LLDP chassis ID).
func (v *View) matchSwitch(tx Tx, d *Discovered) (string, error) {
	var nbrs []LLDPNeighbor
	for _, n := range d.NICs {
		if !n.Switch.empty() {
			nbrs = append(nbrs, n.Switch)
		}
	}
	if len(nbrs) == 0 {
		return "", nil
	}
	rows, err := tx.Rows("switch", nil)
	if err != nil {
		return "", err
	}
	for _, nb := range nbrs {
		for _, r := range rows {
			if IsDisabled(r["disable"]) || !v.IsNode(r["node"]) {
				continue
			}
			if v.isSwitch(r["switch"], nb) && portMatches(r["port"], nb) {
				return r["node"], nil
			}
		}
	}
	return "", nil
}

func shortName(s string) string {
	s, _, _ = strings.Cut(strings.ToLower(s), ".")
	return s
}

// isSwitch reports whether the LLDP neighbour nb is the switch called sw in the tables.
func (v *View) isSwitch(sw string, nb LLDPNeighbor) bool {
	if sw == "" {
		return false
	}
	if nb.SysName != "" && (strings.EqualFold(sw, nb.SysName) || shortName(sw) == shortName(nb.SysName)) {
		return true
	}
	if nb.MgmtAddr.IsValid() {
		if ip, err := netip.ParseAddr(v.NodeAttr(sw, "ip")); err == nil && ip == nb.MgmtAddr.Unmap() {
			return true
		}
		if ip, err := netip.ParseAddr(sw); err == nil && ip == nb.MgmtAddr.Unmap() {
			return true
		}
	}
	if hw, err := net.ParseMAC(nb.ChassisID); err == nil {
		for _, m := range parseMACs(v.NodeAttr(sw, "mac")) {
			if bytes.Equal(m.Addr, hw) {
				return true
			}
		}
	}
	return false
}

// portMatches compares the switch table's port with what LLDP says: the port ID or
// description, ignoring case; a port given as a number (or numbers with "/") also
// matches a name ending in it after a non-digit ("12" matches "swp12" and
// "GigabitEthernet1/0/12", "1/0/12" matches "Gi1/0/12").
func portMatches(port string, nb LLDPNeighbor) bool {
	port = strings.TrimSpace(port)
	if port == "" {
		return false
	}
	numeric := strings.Trim(port, "0123456789/") == ""
	for _, p := range []string{nb.PortID, nb.PortDesc} {
		if p == "" {
			continue
		}
		if strings.EqualFold(p, port) {
			return true
		}
		if numeric && len(p) > len(port) && strings.HasSuffix(p, port) {
			if c := p[len(p)-len(port)-1]; !(c >= '0' && c <= '9') && c != '/' {
				return true
			}
		}
	}
	return false
}

// record writes what was found about node, and runs its chain.
func (v *View) record(ctx context.Context, tx Tx, d *Discovered, node, method string, seq *SeqParams, now time.Time, res *DiscoverResult) error {
	exists := v.IsNode(node)
	groups := ""
	switch {
	case !exists && seq != nil && seq.Groups != "":
		groups = seq.Groups
	case !exists:
		groups = "all"
	case seq != nil && seq.Groups != "":
		groups = seq.Groups
	}
	if groups != "" {
		if err := tx.Put("nodelist", Row{"node": node, "groups": groups}); err != nil {
			return err
		}
		// Read again: the node's groups may give it an address (a regex hosts.ip).
		nv, err := viewInTx(ctx, tx)
		if err != nil {
			return err
		}
		v = nv
	}
	// The node's address: its own (or its groups'), else the next free one of the
	// hostiprange.
	ip, err := netip.ParseAddr(v.NodeAttr(node, "ip"))
	if err != nil {
		if seq == nil || seq.HostIPRange == "" {
			return fmt.Errorf("discovery: node %s has no address: set hosts.ip (for it or its group) or give hostiprange= to nodediscoverstart", node)
		}
		ips, err := v.freeIPs(seq.HostIPRange, nil)
		if err != nil {
			return err
		}
		if len(ips) == 0 {
			return fmt.Errorf("discovery: no free host ips in hostiprange %s for node %s", seq.HostIPRange, node)
		}
		ip = ips[0]
		if err := tx.Put("hosts", Row{"node": node, "ip": ip.String()}); err != nil {
			return err
		}
	}
	res.IP = ip

	// Another node that had this MAC (a replaced board) loses it.
	v.buildIndexes()
	if other, ok := v.byMAC[d.BootMAC.String()]; ok && other != node {
		var keep []string
		for _, m := range parseMACs(v.NodeAttr(other, "mac")) {
			if !bytes.Equal(m.Addr, d.BootMAC) {
				keep = append(keep, m.Addr.String())
			}
		}
		if err := tx.Put("mac", Row{"node": other, "mac": strings.Join(keep, "|")}); err != nil {
			return err
		}
	}
	macRow := Row{"node": node, "mac": d.BootMAC.String()}
	for _, n := range d.NICs {
		if bytes.Equal(n.MAC, d.BootMAC) && n.Name != "" {
			macRow["interface"] = n.Name
		}
	}
	if err := tx.Put("mac", macRow); err != nil {
		return err
	}
	vpd := Row{"node": node}
	for k, val := range map[string]string{"serial": d.Serial, "mtm": d.MTM, "uuid": d.UUID} {
		if val != "" {
			vpd[k] = val
		}
	}
	if err := tx.Put("vpd", vpd); err != nil {
		return err
	}
	hw := Row{"node": node}
	if d.CPUType != "" {
		hw["cputype"] = d.CPUType
	}
	if d.CPUCount > 0 {
		hw["cpucount"] = strconv.Itoa(d.CPUCount)
	}
	if d.MemoryMiB > 0 {
		hw["memory"] = strconv.FormatInt(d.MemoryMiB, 10) + "MB"
	}
	if len(d.Disks) > 0 {
		hw["disksize"] = strings.Join(d.Disks, ",")
	}
	if err := tx.Put("hwinv", hw); err != nil {
		return err
	}
	if d.Arch != "" && v.NodeAttr(node, "arch") == "" {
		if err := tx.Put("nodetype", Row{"node": node, "arch": d.Arch}); err != nil {
			return err
		}
	}
	// Remember the switch ports, so that the node is found by them next time.
	if method != MethodSwitch {
		for _, n := range d.NICs {
			if n.Switch.SysName == "" || n.Switch.PortID == "" {
				continue
			}
			if err := tx.Put("switch", Row{"node": node, "switch": n.Switch.SysName, "port": n.Switch.PortID, "interface": n.Name}); err != nil {
				return err
			}
		}
	}
	if err := tx.Put("discoverydata", discoveryRow(d, node, method, now)); err != nil {
		return err
	}
	if _, err := tx.Set("nodelist", Row{"node": node}, Row{"status": "discovered", "statustime": now.Format("01-02-2006 15:04:05")}); err != nil {
		return err
	}
	return v.runChain(ctx, tx, node, seq, res)
}

// runChain carries out chain.chain for a discovered node, as xCAT's genesis does: the
// steps go to chain.currchain and are taken in order; osimage=<image> (or netboot,
// statelite, install: the node's provmethod) runs nodeset and reboots the node into it,
// boot/reboot reboots it to boot from its disk, shell and standby keep it in the
// discovery image. runcmd=bmcsetup puts the node's BMC settings (BMCSetup) in the
// result, for the discovery image to set over in-band IPMI before it goes on; it is
// skipped with the reason when the tables do not give them. runimage=<URL> puts the URL
// in RunImages, for the discovery image to fetch and run. Other runcmd= steps name
// scripts of xCAT's genesis image and are skipped with a reason. An empty chain leaves
// the node in standby, as in xCAT.
func (v *View) runChain(ctx context.Context, tx Tx, node string, seq *SeqParams, res *DiscoverResult) error {
	chain := splitList(v.NodeAttr(node, "chain"))
	if seq != nil && seq.OSImage != "" {
		chain = slices.DeleteFunc(chain, func(s string) bool { return strings.HasPrefix(s, "osimage=") })
		chain = append(chain, "osimage="+seq.OSImage)
	}
	res.Next = "standby"
	rest := chain
	for len(rest) > 0 && res.Next == "standby" {
		step := rest[0]
		rest = rest[1:]
		verb, arg, _ := strings.Cut(step, "=")
		switch verb {
		case "runimage":
			if err := checkRunImage(arg); err != nil {
				res.Skipped = append(res.Skipped, step+": "+err.Error())
				continue
			}
			res.RunImages = append(res.RunImages, arg)
			res.Done = append(res.Done, step)
		case "runcmd":
			if step != "runcmd=bmcsetup" {
				res.Skipped = append(res.Skipped, step+": provkit's discovery image runs no genesis command but bmcsetup (use runimage=<URL>)")
				continue
			}
			b, err := v.bmcSetup(node)
			if err != nil {
				res.Skipped = append(res.Skipped, step+": "+err.Error())
				continue
			}
			res.BMC = b
			res.Done = append(res.Done, step)
		case "shell":
			res.Done = append(res.Done, step)
			res.Next = "shell"
		case "standby":
			res.Done = append(res.Done, step)
			rest = nil
		case "boot", "reboot":
			if err := v.nodesetInTx(ctx, tx, node, NodesetRequest{State: "boot"}, res); err != nil {
				return err
			}
			res.Done = append(res.Done, step)
			res.Next = "reboot"
		case "osimage", "netboot", "statelite", "install":
			req := NodesetRequest{State: verb}
			if verb == "osimage" {
				req = NodesetRequest{OSImage: arg}
				if arg == "" {
					req.OSImage = "-"
				}
			}
			if err := v.nodesetInTx(ctx, tx, node, req, res); err != nil {
				return err
			}
			res.Done = append(res.Done, step)
			res.Next = "reboot"
		default:
			return fmt.Errorf("discovery: node %s: chain step %q: want runcmd=, runimage=, osimage=<image>, netboot, statelite, install, boot, reboot, shell or standby", node, step)
		}
	}
	return tx.Put("chain", Row{"node": node, "currchain": strings.Join(rest, ",")})
}

// checkRunImage checks the URL of a runimage= step: an http or https URL with a host.
func checkRunImage(arg string) error {
	u, err := url.Parse(arg)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http:// or https:// URL", arg)
	}
	return nil
}

// nodesetInTx runs Nodeset for one node inside tx, on a view that sees what discovery
// has just written.
func (v *View) nodesetInTx(ctx context.Context, tx Tx, node string, req NodesetRequest, res *DiscoverResult) error {
	nv, err := viewInTx(ctx, tx)
	if err != nil {
		return err
	}
	state, img, err := nv.nodesetState(node, req)
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	if err := tx.Put("chain", Row{"node": node, "currstate": state}); err != nil {
		return err
	}
	if img != "" && req.OSImage != "" && req.OSImage != "-" {
		if err := tx.Put("nodetype", Row{"node": node, "provmethod": img}); err != nil {
			return err
		}
	}
	res.State = state
	return nil
}

// discoveryRow is the discoverydata row of a report, in xCAT's formats: per-NIC
// columns as "eth0!value,eth1!value".
func discoveryRow(d *Discovered, node, method string, now time.Time) Row {
	r := Row{"uuid": d.UUID, "method": method, "discoverytime": now.Format("01-02-2006 15:04:05")}
	if node != "" {
		r["node"] = node
	}
	set := func(k, val string) {
		if val != "" {
			r[k] = val
		}
	}
	set("arch", d.Arch)
	if d.CPUCount > 0 {
		r["cpucount"] = strconv.Itoa(d.CPUCount)
	}
	set("cputype", d.CPUType)
	if d.MemoryMiB > 0 {
		r["memory"] = strconv.FormatInt(d.MemoryMiB, 10) + "MB"
	}
	set("mtm", d.MTM)
	set("serial", d.Serial)
	per := func(get func(n DiscoveredNIC) string) string {
		var parts []string
		for _, n := range d.NICs {
			if val := get(n); val != "" {
				parts = append(parts, n.Name+"!"+strings.ReplaceAll(val, ",", " "))
			}
		}
		return strings.Join(parts, ",")
	}
	set("nicdriver", per(func(n DiscoveredNIC) string { return n.Driver }))
	set("nicipv4", per(func(n DiscoveredNIC) string {
		if n.IPv4.IsValid() {
			return n.IPv4.String()
		}
		return ""
	}))
	set("nichwaddr", per(func(n DiscoveredNIC) string { return n.MAC.String() }))
	set("switchname", per(func(n DiscoveredNIC) string { return n.Switch.SysName }))
	set("switchaddr", per(func(n DiscoveredNIC) string {
		if n.Switch.MgmtAddr.IsValid() {
			return n.Switch.MgmtAddr.String()
		}
		return ""
	}))
	set("switchdesc", per(func(n DiscoveredNIC) string { return n.Switch.SysDesc }))
	set("switchport", per(func(n DiscoveredNIC) string { return n.Switch.PortID }))
	var other []string
	if d.BootMAC != nil {
		other = append(other, "bootmac="+d.BootMAC.String())
	}
	if d.IP.IsValid() {
		other = append(other, "ip="+d.IP.String())
	}
	if d.Vendor != "" {
		other = append(other, "vendor="+strings.ReplaceAll(d.Vendor, ",", " "))
	}
	if len(d.Disks) > 0 {
		other = append(other, "disks="+strings.Join(d.Disks, " "))
	}
	set("otherdata", strings.Join(other, ","))
	return r
}

// discoveredFromRow reads a report back from its discoverydata row (nodediscoverdef).
func discoveredFromRow(r Row) Discovered {
	d := Discovered{UUID: r["uuid"], Arch: r["arch"], CPUType: r["cputype"], MTM: r["mtm"], Serial: r["serial"]}
	d.CPUCount, _ = strconv.Atoi(r["cpucount"])
	d.MemoryMiB, _ = strconv.ParseInt(strings.TrimSuffix(r["memory"], "MB"), 10, 64)
	for _, kv := range strings.Split(r["otherdata"], ",") {
		k, val, _ := strings.Cut(kv, "=")
		switch k {
		case "bootmac":
			d.BootMAC, _ = net.ParseMAC(val)
		case "ip":
			d.IP, _ = netip.ParseAddr(val)
		case "vendor":
			d.Vendor = val
		case "disks":
			d.Disks = strings.Fields(val)
		}
	}
	nics := map[string]*DiscoveredNIC{}
	var order []string
	per := func(col string, put func(n *DiscoveredNIC, val string)) {
		for _, item := range splitList(r[col]) {
			name, val, ok := strings.Cut(item, "!")
			if !ok {
				continue
			}
			n := nics[name]
			if n == nil {
				n = &DiscoveredNIC{Name: name}
				nics[name] = n
				order = append(order, name)
			}
			put(n, val)
		}
	}
	per("nichwaddr", func(n *DiscoveredNIC, val string) { n.MAC, _ = net.ParseMAC(val) })
	per("nicdriver", func(n *DiscoveredNIC, val string) { n.Driver = val })
	per("nicipv4", func(n *DiscoveredNIC, val string) { n.IPv4, _ = netip.ParsePrefix(val) })
	per("switchname", func(n *DiscoveredNIC, val string) { n.Switch.SysName = val })
	per("switchaddr", func(n *DiscoveredNIC, val string) { n.Switch.MgmtAddr, _ = netip.ParseAddr(val) })
	per("switchdesc", func(n *DiscoveredNIC, val string) { n.Switch.SysDesc = val })
	per("switchport", func(n *DiscoveredNIC, val string) { n.Switch.PortID = val })
	for _, name := range order {
		d.NICs = append(d.NICs, *nics[name])
	}
	if d.BootMAC == nil && len(d.NICs) > 0 {
		d.BootMAC = d.NICs[0].MAC
	}
	return d
}
