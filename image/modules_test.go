package image

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// fakeModule returns a minimal relocatable ELF64 whose .modinfo section holds the
// given key=value strings, which is all the resolver reads of a module.
func fakeModule(modinfo ...string) []byte {
	info := []byte(strings.Join(modinfo, "\x00") + "\x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	le := binary.LittleEndian
	var b bytes.Buffer
	hdr := make([]byte, 64)
	copy(hdr, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1})
	le.PutUint16(hdr[16:], uint16(elf.ET_REL))
	le.PutUint16(hdr[18:], uint16(elf.EM_X86_64))
	le.PutUint32(hdr[20:], 1)
	shoff := 64 + len(info) + len(shstr)
	le.PutUint64(hdr[40:], uint64(shoff))
	le.PutUint16(hdr[52:], 64) // ehsize
	le.PutUint16(hdr[58:], 64) // shentsize
	le.PutUint16(hdr[60:], 3)  // shnum
	le.PutUint16(hdr[62:], 2)  // shstrndx
	b.Write(hdr)
	b.Write(info)
	b.Write(shstr)
	sh := func(name, typ uint32, off, size int) {
		s := make([]byte, 64)
		le.PutUint32(s[0:], name)
		le.PutUint32(s[4:], typ)
		le.PutUint64(s[24:], uint64(off))
		le.PutUint64(s[32:], uint64(size))
		le.PutUint64(s[48:], 1)
		b.Write(s)
	}
	sh(0, 0, 0, 0)
	sh(1, uint32(elf.SHT_PROGBITS), 64, len(info))
	sh(10, uint32(elf.SHT_STRTAB), 64+len(info), len(shstr))
	return b.Bytes()
}

// makeModuleTree writes a kernel module tree:
//
//	a depends on b and c (and soft pre: f); c on d; e is built in; b on e;
//	d is stored xz-compressed, f zstd-compressed.
func makeModuleTree(t *testing.T, withDep bool) (root, ver string) {
	t.Helper()
	root, ver = t.TempDir(), "6.1.0-test"
	dir := filepath.Join(root, "lib/modules", ver)
	write := func(rel string, data []byte) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("kernel/drivers/a.ko", fakeModule("license=GPL", "depends=b,c", "softdep=pre: f", "name=a"))
	write("kernel/drivers/b-dash.ko", fakeModule("depends=e", "name=b_dash"))
	write("kernel/net/c.ko", fakeModule("depends=d", "name=c"))
	var xb bytes.Buffer
	xw, _ := xz.NewWriter(&xb)
	xw.Write(fakeModule("depends=", "name=d"))
	xw.Close()
	write("kernel/fs/d.ko.xz", xb.Bytes())
	var zb bytes.Buffer
	zw, _ := zstd.NewWriter(&zb)
	zw.Write(fakeModule("depends=", "name=f"))
	zw.Close()
	write("kernel/lib/f.ko.zst", zb.Bytes())
	write("modules.builtin", []byte("kernel/lib/e.ko\n"))
	// "b" is really b-dash on disk: fix the depends string to the canonical name.
	write("kernel/drivers/a.ko", fakeModule("license=GPL", "depends=b_dash,c", "softdep=pre: f", "name=a"))
	if withDep {
		write("modules.dep", []byte(
			"kernel/drivers/a.ko: kernel/drivers/b-dash.ko kernel/net/c.ko kernel/fs/d.ko.xz\n"+
				"kernel/drivers/b-dash.ko:\n"+
				"kernel/net/c.ko: kernel/fs/d.ko.xz\n"+
				"kernel/fs/d.ko.xz:\n"+
				"kernel/lib/f.ko.zst:\n"))
		write("modules.softdep", []byte("# comment\nsoftdep a pre: f post: g\n"))
	}
	return root, ver
}

func TestResolveModules(t *testing.T) {
	want := []Module{
		{Name: "f", Path: "kernel/lib/f.ko.zst"},
		{Name: "b_dash", Path: "kernel/drivers/b-dash.ko"},
		{Name: "d", Path: "kernel/fs/d.ko.xz"},
		{Name: "c", Path: "kernel/net/c.ko"},
		{Name: "a", Path: "kernel/drivers/a.ko"},
	}
	for _, withDep := range []bool{false, true} {
		name := "modinfo"
		if withDep {
			name = "modules.dep"
		}
		t.Run(name, func(t *testing.T) {
			root, ver := makeModuleTree(t, withDep)
			ix, err := LoadModules(root, "")
			if err != nil {
				t.Fatal(err)
			}
			if ix.Version != ver {
				t.Errorf("Version = %q, want %q", ix.Version, ver)
			}
			got, err := ix.Resolve("a", "e", "b-dash")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Resolve (-want +got):\n%s", diff)
			}
			if _, err := ix.Resolve("nosuch"); !errors.Is(err, ErrModuleNotFound) || !strings.Contains(err.Error(), "nosuch") {
				t.Errorf("Resolve(nosuch) = %v, want ErrModuleNotFound naming it", err)
			}
		})
	}
}

func TestWriteInitramfs(t *testing.T) {
	needPrograms(t, "cpio", "gzip")
	init := "/bin/busybox"
	if _, err := os.Stat(init); err != nil {
		t.Skip("needs /bin/busybox (busybox-static) as a static /init")
	}
	root, ver := makeModuleTree(t, false)
	spec := InitramfsSpec{Init: init, KernelRoot: root, Modules: []string{"a"},
		Files: map[string]string{"bin/extra": init}, Symlinks: map[string]string{"bin/sh": "busybox"}}
	var b1, b2 bytes.Buffer
	info, err := WriteInitramfs(context.Background(), &b1, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteInitramfs(context.Background(), &b2, spec); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Errorf("two initramfs of the same spec differ")
	}
	if info.KernelVersion != ver || len(info.Modules) != 5 || info.Written != int64(b1.Len()) {
		t.Errorf("info = %+v", info)
	}
	// The peer reads it: GNU cpio lists what we expect.
	dir := t.TempDir()
	arch := filepath.Join(dir, "initrd.gz")
	if err := os.WriteFile(arch, b1.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	list := string(runPipe(t, "sh", "-c", "gzip -dc < "+arch+" | cpio -tv --quiet"))
	for _, want := range []string{
		"-rwxr-xr-x   1 root     root", " init\n",
		"crw-------   1 root     root       5,   1", "dev/console",
		"lib/modules/" + ver + "/kernel/fs/d.ko\n",
		"lib/modules/" + ver + "/kernel/lib/f.ko\n",
		"lib/modules/" + ver + "/modules.dep",
		"etc/provkit/modules", "bin/sh -> busybox", "newroot",
	} {
		if !strings.Contains(list, want) {
			t.Errorf("cpio -tv lacks %q:\n%s", want, list)
		}
	}
	out := filepath.Join(dir, "out")
	if _, err := Unpack(context.Background(), bytes.NewReader(b1.Bytes()), out, UnpackOptions{}); err != nil {
		t.Fatal(err)
	}
	mods, _ := os.ReadFile(filepath.Join(out, InitramfsModuleList))
	if got := string(mods); got != "f\nb_dash\nd\nc\na\n" {
		t.Errorf("module list = %q", got)
	}
	// The xz module is stored decompressed, as an ELF file the resolver can read again.
	ix, err := LoadModules(out, ver)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ix.Resolve("a")
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range got {
		pos[m.Path] = i
	}
	for _, p := range []string{"kernel/lib/f.ko", "kernel/drivers/b-dash.ko", "kernel/fs/d.ko", "kernel/net/c.ko", "kernel/drivers/a.ko"} {
		if _, ok := pos[p]; !ok {
			t.Errorf("modules.dep in the initramfs does not resolve %s: %v", p, got)
		}
	}
	if len(got) != 5 || pos["kernel/fs/d.ko"] > pos["kernel/net/c.ko"] || pos["kernel/drivers/a.ko"] != 4 || pos["kernel/lib/f.ko"] > pos["kernel/drivers/a.ko"] {
		t.Errorf("modules.dep in the initramfs resolves to %v: dependencies must come first", got)
	}
}

func TestWriteInitramfsErrors(t *testing.T) {
	root, _ := makeModuleTree(t, false)
	dyn := "/bin/ls"
	tests := []struct {
		name string
		spec InitramfsSpec
		want string
	}{
		{"no init", InitramfsSpec{}, "no Init"},
		{"dynamic init", InitramfsSpec{Init: dyn}, "CGO_ENABLED=0"},
		{"missing module", InitramfsSpec{Init: "/bin/busybox", KernelRoot: root, Modules: []string{"virtio_net"}}, "virtio_net"},
		{"modules without kernel", InitramfsSpec{Init: "/bin/busybox", Modules: []string{"x"}}, "no KernelRoot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			_, err := WriteInitramfs(context.Background(), &b, tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("WriteInitramfs = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func runPipe(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return out
}

// FuzzModulesDep: parseDep never panics; what it accepts renders and parses the same.
func FuzzModulesDep(f *testing.F) {
	f.Add("kernel/a.ko: kernel/b.ko.xz kernel/c.ko\nkernel/b.ko.xz:\n")
	f.Add("# c\n\nx.ko:\n")
	f.Add("bad line\n")
	f.Fuzz(func(t *testing.T, in string) {
		ix := &ModuleIndex{files: map[string]string{}, deps: map[string][]string{}}
		if err := ix.parseDep(strings.NewReader(in)); err != nil {
			return
		}
		var b strings.Builder
		for n, ds := range ix.deps {
			b.WriteString(ix.files[n] + ":")
			for _, d := range ds {
				b.WriteString(" " + ix.files[d])
			}
			b.WriteString("\n")
		}
		ix2 := &ModuleIndex{files: map[string]string{}, deps: map[string][]string{}}
		if err := ix2.parseDep(strings.NewReader(b.String())); err != nil {
			t.Fatalf("re-parse of %q: %v", b.String(), err)
		}
		if diff := cmp.Diff(ix.deps, ix2.deps); diff != "" {
			t.Fatalf("deps differ after a round trip:\n%s", diff)
		}
	})
}
