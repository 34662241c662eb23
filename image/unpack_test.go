package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/u-root/u-root/pkg/cpio"
)

// tarOf builds a tar stream from headers; a regular file's data is its Linkname field
// when Typeflag is TypeReg (to keep the table short).
func tarOf(t testing.TB, hdrs ...tar.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hdrs {
		data := ""
		if h.Typeflag == tar.TypeReg {
			data, h.Linkname = h.Linkname, ""
			h.Size = int64(len(data))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// cpioOf builds a newc stream with u-root's writer.
func cpioOf(t testing.TB, recs ...cpio.Record) []byte {
	t.Helper()
	var b bytes.Buffer
	w := cpio.Newc.Writer(&b)
	for _, r := range recs {
		if err := w.WriteRecord(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// listTree returns "path type" lines of a tree, for short comparisons.
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	for _, s := range snapshot(t, root, snapOpts{}) {
		l := s.Path + " " + s.Type
		if s.Link != "" {
			l += " -> " + s.Link
		}
		out = append(out, l)
	}
	return out
}

// TestUnpackStaysInside unpacks hostile archives into a directory inside a parent and
// checks that nothing appears in the parent, and what appears inside.
func TestUnpackStaysInside(t *testing.T) {
	tests := []struct {
		name    string
		archive func(t testing.TB) []byte
		wantErr error
		want    []string
	}{
		{
			name: "dotdot",
			archive: func(t testing.TB) []byte {
				return tarOf(t, tar.Header{Name: "../evil", Typeflag: tar.TypeReg, Linkname: "x"})
			},
			wantErr: ErrUnsafePath,
		},
		{
			name: "absolute symlink then through it",
			archive: func(t testing.TB) []byte {
				return tarOf(t,
					tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/"},
					tar.Header{Name: "link/escaped", Typeflag: tar.TypeReg, Linkname: "x"})
			},
			want: []string{"escaped file", "link symlink -> /"},
		},
		{
			name: "relative symlink climbing out",
			archive: func(t testing.TB) []byte {
				return tarOf(t,
					tar.Header{Name: "a/up", Typeflag: tar.TypeSymlink, Linkname: "../../../.."},
					tar.Header{Name: "a/up/escaped", Typeflag: tar.TypeReg, Linkname: "x"})
			},
			want: []string{"a dir", "a/up symlink -> ../../../..", "escaped file"},
		},
		{
			name: "merged /usr: lib is a symlink to usr/lib",
			archive: func(t testing.TB) []byte {
				return tarOf(t,
					tar.Header{Name: "usr/lib/", Typeflag: tar.TypeDir, Mode: 0o755},
					tar.Header{Name: "lib", Typeflag: tar.TypeSymlink, Linkname: "usr/lib"},
					tar.Header{Name: "lib/modules/x.ko", Typeflag: tar.TypeReg, Linkname: "ko"})
			},
			want: []string{"lib symlink -> usr/lib", "usr dir", "usr/lib dir", "usr/lib/modules dir", "usr/lib/modules/x.ko file"},
		},
		{
			name: "hard link out",
			archive: func(t testing.TB) []byte {
				return tarOf(t, tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"})
			},
			wantErr: ErrUnsafePath,
		},
		{
			name: "hard link to a missing file",
			archive: func(t testing.TB) []byte {
				return tarOf(t, tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "nothere"})
			},
			wantErr: os.ErrNotExist,
		},
		{
			name: "hard link before its target (flattened OCI layers)",
			archive: func(t testing.TB) []byte {
				return tarOf(t,
					tar.Header{Name: "bin/b", Typeflag: tar.TypeLink, Linkname: "bin/a"},
					tar.Header{Name: "bin/a", Typeflag: tar.TypeReg, Linkname: "data"})
			},
			want: []string{"bin dir", "bin/a file", "bin/b file"},
		},
		{
			name: "cpio absolute name",
			archive: func(t testing.TB) []byte {
				return cpioOf(t, cpio.StaticFile("/etc/abs", "x", 0o644))
			},
			want: []string{"etc dir", "etc/abs file"},
		},
		{
			name: "file replaces symlink to a directory",
			archive: func(t testing.TB) []byte {
				return tarOf(t,
					tar.Header{Name: "d", Typeflag: tar.TypeSymlink, Linkname: "/"},
					tar.Header{Name: "d", Typeflag: tar.TypeReg, Linkname: "now a file"})
			},
			want: []string{"d file"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "root")
			_, err := Unpack(context.Background(), bytes.NewReader(tt.archive(t)), dir, UnpackOptions{})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Unpack = %v, want %v", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("Unpack = %v", err)
			}
			ents, _ := os.ReadDir(parent)
			if len(ents) != 1 || ents[0].Name() != "root" {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Fatalf("parent holds %v, want only root", names)
			}
			if tt.wantErr == nil {
				if diff := cmp.Diff(tt.want, listTree(t, dir)); diff != "" {
					t.Errorf("unpacked tree (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestUnpackCPIOHardlinkConventions: the kernel's gen_init_cpio and GNU cpio put a
// hard-linked file's data on the last link; u-root and provkit on the first.
func TestUnpackCPIOHardlinkConventions(t *testing.T) {
	info := func(name string, size uint64) cpio.Info {
		return cpio.Info{Ino: 7, Mode: 0o100644, NLink: 3, FileSize: size, Name: name}
	}
	data := cpio.StaticRecord([]byte("shared"), info("", 6))
	for _, tt := range []struct {
		name string
		recs []cpio.Record
	}{
		{"data on first", []cpio.Record{
			{ReaderAt: data.ReaderAt, Info: info("a", 6)}, {Info: info("b", 0)}, {Info: info("c", 0)}}},
		{"data on last", []cpio.Record{
			{Info: info("a", 0)}, {Info: info("b", 0)}, {ReaderAt: data.ReaderAt, Info: info("c", 6)}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Unpack(context.Background(), bytes.NewReader(cpioOf(t, tt.recs...)), dir, UnpackOptions{}); err != nil {
				t.Fatal(err)
			}
			got := snapshot(t, dir, snapOpts{})
			for _, s := range got {
				if s.Group != "a" || s.Size != 6 {
					t.Errorf("%s: size %d group %q, want 6 bytes linked with a", s.Path, s.Size, s.Group)
				}
			}
			if len(got) != 3 {
				t.Errorf("got %d entries, want 3", len(got))
			}
		})
	}
}

func TestUnpackErrors(t *testing.T) {
	good := cpioOf(t, cpio.StaticFile("f", "data", 0o644))
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrFormat},
		{"not an archive", []byte(strings.Repeat("hello world ", 100)), ErrFormat},
		{"truncated cpio", good[:len(good)-40], ErrCPIO},
		{"truncated data", good[:115], ErrCPIO},
		{"bad hex", append([]byte("070701zzzzzzzz"), good[14:]...), ErrCPIO},
		{"huge name", append(append([]byte{}, good[:94]...), append([]byte("FFFFFFFF"), good[102:]...)...), ErrCPIO},
		{"junk after trailer", append(append([]byte{}, good...), "junk"...), ErrCPIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Unpack(context.Background(), bytes.NewReader(tt.in), t.TempDir(), UnpackOptions{})
			if !errors.Is(err, tt.want) {
				t.Errorf("Unpack(%s) = %v, want %v", tt.name, err, tt.want)
			}
		})
	}
}

// TestCPIOReaderConcatenated reads two archives back to back with NUL padding between,
// the way an initramfs is built from pieces.
func TestCPIOReaderConcatenated(t *testing.T) {
	a := cpioOf(t, cpio.StaticFile("a", "1", 0o644))
	b := cpioOf(t, cpio.Directory("d", 0o755), cpio.StaticFile("d/b", "22", 0o600))
	in := append(append(append([]byte{}, a...), make([]byte, 512-len(a)%512)...), b...)
	in = append(in, make([]byte, 100)...)
	r := NewCPIOReader(bytes.NewReader(in))
	var got []string
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(r)
		got = append(got, h.Name+"="+string(data))
	}
	if diff := cmp.Diff([]string{"a=1", "d=", "d/b=22"}, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		head []byte
		c    Compression
		f    Format
	}{
		{[]byte{0x1f, 0x8b, 8, 0, 0, 0}, Gzip, ""},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0}, Zstd, ""},
		{[]byte{0xfd, '7', 'z', 'X', 'Z', 0}, Xz, ""},
		{[]byte("070701000000"), None, CPIO},
		{[]byte("hsqs\x00\x00"), None, Squashfs},
		{tarOf(t, tar.Header{Name: "x", Typeflag: tar.TypeDir}), None, Tar},
		{[]byte("plain"), None, ""},
	}
	for _, tt := range tests {
		if c := DetectCompression(tt.head); c != tt.c {
			t.Errorf("DetectCompression(%q) = %q, want %q", tt.head[:min(6, len(tt.head))], c, tt.c)
		}
		if f := DetectFormat(tt.head); f != tt.f {
			t.Errorf("DetectFormat(%q) = %q, want %q", tt.head[:min(6, len(tt.head))], f, tt.f)
		}
	}
}

func TestMatchGlob(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
		err           bool
	}{
		{"./usr/share/man*", "./usr/share/man", true, false},
		{"./usr/share/man*", "./usr/share/man/man1/ls.1.gz", true, false},
		{"./usr/share/man*", "./usr/share/mandb", true, false},
		{"./usr/share/man*", "./usr/share/doc", false, false},
		{"./var/cache/*", "./var/cache", false, false},
		{"./var/cache/*", "./var/cache/apt/x", true, false},
		{"./etc/?ostname", "./etc/hostname", true, false},
		{"./lib/[a-c]*", "./lib/bz", true, false},
		{"./lib/[!a-c]*", "./lib/bz", false, false},
		{"./lib/[^a-c]*", "./lib/z", true, false},
		{"./a\\*b", "./a*b", true, false},
		{"./a\\*b", "./axb", false, false},
		{"*.pyc", "./usr/lib/x.pyc", true, false},
		{"./[]x]", "./]", true, false},
		{"./[abc", "./a", false, true},
		{"./x\\", "./x", false, true},
	}
	for _, tt := range tests {
		got, err := matchGlob(tt.pattern, tt.name)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("matchGlob(%q, %q) = %v, %v; want %v, error %v", tt.pattern, tt.name, got, err, tt.want, tt.err)
		}
	}
}
