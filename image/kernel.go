package image

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// A Kernel is a kernel found in an image (or in an extracted kernel package).
type Kernel struct {
	Version string // "6.1.0-56-amd64"
	Image   string // path of the kernel image (vmlinuz)
	Initrd  string // path of the distribution's own initrd for it, if there is one
	Root    string // the tree it was found in; its modules are under Root/lib/modules/Version
}

// FindKernel finds the kernel of version in the tree at root: /boot/vmlinuz-<version>
// (Debian, Ubuntu, SUSE) or /lib/modules/<version>/vmlinuz (Fedora, RHEL). If version is
// empty, the newest one.
func FindKernel(root, version string) (Kernel, error) {
	cands := map[string]string{}
	if ents, err := os.ReadDir(filepath.Join(root, "boot")); err == nil {
		for _, e := range ents {
			if v, ok := strings.CutPrefix(e.Name(), "vmlinuz-"); ok && !e.IsDir() {
				cands[v] = filepath.Join(root, "boot", e.Name())
			}
		}
	}
	for _, base := range []string{"lib/modules", "usr/lib/modules"} {
		ents, _ := os.ReadDir(filepath.Join(root, base))
		for _, e := range ents {
			p := filepath.Join(root, base, e.Name(), "vmlinuz")
			if _, err := os.Stat(p); err == nil {
				if _, ok := cands[e.Name()]; !ok {
					cands[e.Name()] = p
				}
			}
		}
	}
	if len(cands) == 0 {
		return Kernel{}, fmt.Errorf("image: no kernel in %s (no boot/vmlinuz-*; install a kernel package into the image, e.g. linux-image-amd64): %w", root, fs.ErrNotExist)
	}
	if version == "" {
		vers := make([]string, 0, len(cands))
		for v := range cands {
			vers = append(vers, v)
		}
		slices.SortFunc(vers, compareVersions)
		version = vers[len(vers)-1]
	}
	img, ok := cands[version]
	if !ok {
		return Kernel{}, fmt.Errorf("image: no kernel %s in %s: %w", version, root, fs.ErrNotExist)
	}
	k := Kernel{Version: version, Image: img, Root: root}
	for _, n := range []string{"initrd.img-" + version, "initramfs-" + version + ".img", "initrd-" + version} {
		p := filepath.Join(root, "boot", n)
		if _, err := os.Stat(p); err == nil {
			k.Initrd = p
			break
		}
	}
	return k, nil
}

// compareVersions orders kernel versions naturally: runs of digits compare as numbers,
// so 6.1.0-56 comes after 6.1.0-9.
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		da, db := isDigit(a[0]), isDigit(b[0])
		switch {
		case da && db:
			na, ra := splitDigits(a)
			nb, rb := splitDigits(b)
			na, nb = strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
			if len(na) != len(nb) {
				return len(na) - len(nb)
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = ra, rb
		default:
			if a[0] != b[0] {
				return int(a[0]) - int(b[0])
			}
			a, b = a[1:], b[1:]
		}
	}
	return len(a) - len(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func splitDigits(s string) (string, string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// BootSpec describes the boot files of a netboot image: the kernel, and the netboot
// initramfs with nodeinit and the modules the node needs.
type BootSpec struct {
	// Dir receives the files (for xCAT: <tftpdir>/xcat/osimage/<imagename>). Created.
	Dir string
	// ImageRoot is the image's root directory: the kernel is taken from it, and its
	// modules. Either ImageRoot or KernelDeb.
	ImageRoot string
	// KernelDeb is a Debian linux-image package to take the kernel and modules from
	// instead (the image needs no kernel then).
	KernelDeb string
	// KernelVersion picks a kernel; if empty, the newest.
	KernelVersion string
	// Init, Modules, Files and Compression are as in InitramfsSpec.
	Init        string
	Modules     []string
	Files       map[string]string
	Compression Compression
	// KernelName and InitrdName are the file names in Dir. If empty, xCAT's "kernel" and
	// "initrd-stateless.gz".
	KernelName, InitrdName string
	Logger                 *slog.Logger
}

// BootFiles describes what MakeBoot wrote.
type BootFiles struct {
	Kernel        string // path
	Initrd        string // path
	KernelVersion string
	Modules       []Module
}

// MakeBoot writes the kernel and the netboot initramfs of an image into spec.Dir, where
// the boot servers (tftp, http) serve them.
func MakeBoot(ctx context.Context, spec BootSpec) (BootFiles, error) {
	var out BootFiles
	if spec.Dir == "" {
		return out, fmt.Errorf("image: boot: no Dir")
	}
	if (spec.ImageRoot == "") == (spec.KernelDeb == "") {
		return out, fmt.Errorf("image: boot: give exactly one of ImageRoot and KernelDeb")
	}
	if spec.KernelName == "" {
		spec.KernelName = "kernel"
	}
	if spec.InitrdName == "" {
		spec.InitrdName = "initrd-stateless.gz"
	}
	root := spec.ImageRoot
	if spec.KernelDeb != "" {
		tmp, err := os.MkdirTemp("", "provkit-kernel-")
		if err != nil {
			return out, fmt.Errorf("image: boot: %w", err)
		}
		defer os.RemoveAll(tmp)
		if err := ExtractDeb(ctx, spec.KernelDeb, tmp, spec.Logger); err != nil {
			return out, err
		}
		root = tmp
	}
	k, err := FindKernel(root, spec.KernelVersion)
	if err != nil {
		return out, err
	}
	if err := os.MkdirAll(spec.Dir, 0o755); err != nil {
		return out, fmt.Errorf("image: boot: %w", err)
	}
	out.Kernel = filepath.Join(spec.Dir, spec.KernelName)
	if err := copyFile(k.Image, out.Kernel); err != nil {
		return out, fmt.Errorf("image: boot: %w", err)
	}
	out.Initrd = filepath.Join(spec.Dir, spec.InitrdName)
	info, err := WriteInitramfsFile(ctx, out.Initrd, InitramfsSpec{
		Init: spec.Init, KernelRoot: root, KernelVersion: k.Version, Modules: spec.Modules,
		Files: spec.Files, Compression: spec.Compression,
	})
	if err != nil {
		return out, err
	}
	out.KernelVersion, out.Modules = k.Version, info.Modules
	return out, nil
}

// copyFile copies src to dst atomically (temporary file, then rename).
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
