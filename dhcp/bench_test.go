package dhcp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// benchClients makes n clients' DISCOVER and REQUEST packets (broadcast, no relay), and a
// HostTable reserving an address for each.
func benchClients(b *testing.B, n int) (disc, req [][]byte, hosts *HostTable) {
	hosts = &HostTable{}
	for i := range n {
		mac := net.HardwareAddr{0x02, 0x91, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		a := netip.AddrFrom4([4]byte{10, 91, byte(16 + i>>8), byte(i)})
		if err := hosts.Put(Host{Name: fmt.Sprintf("n%05d", i), MAC: mac, IP: a}); err != nil {
			b.Fatal(err)
		}
		d, _ := dhcpv4.NewDiscovery(mac)
		disc = append(disc, d.ToBytes())
		r, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(a.AsSlice())),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP{10, 91, 0, 1})),
			dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer))
		req = append(req, r.ToBytes())
	}
	return disc, req, hosts
}

func benchState(b *testing.B, s *Server, journal bool) (*state, *slot) {
	st, err := s.compile()
	if err != nil {
		b.Fatal(err)
	}
	st.leases = newLeaseTable()
	if journal {
		j, err := openJournal(filepath.Join(b.TempDir(), "leases"), st.leases)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { j.close() })
		st.leases.j = j
	}
	w := newSlot()
	w.meta = pktMeta{ifindex: 2, ifname: "srv0", local: addrU32(ip("10.91.0.1")), link: true}
	return st, w
}

func benchNet() Network {
	return Network{Prefix: netip.MustParsePrefix("10.91.0.0/16"), Interface: "srv0", ServerAddr: ip("10.91.0.1"),
		Routers: []netip.Addr{ip("10.91.0.1")}, DNS: []netip.Addr{ip("10.91.0.1")}, Domain: "bench.test"}
}

// BenchmarkHandleReservation is one four-way exchange (DISCOVER and REQUEST handled,
// OFFER and ACK encoded) of a host among 10,000 reservations, with the lease journal.
func BenchmarkHandleReservation(b *testing.B) {
	disc, req, hosts := benchClients(b, 10000)
	st, w := benchState(b, &Server{Networks: []Network{benchNet()}, Hosts: hosts, DenyUnknown: true}, true)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k := i % len(disc)
		if _, ok := st.handle(ctx, w, disc[k]); !ok {
			b.Fatal("no offer")
		}
		if _, ok := st.handle(ctx, w, req[k]); !ok {
			b.Fatal("no ack")
		}
		flush(b, st)
	}
}

// flush writes the journal, as the writer does for a worker that waits for its ACK.
func flush(b *testing.B, st *state) {
	if err := st.leases.j.flush(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkHandleDynamic is one four-way exchange from the dynamic pool, with the journal.
func BenchmarkHandleDynamic(b *testing.B) {
	disc, _, _ := benchClients(b, 10000)
	n := benchNet()
	n.Ranges = []Range{{ip("10.91.64.1"), ip("10.91.255.250")}}
	st, w := benchState(b, &Server{Networks: []Network{n}}, true)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k := i % len(disc)
		rt, ok := st.handle(ctx, w, disc[k])
		if !ok {
			b.Fatal("no offer")
		}
		offer, _ := dhcpv4.FromBytes(rt.payload)
		b.StopTimer()
		r, _ := dhcpv4.NewRequestFromOffer(offer)
		pkt := r.ToBytes()
		b.StartTimer()
		if _, ok := st.handle(ctx, w, pkt); !ok {
			b.Fatal("no ack")
		}
		flush(b, st)
	}
}
