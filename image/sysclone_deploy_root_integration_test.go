//go:build integration

package image

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/provkit/provkit/internal/testenv"
)

// TestRootLoopDeploy deploys a packed clone onto a loop device larger than the golden
// disk: partition table (the last partition grown), filesystems with the golden UUIDs,
// the tree, extlinux and the MBR boot code, the node's fix-ups. Then it mounts the result
// and compares it with the golden tree.
func TestRootLoopDeploy(t *testing.T) {
	testenv.Require(t, testenv.Root(), testenv.Program("losetup", "sfdisk", "mke2fs", "blkid", "extlinux"))
	mbr, err := os.ReadFile("/usr/lib/syslinux/mbr/mbr.bin")
	if err != nil {
		t.Skipf("syslinux mbr.bin: %v", err)
	}
	ctx := context.Background()
	golden := t.TempDir()
	makeGolden(t, golden)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(golden, "boot/extlinux"), 0o755))
	must(os.WriteFile(filepath.Join(golden, "boot/extlinux/extlinux.conf"), []byte("DEFAULT linux\nLABEL linux\n  KERNEL /vmlinuz\n  APPEND root=UUID=9d0b6a52-7e36-4c57-8a3c-2b1d7e5f6c33\n"), 0o644))
	must(os.WriteFile(filepath.Join(golden, "boot/vmlinuz"), bytes.Repeat([]byte("k"), 100<<10), 0o644))
	var packed bytes.Buffer
	_, err = PackClone(ctx, golden, &packed)
	must(err)

	// The golden disk: 96 MiB, /boot (ext2) and / (ext4).
	layout := DiskLayout{Disks: []LayoutDisk{{Device: "/dev/vda", Size: 96 << 20, SectorSize: 512, Label: "dos", LabelID: "0x5eed0001",
		Partitions: []LayoutPartition{
			{Number: 1, Start: 2048, Size: 32768, Type: "83", Bootable: true, FSType: "ext2", FSUUID: "1b6c5d3e-0a6e-4b0f-9d7e-0c3f3c7d9a11", FSLabel: "boot", Mountpoint: "/boot"},
			{Number: 2, Start: 34816, Size: 161792, Type: "83", Grow: true, FSType: "ext4", FSUUID: "9d0b6a52-7e36-4c57-8a3c-2b1d7e5f6c33", FSLabel: "root", Mountpoint: "/"},
		}}},
		MBR: map[string]string{"/dev/vda": hex.EncodeToString(mbr[:440])},
	}
	// The target: 128 MiB.
	img := filepath.Join(t.TempDir(), "disk.img")
	must(os.WriteFile(img, nil, 0o600))
	must(os.Truncate(img, 128<<20))
	out, err := exec.Command("losetup", "-f", "--show", "-P", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", loop).Run() })

	// extlinux runs from this machine, not a chroot: the test tree has no extlinux.
	run := func(ctx context.Context, chroot string, stdin []byte, argv ...string) ([]byte, error) {
		if chroot != "" && argv[0] == "extlinux" {
			return runIn(ctx, "", stdin, "extlinux", "--install", filepath.Join(chroot, argv[2]))
		}
		return runIn(ctx, chroot, stdin, argv...)
	}
	var steps []string
	res, err := Deploy(ctx, DeploySpec{
		Layout:  layout,
		Targets: map[string]string{"/dev/vda": loop},
		Image: func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(packed.Bytes())), nil
		},
		Run:   run,
		Step:  func(s string) { steps = append(steps, s) },
		Fixup: NodeFixup{Hostname: "n1", Status: "http://10.98.0.1/api/v1/status"},
	})
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	if diff := cmp.Diff([]string{"partitioning", "formatting", "imaging", "bootloader", "fixup", "installed"}, steps); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if res.Bootloader != "extlinux" {
		t.Errorf("boot loader %q, want extlinux", res.Bootloader)
	}

	// The partition table: the golden one, the last partition grown to the end.
	out, err = exec.Command("sfdisk", "-J", loop).Output()
	must(err)
	got, err := ParseSfdiskJSON(out)
	must(err)
	if got.LabelID != "0x5eed0001" || len(got.Partitions) != 2 || got.Partitions[1].Start != 34816 ||
		got.Partitions[1].Size != 128<<20/512-34816 || !got.Partitions[0].Bootable {
		t.Errorf("partition table: %+v", got)
	}
	for i, p := range layout.Disks[0].Partitions {
		dev := PartitionDevice(loop, p.Number)
		out, err := exec.Command("blkid", "-o", "value", "-s", "UUID", dev).Output()
		if err != nil || strings.TrimSpace(string(out)) != p.FSUUID {
			t.Errorf("partition %d UUID %q (%v), want %s", i+1, out, err, p.FSUUID)
		}
	}
	f, err := os.Open(loop)
	must(err)
	head := make([]byte, 440)
	_, err = io.ReadFull(f, head)
	f.Close()
	must(err)
	if !bytes.Equal(head, mbr[:440]) {
		t.Errorf("the MBR boot code is not the golden node's")
	}

	// The tree.
	mnt := t.TempDir()
	must(unix.Mount(PartitionDevice(loop, 2), mnt, "ext4", unix.MS_RDONLY, ""))
	t.Cleanup(func() { _ = unix.Unmount(mnt, 0) })
	must(unix.Mount(PartitionDevice(loop, 1), filepath.Join(mnt, "boot"), "ext2", unix.MS_RDONLY, ""))
	t.Cleanup(func() { _ = unix.Unmount(filepath.Join(mnt, "boot"), 0) })
	want := snapshotTree(t, golden)
	have := snapshotTree(t, mnt, "lost+found", "boot/lost+found", "boot/extlinux/ldlinux.sys", "boot/extlinux/ldlinux.c32", "etc/provkit")
	// What the fix-ups change.
	for _, p := range []string{"etc", "etc/ssh", "etc/hostname", "etc/hosts", "etc/machine-id", "boot/extlinux",
		"etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_ed25519_key.pub", "etc/ssh/ssh_host_ecdsa_key", "etc/ssh/ssh_host_ecdsa_key.pub"} {
		delete(want, p)
		delete(have, p)
	}
	if diff := cmp.Diff(want, have); diff != "" {
		t.Errorf("deployed tree differs (-golden +deployed):\n%s", diff)
	}
	read := func(p string) string { b, _ := os.ReadFile(filepath.Join(mnt, p)); return string(b) }
	if read("etc/hostname") != "n1\n" || read("etc/provkit/node.conf") != "NODE=n1\nSTATUS=http://10.98.0.1/api/v1/status\n" {
		t.Errorf("fix-ups: hostname %q, node.conf %q", read("etc/hostname"), read("etc/provkit/node.conf"))
	}
	if read("etc/ssh/ssh_host_ed25519_key") == "secret\n" || read("etc/machine-id") == "0123456789abcdef0123456789abcdef\n" {
		t.Errorf("the clone kept the golden node's identity")
	}
	b, _ := json.Marshal(res.Stats)
	t.Logf("deploy: %s", b)
}
