package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// The files of a sysclone osimage directory (xCAT: <installdir>/sysclone/images/<image>):
// the captured tree, the packed stream nodeinit lays onto a disk, the golden node's
// disk layout, and what its agent reported.
const (
	CloneTreeDir   = "rootimg"
	CloneImageFile = "rootimg.sysclone"
	CloneLayout    = "layout.json"
	CloneInfo      = "golden.json"
	// CloneOverrides lists, one per line, the override trees laid over the image on
	// every clone, in order; each is packed as overrides/<name>.sysclone.
	CloneOverrides = "overrides.list"
)

// PackClone writes the tree dir as a packed clone stream (the file CloneImageFile) to w:
// the magic line, then the sysclone stream with every file's data inline, xattrs
// included. ReceiveClone reads it back.
func PackClone(ctx context.Context, dir string, w io.Writer) (int64, error) {
	var in bytes.Buffer
	hw := newFrameWriter(&in)
	h, _ := json.Marshal(captureHello{Version: streamVersion, Root: dir, Inline: true, Xattrs: true, NoInfo: true})
	_ = hw.frame(frameHello, h)
	_ = hw.frame(frameQuit, nil)
	_ = hw.flush()
	cw := &countWriter{w: w}
	if _, err := io.WriteString(cw, streamMagic); err != nil {
		return 0, err
	}
	if err := ServeCapture(ctx, &in, cw, AgentOptions{}); err != nil {
		return cw.n, fmt.Errorf("image: pack clone %s: %w", dir, err)
	}
	return cw.n, nil
}

// ReceiveClone lays a packed clone stream (PackClone) into dir, which should be empty or a
// freshly made filesystem. Owners, modes, times, links, device nodes, holes and xattrs
// are restored.
func ReceiveClone(ctx context.Context, r io.Reader, dir string, log *slog.Logger) (CaptureStats, error) {
	return receivePacked(ctx, r, dir, log, false)
}

func receivePacked(ctx context.Context, r io.Reader, dir string, log *slog.Logger, overlay bool) (CaptureStats, error) {
	start := time.Now()
	var stats CaptureStats
	br := bufio.NewReaderSize(r, 256<<10)
	magic := make([]byte, len(streamMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != streamMagic {
		return stats, fmt.Errorf("image: not a packed clone stream (magic %q): %w", magic, ErrStream)
	}
	rcv, err := newReceiver(dir, &stats, log)
	if err != nil {
		return stats, err
	}
	defer rcv.close()
	rcv.inline, rcv.fresh, rcv.overlay = true, !overlay, overlay
	err = rcv.run(ctx, newFrameReader(br), nil)
	if err == nil {
		err = rcv.finish()
	}
	stats.Elapsed = time.Since(start)
	return stats, err
}

// ReceiveOverlay lays a packed clone stream over the tree in dir, as SystemImager's
// override directories are: its files replace those of the same name, nothing else is
// removed, and dir itself keeps its owner, mode and time.
func ReceiveOverlay(ctx context.Context, r io.Reader, dir string, log *slog.Logger) (CaptureStats, error) {
	return receivePacked(ctx, r, dir, log, true)
}

// DeploySpec describes laying a sysclone image onto a node's disks.
type DeploySpec struct {
	// Layout is the golden node's disks (the image's CloneLayout).
	Layout DiskLayout
	// Targets maps each golden disk ("/dev/vda") to the device that receives it here. A
	// disk not in the map goes to the device of the same name.
	Targets map[string]string
	// Image opens the packed clone stream (provd serves it over HTTP).
	Image func(ctx context.Context) (io.ReadCloser, error)
	// Mount is where the target's filesystems are mounted while the image is laid. If
	// empty, a temporary directory.
	Mount string
	// Overrides open packed override trees (PackClone of SystemImager-style override
	// directories), laid over the image in order after it (ReceiveOverlay).
	Overrides []func(ctx context.Context) (io.ReadCloser, error)
	// Fixup makes the clone this node.
	Fixup NodeFixup
	// NoBootloader skips the boot loader (tests, or a node that boots over the network).
	NoBootloader bool
	// Run runs a program with stdin; nil means exec. chroot, when set, is the directory
	// the program runs in (the boot loader is installed with the image's own tools).
	Run func(ctx context.Context, chroot string, stdin []byte, argv ...string) ([]byte, error)
	// Step is told each state as it begins: "partitioning", "formatting", "imaging",
	// "overrides" (when there are any), "bootloader", "fixup", "installed".
	Step   func(state string)
	Logger *slog.Logger
}

// NodeFixup is what makes a clone its own node, as xCAT's update_network and
// sysclone postscripts do.
type NodeFixup struct {
	Hostname string
	Domain   string
	// Interface is the boot interface's name and MAC: it gets DHCP in the clone's network
	// configuration (ifupdown or systemd-networkd, whichever the image has).
	Interface, MAC string
	// Status is the provd status URL written to /etc/provkit/node.conf for
	// "nodeinit report" on the installed system.
	Status string
	// KeepIdentity keeps the image's SSH host keys and machine ID (normally each clone
	// gets fresh ones).
	KeepIdentity bool
}

// DeployResult is what Deploy did.
type DeployResult struct {
	Stats      CaptureStats
	Partitions []string // target partitions made, in order
	Bootloader string
}

// Deploy partitions the target disks to the recorded layout (the last partition grows
// into a larger disk; a smaller disk is refused before anything is written), makes the
// filesystems with the golden node's UUIDs and labels, mounts them, lays the image on
// them, installs the boot loader with the image's own tools (extlinux or grub-install in
// a chroot, and the golden node's MBR boot code), makes the node's own identity and
// network configuration, and unmounts.
func Deploy(ctx context.Context, spec DeploySpec) (res DeployResult, err error) {
	log := spec.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	run := spec.Run
	if run == nil {
		run = runIn
	}
	step := func(s string) {
		log.Info("sysclone deploy", "state", s)
		if spec.Step != nil {
			spec.Step(s)
		}
	}
	if len(spec.Layout.Disks) == 0 {
		return res, fmt.Errorf("image: deploy: the layout has no disks: %w", ErrLayout)
	}
	// Every check before the first write.
	type plan struct {
		disk   LayoutDisk
		target string
		script string
	}
	var plans []plan
	for _, d := range spec.Layout.Disks {
		target := d.Device
		if t, ok := spec.Targets[d.Device]; ok {
			target = t
		}
		size, sector, err := blockDeviceSize(target)
		if err != nil {
			return res, fmt.Errorf("image: deploy: %w", err)
		}
		script, err := d.SfdiskScript(target, size, sector)
		if err != nil {
			return res, fmt.Errorf("image: deploy: %w", err)
		}
		plans = append(plans, plan{d, target, script})
	}
	if spec.Image == nil {
		return res, errors.New("image: deploy: no image to lay")
	}

	step("partitioning")
	for _, p := range plans {
		if out, err := run(ctx, "", []byte(p.script), "sfdisk", "--quiet", "--wipe", "always", "--wipe-partitions", "always", p.target); err != nil {
			return res, fmt.Errorf("image: deploy: sfdisk %s: %w: %s", p.target, err, out)
		}
	}
	type part struct {
		LayoutPartition
		dev string
	}
	var parts []part
	for _, p := range plans {
		if len(p.disk.Partitions) > 0 && !kernelHasPartition(ctx, PartitionDevice(p.target, p.disk.Partitions[0].Number)) {
			// The kernel did not take the new table (loop devices in containers): ask again.
			if out, err := run(ctx, "", nil, "partx", "-u", p.target); err != nil {
				log.Warn("sysclone deploy: partx -u", "disk", p.target, "err", err, "output", string(out))
			}
		}
		for _, lp := range p.disk.Partitions {
			dev := PartitionDevice(p.target, lp.Number)
			if err := waitDeviceNode(ctx, dev); err != nil {
				return res, fmt.Errorf("image: deploy: %w", err)
			}
			parts = append(parts, part{lp, dev})
			res.Partitions = append(res.Partitions, dev)
		}
	}
	step("formatting")
	for _, p := range parts {
		argv, err := p.MkfsCommand(p.dev)
		if err != nil {
			return res, err
		}
		if argv == nil {
			continue
		}
		if out, err := run(ctx, "", nil, argv...); err != nil {
			return res, fmt.Errorf("image: deploy: %s: %w: %s", strings.Join(argv, " "), err, out)
		}
	}

	mnt := spec.Mount
	if mnt == "" {
		if mnt, err = os.MkdirTemp("", "provkit-deploy-"); err != nil {
			return res, err
		}
		defer os.Remove(mnt)
	}
	mounted := slices.DeleteFunc(slices.Clone(parts), func(p part) bool { return p.Mountpoint == "" })
	slices.SortStableFunc(mounted, func(a, b part) int {
		return strings.Count(strings.TrimSuffix(a.Mountpoint, "/"), "/") - strings.Count(strings.TrimSuffix(b.Mountpoint, "/"), "/")
	})
	if len(mounted) == 0 || mounted[0].Mountpoint != "/" {
		return res, fmt.Errorf("image: deploy: no partition holds /: %w", ErrLayout)
	}
	var done []string
	unmount := func() error {
		var first error
		for i := len(done) - 1; i >= 0; i-- {
			if err := unix.Unmount(done[i], 0); err != nil && first == nil {
				first = fmt.Errorf("image: deploy: umount %s: %w", done[i], err)
			}
		}
		done = nil
		return first
	}
	defer func() {
		if uerr := unmount(); err == nil {
			err = uerr
		}
	}()
	for _, p := range mounted {
		dir := filepath.Join(mnt, p.Mountpoint)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return res, err
		}
		if err := unix.Mount(p.dev, dir, p.FSType, 0, ""); err != nil {
			return res, fmt.Errorf("image: deploy: mount %s (%s) on %s: %w", p.dev, p.FSType, dir, err)
		}
		done = append(done, dir)
	}

	step("imaging")
	rc, err := spec.Image(ctx)
	if err != nil {
		return res, fmt.Errorf("image: deploy: open the image: %w", err)
	}
	res.Stats, err = ReceiveClone(ctx, rc, mnt, log)
	rc.Close()
	if err != nil {
		return res, fmt.Errorf("image: deploy: %w", err)
	}

	if len(spec.Overrides) > 0 {
		step("overrides")
		for i, open := range spec.Overrides {
			rc, err := open(ctx)
			if err != nil {
				return res, fmt.Errorf("image: deploy: override %d: %w", i+1, err)
			}
			_, err = ReceiveOverlay(ctx, rc, mnt, log)
			rc.Close()
			if err != nil {
				return res, fmt.Errorf("image: deploy: override %d: %w", i+1, err)
			}
		}
	}
	if !spec.NoBootloader {
		step("bootloader")
		res.Bootloader = DetectBootloader(mnt)
		if err := installBootloader(ctx, run, mnt, res.Bootloader, plans[0].target, spec.Layout, log); err != nil {
			return res, err
		}
	}
	step("fixup")
	if err := ApplyFixup(mnt, spec.Fixup); err != nil {
		return res, err
	}
	unix.Sync()
	if err := unmount(); err != nil {
		return res, err
	}
	step("installed")
	return res, nil
}

// blockDeviceSize returns the size in bytes and the logical sector size of a block
// device (or of a regular file, with 512-byte sectors).
func blockDeviceSize(dev string) (int64, int64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	if st.Mode().IsRegular() {
		return st.Size(), 512, nil
	}
	if st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
		return 0, 0, fmt.Errorf("%s is not a block device", dev)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: size: %w", dev, err)
	}
	sector, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: sector size: %w", dev, err)
	}
	return size, int64(sector), nil
}

// kernelHasPartition waits up to 2 s for the kernel to list partition dev.
func kernelHasPartition(ctx context.Context, dev string) bool {
	for range 20 {
		if _, err := os.Stat(filepath.Join("/sys/class/block", filepath.Base(dev))); err == nil {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return false
}

// waitDeviceNode waits for a partition's device node; without udev (an initramfs, a
// container) it makes the node from /sys/class/block/<name>/dev.
func waitDeviceNode(ctx context.Context, dev string) error {
	sys := filepath.Join("/sys/class/block", filepath.Base(dev), "dev")
	for i := 0; i < 100; i++ {
		var st unix.Stat_t
		b, serr := os.ReadFile(sys)
		if unix.Stat(dev, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK {
			if serr != nil {
				return nil
			}
			var maj, min uint32
			if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d:%d", &maj, &min); err == nil && st.Rdev == unix.Mkdev(maj, min) {
				return nil
			}
			// A stale node from an earlier table.
			_ = os.Remove(dev)
		}
		if serr == nil {
			var maj, min uint32
			if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d:%d", &maj, &min); err == nil {
				if err := unix.Mknod(dev, unix.S_IFBLK|0o660, int(unix.Mkdev(maj, min))); err == nil || errors.Is(err, unix.EEXIST) {
					continue
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("partition %s did not appear", dev)
}

// installBootloader installs the clone's boot loader with the image's own tools.
func installBootloader(ctx context.Context, run func(context.Context, string, []byte, ...string) ([]byte, error), mnt, kind, disk string, l DiskLayout, log *slog.Logger) error {
	switch kind {
	case "":
		log.Warn("sysclone deploy: the image has no boot loader (extlinux or grub): none installed")
		return nil
	case "extlinux", "grub":
	default:
		return fmt.Errorf("image: deploy: boot loader %q: %w", kind, ErrLayout)
	}
	// The chroot needs /dev, /proc and /sys.
	var binds, made []string
	defer func() {
		for i := len(binds) - 1; i >= 0; i-- {
			_ = unix.Unmount(binds[i], unix.MNT_DETACH)
		}
		for _, d := range made {
			_ = os.Remove(d)
		}
	}()
	for _, d := range []string{"dev", "proc", "sys"} {
		dir := filepath.Join(mnt, d)
		if _, err := os.Lstat(dir); err != nil {
			if err := os.Mkdir(dir, 0o755); err != nil {
				return err
			}
			made = append(made, dir)
		}
		if err := unix.Mount("/"+d, dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("image: deploy: bind /%s: %w", d, err)
		}
		binds = append(binds, dir)
	}
	switch kind {
	case "extlinux":
		dir := "/boot/extlinux"
		if _, err := os.Stat(filepath.Join(mnt, "boot/syslinux/syslinux.cfg")); err == nil {
			dir = "/boot/syslinux"
		}
		if out, err := run(ctx, mnt, nil, "extlinux", "--install", dir); err != nil {
			return fmt.Errorf("image: deploy: extlinux --install %s: %w: %s", dir, err, out)
		}
		// The MBR boot code: the golden node's, else syslinux's own.
		code := goldenMBR(l)
		if code == nil {
			for _, p := range []string{"usr/lib/syslinux/mbr/mbr.bin", "usr/lib/SYSLINUX/mbr.bin", "usr/share/syslinux/mbr.bin"} {
				if b, err := os.ReadFile(filepath.Join(mnt, p)); err == nil && len(b) >= 440 {
					code = b[:440]
					break
				}
			}
		}
		if code == nil {
			return fmt.Errorf("image: deploy: no MBR boot code for %s (golden node's or syslinux mbr.bin)", disk)
		}
		f, err := os.OpenFile(disk, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteAt(code, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	default:
		if out, err := run(ctx, mnt, nil, "grub-install", disk); err != nil {
			return fmt.Errorf("image: deploy: grub-install %s: %w: %s", disk, err, out)
		}
		return nil
	}
}

// goldenMBR is the boot code of the golden node's first disk, when it was read.
func goldenMBR(l DiskLayout) []byte {
	if len(l.Disks) == 0 || l.MBR == nil {
		return nil
	}
	b, err := hex.DecodeString(l.MBR[l.Disks[0].Device])
	if err != nil || len(b) != 440 || bytes.Count(b, []byte{0}) == len(b) {
		return nil
	}
	return b
}

// ApplyFixup makes the tree at root the node fx describes: hostname, /etc/hosts, fresh
// machine ID and SSH host keys (unless kept), DHCP on the boot interface, and
// /etc/provkit/node.conf.
func ApplyFixup(root string, fx NodeFixup) error {
	if fx.Hostname == "" || strings.ContainsAny(fx.Hostname, "/ \n\x00") || len(fx.Hostname) > 64 {
		return fmt.Errorf("image: fixup: bad hostname %q", fx.Hostname)
	}
	for _, s := range []string{fx.Domain, fx.Interface, fx.MAC, fx.Status} {
		if strings.ContainsAny(s, "\n\x00 ") {
			return fmt.Errorf("image: fixup: bad value %q", s)
		}
	}
	write := func(rel string, b []byte, mode os.FileMode) error {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		// Never write through a symlink the image holds.
		if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
		if err := os.WriteFile(p, b, mode); err != nil {
			return fmt.Errorf("image: fixup: %w", err)
		}
		return os.Chmod(p, mode)
	}
	if err := write("etc/hostname", []byte(fx.Hostname+"\n"), 0o644); err != nil {
		return err
	}
	fqdn := fx.Hostname
	if fx.Domain != "" {
		fqdn += "." + fx.Domain
	}
	hosts, _ := os.ReadFile(filepath.Join(root, "etc/hosts"))
	var lines []string
	for _, l := range strings.Split(string(hosts), "\n") {
		if !strings.HasPrefix(l, "127.0.1.1") && l != "" {
			lines = append(lines, l)
		}
	}
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "127.0.0.1") }) {
		lines = append([]string{"127.0.0.1\tlocalhost"}, lines...)
	}
	lines = append(lines, fmt.Sprintf("127.0.1.1\t%s %s", fqdn, fx.Hostname))
	if err := write("etc/hosts", []byte(strings.Join(slices.Compact(lines), "\n")+"\n"), 0o644); err != nil {
		return err
	}
	if !fx.KeepIdentity {
		id := make([]byte, 16)
		_, _ = rand.Read(id)
		if err := write("etc/machine-id", []byte(hex.EncodeToString(id)+"\n"), 0o444); err != nil {
			return err
		}
		if _, err := os.Lstat(filepath.Join(root, "var/lib/dbus")); err == nil {
			_ = os.Remove(filepath.Join(root, "var/lib/dbus/machine-id"))
			if err := os.Symlink("/etc/machine-id", filepath.Join(root, "var/lib/dbus/machine-id")); err != nil {
				return fmt.Errorf("image: fixup: %w", err)
			}
		}
		if _, err := os.Stat(filepath.Join(root, "etc/ssh")); err == nil {
			if err := hostKeys(root, fqdn, write); err != nil {
				return err
			}
		}
	}
	if fx.Interface != "" {
		switch {
		case isDir(filepath.Join(root, "etc/network/interfaces.d")):
			conf := fmt.Sprintf("# provkit sysclone: %s's boot interface\nauto %s\niface %s inet dhcp\n", fx.Hostname, fx.Interface, fx.Interface)
			if err := write("etc/network/interfaces.d/provkit-"+fx.Interface, []byte(conf), 0o644); err != nil {
				return err
			}
		case isDir(filepath.Join(root, "etc/systemd/network")):
			match := "Name=" + fx.Interface
			if fx.MAC != "" {
				match = "MACAddress=" + fx.MAC
			}
			conf := fmt.Sprintf("# provkit sysclone: %s's boot interface\n[Match]\n%s\n\n[Network]\nDHCP=yes\n", fx.Hostname, match)
			if err := write("etc/systemd/network/10-provkit.network", []byte(conf), 0o644); err != nil {
				return err
			}
		}
	}
	if fx.Status != "" {
		conf := fmt.Sprintf("NODE=%s\nSTATUS=%s\n", fx.Hostname, fx.Status)
		if err := write("etc/provkit/node.conf", []byte(conf), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// hostKeys replaces the image's SSH host keys with fresh ed25519 and ECDSA keys.
func hostKeys(root, comment string, write func(string, []byte, os.FileMode) error) error {
	old, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*"))
	for _, p := range old {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("image: fixup: %w", err)
		}
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	for _, k := range []struct {
		name string
		key  any
	}{{"ed25519", edKey}, {"ecdsa", ecKey}} {
		blk, err := ssh.MarshalPrivateKey(k.key, "root@"+comment)
		if err != nil {
			return err
		}
		signer, err := ssh.NewSignerFromKey(k.key)
		if err != nil {
			return err
		}
		base := "etc/ssh/ssh_host_" + k.name + "_key"
		if err := write(base, pem.EncodeToMemory(blk), 0o600); err != nil {
			return err
		}
		pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " root@" + comment + "\n"
		if err := write(base+".pub", []byte(pub), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// runIn runs argv, in chroot when it is set.
func runIn(ctx context.Context, chroot string, stdin []byte, argv ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	name := argv[0]
	if chroot != "" && !strings.Contains(name, "/") {
		// Look the program up inside the chroot, not here.
		for _, d := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
			if fi, err := os.Stat(filepath.Join(chroot, d, name)); err == nil && fi.Mode().IsRegular() {
				name = d + "/" + name
				break
			}
		}
		if !strings.Contains(name, "/") {
			return nil, fmt.Errorf("%s is not in the image (%s)", name, chroot)
		}
	}
	cmd := exec.CommandContext(ctx, name, argv[1:]...)
	if chroot != "" {
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: chroot}
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	}
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	return cmd.CombinedOutput()
}
