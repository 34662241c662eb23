package image

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// treeEntry is what a captured tree must reproduce of each entry.
type treeEntry struct {
	Type   string
	Mode   string
	UID    uint32
	GID    uint32
	MTime  string // dirs included
	Size   int64
	Sum    string
	Link   string
	Rdev   uint64
	Xattrs string
	Group  string // the other names of a hard-linked file
	Sparse bool   // allocated less than its size
}

// snapshotTree records a tree for comparison, leaving out the names in skip.
func snapshotTree(t testing.TB, root string, skip ...string) map[string]treeEntry {
	t.Helper()
	out := map[string]treeEntry{}
	inodes := map[uint64][]string{}
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		for _, s := range skip {
			if rel == s || strings.HasPrefix(rel, s+"/") {
				return nil
			}
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := treeEntry{Mode: fmt.Sprintf("%#o", st.Mode&0o7777), UID: st.Uid, GID: st.Gid,
			MTime: fmt.Sprintf("%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			e.Type = "dir"
			if rel == "." {
				e.MTime = "" // the capture directory's own time is the test's
			}
		case unix.S_IFREG:
			e.Type = "file"
			e.Size = st.Size
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.Sum = fmt.Sprintf("%x", sha256.Sum256(b))[:16]
			e.Sparse = st.Blocks*512 < st.Size/2
			if st.Nlink > 1 {
				inodes[st.Ino] = append(inodes[st.Ino], rel)
			}
		case unix.S_IFLNK:
			e.Type = "symlink"
			e.Link, _ = os.Readlink(p)
		case unix.S_IFCHR, unix.S_IFBLK:
			e.Type = "dev"
			e.Rdev = st.Rdev
		case unix.S_IFIFO:
			e.Type = "fifo"
		case unix.S_IFSOCK:
			e.Type = "sock"
		}
		xs, _ := listXattrs(p)
		for _, x := range xs {
			e.Xattrs += fmt.Sprintf("%s=%x;", x.name, x.value)
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, names := range inodes {
		slices.Sort(names)
		for _, n := range names {
			e := out[n]
			e.Group = strings.Join(names, ",")
			out[n] = e
		}
	}
	return out
}

// makeGolden builds a golden tree with every kind of entry a capture must keep. Device
// nodes and foreign owners only when running as root.
func makeGolden(t testing.TB, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"etc/ssh", "usr/bin", "usr/lib/app", "var/log", "var/cache/apt/archives", "proc/1", "tmp", "dev", "home/u", "empty"} {
		must(os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	write := func(p string, data []byte, mode os.FileMode) {
		t.Helper()
		must(os.WriteFile(filepath.Join(root, p), data, mode))
		must(os.Chmod(filepath.Join(root, p), mode))
	}
	write("etc/hostname", []byte("golden\n"), 0o644)
	write("etc/shadow", []byte("root:*:19000:0:99999:7:::\n"), 0o640)
	write("etc/machine-id", []byte("0123456789abcdef0123456789abcdef\n"), 0o444)
	write("etc/ssh/ssh_host_ed25519_key", []byte("secret\n"), 0o600)
	write("etc/ssh/sshd_config", []byte("PermitRootLogin yes\n"), 0o644)
	write("usr/bin/tool", append([]byte("\x7fELF"), make([]byte, 300<<10)...), 0o4755)
	write("usr/lib/app/data.bin", []byte(strings.Repeat("provkit sysclone ", 70000)), 0o644)
	write("var/cache/apt/archives/x.deb", []byte("deb"), 0o644)
	write("proc/1/status", []byte("not really proc"), 0o444)
	write("tmp/scratch", []byte("tmp"), 0o644)
	write("home/u/.profile", []byte("export A=1\n"), 0o600)
	write("empty-file", nil, 0o600)
	must(os.Link(filepath.Join(root, "usr/bin/tool"), filepath.Join(root, "usr/bin/tool-hardlink")))
	must(os.Symlink("tool", filepath.Join(root, "usr/bin/tool-link")))
	must(os.Symlink("/nonexistent/absolute", filepath.Join(root, "dangling")))
	must(unix.Mkfifo(filepath.Join(root, "var/log/fifo"), 0o620))
	// A sparse file: 8 MiB with data at 1 MiB and at the end.
	f, err := os.Create(filepath.Join(root, "var/log/sparse.img"))
	must(err)
	_, err = f.WriteAt([]byte("middle"), 1<<20)
	must(err)
	_, err = f.WriteAt([]byte("end"), 8<<20-3)
	must(err)
	must(f.Close())
	must(unix.Lsetxattr(filepath.Join(root, "usr/lib/app/data.bin"), "user.provkit", []byte("golden-xattr"), 0))
	must(unix.Lsetxattr(filepath.Join(root, "usr/lib/app"), "user.dir", []byte("d"), 0))
	if os.Geteuid() == 0 {
		must(unix.Mknod(filepath.Join(root, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(unix.Mknod(filepath.Join(root, "dev/sda"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 0))))
		must(os.Lchown(filepath.Join(root, "home/u"), 1000, 1000))
		must(os.Lchown(filepath.Join(root, "home/u/.profile"), 1000, 1000))
		must(os.Lchown(filepath.Join(root, "etc/shadow"), 0, 42))
		must(os.Lchown(filepath.Join(root, "usr/bin/tool-link"), 1000, 1000))
		// security.* and trusted.* need root.
		must(unix.Lsetxattr(filepath.Join(root, "usr/bin/tool"), "trusted.provkit", []byte{0, 1, 2, 255}, 0))
		// File capabilities must survive the chown that comes before them.
		must(unix.Lsetxattr(filepath.Join(root, "usr/lib/app/data.bin"), "security.capability",
			[]byte{0, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0))
	}
	// Fixed times, so a re-capture sees them unchanged.
	tm := time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)
	must(filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		ts := []unix.Timespec{unix.NsecToTimespec(tm.UnixNano()), unix.NsecToTimespec(tm.UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	}))
}

// pipeCapture runs the agent and the receiver in this process, connected by pipes
// that count the bytes each way.
func pipeCapture(t testing.TB, ctx context.Context, spec CaptureSpec) (CaptureResult, error) {
	t.Helper()
	return pipeCaptureCut(t, ctx, spec, -1)
}

// pipeCaptureCut is pipeCapture with the agent's output cut after cut bytes (-1: never),
// as when the connection drops.
func pipeCaptureCut(t testing.TB, ctx context.Context, spec CaptureSpec, cut int64) (CaptureResult, error) {
	t.Helper()
	toAgentR, toAgentW := io.Pipe()
	fromAgentR, fromAgentW := io.Pipe()
	agentErr := make(chan error, 1)
	go func() {
		err := ServeCapture(ctx, toAgentR, fromAgentW, AgentOptions{Run: func(context.Context, ...string) ([]byte, error) {
			return nil, errors.New("no commands in this test")
		}})
		fromAgentW.CloseWithError(err)
		toAgentR.CloseWithError(io.ErrClosedPipe)
		agentErr <- err
	}()
	var from io.Reader = fromAgentR
	if cut >= 0 {
		from = &cutReader{r: fromAgentR, left: cut}
	}
	res, err := captureStream(ctx, from, toAgentW, spec)
	toAgentW.Close()
	fromAgentR.CloseWithError(io.ErrClosedPipe)
	aerr := <-agentErr
	if err == nil && aerr != nil {
		err = fmt.Errorf("agent: %w", aerr)
	}
	return res, err
}

// excludedInTest are the golden tree's entries the default excludes leave out.
var excludedInTest = []string{"proc/1", "tmp/scratch", "var/cache/apt/archives/x.deb", "etc/ssh/ssh_host_ed25519_key", "etc/machine-id", "dev/null", "dev/sda"}

func TestCaptureFullAndIncremental(t *testing.T) {
	golden, dir := t.TempDir(), filepath.Join(t.TempDir(), "rootimg")
	makeGolden(t, golden)
	ctx := context.Background()
	spec := CaptureSpec{Dir: dir, Root: golden}

	res, err := pipeCapture(t, ctx, spec)
	if err != nil {
		t.Fatalf("first capture: %v", err)
	}
	if res.Incremental {
		t.Errorf("first capture into an empty directory says incremental")
	}
	want := snapshotTree(t, golden, excludedInTest...)
	got := snapshotTree(t, dir)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("captured tree differs (-golden +captured):\n%s", diff)
	}
	if !got["var/log/sparse.img"].Sparse {
		t.Errorf("var/log/sparse.img was not captured sparse")
	}
	full := res.Stats
	t.Logf("full: %+v", full)

	// Nothing changed: no file data moves.
	res, err = pipeCapture(t, ctx, spec)
	if err != nil {
		t.Fatalf("second capture: %v", err)
	}
	if !res.Incremental || res.Stats.Changed != 0 || res.Stats.DataBytes != 0 {
		t.Errorf("unchanged re-capture: incremental %v, %d files and %d bytes transferred, want none", res.Incremental, res.Stats.Changed, res.Stats.DataBytes)
	}
	if diff := cmp.Diff(want, snapshotTree(t, dir)); diff != "" {
		t.Fatalf("tree after an unchanged re-capture differs:\n%s", diff)
	}

	// Change a few things: one file's content, one mode, one xattr, a new file, a removed
	// directory, a file replaced by a directory.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(golden, "etc/hostname"), []byte("golden2\n"), 0o644))
	must(os.Chmod(filepath.Join(golden, "home/u/.profile"), 0o640))
	must(unix.Lsetxattr(filepath.Join(golden, "usr/lib/app/data.bin"), "user.provkit", []byte("changed"), 0))
	must(os.WriteFile(filepath.Join(golden, "usr/lib/app/new.txt"), []byte("new file\n"), 0o644))
	must(os.RemoveAll(filepath.Join(golden, "empty")))
	must(os.Remove(filepath.Join(golden, "empty-file")))
	must(os.Mkdir(filepath.Join(golden, "empty-file"), 0o755))
	res, err = pipeCapture(t, ctx, spec)
	if err != nil {
		t.Fatalf("third capture: %v", err)
	}
	want = snapshotTree(t, golden, excludedInTest...)
	if diff := cmp.Diff(want, snapshotTree(t, dir)); diff != "" {
		t.Fatalf("tree after changes differs (-golden +captured):\n%s", diff)
	}
	if res.Stats.Changed != 2 || res.Stats.DataBytes != int64(len("golden2\n")+len("new file\n")) {
		t.Errorf("re-capture moved %d files, %d bytes; want 2 files, %d bytes", res.Stats.Changed, res.Stats.DataBytes, len("golden2\n")+len("new file\n"))
	}
	if res.Stats.Deleted != 1 {
		t.Errorf("deleted %d entries, want 1 (empty/; empty-file was replaced)", res.Stats.Deleted)
	}
	t.Logf("incremental: %+v", res.Stats)
}

func TestCaptureResumesAfterInterruption(t *testing.T) {
	golden, dir := t.TempDir(), filepath.Join(t.TempDir(), "rootimg")
	makeGolden(t, golden)
	for i := range 40 {
		if err := os.WriteFile(filepath.Join(golden, "usr/lib/app", fmt.Sprintf("f%02d", i)), []byte(strings.Repeat("x", 100<<10+i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	spec := CaptureSpec{Dir: dir, Root: golden}
	// The connection drops after 2 MiB of the first capture.
	_, err := pipeCaptureCut(t, context.Background(), spec, 2<<20)
	if err == nil {
		t.Fatalf("interrupted capture succeeded")
	}
	t.Logf("interrupted: %v", err)
	res, err := pipeCapture(t, context.Background(), spec)
	if err != nil {
		t.Fatalf("resumed capture: %v", err)
	}
	if diff := cmp.Diff(snapshotTree(t, golden, excludedInTest...), snapshotTree(t, dir)); diff != "" {
		t.Fatalf("resumed capture differs:\n%s", diff)
	}
	if res.Stats.Unchanged == 0 || res.Stats.Changed == 0 {
		t.Errorf("resumed capture: %d unchanged, %d transferred: want some of each", res.Stats.Unchanged, res.Stats.Changed)
	}
}

// cutReader fails with a broken connection after left bytes.
type cutReader struct {
	r    io.Reader
	left int64
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errors.New("connection reset (test)")
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}
