//go:build integration

package ha_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/provkit/provkit/ha"
	"github.com/provkit/provkit/internal/netns"
	"github.com/provkit/provkit/internal/testenv"
)

// lan makes a switch namespace with a bridge and one namespace per host, each joined to the
// bridge by its eth0 with the given address (CIDR).
func lan(t *testing.T, addrs ...string) []*netns.NS {
	t.Helper()
	sw := netns.New(t, "sw")
	sw.MustIP(t, "link", "add", "br0", "type", "bridge")
	sw.MustIP(t, "link", "set", "br0", "up")
	var hosts []*netns.NS
	for i, a := range addrs {
		h := netns.New(t, "h")
		port := "p" + string(rune('0'+i))
		netns.Veth(t, h, "eth0", a, sw, port, "")
		sw.MustIP(t, "link", "set", port, "master", "br0")
		hosts = append(hosts, h)
	}
	return hosts
}

func macOf(t *testing.T, ns *netns.NS, ifname string) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	if err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return mac
}

func ipOut(t *testing.T, ns *netns.NS, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns.Name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
	return string(out)
}

// eventually polls cond until it holds (a state change happening elsewhere), or fails.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNetnsSystemNetwork runs SystemNetwork on real interfaces: the ARP probe sees a host
// that has the address, Up announces the address so a neighbour's cache moves to the new
// MAC without asking, and an address with a lifetime vanishes by itself.
func TestNetnsSystemNetwork(t *testing.T) {
	testenv.Require(t, testenv.Root(), testenv.Program("ip"))
	hosts := lan(t, "10.96.1.11/24", "10.96.1.12/24", "10.96.1.50/24")
	a, b, c := hosts[0], hosts[1], hosts[2]
	vip := netip.MustParsePrefix("10.96.1.10/24")
	n := ha.SystemNetwork{Probes: 2, ProbeWait: 100 * time.Millisecond}
	ctx := context.Background()
	do := func(ns *netns.NS, fn func() error) error { return ns.Do(fn) }

	if err := do(a, func() error { return n.Probe(ctx, "eth0", vip.Addr()) }); err != nil {
		t.Fatalf("Probe of a free address = %v", err)
	}
	b.MustIP(t, "addr", "add", vip.String(), "dev", "eth0")
	err := do(a, func() error { return n.Probe(ctx, "eth0", vip.Addr()) })
	var iu *ha.InUseError
	if !errors.As(err, &iu) || iu.MAC.String() != macOf(t, b, "eth0").String() {
		t.Fatalf("Probe with b holding the address = %v, want InUseError from %s", err, macOf(t, b, "eth0"))
	}
	err = do(b, func() error { return n.Probe(ctx, "eth0", vip.Addr()) })
	if !errors.As(err, &iu) || iu.Local != "eth0" {
		t.Fatalf("Probe on the host that has it = %v, want InUseError on this host's eth0", err)
	}
	b.MustIP(t, "addr", "del", vip.String(), "dev", "eth0")

	// a takes the address (with xCAT's alias label); c talks to it and caches a's MAC.
	var added bool
	if err := do(a, func() error {
		var err error
		added, err = n.Up(ctx, ha.VIP{Interface: "eth0", Label: "eth0:1", Prefix: vip})
		return err
	}); err != nil || !added {
		t.Fatalf("Up = %v, %v", added, err)
	}
	if out := ipOut(t, a, "-4", "addr", "show", "dev", "eth0"); !strings.Contains(out, "10.96.1.10/24") || !strings.Contains(out, "eth0:1") {
		t.Fatalf("a's eth0 after Up:\n%s", out)
	}
	// A TCP connection attempt (refused: nothing listens) makes c resolve the VIP.
	if err := do(c, func() error {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(vip.Addr().String(), "9"), 2*time.Second)
		if err == nil {
			conn.Close()
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			return err
		}
		return nil
	}); err != nil {
		t.Fatalf("c connects to the VIP on a: %v", err)
	}
	neigh := func() string { return ipOut(t, c, "neigh", "show", vip.Addr().String()) }
	if !strings.Contains(neigh(), macOf(t, a, "eth0").String()) {
		t.Fatalf("c's neighbour entry: %s, want a's MAC", neigh())
	}
	// The address moves to b: c learns b's MAC from the gratuitous ARP alone.
	if err := do(a, func() error { return n.Down(ctx, ha.VIP{Interface: "eth0", Prefix: vip}) }); err != nil {
		t.Fatal(err)
	}
	if err := do(b, func() error {
		_, err := n.Up(ctx, ha.VIP{Interface: "eth0", Prefix: vip, Lifetime: time.Second})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "c's cache has b's MAC for the VIP", func() bool { return strings.Contains(neigh(), macOf(t, b, "eth0").String()) })

	// Refreshing keeps it; without a refresh the kernel deletes it.
	if err := do(b, func() error {
		var err error
		added, err = n.Up(ctx, ha.VIP{Interface: "eth0", Prefix: vip, Lifetime: time.Second})
		return err
	}); err != nil || added {
		t.Fatalf("refresh: Up = %v, %v; want not added", added, err)
	}
	eventually(t, "the address expires on b", func() bool {
		return !strings.Contains(ipOut(t, b, "-4", "addr", "show", "dev", "eth0"), "10.96.1.10")
	})
	if err := do(b, func() error { return n.Down(ctx, ha.VIP{Interface: "eth0", Prefix: vip}) }); err != nil {
		t.Errorf("Down of an absent address = %v", err)
	}
	if err := do(a, func() error { return n.Probe(ctx, "nosuch0", vip.Addr()) }); err == nil || !strings.Contains(err.Error(), "nosuch0") {
		t.Errorf("Probe on a missing interface = %v", err)
	}
}
