package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/u-root/u-root/pkg/cpio"
)

func fuzzSeedsArchives(f *testing.F) {
	f.Add(cpioOf(f, cpio.Directory("d", 0o755), cpio.StaticFile("d/f", "hello", 0o644), cpio.Symlink("l", "d/f")))
	f.Add(cpioOf(f, cpio.Record{Info: cpio.Info{Ino: 3, Mode: 0o100644, NLink: 2, Name: "a"}},
		cpio.Record{Info: cpio.Info{Ino: 3, Mode: 0o100644, NLink: 2, Name: "b"}}))
	f.Add(cpioOf(f, cpio.CharDev("dev/null", 0o666, 1, 3)))
	f.Add(tarOf(f, tar.Header{Name: "x/", Typeflag: tar.TypeDir, Mode: 0o755}, tar.Header{Name: "x/y", Typeflag: tar.TypeReg, Linkname: "data"},
		tar.Header{Name: "x/z", Typeflag: tar.TypeLink, Linkname: "x/y"}))
	f.Add([]byte("070701"))
	f.Add([]byte{0x1f, 0x8b})
}

// recordsOf reads every record of a newc stream: names, modes, data.
func recordsOf(data []byte) ([]CPIOHeader, [][]byte, error) {
	r := NewCPIOReader(bytes.NewReader(data))
	var hs []CPIOHeader
	var bodies [][]byte
	for {
		h, err := r.Next()
		if err == io.EOF {
			return hs, bodies, nil
		}
		if err != nil {
			return hs, bodies, err
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return hs, bodies, err
		}
		hs = append(hs, *h)
		bodies = append(bodies, b)
	}
}

// FuzzCPIOReader: any input either fails with ErrCPIO or reads as records; records
// that read fine, written again with u-root's writer, read back the same.
func FuzzCPIOReader(f *testing.F) {
	fuzzSeedsArchives(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		hs, bodies, err := recordsOf(data)
		if err != nil {
			if !errors.Is(err, ErrCPIO) {
				t.Fatalf("error %v does not wrap ErrCPIO", err)
			}
			return
		}
		var recs []cpio.Record
		for i, h := range hs {
			if h.Name == cpioTrailer || h.Name == "" || path.Clean(strings.TrimLeft(h.Name, "/")) != h.Name {
				return // u-root's writer normalises names: no round trip for these
			}
			recs = append(recs, cpio.Record{ReaderAt: bytes.NewReader(bodies[i]), Info: cpio.Info{
				Ino: uint64(h.Ino), Mode: uint64(h.Mode), UID: uint64(h.UID), GID: uint64(h.GID), NLink: uint64(h.NLink),
				MTime: uint64(h.MTime), FileSize: uint64(h.Size), Major: uint64(h.DevMajor), Minor: uint64(h.DevMinor),
				Rmajor: uint64(h.RDevMajor), Rminor: uint64(h.RDevMinor), Name: h.Name}})
		}
		seen := map[string]bool{}
		for _, r := range recs {
			if seen[r.Name] {
				return // the dedup writer drops repeated names
			}
			seen[r.Name] = true
		}
		again := cpioOf(t, recs...)
		hs2, bodies2, err := recordsOf(again)
		if err != nil {
			t.Fatalf("re-read: %v", err)
		}
		for i := range hs {
			hs[i].Check = 0 // the writer zeroes the checksum
		}
		if diff := cmp.Diff(hs, hs2); diff != "" {
			t.Fatalf("headers differ after a round trip (-first +second):\n%s", diff)
		}
		if diff := cmp.Diff(bodies, bodies2); diff != "" {
			t.Fatalf("data differs after a round trip:\n%s", diff)
		}
	})
}

// FuzzUnpack: any input unpacks or fails; nothing is ever created outside the target.
func FuzzUnpack(f *testing.F) {
	fuzzSeedsArchives(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "root")
		_, _ = Unpack(context.Background(), bytes.NewReader(data), dir, UnpackOptions{})
		makeRemovable(dir)
		ents, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.Name() != "root" {
				t.Fatalf("Unpack created %q outside its directory", e.Name())
			}
		}
	})
}

// FuzzMatchGlob: never panics; a valid pattern also validates against any name; for
// names and patterns without "/" and "!" it agrees with path.Match.
func FuzzMatchGlob(f *testing.F) {
	for _, s := range []string{"./usr/share/man*", "[a-c]?x", "\\*", "[]a]", "[^x]*", "*a*b*c"} {
		f.Add(s, "abc")
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		got, err := matchGlob(pattern, name)
		_, err2 := matchGlob(pattern, "")
		if (err == nil) != (err2 == nil) {
			t.Fatalf("matchGlob(%q): error %v for %q but %v for \"\"", pattern, err, name, err2)
		}
		if err != nil || strings.ContainsAny(pattern+name, "/!^-]\\") {
			return
		}
		want, perr := path.Match(pattern, name)
		if perr == nil && got != want {
			t.Fatalf("matchGlob(%q, %q) = %v, path.Match says %v", pattern, name, got, want)
		}
	})
}

// makeRemovable gives the owner full access to every directory of a tree an archive
// made (a directory unpacked with mode 0644 cannot be emptied by its non-root owner).
func makeRemovable(dir string) {
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if d != nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
}
