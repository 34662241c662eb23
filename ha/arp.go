package ha

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
)

var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// arpFrame builds an ARP packet in an Ethernet frame to the broadcast address.
func arpFrame(op arp.Operation, srcMAC net.HardwareAddr, srcIP netip.Addr, dstMAC net.HardwareAddr, dstIP netip.Addr) ([]byte, error) {
	p, err := arp.NewPacket(op, srcMAC, srcIP, dstMAC, dstIP)
	if err != nil {
		return nil, err
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	f := &ethernet.Frame{Destination: ethernet.Broadcast, Source: srcMAC, EtherType: ethernet.EtherTypeARP, Payload: pb}
	return f.MarshalBinary()
}

// probeFrame is an RFC 5227 ARP probe for addr: a request from 0.0.0.0.
func probeFrame(mac net.HardwareAddr, addr netip.Addr) ([]byte, error) {
	return arpFrame(arp.OperationRequest, mac, netip.IPv4Unspecified(), zeroMAC, addr)
}

// conflict reads one received frame and returns the MAC of a host that claims addr: one
// that sends any ARP packet from addr (an answer to the probe, a request, an announcement),
// or that probes for addr itself (RFC 5227 2.1.1). Frames from own are ignored, as are
// frames that are not well-formed ARP.
func conflict(frame []byte, addr netip.Addr, own net.HardwareAddr) (net.HardwareAddr, bool) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(frame); err != nil || f.EtherType != ethernet.EtherTypeARP {
		return nil, false
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		return nil, false
	}
	if p.HardwareType != 1 || p.ProtocolType != uint16(ethernet.EtherTypeIPv4) || p.IPLength != 4 || p.HardwareAddrLength != 6 {
		return nil, false
	}
	if bytes.Equal(p.SenderHardwareAddr, own) || bytes.Equal(f.Source, own) {
		return nil, false
	}
	switch {
	case p.SenderIP == addr:
		return p.SenderHardwareAddr, true
	case p.Operation == arp.OperationRequest && p.SenderIP.IsUnspecified() && p.TargetIP == addr:
		return p.SenderHardwareAddr, true
	}
	return nil, false
}

// probe sends probes ARP probes for addr on conn, listening wait after each for a host that
// claims it.
func probe(ctx context.Context, conn net.PacketConn, mac net.HardwareAddr, addr netip.Addr, probes int, wait time.Duration) error {
	frame, err := probeFrame(mac, addr)
	if err != nil {
		return fmt.Errorf("ARP probe for %s: %w", addr, err)
	}
	buf := make([]byte, 1500)
	for i := 0; i < probes; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := conn.WriteTo(frame, &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
			return fmt.Errorf("send ARP probe for %s: %w", addr, err)
		}
		end := time.Now().Add(wait)
		if d, ok := ctx.Deadline(); ok && d.Before(end) {
			end = d
		}
		if err := conn.SetReadDeadline(end); err != nil {
			return err
		}
		for {
			n, _, err := conn.ReadFrom(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return fmt.Errorf("read ARP: %w", err)
			}
			if who, ok := conflict(buf[:n], addr, mac); ok {
				return &InUseError{Addr: addr, MAC: who}
			}
		}
	}
	return ctx.Err()
}

// announce sends count gratuitous ARPs for addr, alternating a request and a reply (both
// from and to addr), so that every neighbour's cache moves to mac.
func announce(ctx context.Context, conn net.PacketConn, mac net.HardwareAddr, addr netip.Addr, count int, gap time.Duration) error {
	req, err := arpFrame(arp.OperationRequest, mac, addr, zeroMAC, addr)
	if err != nil {
		return err
	}
	rep, err := arpFrame(arp.OperationReply, mac, addr, ethernet.Broadcast, addr)
	if err != nil {
		return err
	}
	for i := 0; i < count; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(gap):
			}
		}
		f := req
		if i%2 == 1 {
			f = rep
		}
		if _, err := conn.WriteTo(f, &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
			return fmt.Errorf("gratuitous ARP for %s: %w", addr, err)
		}
	}
	return nil
}
