package vmtest

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// DiskBootInit is /sbin/init of a golden system for disk-boot tests (sysclone): it
// proves that a clone booted from its own disk under its own name, printing
// "PROVKIT-DISK-BOOT host=<hostname> root=<device>,<fstype>", and reports "booted" as an
// installed system does (nodeinit report, from /etc/provkit/node.conf that the deploy's
// fix-ups write). Format it with the eth0 address in CIDR form: busybox init runs no
// DHCP client.
const DiskBootInit = `#!/bin/sh
export PATH=/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
hostname -F /etc/hostname
ip link set lo up
ip link set eth0 up
ip addr add %s dev eth0
echo "PROVKIT-DISK-BOOT host=$(hostname) root=$(awk '$2=="/"{print $1 "," $3}' /proc/mounts)"
nodeinit report booted
sleep 60
poweroff -f
`

// DiskBootInitramfs is the init script (for BusyboxInitramfs) of such a golden system's
// own initramfs: wait for /dev/vda2, mount it, switch to it.
const DiskBootInitramfs = `mkdir -p /newroot
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vda2 ] && break; sleep 1; done
mount -t ext4 /dev/vda2 /newroot || echo "PROVKIT-DISK-BOOT-FAILED: mount /dev/vda2"
exec /bin/busybox switch_root /newroot /sbin/init
`

// GoldenSpec describes the golden system GoldenTree writes.
type GoldenSpec struct {
	Nodeinit string       // the nodeinit binary, for "nodeinit report"
	Kernel   *Kernel      // its kernel; the initramfs is DiskBootInitramfs
	Addr     netip.Prefix // the address DiskBootInit gives eth0
	// Tools are more programs with their libraries: path in the tree -> file here (the
	// caller's image.ProgramFiles).
	Tools map[string]string
	// Modules, if any, are installed under /lib/modules with their dependencies, and
	// depmod run on the tree.
	Modules []string
	// Versioned names the kernel and initramfs /boot/vmlinuz-<version> and
	// /boot/initrd.img-<version> as Debian does; else /boot/vmlinuz and /boot/initrd.img.
	Versioned bool
	// Files are more files: path in the tree -> content.
	Files map[string]string
}

// GoldenTree writes a golden system for disk-boot tests (sysclone) into dir: busybox and
// its applets, nodeinit, spec's tools and modules, the kernel and an initramfs that
// mounts /dev/vda2, extlinux.conf, DiskBootInit as /sbin/init, hostname "golden".
func GoldenTree(t testing.TB, dir string, spec GoldenSpec) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin", "usr/sbin", "dev", "proc", "sys", "run", "tmp", "boot/extlinux", "etc/network/interfaces.d"} {
		must(os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	copyFile := func(src, dst string, mode os.FileMode) {
		t.Helper()
		b, err := os.ReadFile(src)
		must(err)
		must(os.MkdirAll(filepath.Dir(filepath.Join(dir, dst)), 0o755))
		must(os.WriteFile(filepath.Join(dir, dst), b, mode))
	}
	copyFile(Busybox, "bin/busybox", 0o755)
	for _, a := range []string{"sh", "mount", "hostname", "ip", "awk", "sleep", "poweroff", "cat", "echo"} {
		must(os.Symlink("busybox", filepath.Join(dir, "bin", a)))
	}
	copyFile(spec.Nodeinit, "usr/sbin/nodeinit", 0o755)
	for dst, src := range spec.Tools {
		copyFile(src, dst, 0o755)
	}
	k := spec.Kernel
	if len(spec.Modules) > 0 {
		modDir := filepath.Join("lib/modules", k.Version)
		for _, m := range k.ModuleFiles(t, spec.Modules...) {
			rel, err := filepath.Rel(filepath.Join(k.Root, modDir), m)
			must(err)
			copyFile(m, filepath.Join(modDir, rel), 0o644)
		}
		for _, f := range []string{"modules.builtin", "modules.builtin.modinfo", "modules.order"} {
			copyFile(filepath.Join(k.Root, modDir, f), filepath.Join(modDir, f), 0o644)
		}
		if out, err := exec.Command("depmod", "-b", dir, k.Version).CombinedOutput(); err != nil {
			t.Fatalf("depmod: %v\n%s", err, out)
		}
	}
	vmlinuz, initrd := "vmlinuz", "initrd.img"
	if spec.Versioned {
		vmlinuz, initrd = "vmlinuz-"+k.Version, "initrd.img-"+k.Version
	}
	copyFile(k.Vmlinuz, "boot/"+vmlinuz, 0o644)
	copyFile(BusyboxInitramfs(t, k, DiskBootInitramfs, "virtio_pci", "virtio_blk", "virtio_net", "ext4"), "boot/"+initrd, 0o644)
	files := map[string]string{
		"boot/extlinux/extlinux.conf": fmt.Sprintf("DEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL /%s\n  INITRD /%s\n  APPEND console=ttyS0 panic=-1 quiet\n", vmlinuz, initrd),
		"sbin/init":                   fmt.Sprintf(DiskBootInit, spec.Addr),
		"etc/hostname":                "golden\n",
		"etc/hosts":                   "127.0.0.1\tlocalhost\n",
	}
	for p, c := range spec.Files {
		files[p] = c
	}
	for p, c := range files {
		must(os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755))
		must(os.WriteFile(filepath.Join(dir, p), []byte(c), 0o755))
	}
}
