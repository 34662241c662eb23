package image

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// Paths inside the netboot initramfs that nodeinit reads.
const (
	// InitramfsModuleList lists the modules nodeinit loads at boot, one name per line,
	// dependencies first (InitramfsSpec.Modules with their dependencies resolved).
	InitramfsModuleList = "etc/provkit/modules"
	// InitramfsKernelVersion holds the kernel version the modules are for.
	InitramfsKernelVersion = "etc/provkit/kernel-version"
)

// InitramfsSpec describes a netboot initramfs: the /init program (nodeinit), the kernel
// modules it needs, and any extra files.
type InitramfsSpec struct {
	// Init is the path of the program that becomes /init: a static executable
	// (build nodeinit with CGO_ENABLED=0). Required.
	Init string
	// KernelRoot holds lib/modules/<version> of the kernel the initramfs boots with: the
	// image root, or a kernel package extracted with ExtractDeb. Empty: no modules.
	KernelRoot string
	// KernelVersion picks the modules directory. If empty, KernelRoot must hold one.
	KernelVersion string
	// Modules are loaded at boot in this order, each after its dependencies (resolved
	// from modules.dep, or from the modules themselves): network drivers (xCAT's
	// netdrivers), and the filesystems the root needs (NFS: "nfsv3"; squashfs images:
	// "squashfs", "loop", "overlay"). Compressed modules (.ko.xz ...) are stored
	// decompressed, so nodeinit loads them with a plain finit_module.
	Modules []string
	// Files adds files: path inside the initramfs -> path on this machine (e.g.
	// "bin/busybox" -> "/bin/busybox" for the rescue shell). Symlinks are followed.
	Files map[string]string
	// Symlinks adds symlinks: path inside the initramfs -> target.
	Symlinks map[string]string
	// Compression of the archive (Gzip, Zstd or None; the kernel must support it: Debian
	// kernels do all three). If empty, Gzip.
	Compression Compression
}

// InitramfsInfo describes a written initramfs.
type InitramfsInfo struct {
	KernelVersion string
	Modules       []Module // in load order
	Written       int64    // bytes
}

// VirtioNetModules returns the modules that drive a virtio-net NIC (qemu, most clouds),
// for InitramfsSpec.Modules.
func VirtioNetModules() []string { return []string{"virtio_pci", "virtio_net"} }

// NFSRootModules returns the modules that mount an NFSv3 root with the kernel client.
func NFSRootModules() []string { return []string{"nfsv3"} }

// SquashfsRootModules returns the modules that mount a squashfs image with a writable
// tmpfs overlay.
func SquashfsRootModules() []string { return []string{"loop", "squashfs", "overlay"} }

// WriteInitramfs writes the netboot initramfs described by spec to w, as a cpio newc
// archive that the kernel unpacks: /init, /dev/console (so /init has a console before
// devtmpfs is mounted), the module files, a modules.dep for them and the list of modules
// to load. The output is reproducible: same inputs, same bytes.
func WriteInitramfs(ctx context.Context, w io.Writer, spec InitramfsSpec) (InitramfsInfo, error) {
	var info InitramfsInfo
	if spec.Init == "" {
		return info, fmt.Errorf("image: initramfs: no Init program")
	}
	if err := checkStatic(spec.Init); err != nil {
		return info, err
	}
	comp := spec.Compression
	if comp == "" {
		comp = Gzip
	}
	if comp != Gzip && comp != Zstd && comp != None {
		return info, fmt.Errorf("image: initramfs compression %q: %w (want gzip, zstd or none)", comp, ErrFormat)
	}
	var ix *ModuleIndex
	var mods []Module
	if spec.KernelRoot != "" {
		var err error
		ix, err = LoadModules(spec.KernelRoot, spec.KernelVersion)
		if err != nil {
			return info, err
		}
		if mods, err = ix.Resolve(spec.Modules...); err != nil {
			return info, err
		}
		info.KernelVersion, info.Modules = ix.Version, mods
	} else if len(spec.Modules) > 0 {
		return info, fmt.Errorf("image: initramfs: modules %v asked for but no KernelRoot", spec.Modules)
	}

	cw := &countWriter{w: w}
	zw, err := compressor(cw, comp, 0, 0)
	if err != nil {
		return info, err
	}
	bw := bufio.NewWriterSize(zw, 1<<20)
	rw := cpio.Newc.Writer(bw)
	var recs []cpio.Record
	add := func(r cpio.Record) { recs = append(recs, r) }

	initData, err := os.ReadFile(spec.Init)
	if err != nil {
		return info, fmt.Errorf("image: initramfs: %w", err)
	}
	add(cpio.StaticFile("init", string(initData), 0o755))
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "newroot", "etc", "etc/provkit"} {
		add(cpio.Directory(d, 0o755))
	}
	add(cpio.CharDev("dev/console", 0o600, 5, 1))
	add(cpio.CharDev("dev/null", 0o666, 1, 3))

	if ix != nil {
		modBase := "lib/modules/" + ix.Version
		stored := func(m Module) string {
			// Decompressed: strip .xz/.gz/.zst.
			p := m.Path
			for _, ext := range []string{".xz", ".gz", ".zst"} {
				p = strings.TrimSuffix(p, ext)
			}
			return p
		}
		var names []string
		for _, m := range mods {
			if err := ctx.Err(); err != nil {
				return info, fmt.Errorf("image: initramfs: %w", err)
			}
			data, err := ReadModule(filepath.Join(ix.Dir, filepath.FromSlash(m.Path)))
			if err != nil {
				return info, err
			}
			add(cpio.StaticFile(path.Join(modBase, stored(m)), string(data), 0o644))
			names = append(names, m.Name)
		}
		dep, softdep, err := depLines(ix, mods, stored)
		if err != nil {
			return info, err
		}
		add(cpio.StaticFile(modBase+"/modules.dep", string(dep), 0o644))
		if len(softdep) > 0 {
			add(cpio.StaticFile(modBase+"/modules.softdep", string(softdep), 0o644))
		}
		if b, err := os.ReadFile(filepath.Join(ix.Dir, "modules.builtin")); err == nil {
			add(cpio.StaticFile(modBase+"/modules.builtin", string(b), 0o644))
		}
		list := strings.Join(names, "\n")
		if list != "" {
			list += "\n"
		}
		add(cpio.StaticFile(InitramfsModuleList, list, 0o644))
		add(cpio.StaticFile(InitramfsKernelVersion, ix.Version+"\n", 0o644))
	}
	for _, dst := range sortedKeys(spec.Files) {
		data, err := os.ReadFile(spec.Files[dst])
		if err != nil {
			return info, fmt.Errorf("image: initramfs file %s: %w", dst, err)
		}
		fi, err := os.Stat(spec.Files[dst])
		if err != nil {
			return info, fmt.Errorf("image: initramfs file %s: %w", dst, err)
		}
		add(cpio.StaticFile(strings.TrimLeft(dst, "/"), string(data), uint64(fi.Mode().Perm())))
	}
	for _, dst := range sortedKeys(spec.Symlinks) {
		add(cpio.Symlink(strings.TrimLeft(dst, "/"), spec.Symlinks[dst]))
	}
	// Parents before children; then everything reproducible.
	slices.SortStableFunc(recs, func(a, b cpio.Record) int { return strings.Compare(a.Name, b.Name) })
	dirs := map[string]bool{}
	var all []cpio.Record
	for _, r := range recs {
		for d := path.Dir(r.Name); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			all = append(all, cpio.Directory(d, 0o755))
		}
		if r.Mode&cpio.S_IFMT == cpio.S_IFDIR {
			dirs[r.Name] = true
		}
		all = append(all, r)
	}
	slices.SortStableFunc(all, func(a, b cpio.Record) int { return strings.Compare(a.Name, b.Name) })
	for i, r := range all {
		r = cpio.MakeReproducible(r)
		r.Ino = uint64(i + 2)
		r.NLink = 1
		if r.Mode&cpio.S_IFMT == cpio.S_IFDIR {
			r.NLink = 2
		}
		if err := rw.WriteRecord(r); err != nil {
			return info, fmt.Errorf("image: initramfs %s: %w", r.Name, err)
		}
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return info, fmt.Errorf("image: initramfs: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return info, fmt.Errorf("image: initramfs: %w", err)
	}
	if err := zw.Close(); err != nil {
		return info, fmt.Errorf("image: initramfs: %w", err)
	}
	info.Written = cw.n
	return info, nil
}

// WriteInitramfsFile writes the initramfs to the file out, atomically.
func WriteInitramfsFile(ctx context.Context, out string, spec InitramfsSpec) (InitramfsInfo, error) {
	var buf bytes.Buffer
	info, err := WriteInitramfs(ctx, &buf, spec)
	if err != nil {
		return info, err
	}
	if err := writeFileAtomic(out, buf.Bytes(), 0o644); err != nil {
		return info, fmt.Errorf("image: initramfs: %w", err)
	}
	return info, nil
}

// checkStatic refuses a dynamically linked /init: the initramfs has no libc, and the
// kernel would fail to run it with a confusing "No working init found".
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("image: initramfs init %s: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("image: initramfs init %s is dynamically linked (build it with CGO_ENABLED=0)", p)
		}
	}
	return nil
}

func writeFileAtomic(out string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), perm); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}
