package dns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"

	mdns "github.com/miekg/dns"
)

func benchTable(b *testing.B, n int) *Table {
	b.Helper()
	hosts := make([]Host, 0, n)
	for i := 1; i <= n; i++ {
		hosts = append(hosts, Host{Name: fmt.Sprintf("n%d.cluster.test.", i), Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, 97, byte(i / 250), byte(i%250 + 1)})}})
	}
	t, err := NewTable([]Zone{{Name: "cluster.test."}, {Name: "97.10.in-addr.arpa."}}, hosts)
	if err != nil {
		b.Fatal(err)
	}
	return t
}

// BenchmarkNewTable is the rebuild provd does when the tables change (10,000 nodes).
func BenchmarkNewTable(b *testing.B) {
	hosts := make([]Host, 0, 10000)
	for i := 1; i <= 10000; i++ {
		hosts = append(hosts, Host{Name: fmt.Sprintf("n%d.cluster.test.", i), Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, 97, byte(i / 250), byte(i%250 + 1)})},
			Aliases: []string{fmt.Sprintf("a%d.cluster.test.", i)}})
	}
	zones := []Zone{{Name: "cluster.test."}, {Name: "97.10.in-addr.arpa."}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewTable(zones, hosts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAnswer is the per-query work without the socket: decode, look up, pack.
func BenchmarkAnswer(b *testing.B) {
	st := &state{records: benchTable(b, 10000), openRec: true, log: discard()}
	st.fwd = newForwarder(nil, 0, 0, 0, 0, nil, st.log)
	pkt, _ := question("n4321.cluster.test.", mdns.TypeA).Pack()
	out := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		q, _ := st.decode(pkt, 0)
		r, _ := st.answer(q)
		if _, err := r.PackBuffer(out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServerUDP is queries per second over loopback UDP, clients in parallel, each
// with one query in flight.
func BenchmarkServerUDP(b *testing.B) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &Server{Records: benchTable(b, 10000), PacketConn: pc}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	addr := pc.LocalAddr().String()
	b.ReportAllocs()
	b.RunParallel(func(p *testing.PB) {
		c, err := net.Dial("udp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		pkt, _ := question("n4321.cluster.test.", mdns.TypeA).Pack()
		buf := make([]byte, 512)
		for p.Next() {
			if _, err := c.Write(pkt); err != nil {
				b.Error(err)
				return
			}
			if _, err := c.Read(buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
