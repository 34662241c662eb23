package glue

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/dhcp"
)

func TestDiscoveryBootAndScripts(t *testing.T) {
	_, v := testView(t, map[string][]cluster.Row{
		"site":     {{"key": "master", "value": "10.97.8.1"}, {"key": "discoverykcmdline", "value": "provkit.lldpwait=3"}},
		"nodelist": {{"node": "n1"}},
		"hosts":    {{"node": "n1", "ip": "10.97.8.11"}},
	})
	g := &Boot{Views: ViewSourceFunc(func() *cluster.View { return v }), HTTPPort: 8080,
		Addrs: &LocalAddrs{AddrsFn: func() ([]net.Addr, error) {
			return []net.Addr{&net.IPNet{IP: net.IPv4(10, 97, 8, 1), Mask: net.CIDRMask(24, 32)}}, nil
		}}}
	nets := []dhcp.Network{
		{Prefix: netip.MustParsePrefix("10.97.8.0/24"), ServerAddr: netip.MustParseAddr("10.97.8.1"),
			Ranges: []dhcp.Range{{First: netip.MustParseAddr("10.97.8.200"), Last: netip.MustParseAddr("10.97.8.250")}}},
		{Prefix: netip.MustParsePrefix("10.97.9.0/24")}, // no dynamic range: no discovery
	}
	g.DiscoveryBoot(v, nets)
	if got, want := nets[0].Boot.IPXE, "http://10.97.8.1:8080/tftpboot/xcat/xnba/nets/10.97.8.0_24"; got != want {
		t.Errorf("IPXE = %q, want %q", got, want)
	}
	if nets[1].Boot.IPXE != "" {
		t.Errorf("a network without a dynamic range boots discovery: %q", nets[1].Boot.IPXE)
	}
	read := func(client, name string) (string, error) {
		f, err := g.DiscoveryFiles().Open(context.Background(), netip.MustParseAddr(client), name)
		if err != nil {
			return "", err
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		return string(b), err
	}
	got, err := read("10.97.8.200", "xcat/xnba/nets/10.97.8.0_24")
	if err != nil {
		t.Fatal(err)
	}
	want := "#!ipxe\n#discovery\n" +
		"kernel http://10.97.8.1:8080/tftpboot/xcat/genesis.kernel.x86_64 provkit.discover=http://10.97.8.1:8080/api/v1/discover BOOTIF=01-${netX/mac:hexhyp} console=tty0 console=ttyS0,115200 panic=30 provkit.lldpwait=3\n" +
		"initrd http://10.97.8.1:8080/tftpboot/xcat/genesis.fs.x86_64.gz\nboot\n"
	if got != want {
		t.Errorf("discovery script =\n%s\nwant\n%s", got, want)
	}
	if got, err := read("10.97.8.11", "xcat/xnba/nets/10.97.8.0_24.uefi"); err != nil || !strings.Contains(got, "chain http://10.97.8.1:8080/tftpboot/xcat/xnba/nodes/n1") {
		t.Errorf("script for known n1 = %q, %v", got, err)
	}
	for _, bad := range []string{"xcat/xnba/nets/10.97.8.1_24", "xcat/xnba/nets/x_24", "xcat/xnba/nodes/n1", "xcat/xnba/nets/10.97.8.0"} {
		if _, err := read("10.97.8.200", bad); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%s) = %v, want ErrNotExist", bad, err)
		}
	}
}
