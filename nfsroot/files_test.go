package nfsroot

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	nfs "github.com/willscott/go-nfs"
	"golang.org/x/sys/unix"

	"github.com/provkit/provkit/nfsroot/internal/xdr"
)

// startCaching starts a test server and returns its open-file cache.
func startCaching(t *testing.T, root, state string, configure func(*Server)) (*testServer, *fileCache) {
	t.Helper()
	got := make(chan *serving, 1)
	ts := startServerWith(t, root, state, func(s *Server) {
		s.onServe = func(st *serving) { got <- st }
		if configure != nil {
			configure(s)
		}
	})
	select {
	case st := <-got:
		if st.files == nil {
			t.Fatal("the server has no open-file cache")
		}
		return ts, st.files
	case err := <-ts.done:
		t.Fatalf("Serve: %v", err)
	}
	return nil, nil
}

// setSize truncates a file with SETATTR.
func (c *client) setSize(fh []byte, size uint64) status {
	c.t.Helper()
	s, _ := c.nfs(procSetattr, func(e *xdr.Encoder) {
		e.Opaque(fh)
		e.Bool(false) // mode
		e.Bool(false) // uid
		e.Bool(false) // gid
		e.Bool(true)
		e.Uint64(size)
		e.Uint32(0) // atime: don't change
		e.Uint32(0) // mtime
		e.Bool(false)
	})
	return s
}

// openFDs counts the process's open file descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestReadCacheHits(t *testing.T) {
	root := testImage(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	if err := os.WriteFile(filepath.Join(root, "usr/share/big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ts, files := startCaching(t, root, t.TempDir(), nil)
	c, fh := mounted(t, ts, "127.0.0.1:0", root0)
	_, big := c.walk(fh, "usr/share/big")
	_, tmp := c.lookup(fh, "tmp")
	_, copyFH := c.create(tmp, "copy", createGuarded, 0o644, nil)
	if s := c.write(copyFH, 0, string(data)); s != 0 {
		t.Fatalf("WRITE: %v", s)
	}
	for _, tt := range []struct {
		name string
		fh   []byte
	}{{"image", big}, {"node state", copyFH}} {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := files.snapshot()
			const chunk = 64 << 10
			var got []byte
			fds := 0
			for i := 0; ; i++ {
				s, part, eof := c.read(tt.fh, uint64(len(got)), chunk)
				if s != 0 {
					t.Fatalf("READ at %d: %v", len(got), s)
				}
				got = append(got, part...)
				switch {
				case i == 0:
					fds = openFDs(t)
				case openFDs(t) != fds:
					t.Fatalf("READ %d: %d descriptors open, %d after the first READ", i, openFDs(t), fds)
				}
				if eof {
					break
				}
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("read %d bytes, not the file's %d", len(got), len(data))
			}
			after, n := files.snapshot()
			reads := len(data) / chunk
			if d := after.misses - before.misses; d != 1 {
				t.Errorf("%d READs opened the file %d times, want once", reads, d)
			}
			if d := after.hits - before.hits; d != reads-1 {
				t.Errorf("%d READs hit the cache %d times, want %d", reads, d, reads-1)
			}
			if n == 0 {
				t.Error("no descriptor cached after the READs")
			}
		})
	}
}

// TestReadCacheSeesChanges reads a file (caching its descriptor), changes it through the
// server or behind its back, and reads it again through the same handle.
func TestReadCacheSeesChanges(t *testing.T) {
	const old = "old content\n"
	for _, tt := range []struct {
		name  string
		image bool // the file is in the image (else in n1's /tmp)
		ttl   time.Duration
		// change changes the file (named name, at path p on the server's disk) and
		// returns the handle to read again when it is not the file's own.
		change func(t *testing.T, c *client, dir, fh []byte, name, p string) []byte
		want   string
		status status
	}{
		{name: "WRITE", change: func(t *testing.T, c *client, _, fh []byte, _, _ string) []byte {
			if s := c.write(fh, 0, "NEW"); s != 0 {
				t.Fatalf("WRITE: %v", s)
			}
			return nil
		}, want: "NEW content\n"},
		{name: "WRITE past the end", change: func(t *testing.T, c *client, _, fh []byte, _, _ string) []byte {
			if s := c.write(fh, uint64(len(old)), "more\n"); s != 0 {
				t.Fatalf("WRITE: %v", s)
			}
			return nil
		}, want: old + "more\n"},
		{name: "SETATTR truncate", change: func(t *testing.T, c *client, _, fh []byte, _, _ string) []byte {
			if s := c.setSize(fh, 3); s != 0 {
				t.Fatalf("SETATTR: %v", s)
			}
			return nil
		}, want: "old"},
		{name: "REMOVE", change: func(t *testing.T, c *client, dir, _ []byte, name, _ string) []byte {
			if s := c.remove(dir, name); s != 0 {
				t.Fatalf("REMOVE: %v", s)
			}
			return nil
		}, status: nfs.NFSStatusStale},
		{name: "RENAME away (the handle follows)", change: func(t *testing.T, c *client, dir, _ []byte, name, p string) []byte {
			if s := c.rename(dir, name, dir, name+".moved"); s != 0 {
				t.Fatalf("RENAME: %v", s)
			}
			if err := os.WriteFile(p, []byte("a new file at the old name\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return nil
		}, want: old},
		{name: "RENAME another file over it", change: func(t *testing.T, c *client, dir, _ []byte, name, _ string) []byte {
			_, other := c.create(dir, name+".other", createGuarded, 0o644, nil)
			c.write(other, 0, "other file\n")
			if s := c.rename(dir, name+".other", dir, name); s != 0 {
				t.Fatalf("RENAME: %v", s)
			}
			_, fh := c.lookup(dir, name)
			return fh
		}, want: "other file\n"},
		{name: "rewritten behind the server's back", change: func(t *testing.T, _ *client, _, _ []byte, _, p string) []byte {
			if err := os.WriteFile(p, []byte("rewritten\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return nil
		}, want: "rewritten\n"},
		{name: "truncated behind the server's back", change: func(t *testing.T, _ *client, _, _ []byte, _, p string) []byte {
			if err := os.Truncate(p, 2); err != nil {
				t.Fatal(err)
			}
			return nil
		}, want: "ol"},
		{name: "replaced behind the server's back", change: func(t *testing.T, _ *client, _, _ []byte, _, p string) []byte {
			if err := os.WriteFile(p+".new", []byte("replacement\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(p+".new", p); err != nil {
				t.Fatal(err)
			}
			return nil
		}, want: "replacement\n"},
		{name: "removed behind the server's back", change: func(t *testing.T, _ *client, _, _ []byte, _, p string) []byte {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			return nil
		}, status: nfs.NFSStatusStale},
		{name: "image rewritten in place", image: true, change: func(t *testing.T, _ *client, _, _ []byte, _, p string) []byte {
			if err := os.WriteFile(p, []byte("new image content, longer than before\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return nil
		}, want: "new image content, longer than before\n"},
		{name: "image file replaced, no attribute cache", image: true, ttl: -1, change: func(t *testing.T, _ *client, _, _ []byte, _, p string) []byte {
			if err := os.WriteFile(p+".new", []byte("new image file\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(p+".new", p); err != nil {
				t.Fatal(err)
			}
			return nil
		}, want: "new image file\n"},
		{name: "image file removed, no attribute cache", image: true, ttl: -1, change: func(t *testing.T, _ *client, _, _ []byte, _, p string) []byte {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			return nil
		}, status: nfs.NFSStatusStale},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root, state := testImage(t), t.TempDir()
			name := "file"
			if err := os.WriteFile(filepath.Join(root, "usr/share", name), []byte(old), 0o644); err != nil {
				t.Fatal(err)
			}
			ts, files := startCaching(t, root, state, func(s *Server) { s.CacheTTL = tt.ttl })
			c, fh := mounted(t, ts, "127.0.0.1:0", root0)
			var dir []byte
			var p string
			if tt.image {
				_, dir = c.walk(fh, "usr/share")
				p = filepath.Join(root, "usr/share", name)
			} else {
				_, dir = c.lookup(fh, "tmp")
				_, f := c.create(dir, name, createGuarded, 0o644, nil)
				if s := c.write(f, 0, old); s != 0 {
					t.Fatalf("WRITE: %v", s)
				}
				p = filepath.Join(state, "n1/tmp", name)
			}
			_, f := c.lookup(dir, name)
			for i := range 2 {
				if s, got := c.readAll(f); s != 0 || got != old {
					t.Fatalf("READ %d before the change: %q, %v", i, got, s)
				}
			}
			if st, n := files.snapshot(); st.hits == 0 || n != 1 {
				t.Fatalf("the second READ did not hit the cache: %+v, %d cached", st, n)
			}
			if h := tt.change(t, c, dir, f, name, p); h != nil {
				f = h
			}
			s, got := c.readAll(f)
			if s != tt.status || got != tt.want {
				t.Errorf("READ after the change: %q, %v; want %q, %v", got, s, tt.want, tt.status)
			}
		})
	}
}

func TestReadCacheEviction(t *testing.T) {
	const max = 3
	ts, files := startCaching(t, testImage(t), t.TempDir(), func(s *Server) { s.MaxOpenFiles = max })
	c, fh := mounted(t, ts, "127.0.0.1:0", root0)
	_, tmp := c.lookup(fh, "tmp")
	var fhs [][]byte
	for i := range 2 * max {
		_, f := c.create(tmp, fmt.Sprint("f", i), createGuarded, 0o644, nil)
		c.write(f, 0, fmt.Sprint("content of f", i))
		fhs = append(fhs, f)
	}
	fds := 0
	for round := range 2 {
		for i, f := range fhs {
			if s, got := c.readAll(f); s != 0 || got != fmt.Sprint("content of f", i) {
				t.Fatalf("round %d: READ f%d: %q, %v", round, i, got, s)
			}
			if _, n := files.snapshot(); n > max {
				t.Fatalf("%d descriptors cached, bound %d", n, max)
			}
		}
		if round == 0 {
			fds = openFDs(t)
		} else if n := openFDs(t); n != fds {
			t.Errorf("%d descriptors open after reading %d files again, %d the first time", n, len(fhs), fds)
		}
	}
	st, n := files.snapshot()
	// Reading 6 files in a loop through 3 slots evicts on every open but the first 3.
	if n != max || st.evicted != 4*max-max || st.hits != 0 {
		t.Errorf("after two rounds over %d files: %d cached, %+v; want %d cached, %d evicted, 0 hits", len(fhs), n, st, max, 3*max)
	}
	if s, _ := c.readAll(fhs[len(fhs)-1]); s != 0 {
		t.Fatal(s)
	}
	if st, _ := files.snapshot(); st.hits != 1 {
		t.Errorf("the most recently read file was not cached: %+v", st)
	}
}

func TestReadCacheIdleFilesClosed(t *testing.T) {
	ts, files := startCaching(t, testImage(t), t.TempDir(), func(s *Server) { s.fileIdle = 40 * time.Millisecond })
	c, fh := mounted(t, ts, "127.0.0.1:0", root0)
	_, motd := c.walk(fh, "etc/motd")
	if s, got := c.readAll(motd); s != 0 || got != "welcome\n" {
		t.Fatalf("READ: %q, %v", got, s)
	}
	for i := 0; ; i++ {
		st, n := files.snapshot()
		if n == 0 {
			if st.expired != 1 {
				t.Errorf("cache emptied with %+v, want 1 expired", st)
			}
			break
		}
		if i == 1000 {
			t.Fatalf("an idle descriptor is still open after 10 s: %+v, %d cached", st, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s, got := c.readAll(motd); s != 0 || got != "welcome\n" {
		t.Errorf("READ after expiry: %q, %v", got, s)
	}
}

// TestReadCacheConcurrent reads files of the image and of the node's state from several
// connections at once, through a cache smaller than the set of files, while another
// goroutine replaces one of them behind the server's back; every READ returns the whole of
// one version of its file. Run with -race. Afterwards no descriptor or goroutine is left.
func TestReadCacheConcurrent(t *testing.T) {
	runtime.GC()
	goroutines := runtime.NumGoroutine()
	fds := openFDs(t)

	root, state := testImage(t), t.TempDir()
	const size = 200 << 10
	versions := map[string][]string{}
	for i := range 4 {
		name := fmt.Sprint("usr/share/img", i)
		content := strings.Repeat(string(rune('a'+i)), size)
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		versions[name] = []string{content}
	}
	ts, files := startCaching(t, root, state, func(s *Server) { s.MaxOpenFiles = 3 })
	c, fh := mounted(t, ts, "127.0.0.1:0", root0)
	_, tmp := c.lookup(fh, "tmp")
	for i := range 3 {
		name := fmt.Sprint("tmp/st", i)
		content := strings.Repeat(string(rune('A'+i)), size)
		_, f := c.create(tmp, fmt.Sprint("st", i), createGuarded, 0o644, nil)
		c.write(f, 0, content)
		versions[name] = []string{content}
	}
	// tmp/st0 is replaced over and over by a file of Xs or Ys, of the same size.
	swapped := filepath.Join(state, "n1/tmp/st0")
	versions["tmp/st0"] = append(versions["tmp/st0"], strings.Repeat("X", size), strings.Repeat("Y", size))
	var names []string
	for n := range versions {
		names = append(names, n)
	}

	stop := make(chan struct{})
	var swapper sync.WaitGroup
	swapper.Add(1)
	go func() {
		defer swapper.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			b := []byte(versions["tmp/st0"][1+i%2])
			if err := os.WriteFile(swapped+".new", b, 0o644); err != nil {
				t.Error(err)
				return
			}
			if err := os.Rename(swapped+".new", swapped); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()

	var readers sync.WaitGroup
	for g := range 6 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			c := dial(t, ts.addr, "127.0.0.1:0", root0)
			defer c.nc.Close()
			_, fh := c.mount("/images/compute")
			for i := range 60 {
				name := names[(g+i)%len(names)]
				if g%2 == 0 {
					name = names[0] // half of them read the same file
				}
				s, f := c.walk(fh, name)
				if s != 0 {
					t.Errorf("LOOKUP %s: %v", name, s)
					return
				}
				s, got := c.readAll(f)
				if s != 0 {
					t.Errorf("READ %s: %v", name, s)
					return
				}
				found := false
				for _, v := range versions[name] {
					found = found || got == v
				}
				if !found {
					t.Errorf("READ %s returned %d bytes that are no version of it (starting %.10q)", name, len(got), got)
					return
				}
			}
		}()
	}
	readers.Wait()
	close(stop)
	swapper.Wait()
	st, _ := files.snapshot()
	t.Logf("cache: %+v", st)
	if st.hits == 0 {
		t.Error("no READ hit the cache")
	}
	ts.stop(t)
	if _, n := files.snapshot(); n != 0 {
		t.Errorf("%d descriptors cached after Serve returned", n)
	}
	c.nc.Close()
	for i := 0; ; i++ {
		n := openFDs(t)
		if n <= fds {
			break
		}
		if i == 500 {
			t.Fatalf("%d descriptors open after Serve returned, %d before", n, fds)
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitGoroutines(t, goroutines)
}

// TestFileCacheRefs checks that a descriptor evicted, dropped, replaced or closed while a
// READ uses it stays open until that READ releases it, and is closed then.
func TestFileCacheRefs(t *testing.T) {
	dir := t.TempDir()
	open := func(name string) (int, uint64) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
		return fd, st.Ino
	}
	isOpen := func(f *openFile) bool {
		// The test holds no other descriptor with that number: a closed one reports EBADF.
		_, err := unix.FcntlInt(uintptr(f.fd), unix.F_GETFD, 0)
		return err == nil
	}
	key := func(name string) fileKey { return fileKey{rel: name} }
	for _, tt := range []struct {
		name string
		// lose makes the cache let go of the entry of "a" (held by a READ).
		lose func(c *fileCache)
	}{
		{"evicted", func(c *fileCache) {
			fd, ino := open("b")
			c.release(c.add(key("b"), fd, 1, ino))
		}},
		{"replaced by another inode", func(c *fileCache) {
			fd, ino := open("a2")
			c.release(c.add(key("a"), fd, 1, ino))
		}},
		{"stale on lookup", func(c *fileCache) {
			if f := c.get(key("a"), 1, 0); f != nil {
				t.Fatal("get with another inode returned the entry")
			}
		}},
		{"dropped", func(c *fileCache) { c.drop(key("a")) }},
		{"closed", func(c *fileCache) { c.close() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newFileCache(1, time.Minute)
			fd, ino := open("a")
			first := c.add(key("a"), fd, 1, ino)
			c.release(first)
			f := c.get(key("a"), 1, ino)
			if f != first {
				t.Fatal("get did not return the cached entry")
			}
			tt.lose(c)
			if c.get(key("a"), 1, ino) != nil {
				t.Fatal("the entry is still cached")
			}
			if !isOpen(f) {
				t.Fatal("the descriptor was closed while in use")
			}
			c.release(f)
			if isOpen(f) {
				t.Error("the descriptor is still open after its last release")
			}
			c.close()
		})
	}
	t.Run("idle, once released", func(t *testing.T) {
		c := newFileCache(1, time.Minute)
		defer c.close()
		fd, ino := open("a")
		f := c.add(key("a"), fd, 1, ino)
		c.expire(time.Now().Add(time.Hour))
		if _, n := c.snapshot(); n != 1 || !isOpen(f) {
			t.Fatal("a descriptor in use expired")
		}
		c.release(f)
		c.expire(time.Now().Add(time.Hour))
		if _, n := c.snapshot(); n != 0 || isOpen(f) {
			t.Error("an idle descriptor did not expire")
		}
	})
}

func TestReadCacheDisabled(t *testing.T) {
	got := make(chan *serving, 1)
	ts := startServerWith(t, testImage(t), t.TempDir(), func(s *Server) {
		s.MaxOpenFiles = -1
		s.onServe = func(st *serving) { got <- st }
	})
	if st := <-got; st.files != nil {
		t.Fatal("MaxOpenFiles -1 made a cache")
	}
	c, fh := mounted(t, ts, "127.0.0.1:0", root0)
	_, motd := c.walk(fh, "etc/motd")
	fds := openFDs(t)
	for range 3 {
		if s, got := c.readAll(motd); s != 0 || got != "welcome\n" {
			t.Fatalf("READ: %q, %v", got, s)
		}
	}
	if n := openFDs(t); n != fds {
		t.Errorf("%d descriptors open after the READs, %d before", n, fds)
	}
}

// TestWriteFile sends READ-sized records with sendfile over a real TCP connection: a whole
// one, and one whose file is shorter than announced (truncated after it was stat'ed), which
// must close the connection rather than send a record of the wrong length.
func TestWriteFile(t *testing.T) {
	data := bytes.Repeat([]byte("sendfile"), 100<<10/8)
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	dirfd, err := unix.Open(filepath.Dir(p), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dirfd)
	for _, tt := range []struct {
		name     string
		fd       int
		off, n   int
		complete bool
		fileErr  bool // writeFile reports an error of the file
	}{
		{"whole file", fd, 0, len(data), true, false},
		{"part", fd, 4096, 64 << 10, true, false},
		{"file shorter than announced", fd, 4096, len(data), false, false},
		{"file that cannot be read", dirfd, 0, 64 << 10, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			cli, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			srv, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			st := &serving{log: discardLogger(), inflight: 1}
			c := st.newConn(context.Background(), srv)
			defer c.cancel()
			defer srv.Close()
			if c.raw == nil {
				t.Fatal("a TCP connection has no raw socket")
			}
			hdr := []byte{0, 0, 0, 0, 'h', 'd', 'r', '!'}
			done := make(chan struct{})
			var fileErr error
			go func() {
				defer close(done)
				fileErr = c.writeFile(hdr, tt.fd, int64(tt.off), tt.n)
				srv.Close() // the end of the reply for io.ReadAll
			}()
			defer func() { <-done }()
			_ = cli.SetReadDeadline(time.Now().Add(20 * time.Second))
			got, err := io.ReadAll(cli)
			if err != nil {
				t.Fatalf("reading the reply: %v", err) // EOF ends ReadAll without an error
			}
			want := []byte{0, 0, 0, 0, 'h', 'd', 'r', '!'}
			if tt.fd == fd {
				want = append(want, data[tt.off:min(tt.off+tt.n, len(data))]...)
			}
			binary.BigEndian.PutUint32(want, uint32(4+tt.n)|1<<31)
			if !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes (mark %x), want %d (mark %x)", len(got), got[:4], len(want), want[:4])
			}
			<-done
			c.wmu.Lock()
			werr := c.werr
			c.wmu.Unlock()
			if tt.complete != (werr == nil) || (fileErr != nil) != tt.fileErr {
				t.Errorf("connection error %v, file error %v; want complete %v, file error %v", werr, fileErr, tt.complete, tt.fileErr)
			}
			if tt.fd == fd && !tt.complete && !errors.Is(werr, io.ErrUnexpectedEOF) {
				t.Errorf("connection error %v, want %v", werr, io.ErrUnexpectedEOF)
			}
		})
	}
}
