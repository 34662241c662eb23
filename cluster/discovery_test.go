package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var discoveryTime = time.Date(2026, 3, 7, 10, 0, 0, 0, time.UTC)

func report(uuid, mac string) Discovered {
	return Discovered{
		UUID: uuid, BootMAC: mustMAC(mac), IP: netip.MustParseAddr("10.97.0.200"),
		Arch: "x86_64", CPUType: "QEMU Virtual CPU", CPUCount: 2, MemoryMiB: 1024,
		MTM: "Standard PC (i440FX + PIIX, 1996)", Serial: "SER-" + uuid, Vendor: "QEMU",
		Disks: []string{"vda:2GB"},
		NICs: []DiscoveredNIC{{Name: "eth0", MAC: mustMAC(mac), Driver: "virtio_net", IPv4: netip.MustParsePrefix("10.97.0.200/24")},
			{Name: "eth1", MAC: mustMAC("52:54:00:97:ff:" + mac[len(mac)-2:]), Driver: "e1000"}},
	}
}

// discoverySite defines n1 (already discovered: it has a MAC) to n3 in group compute,
// whose addresses come from a regex, and an osimage; compute's chain sets the BMC up and
// boots the image.
func discoverySite(t *testing.T, s Store) {
	update(t, s, func(tx Tx) error {
		for _, p := range []struct {
			table string
			rows  []Row
		}{
			{"site", []Row{{"key": "domain", "value": "cluster.test"}}},
			{"networks", []Row{{"netname": "boot", "net": "10.97.0.0", "mask": "255.255.255.0", "dynamicrange": "10.97.0.200-10.97.0.250"}}},
			{"nodelist", []Row{{"node": "n1", "groups": "compute,all"}, {"node": "n2", "groups": "compute,all"}, {"node": "n3", "groups": "compute,all"}, {"node": "sw1", "groups": "switch"}}},
			{"hosts", []Row{{"node": "compute", "ip": `|n(\d+)|10.97.0.($1+10)|`}, {"node": "sw1", "ip": "10.97.0.250"}}},
			{"mac", []Row{{"node": "n1", "mac": "52:54:00:97:00:01"}}},
			{"chain", []Row{{"node": "compute", "chain": "runcmd=bmcsetup,osimage=img"}}},
			{"osimage", []Row{{"imagename": "img", "osvers": "busybox", "osarch": "x86_64", "profile": "compute", "provmethod": "netboot"}}},
			{"linuximage", []Row{{"imagename": "img", "rootimgdir": "/install/netboot/busybox"}}},
		} {
			if err := tx.Put(p.table, p.rows...); err != nil {
				return err
			}
		}
		return nil
	})
}

func TestDiscoverSequential(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *DB) {
		ctx := context.Background()
		discoverySite(t, s)
		if _, err := Discover(ctx, s, report("u-early", "52:54:00:97:00:09"), discoveryTime); !errors.Is(err, ErrNoMatch) {
			t.Fatalf("Discover before nodediscoverstart = %v, want ErrNoMatch", err)
		}
		st, err := StartSeqDiscovery(ctx, s, SeqParams{Noderange: "n[1-3]"})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(SeqStart{FreeNodes: []string{"n2", "n3"}, FreeIPs: -1}, st); diff != "" {
			t.Errorf("StartSeqDiscovery (-want +got):\n%s", diff)
		}
		if _, err := StartSeqDiscovery(ctx, s, SeqParams{Noderange: "n[1-3]"}); !errors.Is(err, ErrDiscoveryRunning) {
			t.Errorf("a second StartSeqDiscovery = %v, want ErrDiscoveryRunning", err)
		}
		// The undef report of before is still there; the sequential ones start afresh.
		want := []DiscoverResult{
			{Node: "n2", Method: MethodSequential, IP: netip.MustParseAddr("10.97.0.12"), Done: []string{"osimage=img"}, Next: "reboot", State: "netboot busybox-x86_64-compute"},
			{Node: "n3", Method: MethodSequential, IP: netip.MustParseAddr("10.97.0.13"), Done: []string{"osimage=img"}, Next: "reboot", State: "netboot busybox-x86_64-compute"},
		}
		for i, r := range []Discovered{report("u-a", "52:54:00:97:00:0a"), report("u-b", "52:54:00:97:00:0b")} {
			got, err := Discover(ctx, s, r, discoveryTime)
			if err != nil {
				t.Fatalf("Discover(%s): %v", r.UUID, err)
			}
			if len(got.Skipped) != 1 || !strings.HasPrefix(got.Skipped[0], "runcmd=bmcsetup: ") {
				t.Errorf("Discover(%s).Skipped = %q, want runcmd=bmcsetup skipped", r.UUID, got.Skipped)
			}
			got.Skipped = nil
			if diff := cmp.Diff(want[i], got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Errorf("Discover(%s) (-want +got):\n%s", r.UUID, diff)
			}
		}
		v, err := LoadView(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		for attr, want := range map[string]string{
			"mac": "52:54:00:97:00:0a", "interface": "eth0", "serial": "SER-u-a", "mtm": "Standard PC (i440FX + PIIX, 1996)",
			"cputype": "QEMU Virtual CPU", "cpucount": "2", "memory": "1024MB", "disksize": "vda:2GB", "arch": "x86_64",
			"status": "discovered", "currstate": "netboot busybox-x86_64-compute", "provmethod": "img", "currchain": "",
		} {
			if got := v.NodeAttr("n2", attr); got != want {
				t.Errorf("n2 %s = %q, want %q", attr, got, want)
			}
		}
		if n, err := v.NodeByMAC(mustMAC("52:54:00:97:00:0b")); err != nil || n.Name != "n3" {
			t.Errorf("NodeByMAC(b) = %v, %v, want n3", n, err)
		}
		// The names are used up: the next unknown node is not matched, but kept.
		if _, err := Discover(ctx, s, report("u-d", "52:54:00:97:00:0d"), discoveryTime); !errors.Is(err, ErrNoMatch) {
			t.Errorf("Discover with every name given = %v, want ErrNoMatch", err)
		}
		// A node that reports again (a retry, a reboot into discovery) keeps its name.
		got, err := Discover(ctx, s, report("u-a", "52:54:00:97:00:0a"), discoveryTime)
		if err != nil || got.Node != "n2" || got.Method != MethodMAC {
			t.Errorf("Discover(u-a) again = %+v, %v, want n2 by MAC", got, err)
		}
		dd, err := DiscoveryRows(ctx, s, "all", "")
		if err != nil {
			t.Fatal(err)
		}
		byUUID := map[string][2]string{}
		for _, r := range dd {
			byUUID[r["uuid"]] = [2]string{r["node"], r["method"]}
		}
		if diff := cmp.Diff(map[string][2]string{
			"u-early": {"", "undef"}, "u-a": {"n2", "mac"}, "u-b": {"n3", "sequential"}, "u-d": {"", "undef"},
		}, byUUID); diff != "" {
			t.Errorf("discoverydata (-want +got):\n%s", diff)
		}
		stopped, err := StopSeqDiscovery(ctx, s)
		if err != nil || len(stopped) != 1 {
			t.Errorf("StopSeqDiscovery = %d rows, %v, want 1 (u-b; u-a was matched by MAC since)", len(stopped), err)
		}
		if _, err := StopSeqDiscovery(ctx, s); !errors.Is(err, ErrDiscoveryStopped) {
			t.Errorf("StopSeqDiscovery again = %v, want ErrDiscoveryStopped", err)
		}
		row := rows(t, s, "discoverydata", Row{"uuid": "u-b"})[0]
		for col, want := range map[string]string{"nichwaddr": "eth0!52:54:00:97:00:0b,eth1!52:54:00:97:ff:0b", "nicdriver": "eth0!virtio_net,eth1!e1000",
			"nicipv4": "eth0!10.97.0.200/24", "discoverytime": "03-07-2026 10:00:00", "otherdata": "bootmac=52:54:00:97:00:0b,ip=10.97.0.200,vendor=QEMU,disks=vda:2GB"} {
			if row[col] != want {
				t.Errorf("discoverydata u-b %s = %q, want %q", col, row[col], want)
			}
		}
	})
}

func TestDiscoverSeqCreatesNodes(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *DB) {
		ctx := context.Background()
		discoverySite(t, s)
		st, err := StartSeqDiscovery(ctx, s, SeqParams{Noderange: "cn[1-3]", HostIPRange: "10.97.0.11-10.97.0.16", Groups: "rack2,all", OSImage: "img"})
		if err != nil {
			t.Fatal(err)
		}
		// .11 to .13 are n1 to n3's (regex) addresses.
		if st.FreeIPs != 3 || len(st.FreeNodes) != 3 {
			t.Errorf("StartSeqDiscovery = %+v, want 3 nodes and 3 addresses", st)
		}
		got, err := Discover(ctx, s, report("u-x", "52:54:00:97:01:01"), discoveryTime)
		if err != nil {
			t.Fatal(err)
		}
		if got.Node != "cn1" || got.IP != netip.MustParseAddr("10.97.0.14") || got.Next != "reboot" {
			t.Errorf("Discover = %+v, want cn1 at 10.97.0.14, rebooting into img", got)
		}
		v, _ := LoadView(ctx, s)
		if g := v.NodeGroups("cn1"); !cmp.Equal(g, []string{"rack2", "all"}) {
			t.Errorf("cn1 groups %v", g)
		}
		if _, err := StartSeqDiscovery(ctx, s, SeqParams{Noderange: "x"}); !errors.Is(err, ErrDiscoveryRunning) {
			t.Errorf("StartSeqDiscovery while running = %v", err)
		}
		// A name without an address and no hostiprange: an error, nothing recorded.
		if _, err := StopSeqDiscovery(ctx, s); err != nil {
			t.Fatal(err)
		}
		if _, err := StartSeqDiscovery(ctx, s, SeqParams{Noderange: "x1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := Discover(ctx, s, report("u-y", "52:54:00:97:01:02"), discoveryTime); err == nil || !strings.Contains(err.Error(), "x1 has no address") {
			t.Errorf("Discover for a name without an address = %v", err)
		}
		if got := rows(t, s, "nodelist", Row{"node": "x1"}); len(got) != 0 {
			t.Errorf("a failed discovery created x1: %v", got)
		}
	})
}

func TestDiscoverSwitchPort(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *DB) {
		ctx := context.Background()
		discoverySite(t, s)
		update(t, s, func(tx Tx) error {
			return tx.Put("switch", Row{"node": "n2", "switch": "sw1", "port": "12"}, Row{"node": "n3", "switch": "sw1", "port": "Ethernet1/13"})
		})
		for i, tc := range []struct {
			name string
			nb   LLDPNeighbor
			want string
		}{
			{"by system name and port number", LLDPNeighbor{SysName: "sw1.cluster.test", PortID: "swp12"}, "n2"},
			{"by management address and port description", LLDPNeighbor{SysName: "leaf-a", MgmtAddr: netip.MustParseAddr("10.97.0.250"), PortID: "x", PortDesc: "ethernet1/13"}, "n3"},
			{"other port", LLDPNeighbor{SysName: "sw1", PortID: "swp112"}, ""},
			{"other switch", LLDPNeighbor{SysName: "sw2", PortID: "swp12"}, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := report(fmt.Sprintf("u-%d", i), fmt.Sprintf("52:54:00:97:02:%02x", i))
				r.NICs[0].Switch = tc.nb
				got, err := Discover(ctx, s, r, discoveryTime)
				if tc.want == "" {
					if !errors.Is(err, ErrNoMatch) {
						t.Errorf("Discover = %+v, %v, want ErrNoMatch", got, err)
					}
					return
				}
				if err != nil || got.Node != tc.want || got.Method != MethodSwitch {
					t.Errorf("Discover = %+v, %v, want %s by switch", got, err, tc.want)
				}
			})
		}
	})
}

func TestDefineDiscovered(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *DB) {
		ctx := context.Background()
		discoverySite(t, s)
		r := report("u-m", "52:54:00:97:03:03")
		r.NICs[0].Switch = LLDPNeighbor{SysName: "sw9", PortID: "7", MgmtAddr: netip.MustParseAddr("10.97.0.249")}
		if _, err := Discover(ctx, s, r, discoveryTime); !errors.Is(err, ErrNoMatch) {
			t.Fatalf("Discover = %v, want ErrNoMatch", err)
		}
		if _, err := DefineDiscovered(ctx, s, "u-nosuch", "n3", discoveryTime); !errors.Is(err, ErrNotFound) {
			t.Errorf("DefineDiscovered(unknown uuid) = %v, want ErrNotFound", err)
		}
		if _, err := DefineDiscovered(ctx, s, "u-m", "n99", discoveryTime); !errors.Is(err, ErrNotFound) {
			t.Errorf("DefineDiscovered(unknown node) = %v, want ErrNotFound", err)
		}
		got, err := DefineDiscovered(ctx, s, "u-m", "n3", discoveryTime)
		if err != nil || got.Node != "n3" || got.Method != MethodManual || got.Next != "reboot" {
			t.Fatalf("DefineDiscovered = %+v, %v", got, err)
		}
		v, _ := LoadView(ctx, s)
		if n, err := v.NodeByMAC(r.BootMAC); err != nil || n.Name != "n3" {
			t.Errorf("NodeByMAC = %v, %v, want n3", n, err)
		}
		// The switch port it was seen on is remembered for next time.
		sw := rows(t, s, "switch", Row{"node": "n3"})
		if len(sw) != 1 || sw[0]["switch"] != "sw9" || sw[0]["port"] != "7" || sw[0]["interface"] != "eth0" {
			t.Errorf("switch rows of n3 = %v", sw)
		}
		// The same board moved to n2: n3 loses the MAC.
		if _, err := DefineDiscovered(ctx, s, "u-m", "n2", discoveryTime); err != nil {
			t.Fatal(err)
		}
		v, _ = LoadView(ctx, s)
		if got := v.NodeAttr("n3", "mac"); got != "" {
			t.Errorf("n3 mac = %q after its MAC went to n2", got)
		}
	})
}

func TestDiscoverBadInput(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *DB) {
		ctx := context.Background()
		discoverySite(t, s)
		before := rows(t, s, "discoverydata", nil)
		for name, d := range map[string]Discovered{
			"no uuid":      {BootMAC: mustMAC("52:54:00:97:00:01")},
			"uuid blank":   {UUID: "a b", BootMAC: mustMAC("52:54:00:97:00:01")},
			"no MAC":       {UUID: "u"},
			"long serial":  {UUID: "u", BootMAC: mustMAC("52:54:00:97:00:01"), Serial: strings.Repeat("x", 300)},
			"newline mtm":  {UUID: "u", BootMAC: mustMAC("52:54:00:97:00:01"), MTM: "a\nb"},
			"infiniband?":  {UUID: "u", BootMAC: make(net.HardwareAddr, 20)},
			"uuid too big": {UUID: strings.Repeat("u", 65), BootMAC: mustMAC("52:54:00:97:00:01")},
		} {
			if _, err := Discover(ctx, s, d, discoveryTime); err == nil || errors.Is(err, ErrNoMatch) {
				t.Errorf("%s: Discover = %v, want a validation error", name, err)
			}
		}
		update(t, s, func(tx Tx) error { return tx.Put("chain", Row{"node": "compute", "chain": "dance"}) })
		if _, err := StartSeqDiscovery(ctx, s, SeqParams{Noderange: "n2"}); err != nil {
			t.Fatal(err)
		}
		if _, err := Discover(ctx, s, report("u-z", "52:54:00:97:00:0e"), discoveryTime); err == nil || !strings.Contains(err.Error(), `"dance"`) {
			t.Errorf("Discover with a bad chain = %v, want an error naming the step", err)
		}
		if got := rows(t, s, "discoverydata", nil); len(got) != len(before) {
			t.Errorf("failed discoveries changed discoverydata: %d rows, had %d", len(got), len(before))
		}
		if _, err := StartSeqDiscovery(ctx, s, SeqParams{}); err == nil {
			t.Errorf("StartSeqDiscovery without a noderange = nil error")
		}
	})
}

func TestSeqParamsRoundTrip(t *testing.T) {
	p := SeqParams{Noderange: "cn[1-4],cn10", HostIPRange: "10.97.0.[10-20]", Groups: "rack1,all", OSImage: "img"}
	if got := parseSeqParams(p.String()); got != p {
		t.Errorf("parseSeqParams(%q) = %+v, want %+v", p.String(), got, p)
	}
}

func TestPortMatches(t *testing.T) {
	for _, tc := range []struct {
		port, id, desc string
		want           bool
	}{
		{"12", "swp12", "", true},
		{"12", "swp112", "", false},
		{"12", "12", "", true},
		{"1/0/12", "GigabitEthernet1/0/12", "", true},
		{"12", "Gi1/0/12", "", false},
		{"Ethernet1/5", "x", "ethernet1/5", true},
		{"", "12", "", false},
	} {
		if got := portMatches(tc.port, LLDPNeighbor{PortID: tc.id, PortDesc: tc.desc}); got != tc.want {
			t.Errorf("portMatches(%q, id %q desc %q) = %v, want %v", tc.port, tc.id, tc.desc, got, tc.want)
		}
	}
}
