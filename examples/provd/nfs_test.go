package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/examples/internal/glue"
)

// rpcClient speaks just enough ONC RPC over TCP for these tests: MOUNT MNT, NFS GETATTR
// and portmapper GETPORT, from a chosen local address (a node's).
type rpcClient struct {
	nc  net.Conn
	br  *bufio.Reader
	xid uint32
}

func dialRPC(t *testing.T, from, to string) *rpcClient {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	nc, err := d.Dial("tcp", to)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", to, from, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rpcClient{nc: nc, br: bufio.NewReader(nc)}
}

func be32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

func opaque(b, data []byte) []byte {
	b = be32(b, uint32(len(data)))
	b = append(b, data...)
	for len(data)%4 != 0 {
		b, data = append(b, 0), append(data, 0)
	}
	return b
}

// call sends one call with AUTH_SYS root credentials and returns the accepted reply's
// results, or an error for a transport failure or a call that was not accepted.
func (c *rpcClient) call(prog, vers, proc uint32, args []byte) ([]byte, error) {
	c.xid++
	b := make([]byte, 4, 128+len(args))
	for _, v := range []uint32{c.xid, 0, 2, prog, vers, proc} {
		b = be32(b, v)
	}
	cred := be32(nil, 0)
	cred = opaque(cred, []byte("test"))
	cred = be32(be32(be32(cred, 0), 0), 0) // uid, gid, no groups
	b = opaque(be32(b, 1), cred)
	b = be32(be32(b, 0), 0) // AUTH_NONE verifier
	b = append(b, args...)
	binary.BigEndian.PutUint32(b, 0x80000000|uint32(len(b)-4))
	_ = c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		return nil, err
	}
	var rec []byte
	for {
		var mark [4]byte
		if _, err := io.ReadFull(c.br, mark[:]); err != nil {
			return nil, err
		}
		n := binary.BigEndian.Uint32(mark[:])
		frag := make([]byte, n&0x7fffffff)
		if _, err := io.ReadFull(c.br, frag); err != nil {
			return nil, err
		}
		rec = append(rec, frag...)
		if n&0x80000000 != 0 {
			break
		}
	}
	u := func(i int) uint32 { return binary.BigEndian.Uint32(rec[i:]) }
	if len(rec) < 24 || u(0) != c.xid || u(4) != 1 || u(8) != 0 {
		return nil, fmt.Errorf("not an accepted reply to xid %d: % x", c.xid, rec[:min(len(rec), 32)])
	}
	off := 20 + int((u(16)+3)&^3) // past the verifier: accept_stat, then the results
	if len(rec) < off+4 {
		return nil, fmt.Errorf("short reply: % x", rec)
	}
	if st := u(off); st != 0 {
		return nil, fmt.Errorf("call %d.%d.%d: accept_stat %d", prog, vers, proc, st)
	}
	return rec[off+4:], nil
}

// mnt asks MOUNT v3 for dir: the status and, on success, the root handle.
func (c *rpcClient) mnt(dir string) (uint32, []byte, error) {
	res, err := c.call(100005, 3, 1, opaque(nil, []byte(dir)))
	if err != nil {
		return 0, nil, err
	}
	st := binary.BigEndian.Uint32(res)
	if st != 0 {
		return st, nil, nil
	}
	n := binary.BigEndian.Uint32(res[4:])
	return 0, res[8 : 8+n], nil
}

// getattr asks NFSv3 GETATTR of fh and returns the status and the file type.
func (c *rpcClient) getattr(fh []byte) (status, ftype uint32, err error) {
	res, err := c.call(100003, 3, 1, opaque(nil, fh))
	if err != nil {
		return 0, 0, err
	}
	status = binary.BigEndian.Uint32(res)
	if status == 0 {
		ftype = binary.BigEndian.Uint32(res[4:])
	}
	return status, ftype, nil
}

// getport asks the portmapper (PMAP v2 GETPORT) where prog v3 over TCP is.
func (c *rpcClient) getport(prog uint32) (uint32, error) {
	res, err := c.call(100000, 2, 3, be32(be32(be32(be32(nil, prog), 3), 6), 0))
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(res), nil
}

const (
	mnt3OK    = 0
	mnt3Noent = 2
	mnt3Acces = 13
	nf3Dir    = 2
)

// nfsSite is a cluster store with statelite images, and the current view of it that
// the service reads (reloaded by the test after each change, as provd's poller would).
type nfsSite struct {
	t   *testing.T
	ctx context.Context
	db  *cluster.DB
	dir string
	cur atomic.Pointer[cluster.View]
}

func newNFSSite(t *testing.T) *nfsSite {
	t.Helper()
	s := &nfsSite{t: t, ctx: context.Background(), dir: t.TempDir()}
	db, err := cluster.Open(s.ctx, filepath.Join(s.dir, "provkit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s.db = db
	return s
}

func (s *nfsSite) Current() *cluster.View { return s.cur.Load() }

func (s *nfsSite) reload() {
	s.t.Helper()
	v, err := cluster.LoadView(s.ctx, s.db)
	if err != nil {
		s.t.Fatal(err)
	}
	s.cur.Store(v)
}

func (s *nfsSite) define(typ, name string, attrs ...string) {
	s.t.Helper()
	d := cluster.Definition{Type: typ, Names: []string{name}, Mode: cluster.ModeChange}
	for _, a := range attrs {
		k, v, _ := strings.Cut(a, "=")
		d.Attrs = append(d.Attrs, cluster.Assign{Attr: k, Value: v})
	}
	if _, err := cluster.Define(s.ctx, s.db, d); err != nil {
		s.t.Fatalf("chdef -t %s %s: %v", typ, name, err)
	}
	s.reload()
}

// image makes osimage name's root filesystem (unless noRoot) and defines it statelite.
func (s *nfsSite) image(name string, noRoot bool) string {
	s.t.Helper()
	dir := filepath.Join(s.dir, "install", name)
	if !noRoot {
		makeRoot(s.t, filepath.Join(dir, "rootimg"))
	}
	s.define("osimage", name, "provmethod=statelite", "rootimgdir="+dir)
	return filepath.Join(dir, "rootimg")
}

func makeRoot(t *testing.T, root string) {
	t.Helper()
	for _, d := range []string{"etc", "var/log", "tmp", "usr/bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// listeners records the sockets the service opens.
type listeners struct {
	mu    sync.Mutex
	addrs map[string]string // "tcp <asked>" -> actual address
}

func (l *listeners) listen(ctx context.Context, network, addr string) (net.Listener, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, network, addr)
	if err == nil {
		l.mu.Lock()
		l.addrs[addr] = ln.Addr().String()
		l.mu.Unlock()
	}
	return ln, err
}

func (l *listeners) get(addr string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addrs[addr]
}

// eventually retries f until it returns nil or 10 s pass.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNFSServiceFollowsTables serves statelite images from the tables and changes them
// under the running service: each client is the node its address says, addresses outside
// the networks table or of no node mount nothing, new images appear, built images appear
// without a table change, and handles stay valid across the restarts this takes.
func TestNFSServiceFollowsTables(t *testing.T) {
	s := newNFSSite(t)
	s.define("site", cluster.SiteObjectName, "statelitedir="+filepath.Join(s.dir, "state"))
	s.define("network", "lo", "net=127.0.0.0", "mask=255.255.255.0")
	before := runtime.NumGoroutine() // the store's are counted
	s.define("node", "n1", "groups=all", "ip=127.0.0.11")
	s.define("node", "far", "groups=all", "ip=127.0.1.13") // outside the networks
	root1 := s.image("img1", false)
	if err := os.WriteFile(filepath.Join(root1, "usr/bin/tool"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}

	ls := &listeners{addrs: map[string]string{}}
	svc := &nfsService{Views: s, Addr: "127.0.0.1:0", PortmapAddr: "127.0.0.2:0", Insecure: true,
		Interval: 10 * time.Millisecond, Retry: 20 * time.Millisecond, Listen: ls.listen,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx) }()
	var srv string
	eventually(t, "the NFS socket", func() error {
		if srv = ls.get("127.0.0.1:0"); srv == "" {
			return errors.New("not listening")
		}
		return nil
	})

	// tryMount is a mount that may meet a restart (the connection is closed: a client
	// reconnects).
	tryMount := func(from, dir string) (uint32, error) {
		st, _, err := dialRPC(t, from, srv).mnt(dir)
		return st, err
	}
	mount := func(from, dir string) (uint32, []byte) {
		t.Helper()
		st, fh, err := dialRPC(t, from, srv).mnt(dir)
		if err != nil {
			t.Fatalf("MNT %s from %s: %v", dir, from, err)
		}
		return st, fh
	}
	st, fh1 := mount("127.0.0.11", root1)
	if st != mnt3OK {
		t.Fatalf("n1: MNT %s = %d, want OK", root1, st)
	}
	for _, tc := range []struct{ from, dir, who string }{
		{"127.0.0.12", root1, "an address of no node"},
		{"127.0.1.13", root1, "a node outside the networks table"},
	} {
		if st, _ := mount(tc.from, tc.dir); st != mnt3Acces {
			t.Errorf("%s (%s): MNT %s = %d, want MNT3ERR_ACCES", tc.who, tc.from, tc.dir, st)
		}
	}
	if st, _ := mount("127.0.0.11", "/elsewhere"); st != mnt3Noent {
		t.Errorf("n1: MNT /elsewhere = %d, want MNT3ERR_NOENT", st)
	}
	pm := dialRPC(t, "127.0.0.11", ls.get("127.0.0.2:0"))
	_, nfsPort, _ := net.SplitHostPort(srv)
	for _, prog := range []uint32{100003, 100005} {
		if p, err := pm.getport(prog); err != nil || fmt.Sprint(p) != nfsPort {
			t.Errorf("portmapper GETPORT %d = %d, %v; want %s", prog, p, err, nfsPort)
		}
	}

	// A new image: the server restarts with both exports; n1's handle of img1 still works.
	root2 := s.image("img2", false)
	eventually(t, "img2 exported", func() error {
		if st, err := tryMount("127.0.0.11", root2); err != nil || st != mnt3OK {
			return fmt.Errorf("MNT %s = %d, %v", root2, st, err)
		}
		return nil
	})
	if st, ft, err := dialRPC(t, "127.0.0.11", srv).getattr(fh1); err != nil || st != 0 || ft != nf3Dir {
		t.Errorf("GETATTR of img1's root handle after the restart = status %d type %d, %v; want a directory", st, ft, err)
	}
	if got := svc.restarts.Load(); got != 1 {
		t.Errorf("restarts = %d, want 1", got)
	}

	// An image whose root is not built yet is exported once it is, without a table change.
	root3 := s.image("img3", true)
	time.Sleep(50 * time.Millisecond)
	if st, err := tryMount("127.0.0.11", root3); err == nil && st == mnt3OK {
		t.Fatalf("MNT %s of an image not built = OK", root3)
	}
	makeRoot(t, root3)
	eventually(t, "img3 exported once built", func() error {
		if st, err := tryMount("127.0.0.11", root3); err != nil || st != mnt3OK {
			return fmt.Errorf("MNT %s = %d, %v", root3, st, err)
		}
		return nil
	})

	// An image that is no longer statelite is no longer exported.
	s.define("osimage", "img1", "provmethod=netboot")
	eventually(t, "img1 withdrawn", func() error {
		if st, err := tryMount("127.0.0.11", root1); err != nil || st != mnt3Noent {
			return fmt.Errorf("MNT %s = %d, %v", root1, st, err)
		}
		return nil
	})
	if got := svc.exports.Load(); got != 2 {
		t.Errorf("exports = %d, want 2", got)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v after cancel, want nil", err)
	}
	// Every socket is closed, every goroutine gone.
	if c, err := net.DialTimeout("tcp", srv, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Serve returned", srv)
	}
	eventually(t, "goroutines", func() error {
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			return fmt.Errorf("%d goroutines, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
		return nil
	})
}

func TestNFSServiceListenErrors(t *testing.T) {
	s := newNFSSite(t)
	s.define("site", cluster.SiteObjectName, "statelitedir="+filepath.Join(s.dir, "state"))
	s.define("network", "lo", "net=127.0.0.0", "mask=255.255.255.0")

	// Nothing to export: nothing listens, even on an address that cannot be had.
	fail := func(context.Context, string, string) (net.Listener, error) {
		return nil, errors.New("address already in use")
	}
	svc := &nfsService{Views: s, Addr: "127.0.0.1:0", Interval: 10 * time.Millisecond, Listen: fail}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := svc.Serve(ctx); err != nil {
		t.Errorf("Serve with no statelite image = %v, want nil (no socket needed)", err)
	}

	// An image to export at start and a socket that cannot be opened: Serve fails.
	s.image("img", false)
	if err := svc.Serve(context.Background()); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("Serve = %v, want the listen error", err)
	}
	occupied, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer occupied.Close()
	svc = &nfsService{Views: s, Addr: "127.0.0.1:0", PortmapAddr: occupied.Addr().String()}
	if err := svc.Serve(context.Background()); err == nil || !strings.Contains(err.Error(), "is rpcbind running?") {
		t.Errorf("Serve with the portmapper port taken = %v, want an error naming rpcbind", err)
	}
}

func TestNFSServiceBadStateDir(t *testing.T) {
	s := newNFSSite(t)
	s.define("site", cluster.SiteObjectName, "statelitedir="+filepath.Join(s.dir, "install", "state"), "installdir="+filepath.Join(s.dir, "install"))
	s.define("network", "lo", "net=127.0.0.0", "mask=255.255.255.0")
	s.image("img", false)
	exports, problems, _ := (&nfsService{Views: s}).compute(s.Current(), slog.New(slog.DiscardHandler))
	if len(exports) != 0 || len(problems) != 1 || !strings.Contains(problems[0], "which provd serves over HTTP") {
		t.Errorf("compute = %v, %q; want no export and the state directory refused", exports, problems)
	}
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ glue.ViewSource = (*nfsSite)(nil)
