//go:build integration

package dhcp

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provkit/provkit/internal/netns"
	"github.com/provkit/provkit/internal/testenv"
)

// TestVMIPXE boots a qemu VM (TCG) whose network ROM is iPXE (ipxe-qemu) against the server
// and the router advertiser on a tap device in a namespace. iPXE sends user class "iPXE",
// gets its node's script URL, fetches the script from a test HTTP server, reports its
// address, runs DHCP a second time and reports again: both times the reserved address,
// one lease. PROVKIT_DHCP_NORA=1 leaves the router advertiser out, to see iPXE wait for
// IPv6 autoconfiguration (the elapsed time is logged, not asserted).
func TestVMIPXE(t *testing.T) {
	testenv.Require(t, testenv.Root(), testenv.Short(), testenv.Program("ip", "qemu-system-x86_64"))
	if _, err := os.Stat("/usr/lib/ipxe/qemu/efi-virtio.rom"); err != nil {
		testenv.Require(t, func() string { return "ipxe-qemu (/usr/lib/ipxe/qemu/efi-virtio.rom)" })
	}
	noLeaks(t)
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x91, 0x28, 0x01}
	ns := netns.New(t, "dv")
	ns.MustIP(t, "tuntap", "add", "dev", "tap0", "mode", "tap")
	ns.MustIP(t, "addr", "add", "10.91.40.1/24", "dev", "tap0")
	ns.MustIP(t, "addr", "add", "fe80::91:40:1/64", "dev", "tap0", "nodad")
	ns.MustIP(t, "link", "set", "tap0", "up")

	// The script server.
	type hit struct {
		path string
		at   time.Duration
	}
	var mu sync.Mutex
	var hits []hit
	var start time.Time
	second := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits = append(hits, hit{r.URL.Path, time.Since(start)})
		mu.Unlock()
		if r.URL.Path == "/boot/n1.ipxe" {
			_, _ = w.Write([]byte("#!ipxe\n" +
				"imgfetch http://10.91.40.1:8080/first/${net0/ip}/${net0/mac} ||\n" +
				"dhcp net0\n" +
				"imgfetch http://10.91.40.1:8080/second/${net0/ip}/${net0/mac} ||\n"))
			return
		}
		if strings.HasPrefix(r.URL.Path, "/second/") {
			defer close(second)
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp4", "10.91.40.1:8080"); return err }); err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()

	s := &Server{
		Networks: []Network{{Prefix: netip.MustParsePrefix("10.91.40.0/24"), Interface: "tap0",
			Boot: Boot{BIOS: "undionly.kpxe"}}},
		Hosts: hostsOf(t, Host{Name: "n1", MAC: mac, IP: ip("10.91.40.11"),
			Boot: Boot{IPXE: "http://10.91.40.1:8080/boot/n1.ipxe"}}),
		DenyUnknown: true,
	}
	serveIn(t, ns, s)
	if os.Getenv("PROVKIT_DHCP_NORA") == "" {
		var conn *RAConn
		if err := ns.Do(func() (err error) { conn, err = ListenRA("tap0"); return err }); err != nil {
			t.Fatal(err)
		}
		ra := &RouterAdvertiser{Conn: conn, Prefixes: []netip.Prefix{netip.MustParsePrefix("fd91:40::/64")}}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- ra.Serve(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("RouterAdvertiser.Serve = %v", err)
			}
		}()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	qemu := ns.Command(ctx, "qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-smp", "1", "-display", "none",
		"-serial", "none", "-monitor", "none", "-no-reboot", "-boot", "n",
		"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac="+mac.String())
	var qout strings.Builder
	qemu.Stdout, qemu.Stderr = &qout, &qout
	mu.Lock()
	start = time.Now()
	mu.Unlock()
	if err := qemu.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = qemu.Process.Kill()
		_ = qemu.Wait()
	}()
	select {
	case <-second:
	case <-ctx.Done():
		t.Fatalf("iPXE did not finish its script; HTTP requests: %v; qemu: %s", hits, qout.String())
	}
	mu.Lock()
	defer mu.Unlock()
	var first, again string
	for _, h := range hits {
		switch {
		case strings.HasPrefix(h.path, "/first/"):
			first = h.path
		case strings.HasPrefix(h.path, "/second/"):
			again = h.path
		}
		t.Logf("%6.2fs GET %s", h.at.Seconds(), h.path)
	}
	want := "10.91.40.11/" + mac.String()
	if first != "/first/"+want || again != "/second/"+want {
		t.Errorf("iPXE reported %q then %q, want the reservation %s both times", first, again, want)
	}
	ls, err := s.Leases()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || ls[0].IP != ip("10.91.40.11") {
		t.Errorf("leases %+v, want one for 10.91.40.11", ls)
	}
	if err := ctx.Err(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}
