//go:build integration

package dhcp

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

	"github.com/provkit/provkit/internal/netns"
	"github.com/provkit/provkit/internal/testenv"
)

// These tests use addresses in 10.91.0.0/16 (the dhcp block of DEVELOPING.md) and fd91::/64,
// inside namespaces they make.

// pair makes a server and a client namespace joined by srv0 (srvAddr) and cli0 (cliAddr,
// may be empty), the client's MAC set to mac.
func pair(t *testing.T, srvAddr, cliAddr string, mac net.HardwareAddr) (srv, cli *netns.NS) {
	t.Helper()
	srv, cli = netns.New(t, "ds"), netns.New(t, "dc")
	netns.Veth(t, srv, "srv0", srvAddr, cli, "cli0", cliAddr)
	if mac != nil {
		cli.MustIP(t, "link", "set", "cli0", "address", mac.String())
	}
	return srv, cli
}

// serveIn runs s on a Socket opened in ns until the test ends.
func serveIn(t *testing.T, ns *netns.NS, s *Server) {
	t.Helper()
	var sock *Socket
	if err := ns.Do(func() (err error) {
		sock, err = ListenSocket(":67")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !sock.LinkLayer() {
		t.Fatal("no packet socket: CAP_NET_RAW missing")
	}
	s.Conn = sock
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
	})
	waitFor(t, func() bool { _, err := s.Stats(); return err == nil }, "the server to start")
}

func run(t *testing.T, ns *netns.NS, timeout time.Duration, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := ns.Command(ctx, argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

func TestNetnsDhclient(t *testing.T) {
	testenv.Require(t, testenv.Root(), testenv.Program("ip", "dhclient"))
	noLeaks(t)
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x91, 0x0a, 0x01}
	srvNS, cliNS := pair(t, "10.91.10.1/24", "", mac)
	hosts := hostsOf(t, Host{Name: "node01", MAC: mac, IP: ip("10.91.10.11")})
	s := &Server{
		Networks: []Network{{
			Prefix: netip.MustParsePrefix("10.91.10.0/24"), Interface: "srv0",
			Routers: []netip.Addr{ip("10.91.10.254")}, DNS: []netip.Addr{ip("10.91.10.1")},
			Domain: "cluster.test", LeaseTime: 10 * time.Minute,
		}},
		Hosts: hosts, DenyUnknown: true, LeaseFile: filepath.Join(t.TempDir(), "leases"),
	}
	serveIn(t, srvNS, s)
	dir := t.TempDir()
	lf, pf := filepath.Join(dir, "dhclient.leases"), filepath.Join(dir, "dhclient.pid")
	// dhclient does not set the broadcast flag: the OFFER and ACK reach it at its MAC
	// through the server's packet socket.
	run(t, cliNS, 30*time.Second, "dhclient", "-4", "-1", "-v", "-sf", "/bin/true", "-lf", lf, "-pf", pf, "cli0")
	leases, err := os.ReadFile(lf)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"fixed-address 10.91.10.11;", "option routers 10.91.10.254;",
		`option domain-name "cluster.test";`, "option host-name \"node01\";", "option dhcp-server-identifier 10.91.10.1;",
		"option dhcp-lease-time 600;"} {
		if !strings.Contains(string(leases), want) {
			t.Errorf("dhclient lease lacks %q:\n%s", want, leases)
		}
	}
	// Release: dhclient -r sends DHCPRELEASE unicast to the server, from the address the
	// script would have configured (ours is /bin/true), and exits.
	cliNS.MustIP(t, "addr", "add", "10.91.10.11/24", "dev", "cli0")
	run(t, cliNS, 30*time.Second, "dhclient", "-4", "-r", "-v", "-sf", "/bin/true", "-lf", lf, "-pf", pf, "cli0")
	waitFor(t, func() bool { ls, _ := s.Leases(); return len(ls) == 0 }, "the released lease to go")
}

func TestNetnsUdhcpc(t *testing.T) {
	testenv.Require(t, testenv.Root(), testenv.Program("ip", "busybox"))
	noLeaks(t)
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x91, 0x0b, 0x01}
	srvNS, cliNS := pair(t, "10.91.11.1/24", "", mac)
	var mu sync.Mutex // OnDiscover runs on the server's workers
	var seen []Discovery
	s := &Server{
		Networks: []Network{{
			Prefix: netip.MustParsePrefix("10.91.11.0/24"), Interface: "srv0",
			Ranges:  []Range{{ip("10.91.11.100"), ip("10.91.11.150")}},
			Routers: []netip.Addr{ip("10.91.11.254")}, MTU: 1400, Domain: "cluster.test",
			Boot: Boot{BIOS: "undionly.kpxe", NextServer: ip("10.91.11.5")},
		}},
		Hosts:      hostsOf(t, Host{Name: "kr1", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, IP: ip("10.91.11.11")}),
		OnDiscover: func(d Discovery) { mu.Lock(); seen = append(seen, d); mu.Unlock() },
	}
	serveIn(t, srvNS, s)
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	envf := filepath.Join(dir, "env")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] && env > "+envf+"\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"to the MAC", nil},
		{"broadcast flag", []string{"-B"}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			os.Remove(envf)
			argv := append([]string{"busybox", "udhcpc", "-i", "cli0", "-n", "-q", "-f", "-t", "5", "-T", "1",
				"-s", script, "-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000", "-O", "mtu"}, mode.args...)
			run(t, cliNS, 30*time.Second, argv...)
			env, err := os.ReadFile(envf)
			if err != nil {
				t.Fatalf("udhcpc ran no bound script: %v", err)
			}
			for _, want := range []string{"ip=10.91.11.100", "router=10.91.11.254", "mtu=1400", "domain=cluster.test",
				"boot_file=undionly.kpxe", "siaddr=10.91.11.5", "serverid=10.91.11.1", "subnet=255.255.255.0"} {
				if !strings.Contains(string(env), want+"\n") {
					t.Errorf("udhcpc environment lacks %s:\n%s", want, env)
				}
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 || seen[0].MAC.String() != mac.String() || seen[0].Interface != "srv0" || seen[0].Arch != ArchBIOS {
		t.Errorf("OnDiscover saw %+v, want the udhcpc client on srv0 with arch 0", seen)
	}
}

// TestNetnsRelay runs ISC dhcrelay between a client and the server: client (dhclient) --
// cli0 | relay namespace, rcli0 10.91.13.1/24, rsrv0 10.91.12.2/24 | srv0 10.91.12.1/24.
// The server picks the remote subnet by giaddr, answers the relay on port 67, and echoes
// option 82, which a capture on the relay's upstream interface checks.
func TestNetnsRelay(t *testing.T) {
	testenv.Require(t, testenv.Root(), testenv.Program("ip", "dhclient", "dhcrelay"))
	noLeaks(t)
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x91, 0x0d, 0x01}
	srvNS, relNS, cliNS := netns.New(t, "ds"), netns.New(t, "dr"), netns.New(t, "dc")
	netns.Veth(t, srvNS, "srv0", "10.91.12.1/24", relNS, "rsrv0", "10.91.12.2/24")
	netns.Veth(t, relNS, "rcli0", "10.91.13.1/24", cliNS, "cli0", "")
	cliNS.MustIP(t, "link", "set", "cli0", "address", mac.String())
	srvNS.MustIP(t, "route", "add", "10.91.13.0/24", "via", "10.91.12.2")
	s := &Server{
		Networks: []Network{
			{Prefix: netip.MustParsePrefix("10.91.12.0/24"), Interface: "srv0"},
			{Prefix: netip.MustParsePrefix("10.91.13.0/24"), ServerAddr: ip("10.91.12.1"),
				Ranges: []Range{{ip("10.91.13.100"), ip("10.91.13.150")}}, Routers: []netip.Addr{ip("10.91.13.1")}},
		},
		LeaseFile: filepath.Join(t.TempDir(), "leases"),
	}
	serveIn(t, srvNS, s)

	// Capture what the server sends to the relay.
	var capFD int
	if err := relNS.Do(func() error {
		ifi, err := net.InterfaceByName("rsrv0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(unix.ETH_P_IP)))
		if err != nil {
			return err
		}
		capFD = fd
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index})
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(capFD)
	_ = unix.SetsockoptTimeval(capFD, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
	replies := make(chan *dhcpv4.DHCPv4, 16)
	capDone := make(chan struct{})
	go func() {
		defer close(capDone)
		buf := make([]byte, 2048)
		deadline := time.Now().Add(40 * time.Second)
		for time.Now().Before(deadline) {
			n, _, err := unix.Recvfrom(capFD, buf, 0)
			if err != nil {
				if err == unix.EAGAIN || err == unix.EINTR {
					select {
					case <-replies:
					default:
					}
					continue
				}
				return
			}
			pkt := buf[:n]
			if n < 28 || pkt[9] != 17 || binary.BigEndian.Uint16(pkt[20:]) != 67 || binary.BigEndian.Uint16(pkt[22:]) != 67 ||
				!net.IP(pkt[12:16]).Equal(net.IP{10, 91, 12, 1}) {
				continue
			}
			if p, err := dhcpv4.FromBytes(pkt[28:]); err == nil {
				select {
				case replies <- p:
				default:
				}
				if p.MessageType() == dhcpv4.MessageTypeAck {
					return
				}
			}
		}
	}()

	relayCtx, stopRelay := context.WithCancel(context.Background())
	relay := relNS.Command(relayCtx, "dhcrelay", "-4", "-d", "-a", "--no-pid", "-id", "rcli0", "-iu", "rsrv0", "10.91.12.1")
	var relayOut strings.Builder
	relay.Stdout, relay.Stderr = &relayOut, &relayOut
	if err := relay.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stopRelay()
		_ = relay.Wait()
		if t.Failed() {
			t.Logf("dhcrelay:\n%s", relayOut.String())
		}
	}()
	time.Sleep(300 * time.Millisecond) // dhcrelay opens its sockets

	dir := t.TempDir()
	lf, pf := filepath.Join(dir, "leases"), filepath.Join(dir, "pid")
	run(t, cliNS, 40*time.Second, "dhclient", "-4", "-1", "-v", "-sf", "/bin/true", "-lf", lf, "-pf", pf, "cli0")
	leases, _ := os.ReadFile(lf)
	for _, want := range []string{"fixed-address 10.91.13.100;", "option routers 10.91.13.1;", "option dhcp-server-identifier 10.91.12.1;"} {
		if !strings.Contains(string(leases), want) {
			t.Errorf("dhclient lease through the relay lacks %q:\n%s", want, leases)
		}
	}
	<-capDone
	var ack *dhcpv4.DHCPv4
	for len(replies) > 0 {
		if p := <-replies; p.MessageType() == dhcpv4.MessageTypeAck {
			ack = p
		}
	}
	if ack == nil {
		t.Fatal("captured no ACK from the server to the relay")
	}
	ri := ack.RelayAgentInfo()
	if ri == nil || string(ri.Get(dhcpv4.AgentCircuitIDSubOption)) != "rcli0" {
		t.Errorf("ACK to the relay: option 82 = %v, want the relay's circuit id rcli0 echoed", ri)
	}
	if got := ack.GatewayIPAddr.String(); got != "10.91.13.1" {
		t.Errorf("ACK giaddr = %s, want 10.91.13.1", got)
	}
}

func TestNetnsRouterAdvertisement(t *testing.T) {
	testenv.Require(t, testenv.Root(), testenv.Program("ip", "rdisc6"))
	noLeaks(t)
	srvNS, cliNS := pair(t, "", "", nil)
	// Link-local addresses without duplicate address detection, so both ends can talk at once.
	srvNS.MustIP(t, "addr", "add", "fe80::91:1/64", "dev", "srv0", "nodad")
	cliNS.MustIP(t, "addr", "add", "fe80::91:2/64", "dev", "cli0", "nodad")
	var conn *RAConn
	if err := srvNS.Do(func() (err error) { conn, err = ListenRA("srv0"); return err }); err != nil {
		t.Fatal(err)
	}
	ra := &RouterAdvertiser{Conn: conn, Prefixes: []netip.Prefix{netip.MustParsePrefix("fd91::/64")}, MTU: 1500}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ra.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
	}()
	out := run(t, cliNS, 20*time.Second, "rdisc6", "-1", "-n", "-r", "5", "-w", "1000", "cli0")
	for _, re := range []string{`Prefix\s+:\s+fd91::/64`, `Router lifetime\s+:\s+0 `, `MTU\s+:\s+1500 `,
		`Stateful address conf\.\s+:\s+No`, `Stateful other conf\.\s+:\s+No`, `from fe80::91:1`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("rdisc6 output does not match %s:\n%s", re, out)
		}
	}
	// The client's kernel autoconfigures an address in the advertised prefix.
	waitFor(t, func() bool {
		out, _ := exec.Command("ip", "-n", cliNS.Name, "-6", "addr", "show", "dev", "cli0").Output()
		return strings.Contains(string(out), "inet6 fd91::")
	}, "SLAAC from the advertised prefix")
}

// TestNetnsKillStorm kills the server with SIGKILL twice during a storm of 1,000 clients
// and restarts it on the same lease file each time. Every ACK any client saw is checked:
// no address was acknowledged to two clients, and every acknowledged lease is in the lease
// file at the end.
func TestNetnsKillStorm(t *testing.T) {
	testenv.Require(t, testenv.Root(), testenv.Program("ip"))
	noLeaks(t)
	const clients = 1000
	srvNS, cliNS := pair(t, "10.91.24.1/21", "10.91.32.2/24", nil)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	leaseFile := filepath.Join(t.TempDir(), "leases")
	var srv *exec.Cmd
	start := func() {
		srv = exec.Command("ip", "netns", "exec", srvNS.Name, exe)
		srv.Env = append(os.Environ(), "PROVKIT_DHCP_HELPER=serve", "PROVKIT_DHCP_HELPER_LEASES="+leaseFile)
		out, err := srv.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		srv.Stderr = os.Stderr
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if sc.Text() == "ready" {
					ready <- true
				}
			}
		}()
		select {
		case <-ready:
		case <-time.After(20 * time.Second):
			t.Fatal("helper server did not start")
		}
	}
	start()

	var sock *net.UDPConn
	if err := cliNS.Do(func() error {
		lc := net.ListenConfig{Control: func(_, _ string, c syscallRawConn) error {
			var serr error
			_ = c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
				if serr == nil {
					serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, "cli0")
				}
				if serr == nil {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
				}
			})
			return serr
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:68")
		if err != nil {
			return err
		}
		sock = pc.(*net.UDPConn)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	defer sock.Close()

	st := newStorm(sock, clients)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	stormDone := make(chan error, 1)
	go func() { stormDone <- st.run(ctx) }()
	kills := 0
	for _, at := range []int{250, 600} {
		waitFor(t, func() bool { return st.acked() >= at }, fmt.Sprintf("%d ACKs", at))
		if err := srv.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = srv.Wait()
		kills++
		start()
	}
	if err := <-stormDone; err != nil {
		t.Fatalf("storm: %v (%d of %d clients bound)", err, st.acked(), clients)
	}
	// Stop the server cleanly, then read what it persisted.
	_ = srv.Process.Signal(unix.SIGTERM)
	_ = srv.Wait()

	tab := newLeaseTable()
	j, err := openJournal(leaseFile, tab)
	if err != nil {
		t.Fatal(err)
	}
	j.close()
	byIP := map[netip.Addr]string{}
	for _, a := range st.allACKs() {
		if other, ok := byIP[a.ip]; ok && other != a.mac {
			t.Errorf("%s acknowledged to %s and to %s", a.ip, other, a.mac)
		}
		byIP[a.ip] = a.mac
	}
	for _, a := range st.finalACKs() {
		l := tab.byKey[hwKey(1, mustMAC(a.mac))]
		if l == nil || u32Addr(l.ip) != a.ip || l.state != LeaseBound {
			t.Errorf("ACKed lease %s -> %s missing from the lease file (have %+v)", a.mac, a.ip, l)
			if data, err := os.ReadFile(leaseFile); err == nil {
				for i, line := range strings.Split(string(data), "\n") {
					if strings.Contains(line, a.ip.String()+" ") || strings.Contains(line, a.mac) {
						t.Logf("lease file line %d: %s", i+1, line)
					}
				}
			}
		}
	}
	t.Logf("%d clients bound, %d ACKs seen, %d NAKs, server killed %d times", clients, len(st.allACKs()), st.naks(), kills)
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// TestMain runs the server process of TestNetnsKillStorm when that test starts the test
// binary again with PROVKIT_DHCP_HELPER=serve (inside the server's namespace).
func TestMain(m *testing.M) {
	if os.Getenv("PROVKIT_DHCP_HELPER") == "serve" {
		if err := helperServe(); err != nil {
			fmt.Fprintln(os.Stderr, "helper server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helperServe() error {
	s := &Server{
		Networks: []Network{{
			Prefix: netip.MustParsePrefix("10.91.24.0/21"), Interface: "srv0",
			Ranges:    []Range{{ip("10.91.24.10"), ip("10.91.31.250")}},
			LeaseTime: time.Hour,
		}},
		LeaseFile: os.Getenv("PROVKIT_DHCP_HELPER_LEASES"),
	}
	sock, err := ListenSocket(":67")
	if err != nil {
		return err
	}
	s.Conn = sock
	ctx, stop := signalContext()
	defer stop()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	for {
		if _, err := s.Stats(); err == nil {
			break
		}
		select {
		case err := <-done:
			return err
		case <-time.After(time.Millisecond):
		}
	}
	fmt.Println("ready")
	return <-done
}
