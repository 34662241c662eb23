package cluster

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// HostsOptions are makehosts' flags.
type HostsOptions struct {
	LongFirst   bool // -l (or site.FQDNfirst): <ip> <long> <short> <others>
	OthersFirst bool // -o: <ip> <others> <long> <short>
	Alias       bool // -a: add <name>.<domain> for hostnames without a dot
}

// A HostLine is one /etc/hosts line that makehosts writes.
type HostLine struct {
	IP    string
	Short string
	Long  string
	Other []string
	Node  string // the node the line belongs to
	order int    // 0 = short long others, 1 = long short others, 2 = others long short
}

// String renders the line exactly as xCAT does: fields joined by single spaces, and the
// other names always appended after a space, so a line without them ends in a space
// (scripts that diff /etc/hosts depend on it).
func (h HostLine) String() string {
	others := strings.Join(h.Other, " ")
	switch h.order {
	case 1:
		return h.IP + " " + h.Long + " " + h.Short + " " + others
	case 2:
		return h.IP + " " + others + " " + h.Long + " " + h.Short
	}
	return h.IP + " " + h.Short + " " + h.Long + " " + others
}

// domainFor returns the DNS domain of ip: the domain of the network that contains it,
// else site.domain.
func (v *View) domainFor(ip netip.Addr) string {
	for _, n := range v.rows["networks"] {
		p, ok := networkPrefix(n["net"], n["mask"])
		if ok && p.Contains(ip) && n["domain"] != "" {
			return n["domain"]
		}
	}
	return v.site["domain"]
}

// NetworkPrefix turns a networks row's net and mask (a dotted mask or a bit count) into a
// prefix, or an error naming the bad value.
func NetworkPrefix(net, mask string) (netip.Prefix, error) {
	p, ok := networkPrefix(net, mask)
	if !ok {
		return netip.Prefix{}, fmt.Errorf("net %q mask %q is not an IPv4 network", net, mask)
	}
	return p, nil
}

func networkPrefix(net, mask string) (netip.Prefix, bool) {
	a, err := netip.ParseAddr(net)
	if err != nil {
		return netip.Prefix{}, false
	}
	bits := -1
	if m, err := netip.ParseAddr(mask); err == nil && m.Is4() {
		b := m.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		bits = 0
		for v&(1<<31) != 0 {
			bits++
			v <<= 1
		}
		if v != 0 {
			return netip.Prefix{}, false // not a contiguous mask
		}
	} else if _, err := fmt.Sscanf(strings.TrimPrefix(mask, "/"), "%d", &bits); err != nil {
		return netip.Prefix{}, false
	}
	p, err := a.Prefix(bits)
	return p, err == nil
}

// HostLines renders the /etc/hosts lines of nodes (shared/xcat/artifacts.md §1): the
// node's own line from hosts.ip and hosts.hostnames, one line per hosts.otherinterfaces
// entry and one per nics IP. Nodes that cannot be rendered are skipped with a warning,
// as makehosts does.
func (v *View) HostLines(nodes []string, opt HostsOptions) (lines []HostLine, warnings []string) {
	order := 0
	if opt.LongFirst || isYes(v.site["FQDNfirst"]) {
		order = 1
	}
	if opt.OthersFirst {
		order = 2
	}
	for _, node := range nodes {
		ipStr := v.Column(node, "hosts", "ip")
		if ipStr == "" {
			warnings = append(warnings, fmt.Sprintf("Ignoring node '%s', it can not be resolved.", node))
			continue
		}
		ip, err := netip.ParseAddr(ipStr)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("Invalid IP Addr '%s' for node '%s'.", ipStr, node))
			continue
		}
		dom := v.domainFor(ip)
		if dom == "" {
			warnings = append(warnings, fmt.Sprintf("No domain can be determined for node '%s'. The domain of the xCAT node must be provided in an xCAT network definition or the xCAT site definition.", node))
			continue
		}
		short := node
		if strings.HasSuffix(node, "."+dom) {
			short = strings.TrimSuffix(node, "."+dom)
		}
		if strings.Contains(short, ".") {
			warnings = append(warnings, fmt.Sprintf("Invalid short node name '%s'.", short))
			continue
		}
		line := HostLine{IP: ip.String(), Short: short, Long: short + "." + dom, Node: node, order: order}
		replaced := false
		var front []string
		for _, h := range strings.FieldsFunc(v.Column(node, "hosts", "hostnames"), func(r rune) bool { return r == ',' || r == ' ' }) {
			if h == node || h == short || h == short+"."+dom {
				continue
			}
			if !replaced && strings.Contains(h, ".") {
				line.Long, replaced = h, true
				continue
			}
			if opt.Alias && !strings.Contains(h, ".") {
				front = append(front, h+"."+dom)
			}
			line.Other = append(line.Other, h)
		}
		line.Other = append(front, line.Other...)
		lines = append(lines, line)

		for _, item := range splitList(v.Column(node, "hosts", "otherinterfaces")) {
			name, addr, ok := strings.Cut(item, "!")
			if !ok {
				name, addr, ok = strings.Cut(item, ":")
			}
			if !ok {
				warnings = append(warnings, fmt.Sprintf("Invalid otherinterfaces entry '%s' for node '%s'.", item, node))
				continue
			}
			if strings.HasPrefix(name, "-") {
				name = short + name
			}
			oip, err := netip.ParseAddr(addr)
			if err != nil {
				warnings = append(warnings, fmt.Sprintf("Invalid IP Addr '%s' for node '%s'.", addr, node))
				continue
			}
			lines = append(lines, HostLine{IP: oip.String(), Short: name, Long: name + "." + v.domainFor(oip), Node: node, order: order})
		}
		lines = append(lines, v.nicLines(node, short, order, &warnings)...)
	}
	return lines, warnings
}

// nicLines renders the lines of the nics table for node.
func (v *View) nicLines(node, short string, order int, warnings *[]string) []HostLine {
	ips := parseNicValue(v.Column(node, "nics", "nicips"))
	if len(ips) == 0 {
		return nil
	}
	suffixes := parseNicValue(v.Column(node, "nics", "nichostnamesuffixes"))
	prefixes := parseNicValue(v.Column(node, "nics", "nichostnameprefixes"))
	aliases := parseNicValue(v.Column(node, "nics", "nicaliases"))
	var out []HostLine
	for _, nic := range sortedKeys(ips) {
		addrs := strings.Split(ips[nic], "|")
		sfx := strings.Split(suffixes[nic], "|")
		pfx := strings.Split(prefixes[nic], "|")
		als := strings.Split(aliases[nic], "|")
		for i, a := range addrs {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				*warnings = append(*warnings, fmt.Sprintf("Invalid IP Addr '%s' for node '%s' nic '%s'.", a, node, nic))
				continue
			}
			s, p := "-"+nic, ""
			if i < len(sfx) && sfx[i] != "" {
				s = sfx[i]
			}
			if i < len(pfx) {
				p = pfx[i]
			}
			name := p + short + s
			l := HostLine{IP: ip.String(), Short: name, Long: name + "." + v.domainFor(ip), Node: node, order: order}
			if i < len(als) && als[i] != "" {
				l.Other = strings.Fields(als[i])
			}
			out = append(out, l)
		}
	}
	return out
}

func isYes(s string) bool {
	switch strings.ToLower(s) {
	case "1", "yes", "y", "enable", "enabled", "true":
		return true
	}
	return false
}

// hostsLineMatches reports whether an existing /etc/hosts line belongs to name or ip:
// its address equals ip, or its first name (or that name up to a dot) equals name.
// Removing s01 must not remove s01r1b01: only whole names and dotted prefixes match.
func hostsLineMatches(fields []string, name, ip string) bool {
	if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
		return false
	}
	if ip != "" && fields[0] == ip {
		return true
	}
	first := fields[1]
	if first == name {
		return true
	}
	if i := strings.IndexByte(first, '.'); i > 0 && first[:i] == name {
		return true
	}
	return false
}

// UpdateHostsFile applies makehosts to the contents of an /etc/hosts file: each line
// replaces the first existing line with its address or name, later such lines are
// dropped, and lines that match nothing are appended. With remove, the matching lines are
// dropped instead. Other lines are kept as they are. Lines are found through indexes by
// address and by name, so a 10,000-node file takes milliseconds, not a quadratic scan.
func UpdateHostsFile(old []byte, lines []HostLine, remove bool) []byte {
	var existing []string
	sc := bufio.NewScanner(bytes.NewReader(old))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		existing = append(existing, sc.Text())
	}
	byIP := map[string][]int{}
	byName := map[string][]int{}
	index := func(i int) {
		f := strings.Fields(existing[i])
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			return
		}
		byIP[f[0]] = append(byIP[f[0]], i)
		byName[f[1]] = append(byName[f[1]], i)
		if j := strings.IndexByte(f[1], '.'); j > 0 {
			byName[f[1][:j]] = append(byName[f[1][:j]], i)
		}
	}
	for i := range existing {
		index(i)
	}
	dropped := make([]bool, len(existing))
	var cand []int
	for _, l := range lines {
		cand = append(cand[:0], byName[l.Short]...)
		if !remove { // -d removes by name, so another host that took the address is kept
			cand = append(cand, byIP[l.IP]...)
		}
		slices.Sort(cand)
		cand = slices.Compact(cand)
		placed := false
		for _, i := range cand {
			ip := l.IP
			if remove {
				ip = ""
			}
			// The indexes may hold stale entries for lines rewritten since: check again.
			if dropped[i] || !hostsLineMatches(strings.Fields(existing[i]), l.Short, ip) {
				continue
			}
			if remove || placed {
				dropped[i] = true
				continue
			}
			existing[i] = l.String()
			index(i)
			placed = true
		}
		if !placed && !remove {
			existing = append(existing, l.String())
			dropped = append(dropped, false)
			index(len(existing) - 1)
		}
	}
	var b bytes.Buffer
	for i, e := range existing {
		if !dropped[i] {
			b.WriteString(e)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// NewHostsFile is makehosts -n: a fresh file with the localhost line and the given lines.
func NewHostsFile(lines []HostLine) []byte {
	return UpdateHostsFile([]byte("127.0.0.1 localhost\n"), lines, false)
}
