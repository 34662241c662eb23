package ha

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
)

// VIP is a virtual IP as it sits on an interface.
type VIP struct {
	Interface string // the device, such as eth0
	Label     string // the alias label, such as eth0:1; "" for none
	Prefix    netip.Prefix
	// Lifetime, if set, makes the kernel delete the address that long after it was last
	// installed, unless installed again before (whole seconds, at least one). The automatic
	// mode uses it as a dead man's switch: the address of a node whose HA process died
	// vanishes by itself. Zero means permanent.
	Lifetime time.Duration
}

// Network is the seam to the host's network for the virtual IP. SystemNetwork is the real
// one; tests use a fake.
type Network interface {
	// Probe returns an error matching ErrVIPInUse when another host answers for addr on
	// iface, or when this host already has it.
	Probe(ctx context.Context, iface string, addr netip.Addr) error
	// Up installs v, or refreshes its lifetime when present, and announces it with gratuitous
	// ARP when it was not present. added reports whether it was not present.
	Up(ctx context.Context, v VIP) (added bool, err error)
	// Down removes v; removing an absent address is not an error.
	Down(ctx context.Context, v VIP) error
}

// SystemNetwork is the host's network: netlink for addresses, a packet socket for ARP. Its
// zero value works. Every call finishes its socket work before it returns, so a caller may
// run it on a thread that entered another network namespace.
type SystemNetwork struct {
	// Probes is how many ARP probes Probe sends (RFC 5227). If zero, 3.
	Probes int
	// ProbeWait is how long Probe listens for an answer after each probe. If zero, 100 ms.
	ProbeWait time.Duration
	// Announcements is how many gratuitous ARPs Up sends for a new address, alternating the
	// request and reply forms, 20 ms apart. If zero, 3.
	Announcements int
}

// Probe checks addr is not on any of this host's interfaces, then sends ARP probes (sender
// address 0.0.0.0, as RFC 5227 says, so no host learns a wrong binding) on iface and
// listens for any host that claims addr or probes for it.
func (n SystemNetwork) Probe(ctx context.Context, iface string, addr netip.Addr) error {
	if local, err := localHolder(addr); err != nil {
		return err
	} else if local != "" {
		return &InUseError{Addr: addr, Local: local}
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return fmt.Errorf("interface %s: %w", iface, err)
	}
	if ifi.Flags&net.FlagUp == 0 {
		return fmt.Errorf("interface %s is down", iface)
	}
	conn, err := packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), nil)
	if err != nil {
		return fmt.Errorf("interface %s: ARP socket: %w", iface, err)
	}
	defer conn.Close()
	probes, wait := n.Probes, n.ProbeWait
	if probes <= 0 {
		probes = 3
	}
	if wait <= 0 {
		wait = 100 * time.Millisecond
	}
	return probe(ctx, conn, ifi.HardwareAddr, addr, probes, wait)
}

// Up installs v (netlink RTM_NEWADDR with NLM_F_REPLACE) and announces it when new.
func (n SystemNetwork) Up(ctx context.Context, v VIP) (bool, error) {
	link, err := netlink.LinkByName(v.Interface)
	if err != nil {
		return false, fmt.Errorf("interface %s: %w", v.Interface, err)
	}
	present, err := hasAddr(link, v.Prefix.Addr())
	if err != nil {
		return false, err
	}
	a := nlAddr(v)
	if v.Lifetime > 0 {
		secs := int((v.Lifetime + time.Second - 1) / time.Second)
		a.ValidLft, a.PreferedLft = secs, secs
	}
	if err := netlink.AddrReplace(link, a); err != nil {
		return false, fmt.Errorf("add %s to %s: %w", v.Prefix, v.Interface, err)
	}
	if present {
		return false, nil
	}
	ifi, err := net.InterfaceByName(v.Interface)
	if err != nil {
		return true, fmt.Errorf("interface %s: %w", v.Interface, err)
	}
	conn, err := packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), nil)
	if err != nil {
		return true, fmt.Errorf("interface %s: ARP socket: %w", v.Interface, err)
	}
	defer conn.Close()
	count := n.Announcements
	if count <= 0 {
		count = 3
	}
	return true, announce(ctx, conn, ifi.HardwareAddr, v.Prefix.Addr(), count, 20*time.Millisecond)
}

// Down removes v from its interface.
func (n SystemNetwork) Down(ctx context.Context, v VIP) error {
	link, err := netlink.LinkByName(v.Interface)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil // no interface, no address
		}
		return fmt.Errorf("interface %s: %w", v.Interface, err)
	}
	if err := netlink.AddrDel(link, nlAddr(v)); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
		return fmt.Errorf("remove %s from %s: %w", v.Prefix, v.Interface, err)
	}
	return nil
}

func nlAddr(v VIP) *netlink.Addr {
	return &netlink.Addr{
		IPNet: &net.IPNet{IP: v.Prefix.Addr().AsSlice(), Mask: net.CIDRMask(v.Prefix.Bits(), 32)},
		Label: v.Label,
	}
}

func hasAddr(link netlink.Link, ip netip.Addr) (bool, error) {
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return false, fmt.Errorf("addresses of %s: %w", link.Attrs().Name, err)
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == ip {
			return true, nil
		}
	}
	return false, nil
}

// localHolder names the interface of this host that has addr, or "".
func localHolder(addr netip.Addr) (string, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return "", fmt.Errorf("this host's addresses: %w", err)
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == addr {
			if l, err := netlink.LinkByIndex(a.LinkIndex); err == nil {
				return l.Attrs().Name, nil
			}
			return fmt.Sprintf("interface %d", a.LinkIndex), nil
		}
	}
	return "", nil
}

// vip is the Manager's address as the Network sees it.
func (s *settings) vipOf(lifetime time.Duration) VIP {
	return VIP{Interface: s.dev, Label: s.label, Prefix: s.vip, Lifetime: lifetime}
}

func (m *Manager) vipAdd(ctx context.Context, s *settings) (string, error) {
	m.vipMu.Lock()
	defer m.vipMu.Unlock()
	life := m.vipLife
	if m.leaseGuard != nil && !m.leaseGuard(life) {
		return "", errors.New("the lease ends too soon to install the address")
	}
	if _, err := s.net.Up(ctx, s.vipOf(life)); err != nil {
		return "", err
	}
	m.vipUp = true
	detail := fmt.Sprintf("%s on %s, announced", s.vip, s.dev)
	if life > 0 {
		detail += fmt.Sprintf(", kernel lifetime %s", life)
	}
	return detail, nil
}

func (m *Manager) vipRemove(ctx context.Context, s *settings) error {
	m.vipMu.Lock()
	defer m.vipMu.Unlock()
	m.vipUp = false
	return s.net.Down(ctx, s.vipOf(0))
}

// refreshVIP installs the address again with its lifetime, if it is up and the lease
// outlives the new lifetime (automatic mode).
func (m *Manager) refreshVIP(ctx context.Context) error {
	s, err := m.settings()
	if err != nil {
		return err
	}
	m.vipMu.Lock()
	defer m.vipMu.Unlock()
	if !m.vipUp || m.leaseGuard == nil || !m.leaseGuard(m.vipLife) {
		return nil
	}
	_, err = s.net.Up(ctx, s.vipOf(m.vipLife))
	return err
}

// DropVIP removes the virtual IP at once and keeps it from being refreshed; the automatic
// mode calls it the moment a lease is lost, before stopping anything else.
func (m *Manager) DropVIP(ctx context.Context) error {
	s, err := m.settings()
	if err != nil {
		return err
	}
	return m.vipRemove(ctx, s)
}
