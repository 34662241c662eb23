package cluster

import (
	"context"
	"fmt"
	"github.com/provkit/provkit/internal/pgtest"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// benchStore fills a store with n nodes in groups with regex-valued attributes and
// per-node MACs, as bench/cluster/run.sh does through provctl. PROVKIT_BENCH_PG selects a
// PostgreSQL server instead of SQLite.
func benchStore(b *testing.B, n int) *DB {
	b.Helper()
	ctx := context.Background()
	dsn := filepath.Join(b.TempDir(), "bench.db")
	if pg := os.Getenv("PROVKIT_BENCH_PG"); pg != "" {
		dsn = pgtest.FreshDatabase(b, pg, "pk")
	}
	s, err := Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	nodes, macs := make([]Row, n), make([]Row, n)
	for i := range nodes {
		name := fmt.Sprintf("node%05d", i+1)
		nodes[i] = Row{"node": name, "groups": "compute,all"}
		macs[i] = Row{"node": name, "interface": "eth0", "mac": fmt.Sprintf("52:54:00:00:%02x:%02x", (i+1)/256, (i+1)%256)}
	}
	err = s.Update(ctx, func(tx Tx) error {
		if err := tx.Put("nodelist", nodes...); err != nil {
			return err
		}
		if err := tx.Put("mac", macs...); err != nil {
			return err
		}
		if err := tx.Put("hosts", Row{"node": "compute", "ip": `|node(\d+)|10.0.(($1-1)/250).(($1-1)%250+1)|`}); err != nil {
			return err
		}
		if err := tx.Put("ipmi", Row{"node": "compute", "bmc": `|node(\d+)|10.1.(($1-1)/250).(($1-1)%250+1)|`}); err != nil {
			return err
		}
		if err := tx.Put("nodetype", Row{"node": "compute", "os": "debian12", "arch": "x86_64", "profile": "compute"}); err != nil {
			return err
		}
		return tx.Put("nodehm", Row{"node": "compute", "mgt": "ipmi"})
	})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkLoadView(b *testing.B) {
	s := benchStore(b, 10000)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := LoadView(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNodeByMAC is the DHCP glue's question: which node has this MAC, with every
// attribute resolved. The view is loaded once; the first lookup builds the index.
func BenchmarkNodeByMAC(b *testing.B) {
	s := benchStore(b, 10000)
	v, err := LoadView(context.Background(), s)
	if err != nil {
		b.Fatal(err)
	}
	mac, _ := net.ParseMAC("52:54:00:00:13:88") // node05000
	b.ResetTimer()
	for b.Loop() {
		n, err := v.NodeByMAC(mac)
		if err != nil || n.Name != "node05000" || n.BMC != "10.1.19.250" {
			b.Fatalf("NodeByMAC = %+v, %v", n, err)
		}
	}
}

// BenchmarkNodeByNameCold is a single-node command's path: open nothing new, read only the
// node's rows (LoadViewOf) and resolve it.
func BenchmarkNodeByNameCold(b *testing.B) {
	s := benchStore(b, 10000)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		v, err := LoadViewOf(ctx, s, []string{"node05000"})
		if err != nil {
			b.Fatal(err)
		}
		if n, err := v.Node("node05000"); err != nil || n.IP.String() != "10.0.19.250" {
			b.Fatalf("Node = %+v, %v", n, err)
		}
	}
}
