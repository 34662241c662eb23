package dhcp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// noLeaks fails the test if a goroutine of this package or of nclient4 outlives it.
func noLeaks(t testing.TB) {
	t.Helper()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			left := ourGoroutines()
			if len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutines left behind:\n%s", len(left), strings.Join(left, "\n\n"))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func ourGoroutines() []string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "provkit/dhcp.(*") || strings.Contains(g, "nclient4.(*Client)") {
			out = append(out, g)
		}
	}
	return out
}

// serving runs s on a loopback socket until the test ends and returns its address. The
// test fails if Serve returns an error.
func serving(t *testing.T, s *Server) *net.UDPAddr {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Conn = conn
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v, want nil after cancel", err)
		}
	})
	// Wait until it serves, so that Leases and friends work.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, err := s.Stats(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server did not start")
		}
		time.Sleep(time.Millisecond)
	}
	return conn.LocalAddr().(*net.UDPAddr)
}

func client(t *testing.T, srv *net.UDPAddr, mac net.HardwareAddr) *nclient4.Client {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := nclient4.NewWithConn(conn, mac, nclient4.WithServerAddr(srv),
		nclient4.WithTimeout(500*time.Millisecond), nclient4.WithRetry(4))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func loopNet() Network {
	return Network{
		Prefix:     netip.MustParsePrefix("10.91.0.0/24"),
		ServerAddr: ip("10.91.0.1"),
		Ranges:     []Range{{ip("10.91.0.100"), ip("10.91.0.199")}},
		Routers:    []netip.Addr{ip("10.91.0.254")},
		Domain:     "cluster.test",
		Boot:       Boot{BIOS: "undionly.kpxe", IPXE: "http://10.91.0.1/boot.ipxe"},
	}
}

func TestLoopbackExchanges(t *testing.T) {
	noLeaks(t)
	hosts := hostsOf(t, Host{Name: "n1", MAC: mac1, IP: ip("10.91.0.11")})
	s := &Server{Networks: []Network{loopNet()}, Hosts: hosts}
	addr := serving(t, s)
	ctx := context.Background()

	c1 := client(t, addr, mac1)
	l1, err := c1.Request(ctx, dhcpv4.WithOption(dhcpv4.OptClientArch(0)), dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE")))
	if err != nil {
		t.Fatalf("DORA of the reserved host: %v", err)
	}
	if got := l1.ACK.YourIPAddr.String(); got != "10.91.0.11" {
		t.Errorf("reserved host got %s, want 10.91.0.11", got)
	}
	if got := l1.ACK.BootFileName; got != "http://10.91.0.1/boot.ipxe" {
		t.Errorf("iPXE got file %q, want the script URL", got)
	}
	if got := l1.ACK.HostName(); got != "n1" {
		t.Errorf("host name %q, want n1", got)
	}

	c2 := client(t, addr, mac2)
	l2, err := c2.Request(ctx)
	if err != nil {
		t.Fatalf("DORA of an unknown client: %v", err)
	}
	if got := l2.ACK.YourIPAddr.String(); got != "10.91.0.100" {
		t.Errorf("unknown client got %s, want 10.91.0.100", got)
	}
	// RELEASE (nclient4 sends it to the server identifier, unreachable on loopback: send
	// it to the socket), then the lease is gone.
	rel, err := dhcpv4.NewReleaseFromACK(l2.ACK)
	if err != nil {
		t.Fatal(err)
	}
	sendTo(t, addr, rel)
	waitFor(t, func() bool {
		ls, _ := s.Leases()
		return len(ls) == 1
	}, "the released lease to go")
	ls, err := s.Leases()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || ls[0].IP != ip("10.91.0.11") || ls[0].State != LeaseBound || ls[0].MAC.String() != mac1.String() {
		t.Errorf("leases = %+v, want the reserved host's", ls)
	}
	st, _ := s.Stats()
	if st.Replied < 4 {
		t.Errorf("stats %+v: want at least 4 replies", st)
	}
}

func sendTo(t *testing.T, addr *net.UDPAddr, p *dhcpv4.DHCPv4) {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(p.ToBytes()); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLeasesSurviveRestart(t *testing.T) {
	noLeaks(t)
	file := filepath.Join(t.TempDir(), "leases")
	run := func(f func(addr *net.UDPAddr, s *Server)) {
		t.Run("", func(t *testing.T) {
			s := &Server{Networks: []Network{loopNet()}, LeaseFile: file}
			f(serving(t, s), s)
		})
	}
	var first []Lease
	run(func(addr *net.UDPAddr, s *Server) {
		for _, mac := range []net.HardwareAddr{mac1, mac2, mac3} {
			if _, err := client(t, addr, mac).Request(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		first, _ = s.Leases()
	})
	run(func(addr *net.UDPAddr, s *Server) {
		got, _ := s.Leases()
		if len(got) != 3 || len(first) != 3 {
			t.Fatalf("after restart %d leases, before %d, want 3", len(got), len(first))
		}
		for i := range got {
			if got[i].IP != first[i].IP || got[i].MAC.String() != first[i].MAC.String() || !got[i].Expires.Equal(first[i].Expires) {
				t.Errorf("lease %d: after restart %+v, before %+v", i, got[i], first[i])
			}
		}
		// A client known before the restart keeps its address; a new one gets a free one.
		l, err := client(t, addr, mac2).Request(context.Background())
		if err != nil || l.ACK.YourIPAddr.String() != first[1].IP.String() {
			t.Errorf("known client after restart: %v, %v; want %s", l, err, first[1].IP)
		}
		l, err = client(t, addr, net.HardwareAddr{2, 0, 0, 0, 0, 7}).Request(context.Background())
		if err != nil || l.ACK.YourIPAddr.String() != "10.91.0.103" {
			t.Errorf("new client after restart: %v, %v; want 10.91.0.103", l, err)
		}
		// makedhcp -d: forget a lease, persisted.
		if ok, err := s.ForgetLease(mac3); !ok || err != nil {
			t.Errorf("ForgetLease = %v, %v", ok, err)
		}
	})
	run(func(addr *net.UDPAddr, s *Server) {
		got, _ := s.Leases()
		if len(got) != 3 {
			t.Errorf("after forget and restart: %d leases, want 3: %+v", len(got), got)
		}
		for _, l := range got {
			if l.MAC.String() == mac3.String() {
				t.Errorf("forgotten lease came back: %+v", l)
			}
		}
	})
}

func TestServeLifecycle(t *testing.T) {
	noLeaks(t)
	s := &Server{Networks: []Network{loopNet()}}
	if _, err := s.Leases(); !errors.Is(err, ErrNotServing) {
		t.Errorf("Leases before Serve = %v, want ErrNotServing", err)
	}
	serving(t, s)
	c2, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	s2 := s
	old := s2.Conn
	s2.Conn = c2
	if err := s2.Serve(context.Background()); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Serve = %v, want an error", err)
	}
	s2.Conn = old
	// Zero value: no networks, serves (ignores everything) and stops cleanly.
	var z Server
	conn, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	z.Conn = conn
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := z.Serve(ctx); err != nil {
		t.Errorf("zero Server: Serve = %v, want nil", err)
	}
}

func TestServeNeedsServerAddr(t *testing.T) {
	n := loopNet()
	n.ServerAddr = netip.Addr{}
	conn, _ := net.ListenPacket("udp4", "0.0.0.0:0")
	err := (&Server{Networks: []Network{n}, Conn: conn}).Serve(context.Background())
	if err == nil || !strings.Contains(err.Error(), "ServerAddr is required") {
		t.Errorf("Serve = %v, want ServerAddr error", err)
	}
}

func TestHostTable(t *testing.T) {
	var tab HostTable
	if err := tab.Put(Host{Name: "n1", MAC: mac1, IP: ip("10.91.0.11")}); err != nil {
		t.Fatal(err)
	}
	if err := tab.Put(Host{Name: "n2", MAC: mac2, IP: ip("10.91.0.11")}); err != nil {
		t.Fatal(err)
	}
	// The address moved to n2: n1 is gone (one host per address).
	if _, err := tab.LookupHost(context.Background(), mac1); !errors.Is(err, ErrNotFound) {
		t.Errorf("n1 after its address went to n2: %v, want ErrNotFound", err)
	}
	if h, err := tab.LookupAddr(context.Background(), ip("10.91.0.11")); err != nil || h.Name != "n2" {
		t.Errorf("LookupAddr = %v, %v", h.Name, err)
	}
	if err := tab.Put(Host{Name: "bad"}); err == nil {
		t.Errorf("Put without MAC or client id succeeded")
	}
	if err := tab.Put(Host{Name: "v6", MAC: mac3, IP: ip("fd00::1")}); err == nil {
		t.Errorf("Put with an IPv6 address succeeded")
	}
	if !tab.Delete(mac2) || tab.Delete(mac2) || tab.Len() != 0 {
		t.Errorf("Delete / Len wrong: len %d", tab.Len())
	}
	var f Hosts = HostsFunc(func(ctx context.Context, mac net.HardwareAddr) (Host, error) {
		return Host{Name: mac.String()}, nil
	})
	if h, _ := f.LookupHost(context.Background(), mac1); h.Name != mac1.String() {
		t.Errorf("HostsFunc = %q", h.Name)
	}
}

func TestServeInterfacesNeedSocket(t *testing.T) {
	conn, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	err := (&Server{Networks: []Network{loopNet()}, Interfaces: []string{"eth0"}, Conn: conn}).Serve(context.Background())
	if err == nil || !strings.Contains(err.Error(), "arrival interface") {
		t.Errorf("Serve = %v, want an error about the arrival interface", err)
	}
}
