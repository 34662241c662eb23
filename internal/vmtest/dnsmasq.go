package vmtest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// DnsmasqConfig configures the dnsmasq boot server.
type DnsmasqConfig struct {
	// TFTPRoot is served over TFTP. If empty, no TFTP.
	TFTPRoot string
	// BootFile is the DHCP boot file name (option 67): a TFTP path ("boot.ipxe") or an
	// URL ("http://10.98.1.1:8080/boot.ipxe") that iPXE fetches.
	BootFile string
	// Hosts are reservations: MAC -> IPv4 address.
	Hosts map[string]netip.Addr
	// Pool is the dynamic range as "first,last". If empty, hosts 100 to 150 of the subnet.
	Pool string
	// NoRA leaves out router advertisements (iPXE then waits ~16 s for one).
	NoRA bool
}

// Dnsmasq is a running dnsmasq.
type Dnsmasq struct {
	Log  string // path of its log (DHCP exchanges, TFTP transfers)
	cmd  *exec.Cmd
	stop func()
}

// Stop ends dnsmasq before the test does (to let another server take its ports).
func (d *Dnsmasq) Stop() { d.stop() }

// StartDnsmasq runs dnsmasq on the bridge of n as DHCP server (and TFTP server, and
// IPv6 router advertiser), the way shared/reference/qemu-pxe-dnsmasq.sh does. DNS is
// off. It is stopped when the test ends; if the test failed, its log is printed.
func StartDnsmasq(tb testing.TB, n *Net, cfg DnsmasqConfig) *Dnsmasq {
	tb.Helper()
	dir := tb.TempDir()
	d := &Dnsmasq{Log: filepath.Join(dir, "dnsmasq.log")}
	pool := cfg.Pool
	if pool == "" {
		pool = n.Host(100).String() + "," + n.Host(150).String()
	}
	mask := net.IP(net.CIDRMask(n.Addr.Bits(), 32)).String()
	args := []string{"--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--user=root", "--pid-file=",
		"--interface=" + n.Bridge, "--bind-interfaces", "--dhcp-authoritative",
		"--dhcp-range=" + pool + "," + mask + ",1h",
		"--dhcp-leasefile=" + filepath.Join(dir, "leases"), "--log-dhcp", "--log-facility=" + d.Log}
	macs := make([]string, 0, len(cfg.Hosts))
	for mac := range cfg.Hosts {
		macs = append(macs, mac)
	}
	slices.Sort(macs)
	for _, mac := range macs {
		args = append(args, "--dhcp-host="+mac+","+cfg.Hosts[mac].String())
	}
	if !cfg.NoRA {
		args = append(args, "--enable-ra", "--dhcp-range=::,constructor:"+n.Bridge+",ra-stateless")
	}
	if cfg.BootFile != "" {
		args = append(args, "--dhcp-boot="+cfg.BootFile)
	}
	if cfg.TFTPRoot != "" {
		args = append(args, "--enable-tftp", "--tftp-root="+cfg.TFTPRoot)
	}
	d.cmd, d.stop = start(tb, n, "dnsmasq", d.Log, args)
	return d
}

// StartRA runs dnsmasq as an IPv6 router advertiser only (no DHCP, no DNS, no TFTP),
// for tests that bring their own DHCP server: without an RA the iPXE ROM spends ~16 s
// in IPv6 autoconfiguration before it loads anything.
func StartRA(tb testing.TB, n *Net) {
	tb.Helper()
	log := filepath.Join(tb.TempDir(), "ra.log")
	_, _ = start(tb, n, "dnsmasq", log, []string{"--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--user=root",
		"--pid-file=", "--interface=" + n.Bridge, "--bind-interfaces", "--enable-ra",
		"--dhcp-range=::,constructor:" + n.Bridge + ",ra-only", "--log-facility=" + log})
}

// start runs a daemon in the namespace, stops it at the end of the test, and prints its
// log if the test failed.
func start(tb testing.TB, n *Net, prog, log string, args []string) (*exec.Cmd, func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := n.NS.Command(ctx, append([]string{prog}, args...)...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		tb.Fatalf("vmtest: start %s: %v", prog, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// dnsmasq reports bad options at once and exits: give it a moment to do so.
	select {
	case err := <-done:
		cancel()
		tb.Fatalf("vmtest: %s exited at start: %v\n%s", prog, err, out.String())
	case <-time.After(300 * time.Millisecond):
	}
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	tb.Cleanup(func() {
		stop()
		if tb.Failed() {
			if b, err := os.ReadFile(log); err == nil {
				tb.Logf("vmtest: %s log (%s):\n%s", prog, log, tail(string(b), 8000))
			}
			if out.Len() > 0 {
				tb.Logf("vmtest: %s output:\n%s", prog, tail(out.String(), 4000))
			}
		}
	})
	return cmd, stop
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return fmt.Sprintf("[... earlier output cut ...]\n%s", s)
}
