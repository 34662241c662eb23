package nfsroot

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/provkit/provkit/cdsl"
	"github.com/provkit/provkit/nfsroot/internal/xdr"
)

// A minimal NFSv3 client over the package's own XDR code, for tests that need exact control
// of every call (handles kept across restarts, forged handles, credentials).

type client struct {
	t     testing.TB
	nc    net.Conn
	br    *bufio.Reader
	xid   uint32
	creds xdr.Creds
}

// dial connects from local (e.g. "127.0.0.2:0") to the server.
func dial(t testing.TB, server, local string, creds xdr.Creds) *client {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		la, err := net.ResolveTCPAddr("tcp", local)
		if err != nil {
			t.Fatal(err)
		}
		d.LocalAddr = la
	}
	nc, err := d.Dial("tcp", server)
	if err != nil {
		t.Fatalf("dial %s: %v", server, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, br: bufio.NewReader(nc), creds: creds}
}

// call sends a call and returns the reply and a decoder over its results.
func (c *client) call(prog, vers, proc uint32, args func(e *xdr.Encoder)) (xdr.Reply, *xdr.Decoder) {
	c.t.Helper()
	r, err := c.tryCall(prog, vers, proc, args)
	if err != nil {
		c.t.Fatalf("call %d.%d.%d: %v", prog, vers, proc, err)
	}
	return r, xdr.NewDecoder(r.Results)
}

func (c *client) tryCall(prog, vers, proc uint32, args func(e *xdr.Encoder)) (xdr.Reply, error) {
	c.xid++
	e := &xdr.Encoder{B: make([]byte, 4)}
	xdr.AppendCall(e, c.xid, prog, vers, proc, c.creds)
	if args != nil {
		args(e)
	}
	xdr.MarkRecord(e.B)
	_ = c.nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.nc.Write(e.B); err != nil {
		return xdr.Reply{}, err
	}
	for {
		rec, err := xdr.ReadRecord(c.br, nil, 4<<20)
		if err != nil {
			return xdr.Reply{}, err
		}
		r, err := xdr.ParseReply(rec)
		if err != nil {
			return r, err
		}
		if r.XID == c.xid {
			return r, nil
		}
	}
}

// nfs calls an NFSv3 procedure and returns its status and a decoder after the status.
func (c *client) nfs(proc uint32, args func(e *xdr.Encoder)) (status, *xdr.Decoder) {
	c.t.Helper()
	r, d := c.call(progNFS, 3, proc, args)
	if !r.Accepted || r.Stat != xdr.Success {
		c.t.Fatalf("NFS proc %s: reply accepted=%v stat=%d auth=%d", debugProc(proc), r.Accepted, r.Stat, r.Auth)
	}
	return status(d.Uint32()), d
}

func (c *client) mount(path string) (uint32, []byte) {
	c.t.Helper()
	r, d := c.call(progMount, 3, mntMnt, func(e *xdr.Encoder) { e.String(path) })
	if !r.Accepted || r.Stat != xdr.Success {
		c.t.Fatalf("MNT %s: accepted=%v stat=%d auth=%d", path, r.Accepted, r.Stat, r.Auth)
	}
	st := d.Uint32()
	if st != mnt3OK {
		return st, nil
	}
	fh := d.Opaque(fhMax)
	return st, append([]byte(nil), fh...)
}

type attr3 struct {
	typ, mode, nlink, uid, gid uint32
	size, used                 uint64
	fsid, fileid               uint64
	mtime                      [2]uint32
}

func decodeAttr(d *xdr.Decoder) attr3 {
	var a attr3
	a.typ, a.mode, a.nlink, a.uid, a.gid = d.Uint32(), d.Uint32(), d.Uint32(), d.Uint32(), d.Uint32()
	a.size, a.used = d.Uint64(), d.Uint64()
	d.Uint32()
	d.Uint32()
	a.fsid, a.fileid = d.Uint64(), d.Uint64()
	d.Uint64()
	a.mtime = [2]uint32{d.Uint32(), d.Uint32()}
	d.Uint64()
	return a
}

func postOp(d *xdr.Decoder) *attr3 {
	if !d.Bool() {
		return nil
	}
	a := decodeAttr(d)
	return &a
}

func (c *client) getattr(fh []byte) (status, attr3) {
	c.t.Helper()
	s, d := c.nfs(procGetattr, func(e *xdr.Encoder) { e.Opaque(fh) })
	if s != 0 {
		return s, attr3{}
	}
	return s, decodeAttr(d)
}

func (c *client) lookup(dir []byte, name string) (status, []byte) {
	c.t.Helper()
	s, d := c.nfs(procLookup, func(e *xdr.Encoder) { e.Opaque(dir); e.String(name) })
	if s != 0 {
		return s, nil
	}
	return s, append([]byte(nil), d.Opaque(fhMax)...)
}

// walk looks up a slash-separated path from fh.
func (c *client) walk(fh []byte, p string) (status, []byte) {
	c.t.Helper()
	for _, comp := range strings.Split(strings.Trim(p, "/"), "/") {
		if comp == "" {
			continue
		}
		s, next := c.lookup(fh, comp)
		if s != 0 {
			return s, nil
		}
		fh = next
	}
	return 0, fh
}

func (c *client) read(fh []byte, off uint64, count uint32) (status, []byte, bool) {
	c.t.Helper()
	s, d := c.nfs(procRead, func(e *xdr.Encoder) { e.Opaque(fh); e.Uint64(off); e.Uint32(count) })
	postOp(d)
	if s != 0 {
		return s, nil, false
	}
	d.Uint32()
	eof := d.Bool()
	return s, append([]byte(nil), d.Opaque(1<<21)...), eof
}

func (c *client) readAll(fh []byte) (status, string) {
	c.t.Helper()
	var out []byte
	for {
		s, data, eof := c.read(fh, uint64(len(out)), 1<<20)
		if s != 0 {
			return s, ""
		}
		out = append(out, data...)
		if eof || len(data) == 0 {
			return 0, string(out)
		}
	}
}

func (c *client) create(dir []byte, name string, how uint32, mode uint32, verf []byte) (status, []byte) {
	c.t.Helper()
	s, d := c.nfs(procCreate, func(e *xdr.Encoder) {
		e.Opaque(dir)
		e.String(name)
		e.Uint32(how)
		if how == createExclusive {
			e.Fixed(verf)
			return
		}
		e.Bool(true)
		e.Uint32(mode)
		e.Bool(false)
		e.Bool(false)
		e.Bool(false)
		e.Uint32(0)
		e.Uint32(0)
	})
	if s != 0 {
		return s, nil
	}
	if !d.Bool() {
		c.t.Fatal("CREATE returned no handle")
	}
	return s, append([]byte(nil), d.Opaque(fhMax)...)
}

func (c *client) write(fh []byte, off uint64, data string) status {
	c.t.Helper()
	s, _ := c.nfs(procWrite, func(e *xdr.Encoder) {
		e.Opaque(fh)
		e.Uint64(off)
		e.Uint32(uint32(len(data)))
		e.Uint32(2) // FILE_SYNC
		e.Opaque([]byte(data))
	})
	return s
}

func (c *client) mkdir(dir []byte, name string, mode uint32) (status, []byte) {
	c.t.Helper()
	s, d := c.nfs(procMkdir, func(e *xdr.Encoder) {
		e.Opaque(dir)
		e.String(name)
		e.Bool(true)
		e.Uint32(mode)
		e.Bool(false)
		e.Bool(false)
		e.Bool(false)
		e.Uint32(0)
		e.Uint32(0)
	})
	if s != 0 {
		return s, nil
	}
	d.Bool()
	return s, append([]byte(nil), d.Opaque(fhMax)...)
}

func (c *client) remove(dir []byte, name string) status {
	c.t.Helper()
	s, _ := c.nfs(procRemove, func(e *xdr.Encoder) { e.Opaque(dir); e.String(name) })
	return s
}

func (c *client) rename(fdir []byte, fname string, tdir []byte, tname string) status {
	c.t.Helper()
	s, _ := c.nfs(procRename, func(e *xdr.Encoder) {
		e.Opaque(fdir)
		e.String(fname)
		e.Opaque(tdir)
		e.String(tname)
	})
	return s
}

// readdirNames lists a directory with READDIR or READDIRPLUS, maxcount bytes per call,
// following cookies until EOF.
func (c *client) readdirNames(dir []byte, plus bool, maxcount uint32) (status, []string) {
	c.t.Helper()
	var names []string
	cookie := uint64(0)
	for calls := 0; calls < 10000; calls++ {
		proc := uint32(procReaddir)
		if plus {
			proc = procReaddirplus
		}
		s, d := c.nfs(proc, func(e *xdr.Encoder) {
			e.Opaque(dir)
			e.Uint64(cookie)
			e.Fixed(make([]byte, 8))
			if plus {
				e.Uint32(maxcount / 8)
			}
			e.Uint32(maxcount)
		})
		postOp(d)
		if s != 0 {
			return s, names
		}
		d.Fixed(8)
		for d.Bool() {
			d.Uint64()
			name := d.String(maxName)
			cookie = d.Uint64()
			if plus {
				postOp(d)
				if d.Bool() {
					d.Opaque(fhMax)
				}
			}
			if name != "." && name != ".." {
				names = append(names, name)
			}
		}
		eof := d.Bool()
		if d.Err() != nil {
			c.t.Fatalf("READDIR reply: %v", d.Err())
		}
		if eof {
			sort.Strings(names)
			return 0, names
		}
	}
	c.t.Fatal("READDIR never reached EOF")
	return 0, nil
}

// Test image and server.

// testImage builds an image with CDSLs for n1 and n2 (etc/hostname host-dependent, with
// per-node contents; etc/ssh host-dependent with a secret key per node), /var and /tmp.
func testImage(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	write := func(p, content string, mode os.FileMode) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/hostname", "template\n", 0o644)
	write("etc/ssh/ssh_host_key", "default-key\n", 0o600)
	write("etc/motd", "welcome\n", 0o644)
	write("usr/bin/tool", "#!/bin/sh\necho tool\n", 0o755)
	write("usr/share/doc/README", "docs\n", 0o644)
	write("var/log/.keep", "", 0o644)
	write("var/lib/dpkg/status", "Package: base\n", 0o644)
	write("root/.profile", "PS1='# '\n", 0o644)
	for _, d := range []string{"tmp", "proc", "home"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	repo, err := cdsl.Create(root, "n1", "n2")
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	if err := repo.MakeHostDependent("etc/hostname"); err != nil {
		t.Fatal(err)
	}
	if err := repo.MakeHostDependent("etc/ssh"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"n1", "n2"} {
		write("cluster/cdsl/"+n+"/etc/hostname", n+"\n", 0o644)
		write("cluster/cdsl/"+n+"/etc/ssh/ssh_host_key", "secret-of-"+n+"\n", 0o600)
	}
	return root
}

// testViews maps 127.0.0.1 to n1, 127.0.0.2 to n2 and 127.0.0.4 to n3 (a node without a
// tree); 127.0.0.3 is unknown.
var testViews = ViewsFunc(func(_ context.Context, a netip.Addr) (View, error) {
	switch a.String() {
	case "127.0.0.1":
		return View{Node: "n1"}, nil
	case "127.0.0.2":
		return View{Node: "n2"}, nil
	case "127.0.0.4":
		return View{Node: "n3", Exports: []string{"/images/compute"}}, nil
	}
	return View{}, fmt.Errorf("%s: %w", a, ErrUnknownClient)
})

type testServer struct {
	addr   string
	pmap   string
	cancel context.CancelFunc
	done   chan error
	root   string
	state  string
}

func (s *testServer) stop(t testing.TB) {
	t.Helper()
	s.cancel()
	if err := <-s.done; err != nil {
		t.Errorf("Serve returned %v after cancel, want nil", err)
	}
}

func startServer(t testing.TB, root, state string) *testServer {
	t.Helper()
	return startServerWith(t, root, state, nil)
}

func startServerWith(t testing.TB, root, state string, configure func(*Server)) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		Exports: []Export{{
			Path: "/images/compute", Root: root, StateDir: state,
			Writable: []string{"/var", "/tmp", "/root"},
			Clients:  []netip.Prefix{netip.MustParsePrefix("127.0.0.0/29")},
		}},
		Views:           testViews,
		Listener:        l,
		PortmapListener: pl,
		Insecure:        true,
	}
	if configure != nil {
		configure(s)
	}
	if tt, ok := t.(*testing.T); ok {
		// Fuzz targets must not log through their *testing.F once fuzzing started.
		s.Logger = slog.New(slog.NewTextHandler(testWriter{tt}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{addr: l.Addr().String(), pmap: pl.Addr().String(), cancel: cancel, done: make(chan error, 1), root: root, state: state}
	go func() { ts.done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-ts.done:
		default:
		}
	})
	return ts
}

var root0 = xdr.Creds{Flavor: xdr.AuthSys}

// mounted dials as the node at local and mounts the export.
func mounted(t testing.TB, ts *testServer, local string, creds xdr.Creds) (*client, []byte) {
	t.Helper()
	c := dial(t, ts.addr, local, creds)
	st, fh := c.mount("/images/compute")
	if st != mnt3OK {
		t.Fatalf("mount from %s: status %d", local, st)
	}
	return c, fh
}

// waitGoroutines waits for the goroutine count to come back to n (they end asynchronously
// after their connections close) and reports a leak with a stack dump if it does not.
func waitGoroutines(t testing.TB, n int) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if runtime.NumGoroutine() <= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Errorf("goroutines: %d, want at most %d\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
}

func isRoot() bool { return os.Geteuid() == 0 }

func statOwner(t testing.TB, p string) (uint32, uint32) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Logf("%s", strings.TrimSpace(string(b)))
	return len(b), nil
}

func newReader(nc net.Conn) *bufio.Reader { return bufio.NewReader(nc) }

// panicTB is a testing.TB for examples: failures panic.
type panicTB struct{ testing.TB }

func (panicTB) Helper()                           {}
func (panicTB) Fatal(args ...any)                 { panic(fmt.Sprint(args...)) }
func (panicTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
