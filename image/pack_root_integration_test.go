//go:build integration

package image

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/provkit/provkit/internal/testenv"
)

// makeRootTree adds what only root can make: other owners, device nodes, a setuid file
// owned by someone else, privileged xattrs.
func makeRootTree(t *testing.T, dir string) {
	t.Helper()
	makeTree(t, dir)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "dev"), 0o755))
	must(unix.Mknod(filepath.Join(dir, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(filepath.Join(dir, "dev/console"), unix.S_IFCHR|0o600, int(unix.Mkdev(5, 1))))
	must(unix.Mknod(filepath.Join(dir, "dev/sda1"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 1))))
	must(unix.Mknod(filepath.Join(dir, "dev/big"), unix.S_IFCHR|0o600, int(unix.Mkdev(300, 70000))))
	must(unix.Chmod(filepath.Join(dir, "dev/null"), 0o666)) // past the umask
	must(os.Lchown(filepath.Join(dir, "dev/sda1"), 0, 6))
	must(os.Chown(filepath.Join(dir, "etc/shadow"), 0, 42))
	must(os.Chown(filepath.Join(dir, "var/empty"), 1234, 5678))
	must(os.Lchown(filepath.Join(dir, "bin/rel-link"), 1000, 1000))
	p := filepath.Join(dir, "bin/setuid")
	must(os.Chown(p, 1000, 100))
	must(unix.Chmod(p, 0o4755)) // chown cleared it
	must(unix.Lsetxattr(p, "user.provkit", []byte("yes"), 0))
	must(unix.Lsetxattr(filepath.Join(dir, "etc"), "trusted.provkit", []byte("dir-attr"), 0))
	must(unix.Lsetxattr(filepath.Join(dir, "etc/hostname"), "trusted.overlay.opaque", []byte("y"), 0))
}

// TestRootPackOwnersDevicesXattrs packs a tree with foreign owners, device nodes and
// xattrs, and reads it back with the peers and with Unpack. cpio cannot hold xattrs, so
// they are compared for tar and squashfs only.
func TestRootPackOwnersDevicesXattrs(t *testing.T) {
	testenv.Require(t, testenv.Root(), testenv.Program("cpio", "tar", "mksquashfs", "unsquashfs", "zstd"))
	src := t.TempDir()
	makeRootTree(t, src)
	for _, tt := range []struct {
		opts    PackOptions
		readers []string
		xattrs  bool
	}{
		{PackOptions{Format: CPIO, Compression: Gzip}, []string{"gnu-cpio", "provkit"}, false},
		{PackOptions{Format: CPIO, Compression: Zstd}, []string{"provkit"}, false},
		{PackOptions{Format: Tar, Compression: Gzip}, []string{"gnu-tar", "provkit"}, true},
		{PackOptions{Format: Squashfs, Compression: Zstd}, []string{"unsquashfs"}, true},
	} {
		name := string(tt.opts.Format) + "-" + string(tt.opts.Compression)
		t.Run(name, func(t *testing.T) {
			want := snapshot(t, src, snapOpts{mtimes: true, xattrs: tt.xattrs})
			dir := t.TempDir()
			archive := filepath.Join(dir, "img")
			if _, err := PackFile(context.Background(), src, archive, tt.opts); err != nil {
				t.Fatal(err)
			}
			for _, r := range tt.readers {
				t.Run(r, func(t *testing.T) {
					out := filepath.Join(dir, "out-"+r)
					extractWith(t, r, archive, out, tt.opts)
					got := snapshot(t, out, snapOpts{mtimes: true, xattrs: tt.xattrs})
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("tree read back by %s differs (-packed +read):\n%s", r, diff)
					}
				})
			}
		})
	}
}
