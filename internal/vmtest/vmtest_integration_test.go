//go:build integration

package vmtest

import (
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provkit/provkit/internal/testenv"
)

// TestVMBusyboxPXE is the harness's own proof and the example to copy: a VM net-boots
// from dnsmasq (DHCP, TFTP for the iPXE script) and a Go HTTP server (kernel, initrd),
// runs a busybox /init that gets an address with udhcpc and prints a marker.
func TestVMBusyboxPXE(t *testing.T) {
	testenv.Require(t, append(Needs(), testenv.Program("dnsmasq"))...)
	n := NewNet(t, "vmt", netip.MustParsePrefix("10.98.10.1/24"))
	k := DebianKernel(t)
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x98, 0x10, 0x05}
	initrd := BusyboxInitramfs(t, k, `ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -n -q -t 5 -s /bin/true -O 1 > /tmp/dhcp 2>&1 && echo "DHCP-OK $(cat /proc/cmdline | cut -c1-20)"
echo "BUSYBOX-BOOT-OK"
poweroff -f
`, "virtio_net", "virtio_pci")

	files := http.NewServeMux()
	files.HandleFunc("/vmlinuz", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, k.Vmlinuz) })
	files.HandleFunc("/initrd.gz", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, initrd) })
	base := n.ServeHTTP(t, 0, files)

	tftp := t.TempDir()
	script := "#!ipxe\nkernel " + base + "/vmlinuz console=ttyS0 quiet panic=-1\ninitrd " + base + "/initrd.gz\nboot\n"
	if err := os.WriteFile(filepath.Join(tftp, "boot.ipxe"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	StartDnsmasq(t, n, DnsmasqConfig{TFTPRoot: tftp, BootFile: "boot.ipxe", Hosts: map[string]netip.Addr{mac.String(): n.Host(5)}})
	vm := StartVM(t, VMConfig{Net: n, MAC: mac, Name: "busybox", FirmwareConsole: testing.Verbose()})
	vm.WaitFor(t, "BUSYBOX-BOOT-OK", 3*time.Minute)
	t.Logf("qemu start to marker: %.1fs", vm.Since().Seconds())
	if testing.Verbose() {
		vm.LogConsole(t)
	}
	if !strings.Contains(strings.Join(vm.Console(), "\n"), "DHCP-OK") {
		t.Errorf("the guest's udhcpc got no lease")
	}
	select {
	case <-vm.Exited():
	case <-time.After(30 * time.Second):
		t.Errorf("guest did not power off")
	}
}

// TestVMDirectKernel boots the kernel and a busybox initramfs with qemu -kernel: the
// fast path for tests that need a guest but not the network boot.
func TestVMDirectKernel(t *testing.T) {
	testenv.Require(t, Needs()...)
	n := NewNet(t, "vmd", netip.MustParsePrefix("10.98.11.1/24"))
	k := DebianKernel(t)
	// The guest then prints what a kernel stuck in a soft lockup prints, and hangs:
	// ResetOnLockup resets it, and without Reboot qemu exits.
	initrd := BusyboxInitramfs(t, k, "echo DIRECT-BOOT-OK $(cat /proc/cmdline)\necho 'watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [vmtest:1]'\nsleep 600\n")
	vm := StartVM(t, VMConfig{Net: n, Kernel: k.Vmlinuz, Initrd: initrd, Append: "console=ttyS0 quiet panic=-1 marker=yes", Name: "direct", ResetOnLockup: true})
	line := vm.WaitFor(t, "DIRECT-BOOT-OK", 2*time.Minute)
	if !strings.Contains(line, "marker=yes") {
		t.Errorf("kernel command line not passed: %q", line)
	}
	select {
	case <-vm.Exited():
	case <-time.After(time.Minute):
		t.Fatalf("the VM was not reset after its soft lockup")
	}
	if testing.Verbose() {
		vm.LogConsole(t)
	}
	if got := vm.Resets(); got != 1 {
		t.Errorf("Resets() = %d, want 1", got)
	}
}
