package image

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// goldenInfo is what the agent reports for a golden node with a 10 GiB virtio disk:
// /boot on vda1, swap on vda2, / on vda3.
func goldenInfo() GoldenInfo {
	return GoldenInfo{
		Hostname: "golden",
		Mounts: []mount{
			{Dev: "254:3", Mountpoint: "/", FSType: "ext4", Source: "/dev/vda3"},
			{Dev: "254:1", Mountpoint: "/boot", FSType: "ext2", Source: "/dev/vda1"},
		},
		Swaps: []string{"/dev/vda2"},
		Lsblk: `{"blockdevices":[{"name":"vda","kname":"vda","path":"/dev/vda","type":"disk","size":10737418240,"fstype":null,"maj:min":"254:0","log-sec":512,"children":[
 {"name":"vda1","path":"/dev/vda1","type":"part","size":536870912,"fstype":"ext2","uuid":"1b6c5d3e-0a6e-4b0f-9d7e-0c3f3c7d9a11","label":"boot","pkname":"vda","maj:min":"254:1"},
 {"name":"vda2","path":"/dev/vda2","type":"part","size":1073741824,"fstype":"swap","uuid":"5e2b7c55-2f0e-4c25-a0d9-6f5a4f8e3b22","pkname":"vda","maj:min":"254:2"},
 {"name":"vda3","path":"/dev/vda3","type":"part","size":9125756928,"fstype":"ext4","uuid":"9d0b6a52-7e36-4c57-8a3c-2b1d7e5f6c33","label":"root","pkname":"vda","maj:min":"254:3"}]}]}`,
		Sfdisk: map[string]string{"/dev/vda": `{"partitiontable": {"label":"dos","id":"0x1234abcd","device":"/dev/vda","unit":"sectors","sectorsize":512,
 "partitions":[{"node":"/dev/vda1","start":2048,"size":1048576,"type":"83","bootable":true},
 {"node":"/dev/vda2","start":1050624,"size":2097152,"type":"82"},
 {"node":"/dev/vda3","start":3147776,"size":17823744,"type":"83"}]}}`},
		MBR: map[string]string{"/dev/vda": strings.Repeat("fa", 440)},
	}
}

func TestLayoutFromInfo(t *testing.T) {
	l, err := LayoutFromInfo(goldenInfo())
	if err != nil {
		t.Fatal(err)
	}
	want := DiskLayout{
		Disks: []LayoutDisk{{Device: "/dev/vda", Size: 10 << 30, SectorSize: 512, Label: "dos", LabelID: "0x1234abcd",
			Partitions: []LayoutPartition{
				{Number: 1, Start: 2048, Size: 1048576, Type: "83", Bootable: true, FSType: "ext2", FSUUID: "1b6c5d3e-0a6e-4b0f-9d7e-0c3f3c7d9a11", FSLabel: "boot", Mountpoint: "/boot"},
				{Number: 2, Start: 1050624, Size: 2097152, Type: "82", FSType: "swap", FSUUID: "5e2b7c55-2f0e-4c25-a0d9-6f5a4f8e3b22"},
				{Number: 3, Start: 3147776, Size: 17823744, Type: "83", Grow: true, FSType: "ext4", FSUUID: "9d0b6a52-7e36-4c57-8a3c-2b1d7e5f6c33", FSLabel: "root", Mountpoint: "/"},
			}}},
		MBR: map[string]string{"/dev/vda": strings.Repeat("fa", 440)},
	}
	if diff := cmp.Diff(want, l); diff != "" {
		t.Fatalf("layout (-want +got):\n%s", diff)
	}

	bad := goldenInfo()
	bad.Sfdisk = nil
	bad.Warnings = []string{"sfdisk: not found"}
	if _, err := LayoutFromInfo(bad); !errors.Is(err, ErrLayout) || !strings.Contains(err.Error(), "sfdisk: not found") {
		t.Errorf("no partition table: err = %v, want ErrLayout naming the warning", err)
	}
}

func TestSfdiskScript(t *testing.T) {
	l, err := LayoutFromInfo(goldenInfo())
	if err != nil {
		t.Fatal(err)
	}
	d := l.Disks[0]
	head := "label: dos\nlabel-id: 0x1234abcd\nunit: sectors\n\n" +
		"/dev/sdb1 : start=2048, size=1048576, type=83, bootable\n" +
		"/dev/sdb2 : start=1050624, size=2097152, type=82\n"
	for _, tc := range []struct {
		name   string
		bytes  int64
		sector int64
		want   string
		err    error
	}{
		{"same size", 10 << 30, 512, head + "/dev/sdb3 : start=3147776, size=17823744, type=83\n", nil},
		{"larger: the last partition grows", 20 << 30, 512, head + "/dev/sdb3 : start=3147776, type=83\n", nil},
		{"smaller: refused", 10<<30 - 512, 512, "", ErrDiskTooSmall},
		{"4k sectors", 10 << 30, 4096, "", ErrLayout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.SfdiskScript("/dev/sdb", tc.bytes, tc.sector)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil && !strings.Contains(err.Error(), "/dev/sdb") {
				t.Errorf("error %q does not name the target", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("script (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeployRefusesSmallerDisk(t *testing.T) {
	l, err := LayoutFromInfo(goldenInfo())
	if err != nil {
		t.Fatal(err)
	}
	// A 1 GiB "disk" (a sparse file): smaller than the golden 10 GiB one.
	disk := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(disk, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 1<<30); err != nil {
		t.Fatal(err)
	}
	ran := 0
	_, err = Deploy(context.Background(), DeploySpec{Layout: l, Targets: map[string]string{"/dev/vda": disk},
		Run:   func(context.Context, string, []byte, ...string) ([]byte, error) { ran++; return nil, nil },
		Fixup: NodeFixup{Hostname: "n1"}})
	if !errors.Is(err, ErrDiskTooSmall) {
		t.Fatalf("Deploy onto a smaller disk: err = %v, want ErrDiskTooSmall", err)
	}
	if ran != 0 {
		t.Errorf("%d commands ran before the refusal", ran)
	}
	if st, _ := os.Stat(disk); st.Size() != 1<<30 {
		t.Errorf("disk size changed")
	}
	var buf [1 << 16]byte
	f, _ := os.Open(disk)
	n, _ := f.Read(buf[:])
	f.Close()
	if !bytes.Equal(buf[:n], make([]byte, n)) {
		t.Errorf("the refused disk was written")
	}
}

func TestPackReceiveClone(t *testing.T) {
	golden, dir := t.TempDir(), filepath.Join(t.TempDir(), "deployed")
	makeGolden(t, golden)
	var buf bytes.Buffer
	n, err := PackClone(context.Background(), golden, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || !bytes.HasPrefix(buf.Bytes(), []byte(streamMagic)) {
		t.Fatalf("PackClone wrote %d bytes, says %d", buf.Len(), n)
	}
	stats, err := ReceiveClone(context.Background(), bytes.NewReader(buf.Bytes()), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(snapshotTree(t, golden), snapshotTree(t, dir)); diff != "" {
		t.Fatalf("received tree differs (-golden +received):\n%s", diff)
	}
	if stats.Entries == 0 || len(stats.Warnings) != 0 {
		t.Errorf("stats %+v", stats)
	}
	// Cut short: an error, never a silent partial tree.
	cut := buf.Bytes()[:buf.Len()/2]
	if _, err := ReceiveClone(context.Background(), bytes.NewReader(cut), t.TempDir(), nil); err == nil {
		t.Errorf("a truncated stream was accepted")
	}
	if _, err := ReceiveClone(context.Background(), strings.NewReader("GIF89a..."), t.TempDir(), nil); !errors.Is(err, ErrStream) {
		t.Errorf("not a stream: err = %v, want ErrStream", err)
	}
}

func TestApplyFixup(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc/ssh", "etc/network/interfaces.d", "var/lib/dbus"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, s := range map[string]string{
		"etc/hosts":                    "127.0.0.1\tlocalhost\n127.0.1.1\tgolden.example golden\n::1\tlocalhost ip6-localhost\n",
		"etc/hostname":                 "golden\n",
		"etc/machine-id":               "0123456789abcdef0123456789abcdef\n",
		"etc/ssh/ssh_host_rsa_key":     "golden secret\n",
		"etc/ssh/ssh_host_rsa_key.pub": "ssh-rsa AAAA golden\n",
	} {
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fx := NodeFixup{Hostname: "n7", Domain: "cluster.test", Interface: "ens3", MAC: "52:54:00:12:34:56", Status: "http://10.98.0.1:3000/api/v1/status"}
	if err := ApplyFixup(root, fx); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		b, _ := os.ReadFile(filepath.Join(root, p))
		return string(b)
	}
	for p, want := range map[string]string{
		"etc/hostname":                          "n7\n",
		"etc/hosts":                             "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n127.0.1.1\tn7.cluster.test n7\n",
		"etc/network/interfaces.d/provkit-ens3": "# provkit sysclone: n7's boot interface\nauto ens3\niface ens3 inet dhcp\n",
		"etc/provkit/node.conf":                 "NODE=n7\nSTATUS=http://10.98.0.1:3000/api/v1/status\n",
		"etc/ssh/ssh_host_rsa_key":              "",
	} {
		if got := read(p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if id := read("etc/machine-id"); len(id) != 33 || id == "0123456789abcdef0123456789abcdef\n" {
		t.Errorf("machine-id %q is not fresh", id)
	}
	if l, _ := os.Readlink(filepath.Join(root, "var/lib/dbus/machine-id")); l != "/etc/machine-id" {
		t.Errorf("dbus machine-id -> %q", l)
	}
	for _, k := range []string{"ed25519", "ecdsa"} {
		key := read("etc/ssh/ssh_host_" + k + "_key")
		pub := read("etc/ssh/ssh_host_" + k + "_key.pub")
		if !strings.HasPrefix(key, "-----BEGIN OPENSSH PRIVATE KEY-----") || !strings.HasSuffix(pub, " root@n7.cluster.test\n") {
			t.Errorf("%s host key: %q / %q", k, key[:min(len(key), 40)], pub)
		}
		if st, err := os.Stat(filepath.Join(root, "etc/ssh/ssh_host_"+k+"_key")); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s host key mode: %v %v", k, st, err)
		}
	}

	for _, bad := range []NodeFixup{{}, {Hostname: "a/b"}, {Hostname: "n1", Interface: "eth0\nauto x"}} {
		if err := ApplyFixup(t.TempDir(), bad); err == nil {
			t.Errorf("ApplyFixup(%+v) = nil, want an error", bad)
		}
	}
}

// FuzzReceiveClone feeds arbitrary bytes to the deploy side of the stream: errors, never
// a panic, and nothing written outside the directory.
func FuzzReceiveClone(f *testing.F) {
	golden := f.TempDir()
	for _, d := range []string{"etc", "usr/bin"} {
		if err := os.MkdirAll(filepath.Join(golden, d), 0o755); err != nil {
			f.Fatal(err)
		}
	}
	_ = os.WriteFile(filepath.Join(golden, "etc/hostname"), []byte("golden\n"), 0o644)
	_ = os.Symlink("../etc/hostname", filepath.Join(golden, "usr/bin/link"))
	_ = os.Link(filepath.Join(golden, "etc/hostname"), filepath.Join(golden, "usr/bin/hard"))
	var buf bytes.Buffer
	if _, err := PackClone(context.Background(), golden, &buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(streamMagic))
	f.Add([]byte(streamMagic + "E\x05\x00\x02..\x00"))
	outside := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		base := filepath.Join(outside, "in")
		dir := filepath.Join(base, "d")
		defer os.RemoveAll(base)
		_, _ = ReceiveClone(context.Background(), bytes.NewReader(b), dir, nil)
		names, _ := os.ReadDir(base)
		for _, n := range names {
			if n.Name() != "d" {
				t.Fatalf("the stream wrote %s outside the directory", n.Name())
			}
		}
	})
}

// FuzzLayout feeds arbitrary sfdisk and lsblk output to the layout parsers: a layout
// they accept makes an sfdisk script without newlines or quotes in its fields.
func FuzzLayout(f *testing.F) {
	gi := goldenInfo()
	f.Add([]byte(gi.Sfdisk["/dev/vda"]), []byte(gi.Lsblk))
	f.Add([]byte(`{"partitiontable":{"label":"gpt","device":"/dev/nvme0n1","partitions":[{"node":"/dev/nvme0n1p1","start":2048,"size":100,"type":"C12A7328-F81F-11D2-BA4B-00A0C93EC93B","name":"EFI"}]}}`), []byte(`{"blockdevices":[]}`))
	f.Fuzz(func(t *testing.T, sf, lb []byte) {
		_, _ = ParseLsblk(lb)
		d, err := ParseSfdiskJSON(sf)
		if err != nil {
			return
		}
		d.Size = 1 << 40
		script, err := d.SfdiskScript("/dev/sdz", 1<<41, d.SectorSize)
		if err != nil {
			return
		}
		lines := strings.Split(strings.TrimSuffix(script, "\n"), "\n")
		if len(lines) != 4+len(d.Partitions)-map[bool]int{true: 0, false: 1}[d.LabelID != ""]+map[bool]int{true: 1, false: 0}[d.SectorSize != 512] {
			t.Fatalf("script has %d lines for %d partitions:\n%s", len(lines), len(d.Partitions), script)
		}
	})
}

func TestProgramFiles(t *testing.T) {
	if _, err := os.Stat("/usr/sbin/sfdisk"); err != nil {
		t.Skip("no sfdisk here")
	}
	files, err := ProgramFiles("/", "sfdisk")
	if err != nil {
		t.Fatal(err)
	}
	if files["usr/sbin/sfdisk"] == "" {
		t.Errorf("no usr/sbin/sfdisk in %v", files)
	}
	var libc, fdisk bool
	for k := range files {
		libc = libc || strings.HasSuffix(k, "/libc.so.6")
		fdisk = fdisk || strings.Contains(k, "/libfdisk.so")
	}
	if !libc || !fdisk {
		t.Errorf("libc or libfdisk missing: %v", files)
	}
	if _, err := ProgramFiles("/", "no-such-program-provkit"); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "no-such-program-provkit") {
		t.Errorf("missing program: %v", err)
	}
	// A tree of its own: symlinks resolve inside it.
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/bin/tool"), []byte("#!/bin/sh\n"), 0o755)
	os.Symlink("usr/bin", filepath.Join(root, "bin"))
	os.MkdirAll(filepath.Join(root, "sbin"), 0o755)
	os.Symlink("/bin/tool", filepath.Join(root, "sbin/t2"))
	files, err = ProgramFiles(root, "t2")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"usr/sbin/t2": filepath.Join(root, "usr/bin/tool")}, files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestReceiveOverlay(t *testing.T) {
	ctx := context.Background()
	base, over := t.TempDir(), t.TempDir()
	for p, s := range map[string]string{"keep.txt": "kept\n", "etc/app.conf": "golden\n"} {
		os.MkdirAll(filepath.Dir(filepath.Join(base, p)), 0o755)
		os.WriteFile(filepath.Join(base, p), []byte(s), 0o644)
	}
	for p, s := range map[string]string{"etc/app.conf": "override\n", "etc/extra/new.conf": "new\n"} {
		os.MkdirAll(filepath.Dir(filepath.Join(over, p)), 0o755)
		os.WriteFile(filepath.Join(over, p), []byte(s), 0o600)
	}
	if err := os.Chmod(over, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := PackClone(ctx, over, &buf); err != nil {
		t.Fatal(err)
	}
	st, err := ReceiveOverlay(ctx, &buf, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"keep.txt": "kept\n", "etc/app.conf": "override\n", "etc/extra/new.conf": "new\n"} {
		if b, err := os.ReadFile(filepath.Join(base, p)); err != nil || string(b) != want {
			t.Errorf("%s = %q (%v), want %q", p, b, err, want)
		}
	}
	if fi, _ := os.Stat(base); fi.Mode().Perm() != 0o755 {
		t.Errorf("the overlay changed the top directory's mode to %v", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(filepath.Join(base, "etc/app.conf")); fi.Mode().Perm() != 0o600 {
		t.Errorf("etc/app.conf mode %v, want the override's 0600", fi.Mode().Perm())
	}
	if st.Deleted != 0 {
		t.Errorf("an overlay deleted %d entries", st.Deleted)
	}
}

// TestLayoutFromInfoNoUdev: on a golden node without udev lsblk knows no filesystems;
// the layout takes them from what blkid read.
func TestLayoutFromInfoNoUdev(t *testing.T) {
	want, err := LayoutFromInfo(goldenInfo())
	if err != nil {
		t.Fatal(err)
	}
	info := goldenInfo()
	for _, f := range []string{`"fstype":"ext2","uuid":"1b6c5d3e-0a6e-4b0f-9d7e-0c3f3c7d9a11","label":"boot"`,
		`"fstype":"swap","uuid":"5e2b7c55-2f0e-4c25-a0d9-6f5a4f8e3b22"`, `"fstype":"ext4","uuid":"9d0b6a52-7e36-4c57-8a3c-2b1d7e5f6c33","label":"root"`} {
		if !strings.Contains(info.Lsblk, f) {
			t.Fatalf("goldenInfo has no %s", f)
		}
		info.Lsblk = strings.Replace(info.Lsblk, f, `"fstype":null,"uuid":null,"label":null`, 1)
	}
	info.Blkid = map[string]string{
		"/dev/vda1": "DEVNAME=/dev/vda1\nLABEL=boot\nUUID=1b6c5d3e-0a6e-4b0f-9d7e-0c3f3c7d9a11\nBLOCK_SIZE=1024\nTYPE=ext2\nPARTUUID=1234abcd-01\n",
		"/dev/vda2": "DEVNAME=/dev/vda2\nUUID=5e2b7c55-2f0e-4c25-a0d9-6f5a4f8e3b22\nTYPE=swap\n",
		"/dev/vda3": "DEVNAME=/dev/vda3\nLABEL=root\nUUID=9d0b6a52-7e36-4c57-8a3c-2b1d7e5f6c33\nTYPE=ext4\n",
	}
	got, err := LayoutFromInfo(info)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("layout from blkid (-lsblk +blkid):\n%s", diff)
	}
}

// FuzzBlkidExport feeds arbitrary `blkid -o export` output (from the golden node) to its
// parser: no key or value holds a line break, and a layout built with it still parses.
func FuzzBlkidExport(f *testing.F) {
	f.Add("DEVNAME=/dev/vda1\nLABEL=boot\nUUID=1b6c5d3e-0a6e-4b0f-9d7e-0c3f3c7d9a11\nBLOCK_SIZE=1024\nTYPE=ext2\nPARTUUID=1234abcd-01\n")
	f.Add("TYPE=\nLABEL=a\\ b\n=x\nnoequals\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		for k, v := range parseBlkidExport(s) {
			if strings.ContainsAny(k+v, "\n") {
				t.Fatalf("line break in %q=%q", k, v)
			}
		}
		info := goldenInfo()
		info.Lsblk = strings.Replace(info.Lsblk, `"fstype":"ext4"`, `"fstype":null`, 1)
		info.Blkid = map[string]string{"/dev/vda3": s}
		if _, err := LayoutFromInfo(info); err != nil {
			t.Fatal(err)
		}
	})
}
