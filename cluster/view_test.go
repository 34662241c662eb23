package cluster

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// seed writes rows into a store: table name -> rows.
func seed(t *testing.T, s Store, data map[string][]Row) {
	t.Helper()
	update(t, s, func(tx Tx) error {
		for _, tab := range sortedKeys(data) {
			for _, r := range data[tab] {
				if err := tx.Put(tab, r); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func loadView(t *testing.T, s Store) *View {
	t.Helper()
	v, err := LoadView(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestInheritance(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *DB) {
		seed(t, s, map[string][]Row{
			"nodelist": {
				{"node": "n1", "groups": "compute,all"},
				{"node": "n2", "groups": "all,compute"},
				{"node": "n3", "groups": "gpu,compute,all"},
			},
			"nodetype": {
				{"node": "all", "os": "debian12", "arch": "x86_64"},
				{"node": "compute", "os": "rocky9", "profile": "compute"},
				{"node": "n1", "arch": "aarch64", "profile": ""},         // empty counts as unset
				{"node": "gpu", "os": "gpuos", "disable": "yes"},         // disabled contributes nothing
				{"node": "n3", "provmethod": "img1", "disable": "0"},     // "0" is not disabled
				{"node": "nonode", "os": "never", "comments": "a stray"}, // not a group of anyone
			},
		})
		v := loadView(t, s)
		cases := []struct{ node, col, want string }{
			{"n1", "os", "rocky9"},       // first group in order wins
			{"n2", "os", "debian12"},     // order matters: all comes first for n2
			{"n1", "arch", "aarch64"},    // own value wins
			{"n1", "profile", "compute"}, // own empty value lets the group show through
			{"n3", "os", "rocky9"},       // the disabled gpu row is skipped
			{"n3", "provmethod", "img1"},
			{"n2", "provmethod", ""},
			{"nosuch", "os", ""},
		}
		for _, c := range cases {
			if got := v.Column(c.node, "nodetype", c.col); got != c.want {
				t.Errorf("Column(%s, nodetype.%s) = %q, want %q", c.node, c.col, got, c.want)
			}
		}
		if got := v.NodeAttr("n1", "os"); got != "rocky9" {
			t.Errorf("NodeAttr(n1, os) = %q, want rocky9", got)
		}
		// nodelist itself never inherits: groups is the node's own list.
		if got := v.Lookup("n3", "nodelist.groups"); got != "gpu,compute,all" {
			t.Errorf("Lookup(n3, nodelist.groups) = %q", got)
		}
	})
}

func TestHierarchicalAttrs(t *testing.T) {
	s := openSQLite(t)
	seed(t, s, map[string][]Row{
		"site":     {{"key": "hierarchicalattrs", "value": "postscripts,kcmdline:;"}},
		"nodelist": {{"node": "n1", "groups": "compute,all"}},
		"postscripts": {
			{"node": "n1", "postscripts": "mine,shared"},
			{"node": "compute", "postscripts": "shared,comp"},
			{"node": "all", "postscripts": "base"},
		},
		"bootparams": {
			{"node": "n1", "kcmdline": "quiet"},
			{"node": "all", "kcmdline": "console=ttyS0;quiet"},
		},
	})
	v := loadView(t, s)
	if got := v.Column("n1", "postscripts", "postscripts"); got != "mine,shared,comp,base" {
		t.Errorf("hierarchical postscripts = %q, want mine,shared,comp,base", got)
	}
	if got := v.Column("n1", "bootparams", "kcmdline"); got != "quiet;console=ttyS0" {
		t.Errorf("hierarchical kcmdline with ; = %q, want quiet;console=ttyS0", got)
	}
}

// openSQLite opens a fresh SQLite store for tests that exercise logic above the store.
func openSQLite(t *testing.T) *DB {
	t.Helper()
	s, err := Open(context.Background(), t.TempDir()+"/provkit.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestNodeView(t *testing.T) {
	s := openSQLite(t)
	seed(t, s, map[string][]Row{
		"nodelist": {{"node": "n1", "groups": "compute,all", "status": "booted"}, {"node": "n2", "groups": "compute"}},
		"hosts":    {{"node": "n1", "ip": "10.0.0.1", "hostnames": "n1-alias,n1.other.net"}, {"node": "n2", "ip": "10.0.0.2"}},
		"mac":      {{"node": "n1", "interface": "eth0", "mac": "52:54:00:00:00:01!n1-eth0|52:54:00:00:00:11"}, {"node": "n2", "mac": "52:54:00:00:00:02"}},
		"nodetype": {{"node": "compute", "os": "debian12", "arch": "x86_64", "profile": "compute", "provmethod": "debian12-x86_64-netboot-compute"}},
		"noderes":  {{"node": "compute", "netboot": "xnba", "xcatmaster": "10.0.0.254"}},
		"nodehm":   {{"node": "compute", "mgt": "ipmi", "serialport": "0", "serialspeed": "115200"}},
		"ipmi":     {{"node": "n1", "bmc": "10.1.0.1:9623", "username": "admin"}, {"node": "n2", "bmc": "10.1.0.2"}},
		"passwd":   {{"key": "ipmi", "username": "ADMIN", "password": "secret"}, {"key": "system", "username": "root", "password": "rootpw"}},
		"chain":    {{"node": "n1", "currstate": "netboot debian12-x86_64-compute"}},
	})
	v := loadView(t, s)
	n, err := v.Node("n1")
	if err != nil {
		t.Fatal(err)
	}
	want := &Node{
		Name: "n1", Groups: []string{"compute", "all"},
		IP: netip.MustParseAddr("10.0.0.1"),
		MACs: []MAC{
			{Addr: mustMAC("52:54:00:00:00:01"), Host: "n1-eth0"},
			{Addr: mustMAC("52:54:00:00:00:11")},
		},
		Interface: "eth0", Hostnames: []string{"n1-alias", "n1.other.net"},
		OS: "debian12", Arch: "x86_64", Profile: "compute",
		ProvMethod: "debian12-x86_64-netboot-compute", OSImage: "debian12-x86_64-netboot-compute",
		Netboot: "xnba", XCATMaster: "10.0.0.254",
		Mgt: "ipmi", Power: "ipmi", BMC: "10.1.0.1:9623",
		BMCUser: "admin", BMCPassword: "secret", // password falls back to passwd key=ipmi
		SerialPort: "0", SerialSpeed: "115200",
		CurrState: "netboot debian12-x86_64-compute", Status: "booted",
	}
	if diff := cmp.Diff(want, n, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Attrs" }, cmp.Ignore())); diff != "" {
		t.Errorf("Node(n1) (-want +got):\n%s", diff)
	}
	n2, _ := v.Node("n2")
	if n2.BMCUser != "ADMIN" || n2.BMCPassword != "secret" {
		t.Errorf("n2 credentials = %q/%q, want the passwd table's ADMIN/secret", n2.BMCUser, n2.BMCPassword)
	}
	byMAC, err := v.NodeByMAC(mustMAC("52:54:00:00:00:11"))
	if err != nil || byMAC.Name != "n1" {
		t.Errorf("NodeByMAC(second MAC of n1) = %v, %v", byMAC, err)
	}
	byIP, err := v.NodeByIP(netip.MustParseAddr("10.0.0.2"))
	if err != nil || byIP.Name != "n2" {
		t.Errorf("NodeByIP(10.0.0.2) = %v, %v", byIP, err)
	}
	if _, err := v.NodeByMAC(mustMAC("52:54:00:ff:ff:ff")); !errors.Is(err, ErrNotFound) {
		t.Errorf("NodeByMAC(unknown) error = %v, want ErrNotFound", err)
	}
	if _, err := v.Node("nosuch"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Node(nosuch) error = %v, want ErrNotFound", err)
	}
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestOnlyIf(t *testing.T) {
	s := openSQLite(t)
	seed(t, s, map[string][]Row{
		"nodelist": {{"node": "n1", "groups": "ipmigrp"}, {"node": "n2", "groups": "obmc"}, {"node": "n3", "groups": "other"}},
		"nodehm":   {{"node": "ipmigrp", "mgt": "ipmi"}, {"node": "obmc", "mgt": "openbmc"}, {"node": "other", "mgt": "kvm"}},
		"ipmi":     {{"node": "n1", "bmc": "ipmi-bmc"}, {"node": "n2", "bmc": "wrong-table"}, {"node": "n3", "bmc": "x"}},
		"openbmc":  {{"node": "n2", "bmc": "openbmc-bmc"}},
	})
	v := loadView(t, s)
	for node, want := range map[string]string{"n1": "ipmi-bmc", "n2": "openbmc-bmc", "n3": ""} {
		if got := v.NodeAttr(node, "bmc"); got != want {
			t.Errorf("NodeAttr(%s, bmc) = %q, want %q (mgt decides the table)", node, got, want)
		}
	}
}

func TestLoadViewOf(t *testing.T) {
	s := openSQLite(t)
	seed(t, s, map[string][]Row{
		"nodelist": {{"node": "n1", "groups": "compute"}, {"node": "n2", "groups": "compute"}},
		"nodetype": {{"node": "compute", "os": "debian12"}},
	})
	v, err := LoadViewOf(context.Background(), s, []string{"n1"})
	if err != nil {
		t.Fatal(err)
	}
	if !v.Partial() || !v.IsNode("n1") || v.IsNode("n2") {
		t.Errorf("partial view: Partial=%v IsNode(n1)=%v IsNode(n2)=%v, want true true false", v.Partial(), v.IsNode("n1"), v.IsNode("n2"))
	}
	if got := v.NodeAttr("n1", "os"); got != "debian12" {
		t.Errorf("partial view NodeAttr(n1, os) = %q, want debian12 (from the group row)", got)
	}
}
