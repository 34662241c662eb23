package vmtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/provkit/provkit/internal/testenv"
)

// Needs lists what a VM test needs, for testenv.Require.
func Needs() []testenv.Need {
	return []testenv.Need{
		testenv.Root(),
		testenv.Program("qemu-system-x86_64", "ip", "dpkg-deb", "depmod", "modprobe"),
		func() string {
			if _, err := os.Stat("/usr/lib/ipxe/qemu/efi-virtio.rom"); err != nil {
				return "package ipxe-qemu (the iPXE ROM qemu's virtio-net boots from)"
			}
			return ""
		},
	}
}

// Kernel is a Debian kernel package extracted into the cache.
type Kernel struct {
	Version string // "6.1.0-56-amd64"
	Root    string // the package's files: Root/boot/vmlinuz-Version, Root/lib/modules/Version
	Vmlinuz string // path of the kernel image
	Deb     string // path of the .deb it came from
}

// CacheDir returns $PROVKIT_CACHE, or ~/.cache/provkit.
func CacheDir() string {
	if d := os.Getenv("PROVKIT_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "provkit")
}

var (
	kernelOnce sync.Mutex
	kernelMemo *Kernel
)

var dependsRE = regexp.MustCompile(`Depends:\s+linux-image-(\d[^\s]*)`)

// DebianKernel returns the Debian kernel the VM tests boot: the version that apt's
// linux-image-amd64 depends on, downloaded once (apt-get download), extracted with
// dpkg-deb -x and indexed with depmod, under CacheDir()/debian-kernel/<version>. A file
// lock keeps parallel test processes from fetching it twice. Without apt metadata (no
// network) the newest cached version is used.
func DebianKernel(tb testing.TB) *Kernel {
	tb.Helper()
	kernelOnce.Lock()
	defer kernelOnce.Unlock()
	if kernelMemo != nil {
		return kernelMemo
	}
	base := filepath.Join(CacheDir(), "debian-kernel")
	if err := os.MkdirAll(base, 0o755); err != nil {
		tb.Fatalf("vmtest: kernel cache: %v", err)
	}
	lock, err := os.OpenFile(filepath.Join(base, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		tb.Fatalf("vmtest: kernel cache lock: %v", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		tb.Fatalf("vmtest: kernel cache lock: %v", err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)

	version := ""
	out, err := exec.Command("apt-cache", "depends", "linux-image-amd64").Output()
	if m := dependsRE.FindSubmatch(out); err == nil && m != nil {
		version = string(m[1])
	}
	if version == "" {
		// Offline: take the newest complete cached version.
		ents, _ := os.ReadDir(base)
		var have []string
		for _, e := range ents {
			if _, err := os.Stat(filepath.Join(base, e.Name(), ".complete")); err == nil {
				have = append(have, e.Name())
			}
		}
		if len(have) == 0 {
			tb.Fatalf("vmtest: cannot tell the Debian kernel version (apt-cache depends linux-image-amd64: %v) and none is cached in %s", err, base)
		}
		slices.Sort(have)
		version = have[len(have)-1]
	}
	dir := filepath.Join(base, version)
	k := &Kernel{Version: version, Root: filepath.Join(dir, "root"),
		Vmlinuz: filepath.Join(dir, "root", "boot", "vmlinuz-"+version)}
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		k.Deb = findDeb(dir)
		kernelMemo = k
		return k
	}
	tb.Logf("vmtest: fetching linux-image-%s into %s (once)", version, dir)
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatalf("vmtest: %v", err)
	}
	run := func(dir string, argv ...string) {
		tb.Helper()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("vmtest: %s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	run(dir, "apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", "linux-image-"+version)
	k.Deb = findDeb(dir)
	if k.Deb == "" {
		tb.Fatalf("vmtest: apt-get download left no .deb in %s", dir)
	}
	run(dir, "dpkg-deb", "-x", k.Deb, "root")
	run(dir, "depmod", "-b", k.Root, version)
	if err := os.WriteFile(filepath.Join(dir, ".complete"), nil, 0o644); err != nil {
		tb.Fatalf("vmtest: %v", err)
	}
	kernelMemo = k
	return k
}

func findDeb(dir string) string {
	m, _ := filepath.Glob(filepath.Join(dir, "linux-image-*.deb"))
	if len(m) == 0 {
		return ""
	}
	return m[0]
}

// ModuleFiles returns the module files to insmod, in order, so that names and their
// dependencies load (modprobe --show-depends against the extracted tree). Built-in
// modules give nothing.
func (k *Kernel) ModuleFiles(tb testing.TB, names ...string) []string {
	tb.Helper()
	var files []string
	seen := map[string]bool{}
	for _, n := range names {
		out, err := exec.Command("modprobe", "-d", k.Root, "-S", k.Version, "--show-depends", n).CombinedOutput()
		if err != nil {
			tb.Fatalf("vmtest: modprobe --show-depends %s: %v\n%s", n, err, out)
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && f[0] == "insmod" && !seen[f[1]] {
				seen[f[1]] = true
				files = append(files, f[1])
			}
		}
	}
	return files
}

func (k *Kernel) String() string { return fmt.Sprintf("Debian kernel %s", k.Version) }
