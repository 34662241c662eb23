package dhcp

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

var (
	mac1 = net.HardwareAddr{0x52, 0x54, 0x00, 0x91, 0x00, 0x01}
	mac2 = net.HardwareAddr{0x52, 0x54, 0x00, 0x91, 0x00, 0x02}
	mac3 = net.HardwareAddr{0x52, 0x54, 0x00, 0x91, 0x00, 0x03}
)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// testNet is the boot network of most tests: 10.91.0.0/24 on eth0, server .1.
func testNet() Network {
	return Network{
		Prefix:     netip.MustParsePrefix("10.91.0.0/24"),
		Interface:  "eth0",
		ServerAddr: ip("10.91.0.1"),
		Ranges:     []Range{{ip("10.91.0.100"), ip("10.91.0.102")}},
		Routers:    []netip.Addr{ip("10.91.0.254")},
		DNS:        []netip.Addr{ip("10.91.0.1"), ip("10.91.0.2")},
		Domain:     "cluster.test",
		NTP:        []netip.Addr{ip("10.91.0.1")},
		MTU:        9000,
		LeaseTime:  time.Hour,
		Boot: Boot{
			BIOS:  "undionly.kpxe",
			EFI64: "ipxe.efi",
			ARM64: "ipxe-arm64.efi",
			HTTP:  "http://10.91.0.1/ipxe.efi",
		},
	}
}

// relayNet is a remote network behind a relay at 10.91.8.1.
func relayNet() Network {
	return Network{
		Prefix:     netip.MustParsePrefix("10.91.8.0/24"),
		ServerAddr: ip("10.91.0.1"),
		Ranges:     []Range{{ip("10.91.8.100"), ip("10.91.8.110")}},
		Routers:    []netip.Addr{ip("10.91.8.1")},
	}
}

// fakeClock is the lease clock of handler tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *fakeClock               { return &fakeClock{time.Unix(1_800_000_000, 0)} }
func eth0() pktMeta {
	return pktMeta{ifindex: 2, ifname: "eth0", local: addrU32(ip("10.91.0.1")), link: true}
}
func onIface(name string, local string) pktMeta {
	return pktMeta{ifindex: 3, ifname: name, local: addrU32(ip(local)), link: true}
}

type harness struct {
	t     *testing.T
	st    *state
	clock *fakeClock
	w     *slot
}

func newHarness(t *testing.T, s *Server) *harness {
	t.Helper()
	clock := newClock()
	s.now = clock.now
	st, err := s.compile()
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	st.leases = newLeaseTable()
	return &harness{t: t, st: st, clock: clock, w: newSlot()}
}

// do hands p to the handler as if it arrived with meta m and decodes the reply (nil if
// the server stays silent).
func (h *harness) do(p *dhcpv4.DHCPv4, m pktMeta) (*dhcpv4.DHCPv4, route) {
	h.t.Helper()
	h.w.meta = m
	rt, ok := h.st.handle(context.Background(), h.w, p.ToBytes())
	if !ok {
		return nil, route{}
	}
	r, err := dhcpv4.FromBytes(rt.payload)
	if err != nil {
		h.t.Fatalf("reply does not decode: %v", err)
	}
	return r, rt
}

func discoverPkt(t *testing.T, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	p, err := dhcpv4.NewDiscovery(mac, mods...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func requestPkt(t *testing.T, offer *dhcpv4.DHCPv4, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	p, err := dhcpv4.NewRequestFromOffer(offer, mods...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// dora runs DISCOVER/OFFER/REQUEST/ACK and returns the ACK (nil if any step got no answer).
func (h *harness) dora(mac net.HardwareAddr, m pktMeta, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	h.t.Helper()
	offer, _ := h.do(discoverPkt(h.t, mac, mods...), m)
	if offer == nil {
		return nil
	}
	if offer.MessageType() != dhcpv4.MessageTypeOffer {
		h.t.Fatalf("DISCOVER answered with %s", offer.MessageType())
	}
	ack, _ := h.do(requestPkt(h.t, offer, mods...), m)
	return ack
}

func yi(p *dhcpv4.DHCPv4) netip.Addr {
	if p == nil {
		return netip.Addr{}
	}
	a, _ := netip.AddrFromSlice(p.YourIPAddr.To4())
	return a
}

func hostsOf(t testing.TB, hs ...Host) *HostTable {
	t.Helper()
	var tab HostTable
	for _, h := range hs {
		if err := tab.Put(h); err != nil {
			t.Fatal(err)
		}
	}
	return &tab
}

func TestDynamicPool(t *testing.T) {
	h := newHarness(t, &Server{Networks: []Network{testNet()}})
	var got []netip.Addr
	for _, mac := range []net.HardwareAddr{mac1, mac2, mac3} {
		ack := h.dora(mac, eth0())
		if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
			t.Fatalf("no ACK for %s", mac)
		}
		got = append(got, yi(ack))
	}
	want := []netip.Addr{ip("10.91.0.100"), ip("10.91.0.101"), ip("10.91.0.102")}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("addresses (-want +got):\n%s", diff)
	}
	// The pool is full: a fourth client gets nothing.
	if offer, _ := h.do(discoverPkt(t, net.HardwareAddr{2, 0, 0, 0, 0, 9}), eth0()); offer != nil {
		t.Errorf("full pool offered %s", yi(offer))
	}
	// A known client asking again gets its own address back.
	if got := yi(h.dora(mac2, eth0())); got != ip("10.91.0.101") {
		t.Errorf("second DORA of %s got %s, want 10.91.0.101", mac2, got)
	}
}

func TestReplyOptions(t *testing.T) {
	h := newHarness(t, &Server{Networks: []Network{testNet()}})
	ack := h.dora(mac1, eth0(), dhcpv4.WithRequestedOptions(dhcpv4.OptionInterfaceMTU, dhcpv4.OptionNTPServers,
		dhcpv4.OptionBroadcastAddress))
	if ack == nil {
		t.Fatal("no ACK")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"server id", ack.ServerIdentifier().String(), "10.91.0.1"},
		{"siaddr", ack.ServerIPAddr.String(), "10.91.0.1"},
		{"mask", net.IP(ack.SubnetMask()).String(), "255.255.255.0"},
		{"router", ack.Router()[0].String(), "10.91.0.254"},
		{"dns", len(ack.DNS()), 2},
		{"domain", ack.DomainName(), "cluster.test"},
		{"lease", ack.IPAddressLeaseTime(0), time.Hour},
		{"T1", ack.IPAddressRenewalTime(0), 30 * time.Minute},
		{"T2", ack.IPAddressRebindingTime(0), 52*time.Minute + 30*time.Second},
		{"mtu", ack.Options.Get(dhcpv4.OptionInterfaceMTU), []byte{0x23, 0x28}},
		{"ntp", ack.NTPServers()[0].String(), "10.91.0.1"},
		{"broadcast", ack.BroadcastAddress().String(), "10.91.0.255"},
		{"no boot file for a non-PXE client", ack.BootFileName, ""},
	}
	for _, c := range checks {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
	// Not requested: not sent.
	offer2, _ := h.do(discoverPkt(t, mac2), eth0())
	if offer2.Options.Has(dhcpv4.OptionInterfaceMTU) {
		t.Errorf("MTU sent although the client did not ask for it")
	}
}

func TestBootAnswers(t *testing.T) {
	n := testNet()
	hostBoot := Host{Name: "n1", MAC: mac1, IP: ip("10.91.0.11"), Boot: Boot{
		IPXE:       "http://10.91.0.1/boot/n1.ipxe",
		NextServer: ip("10.91.0.5"),
		RootPath:   "10.91.0.1:/images/compute",
	}}
	long := "http://10.91.0.1/" + string(make([]byte, 0)) + "a-very-long-path/" + "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.ipxe"
	tests := []struct {
		name       string
		host       *Host
		mods       []dhcpv4.Modifier
		wantFile   string
		wantOpt67  bool
		wantVendor string
		wantSiaddr string
		wantRoot   string
	}{
		{name: "BIOS PXE", mods: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)),
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001"))},
			wantFile: "undionly.kpxe", wantSiaddr: "10.91.0.1"},
		{name: "UEFI x86-64 (7)", mods: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64))},
			wantFile: "ipxe.efi", wantSiaddr: "10.91.0.1"},
		{name: "UEFI BC (9)", mods: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_BC))},
			wantFile: "ipxe.efi", wantSiaddr: "10.91.0.1"},
		{name: "UEFI ARM64", mods: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_ARM64))},
			wantFile: "ipxe-arm64.efi", wantSiaddr: "10.91.0.1"},
		{name: "UEFI HTTP boot", mods: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64_HTTP)),
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient:Arch:00016:UNDI:003016"))},
			wantFile: "http://10.91.0.1/ipxe.efi", wantVendor: "HTTPClient", wantSiaddr: "10.91.0.1"},
		{name: "PXEClient without option 93", mods: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient"))},
			wantFile: "undionly.kpxe", wantSiaddr: "10.91.0.1"},
		{name: "iPXE unknown client: no script, BIOS file by arch", mods: []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)), dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE"))},
			wantFile: "undionly.kpxe", wantSiaddr: "10.91.0.1"},
		{name: "iPXE node: its script, host next-server and root path", host: &hostBoot, mods: []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)), dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE")),
			dhcpv4.WithRequestedOptions(dhcpv4.OptionBootfileName)},
			wantFile: "http://10.91.0.1/boot/n1.ipxe", wantOpt67: true, wantSiaddr: "10.91.0.5", wantRoot: "10.91.0.1:/images/compute"},
		{name: "iPXE node, RFC 3004 user class", host: &hostBoot, mods: []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)), dhcpv4.WithUserClass("iPXE", true)},
			wantFile: "http://10.91.0.1/boot/n1.ipxe", wantSiaddr: "10.91.0.5", wantRoot: "10.91.0.1:/images/compute"},
		{name: "xNBA user class", host: &hostBoot, mods: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptUserClass("xNBA"))},
			wantFile: "http://10.91.0.1/boot/n1.ipxe", wantSiaddr: "10.91.0.5", wantRoot: "10.91.0.1:/images/compute"},
		{name: "node PXE ROM: network BIOS file, host next-server", host: &hostBoot, mods: []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC))},
			wantFile: "undionly.kpxe", wantSiaddr: "10.91.0.5", wantRoot: "10.91.0.1:/images/compute"},
		{name: "URL longer than the file field goes in option 67 only", host: &Host{Name: "n2", MAC: mac1, IP: ip("10.91.0.12"),
			Boot: Boot{IPXE: long}}, mods: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE"))},
			wantFile: "", wantOpt67: true, wantSiaddr: "10.91.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{Networks: []Network{n}}
			if tc.host != nil {
				s.Hosts = hostsOf(t, *tc.host)
			}
			h := newHarness(t, s)
			ack := h.dora(mac1, eth0(), tc.mods...)
			if ack == nil {
				t.Fatal("no ACK")
			}
			if ack.BootFileName != tc.wantFile {
				t.Errorf("file = %q, want %q", ack.BootFileName, tc.wantFile)
			}
			if got := ack.Options.Has(dhcpv4.OptionBootfileName); got != tc.wantOpt67 {
				t.Errorf("option 67 present = %v, want %v", got, tc.wantOpt67)
			}
			if tc.wantOpt67 && tc.wantFile == "" && ack.BootFileNameOption() != long {
				t.Errorf("option 67 = %q, want the long URL", ack.BootFileNameOption())
			}
			if got := ack.ClassIdentifier(); got != tc.wantVendor {
				t.Errorf("vendor class = %q, want %q", got, tc.wantVendor)
			}
			if got := ack.ServerIPAddr.String(); got != tc.wantSiaddr {
				t.Errorf("siaddr = %s, want %s", got, tc.wantSiaddr)
			}
			if got := ack.RootPath(); got != tc.wantRoot {
				t.Errorf("root path = %q, want %q", got, tc.wantRoot)
			}
		})
	}
}

func TestHostOptions(t *testing.T) {
	n := testNet()
	n.Options = []Option{OptionString(150, "(nd)/menu.lst"), OptionString(252, "http://wpad")}
	host := Host{Name: "kr1", MAC: mac1, IP: ip("10.91.0.21"), Hostname: "kr1.cluster.test",
		Options: []Option{OptionString(150, "(nd)/boot/grub/kr1.lst"), OptionAddrs(3, ip("10.91.0.253")), OptionUint16(26, 1500)}}
	h := newHarness(t, &Server{Networks: []Network{n}, Hosts: hostsOf(t, host)})
	ack := h.dora(mac1, eth0(), dhcpv4.WithRequestedOptions(dhcpv4.GenericOptionCode(150), dhcpv4.OptionInterfaceMTU))
	if ack == nil {
		t.Fatal("no ACK")
	}
	for _, c := range []struct {
		code uint8
		want string
	}{
		{150, "(nd)/boot/grub/kr1.lst"}, // the host's value wins over the network's
		{3, "\x0a\x5b\x00\xfd"},         // and over the server's own router
		{26, "\x05\xdc"},
		{12, "kr1.cluster.test"},
	} {
		if got := string(ack.Options.Get(dhcpv4.GenericOptionCode(c.code))); got != c.want {
			t.Errorf("option %d = %q, want %q", c.code, got, c.want)
		}
	}
	if ack.Options.Has(dhcpv4.GenericOptionCode(252)) {
		t.Errorf("network option 252 sent though not requested")
	}
	if got := yi(ack).String(); got != "10.91.0.21" {
		t.Errorf("yiaddr = %s, want the reservation 10.91.0.21", got)
	}
}

func TestPXEThenIPXESameAddress(t *testing.T) {
	// The PXE ROM and then iPXE on the same node: different client identifiers and user
	// classes, one MAC, one lease.
	h := newHarness(t, &Server{Networks: []Network{testNet()}})
	rom := h.dora(mac1, eth0(), dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})))
	ipxe := h.dora(mac1, eth0(), dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)),
		dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE")),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier(append([]byte{1}, mac1...))))
	if rom == nil || ipxe == nil {
		t.Fatal("missing ACK")
	}
	if yi(rom) != yi(ipxe) {
		t.Errorf("PXE ROM got %s, iPXE got %s: want the same address", yi(rom), yi(ipxe))
	}
	if n := len(h.st.leases.byIP); n != 1 {
		t.Errorf("%d leases, want 1", n)
	}
}

func TestUnknownClients(t *testing.T) {
	n := testNet()
	reserved := Host{Name: "n1", MAC: mac1, IP: ip("10.91.0.11")}
	t.Run("deny ignores them and reports the discovery", func(t *testing.T) {
		var seen []Discovery
		s := &Server{Networks: []Network{n}, Hosts: hostsOf(t, reserved), DenyUnknown: true,
			OnDiscover: func(d Discovery) { seen = append(seen, d) }}
		h := newHarness(t, s)
		if ack := h.dora(mac2, eth0(), dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)),
			dhcpv4.WithOption(dhcpv4.OptHostName("newbox"))); ack != nil {
			t.Fatalf("denied client got %s", ack.MessageType())
		}
		want := []Discovery{{MAC: mac2, HWType: 1, Interface: "eth0", Network: n.Prefix, Arch: ArchEFIX64, Hostname: "newbox"}}
		if diff := cmp.Diff(want, seen, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
			cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
			t.Errorf("discoveries (-want +got):\n%s", diff)
		}
		if ack := h.dora(mac1, eth0()); yi(ack) != ip("10.91.0.11") {
			t.Errorf("reserved host got %v, want 10.91.0.11", yi(ack))
		}
		// A REQUEST from a denied client (INIT-REBOOT) is ignored too, not NAKed.
		req, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac2), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP{10, 91, 0, 100})))
		if r, _ := h.do(req, eth0()); r != nil {
			t.Errorf("denied INIT-REBOOT answered with %s", r.MessageType())
		}
	})
	t.Run("dynamic gives them a pool address and reports it", func(t *testing.T) {
		var seen []Discovery
		s := &Server{Networks: []Network{n}, Hosts: hostsOf(t, reserved),
			OnDiscover: func(d Discovery) { seen = append(seen, d) }}
		h := newHarness(t, s)
		ack := h.dora(mac2, eth0())
		if got := yi(ack); got != ip("10.91.0.100") {
			t.Fatalf("unknown client got %v, want 10.91.0.100", got)
		}
		if len(seen) != 1 || seen[0].Offered != ip("10.91.0.100") {
			t.Errorf("discoveries = %+v, want one offering 10.91.0.100", seen)
		}
	})
	t.Run("known host without address gets a pool address even when denying", func(t *testing.T) {
		s := &Server{Networks: []Network{n}, Hosts: hostsOf(t, Host{Name: "disc", MAC: mac3}), DenyUnknown: true}
		h := newHarness(t, s)
		if got := yi(h.dora(mac3, eth0())); got != ip("10.91.0.100") {
			t.Errorf("got %v, want 10.91.0.100", got)
		}
	})
	t.Run("deny flag on a host", func(t *testing.T) {
		s := &Server{Networks: []Network{n}, Hosts: hostsOf(t, Host{Name: "bad", MAC: mac3, Deny: true})}
		h := newHarness(t, s)
		if ack := h.dora(mac3, eth0()); ack != nil {
			t.Errorf("denied host got %s", ack.MessageType())
		}
	})
}

func TestPoolSkipsReservedAddresses(t *testing.T) {
	n := testNet()
	// 10.91.0.100 belongs to n1; an unknown client must not get it.
	h := newHarness(t, &Server{Networks: []Network{n}, Hosts: hostsOf(t, Host{Name: "n1", MAC: mac1, IP: ip("10.91.0.100")})})
	if got := yi(h.dora(mac2, eth0())); got != ip("10.91.0.101") {
		t.Errorf("unknown client got %v, want 10.91.0.101", got)
	}
	if got := yi(h.dora(mac1, eth0())); got != ip("10.91.0.100") {
		t.Errorf("reserved client got %v, want 10.91.0.100", got)
	}
}

func TestReservationConflict(t *testing.T) {
	// mac2 holds 10.91.0.100 dynamically; then an administrator reserves it for mac1.
	tab := &HostTable{}
	h := newHarness(t, &Server{Networks: []Network{testNet()}, Hosts: tab})
	if got := yi(h.dora(mac2, eth0())); got != ip("10.91.0.100") {
		t.Fatalf("got %v", got)
	}
	if err := tab.Put(Host{Name: "n1", MAC: mac1, IP: ip("10.91.0.100")}); err != nil {
		t.Fatal(err)
	}
	if ack := h.dora(mac1, eth0()); ack != nil {
		t.Errorf("address leased to another client was handed to the reservation too (%s)", ack.MessageType())
	}
	// mac2 releases it; now the reservation gets it.
	rel, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac2), dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease),
		dhcpv4.WithClientIP(net.IP{10, 91, 0, 100}), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP{10, 91, 0, 1})))
	if r, _ := h.do(rel, eth0()); r != nil {
		t.Fatalf("RELEASE answered")
	}
	if got := yi(h.dora(mac1, eth0())); got != ip("10.91.0.100") {
		t.Errorf("after release the reservation got %v, want 10.91.0.100", got)
	}
}

func TestRequestStates(t *testing.T) {
	n := testNet()
	h := newHarness(t, &Server{Networks: []Network{n}, Hosts: hostsOf(t, Host{Name: "n1", MAC: mac1, IP: ip("10.91.0.11")})})
	ack := h.dora(mac1, eth0())
	if yi(ack) != ip("10.91.0.11") {
		t.Fatalf("got %v", yi(ack))
	}
	mk := func(mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		p, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest)}, mods...)...)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name      string
		pkt       *dhcpv4.DHCPv4
		meta      pktMeta
		want      dhcpv4.MessageType // MessageTypeNone: silence
		wantRoute routeKind
		wantDst   string
	}{
		{"INIT-REBOOT with its address", mk(mac1, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP{10, 91, 0, 11}))),
			eth0(), dhcpv4.MessageTypeAck, routeLink, "10.91.0.11:68"},
		{"INIT-REBOOT with a wrong address: NAK broadcast", mk(mac1, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP{10, 91, 0, 12}))),
			eth0(), dhcpv4.MessageTypeNak, routeBroadcast, "0.0.0.0:68"},
		{"INIT-REBOOT from another network: NAK", mk(mac1, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP{192, 168, 1, 5}))),
			eth0(), dhcpv4.MessageTypeNak, routeBroadcast, "0.0.0.0:68"},
		{"RENEWING: ACK unicast to ciaddr", mk(mac1, dhcpv4.WithClientIP(net.IP{10, 91, 0, 11})),
			eth0(), dhcpv4.MessageTypeAck, routeUnicast, "10.91.0.11:68"},
		{"RENEWING with broadcast flag still goes to ciaddr", mk(mac1, dhcpv4.WithClientIP(net.IP{10, 91, 0, 11}), dhcpv4.WithBroadcast(true)),
			eth0(), dhcpv4.MessageTypeAck, routeUnicast, "10.91.0.11:68"},
		{"SELECTING another server: silence", mk(mac1, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP{10, 91, 0, 11})),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP{10, 91, 0, 77}))),
			eth0(), dhcpv4.MessageTypeNone, 0, ""},
		{"broadcast flag: ACK broadcast", mk(mac1, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP{10, 91, 0, 11})), dhcpv4.WithBroadcast(true)),
			eth0(), dhcpv4.MessageTypeAck, routeBroadcast, "0.0.0.0:68"},
		{"no address at all: silence", mk(mac1), eth0(), dhcpv4.MessageTypeNone, 0, ""},
		{"arrived on an interface we do not serve: silence", mk(mac1, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP{10, 91, 0, 11}))),
			onIface("eth9", "192.168.5.1"), dhcpv4.MessageTypeNone, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, rt := h.do(tc.pkt, tc.meta)
			if tc.want == dhcpv4.MessageTypeNone {
				if r != nil {
					t.Fatalf("answered %s, want silence", r.MessageType())
				}
				return
			}
			if r == nil {
				t.Fatalf("silence, want %s", tc.want)
			}
			if r.MessageType() != tc.want {
				t.Errorf("answered %s, want %s", r.MessageType(), tc.want)
			}
			if rt.kind != tc.wantRoute || rt.dst.String() != tc.wantDst {
				t.Errorf("route %s (%d), want %d to %s", rt.String(), rt.kind, tc.wantRoute, tc.wantDst)
			}
			if r.MessageType() == dhcpv4.MessageTypeNak && (!r.YourIPAddr.IsUnspecified() || r.ServerIdentifier() == nil) {
				t.Errorf("NAK with yiaddr %s, server id %v", r.YourIPAddr, r.ServerIdentifier())
			}
		})
	}
}

func TestRelay(t *testing.T) {
	s := &Server{Networks: []Network{testNet(), relayNet()}, Hosts: hostsOf(t, Host{Name: "r1", MAC: mac1, IP: ip("10.91.8.21")})}
	h := newHarness(t, s)
	agent := dhcpv4.OptRelayAgentInfo(
		dhcpv4.OptGeneric(dhcpv4.AgentCircuitIDSubOption, []byte("swp7")),
		dhcpv4.OptGeneric(dhcpv4.AgentRemoteIDSubOption, []byte("leaf3")))
	relayed := func(mac net.HardwareAddr, giaddr net.IP, extra ...dhcpv4.Modifier) []dhcpv4.Modifier {
		return append([]dhcpv4.Modifier{func(d *dhcpv4.DHCPv4) { d.GatewayIPAddr = giaddr; d.HopCount = 1 },
			dhcpv4.WithOption(agent)}, extra...)
	}
	// The request arrives unicast on eth0 (the server's address on 10.91.0.0/24), from a
	// relay whose giaddr is on the remote network.
	m := eth0()
	offer, rt := h.do(discoverPkt(t, mac2, relayed(mac2, net.IP{10, 91, 8, 1})...), m)
	if offer == nil {
		t.Fatal("no OFFER to relayed DISCOVER")
	}
	if got := yi(offer).String(); got != "10.91.8.100" {
		t.Errorf("relayed unknown client got %s, want 10.91.8.100 (subnet by giaddr)", got)
	}
	if rt.kind != routeRelay || rt.dst.String() != "10.91.8.1:67" {
		t.Errorf("route %s, want relay 10.91.8.1:67", rt.String())
	}
	if got := offer.GatewayIPAddr.String(); got != "10.91.8.1" {
		t.Errorf("giaddr = %s, want 10.91.8.1", got)
	}
	if got, want := offer.Options.Get(dhcpv4.OptionRelayAgentInformation), agent.Value.ToBytes(); string(got) != string(want) {
		t.Errorf("option 82 = %x, want echoed %x", got, want)
	}
	if got := offer.Router()[0].String(); got != "10.91.8.1" {
		t.Errorf("router = %s, want the remote network's 10.91.8.1", got)
	}
	ack, rt := h.do(requestPkt(t, offer, relayed(mac2, net.IP{10, 91, 8, 1})...), m)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || rt.kind != routeRelay {
		t.Fatalf("relayed REQUEST: %v via %s", ack, rt.String())
	}
	// A reservation on the remote network.
	if ack := h.dora(mac1, m, relayed(mac1, net.IP{10, 91, 8, 1})...); yi(ack).String() != "10.91.8.21" {
		t.Errorf("relayed reservation got %v, want 10.91.8.21", yi(ack))
	}
	// Link selection (RFC 3527) picks the subnet when the relay's giaddr is elsewhere.
	sel := dhcpv4.OptRelayAgentInfo(dhcpv4.OptGeneric(dhcpv4.LinkSelectionSubOption, []byte{10, 91, 8, 0}))
	o2, _ := h.do(discoverPkt(t, mac3, func(d *dhcpv4.DHCPv4) { d.GatewayIPAddr = net.IP{10, 91, 0, 77} },
		dhcpv4.WithOption(sel)), m)
	if got := yi(o2).String(); got != "10.91.8.101" {
		t.Errorf("link selection: got %s, want 10.91.8.101", got)
	}
	// A relay from an unknown network: silence.
	if r, _ := h.do(discoverPkt(t, mac3, relayed(mac3, net.IP{172, 16, 0, 1})...), m); r != nil {
		t.Errorf("relay from unknown network answered %s", r.MessageType())
	}
	// A relayed NAK goes to the relay with the broadcast bit set.
	bad, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac1), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP{10, 91, 8, 99})),
		func(d *dhcpv4.DHCPv4) { d.GatewayIPAddr = net.IP{10, 91, 8, 1} })
	nak, rt := h.do(bad, m)
	if nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak || rt.kind != routeRelay || !nak.IsBroadcast() {
		t.Errorf("relayed NAK: %v via %s", nak, rt.String())
	}
}

func TestDeclineReleaseInform(t *testing.T) {
	h := newHarness(t, &Server{Networks: []Network{testNet()}})
	ack := h.dora(mac1, eth0())
	addr := yi(ack)
	// DECLINE quarantines the address: the next client gets another one.
	dec, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac1), dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(addr.AsSlice())), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP{10, 91, 0, 1})))
	if r, _ := h.do(dec, eth0()); r != nil {
		t.Fatalf("DECLINE answered")
	}
	if got := yi(h.dora(mac2, eth0())); got == addr || !got.IsValid() {
		t.Errorf("after DECLINE of %s the next client got %v", addr, got)
	}
	if l := h.st.leases.byIP[addrU32(addr)]; l == nil || l.state != LeaseDeclined {
		t.Errorf("declined address not quarantined: %+v", l)
	}
	// After the quarantine it is free again.
	h.clock.add(declineHold + time.Second)
	if got := yi(h.dora(mac3, eth0())); got != ip("10.91.0.102") {
		t.Errorf("after the quarantine got %v, want 10.91.0.102", got)
	}
	if got := yi(h.dora(net.HardwareAddr{2, 0, 0, 0, 0, 4}, eth0())); got != addr {
		t.Errorf("after the quarantine the last free address is %v, want %s", got, addr)
	}

	// INFORM: configuration without an address, to ciaddr.
	inf, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac2), dhcpv4.WithMessageType(dhcpv4.MessageTypeInform), dhcpv4.WithClientIP(net.IP{10, 91, 0, 50}))
	r, rt := h.do(inf, eth0())
	if r == nil || r.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("INFORM: %v", r)
	}
	if !r.YourIPAddr.IsUnspecified() || r.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || r.DomainName() != "cluster.test" {
		t.Errorf("INFORM ACK: yiaddr %s, lease option %v, domain %q", r.YourIPAddr, r.Options.Has(dhcpv4.OptionIPAddressLeaseTime), r.DomainName())
	}
	if rt.kind != routeUnicast || rt.dst.String() != "10.91.0.50:68" {
		t.Errorf("INFORM route %s, want unicast 10.91.0.50:68", rt.String())
	}
}

func TestExpiry(t *testing.T) {
	n := testNet()
	n.Ranges = []Range{{ip("10.91.0.100"), ip("10.91.0.100")}}
	h := newHarness(t, &Server{Networks: []Network{n}})
	if got := yi(h.dora(mac1, eth0())); got != ip("10.91.0.100") {
		t.Fatalf("got %v", got)
	}
	if ack := h.dora(mac2, eth0()); ack != nil {
		t.Fatalf("second client got %s from a full pool", yi(ack))
	}
	h.clock.add(time.Hour + time.Second)
	if got := yi(h.dora(mac2, eth0())); got != ip("10.91.0.100") {
		t.Errorf("after expiry got %v, want 10.91.0.100", got)
	}
	// The first client renews too late: its address is gone, NAK.
	ren, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac1), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithClientIP(net.IP{10, 91, 0, 100}))
	if r, _ := h.do(ren, eth0()); r == nil || r.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("late renewal: %v, want NAK", r)
	}
	// Offers that are never requested are reclaimed after offerHold.
	h.clock.add(2 * time.Hour)
	if o, _ := h.do(discoverPkt(t, mac3), eth0()); o == nil {
		t.Fatal("no offer")
	}
	if o, _ := h.do(discoverPkt(t, mac1), eth0()); o != nil {
		t.Fatalf("address offered to two clients at once")
	}
	h.clock.add(offerHold + time.Second)
	if o, _ := h.do(discoverPkt(t, mac1), eth0()); o == nil {
		t.Errorf("stale offer not reclaimed")
	}
}

func TestGarbageIsIgnored(t *testing.T) {
	h := newHarness(t, &Server{Networks: []Network{testNet()}})
	good := discoverPkt(t, mac1).ToBytes()
	reply := func() []byte { b := discoverPkt(t, mac1).ToBytes(); b[0] = 2; return b }()
	offerType := func() []byte {
		p := discoverPkt(t, mac1, dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer))
		return p.ToBytes()
	}()
	longHlen := func() []byte { b := discoverPkt(t, mac1).ToBytes(); b[2] = 17; return b }()
	noType := func() []byte {
		p := discoverPkt(t, mac1)
		p.Options.Del(dhcpv4.OptionDHCPMessageType)
		return p.ToBytes()
	}()
	for _, tc := range []struct {
		name string
		pkt  []byte
	}{
		{"empty", nil},
		{"short", good[:100]},
		{"no cookie", good[:236]},
		{"bad cookie", append(append([]byte{}, good[:236]...), 1, 2, 3, 4, 255)},
		{"BOOTREPLY", reply},
		{"OFFER from a client", offerType},
		{"hlen 17", longHlen},
		{"no message type", noType},
		{"truncated options", good[:244]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.w.meta = eth0()
			if _, ok := h.st.handle(context.Background(), h.w, tc.pkt); ok {
				t.Errorf("answered garbage")
			}
		})
	}
}

func TestMaxMessageSize(t *testing.T) {
	n := testNet()
	big := make([]byte, 400)
	n.Options = []Option{{Code: 200, Value: big}}
	h := newHarness(t, &Server{Networks: []Network{n}})
	offer, _ := h.do(discoverPkt(t, mac1, dhcpv4.WithRequestedOptions(dhcpv4.GenericOptionCode(200))), eth0())
	if offer == nil {
		t.Fatal("no offer")
	}
	if offer.Options.Has(dhcpv4.GenericOptionCode(200)) {
		t.Errorf("576-byte limit: optional 400-byte option was sent")
	}
	offer, _ = h.do(discoverPkt(t, mac2, dhcpv4.WithRequestedOptions(dhcpv4.GenericOptionCode(200)),
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(1500))), eth0())
	if got := len(offer.Options.Get(dhcpv4.GenericOptionCode(200))); got != 400 {
		t.Errorf("with max size 1500: option 200 is %d bytes, want 400", got)
	}
}

func TestRouteRules(t *testing.T) {
	st := &state{clientPort: 68, relayPort: 67}
	tests := []struct {
		name string
		rq   request
		mt   dhcpv4.MessageType
		yi   string
		want string
	}{
		{"relay wins", request{giaddr: addrU32(ip("10.91.8.1")), ciaddr: addrU32(ip("10.91.8.5")), broadcast: true}, dhcpv4.MessageTypeAck, "10.91.8.5", "relay 10.91.8.1:67"},
		{"relayed NAK", request{giaddr: addrU32(ip("10.91.8.1"))}, dhcpv4.MessageTypeNak, "0.0.0.0", "relay 10.91.8.1:67"},
		{"NAK broadcast even with ciaddr", request{ciaddr: addrU32(ip("10.91.0.5"))}, dhcpv4.MessageTypeNak, "0.0.0.0", "broadcast"},
		{"ciaddr unicast", request{ciaddr: addrU32(ip("10.91.0.5")), broadcast: true}, dhcpv4.MessageTypeAck, "10.91.0.5", "unicast 10.91.0.5:68"},
		{"broadcast flag", request{broadcast: true}, dhcpv4.MessageTypeOffer, "10.91.0.5", "broadcast"},
		{"to the MAC", request{}, dhcpv4.MessageTypeOffer, "10.91.0.5", "link 10.91.0.5:68"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			yi := uint32(0)
			if a := ip(tc.yi); !a.IsUnspecified() {
				yi = addrU32(a)
			}
			rt := st.route(&tc.rq, tc.mt, yi, 1, nil)
			if got := rt.String(); got != tc.want {
				t.Errorf("route = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestClientIDReservation(t *testing.T) {
	id := []byte{0xff, 0, 0, 0, 1, 0, 1, 2, 3}
	h := newHarness(t, &Server{Networks: []Network{testNet()}, DenyUnknown: true,
		Hosts: hostsOf(t, Host{Name: "ib1", ClientID: id, IP: ip("10.91.0.31")})})
	ack := h.dora(mac2, eth0(), dhcpv4.WithOption(dhcpv4.OptClientIdentifier(id)))
	if got := yi(ack); got != ip("10.91.0.31") {
		t.Fatalf("client-id reservation got %v, want 10.91.0.31", got)
	}
	if got := ack.Options.Get(dhcpv4.OptionClientIdentifier); string(got) != string(id) {
		t.Errorf("client identifier not echoed (RFC 6842): %x", got)
	}
}

func TestNetworkByInterface(t *testing.T) {
	// Two networks on two interfaces: the arrival interface picks the pool.
	a := testNet()
	b := Network{Prefix: netip.MustParsePrefix("10.91.1.0/24"), Interface: "eth1", ServerAddr: ip("10.91.1.1"),
		Ranges: []Range{{ip("10.91.1.50"), ip("10.91.1.60")}}}
	c := Network{Prefix: netip.MustParsePrefix("10.91.2.0/24"), ServerAddr: ip("10.91.2.1"),
		Ranges: []Range{{ip("10.91.2.50"), ip("10.91.2.60")}}}
	h := newHarness(t, &Server{Networks: []Network{a, b, c}})
	for _, tc := range []struct {
		meta pktMeta
		mac  net.HardwareAddr
		want string
	}{
		{eth0(), mac1, "10.91.0.100"},
		{onIface("eth1", "10.91.1.1"), mac2, "10.91.1.50"},
		{onIface("eth2", "10.91.2.1"), mac3, "10.91.2.50"}, // no Interface: by the arrival address
	} {
		if got := yi(h.dora(tc.mac, tc.meta)).String(); got != tc.want {
			t.Errorf("on %s: got %s, want %s", tc.meta.ifname, got, tc.want)
		}
	}
}

func TestServerConfigErrors(t *testing.T) {
	good := testNet()
	tests := []struct {
		name string
		mod  func(*Network)
		want string
	}{
		{"IPv6 prefix", func(n *Network) { n.Prefix = netip.MustParsePrefix("fd00::/64") }, "IPv4 prefix"},
		{"host bits", func(n *Network) { n.Prefix = netip.MustParsePrefix("10.91.0.5/24") }, "host bits set"},
		{"range outside", func(n *Network) { n.Ranges = []Range{{ip("10.91.1.1"), ip("10.91.1.5")}} }, "outside the network"},
		{"range reversed", func(n *Network) { n.Ranges = []Range{{ip("10.91.0.9"), ip("10.91.0.5")}} }, "first <= last"},
		{"router outside", func(n *Network) { n.Routers = []netip.Addr{ip("10.92.0.1")} }, "router 10.92.0.1 is not in the network"},
		{"server not IPv4", func(n *Network) { n.ServerAddr = ip("fd00::1") }, "server address"},
		{"reserved option", func(n *Network) { n.Options = []Option{{Code: 53, Value: []byte{1}}} }, "option 53"},
		{"MTU", func(n *Network) { n.MTU = 20 }, "MTU 20"},
		{"boot file with NUL", func(n *Network) { n.Boot.BIOS = "a\x00b" }, "NUL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := good
			tc.mod(&n)
			conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			err = (&Server{Networks: []Network{n}, Conn: conn}).Serve(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Serve = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
	t.Run("overlap", func(t *testing.T) {
		n2 := good
		n2.Prefix = netip.MustParsePrefix("10.91.0.0/16")
		n2.Ranges = nil
		n2.Routers = nil
		_, err := (&Server{Networks: []Network{good, n2}}).compile()
		if err == nil || !strings.Contains(err.Error(), "overlaps") {
			t.Errorf("compile = %v, want overlap error", err)
		}
	})
}

// TestIPXENoProxyDHCP: a request with iPXE's option 175 gets 175.176 (no-pxedhcp) = 1, as
// xCAT's dhcpd.conf gives every client, so iPXE does not wait a second for ProxyDHCP
// offers; a network option 175 replaces it; other clients get no option 175.
func TestIPXENoProxyDHCP(t *testing.T) {
	ipxeEncap := dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(175), []byte{177, 5, 1, 0x10, 0xec, 0x00, 0x00}))
	custom := testNet()
	custom.Options = []Option{{Code: 175, Value: []byte{176, 1, 0}}}
	tests := []struct {
		name string
		net  Network
		mods []dhcpv4.Modifier
		want []byte // nil: no option 175
	}{
		{"iPXE", testNet(), []dhcpv4.Modifier{ipxeEncap, dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE"))}, []byte{176, 1, 1}},
		{"network option 175 wins", custom, []dhcpv4.Modifier{ipxeEncap, dhcpv4.WithRequestedOptions(dhcpv4.GenericOptionCode(175))}, []byte{176, 1, 0}},
		{"PXE ROM", testNet(), []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC))}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, &Server{Networks: []Network{tc.net}})
			ack := h.dora(mac1, eth0(), tc.mods...)
			if ack == nil {
				t.Fatal("no ACK")
			}
			if diff := cmp.Diff(tc.want, ack.Options.Get(dhcpv4.GenericOptionCode(175))); diff != "" {
				t.Errorf("option 175 (-want +got):\n%s", diff)
			}
		})
	}
}
