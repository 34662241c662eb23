package dns

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func testTable(t testing.TB) *Table {
	t.Helper()
	tab, err := NewTable(
		[]Zone{{Name: "cluster.test", Serial: 7}, {Name: "0.97.10.in-addr.arpa.", NS: []string{"ns.cluster.test."}}, {Name: "8.b.d.0.1.0.0.2.ip6.arpa.", NS: []string{"ns.cluster.test"}}},
		[]Host{
			{Name: "n1.cluster.test.", Addrs: addrs("10.97.0.11"), Aliases: []string{"login.cluster.test.", "n1.other.example."}},
			{Name: "n2.cluster.test.", Addrs: addrs("10.97.0.12", "2001:db8::12")},
			{Name: "n1-bmc.cluster.test.", Addrs: addrs("10.97.1.11")},
			{Name: "n1-ib0.rack1.cluster.test.", Addrs: addrs("10.97.0.111")},
			{Name: "ns.cluster.test.", Addrs: addrs("10.97.0.1")},
		})
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestTableLookup(t *testing.T) {
	tab := testTable(t)
	zone := func(n string) *Zone {
		for _, z := range tab.zoneList {
			if z.Name == n {
				return z
			}
		}
		t.Fatalf("no zone %s", n)
		return nil
	}
	for _, tc := range []struct {
		name string
		want Result
	}{
		{"n1.cluster.test.", Result{Zone: zone("cluster.test."), Exists: true, Addrs: addrs("10.97.0.11")}},
		{"n2.cluster.test.", Result{Zone: zone("cluster.test."), Exists: true, Addrs: addrs("10.97.0.12", "2001:db8::12")}},
		{"login.cluster.test.", Result{Zone: zone("cluster.test."), Exists: true, CNAME: "n1.cluster.test."}},
		{"n1.other.example.", Result{Exists: true, CNAME: "n1.cluster.test."}},
		{"nosuch.cluster.test.", Result{Zone: zone("cluster.test.")}},
		{"cluster.test.", Result{Zone: zone("cluster.test."), Exists: true}},
		// An empty non-terminal: a name below it exists.
		{"rack1.cluster.test.", Result{Zone: zone("cluster.test."), Exists: true}},
		{"11.0.97.10.in-addr.arpa.", Result{Zone: zone("0.97.10.in-addr.arpa."), Exists: true, PTR: []string{"n1.cluster.test."}}},
		// 10.97.1.11 is outside every reverse zone: no PTR.
		{"11.1.97.10.in-addr.arpa.", Result{}},
		{"2.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", Result{Zone: zone("8.b.d.0.1.0.0.2.ip6.arpa."), Exists: true, PTR: []string{"n2.cluster.test."}}},
		{"example.com.", Result{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tab.Lookup(tc.name)
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Errorf("Lookup(%q) (-want +got):\n%s", tc.name, diff)
			}
		})
	}
	if got, want := tab.Len(), 12; got != want {
		t.Errorf("Len() = %d, want %d", got, want)
	}
}

func TestNewTableErrors(t *testing.T) {
	z := []Zone{{Name: "cluster.test."}}
	for _, tc := range []struct {
		name  string
		zones []Zone
		hosts []Host
		want  error
	}{
		{"bad host name", z, []Host{{Name: "n 1.cluster.test."}}, ErrBadName},
		{"bad label", z, []Host{{Name: "n_1!.cluster.test."}}, ErrBadName},
		{"empty name", z, []Host{{Name: ""}}, ErrBadName},
		{"bad zone", []Zone{{Name: "a..b"}}, nil, ErrBadName},
		{"bad alias", z, []Host{{Name: "n1.cluster.test.", Aliases: []string{"-"}}}, nil},
		{"alias is a host", z, []Host{{Name: "n1.cluster.test."}, {Name: "n2.cluster.test.", Aliases: []string{"n1.cluster.test."}}}, nil},
		{"alias of two hosts", z, []Host{{Name: "n1.cluster.test.", Aliases: []string{"x.cluster.test."}}, {Name: "n2.cluster.test.", Aliases: []string{"x.cluster.test."}}}, nil},
		{"zone twice", []Zone{{Name: "a.test."}, {Name: "A.test"}}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTable(tc.zones, tc.hosts)
			if err == nil {
				t.Fatalf("NewTable = nil error, want one")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("NewTable = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestReverseZones(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"10.97.0.0/24", []string{"0.97.10.in-addr.arpa."}},
		{"10.97.0.64/26", []string{"0.97.10.in-addr.arpa."}},
		{"10.97.4.0/22", []string{"4.97.10.in-addr.arpa.", "5.97.10.in-addr.arpa.", "6.97.10.in-addr.arpa.", "7.97.10.in-addr.arpa."}},
		{"10.97.0.0/16", []string{"97.10.in-addr.arpa."}},
		{"10.96.0.0/15", []string{"96.10.in-addr.arpa.", "97.10.in-addr.arpa."}},
		{"10.0.0.0/8", []string{"10.in-addr.arpa."}},
		{"2001:db8::/32", []string{"8.b.d.0.1.0.0.2.ip6.arpa."}},
		{"fd00:97::/64", []string{"0.0.0.0.0.0.0.0.7.9.0.0.0.0.d.f.ip6.arpa."}},
	} {
		got, err := ReverseZones(netip.MustParsePrefix(tc.prefix))
		if err != nil {
			t.Fatalf("ReverseZones(%s): %v", tc.prefix, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ReverseZones(%s) (-want +got):\n%s", tc.prefix, diff)
		}
	}
	for _, bad := range []netip.Prefix{{}, netip.MustParsePrefix("2001:db8::/33"), netip.MustParsePrefix("0.0.0.0/0")} {
		if _, err := ReverseZones(bad); err == nil {
			t.Errorf("ReverseZones(%s) = nil error, want one", bad)
		}
	}
}

func TestReverseName(t *testing.T) {
	for in, want := range map[string]string{
		"10.97.0.11":       "11.0.97.10.in-addr.arpa.",
		"::ffff:10.97.0.1": "1.0.97.10.in-addr.arpa.",
		"2001:db8::12":     "2.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
	} {
		if got := ReverseName(netip.MustParseAddr(in)); got != want {
			t.Errorf("ReverseName(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestFqdn(t *testing.T) {
	for in, want := range map[string]string{"N1.Cluster.Test": "n1.cluster.test.", "a.": "a.", " x-y.z ": "x-y.z.", "_ldap._tcp.c": "_ldap._tcp.c."} {
		got, err := Fqdn(in)
		if err != nil || got != want {
			t.Errorf("Fqdn(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", ".", "a..b", ".a", "a b", "a/b", string(make([]byte, 70)) + ".x"} {
		if got, err := Fqdn(bad); !errors.Is(err, ErrBadName) {
			t.Errorf("Fqdn(%q) = %q, %v, want ErrBadName", bad, got, err)
		}
	}
}
