package image

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestArReader reads an archive made by GNU ar, with odd-sized members (padding).
func TestArReader(t *testing.T) {
	needPrograms(t, "ar")
	dir := t.TempDir()
	files := map[string]string{"debian-binary": "2.0\n", "odd.txt": "12345", "empty": ""}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, dir, "", "ar", "rc", "x.a", "debian-binary", "odd.txt", "empty")
	f, err := os.Open(filepath.Join(dir, "x.a"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string]string{}
	ar := NewArReader(f)
	for {
		h, err := ar.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "odd.txt" {
			continue // skipped unread: Next must skip data and padding
		}
		b, err := io.ReadAll(ar)
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = string(b)
	}
	delete(files, "odd.txt")
	if diff := cmp.Diff(files, got); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}
}

func TestArReaderErrors(t *testing.T) {
	good := "!<arch>\n" + "debian-binary   0           0     0     100644  4         `\n" + "2.0\n"
	tests := []struct{ name, in string }{
		{"no magic", "hello"},
		{"bad terminator", strings.Replace(good, "`\n", "xx", 1)},
		{"bad size", strings.Replace(good, "4         `", "-4        `", 1)},
		{"short header", good[:30]},
		{"short data", good[:len(good)-2]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ar := NewArReader(strings.NewReader(tt.in))
			var err error
			for err == nil {
				if _, err = ar.Next(); err == nil {
					_, err = io.ReadAll(ar)
				}
			}
			if !errors.Is(err, ErrAr) {
				t.Errorf("reading %q: %v, want ErrAr", tt.name, err)
			}
		})
	}
}

// TestExtractDeb builds packages with dpkg-deb in each compression and extracts them.
func TestExtractDeb(t *testing.T) {
	needPrograms(t, "dpkg-deb")
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "DEBIAN"), 0o755))
	must(os.WriteFile(filepath.Join(src, "DEBIAN/control"), []byte(
		"Package: provkit-test\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: test\n"), 0o644))
	must(os.MkdirAll(filepath.Join(src, "boot"), 0o755))
	must(os.WriteFile(filepath.Join(src, "boot/vmlinuz-6.1.0-9-amd64"), []byte("kernel 9"), 0o644))
	must(os.WriteFile(filepath.Join(src, "boot/vmlinuz-6.1.0-56-amd64"), []byte("kernel 56"), 0o644))
	must(os.MkdirAll(filepath.Join(src, "lib/modules/6.1.0-56-amd64/kernel"), 0o755))
	must(os.WriteFile(filepath.Join(src, "lib/modules/6.1.0-56-amd64/kernel/x.ko"), fakeModule("depends="), 0o644))
	for _, z := range []string{"gzip", "xz", "zstd", "none"} {
		t.Run(z, func(t *testing.T) {
			deb := filepath.Join(t.TempDir(), "p.deb")
			run(t, "", "", "dpkg-deb", "--root-owner-group", "-Z"+z, "-b", src, deb)
			out := t.TempDir()
			if err := ExtractDeb(context.Background(), deb, out, nil); err != nil {
				t.Fatal(err)
			}
			k, err := FindKernel(out, "")
			if err != nil {
				t.Fatal(err)
			}
			if k.Version != "6.1.0-56-amd64" {
				t.Errorf("FindKernel picked %q, want the newest 6.1.0-56-amd64", k.Version)
			}
			b, _ := os.ReadFile(k.Image)
			if string(b) != "kernel 56" {
				t.Errorf("kernel image holds %q", b)
			}
			if _, err := LoadModules(out, k.Version); err != nil {
				t.Errorf("LoadModules: %v", err)
			}
		})
	}
	if err := ExtractDeb(context.Background(), filepath.Join(src, "DEBIAN/control"), t.TempDir(), nil); !errors.Is(err, ErrAr) {
		t.Errorf("ExtractDeb(not a deb) = %v, want ErrAr", err)
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int // sign
	}{
		{"6.1.0-56-amd64", "6.1.0-9-amd64", 1},
		{"6.1.0-9-amd64", "6.1.0-56-amd64", -1},
		{"5.10.0-28-amd64", "6.1.0-1-amd64", -1},
		{"6.1.0-56-amd64", "6.1.0-56-amd64", 0},
		{"6.1.0-056", "6.1.0-56", 0},
		{"6.1", "6.1.0", -1},
		{"4.18.0-553.el8_10.x86_64", "4.18.0-80.el8.x86_64", 1},
	}
	sign := func(n int) int {
		switch {
		case n < 0:
			return -1
		case n > 0:
			return 1
		}
		return 0
	}
	for _, tt := range tests {
		if got := sign(compareVersions(tt.a, tt.b)); got != tt.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestFindKernelMissing(t *testing.T) {
	if _, err := FindKernel(t.TempDir(), ""); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("FindKernel(empty tree) = %v, want ErrNotExist", err)
	}
}

// FuzzArReader: any input reads or fails with ErrAr, never panics or loops.
func FuzzArReader(f *testing.F) {
	f.Add([]byte("!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n"))
	f.Add([]byte("!<arch>\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ar := NewArReader(bytes.NewReader(data))
		for i := 0; ; i++ {
			h, err := ar.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				if !errors.Is(err, ErrAr) {
					t.Fatalf("error %v does not wrap ErrAr", err)
				}
				return
			}
			if h.Size < 0 {
				t.Fatalf("negative size %d", h.Size)
			}
			if _, err := io.Copy(io.Discard, ar); err != nil && !errors.Is(err, ErrAr) {
				t.Fatalf("data error %v does not wrap ErrAr", err)
			}
		}
	})
}

// TestMakeBoot takes the kernel and modules from a linux-image-like package and from
// an image tree, and writes kernel + initramfs where xCAT expects them.
func TestMakeBoot(t *testing.T) {
	needPrograms(t, "dpkg-deb", "cpio", "gzip")
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox as a static init")
	}
	root, ver := makeModuleTree(t, false)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "boot"), 0o755))
	must(os.WriteFile(filepath.Join(root, "boot/vmlinuz-"+ver), []byte("bzImage"), 0o644))
	must(os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755))
	must(os.WriteFile(filepath.Join(root, "DEBIAN/control"), []byte(
		"Package: linux-image-test\nVersion: 1\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: t\n"), 0o644))
	deb := filepath.Join(t.TempDir(), "linux-image-test.deb")
	run(t, "", "", "dpkg-deb", "--root-owner-group", "-Zxz", "-b", root, deb)
	for _, spec := range []BootSpec{
		{KernelDeb: deb, Init: "/bin/busybox", Modules: []string{"a"}},
		{ImageRoot: root, Init: "/bin/busybox", Modules: []string{"c"}, InitrdName: "initrd.gz", KernelName: "vmlinuz"},
	} {
		spec.Dir = filepath.Join(t.TempDir(), "xcat/osimage/img")
		got, err := MakeBoot(context.Background(), spec)
		if err != nil {
			t.Fatalf("MakeBoot(%+v): %v", spec, err)
		}
		if b, _ := os.ReadFile(got.Kernel); string(b) != "bzImage" || got.KernelVersion != ver {
			t.Errorf("kernel %s holds %q, version %q", got.Kernel, b, got.KernelVersion)
		}
		list := string(runPipe(t, "sh", "-c", "gzip -dc < "+got.Initrd+" | cpio -t --quiet"))
		for _, want := range []string{"init\n", "etc/provkit/modules\n", "lib/modules/" + ver + "/kernel/fs/d.ko\n"} {
			if !strings.Contains(list, want) {
				t.Errorf("initramfs %s lacks %q:\n%s", got.Initrd, want, list)
			}
		}
	}
	if _, err := MakeBoot(context.Background(), BootSpec{Dir: t.TempDir(), Init: "/bin/busybox"}); err == nil {
		t.Errorf("MakeBoot without a kernel source = nil, want an error")
	}
}

// TestBuildWithBoot: genimage in one call, tree then boot files from it.
func TestBuildWithBoot(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox as a static init")
	}
	src, ver := makeModuleTree(t, true)
	if err := os.MkdirAll(filepath.Join(src, "boot"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "boot/vmlinuz-"+ver), []byte("bzImage"), 0o644)
	bootDir := filepath.Join(t.TempDir(), "tftpboot")
	res, err := Build(context.Background(), Spec{Dir: filepath.Join(t.TempDir(), "rootimg"), Source: Directory{Path: src},
		Boot: &BootSpec{Dir: bootDir, Init: "/bin/busybox", Modules: []string{"a"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Boot == nil || res.Boot.KernelVersion != ver || len(res.Boot.Modules) != 5 {
		t.Fatalf("Build boot files = %+v", res.Boot)
	}
	for _, f := range []string{"kernel", "initrd-stateless.gz"} {
		if _, err := os.Stat(filepath.Join(bootDir, f)); err != nil {
			t.Errorf("boot dir lacks %s: %v", f, err)
		}
	}
}
