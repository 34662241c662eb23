package tftp_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/provkit/provkit/tftp"
	"github.com/provkit/provkit/tftp/tftptest"

	"github.com/provkit/provkit/internal/testenv"
)

// recorder collects OnTransfer records.
type recorder struct {
	mu sync.Mutex
	ts []tftp.Transfer
}

func (r *recorder) add(t tftp.Transfer) {
	r.mu.Lock()
	r.ts = append(r.ts, t)
	r.mu.Unlock()
}

func (r *recorder) all() []tftp.Transfer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]tftp.Transfer(nil), r.ts...)
}

// waitRecords waits until n transfers were recorded.
func (r *recorder) wait(t *testing.T, n int) []tftp.Transfer {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ts := r.all(); len(ts) >= n {
			return ts
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d transfers recorded, want %d", len(r.all()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// serve starts s on a loopback socket and stops it when the test ends, checking that
// Serve returns nil.
func serve(t *testing.T, s *tftp.Server) (netip.AddrPort, *recorder) {
	t.Helper()
	testenv.NoGoroutineLeak(t)
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	s.Conn = conn
	s.OnTransfer = rec.add
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return conn.LocalAddr().(*net.UDPAddr).AddrPort(), rec
}

// bootRoot makes a boot root with test files, and a secret outside it.
func bootRoot(t *testing.T) (root string, files map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	root = filepath.Join(dir, "root")
	files = map[string][]byte{
		"small":             []byte("hello, node\n"),
		"empty":             {},
		"three-blocks":      randBytes(3 * 1468),
		"big":               randBytes(3<<20 + 123),
		"pxelinux.cfg/x":    []byte("DEFAULT local\n"),
		"xcat/a/b/c/kernel": randBytes(70000),
	}
	for name, data := range files {
		p := filepath.Join(root, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, data, 0o644))
	}
	must(t, os.WriteFile(filepath.Join(dir, "secret"), []byte("SECRET"), 0o600))
	must(t, os.Symlink("../secret", filepath.Join(root, "escape")))
	must(t, os.Symlink(filepath.Join(dir, "secret"), filepath.Join(root, "escape-abs")))
	must(t, os.Symlink("/etc/passwd", filepath.Join(root, "passwd")))
	must(t, os.Symlink("small", filepath.Join(root, "link-in")))
	must(t, os.Symlink("..", filepath.Join(root, "up")))
	must(t, syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	files["link-in"] = files["small"]
	return root, files
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func openDir(t *testing.T, root string) *tftp.Dir {
	t.Helper()
	d, err := tftp.OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func get(t *testing.T, addr netip.AddrPort, name string, o tftptest.Options) ([]byte, tftptest.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var buf bytes.Buffer
	res, err := tftptest.Get(ctx, addr, name, &buf, o)
	return buf.Bytes(), res, err
}

func TestServeTransfers(t *testing.T) {
	root, files := bootRoot(t)
	addr, rec := serve(t, &tftp.Server{Files: openDir(t, root)})
	tests := []struct {
		name   string
		file   string
		opts   tftptest.Options
		bs, ws int
	}{
		{"lockstep 512", "big", tftptest.Options{}, 512, 1},
		{"blksize 1468", "big", tftptest.Options{BlockSize: 1468, TSize: true}, 1468, 1},
		{"blksize 8192 window 16", "big", tftptest.Options{BlockSize: 8192, WindowSize: 16, TSize: true}, 8192, 16},
		{"window 16 at 1468", "big", tftptest.Options{BlockSize: 1468, WindowSize: 16}, 1468, 16},
		{"window 4, file a multiple of the block", "three-blocks", tftptest.Options{BlockSize: 1468, WindowSize: 4}, 1468, 4},
		{"lockstep, file a multiple of the block", "three-blocks", tftptest.Options{BlockSize: 1468}, 1468, 1},
		{"window larger than the file", "small", tftptest.Options{WindowSize: 64}, 512, 64},
		{"empty file", "empty", tftptest.Options{TSize: true}, 512, 1},
		{"empty file windowed", "empty", tftptest.Options{WindowSize: 8}, 512, 8},
		{"leading slash and double slashes", "/xcat/a/b/c//kernel", tftptest.Options{BlockSize: 1024}, 1024, 1},
		{"symlink inside the root", "link-in", tftptest.Options{}, 512, 1},
		{"block number rollover", "big", tftptest.Options{BlockSize: 32, WindowSize: 64}, 32, 64},
		// Windows of 64 KiB blocks overflow the client's socket buffer: a short client
		// timeout makes it ask again soon.
		{"blksize capped at 65464", "big", tftptest.Options{BlockSize: 65464, WindowSize: 4, Timeout: 50 * time.Millisecond, Retries: 50}, 65464, 4},
		{"window capped by memory", "big", tftptest.Options{BlockSize: 65464, WindowSize: 64, Timeout: 50 * time.Millisecond, Retries: 50}, 65464, 8},
		{"blksize below 8 ignored", "small", tftptest.Options{BlockSize: 4}, 512, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, res, err := get(t, addr, tt.file, tt.opts)
			if err != nil {
				t.Fatalf("Get(%q, %+v): %v", tt.file, tt.opts, err)
			}
			want := files[strings.TrimLeft(strings.ReplaceAll(tt.file, "//", "/"), "/")]
			if !bytes.Equal(got, want) {
				t.Fatalf("Get(%q) = %d bytes, want %d (content differs)", tt.file, len(got), len(want))
			}
			if res.BlockSize != tt.bs || res.WindowSize != tt.ws {
				t.Errorf("negotiated blksize %d windowsize %d, want %d %d", res.BlockSize, res.WindowSize, tt.bs, tt.ws)
			}
			if tt.opts.TSize && res.TSize != int64(len(want)) {
				t.Errorf("tsize %d, want %d", res.TSize, len(want))
			}
		})
	}
	ts := rec.wait(t, len(tests))
	for _, tr := range ts {
		if tr.Err != nil || tr.Bytes != tr.Size || tr.Proto != "tftp" || !tr.Client.Addr().IsLoopback() {
			t.Errorf("transfer record %+v: want success with Bytes == Size from loopback", tr)
		}
	}
}

// lossyConn drops every nth packet the server sends.
type lossyConn struct {
	net.Conn
	n, i    int
	dropped *atomic.Int64
}

func (c *lossyConn) Write(p []byte) (int, error) {
	c.i++
	if c.i%c.n == 0 {
		c.dropped.Add(1)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func TestServeLoss(t *testing.T) {
	root, files := bootRoot(t)
	var dropped atomic.Int64
	s := &tftp.Server{
		Files:   openDir(t, root),
		Timeout: 50 * time.Millisecond,
		DialTransfer: func(local netip.Addr, client netip.AddrPort) (net.Conn, error) {
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(client))
			if err != nil {
				return nil, err
			}
			// Wrapping hides *net.UDPConn: one write per packet, so loss is per packet.
			return &lossyConn{Conn: c, n: 7, dropped: &dropped}, nil
		},
	}
	addr, rec := serve(t, s)
	for _, o := range []tftptest.Options{
		{BlockSize: 1468},
		{BlockSize: 1468, WindowSize: 8},
		{BlockSize: 512, WindowSize: 16, TSize: true},
	} {
		seen := map[uint64]bool{}
		o.Timeout = 200 * time.Millisecond
		o.Retries = 20
		o.Drop = func(block uint64) bool {
			// Lose the first copy of every 11th block.
			if block%11 == 0 && !seen[block] {
				seen[block] = true
				return true
			}
			return false
		}
		got, _, err := get(t, addr, "xcat/a/b/c/kernel", o)
		if err != nil {
			t.Fatalf("Get with loss %+v: %v", o, err)
		}
		if !bytes.Equal(got, files["xcat/a/b/c/kernel"]) {
			t.Fatalf("Get with loss %+v: content differs (%d bytes)", o, len(got))
		}
	}
	ts := rec.wait(t, 3)
	for _, tr := range ts {
		if tr.Err != nil || tr.Resent == 0 {
			t.Errorf("transfer %+v: want success after resending", tr)
		}
	}
	if dropped.Load() == 0 {
		t.Error("the lossy socket dropped nothing")
	}
}

func TestServeErrors(t *testing.T) {
	root, _ := bootRoot(t)
	addr, rec := serve(t, &tftp.Server{Files: openDir(t, root)})
	tests := []struct {
		name string
		code uint16
		want error
	}{
		{"missing", 1, fs.ErrNotExist},
		{"../secret", 2, tftp.ErrBadName},
		{"/../secret", 2, tftp.ErrBadName},
		{"escape", 2, fs.ErrPermission},
		{"escape-abs", 2, fs.ErrPermission},
		{"passwd", 2, fs.ErrPermission},
		{"up/secret", 2, fs.ErrPermission},
		{"fifo", 1, fs.ErrNotExist},
		{"xcat", 1, fs.ErrNotExist},
		{strings.Repeat("a/", 600), 2, tftp.ErrBadName},
	}
	for i, tt := range tests {
		_, _, err := get(t, addr, tt.name, tftptest.Options{})
		var se *tftptest.ServerError
		if !errors.As(err, &se) || se.Code != tt.code {
			t.Errorf("Get(%q) error %v, want server error code %d", tt.name, err, tt.code)
		}
		if tr := rec.wait(t, i+1)[i]; !errors.Is(tr.Err, tt.want) {
			t.Errorf("record of %q: error %v, want %v", tt.name, tr.Err, tt.want)
		}
	}
}

func TestServeRefusesWrites(t *testing.T) {
	root, _ := bootRoot(t)
	addr, rec := serve(t, &tftp.Server{Files: openDir(t, root)})
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	must(t, err)
	defer c.Close()
	send := func(p []byte) []byte {
		_, err := c.WriteToUDPAddrPort(p, addr)
		must(t, err)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 1024)
		n, _, err := c.ReadFromUDPAddrPort(buf)
		must(t, err)
		return buf[:n]
	}
	wrq := tftp.Request{Write: true, Name: "small", Mode: "octet"}.AppendTo(nil)
	if got := send(wrq); !bytes.HasPrefix(got, []byte{0, 5, 0, 2}) {
		t.Errorf("answer to WRQ % x, want ERROR 2", got)
	}
	if got := send([]byte{0, 1, 'f', 0}); !bytes.HasPrefix(got, []byte{0, 5, 0, 4}) {
		t.Errorf("answer to a malformed RRQ % x, want ERROR 4", got)
	}
	mail := tftp.Request{Name: "small", Mode: "mail"}.AppendTo(nil)
	if got := send(mail); !bytes.HasPrefix(got, []byte{0, 5, 0, 4}) {
		t.Errorf("answer to mode mail % x, want ERROR 4", got)
	}
	ts := rec.wait(t, 2)
	if !errors.Is(ts[0].Err, tftp.ErrWriteRefused) {
		t.Errorf("record of WRQ: %v, want ErrWriteRefused", ts[0].Err)
	}
	if content, err := os.ReadFile(filepath.Join(root, "small")); err != nil || string(content) != "hello, node\n" {
		t.Errorf("small changed: %q, %v", content, err)
	}
}

// TestServeShutdown cancels Serve while a transfer waits for a client that never
// answers: Serve returns nil at once, the client hears why, and nothing leaks.
func TestServeShutdown(t *testing.T) {
	testenv.NoGoroutineLeak(t)
	root, _ := bootRoot(t)
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	must(t, err)
	rec := &recorder{}
	s := &tftp.Server{Files: openDir(t, root), Conn: conn, Timeout: time.Hour, OnTransfer: rec.add}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()

	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	must(t, err)
	defer c.Close()
	_, err = c.WriteToUDPAddrPort(tftp.Request{Name: "big", Mode: "octet"}.AppendTo(nil), conn.LocalAddr().(*net.UDPAddr).AddrPort())
	must(t, err)
	buf := make([]byte, 1024)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := c.ReadFromUDPAddrPort(buf); err != nil || n != 516 {
		t.Fatalf("first DATA: %d bytes, %v", n, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil || !bytes.HasPrefix(buf[:n], []byte{0, 5, 0, 0}) {
		t.Errorf("after shutdown the client got % x, %v; want ERROR 0", buf[:n], err)
	}
	ts := rec.all()
	if len(ts) != 1 || !errors.Is(ts[0].Err, context.Canceled) {
		t.Errorf("records %+v, want one ending in context.Canceled", ts)
	}
}

func TestServeBusyAndDuplicates(t *testing.T) {
	root, _ := bootRoot(t)
	addr, rec := serve(t, &tftp.Server{Files: openDir(t, root), MaxTransfers: 1, Timeout: 200 * time.Millisecond, Retries: 1})
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	must(t, err)
	defer c.Close()
	rrq := tftp.Request{Name: "big", Mode: "octet"}.AppendTo(nil)
	// The same RRQ three times: one transfer (retransmitted RRQs are ignored).
	for range 3 {
		_, err = c.WriteToUDPAddrPort(rrq, addr)
		must(t, err)
	}
	buf := make([]byte, 1024)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
		t.Fatal(err)
	}
	// A second client while the only slot is taken: dropped, recorded as busy.
	_, _, err = get(t, addr, "small", tftptest.Options{Timeout: 100 * time.Millisecond, Retries: 1})
	if err == nil {
		t.Error("second transfer got through MaxTransfers 1")
	}
	ts := rec.wait(t, 3)
	var busy, timedOut int
	for _, tr := range ts {
		switch {
		case errors.Is(tr.Err, tftp.ErrBusy):
			busy++
		case errors.Is(tr.Err, tftp.ErrTimeout):
			timedOut++
		}
	}
	if busy < 1 || timedOut != 1 {
		t.Errorf("records %+v: want busy drops and one timed-out transfer", ts)
	}
	// The slot is free again.
	if _, _, err := get(t, addr, "small", tftptest.Options{}); err != nil {
		t.Errorf("Get after the slot freed: %v", err)
	}
}

func TestServeZeroValue(t *testing.T) {
	addr, _ := serve(t, &tftp.Server{})
	_, _, err := get(t, addr, "anything", tftptest.Options{})
	var se *tftptest.ServerError
	if !errors.As(err, &se) || se.Code != 1 {
		t.Errorf("Get from a zero Server: %v, want file not found", err)
	}
}

func TestServeNetascii(t *testing.T) {
	files := tftp.FilesFunc(func(context.Context, netip.Addr, string) (tftp.File, error) {
		return tftp.NewFile("f", time.Time{}, []byte("a\nb\rc")), nil
	})
	addr, _ := serve(t, &tftp.Server{Files: files})
	got, _, err := get(t, addr, "f", tftptest.Options{Mode: "netascii"})
	if err != nil || string(got) != "a\r\nb\r\x00c" {
		t.Errorf("netascii Get = %q, %v; want %q", got, err, "a\r\nb\r\x00c")
	}
}

func TestServeListenError(t *testing.T) {
	s := &tftp.Server{Addr: "127.0.0.1:99999"}
	if err := s.Serve(context.Background()); err == nil {
		t.Error("Serve on a bad address returned nil")
	}
}
