package main

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/image"
	"github.com/spf13/cobra"
)

// osimageDef reads an osimage object, or explains how to make one.
func osimageDef(v *cluster.View, name string) (map[string]string, error) {
	o, err := v.Object("osimage", name, cluster.ObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("%w\n(define it first: mkdef -t osimage -o %s osvers=debian12 osarch=x86_64 profile=compute provmethod=netboot rootimgdir=/install/netboot/debian12/x86_64/compute)", err, name)
	}
	if o.Attrs["rootimgdir"] == "" {
		return nil, fmt.Errorf("osimage %s: rootimgdir is not set (chdef -t osimage %s rootimgdir=...)", name, name)
	}
	return o.Attrs, nil
}

// readListFiles reads xCAT list files (pkglist, exlist): a comma list of files, each with
// one item per line, "#" comments and blank lines ignored.
func readListFiles(files string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(files, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if i := strings.IndexByte(line, '#'); i >= 0 {
				line = strings.TrimSpace(line[:i])
			}
			if line != "" {
				out = append(out, strings.Fields(line)...)
			}
		}
		err = sc.Err()
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
	}
	return out, nil
}

// debianSuites maps xCAT-style osvers of Debian to debootstrap suites.
var debianSuites = map[string]string{"debian11": "bullseye", "debian12": "bookworm", "debian13": "trixie"}

// parseSource reads genimage's --source: debootstrap[:suite], tarball:FILE, oci:PATH or
// dir:DIR.
func parseSource(s, osvers string) (image.Source, error) {
	kind, arg, _ := strings.Cut(s, ":")
	switch kind {
	case "", "debootstrap":
		if arg == "" {
			arg = debianSuites[osvers]
		}
		if arg == "" {
			return nil, fmt.Errorf("--source debootstrap needs a suite (debootstrap:bookworm): osvers %q names none", osvers)
		}
		return image.Debootstrap{Suite: arg}, nil
	case "tarball":
		return image.Tarball{Path: arg}, nil
	case "oci":
		return image.OCI{Path: arg}, nil
	case "dir":
		return image.Directory{Path: arg}, nil
	}
	return nil, fmt.Errorf("--source %q: want debootstrap[:suite], tarball:FILE, oci:PATH or dir:DIR", s)
}

// nodeinitPath finds the nodeinit binary: the flag, else next to provctl, else
// /usr/lib/provkit/nodeinit.
func nodeinitPath(flag string) (string, error) {
	cands := []string{flag}
	if flag == "" {
		if exe, err := os.Executable(); err == nil {
			cands = append(cands, filepath.Join(filepath.Dir(exe), "nodeinit"))
		}
		cands = append(cands, "/usr/lib/provkit/nodeinit")
	}
	for _, c := range cands {
		if c == "" {
			continue
		}
		if st, err := os.Stat(c); err == nil && st.Mode().IsRegular() {
			return c, nil
		}
	}
	return "", fmt.Errorf("no nodeinit binary (give --nodeinit; build it with CGO_ENABLED=0 go build ./examples/nodeinit)")
}

func (a *app) genimageCmd() *cobra.Command {
	var source, kernelDeb, nodeinit string
	var replace bool
	c := &cobra.Command{
		Use:   "genimage osimage [--source debootstrap[:suite]|tarball:F|oci:P|dir:D] [--kernel-deb F] [--nodeinit F] [--replace]",
		Short: "Build an osimage's root filesystem and its netboot kernel and initramfs",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			v, err := a.view(ctx)
			if err != nil {
				return err
			}
			img := args[0]
			def, err := osimageDef(v, img)
			if err != nil {
				return err
			}
			src, err := parseSource(source, def["osvers"])
			if err != nil {
				return err
			}
			pkgs, err := readListFiles(def["pkglist"])
			if err != nil {
				return fmt.Errorf("osimage %s pkglist: %w", img, err)
			}
			init, err := nodeinitPath(nodeinit)
			if err != nil {
				return err
			}
			mods := image.VirtioNetModules()
			if d := def["netdrivers"]; d != "" && d != "allupdate" {
				mods = strings.Split(d, ",")
			}
			mods = append(mods, "e1000", "e1000e")
			initrdName := "" // image's default: initrd-stateless.gz
			if def["provmethod"] == "statelite" {
				// An NFS root: the kernel's NFS client, and the name nodeset points
				// statelite nodes to.
				mods = append(mods, image.NFSRootModules()...)
				initrdName = "initrd-statelite.gz"
			}
			log := slog.New(slog.NewTextHandler(a.stderr, nil))
			spec := image.Spec{
				Dir:         filepath.Join(def["rootimgdir"], "rootimg"),
				Source:      src,
				Packages:    pkgs,
				PostInstall: splitNonEmpty(def["postinstall"]),
				Replace:     replace,
				Logger:      log,
				Boot: &image.BootSpec{
					Dir:           filepath.Join(orDefault(v.Site("tftpdir"), "/tftpboot"), "xcat", "osimage", img),
					Init:          init,
					Modules:       mods,
					KernelDeb:     kernelDeb,
					KernelVersion: def["kernelver"],
					InitrdName:    initrdName,
					Logger:        log,
				},
			}
			if _, err := image.Build(ctx, spec); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "genimage: %s built in %s, boot files in %s\n", img, spec.Dir, spec.Boot.Dir)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&source, "source", "", "where the tree comes from (default debootstrap with the suite of osvers)")
	f.StringVar(&kernelDeb, "kernel-deb", "", "take the kernel and modules from this linux-image .deb instead of the image")
	f.StringVar(&nodeinit, "nodeinit", "", "the nodeinit binary for the initramfs (default: next to provctl)")
	f.BoolVar(&replace, "replace", false, "replace an existing image")
	return c
}

func splitNonEmpty(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (a *app) packimageCmd() *cobra.Command {
	var method, compress string
	var deterministic bool
	c := &cobra.Command{
		Use:   "packimage osimage [-m cpio|tar|squashfs|nfs] [-c gzip|zstd|xz|none] [--deterministic]",
		Short: "Pack an osimage's root filesystem for netboot",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			v, err := a.view(ctx)
			if err != nil {
				return err
			}
			img := args[0]
			def, err := osimageDef(v, img)
			if err != nil {
				return err
			}
			root := filepath.Join(def["rootimgdir"], "rootimg")
			if st, err := os.Stat(root); err != nil || !st.IsDir() {
				return fmt.Errorf("osimage %s: no root filesystem at %s (run genimage %s)", img, root, img)
			}
			excl, err := readListFiles(def["exlist"])
			if err != nil {
				return fmt.Errorf("osimage %s exlist: %w", img, err)
			}
			opts := image.PackOptions{
				Format: image.Format(method), Compression: image.Compression(compress),
				Exclude: excl, Deterministic: deterministic,
				Progress: image.TerminalProgress(os.Stderr),
			}
			if compress == "pigz" {
				opts.Compression = image.Gzip // xCAT's -c pigz: our gzip is parallel
			}
			var out string
			switch opts.Format {
			case image.CPIO, image.Tar:
				ext := map[image.Compression]string{image.Gzip: ".gz", image.Zstd: ".zst", image.Xz: ".xz", image.None: ""}[opts.Compression]
				out = filepath.Join(def["rootimgdir"], "rootimg."+string(opts.Format)+ext)
			case image.Squashfs:
				out = filepath.Join(def["rootimgdir"], "rootimg.sfs")
			case image.NFS:
				fmt.Fprintf(a.stdout, "packimage: %s is exported as the directory %s\n", img, root)
				return nil
			default:
				return fmt.Errorf("-m %q: want cpio, tar, squashfs or nfs", method)
			}
			st, err := image.PackFile(ctx, root, out, opts)
			if err != nil {
				return err
			}
			// provd serves the first packed image it finds: remove the other formats.
			for _, old := range []string{"rootimg.cpio.gz", "rootimg.cpio.zst", "rootimg.cpio.xz", "rootimg.cpio", "rootimg.tar.gz", "rootimg.tar.zst", "rootimg.tar.xz", "rootimg.tar", "rootimg.sfs"} {
				if p := filepath.Join(def["rootimgdir"], old); p != out {
					if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
						return err
					}
				}
			}
			fmt.Fprintf(a.stdout, "packimage: %s: %s (%d entries)\n", img, out, st.Entries)
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&method, "method", "m", "cpio", "archive format: cpio, tar, squashfs or nfs")
	f.StringVarP(&compress, "compress", "c", "gzip", "compression: gzip (parallel; pigz is the same), zstd, xz or none")
	f.BoolVar(&deterministic, "deterministic", false, "reproducible output: fixed times, inode numbers in walk order")
	return c
}
