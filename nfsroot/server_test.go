package nfsroot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	nfs "github.com/willscott/go-nfs"

	"github.com/provkit/provkit/cdsl"
	"github.com/provkit/provkit/nfsroot/internal/xdr"
)

func TestMountAndPerNodeViews(t *testing.T) {
	ts := startServer(t, testImage(t), t.TempDir())
	c1, root1 := mounted(t, ts, "127.0.0.1:0", root0)
	c2, root2 := mounted(t, ts, "127.0.0.2:0", root0)
	if !bytes.Equal(root1, root2) {
		t.Errorf("root handles differ between nodes: %x %x", root1, root2)
	}
	for _, tt := range []struct {
		c          *client
		root       []byte
		path, want string
	}{
		{c1, root1, "etc/hostname", "n1\n"},
		{c2, root2, "etc/hostname", "n2\n"},
		{c1, root1, "etc/ssh/ssh_host_key", "secret-of-n1\n"},
		{c2, root2, "etc/ssh/ssh_host_key", "secret-of-n2\n"},
		{c1, root1, "cdsl.local/etc/hostname", "n1\n"},
		{c1, root1, "cluster/cdsl/n1/etc/hostname", "n1\n"},
		{c2, root2, "usr/bin/tool", "#!/bin/sh\necho tool\n"},
		{c1, root1, "var/lib/dpkg/status", "Package: base\n"},
	} {
		s, fh := tt.c.walk(tt.root, tt.path)
		if s != 0 {
			out, _ := exec.Command("find", ts.state).CombinedOutput()
			t.Errorf("lookup %s: %v\n%s", tt.path, s, out)
			continue
		}
		if s, got := tt.c.readAll(fh); s != 0 || got != tt.want {
			t.Errorf("read %s = %q (%v), want %q", tt.path, got, s, tt.want)
		}
	}
	// A CDSL appears as what it resolves to, not as the link.
	_, fh := c1.walk(root1, "etc/hostname")
	if _, a := c1.getattr(fh); a.typ != uint32(nfs.FileTypeRegular) {
		t.Errorf("etc/hostname has type %d, want a regular file", a.typ)
	}
	// Other nodes' trees are invisible.
	for _, p := range []string{"cluster/cdsl/n2", "cluster/cdsl/n2/etc/ssh/ssh_host_key"} {
		if s, _ := c1.walk(root1, p); s != nfs.NFSStatusNoEnt {
			t.Errorf("n1 looked up %s: status %v, want NOENT", p, s)
		}
	}
	_, tree := c1.walk(root1, "cluster/cdsl")
	for _, plus := range []bool{false, true} {
		if s, names := c1.readdirNames(tree, plus, 4096); s != 0 || !cmp.Equal(names, []string{"default", "n1"}) {
			t.Errorf("n1 lists cluster/cdsl (plus=%v) = %q, %v; want [default n1]", plus, names, s)
		}
	}
	// A plain symbolic link is served as a link.
	_, bin := c1.lookup(root1, "bin")
	if _, a := c1.getattr(bin); a.typ != uint32(nfs.FileTypeLink) {
		t.Errorf("bin type %d, want a link", a.typ)
	}
	s, d := c1.nfs(procReadlink, func(e *xdr.Encoder) { e.Opaque(bin) })
	postOp(d)
	if target := d.String(maxPath); s != 0 || target != "usr/bin" {
		t.Errorf("READLINK bin = %q, %v", target, s)
	}
	// A link cannot be used as a directory, even one pointing outside.
	_, esc := c1.lookup(root1, "escape")
	if s, _ := c1.lookup(esc, "passwd"); s != nfs.NFSStatusNotDir {
		t.Errorf("LOOKUP through the escape link: %v, want NOTDIR", s)
	}
}

func TestMountRefusals(t *testing.T) {
	ts := startServer(t, testImage(t), t.TempDir())
	for _, tt := range []struct {
		name, local, path string
		want              uint32
	}{
		{"unknown client", "127.0.0.3:0", "/images/compute", mnt3ErrAcces},
		{"outside the prefixes", "127.0.0.9:0", "/images/compute", mnt3ErrAcces},
		{"no such export", "127.0.0.1:0", "/images/other", mnt3ErrNoEnt},
		{"prefix of a name", "127.0.0.1:0", "/images/computer", mnt3ErrNoEnt},
		{"missing directory", "127.0.0.1:0", "/images/compute/nope", mnt3ErrNoEnt},
		{"a file", "127.0.0.1:0", "/images/compute/etc/motd", mnt3ErrNotDir},
		{"through a link", "127.0.0.1:0", "/images/compute/bin", mnt3ErrNotDir},
		{"dotdot", "127.0.0.1:0", "/images/compute/../../etc", mnt3ErrInval},
		{"relative", "127.0.0.1:0", "images/compute", mnt3ErrInval},
		{"another node's tree", "127.0.0.2:0", "/images/compute/cluster/cdsl/n1", mnt3ErrNoEnt},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, ts.addr, tt.local, root0)
			if st, _ := c.mount(tt.path); st != tt.want {
				t.Errorf("MNT %s from %s = %d, want %d", tt.path, tt.local, st, tt.want)
			}
		})
	}
	// Subdirectories mount, with the same handles as a lookup gives.
	c := dial(t, ts.addr, "127.0.0.1:0", root0)
	st, usr := c.mount("/images/compute/usr/")
	if st != mnt3OK {
		t.Fatalf("MNT of usr: %d", st)
	}
	_, root := c.mount("/images/compute")
	if _, viaLookup := c.lookup(root, "usr"); !bytes.Equal(viaLookup, usr) {
		t.Errorf("handle of mounted usr %x differs from LOOKUP's %x", usr, viaLookup)
	}
	// EXPORT lists the export and who may mount it (libnfs asks for it).
	r, d := c.call(progMount, 3, mntExport, nil)
	if !r.Accepted || !d.Bool() || d.String(1024) != "/images/compute" || !d.Bool() || d.String(64) != "127.0.0.0/29" {
		t.Errorf("EXPORT reply wrong: %+v", r)
	}
}

func TestClientWithoutViewCannotUseHandles(t *testing.T) {
	ts := startServer(t, testImage(t), t.TempDir())
	_, root := mounted(t, ts, "127.0.0.1:0", root0)
	for _, local := range []string{"127.0.0.3:0", "127.0.0.9:0"} {
		c := dial(t, ts.addr, local, root0)
		if s, _ := c.getattr(root); s != nfs.NFSStatusAccess {
			t.Errorf("GETATTR of a valid handle from %s: %v, want ACCES", local, s)
		}
	}
}

func TestWritableStatePerNode(t *testing.T) {
	ts := startServer(t, testImage(t), t.TempDir())
	user := xdr.Creds{Flavor: xdr.AuthSys, UID: 1000, GID: 1000}
	c1, root1 := mounted(t, ts, "127.0.0.1:0", root0)
	c2, root2 := mounted(t, ts, "127.0.0.2:0", root0)
	_, log1 := c1.walk(root1, "var/log")
	s, fh := c1.create(log1, "boot.log", createGuarded, 0o644, nil)
	if s != 0 {
		t.Fatalf("CREATE var/log/boot.log: %v", s)
	}
	if s := c1.write(fh, 0, "booted n1\n"); s != 0 {
		t.Fatalf("WRITE: %v", s)
	}
	if s := c1.write(fh, 7, "N1\n"); s != 0 {
		t.Fatalf("WRITE at 7: %v", s)
	}
	got, err := os.ReadFile(filepath.Join(ts.state, "n1/var/log/boot.log"))
	if err != nil || string(got) != "booted N1\n" {
		t.Errorf("state of n1 has %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(ts.root, "var/log/boot.log")); err == nil {
		t.Error("a node's write reached the image")
	}
	_, log2 := c2.walk(root2, "var/log")
	if s, _ := c2.lookup(log2, "boot.log"); s != nfs.NFSStatusNoEnt {
		t.Errorf("n2 sees n1's file: %v", s)
	}
	// n2's seed is the image's /var: its dpkg status is there.
	if _, err := os.ReadFile(filepath.Join(ts.state, "n2/var/lib/dpkg/status")); err != nil {
		t.Errorf("n2's /var was not seeded: %v", err)
	}
	// New objects belong to the caller; /tmp keeps its sticky bit.
	cu := dial(t, ts.addr, "127.0.0.1:0", user)
	_, tmp := cu.walk(root1, "tmp")
	if _, a := cu.getattr(tmp); a.mode != 0o1777 {
		t.Errorf("/tmp mode %o, want 1777", a.mode)
	}
	if s, _ := cu.create(tmp, "mine", createUnchecked, 0o600, nil); s != 0 {
		t.Fatalf("user CREATE in /tmp: %v", s)
	}
	s, dir := cu.mkdir(tmp, "sticky", 0o1777)
	if s != 0 {
		t.Fatalf("MKDIR: %v", s)
	}
	if _, a := cu.getattr(dir); a.mode != 0o1777 {
		t.Errorf("MKDIR with mode 1777 gave %o", a.mode)
	}
	if isRoot() {
		if uid, gid := statOwner(t, filepath.Join(ts.state, "n1/tmp/mine")); uid != 1000 || gid != 1000 {
			t.Errorf("user's file owned by %d:%d, want 1000:1000", uid, gid)
		}
	}
	// Symbolic links, renames and removal go through go-nfs.
	s, _ = cu.nfs(procSymlink, func(e *xdr.Encoder) {
		e.Opaque(tmp)
		e.String("link")
		e.Bool(false)
		e.Bool(false)
		e.Bool(false)
		e.Bool(false)
		e.Uint32(0)
		e.Uint32(0)
		e.String("/etc/shadow")
	})
	if s != 0 {
		t.Fatalf("SYMLINK: %v", s)
	}
	if target, err := os.Readlink(filepath.Join(ts.state, "n1/tmp/link")); err != nil || target != "/etc/shadow" {
		t.Errorf("link in state: %q, %v", target, err)
	}
	_, link := cu.lookup(tmp, "link")
	if s, _, _ := cu.read(link, 0, 100); s != nfs.NFSStatusInval {
		t.Errorf("READ of a link: %v, want INVAL (never followed on the server)", s)
	}
	// Only a server running as root gives the user's files to the user; otherwise they
	// belong to the server's user, and the sticky /tmp lets only root move them.
	mover := cu
	if !isRoot() {
		mover = c1
	}
	if s := mover.rename(tmp, "mine", tmp, "renamed"); s != 0 {
		t.Errorf("RENAME: %v", s)
	}
	if s := mover.remove(tmp, "renamed"); s != 0 {
		t.Errorf("REMOVE: %v", s)
	}
	if _, err := os.Lstat(filepath.Join(ts.state, "n1/tmp/renamed")); !os.IsNotExist(err) {
		t.Errorf("removed file still in state: %v", err)
	}
}

func TestReadOnlyBase(t *testing.T) {
	ts := startServer(t, testImage(t), t.TempDir())
	c, root := mounted(t, ts, "127.0.0.1:0", root0)
	_, etc := c.lookup(root, "etc")
	_, usr := c.walk(root, "usr/bin")
	_, tool := c.lookup(usr, "tool")
	_, varDir := c.lookup(root, "var")
	before := snapshotDir(t, ts.root)
	for _, tt := range []struct {
		name string
		do   func() status
		want status
	}{
		{"create", func() status { s, _ := c.create(etc, "new", createGuarded, 0o644, nil); return s }, nfs.NFSStatusROFS},
		{"write", func() status { return c.write(tool, 0, "x") }, nfs.NFSStatusROFS},
		{"mkdir", func() status { s, _ := c.mkdir(root, "newdir", 0o755); return s }, nfs.NFSStatusROFS},
		// The kernel skips the LOOKUP before mkdir and O_EXCL creates: a name that exists
		// must be EXIST (mkdir -p /var/x), even in a read-only directory.
		{"mkdir of an image directory", func() status { s, _ := c.mkdir(root, "usr", 0o755); return s }, nfs.NFSStatusExist},
		{"mkdir of a writable root", func() status { s, _ := c.mkdir(root, "var", 0o755); return s }, nfs.NFSStatusExist},
		{"exclusive create of an image file", func() status {
			s, _ := c.create(etc, "motd", createExclusive, 0, []byte("12345678"))
			return s
		}, nfs.NFSStatusExist},
		{"remove a writable root", func() status { return c.remove(root, "var") }, nfs.NFSStatusROFS},
		{"remove", func() status { return c.remove(usr, "tool") }, nfs.NFSStatusROFS},
		{"rename", func() status { return c.rename(usr, "tool", usr, "tool2") }, nfs.NFSStatusROFS},
		{"rename out of the image", func() status { return c.rename(usr, "tool", varDir, "tool") }, nfs.NFSStatusROFS},
		{"setattr", func() status {
			s, _ := c.nfs(procSetattr, func(e *xdr.Encoder) {
				e.Opaque(tool)
				e.Bool(true)
				e.Uint32(0o777)
				e.Bool(false)
				e.Bool(false)
				e.Bool(false)
				e.Uint32(0)
				e.Uint32(0)
				e.Bool(false)
			})
			return s
		}, nfs.NFSStatusROFS},
		{"link into var", func() status {
			s, _ := c.nfs(procLink, func(e *xdr.Encoder) { e.Opaque(tool); e.Opaque(varDir); e.String("tool") })
			return s
		}, nfs.NFSStatusXDev},
		{"hostname CDSL", func() status {
			_, h := c.lookup(etc, "hostname")
			return c.write(h, 0, "evil")
		}, nfs.NFSStatusROFS},
	} {
		if got := tt.do(); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	if diff := cmp.Diff(before, snapshotDir(t, ts.root)); diff != "" {
		t.Errorf("the image changed (-before +after):\n%s", diff)
	}
}

func snapshotDir(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		desc := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			desc += " " + string(b)
		}
		out[rel] = desc
		return nil
	})
	return out
}

func TestForgedAndStaleHandles(t *testing.T) {
	ts := startServer(t, testImage(t), t.TempDir())
	c1, root1 := mounted(t, ts, "127.0.0.1:0", root0)
	c2, root2 := mounted(t, ts, "127.0.0.2:0", root0)
	_, key2 := c2.walk(root2, "cluster/cdsl/n2/etc/ssh/ssh_host_key")
	_, tmp2 := c2.lookup(root2, "tmp")
	_, only2 := c2.create(tmp2, "only-n2", createGuarded, 0o644, nil)
	c2.write(only2, 0, "n2 data")
	h := func(export uint32, id uint64) []byte { return handle{export: export, id: id}.encode() }
	exp := binaryExport(root1)
	for _, tt := range []struct {
		name string
		fh   []byte
		want status
	}{
		{"empty", nil, nfs.NFSStatusBadHandle},
		{"garbage", []byte("not a handle at all"), nfs.NFSStatusBadHandle},
		{"wrong version", append([]byte{9}, root1[1:]...), nfs.NFSStatusBadHandle},
		{"64 bytes", bytes.Repeat([]byte{1}, 64), nfs.NFSStatusBadHandle},
		{"unknown export", h(exp+1, 1), nfs.NFSStatusStale},
		{"unknown object", h(exp, 0x1234567890), nfs.NFSStatusStale},
		{"another node's tree", key2, nfs.NFSStatusStale},
		{"another node's private file", only2, nfs.NFSStatusStale},
	} {
		if s, _ := c1.getattr(tt.fh); s != tt.want {
			t.Errorf("%s: GETATTR = %v, want %v", tt.name, s, tt.want)
		}
		if s, _, _ := c1.read(tt.fh, 0, 100); s != tt.want {
			t.Errorf("%s: READ = %v, want %v", tt.name, s, tt.want)
		}
		if s := c1.write(tt.fh, 0, "x"); s != tt.want {
			t.Errorf("%s: WRITE = %v, want %v", tt.name, s, tt.want)
		}
	}
	// n2's own view still works.
	if s, got := c2.readAll(only2); s != 0 || got != "n2 data" {
		t.Errorf("n2 reads its file: %q, %v", got, s)
	}
	// A removed file's handle is stale.
	if s := c2.remove(tmp2, "only-n2"); s != 0 {
		t.Fatal(s)
	}
	if s, _ := c2.getattr(only2); s != nfs.NFSStatusStale {
		t.Errorf("GETATTR of a removed file: %v, want STALE", s)
	}
}

func binaryExport(fh []byte) uint32 {
	h, _ := decodeHandle(fh)
	return h.export
}

func TestHandlesSurviveRestart(t *testing.T) {
	root, state := testImage(t), t.TempDir()
	ts := startServer(t, root, state)
	c, fh := mounted(t, ts, "127.0.0.1:0", root0)
	paths := []string{"usr/share/doc/README", "etc/hostname", "etc/ssh", "var/lib/dpkg/status", "cdsl.local/etc/ssh/ssh_host_key"}
	handles := map[string][]byte{}
	ids := map[string]uint64{}
	for _, p := range paths {
		s, h := c.walk(fh, p)
		if s != 0 {
			t.Fatalf("%s: %v", p, s)
		}
		handles[p] = h
		_, a := c.getattr(h)
		ids[p] = a.fileid
	}
	_, tmp := c.lookup(fh, "tmp")
	_, made := c.create(tmp, "made-before", createGuarded, 0o644, nil)
	c.write(made, 0, "still here")
	ts.stop(t)

	ts2 := startServer(t, root, state)
	c2 := dial(t, ts2.addr, "127.0.0.1:0", root0) // no MOUNT: a client just carries on
	for _, p := range paths {
		s, a := c2.getattr(handles[p])
		if s != 0 {
			t.Errorf("after restart, GETATTR %s: %v", p, s)
			continue
		}
		if a.fileid != ids[p] {
			t.Errorf("after restart, %s file id %x, was %x", p, a.fileid, ids[p])
		}
	}
	if s, got := c2.readAll(made); s != 0 || got != "still here" {
		t.Errorf("after restart, read the file made before: %q, %v", got, s)
	}
}

func TestRenameFollowsOpenFile(t *testing.T) {
	ts := startServer(t, testImage(t), t.TempDir())
	c, root := mounted(t, ts, "127.0.0.1:0", root0)
	_, tmp := c.lookup(root, "tmp")
	_, f := c.create(tmp, "open-file", createGuarded, 0o644, nil)
	c.write(f, 0, "content")
	// What the Linux client does when an open file is unlinked: rename it aside and keep
	// using its handle.
	if s := c.rename(tmp, "open-file", tmp, ".nfs0000000000001"); s != 0 {
		t.Fatal(s)
	}
	if s, got := c.readAll(f); s != 0 || got != "content" {
		t.Errorf("read through the old handle after rename: %q, %v", got, s)
	}
	if s := c.write(f, 7, "!"); s != 0 {
		t.Errorf("write through the old handle after rename: %v", s)
	}
	// A new file at the old name is another object.
	_, f2 := c.create(tmp, "open-file", createGuarded, 0o644, nil)
	if bytes.Equal(f, f2) {
		t.Error("the new file got the renamed file's handle")
	}
}

func TestCreateExclusive(t *testing.T) {
	ts := startServer(t, testImage(t), t.TempDir())
	c, root := mounted(t, ts, "127.0.0.1:0", root0)
	_, tmp := c.lookup(root, "tmp")
	verf := []byte("verifier")
	s, fh := c.create(tmp, "lock", createExclusive, 0, verf)
	if s != 0 {
		t.Fatalf("exclusive CREATE: %v", s)
	}
	if s, again := c.create(tmp, "lock", createExclusive, 0, verf); s != 0 || !bytes.Equal(again, fh) {
		t.Errorf("retransmitted exclusive CREATE: %v", s)
	}
	if s, _ := c.create(tmp, "lock", createExclusive, 0, []byte("other!!!")); s != nfs.NFSStatusExist {
		t.Errorf("exclusive CREATE of an existing file: %v, want EXIST", s)
	}
	if s, _ := c.create(tmp, "lock", createGuarded, 0o644, nil); s != nfs.NFSStatusExist {
		t.Errorf("guarded CREATE of an existing file: %v, want EXIST", s)
	}
	if s, _ := c.create(tmp, "lock", createUnchecked, 0o644, nil); s != 0 {
		t.Errorf("unchecked CREATE of an existing file: %v", s)
	}
}

func TestPermissions(t *testing.T) {
	if !isRoot() {
		t.Skip("the server gives new files their caller's owner only when it runs as root")
	}
	ts := startServer(t, testImage(t), t.TempDir())
	alice := xdr.Creds{Flavor: xdr.AuthSys, UID: 1001, GID: 1001}
	bob := xdr.Creds{Flavor: xdr.AuthSys, UID: 1002, GID: 1002}
	ca, root := mounted(t, ts, "127.0.0.1:0", alice)
	cb := dial(t, ts.addr, "127.0.0.1:0", bob)
	cr := dial(t, ts.addr, "127.0.0.1:0", root0)
	_, tmp := ca.lookup(root, "tmp")
	_, varDir := ca.lookup(root, "var")
	_, af := ca.create(tmp, "alice", createGuarded, 0o644, nil)
	ca.write(af, 0, "hers")
	_, prof := cr.walk(root, "root/.profile")
	for _, tt := range []struct {
		name string
		do   func() status
		want status
	}{
		{"bob writes alice's file", func() status { return cb.write(af, 0, "his") }, nfs.NFSStatusAccess},
		{"bob removes alice's file from sticky /tmp", func() status { return cb.remove(tmp, "alice") }, nfs.NFSStatusAccess},
		{"bob renames alice's file in sticky /tmp", func() status { return cb.rename(tmp, "alice", tmp, "bobs") }, nfs.NFSStatusAccess},
		{"alice creates in root's /var", func() status { s, _ := ca.create(varDir, "x", createGuarded, 0o644, nil); return s }, nfs.NFSStatusAccess},
		{"alice writes root's file", func() status { return ca.write(prof, 0, "x") }, nfs.NFSStatusAccess},
		{"alice chowns her file", func() status {
			s, _ := ca.nfs(procSetattr, func(e *xdr.Encoder) {
				e.Opaque(af)
				e.Bool(false)
				e.Bool(true)
				e.Uint32(0)
				e.Bool(false)
				e.Bool(false)
				e.Uint32(0)
				e.Uint32(0)
				e.Bool(false)
			})
			return s
		}, nfs.NFSStatusPerm},
		{"bob creates in /tmp", func() status { s, _ := cb.create(tmp, "bob", createGuarded, 0o600, nil); return s }, nfs.NFSStatusOk},
		{"alice removes her file", func() status { return ca.remove(tmp, "alice") }, nfs.NFSStatusOk},
	} {
		if got := tt.do(); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	// ACCESS tells the client the same.
	s, d := cb.nfs(procAccess, func(e *xdr.Encoder) { e.Opaque(prof); e.Uint32(0x3f) })
	postOp(d)
	if got := d.Uint32(); s != 0 || got != accessRead {
		t.Errorf("ACCESS of root's 0644 file for bob = %#x, want READ only", got)
	}
	_, usrBin := cb.walk(root, "usr/bin")
	s, d = cr.nfs(procAccess, func(e *xdr.Encoder) { e.Opaque(usrBin); e.Uint32(0x3f) })
	postOp(d)
	if got := d.Uint32(); s != 0 || got != accessRead|accessLookup {
		t.Errorf("ACCESS of the read-only /usr/bin for root = %#x, want READ|LOOKUP", got)
	}
}

func TestReaddirPaging(t *testing.T) {
	ts := startServer(t, testImage(t), t.TempDir())
	c, root := mounted(t, ts, "127.0.0.1:0", root0)
	_, tmp := c.lookup(root, "tmp")
	s, dir := c.mkdir(tmp, "many", 0o755)
	if s != 0 {
		t.Fatal(s)
	}
	var want []string
	for i := range 700 {
		name := fmt.Sprintf("file-%04d-%s", i, strings.Repeat("x", i%40))
		if s, _ := c.create(dir, name, createGuarded, 0o644, nil); s != 0 {
			t.Fatalf("create %s: %v", name, s)
		}
		want = append(want, name)
	}
	for _, tt := range []struct {
		plus bool
		max  uint32
	}{{false, 1024}, {false, 32768}, {true, 1024}, {true, 4096}, {true, 65536}} {
		s, got := c.readdirNames(dir, tt.plus, tt.max)
		if s != 0 {
			t.Errorf("readdir plus=%v max=%d: %v", tt.plus, tt.max, s)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("readdir plus=%v max=%d (-want +got):\n%s", tt.plus, tt.max, diff)
		}
	}
	if s, _ := c.readdirNames(dir, true, 100); s != nfs.NFSStatusTooSmall {
		t.Errorf("READDIRPLUS with maxcount 100: %v, want TOOSMALL", s)
	}
}

func TestRPCEdges(t *testing.T) {
	ts := startServer(t, testImage(t), t.TempDir())
	c, root := mounted(t, ts, "127.0.0.1:0", root0)
	tests := []struct {
		name             string
		prog, vers, proc uint32
		args             func(e *xdr.Encoder)
		stat             xdr.AcceptStat
		low, high        uint32
	}{
		{"NLM", 100021, 4, 0, nil, xdr.ProgUnavail, 0, 0},
		{"NFS_ACL", 100227, 3, 0, nil, xdr.ProgUnavail, 0, 0},
		{"NFSv2", progNFS, 2, 0, nil, xdr.ProgMismatch, 3, 3},
		{"NFSv4", progNFS, 4, 0, nil, xdr.ProgMismatch, 3, 3},
		{"MOUNTv1", progMount, 1, 0, nil, xdr.ProgMismatch, 3, 3},
		{"unknown NFS proc", progNFS, 3, 22, nil, xdr.ProcUnavail, 0, 0},
		{"unknown MOUNT proc", progMount, 3, 9, nil, xdr.ProcUnavail, 0, 0},
		{"NULL", progNFS, 3, 0, nil, xdr.Success, 0, 0},
		{"GETATTR without args", progNFS, 3, procGetattr, nil, xdr.GarbageArgs, 0, 0},
		{"LOOKUP with a short name", progNFS, 3, procLookup, func(e *xdr.Encoder) { e.Opaque(root); e.Uint32(100) }, xdr.GarbageArgs, 0, 0},
		{"WRITE truncated", progNFS, 3, procWrite, func(e *xdr.Encoder) { e.Opaque(root); e.Uint64(0) }, xdr.GarbageArgs, 0, 0},
		{"RENAME truncated", progNFS, 3, procRename, func(e *xdr.Encoder) { e.Opaque(root) }, xdr.GarbageArgs, 0, 0},
		{"CREATE bad mode", progNFS, 3, procCreate, func(e *xdr.Encoder) { e.Opaque(root); e.String("x"); e.Uint32(7) }, xdr.GarbageArgs, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, d := c.call(tt.prog, tt.vers, tt.proc, tt.args)
			if !r.Accepted || r.Stat != tt.stat {
				t.Fatalf("reply accepted=%v stat=%d, want %d", r.Accepted, r.Stat, tt.stat)
			}
			if tt.stat == xdr.ProgMismatch {
				if lo, hi := d.Uint32(), d.Uint32(); lo != tt.low || hi != tt.high {
					t.Errorf("mismatch range %d-%d, want %d-%d", lo, hi, tt.low, tt.high)
				}
			}
		})
	}
	// The connection is still usable after all that.
	if s, _ := c.getattr(root); s != 0 {
		t.Errorf("GETATTR after the edge cases: %v", s)
	}
}

func TestUnprivilegedPortRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		Exports:   []Export{{Path: "/x", Root: t.TempDir(), Clients: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}},
		Listener:  l,
		NoPortmap: true,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	c := dial(t, l.Addr().String(), "127.0.0.1:0", root0) // an ephemeral, unprivileged port
	r, _ := c.call(progMount, 3, mntMnt, func(e *xdr.Encoder) { e.String("/x") })
	if r.Accepted || r.Auth != xdr.AuthTooWeak {
		t.Errorf("MNT from an unprivileged port: accepted=%v auth=%d, want AUTH_TOOWEAK", r.Accepted, r.Auth)
	}
	// The portmapper still answers.
	r, _ = c.call(progPortmap, 2, pmapNull, nil)
	if !r.Accepted || r.Stat != xdr.Success {
		t.Errorf("portmapper NULL from an unprivileged port: %+v", r)
	}
}

func TestPortmapper(t *testing.T) {
	ts := startServer(t, testImage(t), t.TempDir())
	_, portStr, _ := net.SplitHostPort(ts.addr)
	var port uint32
	fmt.Sscan(portStr, &port)
	c := dial(t, ts.pmap, "", root0)
	getport := func(prog, vers, prot uint32) uint32 {
		r, d := c.call(progPortmap, 2, pmapGetport, func(e *xdr.Encoder) { e.Uint32(prog); e.Uint32(vers); e.Uint32(prot); e.Uint32(0) })
		if !r.Accepted || r.Stat != xdr.Success {
			t.Fatalf("GETPORT: %+v", r)
		}
		return d.Uint32()
	}
	for _, tt := range []struct {
		prog, vers, prot, want uint32
	}{
		{progMount, 3, ipprotoTCP, port},
		{progNFS, 3, ipprotoTCP, port},
		{progNFS, 3, 17, 0},
		{progNFS, 4, ipprotoTCP, 0},
		{100021, 4, ipprotoTCP, 0},
	} {
		if got := getport(tt.prog, tt.vers, tt.prot); got != tt.want {
			t.Errorf("GETPORT(%d, %d, %d) = %d, want %d", tt.prog, tt.vers, tt.prot, got, tt.want)
		}
	}
	r, d := c.call(progPortmap, 4, rpcbGetaddr, func(e *xdr.Encoder) {
		e.Uint32(progNFS)
		e.Uint32(3)
		e.String("tcp")
		e.String("")
		e.String("")
	})
	want := fmt.Sprintf("127.0.0.1.%d.%d", port>>8, port&0xff)
	if got := d.String(64); !r.Accepted || got != want {
		t.Errorf("rpcbind v4 GETADDR = %q, want %q", got, want)
	}
	r, _ = c.call(progPortmap, 2, pmapSet, func(e *xdr.Encoder) { e.Uint32(1); e.Uint32(1); e.Uint32(6); e.Uint32(1) })
	if !r.Accepted {
		t.Errorf("SET: %+v", r)
	}
}

func TestPortmapperUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Listener: l, PortmapListener: pl, PortmapPacketConn: pc}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	conn, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var e xdr.Encoder
	xdr.AppendCall(&e, 77, progPortmap, 2, pmapGetport, xdr.Creds{})
	e.Uint32(progNFS)
	e.Uint32(3)
	e.Uint32(ipprotoTCP)
	e.Uint32(0)
	conn.Write(e.B)
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	r, err := xdr.ParseReply(buf[:n])
	if err != nil || r.XID != 77 || !r.Accepted {
		t.Fatalf("UDP reply %+v, %v", r, err)
	}
	if got := xdr.NewDecoder(r.Results).Uint32(); got != uint32(l.Addr().(*net.TCPAddr).Port) {
		t.Errorf("UDP GETPORT = %d", got)
	}
}

func TestServeStopsCleanly(t *testing.T) {
	before := runtime.NumGoroutine()
	root, state := testImage(t), t.TempDir()
	ts := startServer(t, root, state)
	for _, local := range []string{"127.0.0.1:0", "127.0.0.2:0"} {
		c, fh := mounted(t, ts, local, root0)
		_, tmp := c.lookup(fh, "tmp")
		_, f := c.create(tmp, "x", createUnchecked, 0o644, nil)
		c.write(f, 0, "data") // starts a go-nfs lane
		c.readdirNames(fh, true, 8192)
	}
	// A connection left open and idle, and one half-way through a record.
	idle := dial(t, ts.addr, "127.0.0.1:0", root0)
	_ = idle
	half := dial(t, ts.addr, "127.0.0.1:0", root0)
	half.nc.Write([]byte{0x80, 0, 1, 0, 1, 2, 3})
	ts.stop(t)
	waitGoroutines(t, before)
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		e    Export
	}{
		{"relative path", Export{Path: "x", Root: dir}},
		{"dotdot path", Export{Path: "/a/../b", Root: dir}},
		{"no root", Export{Path: "/x"}},
		{"missing root", Export{Path: "/x", Root: filepath.Join(dir, "nope")}},
		{"writable without state", Export{Path: "/x", Root: dir, Writable: []string{"/var"}}},
		{"overlapping writable", Export{Path: "/x", Root: dir, StateDir: dir, Writable: []string{"/var", "/var/log"}}},
		{"writable dotdot", Export{Path: "/x", Root: dir, StateDir: dir, Writable: []string{"/var/../etc"}}},
		{"writable root", Export{Path: "/x", Root: dir, StateDir: dir, Writable: []string{"/"}}},
		{"writable without parent", Export{Path: "/x", Root: dir, StateDir: dir, Writable: []string{"/nonexistent/data"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{Exports: []Export{tt.e}, NoPortmap: true, Addr: "127.0.0.1:0"}
			err := s.Serve(context.Background())
			if err == nil || !strings.Contains(err.Error(), "nfsroot") {
				t.Errorf("Serve = %v, want a configuration error", err)
			}
		})
	}
}

func TestCDSLChangesWhileServing(t *testing.T) {
	root := testImage(t)
	ts := startServerWith(t, root, t.TempDir(), func(s *Server) { s.CacheTTL = 20 * time.Millisecond })
	c1, root1 := mounted(t, ts, "127.0.0.1:0", root0)
	c4, root4 := mounted(t, ts, "127.0.0.4:0", root0) // n3: no tree of its own yet
	read := func(c *client, root []byte, p string) string {
		t.Helper()
		s, fh := c.walk(root, p)
		if s != 0 {
			return "lookup: " + s.String()
		}
		_, got := c.readAll(fh)
		return got
	}
	if got := read(c4, root4, "etc/hostname"); got != "template\n" {
		t.Fatalf("n3 without a tree reads %q, want the default tree's", got)
	}
	repo, err := cdsl.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	if err := repo.MakeHostDependent("etc/motd"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "cluster/cdsl/n1/etc/motd"), []byte("n1 motd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := repo.AddNodes("n3"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "cluster/cdsl/n3/etc/hostname"), []byte("n3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The server rereads the inventory after CacheTTL.
	var got1, got4 string
	for i := 0; i < 200; i++ {
		time.Sleep(10 * time.Millisecond)
		if got1, got4 = read(c1, root1, "etc/motd"), read(c4, root4, "etc/hostname"); got1 == "n1 motd\n" && got4 == "n3\n" {
			break
		}
	}
	if got1 != "n1 motd\n" || got4 != "n3\n" {
		t.Errorf("after the CDSL changes: n1 motd %q, n3 hostname %q", got1, got4)
	}
}

func TestStateListingSeesChanges(t *testing.T) {
	ts := startServer(t, testImage(t), t.TempDir())
	c, root := mounted(t, ts, "127.0.0.1:0", root0)
	_, tmp := c.lookup(root, "tmp")
	_, dir := c.mkdir(tmp, "d", 0o755)
	c.create(dir, "a", createGuarded, 0o644, nil)
	// Let the directory go quiet so that its listing is cached, then change it.
	time.Sleep(1100 * time.Millisecond)
	if _, names := c.readdirNames(dir, true, 4096); !cmp.Equal(names, []string{"a"}) {
		t.Fatalf("listing %q", names)
	}
	c.create(dir, "b", createGuarded, 0o644, nil)
	if _, names := c.readdirNames(dir, true, 4096); !cmp.Equal(names, []string{"a", "b"}) {
		t.Errorf("listing after a create = %q, want [a b]", names)
	}
	c.remove(dir, "a")
	if _, names := c.readdirNames(dir, false, 4096); !cmp.Equal(names, []string{"b"}) {
		t.Errorf("listing after a remove = %q, want [b]", names)
	}
}

func TestViewsFailureIsRetried(t *testing.T) {
	fails := 1
	var mu sync.Mutex
	views := ViewsFunc(func(ctx context.Context, a netip.Addr) (View, error) {
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			return View{}, errors.New("cluster store unavailable")
		}
		return testViews(ctx, a)
	})
	ts := startServerWith(t, testImage(t), t.TempDir(), func(s *Server) { s.Views = views })
	c := dial(t, ts.addr, "127.0.0.1:0", root0)
	if st, _ := c.mount("/images/compute"); st != mnt3ErrServFail {
		t.Errorf("MNT while Views fails = %d, want SERVERFAULT", st)
	}
	if st, _ := c.mount("/images/compute"); st != mnt3OK {
		t.Errorf("MNT once Views answers = %d, want OK", st)
	}
}

func TestLargeReads(t *testing.T) {
	root := testImage(t)
	data := make([]byte, 3<<20+1001) // not a multiple of 4: the last reply is padded
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/share/big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, root, t.TempDir())
	c, fh := mounted(t, ts, "127.0.0.1:0", root0)
	_, big := c.walk(fh, "usr/share/big")
	_, tmp := c.lookup(fh, "tmp")
	_, copyFH := c.create(tmp, "copy", createGuarded, 0o644, nil)
	for off := 0; off < len(data); off += 1 << 20 {
		c.write(copyFH, uint64(off), string(data[off:min(off+1<<20, len(data))]))
	}
	for _, tt := range []struct {
		name string
		fh   []byte
	}{{"image", big}, {"node state", copyFH}} {
		for _, chunk := range []uint32{1 << 20, 65536 + 3, 100} {
			var got []byte
			eofSeen := false
			for len(got) <= len(data) {
				s, part, eof := c.read(tt.fh, uint64(len(got)), chunk)
				if s != 0 {
					t.Fatalf("%s: READ at %d: %v", tt.name, len(got), s)
				}
				got = append(got, part...)
				if eof {
					eofSeen = true
					break
				}
				if chunk == 100 && len(got) > 300000 {
					got = append(got, data[len(got):]...) // enough small reads
				}
			}
			if !eofSeen || !bytes.Equal(got, data) {
				t.Errorf("%s, %d-byte reads: %d bytes, eof %v, equal %v", tt.name, chunk, len(got), eofSeen, bytes.Equal(got, data))
			}
		}
		if s, part, eof := c.read(tt.fh, uint64(len(data)+10), 1<<20); s != 0 || len(part) != 0 || !eof {
			t.Errorf("%s: READ past the end: %v, %d bytes, eof %v", tt.name, s, len(part), eof)
		}
	}
}

func TestWritableFileAndMissingPath(t *testing.T) {
	root, state := testImage(t), t.TempDir()
	ts := startServerWith(t, root, state, func(s *Server) {
		s.Exports[0].Writable = []string{"/etc/motd", "/home/data"} // a file, and a path the image lacks
	})
	c1, r1 := mounted(t, ts, "127.0.0.1:0", root0)
	c2, r2 := mounted(t, ts, "127.0.0.2:0", root0)
	_, motd1 := c1.walk(r1, "etc/motd")
	if s := c1.write(motd1, 0, "N1 says"); s != 0 {
		t.Fatalf("WRITE to the writable /etc/motd: %v", s)
	}
	_, motd2 := c2.walk(r2, "etc/motd")
	if _, got := c2.readAll(motd2); got != "welcome\n" {
		t.Errorf("n2's motd = %q, want the image's", got)
	}
	if _, got := c1.readAll(motd1); got != "N1 says\n" {
		t.Errorf("n1's motd = %q", got)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/motd")); string(b) != "welcome\n" {
		t.Errorf("the image's motd changed: %q", b)
	}
	// /home/data is not in the image: it starts as an empty directory of the node's own,
	// listed in /home.
	s, data := c1.walk(r1, "home/data")
	if s != 0 {
		t.Fatalf("lookup home/data: %v", s)
	}
	if s, names := c1.readdirNames(data, true, 4096); s != 0 || len(names) != 0 {
		t.Errorf("home/data lists %q, %v", names, s)
	}
	if s, _ := c1.create(data, "x", createGuarded, 0o644, nil); s != 0 {
		t.Errorf("create in home/data: %v", s)
	}
	_, home := c1.lookup(r1, "home")
	if s, names := c1.readdirNames(home, false, 4096); s != 0 || !cmp.Equal(names, []string{"data"}) {
		t.Errorf("home lists %q, %v; want [data]", names, s)
	}
}
