package vmtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/provkit/provkit/internal/netns"
)

// Net is a network namespace with a bridge: servers listen on the bridge's addresses,
// VMs attach to it through tap devices. Nothing routes out of it.
type Net struct {
	NS     *netns.NS
	Bridge string       // "br0"
	Addr   netip.Prefix // the bridge's IPv4 address and subnet: the servers' address
	Addr6  netip.Prefix // the bridge's IPv6 ULA (fd00:98::1/64): what router advertisements announce
	taps   int
}

// NewNet makes a namespace (name prefix nsPrefix, short) with a bridge br0 holding addr
// (for example 10.98.1.1/24) and an IPv6 ULA, with no STP delay, so that a VM's tap
// forwards at once.
func NewNet(tb testing.TB, nsPrefix string, addr netip.Prefix) *Net {
	tb.Helper()
	n := &Net{NS: netns.New(tb, nsPrefix), Bridge: "br0", Addr: addr,
		Addr6: netip.MustParsePrefix(fmt.Sprintf("fd00:98:%x::1/64", addr.Addr().As4()[2]))}
	n.NS.MustIP(tb, "link", "add", n.Bridge, "type", "bridge", "forward_delay", "0", "stp_state", "0", "mcast_snooping", "0")
	n.NS.MustIP(tb, "addr", "add", addr.String(), "dev", n.Bridge)
	n.NS.MustIP(tb, "addr", "add", n.Addr6.String(), "dev", n.Bridge, "nodad")
	n.NS.MustIP(tb, "link", "set", n.Bridge, "up")
	return n
}

// Tap adds a tap device to the bridge and returns its name, for one VM.
func (n *Net) Tap(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("tap%d", n.taps)
	n.taps++
	n.NS.MustIP(tb, "tuntap", "add", "dev", name, "mode", "tap")
	n.NS.MustIP(tb, "link", "set", name, "master", n.Bridge)
	n.NS.MustIP(tb, "link", "set", name, "up")
	return name
}

// Listen opens a TCP listener on the bridge address inside the namespace (port 0: any).
func (n *Net) Listen(tb testing.TB, port int) net.Listener {
	tb.Helper()
	var l net.Listener
	err := n.NS.Do(func() error {
		var err error
		l, err = net.Listen("tcp", netip.AddrPortFrom(n.Addr.Addr(), uint16(port)).String())
		return err
	})
	if err != nil {
		tb.Fatalf("vmtest: listen in %s: %v", n.NS.Name, err)
	}
	return l
}

// ServeHTTP serves h on the bridge address inside the namespace and returns the base
// URL ("http://10.98.1.1:PORT"). The server is shut down when the test ends, and any
// error it returns is reported.
func (n *Net) ServeHTTP(tb testing.TB, port int, h http.Handler) string {
	tb.Helper()
	l := n.Listen(tb, port)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			tb.Errorf("vmtest: http server: %v", err)
		}
	})
	return "http://" + l.Addr().String()
}

// Host returns the i-th address of the bridge's subnet (i=1 is usually the bridge
// itself), for DHCP reservations.
func (n *Net) Host(i int) netip.Addr {
	a := n.Addr.Masked().Addr()
	for range i {
		a = a.Next()
	}
	return a
}
