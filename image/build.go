package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A Source is where the root filesystem of an image comes from: Debootstrap, Tarball,
// OCI or Directory.
type Source interface {
	// populate fills dir (empty, on the build's filesystem) with the root filesystem.
	populate(ctx context.Context, b *builder, dir string) error
	String() string
}

// Spec describes an image build (xCAT's genimage). The lead maps the osimage and
// linuximage tables onto it: rootimgdir -> Dir (xCAT keeps the tree in
// <rootimgdir>/rootimg), pkglist -> Packages, postinstall -> PostInstall.
type Spec struct {
	// Dir is where the root filesystem is built. It is made under a temporary name next
	// to Dir and renamed into place when complete, so a failed build leaves the previous
	// image as it was.
	Dir string
	// Source is where the tree comes from. Required.
	Source Source
	// Packages are installed into the image (Debian packages: with debootstrap's
	// --include for a Debootstrap source, with apt-get in a chroot for the others).
	Packages []string
	// PostInstall programs run after the tree is complete, each as `prog <root>`, with
	// PROVKIT_ROOT=<root> in the environment, as xCAT runs postinstall scripts with the
	// image root as $1. A hook that fails fails the build.
	PostInstall []string
	// Env is added to the environment of the PostInstall programs.
	Env []string
	// Replace allows replacing an existing image at Dir. Without it an existing,
	// non-empty Dir is an error.
	Replace bool
	// Output receives the output of debootstrap, apt-get and the hooks. If nil, it is
	// kept and the last lines are quoted in errors.
	Output io.Writer
	// Logger receives progress (one line per step). If nil, discard.
	Logger *slog.Logger
	// Boot, if set, also makes the boot files once the tree is in place (xCAT's
	// genimage makes the initrd with the image's netdrivers): MakeBoot with Boot, whose
	// ImageRoot defaults to Dir.
	Boot *BootSpec
}

// Result describes a finished build.
type Result struct {
	Dir     string
	Elapsed time.Duration
	Boot    *BootFiles // when Spec.Boot was set
}

// ErrExists is returned when Spec.Dir already holds an image and Spec.Replace is false.
var ErrExists = errors.New("image already exists")

type builder struct {
	spec *Spec
	log  *slog.Logger
	out  io.Writer
	tail *tailBuffer
}

// Build makes the root filesystem described by spec. It needs root for debootstrap,
// package installation and faithful ownership.
func Build(ctx context.Context, spec Spec) (Result, error) {
	start := time.Now()
	if spec.Dir == "" {
		return Result{}, fmt.Errorf("image: build: no Dir")
	}
	if spec.Source == nil {
		return Result{}, fmt.Errorf("image: build %s: no Source", spec.Dir)
	}
	for _, p := range spec.Packages {
		if p == "" || strings.HasPrefix(p, "-") || strings.ContainsAny(p, " \t\n/") {
			return Result{}, fmt.Errorf("image: build %s: package name %q", spec.Dir, p)
		}
	}
	dir, err := filepath.Abs(spec.Dir)
	if err != nil {
		return Result{}, fmt.Errorf("image: build: %w", err)
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 && !spec.Replace {
		return Result{}, fmt.Errorf("image: build %s: %w (set Replace)", dir, ErrExists)
	}
	b := &builder{spec: &spec, log: spec.Logger, tail: &tailBuffer{max: 16 << 10}}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.out = b.tail
	if spec.Output != nil {
		b.out = io.MultiWriter(spec.Output, b.tail)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return Result{}, fmt.Errorf("image: build: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".build-")
	if err != nil {
		return Result{}, fmt.Errorf("image: build: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			if err := removeTree(tmp); err != nil {
				b.log.Warn("image: cannot remove the failed build", "path", tmp, "err", err)
			}
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return Result{}, fmt.Errorf("image: build: %w", err)
	}
	b.log.Info("image: populating", "source", spec.Source.String(), "path", tmp)
	if err := spec.Source.populate(ctx, b, tmp); err != nil {
		return Result{}, err
	}
	if _, isDeb := spec.Source.(Debootstrap); len(spec.Packages) > 0 && !isDeb {
		b.log.Info("image: installing packages", "packages", strings.Join(spec.Packages, ","))
		if err := b.aptInstall(ctx, tmp, spec.Packages); err != nil {
			return Result{}, err
		}
	}
	for _, hook := range spec.PostInstall {
		b.log.Info("image: postinstall", "hook", hook)
		cmd := exec.CommandContext(ctx, hook, tmp)
		cmd.Env = append(append(os.Environ(), spec.Env...), "PROVKIT_ROOT="+tmp)
		cmd.Stdout, cmd.Stderr = b.out, b.out
		if err := cmd.Run(); err != nil {
			return Result{}, b.failed("postinstall "+hook, ctx, err)
		}
	}
	// Swap the new tree in; the old one (if any) goes after.
	old := ""
	if _, err := os.Lstat(dir); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return Result{}, fmt.Errorf("image: build: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return Result{}, fmt.Errorf("image: build: %w", err)
	}
	ok = true
	if old != "" {
		if err := removeTree(old); err != nil {
			return Result{}, fmt.Errorf("image: build: remove the previous image: %w", err)
		}
	}
	res := Result{Dir: dir}
	if spec.Boot != nil {
		bs := *spec.Boot
		if bs.ImageRoot == "" && bs.KernelDeb == "" {
			bs.ImageRoot = dir
		}
		if bs.Logger == nil {
			bs.Logger = b.log
		}
		b.log.Info("image: boot files", "dir", bs.Dir)
		bf, err := MakeBoot(ctx, bs)
		if err != nil {
			return res, err
		}
		res.Boot = &bf
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// failed wraps a failed step's error with the end of its output.
func (b *builder) failed(step string, ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("image: %s: %w", step, ctx.Err())
	}
	return fmt.Errorf("image: %s: %w: %s", step, err, lastLines(b.tail.Bytes(), 8))
}

// removeTree removes a build tree, refusing if something is mounted inside it (a bind
// mount of /dev would otherwise lose the host's device nodes).
func removeTree(dir string) error {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err == nil {
		for _, l := range strings.Split(string(mi), "\n") {
			f := strings.Fields(l)
			if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
				return fmt.Errorf("image: %s is mounted inside %s: not removing", f[4], dir)
			}
		}
	}
	return os.RemoveAll(dir)
}

// inPrivateMounts runs fn on a thread with its own mount namespace: mounts fn makes (and
// those of programs it starts) vanish when it returns, even if the process dies, and
// never show on the host. The thread returns to the original namespace afterwards, which
// drops the private one: the thread may be the process's main thread, which Go never
// ends, so relying on the thread's exit would keep the private mounts alive (and visible
// in /proc/self/mountinfo).
func inPrivateMounts(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread stays locked: it exits with this goroutine (or, for the main thread,
		// is parked), never to run other goroutines with its own file system context.
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("image: private mount namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("image: private mount namespace: %w", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			_ = unix.Setns(orig, unix.CLONE_NEWNS)
			errc <- fmt.Errorf("image: private mount namespace: %w", err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNS); err != nil && ferr == nil {
			ferr = fmt.Errorf("image: leave the private mount namespace: %w", err)
		}
		errc <- ferr
	}()
	return <-errc
}

// chrootMounts mounts what apt and maintainer scripts need inside root: proc, sysfs, a
// bind of /dev, and the host's resolv.conf so the mirror resolves.
func chrootMounts(root string) error {
	for _, m := range []struct{ src, dst, fstype string }{
		{"proc", "proc", "proc"}, {"sysfs", "sys", "sysfs"}, {"/dev", "dev", ""}, {"devpts", "dev/pts", "devpts"},
	} {
		dst := filepath.Join(root, m.dst)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		flags := uintptr(0)
		if m.fstype == "" {
			flags = unix.MS_BIND | unix.MS_REC
		}
		data := ""
		if m.fstype == "devpts" {
			data = "newinstance,ptmxmode=0666"
		}
		if err := unix.Mount(m.src, dst, m.fstype, flags, data); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.src, dst, err)
		}
	}
	if _, err := os.Stat("/etc/resolv.conf"); err == nil {
		dst := filepath.Join(root, "etc/resolv.conf")
		if fi, err := os.Lstat(dst); err != nil || fi.Mode().IsRegular() {
			if err != nil {
				if err := os.WriteFile(dst, nil, 0o644); err != nil {
					return err
				}
			}
			if err := unix.Mount("/etc/resolv.conf", dst, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind resolv.conf: %w", err)
			}
		}
	}
	return nil
}

// aptInstall installs packages with apt-get in a chroot of root. Daemons are kept from
// starting (policy-rc.d), and apt's caches are emptied afterwards.
func (b *builder) aptInstall(ctx context.Context, root string, pkgs []string) error {
	if _, err := os.Stat(filepath.Join(root, "usr/bin/apt-get")); err != nil {
		return fmt.Errorf("image: install %s: the image has no apt-get (not Debian-based?)", strings.Join(pkgs, " "))
	}
	policy := filepath.Join(root, "usr/sbin/policy-rc.d")
	hadPolicy := false
	if _, err := os.Lstat(policy); err == nil {
		hadPolicy = true
	} else if err := os.WriteFile(policy, []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	defer func() {
		if !hadPolicy {
			os.Remove(policy)
		}
	}()
	env := []string{"DEBIAN_FRONTEND=noninteractive", "LC_ALL=C", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	return inPrivateMounts(func() error {
		if err := chrootMounts(root); err != nil {
			return fmt.Errorf("image: install packages: %w", err)
		}
		for _, argv := range [][]string{
			{"apt-get", "update", "-q"},
			append([]string{"apt-get", "install", "-y", "-q", "--no-install-recommends"}, pkgs...),
			{"apt-get", "clean"},
		} {
			cmd := exec.CommandContext(ctx, "chroot", append([]string{root}, argv...)...)
			cmd.Env = env
			cmd.Stdout, cmd.Stderr = b.out, b.out
			if err := cmd.Run(); err != nil {
				return b.failed(strings.Join(argv[:2], " "), ctx, err)
			}
		}
		return nil
	})
}

// Debootstrap builds a Debian root filesystem with debootstrap.
type Debootstrap struct {
	// Suite is the Debian release: "bookworm". Required.
	Suite string
	// Mirror is the archive URL. If empty, the one this machine's apt uses (AptMirror).
	Mirror string
	// Variant is debootstrap's --variant. If empty, "minbase" (essential packages and
	// apt; about 200 MB).
	Variant string
	// Arch is the Debian architecture. If empty, this machine's.
	Arch string
	// Components are the archive areas. If empty, main.
	Components []string
}

func (d Debootstrap) String() string { return "debootstrap " + d.Suite }

func (d Debootstrap) populate(ctx context.Context, b *builder, dir string) error {
	if d.Suite == "" || strings.ContainsAny(d.Suite, " /") || strings.HasPrefix(d.Suite, "-") {
		return fmt.Errorf("image: debootstrap suite %q", d.Suite)
	}
	mirror := d.Mirror
	if mirror == "" {
		var err error
		if mirror, err = AptMirror("/", d.Suite); err != nil {
			return err
		}
	}
	variant := d.Variant
	if variant == "" {
		variant = "minbase"
	}
	args := []string{"--variant=" + variant}
	if d.Arch != "" {
		args = append(args, "--arch="+d.Arch)
	}
	if len(d.Components) > 0 {
		args = append(args, "--components="+strings.Join(d.Components, ","))
	}
	if len(b.spec.Packages) > 0 {
		args = append(args, "--include="+strings.Join(b.spec.Packages, ","))
	}
	args = append(args, d.Suite, dir, mirror)
	b.log.Info("image: debootstrap", "suite", d.Suite, "mirror", mirror, "variant", variant)
	err := inPrivateMounts(func() error {
		cmd := exec.CommandContext(ctx, "debootstrap", args...)
		cmd.Stdout, cmd.Stderr = b.out, b.out
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		if err := cmd.Run(); err != nil {
			return b.failed("debootstrap", ctx, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return cleanAptCache(dir)
}

// cleanAptCache removes the downloaded packages debootstrap leaves in
// /var/cache/apt/archives (apt-get clean): an image does not ship them.
func cleanAptCache(root string) error {
	debs, err := filepath.Glob(filepath.Join(root, "var/cache/apt/archives", "*.deb"))
	if err != nil {
		return err
	}
	for _, d := range debs {
		if err := os.Remove(d); err != nil {
			return fmt.Errorf("image: apt cache: %w", err)
		}
	}
	return nil
}

// Tarball takes the root filesystem from an archive of it: tar or cpio, compressed with
// gzip, zstd or xz or not (detected from the content).
type Tarball struct {
	Path string
}

func (t Tarball) String() string { return "tarball " + t.Path }

func (t Tarball) populate(ctx context.Context, b *builder, dir string) error {
	f, err := os.Open(t.Path)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	defer f.Close()
	if _, err := Unpack(ctx, f, dir, UnpackOptions{Logger: b.log, ExecXz: true}); err != nil {
		return fmt.Errorf("image: tarball %s: %w", t.Path, err)
	}
	return nil
}

// Directory copies the root filesystem from an existing tree (a golden client synced
// with rsync, an image built elsewhere) with owners, modes, links, devices and xattrs.
type Directory struct {
	Path string
}

func (d Directory) String() string { return "directory " + d.Path }

func (d Directory) populate(ctx context.Context, b *builder, dir string) error {
	fi, err := os.Stat(d.Path)
	if err != nil {
		return fmt.Errorf("image: source %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("image: source %s: not a directory", d.Path)
	}
	// Pack and unpack through a pipe: one tested code path for every file type.
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		_, err := Pack(ctx, d.Path, pw, PackOptions{Format: Tar, Compression: None, Logger: b.log})
		pw.CloseWithError(err)
		errc <- err
	}()
	_, uerr := Unpack(ctx, pr, dir, UnpackOptions{Format: Tar, Logger: b.log})
	pr.CloseWithError(errors.New("unpack stopped"))
	perr := <-errc
	if perr != nil {
		return fmt.Errorf("image: copy %s: %w", d.Path, perr)
	}
	if uerr != nil {
		return fmt.Errorf("image: copy %s: %w", d.Path, uerr)
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	buf bytes.Buffer
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf.Write(p)
	if t.buf.Len() > 2*t.max {
		b := t.buf.Bytes()
		keep := append([]byte(nil), b[len(b)-t.max:]...)
		t.buf.Reset()
		t.buf.Write(keep)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte { return t.buf.Bytes() }
