//go:build integration

package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/provkit/provkit/image"
	"github.com/provkit/provkit/internal/testenv"
	"github.com/provkit/provkit/internal/vmtest"
)

// TestVMSysclone is the deploy proof: a VM with an empty virtual disk boots the nodeinit
// initramfs in sysclone mode (DHCP from dnsmasq), lays a golden image served over HTTP
// onto the disk (partitions, filesystems, extlinux with the golden MBR, fix-ups),
// reports each state and reboots; a second boot, from the disk alone (SeaBIOS, MBR,
// extlinux, the golden kernel), runs the clone's init, which reports "booted" under
// the node's own hostname.
func TestVMSysclone(t *testing.T) {
	testenv.Require(t, append(vmtest.Needs(), testenv.Program("dnsmasq", "sfdisk", "mke2fs", "extlinux"))...)
	t.Parallel()
	mbr, err := os.ReadFile("/usr/lib/syslinux/mbr/mbr.bin")
	if err != nil {
		t.Skipf("syslinux mbr.bin: %v (install syslinux-common)", err)
	}
	ctx := context.Background()
	k := vmtest.DebianKernel(t)
	nw := vmtest.NewNet(t, "sc", netip.MustParsePrefix("10.98.30.1/24"))
	node, mac := "n30", net.HardwareAddr{0x52, 0x54, 0x00, 0x98, 30, 0x05}
	recv := newReceiver()
	mux := http.NewServeMux()
	mux.Handle("/status", recv)
	imgdir := t.TempDir()
	mux.Handle("/install/sysclone/images/gold/", http.StripPrefix("/install/sysclone/images/gold/", http.FileServer(http.Dir(imgdir))))
	base := nw.ServeHTTP(t, 0, mux)
	nodeinit := vmtest.BuildGo(t, "github.com/provkit/provkit/examples/nodeinit")

	// The golden system: busybox, nodeinit (for "report"), extlinux, the Debian kernel
	// and an initramfs that mounts the root from the disk.
	golden := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	tools, err := image.ProgramFiles("/", "extlinux")
	must(err)
	vmtest.GoldenTree(t, golden, vmtest.GoldenSpec{Nodeinit: nodeinit, Kernel: k, Addr: netip.PrefixFrom(nw.Host(5), 24), Tools: tools})

	// The osimage directory as imgcapture leaves it: the packed image and the layout of
	// a 192 MiB golden disk, /boot (ext2, bootable) and / (ext4, grows).
	f, err := os.Create(filepath.Join(imgdir, image.CloneImageFile))
	must(err)
	_, err = image.PackClone(ctx, golden, f)
	must(err)
	must(f.Close())
	layout := image.DiskLayout{Disks: []image.LayoutDisk{{Device: "/dev/vda", Size: 192 << 20, SectorSize: 512, Label: "dos", LabelID: "0x5eed0030",
		Partitions: []image.LayoutPartition{
			{Number: 1, Start: 2048, Size: 65536, Type: "83", Bootable: true, FSType: "ext2", FSUUID: "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9", Mountpoint: "/boot"},
			{Number: 2, Start: 67584, Size: 325632, Type: "83", Grow: true, FSType: "ext4", FSUUID: "1c2d3e4f-5061-4728-93a4-b5c6d7e8f90a", Mountpoint: "/"},
		}}}, MBR: map[string]string{"/dev/vda": hex.EncodeToString(mbr[:440])}}
	b, _ := json.Marshal(layout)
	must(os.WriteFile(filepath.Join(imgdir, image.CloneLayout), b, 0o644))

	// The deploy initramfs: nodeinit, the disk and network modules, the deploy tools.
	deployTools, err := image.ProgramFiles("/", append(image.DeployTools, layout.MkfsTools()...)...)
	must(err)
	initrd := filepath.Join(t.TempDir(), "initrd-sysclone.gz")
	_, err = image.WriteInitramfsFile(ctx, initrd, image.InitramfsSpec{
		Init: nodeinit, KernelRoot: k.Root, KernelVersion: k.Version,
		Modules: append(image.VirtioNetModules(), "virtio_blk", "ext4"), Files: deployTools,
	})
	must(err)

	// An empty 256 MiB disk.
	disk := filepath.Join(t.TempDir(), "disk.raw")
	must(os.WriteFile(disk, nil, 0o600))
	must(os.Truncate(disk, 256<<20))
	vmtest.StartDnsmasq(t, nw, vmtest.DnsmasqConfig{Hosts: map[string]netip.Addr{mac.String(): nw.Host(5)}})

	vm := vmtest.StartVM(t, vmtest.VMConfig{Net: nw, MAC: mac, Name: "deploy", MemoryMB: 512, Disks: []string{disk}, ResetOnLockup: true,
		Kernel: k.Vmlinuz, Initrd: initrd,
		Append: fmt.Sprintf("console=ttyS0 quiet panic=-1 NODE=%s BOOTIF=01-%s provkit.sysclone=%s/install/sysclone/images/gold provkit.disk=/dev/vda provkit.status=%s/status",
			node, strings.ReplaceAll(mac.String(), ":", "-"), base, base)})
	got := recv.wait(t, vm, node, 5*time.Minute, func(s string) bool { return s == StateInstalled || isFinal(s) })
	want := []string{"partitioning", "formatting", "imaging", "bootloader", "fixup", StateInstalled}
	if diff := cmp.Diff(want, got); diff != "" {
		vm.LogConsole(t)
		t.Fatalf("deploy states (-want +got):\n%s", diff)
	}
	select {
	case <-vm.Exited(): // nodeinit rebooted; -no-reboot ends qemu
	case <-time.After(3 * time.Minute): // generous: a TCG guest on a loaded host is slow
		t.Fatalf("the deploy VM did not reboot after %q", StateInstalled)
	}

	// The second boot: from the disk only.
	vm2 := vmtest.StartVM(t, vmtest.VMConfig{Net: nw, MAC: mac, Name: "disk", MemoryMB: 384, Disks: []string{disk}, BootDisk: true})
	got = recv.wait(t, vm2, node, 4*time.Minute, func(s string) bool { return s == StateBooted || isFinal(s) })
	if got[len(got)-1] != StateBooted {
		t.Fatalf("%s after the disk boot: %q", node, got)
	}
	line := vm2.WaitFor(t, "PROVKIT-DISK-BOOT", 3*time.Minute)
	if !strings.Contains(line, "host="+node+" ") || !strings.Contains(line, "root=/dev/vda2,ext4") {
		t.Errorf("disk boot: %q, want host=%s on /dev/vda2", line, node)
	}
	vm2.Stop()
}
