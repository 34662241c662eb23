package ha_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/provkit/provkit/ha"
	"github.com/provkit/provkit/ha/hatest"
)

// BenchmarkActivateDeactivate measures the package's own work in a failover, with the
// network faked and real files: database-type check, hosts file, two links moved and
// restored, three services, and back. The real takeover time is dominated by the lease,
// the ARP probe and the services (bench/ha/run.sh).
func BenchmarkActivateDeactivate(b *testing.B) {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	var links []ha.Link
	for _, d := range []string{"tftpboot", "install"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			b.Fatal(err)
		}
		links = append(links, ha.Link{Local: filepath.Join(dir, d)})
	}
	m := &ha.Manager{
		Interface: "eth0", VIP: netip.MustParsePrefix("10.96.0.10/24"), SharedDir: filepath.Join(dir, "shared"),
		Hostname: "mn", HostsFile: filepath.Join(dir, "hosts"), SetHostname: true, Links: links,
		Services: []ha.Service{&ha.Func{ServiceName: "database"}, &ha.Func{ServiceName: "provd"}, &ha.Func{ServiceName: "dns"}},
		StateDir: filepath.Join(dir, "state"), Network: &hatest.Network{}, Host: &hatest.Host{Name: "mn1"},
	}
	ctx := context.Background()
	if err := m.Setup(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Activate(ctx); err != nil {
			b.Fatal(err)
		}
		if err := m.Deactivate(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHostsAdd edits a 10,000-line hosts file, as a cluster's /etc/hosts can be.
func BenchmarkHostsAdd(b *testing.B) {
	var data []byte
	for i := range 10000 {
		data = append(data, netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String()+" node"+string(rune('a'+i%26))+"\n"...)
	}
	vip := netip.MustParseAddr("10.96.0.10")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		out, _ := ha.HostsAdd(data, vip, []string{"mn.cluster", "mn"}, "# provkit-ha")
		if _, removed := ha.HostsRemove(out, vip, "# provkit-ha"); !removed {
			b.Fatal("not removed")
		}
	}
}
