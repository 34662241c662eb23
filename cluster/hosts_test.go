package cluster

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func hostLines(t *testing.T, v *View, nodes []string, opt HostsOptions) ([]string, []string) {
	t.Helper()
	lines, warns := v.HostLines(nodes, opt)
	var out []string
	for _, l := range lines {
		out = append(out, l.String())
	}
	return out, warns
}

// TestMakehostsNew is xCAT's own example (shared/xcat/artifacts.md §1): makehosts -n with
// a group row holding a regex IP.
func TestMakehostsNew(t *testing.T) {
	s := openSQLite(t)
	seed(t, s, map[string][]Row{
		"site":     {{"key": "domain", "value": "cluster.com"}},
		"nodelist": {{"node": "node01", "groups": "compute"}, {"node": "node02", "groups": "compute"}},
		"hosts":    {{"node": "compute", "ip": `|node(\d+)|10.0.0.($1+0)|`}},
	})
	v := loadView(t, s)
	lines, warns := v.HostLines(v.Nodes(), HostsOptions{})
	if len(warns) > 0 {
		t.Errorf("warnings: %v", warns)
	}
	got := string(NewHostsFile(lines))
	want := "127.0.0.1 localhost\n10.0.0.1 node01 node01.cluster.com \n10.0.0.2 node02 node02.cluster.com \n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("makehosts -n (-want +got):\n%s", diff)
	}
}

func TestMakehostsLines(t *testing.T) {
	s := openSQLite(t)
	seed(t, s, map[string][]Row{
		"site": {{"key": "domain", "value": "cluster.com"}},
		"networks": {
			{"netname": "ib", "net": "10.2.0.0", "mask": "255.255.0.0", "domain": "ib.cluster.com"},
		},
		"nodelist": {
			{"node": "node01", "groups": "all"}, {"node": "node02", "groups": "all"}, {"node": "node03", "groups": "all"},
			{"node": "noip", "groups": "all"}, {"node": "badip", "groups": "all"},
		},
		"hosts": {
			{"node": "node01", "ip": "10.0.0.1", "hostnames": "node01.cluster.net,alias1 node01"},
			{"node": "node02", "ip": "10.0.0.2", "otherinterfaces": "-bmc!10.1.0.2,mgmt2:10.1.0.102"},
			{"node": "node03", "ip": "10.0.0.3"},
			{"node": "badip", "ip": "10.0.0.300"},
		},
		"nics": {
			{"node": "node03", "nicips": "ib0!10.2.0.3|10.2.1.3,eth1!10.3.0.3", "nichostnamesuffixes": "ib0!-ib|-ib1", "nicaliases": "eth1!n3e1 n3-e1"},
		},
	})
	v := loadView(t, s)
	got, warns := hostLines(t, v, []string{"badip", "node01", "node02", "node03", "noip"}, HostsOptions{})
	want := []string{
		"10.0.0.1 node01 node01.cluster.net alias1", // the first dotted hostname replaces the long name
		"10.0.0.2 node02 node02.cluster.com ",
		"10.1.0.2 node02-bmc node02-bmc.cluster.com ",
		"10.1.0.102 mgmt2 mgmt2.cluster.com ",
		"10.0.0.3 node03 node03.cluster.com ",
		"10.3.0.3 node03-eth1 node03-eth1.cluster.com n3e1 n3-e1",
		"10.2.0.3 node03-ib node03-ib.ib.cluster.com ", // the network's domain
		"10.2.1.3 node03-ib1 node03-ib1.ib.cluster.com ",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
	if len(warns) != 2 || !strings.Contains(strings.Join(warns, "\n"), "Ignoring node 'noip', it can not be resolved.") || !strings.Contains(strings.Join(warns, "\n"), "Invalid IP Addr") {
		t.Errorf("warnings = %q", warns)
	}
	long, _ := hostLines(t, v, []string{"node03"}, HostsOptions{LongFirst: true})
	if long[0] != "10.0.0.3 node03.cluster.com node03 " {
		t.Errorf("-l line = %q", long[0])
	}
}

func TestUpdateHostsFile(t *testing.T) {
	old := strings.Join([]string{
		"127.0.0.1 localhost",
		"# a comment stays",
		"10.0.0.9 s01 s01.cluster.com",   // s01 moved to a new IP: replaced
		"10.0.0.1 someoneelse",           // s01's new IP taken by a stale entry: dropped
		"10.0.0.50 s01r1b01 s01r1b01.cl", // not s01: kept
		"10.0.0.60 s02.cluster.com s02",  // long-first line of s02: matches by dotted prefix
	}, "\n") + "\n"
	lines := []HostLine{
		{IP: "10.0.0.1", Short: "s01", Long: "s01.cluster.com"},
		{IP: "10.0.0.2", Short: "s02", Long: "s02.cluster.com"},
		{IP: "10.0.0.3", Short: "s03", Long: "s03.cluster.com"},
	}
	got := string(UpdateHostsFile([]byte(old), lines, false))
	want := strings.Join([]string{
		"127.0.0.1 localhost",
		"# a comment stays",
		"10.0.0.1 s01 s01.cluster.com ",
		"10.0.0.50 s01r1b01 s01r1b01.cl",
		"10.0.0.2 s02 s02.cluster.com ",
		"10.0.0.3 s03 s03.cluster.com ",
	}, "\n") + "\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("update (-want +got):\n%s", diff)
	}
	got = string(UpdateHostsFile([]byte(want), lines[:1], true))
	want = strings.Join([]string{
		"127.0.0.1 localhost",
		"# a comment stays",
		"10.0.0.50 s01r1b01 s01r1b01.cl",
		"10.0.0.2 s02 s02.cluster.com ",
		"10.0.0.3 s03 s03.cluster.com ",
	}, "\n") + "\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("makehosts -d s01 (-want +got):\n%s", diff)
	}
}
