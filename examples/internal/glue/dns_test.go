package glue

import (
	"context"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/dns"
)

func testView(t *testing.T, tables map[string][]cluster.Row) (*cluster.DB, *cluster.View) {
	t.Helper()
	ctx := context.Background()
	s, err := cluster.Open(ctx, filepath.Join(t.TempDir(), "provkit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Update(ctx, func(tx cluster.Tx) error {
		for table, rows := range tables {
			if err := tx.Put(table, rows...); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	v, err := cluster.LoadView(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// TestDNSFromView: the names are those makehosts writes, for every kind of line.
func TestDNSFromView(t *testing.T) {
	_, v := testView(t, map[string][]cluster.Row{
		"site": {{"key": "domain", "value": "cluster.test"}, {"key": "master", "value": "10.97.6.1"}},
		"networks": {{"netname": "mgt", "net": "10.97.6.0", "mask": "255.255.255.0"},
			{"netname": "ib", "net": "10.97.7.0", "mask": "255.255.255.0", "domain": "ib.cluster.test"}},
		"nodelist": {{"node": "n1", "groups": "compute"}, {"node": "n2", "groups": "compute"}, {"node": "bad_name!", "groups": "x"}},
		"hosts": {{"node": "compute", "ip": `|n(\d+)|10.97.6.($1+10)|`, "otherinterfaces": `|n(\d+)|-bmc!10.97.6.($1+100)|`},
			{"node": "n1", "hostnames": "login,n1.other.example,www"}, {"node": "bad_name!", "ip": "10.97.6.99"},
			{"node": "n2", "hostnames": "login"}},
		"nics": {{"node": "n2", "nicips": "ib0!10.97.7.12"}},
	})
	d, err := DNSFromView(v, DNSOptions{Hostname: "mgt.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	a := func(s string) []netip.Addr { return []netip.Addr{netip.MustParseAddr(s)} }
	want := []dns.Host{
		{Name: "n1.cluster.test.", Addrs: a("10.97.6.11"), Aliases: []string{"n1.other.example.", "login.cluster.test.", "www.cluster.test."}},
		{Name: "n1-bmc.cluster.test.", Addrs: a("10.97.6.101")},
		{Name: "n2.cluster.test.", Addrs: a("10.97.6.12")},
		{Name: "n2-bmc.cluster.test.", Addrs: a("10.97.6.102")},
		{Name: "n2-ib0.ib.cluster.test.", Addrs: a("10.97.7.12")},
		{Name: "mgt.cluster.test.", Addrs: a("10.97.6.1")},
	}
	if diff := cmp.Diff(want, d.Hosts, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
	var zones []string
	for _, z := range d.Zones {
		zones = append(zones, z.Name+" "+z.NS[0])
	}
	if diff := cmp.Diff([]string{"cluster.test. mgt.cluster.test.", "ib.cluster.test. mgt.cluster.test.",
		"6.97.10.in-addr.arpa. mgt.cluster.test.", "7.97.10.in-addr.arpa. mgt.cluster.test."}, zones); diff != "" {
		t.Errorf("zones (-want +got):\n%s", diff)
	}
	// Warnings: the bad node name, and n2 claiming n1's alias.
	if len(d.Warnings) != 2 || !strings.Contains(strings.Join(d.Warnings, "\n"), "bad_name!") ||
		!strings.Contains(strings.Join(d.Warnings, "\n"), "alias login.cluster.test. is already the name of another host") {
		t.Errorf("warnings = %q", d.Warnings)
	}
	if _, err := d.Table(); err != nil {
		t.Errorf("Table: %v", err)
	}
	// Every makehosts line's names resolve.
	lines, _ := v.HostLines(v.Nodes(), cluster.HostsOptions{})
	tab, _ := d.Table()
	for _, l := range lines {
		for _, n := range append([]string{l.Long}, l.Other...) {
			if !strings.Contains(n, ".") {
				n += ".cluster.test"
			}
			fq, err := dns.Fqdn(n)
			if err != nil {
				continue
			}
			if r := tab.Lookup(fq); !r.Exists {
				t.Errorf("makehosts name %s of %s does not resolve", n, l.Node)
			}
		}
	}

	s2, _ := testView(t, map[string][]cluster.Row{"nodelist": {{"node": "n1"}}})
	ctx := context.Background()
	if err := s2.Update(ctx, func(tx cluster.Tx) error { _, err := tx.Delete("site", cluster.Row{"key": "domain"}); return err }); err != nil {
		t.Fatal(err)
	}
	v2, err := cluster.LoadView(ctx, s2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DNSFromView(v2, DNSOptions{}); err == nil || !strings.Contains(err.Error(), "site.domain") {
		t.Errorf("DNSFromView without a domain = %v, want an error naming site.domain", err)
	}
}

func TestForwarders(t *testing.T) {
	_, v := testView(t, map[string][]cluster.Row{"site": {{"key": "forwarders", "value": "10.97.6.53, 127.0.0.1:5353 [::1]:53"}}})
	got, err := Forwarders(v)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("10.97.6.53:53"), netip.MustParseAddrPort("127.0.0.1:5353"), netip.MustParseAddrPort("[::1]:53")}
	if !slices.Equal(got, want) {
		t.Errorf("Forwarders = %v, want %v", got, want)
	}
	_, bad := testView(t, map[string][]cluster.Row{"site": {{"key": "forwarders", "value": "dns.example.com"}}})
	if _, err := Forwarders(bad); err == nil || !strings.Contains(err.Error(), "dns.example.com") {
		t.Errorf("Forwarders(name) = %v, want an error naming it", err)
	}
}

// TestDNSRecordsLive: the records follow the view; a new view is a new table.
func TestDNSRecordsLive(t *testing.T) {
	_, v1 := testView(t, map[string][]cluster.Row{"site": {{"key": "domain", "value": "cluster.test"}}, "nodelist": {{"node": "n1"}}, "hosts": {{"node": "n1", "ip": "10.97.6.11"}}})
	_, v2 := testView(t, map[string][]cluster.Row{"site": {{"key": "domain", "value": "cluster.test"}}, "nodelist": {{"node": "n1"}}, "hosts": {{"node": "n1", "ip": "10.97.6.21"}}})
	cur := v1
	r := &DNSRecords{Views: ViewSourceFunc(func() *cluster.View { return cur }), Hostname: "mgt"}
	if got := r.Lookup("n1.cluster.test."); len(got.Addrs) != 1 || got.Addrs[0] != netip.MustParseAddr("10.97.6.11") {
		t.Errorf("first view: %+v", got)
	}
	cur = v2
	if got := r.Lookup("n1.cluster.test."); len(got.Addrs) != 1 || got.Addrs[0] != netip.MustParseAddr("10.97.6.21") {
		t.Errorf("second view: %+v", got)
	}
}

// FuzzDiscoveryReport reads what a node posts. Property: no panic; a report that is
// accepted converts to a cluster.Discovered whose boot MAC and interfaces are those sent.
func FuzzDiscoveryReport(f *testing.F) {
	f.Add([]byte(`{"uuid":"mac-52540097010b","bootmac":"52:54:00:97:01:0b","arch":"x86_64","cpucount":1,"memory_mib":512,"disks":["vda:2GB"],` +
		`"nics":[{"name":"eth0","mac":"52:54:00:97:01:0b","driver":"virtio_net","ipv4":"10.97.1.200/24","lldp":{"sysname":"leaf1","portid":"swp7","mgmtaddr":"10.97.1.250"}}]}`))
	f.Add([]byte(`{"uuid":"x","bootmac":"zz"}`))
	f.Add([]byte(`{"nics":[{"name":"a b"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r DiscoveryReport
		if json.Unmarshal(data, &r) != nil {
			return
		}
		d, err := r.Discovered(netip.MustParseAddr("10.97.1.200"))
		if err != nil {
			return
		}
		if d.BootMAC.String() == "" || len(d.NICs) != len(r.NICs) {
			t.Fatalf("accepted %+v as %+v", r, d)
		}
		for i, n := range d.NICs {
			if n.Name != r.NICs[i].Name || strings.ContainsAny(n.Name, "!,| /") {
				t.Fatalf("interface %q accepted as %q", r.NICs[i].Name, n.Name)
			}
		}
	})
}
