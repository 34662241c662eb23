//go:build integration

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provkit/provkit/internal/testenv"
	"github.com/provkit/provkit/internal/vmtest"
)

// bootSite is a cluster made with provctl the way an admin makes one, served by provd
// inside a network namespace with a bridge, ready for VMs to net-boot from.
type bootSite struct {
	t         testing.TB
	net       *vmtest.Net
	kernel    *vmtest.Kernel
	dir       string
	db        string
	provctl   string
	provd     string
	nodeinit  string
	provdLog  *lockedBuffer
	stopProvd func()
}

// lockedBuffer collects a process's output for the test to read while it runs.
type lockedBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *lockedBuffer) add(l string) {
	b.mu.Lock()
	b.lines = append(b.lines, l)
	b.mu.Unlock()
}

func (b *lockedBuffer) all() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.lines...)
}

func newBootSite(t testing.TB, prefix netip.Prefix) *bootSite {
	t.Helper()
	s := &bootSite{t: t, dir: t.TempDir(), provdLog: &lockedBuffer{}}
	s.net = vmtest.NewNet(t, "pd", prefix)
	s.kernel = vmtest.DebianKernel(t)
	s.provctl = vmtest.BuildGo(t, "github.com/provkit/provkit/examples/provctl")
	s.provd = vmtest.BuildGo(t, "github.com/provkit/provkit/examples/provd")
	s.nodeinit = vmtest.BuildGo(t, "github.com/provkit/provkit/examples/nodeinit")
	s.db = filepath.Join(s.dir, "provkit.db")
	for _, d := range []string{"tftpboot", "install"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// pc runs provctl against the site's store and returns its output.
func (s *bootSite) pc(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(s.provctl, append([]string{"--db", s.db}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("provctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// busyboxRoot makes a tiny root filesystem whose /sbin/init prints a marker with the
// host name nodeinit set, waits, and powers off.
func busyboxRoot(t testing.TB, dir, marker string) {
	t.Helper()
	for _, d := range []string{"bin", "sbin", "proc", "sys", "dev", "run", "tmp", "etc", "var"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile(vmtest.Busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(dir, "bin/sh")); err != nil {
		t.Fatal(err)
	}
	init := "#!/bin/sh\n/bin/busybox --install -s /bin\nexport PATH=/bin\n" +
		"echo \"" + marker + " host=$(hostname) root=$(stat -f -c %T /)\"\nsleep 20\npoweroff -f\n"
	if err := os.WriteFile(filepath.Join(dir, "sbin/init"), []byte(init), 0o755); err != nil {
		t.Fatal(err)
	}
}

// startProvd runs provd in the site's namespace and waits until it answers.
func (s *bootSite) startProvd(args ...string) {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := s.net.NS.Command(ctx, append([]string{s.provd, "--db", s.db, "--log-level", "debug"}, args...)...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.provdLog.add(sc.Text())
		}
	}()
	go func() { done <- cmd.Wait(); pw.Close() }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && ctx.Err() == nil {
				s.t.Errorf("provd: %v", err)
			}
		})
	}
	s.stopProvd = stop
	s.t.Cleanup(func() {
		stop()
		if s.t.Failed() {
			s.t.Logf("provd log:\n%s", strings.Join(s.provdLog.all(), "\n"))
		}
	})
	// Wait for its HTTP server, from inside the namespace (the dial must happen on the
	// thread that entered it, so no http.Client: its transport dials elsewhere).
	addr := net.JoinHostPort(s.net.Addr.Addr().String(), "80")
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ok bool
		_ = s.net.NS.Do(func() error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			fmt.Fprintf(c, "GET /healthz HTTP/1.0\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil {
				resp.Body.Close()
				ok = resp.StatusCode == http.StatusOK
			}
			return nil
		})
		if ok {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("provd did not answer http://%s/healthz within 30 s", addr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitStatus polls nodestat until node reports want, and returns the states provd
// logged for it in order.
func (s *bootSite) waitStatus(node, want string, timeout time.Duration) []string {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := strings.TrimSpace(s.pc("nodestat", node))
		if got == node+": "+want {
			break
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("nodestat %s = %q after %s, want %s", node, got, timeout, want)
		}
		time.Sleep(500 * time.Millisecond)
	}
	var states []string
	for _, l := range s.provdLog.all() {
		if strings.Contains(l, "msg=\"node status\"") && strings.Contains(l, "node="+node+" ") {
			_, st, _ := strings.Cut(l, "state=")
			states = append(states, strings.Trim(st, "\""))
		}
	}
	return states
}

// TestVMStatelessBoot is the proof of provkit's main job: a qemu VM whose MAC is reserved
// for n1 gets its address from provd's DHCP, its iPXE script (rendered from the tables on
// request) and the Debian kernel and provkit's initramfs over HTTP, and boots the stateless
// image that provctl genimage/packimage built; nodestat shows n1 booted.
// statelessSite makes a site whose node n1 (MAC 52:54:00:93:00:01) is set to boot a
// busybox image that provctl genimage/packimage built, as TestVMStatelessBoot and the boot
// benchmark use it. provd is not started.
func statelessSite(tb testing.TB, prefix netip.Prefix) *bootSite {
	tb.Helper()
	s := newBootSite(tb, prefix)
	root := filepath.Join(s.dir, "src")
	busyboxRoot(tb, root, "PROVKIT-ROOTFS-INIT")
	net3 := prefix.Masked().Addr().String()
	base := strings.TrimSuffix(net3, ".0") + "."

	s.pc("chtab", "key=tftpdir", "site.value="+filepath.Join(s.dir, "tftpboot"))
	s.pc("chtab", "key=installdir", "site.value="+filepath.Join(s.dir, "install"))
	s.pc("chtab", "key=domain", "site.value=cluster.test")
	s.pc("chtab", "key=dhcpinterfaces", "site.value=br0")
	s.pc("mkdef", "-t", "network", "-o", "bootnet", "net="+net3, "mask=255.255.255.0", "mgtifname=br0")
	s.pc("nodeadd", "n[1-2]", "groups=compute,all")
	s.pc("chtab", "node=compute", `hosts.ip=|n(\d+)|`+base+`($1+10)|`, "noderes.netboot=xnba", "nodehm.serialport=0", "nodehm.serialspeed=115200")
	s.pc("chtab", "node=n1", "mac.mac=52:54:00:93:00:01")
	s.pc("mkdef", "-t", "osimage", "-o", "busybox-netboot", "osvers=busybox", "osarch=x86_64", "profile=compute",
		"provmethod=netboot", "rootimgdir="+filepath.Join(s.dir, "install/netboot/busybox"), "addkcmdline=quiet panic=-1")
	s.pc("genimage", "busybox-netboot", "--source", "dir:"+root, "--kernel-deb", s.kernel.Deb, "--nodeinit", s.nodeinit)
	s.pc("packimage", "busybox-netboot")
	if got := s.pc("nodeset", "n1", "osimage=busybox-netboot"); got != "n1: netboot busybox-x86_64-compute\n" {
		tb.Fatalf("nodeset = %q", got)
	}
	return s
}

func TestVMStatelessBoot(t *testing.T) {
	testenv.Require(t, vmtest.Needs()...)
	s := statelessSite(t, netip.MustParsePrefix("10.93.0.1/24"))
	s.startProvd("--ra-interface", "br0", "--ra-prefix", s.net.Addr6.Masked().String())

	vm := vmtest.StartVM(t, vmtest.VMConfig{Net: s.net, MAC: net.HardwareAddr{0x52, 0x54, 0x00, 0x93, 0x00, 0x01}, Name: "n1"})
	states := s.waitStatus("n1", "booted", 4*time.Minute)
	line := vm.WaitFor(t, "PROVKIT-ROOTFS-INIT", time.Minute)
	t.Logf("qemu start to booted: %.1fs; states %v", vm.Since().Seconds(), states)
	if want := "netbooting booting booted"; strings.Join(states, " ") != want {
		t.Errorf("n1 reported %v, want %s", states, want)
	}
	if !strings.Contains(line, "host=n1") || !strings.Contains(line, "root=tmpfs") {
		t.Errorf("the image's init says %q, want host=n1 on a tmpfs root", line)
	}
	// The address and the boot config came from provd: the reserved IP, and the iPXE
	// script generated for n1.
	logs := strings.Join(s.provdLog.all(), "\n")
	for _, want := range []string{"path=xcat/xnba/nodes/n1", "path=xcat/osimage/busybox-netboot/kernel", "rootimg.cpio.gz"} {
		if !strings.Contains(logs, want) {
			t.Errorf("provd's log has no %q", want)
		}
	}
	if leases := s.pc("makedhcp", "n1", "-q"); leases != "n1: ip-address = 10.93.0.11, hardware-address = 52:54:00:93:00:01\n" {
		t.Errorf("makedhcp -q n1 = %q", leases)
	}
}
