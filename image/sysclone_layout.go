package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// DiskLayout is a golden node's disks as a clone must reproduce them: partition tables
// (from sfdisk) and the filesystems on them (from lsblk), with their UUIDs and labels so
// that the image's fstab and boot loader configuration work on the clone unchanged.
type DiskLayout struct {
	Disks []LayoutDisk `json:"disks"`
	// Bootloader is what the golden node boots with: "extlinux", "grub" or "" (none
	// found; the deploy then installs none).
	Bootloader string `json:"bootloader,omitempty"`
	// MBR maps golden disks to their boot code (the first 440 bytes, hex), which an
	// extlinux deploy writes back.
	MBR map[string]string `json:"mbr,omitempty"`
}

// LayoutDisk is one disk.
type LayoutDisk struct {
	Device     string            `json:"device"`      // on the golden node: "/dev/vda"
	Size       int64             `json:"size"`        // bytes
	SectorSize int64             `json:"sector_size"` // bytes, usually 512
	Label      string            `json:"label"`       // "gpt" or "dos"
	LabelID    string            `json:"label_id,omitempty"`
	Partitions []LayoutPartition `json:"partitions"`
}

// LayoutPartition is one partition and its filesystem.
type LayoutPartition struct {
	Number   int    `json:"number"`
	Start    int64  `json:"start"` // sectors
	Size     int64  `json:"size"`  // sectors
	Type     string `json:"type"`  // GPT type GUID or MBR type ("83")
	UUID     string `json:"uuid,omitempty"`
	Name     string `json:"name,omitempty"`
	Attrs    string `json:"attrs,omitempty"`
	Bootable bool   `json:"bootable,omitempty"`
	// Grow gives the partition the space a larger target disk has beyond the golden
	// one's (only the last partition on its disk can grow).
	Grow       bool   `json:"grow,omitempty"`
	FSType     string `json:"fstype,omitempty"` // ext4, xfs, vfat, swap, btrfs; "" none
	FSUUID     string `json:"fsuuid,omitempty"`
	FSLabel    string `json:"fslabel,omitempty"`
	Mountpoint string `json:"mountpoint,omitempty"` // "/", "/boot", "/boot/efi"; "" for swap
}

// ErrDiskTooSmall is wrapped by errors about a target disk smaller than the golden one.
var ErrDiskTooSmall = errors.New("target disk smaller than the golden node's")

// ErrLayout is wrapped by errors about a layout that cannot be captured or deployed.
var ErrLayout = errors.New("unsupported disk layout")

// sfdiskJSON is `sfdisk -J` output.
type sfdiskJSON struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		Device     string `json:"device"`
		Unit       string `json:"unit"`
		SectorSize int64  `json:"sectorsize"`
		Partitions []struct {
			Node     string `json:"node"`
			Start    int64  `json:"start"`
			Size     int64  `json:"size"`
			Type     string `json:"type"`
			UUID     string `json:"uuid"`
			Name     string `json:"name"`
			Attrs    string `json:"attrs"`
			Bootable bool   `json:"bootable"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

// ParseSfdiskJSON reads `sfdisk -J <disk>` output into a disk (without sizes from lsblk
// or filesystems).
func ParseSfdiskJSON(b []byte) (LayoutDisk, error) {
	var j sfdiskJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return LayoutDisk{}, fmt.Errorf("image: sfdisk -J output: %w", err)
	}
	pt := j.PartitionTable
	if pt.Label != "gpt" && pt.Label != "dos" {
		return LayoutDisk{}, fmt.Errorf("image: sfdisk: %s: partition table %q: %w (want gpt or dos)", pt.Device, pt.Label, ErrLayout)
	}
	if pt.Unit != "" && pt.Unit != "sectors" {
		return LayoutDisk{}, fmt.Errorf("image: sfdisk: %s: unit %q: %w", pt.Device, pt.Unit, ErrLayout)
	}
	d := LayoutDisk{Device: pt.Device, Label: pt.Label, LabelID: pt.ID, SectorSize: pt.SectorSize}
	if d.SectorSize == 0 {
		d.SectorSize = 512
	}
	if d.SectorSize != 512 && d.SectorSize != 4096 {
		return LayoutDisk{}, fmt.Errorf("image: sfdisk: %s: sector size %d: %w", pt.Device, pt.SectorSize, ErrLayout)
	}
	for _, p := range pt.Partitions {
		n := partNumber(p.Node)
		if n <= 0 || p.Start < 0 || p.Size <= 0 || p.Start > 1<<48 || p.Size > 1<<48 {
			return LayoutDisk{}, fmt.Errorf("image: sfdisk: %s: partition %q start %d size %d: %w", pt.Device, p.Node, p.Start, p.Size, ErrLayout)
		}
		if !safeField(p.Type) || !safeField(p.UUID) || !safeField(p.Attrs) || strings.ContainsAny(p.Name, "\"\n\\") {
			return LayoutDisk{}, fmt.Errorf("image: sfdisk: %s: partition %q has unexpected characters: %w", pt.Device, p.Node, ErrLayout)
		}
		d.Partitions = append(d.Partitions, LayoutPartition{Number: n, Start: p.Start, Size: p.Size, Type: p.Type,
			UUID: p.UUID, Name: p.Name, Attrs: p.Attrs, Bootable: p.Bootable})
	}
	if !safeField(d.LabelID) {
		return LayoutDisk{}, fmt.Errorf("image: sfdisk: %s: label id %q: %w", pt.Device, d.LabelID, ErrLayout)
	}
	slices.SortFunc(d.Partitions, func(a, b LayoutPartition) int { return int(a.Start - b.Start) })
	return d, nil
}

// safeField accepts what sfdisk prints for ids, types and attributes.
func safeField(s string) bool {
	return !strings.ContainsAny(s, " ,\"\n\r\t\\=")
}

// partNumber reads the partition number at the end of a device node ("/dev/vda2",
// "/dev/nvme0n1p3").
func partNumber(node string) int {
	i := len(node)
	for i > 0 && node[i-1] >= '0' && node[i-1] <= '9' {
		i--
	}
	n, err := strconv.Atoi(node[i:])
	if err != nil || i == len(node) || n > 256 {
		return 0
	}
	return n
}

// PartitionDevice names partition n of disk: /dev/vda -> /dev/vda1, /dev/nvme0n1 ->
// /dev/nvme0n1p1, /dev/loop0 -> /dev/loop0p1.
func PartitionDevice(disk string, n int) string {
	if last := disk[len(disk)-1]; last >= '0' && last <= '9' {
		return disk + "p" + strconv.Itoa(n)
	}
	return disk + strconv.Itoa(n)
}

// lsblkNode is one device of `lsblk -J -b` output.
type lsblkNode struct {
	Name     string      `json:"name"`
	Path     string      `json:"path"`
	Type     string      `json:"type"`
	Size     json.Number `json:"size"`
	FSType   string      `json:"fstype"`
	UUID     string      `json:"uuid"`
	Label    string      `json:"label"`
	PartUUID string      `json:"partuuid"`
	PKName   string      `json:"pkname"`
	MajMin   string      `json:"maj:min"`
	LogSec   json.Number `json:"log-sec"`
	Children []lsblkNode `json:"children"`
}

// parseBlkidExport reads `blkid -o export` output (KEY=value lines).
func parseBlkidExport(s string) map[string]string {
	kv := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// ParseLsblk reads `lsblk -J -b -o ...` output into a flat list.
func ParseLsblk(b []byte) ([]lsblkNode, error) {
	var j struct {
		Blockdevices []lsblkNode `json:"blockdevices"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("image: lsblk -J output: %w", err)
	}
	var out []lsblkNode
	var walk func([]lsblkNode, int)
	walk = func(ns []lsblkNode, depth int) {
		if depth > 8 {
			return
		}
		for _, n := range ns {
			kids := n.Children
			n.Children = nil
			out = append(out, n)
			walk(kids, depth+1)
		}
	}
	walk(j.Blockdevices, 0)
	return out, nil
}

// parentDisks returns the disks that hold the devices devs (partition device paths),
// sorted; a device that is not a partition of a disk is an error (LVM, MD, a whole-disk
// filesystem): the layout cannot hold it.
func parentDisks(lsblk []byte, devs []string) ([]string, error) {
	nodes, err := ParseLsblk(lsblk)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	var bad []string
	for _, d := range devs {
		i := slices.IndexFunc(nodes, func(n lsblkNode) bool { return n.Path == d })
		if i < 0 || nodes[i].Type != "part" || nodes[i].PKName == "" {
			bad = append(bad, d)
			continue
		}
		set["/dev/"+nodes[i].PKName] = true
	}
	out := slices.Sorted(mapKeys(set))
	if len(bad) > 0 {
		return out, fmt.Errorf("image: %s: not partitions of a disk (LVM, RAID and whole-disk filesystems are not supported): %w", strings.Join(bad, ", "), ErrLayout)
	}
	return out, nil
}

// LayoutFromInfo builds the layout of the golden node from what its agent reported.
func LayoutFromInfo(info GoldenInfo) (DiskLayout, error) {
	var l DiskLayout
	if len(info.Sfdisk) == 0 {
		msg := "no partition table was read"
		if len(info.Warnings) > 0 {
			msg += ": " + strings.Join(info.Warnings, "; ")
		}
		return l, fmt.Errorf("image: layout of %s: %s: %w", info.Hostname, msg, ErrLayout)
	}
	nodes, err := ParseLsblk([]byte(info.Lsblk))
	if err != nil {
		return l, err
	}
	byPath := map[string]lsblkNode{}
	for _, n := range nodes {
		byPath[n.Path] = n
	}
	mountOf := map[string]string{} // device path -> mountpoint
	for _, m := range info.Mounts {
		for _, n := range nodes {
			if (m.Dev != "" && n.MajMin == m.Dev) || n.Path == m.Source {
				if _, dup := mountOf[n.Path]; !dup || m.Mountpoint == "/" {
					mountOf[n.Path] = m.Mountpoint
				}
				break
			}
		}
	}
	for _, dev := range slices.Sorted(mapKeys(info.Sfdisk)) {
		d, err := ParseSfdiskJSON([]byte(info.Sfdisk[dev]))
		if err != nil {
			return l, err
		}
		d.Device = dev
		if n, ok := byPath[dev]; ok {
			d.Size, _ = n.Size.Int64()
		}
		if d.Size <= 0 {
			return l, fmt.Errorf("image: layout: size of %s unknown (lsblk): %w", dev, ErrLayout)
		}
		for i := range d.Partitions {
			p := &d.Partitions[i]
			n := byPath[PartitionDevice(dev, p.Number)]
			p.FSType, p.FSUUID, p.FSLabel = n.FSType, n.UUID, n.Label
			if p.FSType == "" {
				// No udev on the golden node: what blkid read.
				kv := parseBlkidExport(info.Blkid[n.Path])
				p.FSType, p.FSUUID, p.FSLabel = kv["TYPE"], kv["UUID"], kv["LABEL"]
			}
			p.Mountpoint = mountOf[n.Path]
			if p.FSType == "swap" {
				p.Mountpoint = ""
			}
		}
		if k := len(d.Partitions); k > 0 {
			last := &d.Partitions[k-1]
			last.Grow = last.FSType != "swap" && last.FSType != ""
		}
		l.Disks = append(l.Disks, d)
		if m, ok := info.MBR[dev]; ok {
			if l.MBR == nil {
				l.MBR = map[string]string{}
			}
			l.MBR[dev] = m
		}
	}
	if !slices.ContainsFunc(l.Disks, func(d LayoutDisk) bool {
		return slices.ContainsFunc(d.Partitions, func(p LayoutPartition) bool { return p.Mountpoint == "/" })
	}) {
		return l, fmt.Errorf("image: layout of %s: the captured root is on no recorded partition: %w", info.Hostname, ErrLayout)
	}
	return l, nil
}

// DetectBootloader tells from a captured tree how the golden node boots: "extlinux"
// (syslinux's ldlinux.sys in /boot/extlinux or /boot/syslinux), "grub" (GRUB's
// i386-pc or EFI files), or "".
func DetectBootloader(root string) string {
	for _, p := range []string{"boot/extlinux/ldlinux.sys", "boot/syslinux/ldlinux.sys", "boot/extlinux/extlinux.conf", "boot/syslinux/syslinux.cfg"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			return "extlinux"
		}
	}
	for _, p := range []string{"boot/grub/i386-pc", "boot/grub2/i386-pc", "boot/grub/x86_64-efi", "boot/grub/grub.cfg", "boot/grub2/grub.cfg"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			return "grub"
		}
	}
	return ""
}

// SfdiskScript is the input for `sfdisk <device>` that makes disk d's partition table on
// a target disk of targetBytes with sectors of sectorSize. The partitions keep their
// start, size, type, UUIDs, names and flags; the one marked Grow takes what the target
// has beyond the golden disk. A target smaller than the golden disk is refused, before
// anything is written.
func (d LayoutDisk) SfdiskScript(target string, targetBytes, sectorSize int64) (string, error) {
	if sectorSize != d.SectorSize {
		return "", fmt.Errorf("image: %s has %d-byte sectors, the golden %s %d: %w", target, sectorSize, d.Device, d.SectorSize, ErrLayout)
	}
	if targetBytes < d.Size {
		return "", fmt.Errorf("image: %s: %d bytes (%.1f GiB), golden %s %d bytes (%.1f GiB): %w", target, targetBytes,
			float64(targetBytes)/(1<<30), d.Device, d.Size, float64(d.Size)/(1<<30), ErrDiskTooSmall)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "label: %s\n", d.Label)
	if d.LabelID != "" {
		fmt.Fprintf(&b, "label-id: %s\n", d.LabelID)
	}
	b.WriteString("unit: sectors\n")
	if d.SectorSize != 512 {
		fmt.Fprintf(&b, "sector-size: %d\n", d.SectorSize)
	}
	b.WriteString("\n")
	for i, p := range d.Partitions {
		fmt.Fprintf(&b, "%s : start=%d", PartitionDevice(target, p.Number), p.Start)
		if !(p.Grow && i == len(d.Partitions)-1 && targetBytes > d.Size) {
			fmt.Fprintf(&b, ", size=%d", p.Size)
		}
		fmt.Fprintf(&b, ", type=%s", p.Type)
		if p.UUID != "" && d.Label == "gpt" {
			fmt.Fprintf(&b, ", uuid=%s", p.UUID)
		}
		if p.Name != "" && d.Label == "gpt" {
			fmt.Fprintf(&b, ", name=\"%s\"", p.Name)
		}
		if p.Attrs != "" {
			fmt.Fprintf(&b, ", attrs=\"%s\"", p.Attrs)
		}
		if p.Bootable {
			b.WriteString(", bootable")
		}
		b.WriteString("\n")
	}
	return b.String(), nil
}

// MkfsCommand is the command that makes partition p's filesystem on dev with the golden
// node's UUID and label, or nil when p has no filesystem to make.
func (p LayoutPartition) MkfsCommand(dev string) ([]string, error) {
	opt := func(argv []string, flag, v string) []string {
		if v != "" {
			return append(argv, flag, v)
		}
		return argv
	}
	var argv []string
	switch p.FSType {
	case "":
		return nil, nil
	case "ext2", "ext3", "ext4":
		argv = opt(opt([]string{"mke2fs", "-F", "-q", "-t", p.FSType}, "-U", p.FSUUID), "-L", p.FSLabel)
	case "xfs":
		argv = []string{"mkfs.xfs", "-f", "-q"}
		if p.FSUUID != "" {
			argv = append(argv, "-m", "uuid="+p.FSUUID)
		}
		argv = opt(argv, "-L", p.FSLabel)
	case "vfat":
		argv = opt(opt([]string{"mkfs.vfat"}, "-i", strings.ReplaceAll(p.FSUUID, "-", "")), "-n", p.FSLabel)
	case "swap":
		argv = opt(opt([]string{"mkswap"}, "-U", p.FSUUID), "-L", p.FSLabel)
	case "btrfs":
		argv = opt(opt([]string{"mkfs.btrfs", "-f", "-q"}, "-U", p.FSUUID), "-L", p.FSLabel)
	default:
		return nil, fmt.Errorf("image: partition %d: filesystem %q: %w (ext2/3/4, xfs, vfat, swap, btrfs)", p.Number, p.FSType, ErrLayout)
	}
	for _, a := range argv {
		if strings.ContainsAny(a, "\x00\n") {
			return nil, fmt.Errorf("image: partition %d: bad UUID or label: %w", p.Number, ErrLayout)
		}
	}
	return append(argv, dev), nil
}

// MkfsTools lists the programs the layout's filesystems need (for the deploy initramfs).
func (l DiskLayout) MkfsTools() []string {
	set := map[string]bool{"sfdisk": true}
	for _, d := range l.Disks {
		for _, p := range d.Partitions {
			if argv, err := p.MkfsCommand("/dev/x"); err == nil && argv != nil {
				set[argv[0]] = true
			}
		}
	}
	return slices.Sorted(mapKeys(set))
}
