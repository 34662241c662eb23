package dhcp

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// fuzzSeeds are well-formed requests of every kind; testdata/fuzz/FuzzHandle holds more.
func fuzzSeeds(tb testing.TB) [][]byte {
	mk := func(mods ...dhcpv4.Modifier) []byte {
		p, err := dhcpv4.New(mods...)
		if err != nil {
			tb.Fatal(err)
		}
		return p.ToBytes()
	}
	agent := dhcpv4.OptRelayAgentInfo(dhcpv4.OptGeneric(dhcpv4.AgentCircuitIDSubOption, []byte("swp1")),
		dhcpv4.OptGeneric(dhcpv4.LinkSelectionSubOption, []byte{10, 91, 8, 0}))
	return [][]byte{
		mk(dhcpv4.WithHwAddr(mac1), dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover),
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)), dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE"))),
		mk(dhcpv4.WithHwAddr(mac1), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP{10, 91, 0, 11})),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP{10, 91, 0, 1}))),
		mk(dhcpv4.WithHwAddr(mac2), dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover),
			func(d *dhcpv4.DHCPv4) { d.GatewayIPAddr = net.IP{10, 91, 8, 1} }, dhcpv4.WithOption(agent)),
		mk(dhcpv4.WithHwAddr(mac2), dhcpv4.WithMessageType(dhcpv4.MessageTypeInform), dhcpv4.WithClientIP(net.IP{10, 91, 0, 50})),
		mk(dhcpv4.WithHwAddr(mac3), dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP{10, 91, 0, 100}))),
		mk(dhcpv4.WithHwAddr(mac3), dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease), dhcpv4.WithClientIP(net.IP{10, 91, 0, 100})),
		mk(dhcpv4.WithHwAddr(nil), dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover),
			dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{0xff, 1, 2, 3}))),
		{1, 1, 6, 0},
	}
}

// FuzzHandle feeds arbitrary packets to the handler of a server with reservations, a pool
// and a relayed network. Properties: it never panics; it answers only well-formed
// requests; every answer decodes, is a BOOTREPLY of the right kind for the request's xid
// and MAC, and goes to the relay exactly when the request was relayed.
func FuzzHandle(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, false)
	}
	f.Add(bootpRequest(mac1, 7, false, netip.Addr{}), false)
	f.Add(bootpRequest(mac1, 8, true, ip("10.91.8.1")), true)
	hosts := hostsOf(f, Host{Name: "n1", MAC: mac1, IP: ip("10.91.0.11"),
		Options: []Option{OptionString(150, "menu")}, Boot: Boot{IPXE: "http://10.91.0.1/n1.ipxe"}},
		Host{Name: "ib", ClientID: []byte{0xff, 1, 2, 3}, IP: ip("10.91.0.12")})
	f.Fuzz(func(t *testing.T, pkt []byte, nolink bool) {
		s := &Server{Networks: []Network{testNet(), relayNet()}, Hosts: hosts}
		h := newHarness(t, s)
		h.w.meta = eth0()
		if nolink {
			h.w.meta = pktMeta{local: addrU32(ip("127.0.0.1"))}
		}
		in := bytes.Clone(pkt)
		rt, ok := h.st.handle(context.Background(), h.w, in)
		if !bytes.Equal(in, pkt) {
			t.Fatalf("handler modified its input")
		}
		if !ok {
			return
		}
		req, err := dhcpv4.FromBytes(pkt)
		if err != nil && len(pkt) >= dhcpFixedLen+4 && [4]byte(pkt[dhcpFixedLen:dhcpFixedLen+4]) != magicCookie {
			// RFC 951 BOOTP: no options; the header decodes with an empty option list.
			req, err = dhcpv4.FromBytes(append(append(bytes.Clone(pkt[:dhcpFixedLen]), magicCookie[:]...), 255))
		}
		if err != nil {
			t.Fatalf("answered a packet the codec rejects (%v)", err)
		}
		if req.OpCode != dhcpv4.OpcodeBootRequest {
			t.Fatalf("answered a %s", req.OpCode)
		}
		rep, err := dhcpv4.FromBytes(rt.payload)
		if err != nil {
			t.Fatalf("reply does not decode: %v", err)
		}
		if rep.OpCode != dhcpv4.OpcodeBootReply || rep.TransactionID != req.TransactionID ||
			!bytes.Equal(rep.ClientHWAddr, req.ClientHWAddr) {
			t.Fatalf("reply %s does not match request %s", rep, req)
		}
		want := map[dhcpv4.MessageType][]dhcpv4.MessageType{
			dhcpv4.MessageTypeDiscover: {dhcpv4.MessageTypeOffer},
			dhcpv4.MessageTypeRequest:  {dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak},
			dhcpv4.MessageTypeInform:   {dhcpv4.MessageTypeAck},
			dhcpv4.MessageTypeNone:     {dhcpv4.MessageTypeNone}, // BOOTP
		}[req.MessageType()]
		found := false
		for _, mt := range want {
			found = found || rep.MessageType() == mt
		}
		if !found {
			t.Fatalf("%s answered with %s", req.MessageType(), rep.MessageType())
		}
		if relayed := !req.GatewayIPAddr.IsUnspecified(); relayed != (rt.kind == routeRelay) {
			t.Fatalf("giaddr %s but route %s", req.GatewayIPAddr, rt.String())
		}
		if len(rt.payload) < bootpMinLen {
			t.Fatalf("reply of %d bytes, want at least %d", len(rt.payload), bootpMinLen)
		}
	})
}
