package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/image"
	"github.com/spf13/cobra"
)

// imgcaptureCmd is xCAT's `imgcapture <node> -t sysclone -o <osimage>`: capture a golden
// node's disk over SSH into <installdir>/sysclone/images/<osimage>, pack it for deploys,
// and define the osimage (provmethod=sysclone).
func (a *app) imgcaptureCmd() *cobra.Command {
	var typ, osimage, nodeinit, root, user string
	var keys, knownHosts, exclude, overrides []string
	var port int
	var keepIdentity, keepCaches, noXattrs bool
	c := &cobra.Command{
		Use:   "imgcapture node -t sysclone -o osimage [--root /] [-x pattern]... [-i key]... [--known-hosts F]... [--port 22]",
		Short: "Capture a golden node's disk over SSH as a sysclone osimage (a second capture moves only changes)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			if typ != "sysclone" {
				return fmt.Errorf("-t %q: only sysclone captures are supported", typ)
			}
			if osimage == "" || strings.ContainsAny(osimage, "/ \n") || osimage == "." || osimage == ".." {
				return fmt.Errorf("-o %q: give the name of the osimage to make", osimage)
			}
			v, err := a.view(ctx)
			if err != nil {
				return err
			}
			n, err := v.Node(args[0])
			if err != nil {
				return err
			}
			overDir := filepath.Join(orDefault(v.Site("installdir"), "/install"), "sysclone", "overrides")
			for _, o := range overrides {
				if fi, err := os.Stat(filepath.Join(overDir, o)); o == "" || strings.ContainsAny(o, "/ \n") || err != nil || !fi.IsDir() {
					return fmt.Errorf("--override %q: want the name of a directory in %s", o, overDir)
				}
			}
			agent, err := nodeinitPath(nodeinit)
			if err != nil {
				return err
			}
			host := n.Name
			if n.IP.IsValid() {
				host = n.IP.String()
			}
			cfg := image.SSHConfig{Addr: net.JoinHostPort(host, strconv.Itoa(port)), User: user, KeyFiles: keys, KnownHosts: knownHosts}
			if cfg.User == "" {
				cfg.User = "root"
			}
			if _, pw, ok := v.Password("system", cfg.User); ok {
				cfg.Password = pw
			}
			dir := filepath.Join(orDefault(v.Site("installdir"), "/install"), "sysclone", "images", osimage)
			var progress io.Writer
			if f, ok := a.stderr.(*os.File); ok {
				progress = image.TerminalProgress(f)
			}
			spec := image.CaptureSpec{
				Dir: filepath.Join(dir, image.CloneTreeDir), Root: root, Exclude: exclude,
				KeepCaches: keepCaches, KeepIdentity: keepIdentity, NoXattrs: noXattrs,
				SSH: cfg, Agent: agent, Progress: progress,
			}
			res, err := image.Capture(ctx, spec)
			if err != nil {
				return fmt.Errorf("imgcapture %s: %w (an interrupted capture resumes when run again)", n.Name, err)
			}
			for _, w := range res.Stats.Warnings {
				fmt.Fprintf(a.stderr, "Warning: %s\n", w)
			}
			kver := imageKernel(filepath.Join(dir, image.CloneTreeDir), res.Info.Kernel)
			attrs, layout, err := finishCapture(ctx, dir, kver, res, a.stderr)
			if err != nil {
				return err
			}
			if err := packOverrides(ctx, overDir, dir, overrides); err != nil {
				return err
			}
			bootDir := filepath.Join(orDefault(v.Site("tftpdir"), "/tftpboot"), "xcat", "osimage", osimage)
			if err := deployBoot(ctx, bootDir, dir, agent, kver, layout); err != nil {
				fmt.Fprintf(a.stderr, "Warning: no deploy kernel and initramfs in %s: %v (nodeset %s cannot deploy nodes until it has them)\n", bootDir, err, osimage)
			}
			attrs = append(attrs, cluster.Assign{Attr: "description", Value: "sysclone capture of " + n.Name})
			s, err := a.open(ctx)
			if err != nil {
				return err
			}
			dres, err := cluster.Define(ctx, s, cluster.Definition{Type: "osimage", Names: []string{osimage}, Attrs: attrs, Mode: cluster.ModeChange})
			if err != nil {
				return err
			}
			for _, w := range dres.Warnings {
				fmt.Fprintf(a.stderr, "Warning: %s\n", w)
			}
			kind := "full"
			if res.Incremental {
				kind = "incremental"
			}
			st := res.Stats
			fmt.Fprintf(a.stdout, "imgcapture: %s captured as osimage %s in %s (%s: %d entries, %d files transferred, %d unchanged, %d removed, %d bytes of data in %s)\n",
				n.Name, osimage, dir, kind, st.Entries, st.Changed, st.Unchanged, st.Deleted, st.DataBytes, st.Elapsed.Round(1e6))
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&typ, "type", "t", "sysclone", "capture type (sysclone)")
	f.StringVarP(&osimage, "osimage", "o", "", "the osimage to create or update")
	f.StringVar(&root, "root", "/", "the directory to capture on the golden node (its disk filesystems below it come too)")
	f.StringArrayVarP(&exclude, "exclude", "x", nil, "more exlist patterns to leave out (\"/opt/scratch/*\"; \"+/path\" keeps)")
	f.BoolVar(&keepIdentity, "keep-identity", false, "keep the golden node's SSH host keys and machine-id in the image")
	f.BoolVar(&keepCaches, "keep-caches", false, "keep package and program caches")
	f.BoolVar(&noXattrs, "no-xattrs", false, "leave out extended attributes (ACLs, SELinux labels, capabilities)")
	f.StringArrayVarP(&keys, "identity", "i", nil, "private key file (default ~/.ssh/id_*; the ssh-agent's keys are tried first)")
	f.StringArrayVar(&knownHosts, "known-hosts", nil, "known_hosts file (default ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts)")
	f.IntVar(&port, "port", 22, "the golden node's SSH port")
	f.StringArrayVar(&overrides, "override", nil, "an override directory (<installdir>/sysclone/overrides/<name>, SystemImager style) laid over the image on every clone, in order")
	f.StringVar(&user, "user", "root", "the SSH user (its password, if any, comes from the passwd table, key=system)")
	f.StringVar(&nodeinit, "nodeinit", "", "the nodeinit binary, the capture agent (default: next to provctl)")
	return c
}

// finishCapture writes what a deploy needs next to the captured tree (the golden node's
// report, its disk layout, the packed image, its kernel and initrd) and returns the
// osimage attributes. kver is the image's kernel version (imageKernel).
func finishCapture(ctx context.Context, dir, kver string, res image.CaptureResult, warn io.Writer) ([]cluster.Assign, image.DiskLayout, error) {
	info := res.Info
	tree := filepath.Join(dir, image.CloneTreeDir)
	b, _ := json.MarshalIndent(info, "", "  ")
	if err := writeFileAtomic(filepath.Join(dir, image.CloneInfo), b); err != nil {
		return nil, image.DiskLayout{}, err
	}
	layout, err := image.LayoutFromInfo(info)
	if err != nil {
		// Kept: the tree is good, but no deploy can lay it out until the layout is known.
		fmt.Fprintf(warn, "Warning: %v: nodes cannot be deployed from this image\n", err)
		layout = image.DiskLayout{}
		_ = os.Remove(filepath.Join(dir, image.CloneLayout))
	} else {
		layout.Bootloader = image.DetectBootloader(tree)
		b, _ := json.MarshalIndent(layout, "", "  ")
		if err := writeFileAtomic(filepath.Join(dir, image.CloneLayout), b); err != nil {
			return nil, layout, err
		}
	}
	// The golden node's kernel and initrd, for the osimage's boot files.
	for _, k := range []struct {
		dst   string
		cands []string
	}{
		{"kernel", []string{"boot/vmlinuz-" + kver, "boot/vmlinuz"}},
		{"initrd", []string{"boot/initrd.img-" + kver, "boot/initramfs-" + kver + ".img", "boot/initrd.img"}},
	} {
		found := false
		for _, c := range k.cands {
			src := filepath.Join(tree, c)
			if fi, err := os.Stat(src); err != nil || !fi.Mode().IsRegular() || !strings.HasPrefix(filepath.Clean(src), tree+"/") {
				continue
			}
			data, err := os.ReadFile(src)
			if err != nil {
				return nil, layout, err
			}
			if err := writeFileAtomic(filepath.Join(dir, k.dst), data); err != nil {
				return nil, layout, err
			}
			found = true
			break
		}
		if !found {
			_ = os.Remove(filepath.Join(dir, k.dst))
			fmt.Fprintf(warn, "Warning: no %s for kernel %q in the captured /boot\n", k.dst, kver)
		}
	}
	tmp, err := os.CreateTemp(dir, ".rootimg.sysclone-")
	if err != nil {
		return nil, layout, err
	}
	bw := bufio.NewWriterSize(tmp, 1<<20)
	_, err = image.PackClone(ctx, tree, bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, image.CloneImageFile))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return nil, layout, fmt.Errorf("imgcapture: pack %s: %w", tree, err)
	}
	attrs := []cluster.Assign{{Attr: "imagetype", Value: "linux"}, {Attr: "provmethod", Value: "sysclone"},
		{Attr: "osname", Value: "Linux"}, {Attr: "rootimgdir", Value: dir}, {Attr: "kernelver", Value: kver},
		{Attr: "osarch", Value: info.Machine}, {Attr: "profile", Value: filepath.Base(dir)}}
	if v := osVers(info.OSRelease); v != "" {
		attrs = append(attrs, cluster.Assign{Attr: "osvers", Value: v})
	}
	if layout.Disks != nil {
		attrs = append(attrs, cluster.Assign{Attr: "partitionfile", Value: filepath.Join(dir, image.CloneLayout)})
	}
	return attrs, layout, nil
}

// imageKernel is the kernel version the clones of the captured tree boot: the golden
// node's running kernel (uname -r) when the tree holds its modules, else the only kernel
// whose modules the tree holds (the golden node runs a kernel that is not installed in
// the captured root: a kernel updated since its last boot, or a root captured from a
// directory with --root); with several and none running, the running one, as before.
func imageKernel(tree, running string) string {
	var found []string
	for _, base := range []string{"lib/modules", "usr/lib/modules"} {
		if fi, err := os.Stat(filepath.Join(tree, base, running)); running != "" && err == nil && fi.IsDir() {
			return running
		}
		ents, _ := os.ReadDir(filepath.Join(tree, base))
		for _, e := range ents {
			if e.IsDir() && !slices.Contains(found, e.Name()) {
				found = append(found, e.Name())
			}
		}
	}
	if len(found) == 1 {
		return found[0]
	}
	return running
}

// osVers makes xCAT's osvers (debian12, rhels9.4, ubuntu24.04) from os-release.
func osVers(osRelease string) string {
	kv := map[string]string{}
	for _, l := range strings.Split(osRelease, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			kv[k] = strings.Trim(v, `"'`)
		}
	}
	id, ver := kv["ID"], kv["VERSION_ID"]
	if id == "" || ver == "" || strings.ContainsAny(id+ver, " ,=\n") {
		return ""
	}
	switch id {
	case "rhel":
		id = "rhels"
	case "debian":
		ver, _, _ = strings.Cut(ver, ".")
	}
	return id + ver
}

func writeFileAtomic(p string, data []byte) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// deployBoot writes the boot files of a sysclone deploy into bootDir (tftpdir/xcat/
// osimage/<image>, where provd's boot configs point): the golden node's kernel, and an
// initramfs with nodeinit as /init, the golden kernel's disk, network and filesystem
// modules, and the image's own partitioning and mkfs programs.
func deployBoot(ctx context.Context, bootDir, dir, agent, kver string, layout image.DiskLayout) error {
	tree := filepath.Join(dir, image.CloneTreeDir)
	if len(layout.Disks) == 0 {
		return errors.New("no disk layout was recorded")
	}
	kernel, err := os.ReadFile(filepath.Join(dir, "kernel"))
	if err != nil {
		return err
	}
	modDir := filepath.Join(tree, "lib/modules", kver)
	have := map[string]bool{}
	_ = filepath.WalkDir(modDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if name, _, ok := strings.Cut(d.Name(), ".ko"); ok {
				have[strings.ReplaceAll(name, "-", "_")] = true
			}
		}
		return nil
	})
	if len(have) == 0 {
		return fmt.Errorf("no kernel modules in %s", modDir)
	}
	want := append(image.VirtioNetModules(), "e1000", "e1000e", "igb", "ixgbe", "virtio_blk", "virtio_scsi", "ahci", "sd_mod", "nvme")
	for _, d := range layout.Disks {
		for _, p := range d.Partitions {
			switch p.FSType {
			case "ext2", "ext3", "ext4":
				want = append(want, "ext4")
			case "xfs", "vfat", "btrfs":
				want = append(want, p.FSType)
			}
		}
	}
	var mods []string
	for _, m := range want {
		if have[m] && !slices.Contains(mods, m) {
			mods = append(mods, m)
		}
	}
	tools, err := image.ProgramFiles(tree, append(image.DeployTools, layout.MkfsTools()...)...)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(bootDir, 0o755); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(bootDir, "kernel"), kernel); err != nil {
		return err
	}
	_, err = image.WriteInitramfsFile(ctx, filepath.Join(bootDir, "initrd-sysclone.gz"), image.InitramfsSpec{
		Init: agent, KernelRoot: tree, KernelVersion: kver, Modules: mods, Files: tools,
	})
	return err
}

// packOverrides packs the named override directories of overDir for the deploys
// (overrides/<name>.sysclone) and lists them in image.CloneOverrides; with none, the
// image has no list.
func packOverrides(ctx context.Context, overDir, dir string, names []string) error {
	list := filepath.Join(dir, image.CloneOverrides)
	if len(names) == 0 {
		if err := os.Remove(list); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Join(dir, "overrides"), 0o755); err != nil {
		return err
	}
	for _, n := range names {
		if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/ \n") {
			return fmt.Errorf("--override %q: want the name of a directory in %s", n, overDir)
		}
		src := filepath.Join(overDir, n)
		if fi, err := os.Stat(src); err != nil || !fi.IsDir() {
			return fmt.Errorf("--override %s: %s is not a directory", n, src)
		}
		tmp := filepath.Join(dir, "overrides", "."+n+".sysclone.tmp")
		f, err := os.Create(tmp)
		if err != nil {
			return err
		}
		bw := bufio.NewWriter(f)
		_, err = image.PackClone(ctx, src, bw)
		if err == nil {
			err = bw.Flush()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp, filepath.Join(dir, "overrides", n+".sysclone"))
		}
		if err != nil {
			os.Remove(tmp)
			return fmt.Errorf("--override %s: %w", n, err)
		}
	}
	return writeFileAtomic(list, []byte(strings.Join(names, "\n")+"\n"))
}
