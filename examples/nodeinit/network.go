package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/u-root/u-root/pkg/dhclient"
	"github.com/vishvananda/netlink"
)

// linkInfo is what interface selection looks at.
type linkInfo struct {
	Name    string
	MAC     net.HardwareAddr
	Index   int
	Carrier bool
}

var errNoInterface = errors.New("no network interface")

// pickInterface chooses the boot interface: the one named by provkit.ifname=, else the
// one whose MAC is BOOTIF=, else the first (by index) with a link. ok is false while the
// wanted interface is not there yet (drivers come up asynchronously).
func pickInterface(links []linkInfo, cfg Config) (linkInfo, bool) {
	slices.SortFunc(links, func(a, b linkInfo) int { return a.Index - b.Index })
	for _, l := range links {
		switch {
		case cfg.Interface != "":
			if l.Name == cfg.Interface {
				return l, true
			}
		case cfg.BootIF != nil:
			if bytes.Equal(l.MAC, cfg.BootIF) {
				return l, true
			}
		case l.Carrier:
			return l, true
		}
	}
	return linkInfo{}, false
}

// netInfo describes the configured network.
type netInfo struct {
	Iface  string
	MAC    string // the interface's MAC
	Addr   string // "10.98.1.5/24"
	Server string // the DHCP server
}

// listLinks lists Ethernet-like interfaces (not loopback), bringing them up.
func listLinks() ([]linkInfo, error) {
	ls, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	var out []linkInfo
	for _, l := range ls {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 || len(a.HardwareAddr) != 6 {
			continue
		}
		if a.Flags&net.FlagUp == 0 {
			_ = netlink.LinkSetUp(l)
		}
		out = append(out, linkInfo{Name: a.Name, MAC: a.HardwareAddr, Index: a.Index,
			Carrier: a.OperState == netlink.OperUp || a.RawFlags&0x10000 != 0 /* IFF_LOWER_UP */})
	}
	return out, nil
}

// setupNetwork finds the boot interface and configures it with DHCP (u-root dhclient:
// address, routes, resolv.conf).
func setupNetwork(ctx context.Context, cfg Config, con *console) (netInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.NetTimeout)
	defer cancel()
	if lo, err := netlink.LinkByName("lo"); err == nil {
		_ = netlink.LinkSetUp(lo)
	}
	start := time.Now()
	var chosen linkInfo
	var seen []linkInfo
	for {
		links, err := listLinks()
		if err != nil {
			return netInfo{}, fmt.Errorf("network: list interfaces: %w", err)
		}
		seen = links
		if l, ok := pickInterface(links, cfg); ok {
			chosen = l
			break
		}
		select {
		case <-ctx.Done():
			return netInfo{}, fmt.Errorf("network: %w after %s: %s", errNoInterface, time.Since(start).Round(time.Second), describeWanted(cfg, seen))
		case <-time.After(100 * time.Millisecond):
		}
	}
	con.printf("network: %s (%s), link up after %.1fs; DHCP...", chosen.Name, chosen.MAC, time.Since(start).Seconds())
	link, err := netlink.LinkByName(chosen.Name)
	if err != nil {
		return netInfo{}, fmt.Errorf("network: %s: %w", chosen.Name, err)
	}
	dcfg := dhclient.Config{
		Timeout: 4 * time.Second,
		Retries: 3,
		Modifiers4: []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("provkit-nodeinit")),
			dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
				dhcpv4.OptionHostName, dhcpv4.OptionDomainName),
		},
	}
	if err := os.MkdirAll("/etc", 0o755); err != nil {
		return netInfo{}, err
	}
	var lastErr error
	for res := range dhclient.SendRequests(ctx, []netlink.Link{link}, true, false, dcfg, cfg.NetTimeout) {
		if res.Err != nil {
			lastErr = res.Err
			continue
		}
		if err := res.Lease.Configure(); err != nil {
			return netInfo{}, fmt.Errorf("network: configure %s: %w", chosen.Name, err)
		}
		m4, _ := res.Lease.Message()
		ni := netInfo{Iface: chosen.Name, MAC: chosen.MAC.String()}
		if m4 != nil {
			ones, _ := m4.SubnetMask().Size()
			ni.Addr = fmt.Sprintf("%s/%d", m4.YourIPAddr, ones)
			ni.Server = m4.ServerIdentifier().String()
			gw := ""
			if r := m4.Router(); len(r) > 0 {
				gw = " gw " + r[0].String()
			}
			con.printf("network: %s %s%s from DHCP server %s (%.1fs)", chosen.Name, ni.Addr, gw, ni.Server, time.Since(start).Seconds())
		}
		return ni, nil
	}
	if lastErr == nil {
		lastErr = ctx.Err()
	}
	hint := ""
	if lastErr != nil && strings.Contains(lastErr.Error(), "random number") {
		// The DHCP library takes its transaction IDs from getrandom(), which blocks until
		// the kernel's random pool is ready: a VM without RDRAND or virtio-rng may wait
		// for minutes.
		hint = " (the kernel's random pool is not ready: give the VM an RNG, e.g. qemu -cpu max or -device virtio-rng-pci)"
	}
	return netInfo{}, fmt.Errorf("network: DHCP on %s: no lease after %s: %w%s", chosen.Name, time.Since(start).Round(time.Second), lastErr, hint)
}

func describeWanted(cfg Config, seen []linkInfo) string {
	var have []string
	for _, l := range seen {
		st := "no link"
		if l.Carrier {
			st = "link"
		}
		have = append(have, fmt.Sprintf("%s %s (%s)", l.Name, l.MAC, st))
	}
	h := "none (is the NIC driver in the initramfs modules?)"
	if len(have) > 0 {
		h = strings.Join(have, ", ")
	}
	switch {
	case cfg.Interface != "":
		return fmt.Sprintf("no interface named %s; have %s", cfg.Interface, h)
	case cfg.BootIF != nil:
		return fmt.Sprintf("no interface with BOOTIF MAC %s; have %s", cfg.BootIF, h)
	}
	return "no interface with a link; have " + h
}
