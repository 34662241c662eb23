// Package vmtest boots qemu virtual machines in tests: the harness every VM test of
// provkit uses. It is a test helper: it fails the test (tb.Fatal) instead of returning
// errors, and registers every clean-up with tb.Cleanup.
//
// The pieces, each usable alone:
//
//   - DebianKernel: the Debian kernel package (the version apt's linux-image-amd64
//     depends on), downloaded once with apt-get download and extracted with dpkg-deb
//     into $PROVKIT_CACHE (default ~/.cache/provkit), depmod run. Its modules are
//     what an initramfs loads (NIC drivers and the NFS client are modules).
//   - BusyboxInitramfs: a small initramfs of busybox-static, chosen modules and an
//     /init script; Initramfs for any set of files. BuildGo builds a static Go
//     program (nodeinit) for one.
//   - NewNet: a network namespace (internal/netns) with a bridge that has an IPv4
//     address and an IPv6 ULA, where servers run and VMs attach through tap devices.
//   - StartDnsmasq: dnsmasq as DHCP + TFTP server with router advertisements, the
//     baseline boot server; StartRA: router advertisements alone, for tests that bring
//     their own DHCP (the iPXE ROM waits ~16 s for an RA before it loads anything).
//     ServeHTTP: a Go HTTP server inside the namespace; Listen: any TCP listener
//     there. (A client in the namespace must dial inside netns.NS.Do itself:
//     http.Transport dials from other goroutines, which are outside it.)
//   - StartVM: qemu-system-x86_64 (TCG, no KVM needed) with virtio-net on a tap of
//     the bridge, network boot through the ipxe-qemu ROM (or a direct kernel boot),
//     the serial console captured; WaitFor waits for a console line. When the test
//     fails, the console log is written to the test output.
//
// A PXE boot from dnsmasq, as in vmtest_integration_test.go:
//
//	n := vmtest.NewNet(t, "pxe", netip.MustParsePrefix("10.98.1.1/24"))
//	k := vmtest.DebianKernel(t)
//	initrd := vmtest.BusyboxInitramfs(t, k, "echo BOOT-OK\npoweroff -f\n", "virtio_net", "virtio_pci")
//	files := http.NewServeMux() // serves k.Vmlinuz and initrd
//	base := n.ServeHTTP(t, 0, files)
//	tftp := t.TempDir() // boot.ipxe: "#!ipxe\nkernel <base>/vmlinuz console=ttyS0 quiet\ninitrd <base>/initrd\nboot\n"
//	vmtest.StartDnsmasq(t, n, vmtest.DnsmasqConfig{TFTPRoot: tftp, BootFile: "boot.ipxe"})
//	vm := vmtest.StartVM(t, vmtest.VMConfig{Net: n, MAC: mac})
//	vm.WaitFor(t, "BOOT-OK", 3*time.Minute)
//
// Guests run with qemu -cpu max: it gives them RDRAND, without which a TCG guest's
// getrandom() (Go's crypto/rand, so every Go DHCP client) blocks for minutes.
//
// Tests that use it need root, qemu-system-x86_64, ipxe-qemu and (for dnsmasq)
// dnsmasq: start them with testenv.Require(t, vmtest.Needs()...).
package vmtest
