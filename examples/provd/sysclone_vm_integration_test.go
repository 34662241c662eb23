//go:build integration

package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provkit/provkit/image"
	"github.com/provkit/provkit/internal/sshdtest"
	"github.com/provkit/provkit/internal/testenv"
	"github.com/provkit/provkit/internal/vmtest"
)

// runCmd runs a command and fails the test with its output if it fails.
func runCmd(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// goldenDisk makes the golden node's disk: a 128 MiB loop device with an MBR (syslinux's
// boot code), /boot (ext2, bootable) and / (ext4), mounted at a new directory, which it
// returns. Capturing from it records a real layout (sfdisk, lsblk), as from a node.
func goldenDisk(t *testing.T, mbr []byte) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "golden.raw")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(mbr[:440])
	if err == nil {
		err = f.Truncate(128 << 20)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	runCmd(t, "label: dos\nlabel-id: 0x5eed0030\nstart=2048, size=32MiB, type=83, bootable\ntype=83\n", "sfdisk", "-q", file)
	loop := strings.TrimSpace(runCmd(t, "", "losetup", "--find", "--show", "--partscan", file))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", loop).Run() })
	// The kernel may not scan the loop device's table (loop max_part=0): partx adds the
	// partitions (it fails when the scan already did, which is fine).
	_ = exec.Command("partx", "-a", loop).Run()
	for _, p := range []string{"p1", "p2"} {
		for i := 0; ; i++ {
			if _, err := os.Stat(loop + p); err == nil {
				break
			}
			if i == 50 {
				t.Fatalf("no %s%s after losetup --partscan", loop, p)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	runCmd(t, "", "mke2fs", "-q", "-F", "-t", "ext2", loop+"p1")
	runCmd(t, "", "mke2fs", "-q", "-F", "-t", "ext4", loop+"p2")
	root := t.TempDir()
	runCmd(t, "", "mount", loop+"p2", root)
	t.Cleanup(func() { _ = exec.Command("umount", root).Run() })
	if err := os.Mkdir(filepath.Join(root, "boot"), 0o755); err != nil {
		t.Fatal(err)
	}
	runCmd(t, "", "mount", loop+"p1", filepath.Join(root, "boot"))
	t.Cleanup(func() { _ = exec.Command("umount", filepath.Join(root, "boot")).Run() })
	return root
}

// goldenTree fills the golden node's filesystems: busybox, nodeinit (for "report"),
// extlinux and the deploy's programs (sfdisk, partx, mke2fs, with their libraries), the
// Debian kernel with the few modules its clones need, and an initramfs that mounts the
// root from the disk.
func goldenTree(t *testing.T, golden, nodeinit string, k *vmtest.Kernel, addr netip.Prefix) {
	t.Helper()
	tools, err := image.ProgramFiles("/", append(image.DeployTools, "mke2fs", "extlinux")...)
	if err != nil {
		t.Fatal(err)
	}
	vmtest.GoldenTree(t, golden, vmtest.GoldenSpec{Nodeinit: nodeinit, Kernel: k, Addr: addr, Tools: tools,
		Modules: append(image.VirtioNetModules(), "virtio_blk", "ext4"), Versioned: true,
		Files: map[string]string{"etc/os-release": "ID=debian\nVERSION_ID=\"12\"\n"}})
}

// waitStatusOrFail polls nodestat until node reports want, and fails the test with the
// VM's console as soon as it reports a failure instead.
func (s *bootSite) waitStatusOrFail(vm *vmtest.VM, node, want string, timeout time.Duration) {
	s.t.Helper()
	for deadline := time.Now().Add(timeout); ; {
		got := strings.TrimPrefix(strings.TrimSpace(s.pc("nodestat", node)), node+": ")
		if got == want {
			return
		}
		if strings.HasPrefix(got, "failed") || time.Now().After(deadline) {
			vm.LogConsole(s.t)
			s.t.Fatalf("nodestat %s = %q, want %s (waited up to %s)", node, got, want, timeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestVMSyscloneDeploy is issue 7 end to end through provkit's own tools, as an admin
// runs it. The golden node is a real disk (a loop device: MBR, /boot ext2, / ext4)
// served by a real sshd on loopback; provctl imgcapture captures it over SSH into the
// osimage gold (provmethod=sysclone, the recorded layout, the packed image, the deploy
// kernel and initramfs). provctl nodeset n30 osimage=gold; provd serves DHCP, the iPXE
// script, the kernel and initramfs and the image; a qemu VM with n30's MAC and an empty
// disk net-boots, deploys (each state reported to provd) and reboots; booted again from
// its disk alone (a second qemu run on the same disk: the harness ends qemu when the
// guest reboots), the clone's init reports booted under its own name, and nodestat
// shows it.
func TestVMSyscloneDeploy(t *testing.T) {
	testenv.Require(t, append(vmtest.Needs(), testenv.Program("/usr/sbin/sshd", "sfdisk", "partx", "mke2fs", "extlinux", "losetup", "depmod", "lsblk", "blkid"))...)
	mbr, err := os.ReadFile("/usr/lib/syslinux/mbr/mbr.bin")
	if err != nil {
		t.Skipf("syslinux mbr.bin: %v (install syslinux-common)", err)
	}
	s := newBootSite(t, netip.MustParsePrefix("10.93.30.1/24"))
	node, mac, ip := "n30", net.HardwareAddr{0x52, 0x54, 0x00, 0x93, 30, 0x30}, "10.93.30.40"

	// The golden node, and its capture.
	golden := goldenDisk(t, mbr)
	goldenTree(t, golden, s.nodeinit, s.kernel, netip.MustParsePrefix(ip+"/24"))
	sd := sshdtest.Start(t, nil, "")
	port, key, kh := sd.Port(), sd.KeyFile, sd.KnownHosts
	inst := filepath.Join(s.dir, "install")
	s.pc("chtab", "key=tftpdir", "site.value="+filepath.Join(s.dir, "tftpboot"))
	s.pc("chtab", "key=installdir", "site.value="+inst)
	s.pc("chtab", "key=domain", "site.value=cluster.test")
	s.pc("chtab", "key=dhcpinterfaces", "site.value=br0")
	s.pc("mkdef", "-t", "network", "-o", "bootnet", "net=10.93.30.0", "mask=255.255.255.0", "mgtifname=br0")
	s.pc("nodeadd", "golden", "groups=all", "hosts.ip=127.0.0.1")
	s.pc("nodeadd", node, "groups=compute,all", "hosts.ip="+ip, "mac.mac="+mac.String(),
		"noderes.netboot=xnba", "nodehm.serialport=0", "nodehm.serialspeed=115200")
	out := s.pc("imgcapture", "golden", "-t", "sysclone", "-o", "gold", "--root", golden,
		"--port", fmt.Sprint(port), "-i", key, "--known-hosts", kh, "--nodeinit", s.nodeinit)
	if !strings.Contains(out, "osimage gold") || strings.Contains(out, "Warning") {
		t.Fatalf("imgcapture said %q", out)
	}
	dir := filepath.Join(inst, "sysclone/images/gold")
	def := s.pc("lsdef", "-t", "osimage", "gold")
	for _, want := range []string{"provmethod=sysclone", "rootimgdir=" + dir, "kernelver=" + s.kernel.Version, "partitionfile=" + filepath.Join(dir, image.CloneLayout)} {
		if !strings.Contains(def, "    "+want+"\n") {
			t.Errorf("lsdef -t osimage gold lacks %s:\n%s", want, def)
		}
	}
	// The golden disk was a loop device; the clone's is the VM's virtio disk, and the
	// golden node's root comes down with its own quiet console settings.
	s.pc("chdef", node, "addkcmdline=provkit.disk=/dev/vda quiet panic=-1")
	if got := s.pc("nodeset", node, "osimage=gold"); got != node+": sysclone debian12-x86_64-gold\n" {
		t.Fatalf("nodeset = %q", got)
	}
	s.startProvd()

	disk := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(disk, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 160<<20); err != nil {
		t.Fatal(err)
	}
	vm := vmtest.StartVM(t, vmtest.VMConfig{Net: s.net, MAC: mac, Name: node + "-deploy", MemoryMB: 512, Disks: []string{disk}, ResetOnLockup: true})
	s.waitStatusOrFail(vm, node, "installed", 6*time.Minute)
	states := s.waitStatus(node, "installed", time.Second)
	if want := "partitioning formatting imaging bootloader fixup installed"; strings.Join(states, " ") != want {
		vm.LogConsole(t)
		t.Fatalf("%s reported %v, want %s", node, states, want)
	}
	if _, err := vm.Await("sysclone: installed; rebooting from the disk", time.Minute); err != nil {
		vm.LogConsole(t)
		t.Fatal(err)
	}
	// nodeinit reboots (-no-reboot ends qemu). Under TCG the guest kernel's restart
	// sometimes hangs in a soft lockup (ksoftirqd) after nodeinit's reboot(2); the
	// deploy unmounted and synced the disk before it reported installed, so the power
	// is cut then, as an admin would.
	select {
	case <-vm.Exited():
	case <-time.After(45 * time.Second):
		t.Logf("the deploy VM did not end its reboot within 45 s of installed; stopping it")
		vm.Stop()
	}

	vm2 := vmtest.StartVM(t, vmtest.VMConfig{Net: s.net, MAC: mac, Name: node + "-disk", MemoryMB: 384, Disks: []string{disk}, BootDisk: true})
	line, err := vm2.Await("PROVKIT-DISK-BOOT", 4*time.Minute)
	if err != nil {
		vm2.LogConsole(t)
		t.Fatal(err)
	}
	if !strings.Contains(line, "host="+node+" ") || !strings.Contains(line, "root=/dev/vda2,ext4") {
		vm2.LogConsole(t)
		t.Errorf("disk boot: %q, want host=%s on /dev/vda2", line, node)
	}
	s.waitStatusOrFail(vm2, node, "booted", 2*time.Minute)
	states = s.waitStatus(node, "booted", time.Second)
	if want := "partitioning formatting imaging bootloader fixup installed booted"; strings.Join(states, " ") != want {
		t.Errorf("%s reported %v, want %s", node, states, want)
	}
	t.Logf("%s: states %v; disk boot says %q", node, states, line)

	logs := strings.Join(s.provdLog.all(), "\n")
	for _, want := range []string{"path=xcat/xnba/nodes/" + node, "path=xcat/osimage/gold/initrd-sysclone.gz", "path=sysclone/images/gold/" + image.CloneImageFile + " bytes="} {
		if !strings.Contains(logs, want) {
			t.Errorf("provd's log has no %q", want)
		}
	}
	vm2.Stop()
}
