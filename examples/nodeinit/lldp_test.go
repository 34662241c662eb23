package main

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// lldpFrame builds an LLDP frame: chassis ID (MAC subtype when it parses as one, else
// locally assigned), port ID (interface name), TTL, then the optional TLVs and End.
func lldpFrame(n Neighbor) []byte {
	f := append([]byte{}, lldpGroup...)
	f = append(f, 0x52, 0x54, 0x00, 0x97, 0xee, 0x01, 0x88, 0xcc)
	tlv := func(typ int, v []byte) {
		f = binary.BigEndian.AppendUint16(f, uint16(typ<<9|len(v)))
		f = append(f, v...)
	}
	if mac, err := net.ParseMAC(n.ChassisID); err == nil && len(mac) == 6 && mac.String() == n.ChassisID {
		tlv(1, append([]byte{4}, mac...))
	} else {
		tlv(1, append([]byte{7}, n.ChassisID...))
	}
	tlv(2, append([]byte{5}, n.PortID...))
	tlv(3, []byte{0, 120})
	if n.PortDesc != "" {
		tlv(4, []byte(n.PortDesc))
	}
	if n.SysName != "" {
		tlv(5, []byte(n.SysName))
	}
	if n.SysDesc != "" {
		tlv(6, []byte(n.SysDesc))
	}
	if a, err := netip.ParseAddr(n.MgmtAddr); err == nil {
		b := a.AsSlice()
		sub := byte(1)
		if a.Is6() {
			sub = 2
		}
		v := append([]byte{byte(1 + len(b)), sub}, b...)
		v = append(v, 2, 0, 0, 0, 1, 0) // ifIndex numbering, interface 1, no OID
		tlv(8, v)
	}
	tlv(0, nil)
	return f
}

func TestParseLLDP(t *testing.T) {
	for _, want := range []Neighbor{
		{ChassisID: "52:54:00:97:ee:01", PortID: "swp12", PortDesc: "to n2", SysName: "sw1.cluster.test", SysDesc: "Cumulus Linux", MgmtAddr: "10.97.0.250"},
		{ChassisID: "leaf-a", PortID: "Ethernet1/5", MgmtAddr: "fd00:97::fa"},
		{ChassisID: "x", PortID: "1"},
	} {
		got, err := ParseLLDP(lldpFrame(want))
		if err != nil {
			t.Fatalf("ParseLLDP(%+v): %v", want, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ParseLLDP (-want +got):\n%s", diff)
		}
	}
	good := lldpFrame(Neighbor{ChassisID: "x", PortID: "1"})
	for name, f := range map[string][]byte{
		"short":          good[:10],
		"other type":     append(append([]byte{}, good[:12]...), 0x08, 0x00, 0, 0),
		"TLV overrun":    append(append([]byte{}, good[:14]...), 0x02, 0x10, 7),
		"port first":     append(append([]byte{}, good[:14]...), 0x04, 0x02, 5, 'a'),
		"no mandatories": append(append([]byte{}, good[:14]...), 0x02, 0x02, 7, 'a'),
		"bad TTL":        append(append([]byte{}, good[:14]...), 0x02, 0x02, 7, 'a', 0x04, 0x02, 5, 'b', 0x06, 0x01, 1),
	} {
		if _, err := ParseLLDP(f); err == nil {
			t.Errorf("ParseLLDP(%s) = nil error, want one", name)
		}
	}
}

// FuzzParseLLDP reads what a switch (or anyone on the wire) sends. Property: no panic,
// and a frame that parses re-encodes to a frame that parses the same.
func FuzzParseLLDP(f *testing.F) {
	f.Add(lldpFrame(Neighbor{ChassisID: "52:54:00:97:ee:01", PortID: "swp12", PortDesc: "d", SysName: "sw1", SysDesc: "x", MgmtAddr: "10.97.0.250"}))
	f.Add(lldpFrame(Neighbor{ChassisID: "c", PortID: "p", MgmtAddr: "fd00::1"}))
	f.Fuzz(func(t *testing.T, frame []byte) {
		n, err := ParseLLDP(frame)
		if err != nil {
			return
		}
		if n.ChassisID == "" || n.PortID == "" {
			return // our encoder needs both; the parser keeps printable bytes only
		}
		again, err := ParseLLDP(lldpFrame(n))
		if err != nil {
			t.Fatalf("re-encoded %+v does not parse: %v", n, err)
		}
		if diff := cmp.Diff(n, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
