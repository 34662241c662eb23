package glue

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/dns"
)

// DNSData is what the cluster's name server answers, worked out from a view: the zones
// (site.domain and each network's domain; the reverse zones of the networks) and one
// dns.Host per line that makehosts writes (cluster.View.HostLines), so that DNS and
// /etc/hosts always agree.
type DNSData struct {
	Zones    []dns.Zone
	Hosts    []dns.Host
	Warnings []string
}

// DNSOptions shape DNSFromView.
type DNSOptions struct {
	// Nodes limits the hosts to these nodes (makedns <noderange>); nil means every node.
	Nodes []string
	// Hostname is the management node's name ("" means os.Hostname): the zones' name
	// server, with site.master as its address.
	Hostname string
}

// domainOf is the DNS domain of ip as makehosts finds it: the domain of the network that
// holds it, else site.domain.
func domainOf(v *cluster.View, ip netip.Addr) string {
	for _, r := range v.TableRows("networks") {
		p, err := cluster.NetworkPrefix(r["net"], r["mask"])
		if err == nil && p.Contains(ip) && r["domain"] != "" {
			return r["domain"]
		}
	}
	return v.Site("domain")
}

// DNSFromView works out the cluster's DNS data from view v: A/AAAA for each node's
// canonical name (<node>.<domain>), CNAMEs for its other names (hosts.hostnames, the
// long name when hosts.hostnames replaced it), the same for every otherinterfaces and
// nics line, and PTR records in the reverse zones of the networks. Names that are not
// valid DNS names are left out with a warning, as are aliases that clash.
func DNSFromView(v *cluster.View, opt DNSOptions) (DNSData, error) {
	var out DNSData
	var domains []string
	addDomain := func(d string) {
		if d == "" {
			return
		}
		if n, err := dns.Fqdn(d); err != nil {
			out.Warnings = append(out.Warnings, fmt.Sprintf("domain %q is not a valid DNS name", d))
		} else if !slices.Contains(domains, n) {
			domains = append(domains, n)
		}
	}
	addDomain(v.Site("domain"))
	var revs []string
	for _, r := range v.TableRows("networks") {
		addDomain(r["domain"])
		p, err := cluster.NetworkPrefix(r["net"], r["mask"])
		if err != nil {
			out.Warnings = append(out.Warnings, fmt.Sprintf("network %s: %v", r["netname"], err))
			continue
		}
		zs, err := dns.ReverseZones(p)
		if err != nil {
			out.Warnings = append(out.Warnings, fmt.Sprintf("network %s: %v", r["netname"], err))
			continue
		}
		for _, z := range zs {
			if !slices.Contains(revs, z) {
				revs = append(revs, z)
			}
		}
	}
	if len(domains) == 0 {
		return out, fmt.Errorf("no DNS domain: set site.domain (chtab key=domain site.value=cluster.example)")
	}

	// The name server: this host, under the cluster's domain, at site.master.
	host := opt.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	host, _, _ = strings.Cut(strings.ToLower(host), ".")
	nsName := "ns." + domains[0]
	if host != "" {
		if n, err := dns.Fqdn(host + "." + domains[0]); err == nil {
			nsName = n
		}
	}
	serial := uint32(v.Generation)
	for _, d := range domains {
		out.Zones = append(out.Zones, dns.Zone{Name: d, NS: []string{nsName}, Serial: serial})
	}
	for _, z := range revs {
		out.Zones = append(out.Zones, dns.Zone{Name: z, NS: []string{nsName}, Serial: serial})
	}

	nodes := opt.Nodes
	if nodes == nil {
		nodes = v.Nodes()
	}
	lines, warnings := v.HostLines(nodes, cluster.HostsOptions{})
	out.Warnings = append(out.Warnings, warnings...)
	canon := map[string]bool{}
	aliasOf := map[string]string{}
	byName := map[string]int{}
	qualify := func(name string, ip netip.Addr) string {
		if strings.Contains(name, ".") {
			return name
		}
		return name + "." + domainOf(v, ip)
	}
	for _, l := range lines {
		ip, err := netip.ParseAddr(l.IP)
		if err != nil {
			continue
		}
		name, err := dns.Fqdn(qualify(l.Short, ip))
		if err != nil {
			out.Warnings = append(out.Warnings, fmt.Sprintf("node %s: %v", l.Node, err))
			continue
		}
		if i, ok := byName[name]; ok {
			out.Hosts[i].Addrs = append(out.Hosts[i].Addrs, ip)
			continue
		}
		canon[name] = true
		h := dns.Host{Name: name, Addrs: []netip.Addr{ip}}
		for _, o := range append([]string{l.Long}, l.Other...) {
			a, err := dns.Fqdn(qualify(o, ip))
			if err != nil {
				out.Warnings = append(out.Warnings, fmt.Sprintf("node %s: alias: %v", l.Node, err))
				continue
			}
			if a == name || slices.Contains(h.Aliases, a) {
				continue
			}
			if canon[a] || aliasOf[a] != "" {
				out.Warnings = append(out.Warnings, fmt.Sprintf("node %s: alias %s is already the name of another host", l.Node, a))
				continue
			}
			aliasOf[a] = name
			h.Aliases = append(h.Aliases, a)
		}
		byName[name] = len(out.Hosts)
		out.Hosts = append(out.Hosts, h)
	}
	// An alias that a later line takes as its canonical name: the host name wins.
	for i := range out.Hosts {
		out.Hosts[i].Aliases = slices.DeleteFunc(out.Hosts[i].Aliases, func(a string) bool {
			if canon[a] {
				out.Warnings = append(out.Warnings, fmt.Sprintf("alias %s of %s is also a host name: left out", a, out.Hosts[i].Name))
				return true
			}
			return false
		})
	}
	if !canon[nsName] {
		if a, err := netip.ParseAddr(v.Site("master")); err == nil {
			out.Hosts = append(out.Hosts, dns.Host{Name: nsName, Addrs: []netip.Addr{a}})
		}
	}
	return out, nil
}

// Table indexes the data for the server.
func (d DNSData) Table() (*dns.Table, error) { return dns.NewTable(d.Zones, d.Hosts) }

// Forwarders reads site.forwarders: addresses (port 53) or address:port, separated by
// commas or blanks.
func Forwarders(v *cluster.View) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for _, f := range strings.FieldsFunc(v.Site("forwarders"), func(r rune) bool { return r == ',' || r == ' ' }) {
		if ap, err := netip.ParseAddrPort(f); err == nil {
			out = append(out, ap)
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("site.forwarders: %q is not an address", f)
		}
		out = append(out, netip.AddrPortFrom(a, 53))
	}
	return out, nil
}

// RecursionNets are the clients the forwarders serve: the cluster's networks and
// loopback.
func RecursionNets(v *cluster.View) []netip.Prefix {
	out := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, r := range v.TableRows("networks") {
		if p, err := cluster.NetworkPrefix(r["net"], r["mask"]); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// DNSRecords answers the DNS server's lookups from the current view: a dns.Table built
// when the view changes (the query path never touches the store), so a change in the
// tables is answered as soon as provd has reloaded its view.
type DNSRecords struct {
	Views ViewSource
	// Hostname is the name server's name (DNSOptions.Hostname).
	Hostname string
	// OnWarning, if set, is told the warnings of each rebuild.
	OnWarning func(string)

	mu  sync.Mutex
	cur atomic.Pointer[dnsSnapshot]
}

type dnsSnapshot struct {
	view  *cluster.View
	table *dns.Table
	built time.Duration
}

var _ dns.Records = (*DNSRecords)(nil)

// Lookup implements dns.Records.
func (r *DNSRecords) Lookup(name string) dns.Result { return r.Table().Lookup(name) }

// Table returns the table of the current view, building it on first use.
func (r *DNSRecords) Table() *dns.Table {
	v := r.Views.Current()
	if s := r.cur.Load(); s != nil && s.view == v {
		return s.table
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.cur.Load(); s != nil && s.view == v {
		return s.table
	}
	start := time.Now()
	t, err := r.build(v)
	if err != nil {
		if r.OnWarning != nil {
			r.OnWarning(err.Error())
		}
		if s := r.cur.Load(); s != nil {
			// Keep answering from the last good table, and do not retry on every query.
			r.cur.Store(&dnsSnapshot{view: v, table: s.table})
			return s.table
		}
		t, _ = dns.NewTable(nil, nil)
	}
	r.cur.Store(&dnsSnapshot{view: v, table: t, built: time.Since(start)})
	return t
}

func (r *DNSRecords) build(v *cluster.View) (*dns.Table, error) {
	d, err := DNSFromView(v, DNSOptions{Hostname: r.Hostname})
	if err != nil {
		return nil, err
	}
	if r.OnWarning != nil {
		for _, w := range d.Warnings {
			r.OnWarning(w)
		}
	}
	return d.Table()
}
