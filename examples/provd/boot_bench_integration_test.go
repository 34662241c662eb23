//go:build integration

package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/provkit/provkit/internal/testenv"
	"github.com/provkit/provkit/internal/vmtest"
)

// BenchmarkVMBoot measures qemu start to the image's init (the console line of the
// image's /sbin/init, which runs when nodeinit reports booted) for node n1 served by
// provd, and for the same files served by the baseline: dnsmasq (DHCP, TFTP for the
// same iPXE script, router advertisements) plus a static Go HTTP server. Both in the same
// run, alternating boots; the per-boot seconds are reported as metrics.
//
//	go test -tags integration -run '^$' -bench VMBoot -benchtime 5x ./examples/provd/
func BenchmarkVMBoot(b *testing.B) {
	testenv.Require(b, vmtest.Needs()...)
	s := statelessSite(b, netip.MustParsePrefix("10.93.8.1/24"))
	srv := s.net.Addr.Addr()
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x93, 0x00, 0x01}

	// The script provd renders for n1, kept for the baseline: the same kernel, initrd,
	// command line and image URL.
	s.startProvd("--ra-interface", "br0", "--ra-prefix", s.net.Addr6.Masked().String())
	script := s.httpGet("/tftpboot/xcat/xnba/nodes/n1")
	s.stopProvd()
	tftp := b.TempDir()
	if err := os.WriteFile(filepath.Join(tftp, "n1.ipxe"), []byte(script), 0o644); err != nil {
		b.Fatal(err)
	}

	boot := func(name string) time.Duration {
		vm := vmtest.StartVM(b, vmtest.VMConfig{Net: s.net, MAC: mac, Name: name})
		vm.WaitFor(b, "PROVKIT-ROOTFS-INIT", 3*time.Minute)
		d := vm.Since()
		vm.Stop()
		return d
	}
	var provd, base []time.Duration
	for i := 0; i < b.N; i++ {
		// provd
		s.startProvd("--ra-interface", "br0", "--ra-prefix", s.net.Addr6.Masked().String())
		provd = append(provd, boot(fmt.Sprintf("provd-%d", i)))
		s.stopProvd()
		// baseline: dnsmasq + a static HTTP server on port 80 with a status receiver
		stop := s.staticBaseline(b, tftp, map[string]netip.Addr{mac.String(): netip.AddrFrom4([4]byte{srv.As4()[0], srv.As4()[1], srv.As4()[2], 11})})
		base = append(base, boot(fmt.Sprintf("dnsmasq-%d", i)))
		stop()
	}
	med := func(ds []time.Duration) float64 {
		c := slices.Clone(ds)
		slices.Sort(c)
		return c[len(c)/2].Seconds()
	}
	b.ReportMetric(med(provd), "provd-s/boot")
	b.ReportMetric(med(base), "dnsmasq-s/boot")
	b.ReportMetric(med(provd)/med(base), "provd/dnsmasq")
	b.Logf("provd boots %v; dnsmasq+http boots %v", provd, base)
}

// httpGet fetches a path from provd inside the namespace.
func (s *bootSite) httpGet(path string) string {
	s.t.Helper()
	var body []byte
	err := s.net.NS.Do(func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(s.net.Addr.Addr().String(), "80"), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		fmt.Fprintf(c, "GET %s HTTP/1.0\r\n\r\n", path)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		body, err = io.ReadAll(resp.Body)
		return err
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return string(body)
}

// staticBaseline serves the site's boot files the way a dnsmasq site does: dnsmasq for
// DHCP, TFTP (the iPXE script) and router advertisements, and a plain Go file server on
// port 80 for /tftpboot/ and /install/, plus a status receiver. It returns a stop function.
func (s *bootSite) staticBaseline(tb testing.TB, tftp string, hosts map[string]netip.Addr) func() {
	tb.Helper()
	mux := http.NewServeMux()
	mux.Handle("/tftpboot/", http.StripPrefix("/tftpboot/", http.FileServer(http.Dir(filepath.Join(s.dir, "tftpboot")))))
	mux.Handle("/install/", http.StripPrefix("/install/", http.FileServer(http.Dir(filepath.Join(s.dir, "install")))))
	mux.HandleFunc("/api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	})
	l := s.net.Listen(tb, 80)
	hs := &http.Server{Handler: cleanPath(mux), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(l) }()
	d := vmtest.StartDnsmasq(tb, s.net, vmtest.DnsmasqConfig{TFTPRoot: tftp, BootFile: "n1.ipxe", Hosts: hosts})
	return func() {
		hs.Close()
		d.Stop()
		// Let the killed dnsmasq release port 67 before the next server binds it.
		time.Sleep(200 * time.Millisecond)
	}
}
