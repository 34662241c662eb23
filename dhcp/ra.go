package dhcp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// RouterAdvertiser sends IPv6 router advertisements (RFC 4861) on the boot interface:
// periodically, and in answer to router solicitations. Its purpose is small: iPXE waits
// about 16 s for IPv6 autoconfiguration before it loads anything when no router answers;
// a stateless advertisement (no M/O flags, a ULA prefix to autoconfigure) ends the wait.
// It advertises no default route unless RouterLifetime is set.
type RouterAdvertiser struct {
	// Interface is the interface to advertise on. Required unless Conn is set.
	Interface string

	// Prefixes are advertised for stateless autoconfiguration (on-link, autonomous).
	// Each must be an IPv6 /64, e.g. a ULA such as fd00:91::/64. May be empty.
	Prefixes []netip.Prefix

	// Interval is the time between unsolicited advertisements. If zero, 10 s. The first
	// three are sent one second apart.
	Interval time.Duration

	// RouterLifetime is how long clients may use this host as a default router. Zero (the
	// default) advertises no default router.
	RouterLifetime time.Duration

	// MTU, if not zero, is advertised in an MTU option.
	MTU int

	// Conn is the ICMPv6 socket. If nil, Serve calls ListenRA(Interface). Open it with
	// ListenRA inside a network namespace to serve that namespace.
	Conn *RAConn

	// Logger receives the log; nil discards it.
	Logger *slog.Logger
}

// RAConn is an ICMPv6 socket bound to one interface, for a RouterAdvertiser.
type RAConn struct {
	pc  *icmp.PacketConn
	p6  *ipv6.PacketConn
	ifi net.Interface
}

var allNodes = net.ParseIP("ff02::1")
var allRouters = net.ParseIP("ff02::2")

// ListenRA opens an ICMPv6 socket for router advertisements on the named interface, in
// the network namespace of the calling thread. It needs CAP_NET_RAW.
func ListenRA(iface string) (*RAConn, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("dhcp: router advertisements: interface %q: %w", iface, err)
	}
	pc, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return nil, fmt.Errorf("dhcp: router advertisements on %s: %w", iface, err)
	}
	c := &RAConn{pc: pc, p6: pc.IPv6PacketConn(), ifi: *ifi}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterSolicitation)
	for _, step := range []func() error{
		func() error { return c.p6.SetICMPFilter(&f) },
		func() error { return c.p6.SetMulticastHopLimit(255) },
		func() error { return c.p6.SetHopLimit(255) },
		func() error { return c.p6.SetMulticastInterface(ifi) },
		func() error { return c.p6.SetMulticastLoopback(false) },
		func() error { return c.p6.JoinGroup(ifi, &net.IPAddr{IP: allRouters}) },
		func() error { return c.p6.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagInterface, true) },
	} {
		if err := step(); err != nil {
			pc.Close()
			return nil, fmt.Errorf("dhcp: router advertisements on %s: %w", iface, err)
		}
	}
	return c, nil
}

// Close closes the socket.
func (c *RAConn) Close() error { return c.pc.Close() }

// Validate checks the configuration and names the field at fault.
func (ra *RouterAdvertiser) Validate() error {
	if ra.Interface == "" && ra.Conn == nil {
		return errors.New("dhcp: router advertisements: no interface")
	}
	for _, p := range ra.Prefixes {
		if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() || p.Bits() != 64 {
			return fmt.Errorf("dhcp: router advertisements: prefix %s: want an IPv6 /64", p)
		}
	}
	if ra.Interval < 0 || (ra.Interval > 0 && ra.Interval < time.Second) {
		return fmt.Errorf("dhcp: router advertisements: interval %s: want at least 1s", ra.Interval)
	}
	if ra.RouterLifetime < 0 || ra.RouterLifetime > 9000*time.Second {
		return fmt.Errorf("dhcp: router advertisements: router lifetime %s out of 0..9000s", ra.RouterLifetime)
	}
	if ra.MTU != 0 && (ra.MTU < 1280 || ra.MTU > 65535) {
		return fmt.Errorf("dhcp: router advertisements: MTU %d out of 1280..65535", ra.MTU)
	}
	return nil
}

// message builds the advertisement.
func (ra *RouterAdvertiser) message(mac net.HardwareAddr) []byte {
	b := make([]byte, 16, 128)
	b[0] = byte(ipv6.ICMPTypeRouterAdvertisement)
	b[4] = 64 // current hop limit
	b[5] = 0  // no M (managed) or O (other config) flag: nothing to ask DHCPv6
	binary.BigEndian.PutUint16(b[6:], uint16(ra.RouterLifetime/time.Second))
	if len(mac) == 6 {
		b = append(b, 1, 1) // source link-layer address
		b = append(b, mac...)
	}
	if ra.MTU > 0 {
		b = append(b, 5, 1, 0, 0)
		b = binary.BigEndian.AppendUint32(b, uint32(ra.MTU))
	}
	for _, p := range ra.Prefixes {
		b = append(b, 3, 4, byte(p.Bits()), 0xc0)   // prefix information, L and A flags
		b = binary.BigEndian.AppendUint32(b, 86400) // valid lifetime
		b = binary.BigEndian.AppendUint32(b, 14400) // preferred lifetime
		b = append(b, 0, 0, 0, 0)
		a := p.Masked().Addr().As16()
		b = append(b, a[:]...)
	}
	return b
}

// Serve advertises until ctx is done, then closes the socket and returns nil.
func (ra *RouterAdvertiser) Serve(ctx context.Context) error {
	if err := ra.Validate(); err != nil {
		return err
	}
	log := ra.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := ra.Conn
	if c == nil {
		var err error
		if c, err = ListenRA(ra.Interface); err != nil {
			return err
		}
	}
	interval := ra.Interval
	if interval == 0 {
		interval = 10 * time.Second
	}
	msg := ra.message(c.ifi.HardwareAddr)
	dst := &net.IPAddr{IP: allNodes, Zone: c.ifi.Name}
	cm := &ipv6.ControlMessage{HopLimit: 255, IfIndex: c.ifi.Index}

	var mu sync.Mutex
	var last time.Time
	send := func(why string) {
		mu.Lock()
		defer mu.Unlock()
		// One multicast advertisement answers every solicitation of a boot storm.
		if time.Since(last) < 200*time.Millisecond {
			return
		}
		if _, err := c.p6.WriteTo(msg, cm, dst); err != nil {
			// Typically EADDRNOTAVAIL while the link-local address is still tentative.
			log.Debug("dhcp: send router advertisement", "iface", c.ifi.Name, "why", why, "err", err)
			return
		}
		last = time.Now()
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			n, rcm, _, err := c.p6.ReadFrom(buf)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				log.Warn("dhcp: read router solicitation", "iface", c.ifi.Name, "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			// RFC 4861 6.1.1: hop limit 255, code 0, ICMP length >= 8.
			if n < 8 || buf[0] != byte(ipv6.ICMPTypeRouterSolicitation) || buf[1] != 0 ||
				rcm == nil || rcm.HopLimit != 255 || rcm.IfIndex != c.ifi.Index {
				continue
			}
			send("solicited")
		}
	}()

	log.Info("dhcp: advertising IPv6 router", "iface", c.ifi.Name, "prefixes", len(ra.Prefixes))
	send("start")
	for i := 0; ; i++ {
		wait := interval
		if i < 2 {
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			c.Close()
			wg.Wait()
			return nil
		case <-time.After(wait):
			send("periodic")
		}
	}
}
