package glue

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/dhcp"
)

func TestDHCPHosts(t *testing.T) {
	ctx := context.Background()
	s, err := cluster.Open(ctx, filepath.Join(t.TempDir(), "provkit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Update(ctx, func(tx cluster.Tx) error {
		for tab, rows := range map[string][]cluster.Row{
			"nodelist": {{"node": "n1", "groups": "compute"}, {"node": "n2", "groups": "compute"}, {"node": "n3", "groups": "compute"}, {"node": "noip", "groups": "other"}},
			"hosts":    {{"node": "compute", "ip": `|n(\d+)|10.0.0.($1+10)|`}},
			"noderes":  {{"node": "compute", "netboot": "xnba"}, {"node": "n2", "netboot": "pxe", "tftpserver": "10.0.0.5"}, {"node": "n3", "netboot": "grub2"}},
			"mac": {
				{"node": "n1", "mac": "52:54:00:00:00:01|52:54:00:00:00:11!n1-ipmi|52:54:00:00:00:21!*NOIP*"},
				{"node": "n2", "mac": "52:54:00:00:00:02"},
				{"node": "n3", "mac": "52:54:00:00:00:04"},
				{"node": "noip", "mac": "52:54:00:00:00:03"},
			},
		} {
			if err := tx.Put(tab, rows...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := cluster.LoadView(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	addrs := &LocalAddrs{AddrsFn: func() ([]net.Addr, error) {
		return []net.Addr{&net.IPNet{IP: net.IPv4(10, 0, 0, 1), Mask: net.CIDRMask(24, 32)}}, nil
	}}
	h := &DHCPHosts{Boot: &Boot{Views: ViewSourceFunc(func() *cluster.View { return v }), Addrs: addrs, HTTPPort: 8080}}
	look := func(mac string) (dhcp.Host, error) {
		hw, _ := net.ParseMAC(mac)
		return h.LookupHost(ctx, hw)
	}
	n1, err := look("52:54:00:00:00:01")
	if err != nil || n1.Name != "n1" || n1.IP != netip.MustParseAddr("10.0.0.11") || n1.Boot.IPXE != "http://10.0.0.1:8080/tftpboot/xcat/xnba/nodes/n1" || n1.Boot.BIOS != "xcat/xnba.kpxe" {
		t.Errorf("n1 = %+v, %v", n1, err)
	}
	if alias, _ := look("52:54:00:00:00:11"); alias.Hostname != "n1-ipmi" || alias.Deny {
		t.Errorf("n1's second MAC = %+v, want host name n1-ipmi", alias)
	}
	if denied, _ := look("52:54:00:00:00:21"); !denied.Deny {
		t.Errorf("a mac!*NOIP* entry = %+v, want Deny", denied)
	}
	n2, _ := look("52:54:00:00:00:02")
	if n2.Boot.BIOS != "pxelinux.0" || n2.Boot.NextServer != netip.MustParseAddr("10.0.0.5") || n2.Boot.IPXE != "" {
		t.Errorf("n2 (netboot=pxe, tftpserver set) = %+v", n2.Boot)
	}
	n3, _ := look("52:54:00:00:00:04")
	if n3.Boot.BOOTP != "boot/grub2/grub2-n3" || n3.Boot.EFI64 != "boot/grub2/grub2-n3" || n3.Boot.IPXE != "" {
		t.Errorf("n3 (netboot=grub2: POWER firmware boots over BOOTP) = %+v", n3.Boot)
	}
	if _, err := look("52:54:00:00:00:03"); !errors.Is(err, dhcp.ErrNotFound) {
		t.Errorf("a node without an IP: err = %v, want dhcp.ErrNotFound", err)
	}
	if _, err := look("52:54:00:ff:ff:ff"); !errors.Is(err, dhcp.ErrNotFound) {
		t.Errorf("an unknown MAC: err = %v, want dhcp.ErrNotFound", err)
	}
}

func TestDHCPRanges(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []dhcp.Range
		bad  bool
	}{
		{"10.0.0.200-10.0.0.250", []dhcp.Range{{First: netip.MustParseAddr("10.0.0.200"), Last: netip.MustParseAddr("10.0.0.250")}}, false},
		{"10.0.0.10-10.0.0.20;10.0.1.0/30", []dhcp.Range{{First: netip.MustParseAddr("10.0.0.10"), Last: netip.MustParseAddr("10.0.0.20")}, {First: netip.MustParseAddr("10.0.1.1"), Last: netip.MustParseAddr("10.0.1.2")}}, false},
		{"10.0.0.250-10.0.0.200", nil, true},
		{"garbage", nil, true},
	} {
		got, err := dhcpRanges(c.in)
		if (err != nil) != c.bad {
			t.Errorf("dhcpRanges(%q) error = %v, want error %v", c.in, err, c.bad)
			continue
		}
		if !c.bad && len(got) != len(c.want) {
			t.Errorf("dhcpRanges(%q) = %v, want %v", c.in, got, c.want)
			continue
		}
		for i := range c.want {
			if got[i] != c.want[i] {
				t.Errorf("dhcpRanges(%q)[%d] = %v, want %v", c.in, i, got[i], c.want[i])
			}
		}
	}
}
