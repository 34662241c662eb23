//go:build integration

package main

import (
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provkit/provkit/internal/testenv"
	"github.com/provkit/provkit/internal/vmtest"
)

// TestVMStatelessBoot is the proof of provkit's main job: a qemu VM whose MAC is reserved
// for n1 gets its address from provd's DHCP, its iPXE script (rendered from the tables on
// request) and the Debian kernel and provkit's initramfs over HTTP, and boots the stateless
// image that provctl genimage/packimage built; nodestat shows n1 booted.
func TestVMStatelessBoot(t *testing.T) {
	testenv.Require(t, vmtest.Needs()...)
	s := newBootSite(t, netip.MustParsePrefix("10.93.0.1/24"))
	root := filepath.Join(s.dir, "src")
	busyboxRoot(t, root, "PROVKIT-ROOTFS-INIT")

	s.pc("chtab", "key=tftpdir", "site.value="+filepath.Join(s.dir, "tftpboot"))
	s.pc("chtab", "key=installdir", "site.value="+filepath.Join(s.dir, "install"))
	s.pc("chtab", "key=domain", "site.value=cluster.test")
	s.pc("chtab", "key=dhcpinterfaces", "site.value=br0")
	s.pc("mkdef", "-t", "network", "-o", "bootnet", "net=10.93.0.0", "mask=255.255.255.0", "mgtifname=br0")
	s.pc("nodeadd", "n[1-2]", "groups=compute,all")
	s.pc("chtab", "node=compute", `hosts.ip=|n(\d+)|10.93.0.($1+10)|`, "noderes.netboot=xnba", "nodehm.serialport=0", "nodehm.serialspeed=115200")
	s.pc("chtab", "node=n1", "mac.mac=52:54:00:93:00:01")
	s.pc("mkdef", "-t", "osimage", "-o", "busybox-netboot", "osvers=busybox", "osarch=x86_64", "profile=compute",
		"provmethod=netboot", "rootimgdir="+filepath.Join(s.dir, "install/netboot/busybox"), "addkcmdline=quiet panic=-1")
	s.pc("genimage", "busybox-netboot", "--source", "dir:"+root, "--kernel-deb", s.kernel.Deb, "--nodeinit", s.nodeinit)
	s.pc("packimage", "busybox-netboot")
	if got := s.pc("nodeset", "n1", "osimage=busybox-netboot"); got != "n1: netboot busybox-x86_64-compute\n" {
		t.Fatalf("nodeset = %q", got)
	}
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
