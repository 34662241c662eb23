package vmtest

import (
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/u-root/u-root/pkg/cpio"
)

// A File is one file of an Initramfs: its content from Source (a path on this machine)
// or Data.
type File struct {
	Source string
	Data   []byte
	Mode   uint64 // permission bits; if zero, 0755 for Source files that are executable, else 0644
	Link   string // if set, the entry is a symlink to Link
}

// Initramfs writes a gzip-compressed cpio newc archive of files (path inside -> File)
// into a temporary file and returns its path. Parent directories, /dev/console and
// /dev/null are added. It is the raw tool; BusyboxInitramfs builds the common case.
func Initramfs(tb testing.TB, files map[string]File) string {
	tb.Helper()
	var recs []cpio.Record
	dirs := map[string]bool{}
	addDirs := func(p string) {
		for d := path.Dir(p); d != "." && d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			recs = append(recs, cpio.Directory(d, 0o755))
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range append([]string{"dev/console", "proc/", "sys/", "tmp/"}, names...) {
		addDirs(strings.TrimSuffix(n, "/"))
	}
	recs = append(recs, cpio.Directory("proc", 0o755), cpio.Directory("sys", 0o755), cpio.Directory("tmp", 0o1777),
		cpio.CharDev("dev/console", 0o600, 5, 1), cpio.CharDev("dev/null", 0o666, 1, 3))
	for _, n := range names {
		f := files[n]
		name := strings.TrimLeft(n, "/")
		addDirs(name)
		switch {
		case f.Link != "":
			recs = append(recs, cpio.Symlink(name, f.Link))
		case f.Source != "":
			data, err := os.ReadFile(f.Source)
			if err != nil {
				tb.Fatalf("vmtest: initramfs %s: %v", n, err)
			}
			mode := f.Mode
			if mode == 0 {
				mode = 0o644
				if fi, err := os.Stat(f.Source); err == nil && fi.Mode()&0o111 != 0 {
					mode = 0o755
				}
			}
			recs = append(recs, cpio.StaticFile(name, string(data), mode))
		default:
			mode := f.Mode
			if mode == 0 {
				mode = 0o644
			}
			recs = append(recs, cpio.StaticFile(name, string(f.Data), mode))
		}
	}
	slices.SortStableFunc(recs, func(a, b cpio.Record) int { return strings.Compare(a.Name, b.Name) })
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	w := cpio.Newc.Writer(zw)
	for i, r := range recs {
		r = cpio.MakeReproducible(r)
		r.Ino, r.NLink = uint64(i+2), 1
		if err := w.WriteRecord(r); err != nil {
			tb.Fatalf("vmtest: initramfs: %v", err)
		}
	}
	if err := cpio.WriteTrailer(w); err != nil {
		tb.Fatalf("vmtest: initramfs: %v", err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatalf("vmtest: initramfs: %v", err)
	}
	out := filepath.Join(tb.TempDir(), "initrd.gz")
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		tb.Fatalf("vmtest: %v", err)
	}
	return out
}

// Busybox is the static busybox the initramfs helpers use (package busybox-static).
const Busybox = "/bin/busybox"

// BusyboxInitramfs builds an initramfs with busybox (and its applets linked in /bin),
// the kernel modules named (with dependencies) in /lib/modules, loaded in order by the
// init before initScript runs, and initScript as /init's body. initScript runs under
// busybox sh with /proc, /sys and /dev mounted and PATH=/bin.
func BusyboxInitramfs(tb testing.TB, k *Kernel, initScript string, modules ...string) string {
	tb.Helper()
	if _, err := os.Stat(Busybox); err != nil {
		tb.Fatalf("vmtest: %s: %v (install busybox-static)", Busybox, err)
	}
	files := map[string]File{"bin/busybox": {Source: Busybox, Mode: 0o755}}
	for _, applet := range []string{"sh", "mount", "ip", "insmod", "udhcpc", "poweroff", "cat", "echo", "ls", "sleep", "mkdir", "cut", "wget"} {
		files["bin/"+applet] = File{Link: "busybox"}
	}
	var load strings.Builder
	if k != nil {
		for _, f := range k.ModuleFiles(tb, modules...) {
			dst := "lib/modules/" + filepath.Base(f)
			files[dst] = File{Source: f, Mode: 0o644}
			load.WriteString("insmod /" + dst + " || echo \"vmtest: insmod " + filepath.Base(f) + " failed\"\n")
		}
	}
	files["init"] = File{Mode: 0o755, Data: []byte("#!/bin/sh\nexport PATH=/bin\n" +
		"mount -t proc proc /proc\nmount -t sysfs sys /sys\nmount -t devtmpfs dev /dev\n" +
		load.String() + initScript)}
	return Initramfs(tb, files)
}

// BuildGo builds the Go main package pkg (an import path, e.g.
// "github.com/provkit/provkit/examples/nodeinit") as a static binary (CGO_ENABLED=0,
// stripped) into a temporary directory of the test and returns its path. The go build
// cache makes a second build of the same package a link step.
func BuildGo(tb testing.TB, pkg string) string {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), path.Base(pkg))
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("vmtest: go build %s: %v\n%s", pkg, err, b)
	}
	return out
}
