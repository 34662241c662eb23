package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// extractWith unpacks archive into dir with a reader other than ours, or with ours.
func extractWith(t *testing.T, reader, archive, dir string, o PackOptions) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	switch reader {
	case "provkit":
		f, err := os.Open(archive)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := Unpack(context.Background(), f, dir, UnpackOptions{}); err != nil {
			t.Fatalf("Unpack(%s): %v", archive, err)
		}
	case "gnu-cpio":
		plain := archive
		switch o.Compression {
		case Gzip:
			plain = archive + ".raw"
			decompressTo(t, plain, "gzip", "-dc", archive)
		case Zstd:
			plain = archive + ".raw"
			decompressTo(t, plain, "zstd", "-dcq", archive)
		}
		run(t, dir, plain, "cpio", "-idm", "--quiet", "--no-absolute-filenames")
	case "gnu-tar":
		run(t, dir, "", "tar", "-xpf", archive, "--xattrs", "--xattrs-include=*", "--numeric-owner")
	case "unsquashfs":
		if err := os.Remove(dir); err != nil {
			t.Fatal(err)
		}
		run(t, "", "", "unsquashfs", "-n", "-d", dir, archive)
	default:
		t.Fatalf("unknown reader %q", reader)
	}
}

func decompressTo(t *testing.T, out string, prog string, args ...string) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(prog, args...)
	cmd.Stdout = f
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v: %s", prog, args, err, stderr.String())
	}
}

func needPrograms(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("needs %s (package in scripts/debian-packages.txt)", n)
		}
	}
}

// TestPackReadBack packs a tree in every format and reads it back with the peer tool
// (GNU cpio, GNU tar, unsquashfs) and with Unpack, and compares the trees.
func TestPackReadBack(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src)
	want := snapshot(t, src, snapOpts{mtimes: true, xattrs: true})

	tests := []struct {
		name    string
		opts    PackOptions
		readers []string
		tools   []string
	}{
		{"cpio", PackOptions{Format: CPIO, Compression: None}, []string{"gnu-cpio", "provkit"}, []string{"cpio"}},
		{"cpio.gz", PackOptions{Format: CPIO, Compression: Gzip}, []string{"gnu-cpio", "provkit"}, []string{"cpio", "gzip"}},
		{"cpio.zst", PackOptions{Format: CPIO, Compression: Zstd, Level: 19}, []string{"gnu-cpio", "provkit"}, []string{"cpio", "zstd"}},
		{"tar", PackOptions{Format: Tar, Compression: None}, []string{"gnu-tar", "provkit"}, []string{"tar"}},
		{"tar.gz", PackOptions{Format: Tar, Compression: Gzip, Level: 1}, []string{"gnu-tar", "provkit"}, []string{"tar", "gzip"}},
		{"tar.zst", PackOptions{Format: Tar, Compression: Zstd}, []string{"gnu-tar", "provkit"}, []string{"tar", "zstd"}},
		{"squashfs-gzip", PackOptions{Format: Squashfs, Compression: Gzip}, []string{"unsquashfs"}, []string{"mksquashfs", "unsquashfs"}},
		{"squashfs-zstd", PackOptions{Format: Squashfs, Compression: Zstd}, []string{"unsquashfs"}, []string{"mksquashfs", "unsquashfs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			needPrograms(t, tt.tools...)
			dir := t.TempDir()
			archive := filepath.Join(dir, "image")
			st, err := PackFile(context.Background(), src, archive, tt.opts)
			if err != nil {
				t.Fatalf("PackFile: %v", err)
			}
			if st.Written == 0 || st.Entries < int64(len(want)) {
				t.Errorf("PackFile stats = %+v, want output and at least %d entries", st, len(want))
			}
			for _, r := range tt.readers {
				t.Run(r, func(t *testing.T) {
					out := filepath.Join(dir, "out-"+r)
					extractWith(t, r, archive, out, tt.opts)
					got := snapshot(t, out, snapOpts{mtimes: true, xattrs: true})
					want := want
					if r == "unsquashfs" && os.Geteuid() != 0 {
						// unsquashfs drops set-id bits when not run as root.
						want, got = noSetID(want), noSetID(got)
					}
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("tree read back by %s differs (-packed +read):\n%s", r, diff)
					}
				})
			}
		})
	}
}

// TestPackDeterministic packs two copies of a tree, made at different times (so with
// different mtimes and inode numbers), and expects identical bytes.
func TestPackDeterministic(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	makeTree(t, a)
	makeTree(t, b) // other inode numbers; and one file gets another mtime:
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(b, "etc/hostname"), old, old); err != nil {
		t.Fatal(err)
	}
	for _, f := range []Format{CPIO, Tar} {
		for _, c := range []Compression{Gzip, Zstd, None} {
			t.Run(string(f)+"-"+string(c), func(t *testing.T) {
				opts := PackOptions{Format: f, Compression: c, Deterministic: true, MTime: time.Unix(1700000000, 0)}
				var ba, bb bytes.Buffer
				if _, err := Pack(context.Background(), a, &ba, opts); err != nil {
					t.Fatal(err)
				}
				if _, err := Pack(context.Background(), b, &bb, opts); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(ba.Bytes(), bb.Bytes()) {
					t.Errorf("Pack(%s, %s) of two copies of a tree: %d and %d bytes, not identical", f, c, ba.Len(), bb.Len())
				}
				// And all times are the fixed one.
				out := t.TempDir()
				if _, err := Unpack(context.Background(), &ba, out, UnpackOptions{}); err != nil {
					t.Fatal(err)
				}
				for _, s := range snapshot(t, out, snapOpts{mtimes: true}) {
					if s.MTime != 0 && s.MTime != 1700000000 {
						t.Errorf("%s: mtime %d, want 1700000000", s.Path, s.MTime)
					}
				}
			})
		}
	}
	t.Run("squashfs", func(t *testing.T) {
		needPrograms(t, "mksquashfs")
		opts := PackOptions{Format: Squashfs, Compression: Gzip, Deterministic: true}
		pa, pb := filepath.Join(t.TempDir(), "a.sfs"), filepath.Join(t.TempDir(), "b.sfs")
		if _, err := PackFile(context.Background(), a, pa, opts); err != nil {
			t.Fatal(err)
		}
		if _, err := PackFile(context.Background(), b, pb, opts); err != nil {
			t.Fatal(err)
		}
		da, _ := os.ReadFile(pa)
		db, _ := os.ReadFile(pb)
		if !bytes.Equal(da, db) {
			t.Errorf("squashfs of two copies: %d and %d bytes, not identical", len(da), len(db))
		}
	})
}

// TestPackExclude checks xCAT exlist semantics in every format.
func TestPackExclude(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src)
	exclude := []string{"./usr/share/man*", "./usr/share/locale*", "+./usr/share/locale/C*", "./var/big.bin", "# a comment", ""}
	// What stays: everything not matched, what "+" puts back, and the directories
	// above a put-back file (made by the reader). With "+" patterns squashfs also keeps
	// the excluded directories themselves (empty): it cannot exclude a directory but
	// keep part of it.
	keep := func(s fileSnap, squashfs bool) bool {
		rel := s.Path
		switch {
		case rel == "usr/share/locale":
			return true
		case squashfs && s.Type == "dir":
			return true
		case strings.HasPrefix(rel, "usr/share/man"), rel == "var/big.bin":
			return false
		case strings.HasPrefix(rel, "usr/share/locale/"):
			return strings.HasPrefix(rel, "usr/share/locale/C")
		}
		return true
	}
	full := snapshot(t, src, snapOpts{})
	for _, tt := range []struct {
		opts   PackOptions
		reader string
	}{
		{PackOptions{Format: CPIO}, "provkit"},
		{PackOptions{Format: Tar}, "provkit"},
		{PackOptions{Format: Squashfs}, "unsquashfs"},
	} {
		t.Run(string(tt.opts.Format), func(t *testing.T) {
			if tt.opts.Format == Squashfs {
				needPrograms(t, "mksquashfs", "unsquashfs")
			}
			var want []fileSnap
			for _, s := range full {
				if keep(s, tt.opts.Format == Squashfs) {
					want = append(want, s)
				}
			}
			tt.opts.Exclude = exclude
			dir := t.TempDir()
			archive := filepath.Join(dir, "img")
			if _, err := PackFile(context.Background(), src, archive, tt.opts); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out")
			extractWith(t, tt.reader, archive, out, tt.opts)
			// Directories kept only for a put-back file are made by the reader with its
			// own mode; compare paths and types there.
			got := snapshot(t, out, snapOpts{})
			norm := func(s []fileSnap) []fileSnap {
				var o []fileSnap
				for _, x := range s {
					if x.Path == "usr/share/locale" {
						x.Perm, x.UID, x.GID = "", 0, 0
					}
					o = append(o, x)
				}
				return o
			}
			if tt.reader == "unsquashfs" && os.Geteuid() != 0 {
				want, got = noSetID(want), noSetID(got)
			}
			if diff := cmp.Diff(norm(want), norm(got)); diff != "" {
				t.Errorf("excluded tree differs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPackBadOptions(t *testing.T) {
	src := t.TempDir()
	tests := []struct {
		name string
		opts PackOptions
		want error
	}{
		{"unknown format", PackOptions{Format: "zip"}, ErrFormat},
		{"xz write", PackOptions{Format: CPIO, Compression: Xz}, ErrFormat},
		{"squashfs none", PackOptions{Format: Squashfs, Compression: None}, ErrFormat},
		{"squashfs to stream", PackOptions{Format: Squashfs}, ErrFormat},
		{"bad exclude", PackOptions{Exclude: []string{"./usr/[abc"}}, errBadPattern},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			_, err := Pack(context.Background(), src, &buf, tt.opts)
			if !errors.Is(err, tt.want) {
				t.Errorf("Pack(%+v) = %v, want %v", tt.opts, err, tt.want)
			}
			if buf.Len() != 0 {
				t.Errorf("Pack(%+v) wrote %d bytes on error", tt.opts, buf.Len())
			}
		})
	}
	if _, err := Pack(context.Background(), filepath.Join(src, "missing"), &bytes.Buffer{}, PackOptions{}); err == nil ||
		!strings.Contains(err.Error(), "missing") {
		t.Errorf("Pack(missing root) = %v, want an error naming it", err)
	}
	if _, err := PackFile(context.Background(), filepath.Join(src, "missing"), filepath.Join(src, "x"), PackOptions{Format: NFS}); err == nil {
		t.Errorf("PackFile(nfs, missing root) = nil, want an error")
	}
}

func TestPackProgress(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src)
	var bar bytes.Buffer
	if _, err := Pack(context.Background(), src, &bytes.Buffer{}, PackOptions{Progress: &bar}); err != nil {
		t.Fatal(err)
	}
	if s := bar.String(); !strings.Contains(s, "100%") || !strings.HasSuffix(s, "\n") {
		t.Errorf("progress output = %q, want a bar that ends at 100%% and a newline", s)
	}
	if TerminalProgress(nil) != nil {
		t.Errorf("TerminalProgress(nil) != nil")
	}
	f, err := os.Create(filepath.Join(src, "notatty"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if TerminalProgress(f) != nil {
		t.Errorf("TerminalProgress(regular file) != nil, want nil (quiet in scripts)")
	}
}

func TestPackCancel(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Pack(ctx, src, &bytes.Buffer{}, PackOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Pack(cancelled) = %v, want context.Canceled", err)
	}
}

// noSetID clears set-id bits from a snapshot.
func noSetID(s []fileSnap) []fileSnap {
	out := make([]fileSnap, len(s))
	for i, x := range s {
		if m, err := strconv.ParseUint(x.Perm, 8, 32); err == nil {
			x.Perm = fmt.Sprintf("%04o", m&^0o6000)
		}
		out[i] = x
	}
	return out
}
