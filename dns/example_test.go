package dns_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/provkit/provkit/dns"
)

func Example() {
	table, err := dns.NewTable(
		[]dns.Zone{{Name: "cluster.test."}, {Name: "0.97.10.in-addr.arpa."}},
		[]dns.Host{{Name: "n1.cluster.test.", Addrs: []netip.Addr{netip.MustParseAddr("10.97.0.11")},
			Aliases: []string{"login.cluster.test."}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	ln, _ := net.Listen("tcp", pc.LocalAddr().String())
	srv := &dns.Server{Records: table, PacketConn: pc, Listener: ln}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx) }()

	c := &mdns.Client{Timeout: 5 * time.Second}
	for _, q := range []struct {
		name string
		typ  uint16
	}{{"login.cluster.test.", mdns.TypeA}, {"11.0.97.10.in-addr.arpa.", mdns.TypePTR}, {"n2.cluster.test.", mdns.TypeA}} {
		m := new(mdns.Msg).SetQuestion(q.name, q.typ)
		r, _, err := c.Exchange(m, pc.LocalAddr().String())
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(q.name, mdns.RcodeToString[r.Rcode])
		for _, rr := range r.Answer {
			fmt.Println(" ", rr)
		}
	}
	cancel()
	fmt.Println("Serve:", <-done)
	// Output:
	// login.cluster.test. NOERROR
	//   login.cluster.test.	60	IN	CNAME	n1.cluster.test.
	//   n1.cluster.test.	60	IN	A	10.97.0.11
	// 11.0.97.10.in-addr.arpa. NOERROR
	//   11.0.97.10.in-addr.arpa.	60	IN	PTR	n1.cluster.test.
	// n2.cluster.test. NXDOMAIN
	// Serve: <nil>
}

// ExampleZoneFile_WriteTo renders a zone for BIND, as makedns does.
func ExampleZoneFile_WriteTo() {
	table, _ := dns.NewTable(
		[]dns.Zone{{Name: "cluster.test.", Serial: dns.NextSerial(0, time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)), NS: []string{"mgt.cluster.test."}}},
		[]dns.Host{
			{Name: "mgt.cluster.test.", Addrs: []netip.Addr{netip.MustParseAddr("10.97.0.1")}},
			{Name: "n1.cluster.test.", Addrs: []netip.Addr{netip.MustParseAddr("10.97.0.11")}},
		})
	for _, zf := range table.ZoneFiles() {
		zf.WriteTo(os.Stdout)
	}
	// Output:
	// ; zone cluster.test., written by provkit makedns (serial 2026010200)
	// $ORIGIN cluster.test.
	// $TTL 60
	// @	IN	SOA	mgt.cluster.test. hostmaster.cluster.test. (
	// 		2026010200	; serial
	// 		3600	; refresh
	// 		900	; retry
	// 		604800	; expire
	// 		10 )	; negative TTL
	// @	IN	NS	mgt.cluster.test.
	// mgt	IN	A	10.97.0.1
	// n1	IN	A	10.97.0.11
}
