package image

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fileSnap is what the round-trip tests compare of each entry of a tree.
type fileSnap struct {
	Path   string
	Type   string
	Perm   string // permission and set-id bits, octal
	UID    uint32
	GID    uint32
	Size   int64
	SHA    string // of a regular file's data
	Link   string // symlink target
	Rdev   string // major:minor of a device node
	Group  string // first path (in sorted order) of the hard-link group, if nlink > 1
	MTime  int64  // only recorded when asked
	Xattrs string // name=value;... (user.* and trusted.* only)
}

type snapOpts struct {
	mtimes bool // record mtimes of non-directories
	xattrs bool
	skip   func(rel string) bool
}

// snapshot walks root and describes each entry but the root itself.
func snapshot(t *testing.T, root string, o snapOpts) []fileSnap {
	t.Helper()
	var out []fileSnap
	groups := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." || (o.skip != nil && o.skip(rel)) {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		s := fileSnap{Path: rel, Perm: fmt.Sprintf("%04o", st.Mode&0o7777), UID: st.Uid, GID: st.Gid}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			s.Type = "dir"
		case unix.S_IFREG:
			s.Type = "file"
			s.Size = st.Size
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			s.SHA = hex.EncodeToString(h[:8])
			if st.Nlink > 1 {
				if g, ok := groups[st.Ino]; ok {
					s.Group = g
				} else {
					groups[st.Ino] = rel
					s.Group = rel
				}
			}
		case unix.S_IFLNK:
			s.Type = "symlink"
			s.Link, _ = os.Readlink(p)
			s.Perm = ""
		case unix.S_IFCHR:
			s.Type = "char"
			s.Rdev = fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case unix.S_IFBLK:
			s.Type = "block"
			s.Rdev = fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case unix.S_IFIFO:
			s.Type = "fifo"
		case unix.S_IFSOCK:
			s.Type = "socket"
		}
		if o.mtimes && s.Type != "dir" && s.Type != "symlink" {
			s.MTime = st.Mtim.Sec
		}
		if o.xattrs {
			xs, err := listXattrs(p)
			if err != nil {
				return err
			}
			var kv []string
			for _, x := range xs {
				if strings.HasPrefix(x.name, "user.") || strings.HasPrefix(x.name, "trusted.") {
					kv = append(kv, x.name+"="+string(x.value))
				}
			}
			s.Xattrs = strings.Join(kv, ";")
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	slices.SortFunc(out, func(a, b fileSnap) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// makeTree builds the tree the pack tests use: every file type an unprivileged user can
// make, odd names, modes, a hard-link group, an empty file, a large file.
func makeTree(t *testing.T, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin", "etc/conf.d", "usr/share/man/man1", "usr/share/locale/C.UTF-8", "usr/share/locale/de", "var/empty", "tmp"} {
		must(os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	// Modes are raw Linux bits (0o4755 is setuid): os.Chmod would drop 0o7000.
	write := func(rel, data string, perm uint32) {
		t.Helper()
		p := filepath.Join(dir, rel)
		must(os.WriteFile(p, []byte(data), 0o600))
		must(unix.Chmod(p, perm))
	}
	write("bin/tool", "#!/bin/sh\necho hi\n", 0o755)
	write("etc/hostname", "node\n", 0o644)
	write("etc/shadow", "root:*:1::::::\n", 0o640)
	write("etc/conf.d/empty", "", 0o600)
	write("usr/share/man/man1/tool.1", "manual", 0o644)
	write("usr/share/locale/C.UTF-8/msg", "c", 0o644)
	write("usr/share/locale/de/msg", "de", 0o644)
	write("with space & ünïcode", "odd name", 0o644)
	write("bin/setuid", "suid", 0o4755)
	big := make([]byte, 3<<20+7) // not a multiple of 4: exercises cpio padding
	for i := range big {
		big[i] = byte(i * 7 % 251)
	}
	must(os.WriteFile(filepath.Join(dir, "var/big.bin"), big, 0o644))
	must(os.Link(filepath.Join(dir, "bin/tool"), filepath.Join(dir, "bin/tool-link")))
	must(os.Link(filepath.Join(dir, "bin/tool"), filepath.Join(dir, "usr/tool-link2")))
	must(os.Symlink("tool", filepath.Join(dir, "bin/rel-link")))
	must(os.Symlink("/etc/hostname", filepath.Join(dir, "etc/abs-link")))
	must(os.Symlink("../nowhere", filepath.Join(dir, "dangling")))
	must(unix.Mkfifo(filepath.Join(dir, "tmp/fifo"), 0o620))
	must(unix.Chmod(filepath.Join(dir, "tmp"), 0o1777))
	must(unix.Chmod(filepath.Join(dir, "var/empty"), 0o700))
	must(unix.Chmod(filepath.Join(dir, "bin"), 0o2755))
}

// run runs a program and fails the test with its output on error.
func run(t *testing.T, dir string, stdin string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if stdin != "" {
		f, err := os.Open(stdin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.Stdin = f
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}
