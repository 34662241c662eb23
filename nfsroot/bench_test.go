package nfsroot

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provkit/provkit/nfsroot/internal/xdr"
)

// benchConn is a connection-less conn for calling procedures in-process.
func benchConn(b *testing.B, root string) (*conn, []byte) {
	st := &serving{byID: map[uint32]*export{}, inflight: 1, log: discardLogger(), calls: make(chan struct{}, 1),
		views: ViewsFunc(func(context.Context, netip.Addr) (View, error) { return View{Node: "n1"}, nil })}
	x, err := newExport(Export{Path: "/images/bench", Root: root, StateDir: b.TempDir(), Writable: []string{"/var", "/tmp"},
		Clients: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(x.close)
	st.exports = append(st.exports, x)
	st.byID[x.id] = x
	c1, c2 := net.Pipe()
	b.Cleanup(func() { c1.Close(); c2.Close() })
	c := st.newConn(context.Background(), c1)
	c.remote = netip.MustParseAddrPort("127.0.0.1:700")
	return c, handle{export: x.id, id: x.table.idOf(0)}.encode()
}

func (c *conn) benchCall(b *testing.B, proc uint32, args func(e *xdr.Encoder)) []byte {
	e := &xdr.Encoder{}
	args(e)
	bp := getBuf()
	*bp = append((*bp)[:0], e.B...)
	reply := c.nfs(xdr.Call{XID: 1, Prog: progNFS, Vers: 3, Proc: proc, Creds: root0, Args: *bp}, bp)
	if reply == nil {
		b.Fatal("no reply")
	}
	return reply
}

// BenchmarkLookup and BenchmarkReaddirplus measure the server's own cost of a call, without
// the network: LOOKUP of usr/share/doc, and READDIRPLUS of the test image's root (or, with
// NFSROOT_BENCH_TREE set to an image such as the debootstrap tree of bench/nfsroot/run.sh,
// of its /usr/share/doc).
func BenchmarkLookup(b *testing.B) {
	root := testImage(b)
	c, fh := benchConn(b, root)
	reply := c.benchCall(b, procLookup, func(e *xdr.Encoder) { e.Opaque(fh); e.String("usr") })
	d := xdr.NewDecoder(reply[4+24:])
	if d.Uint32() != 0 {
		b.Fatal("lookup usr failed")
	}
	usr := append([]byte(nil), d.Opaque(64)...)
	reply = c.benchCall(b, procLookup, func(e *xdr.Encoder) { e.Opaque(usr); e.String("share") })
	d = xdr.NewDecoder(reply[4+24:])
	d.Uint32()
	share := append([]byte(nil), d.Opaque(64)...)
	for b.Loop() {
		c.benchCall(b, procLookup, func(e *xdr.Encoder) { e.Opaque(share); e.String("doc") })
	}
}

func BenchmarkReaddirplus(b *testing.B) {
	root := testImage(b)
	c, fh := benchConn(b, root)
	if dir := os.Getenv("NFSROOT_BENCH_TREE"); dir != "" {
		c, fh = benchConn(b, dir)
		for _, name := range []string{"usr", "share", "doc"} {
			reply := c.benchCall(b, procLookup, func(e *xdr.Encoder) { e.Opaque(fh); e.String(name) })
			d := xdr.NewDecoder(reply[4+24:])
			d.Uint32()
			fh = append([]byte(nil), d.Opaque(64)...)
		}
	}
	for b.Loop() {
		c.benchCall(b, procReaddirplus, func(e *xdr.Encoder) {
			e.Opaque(fh)
			e.Uint64(0)
			e.Uint64(0)
			e.Uint32(8192)
			e.Uint32(65536)
		})
	}
}

// BenchmarkRead measures the server's own cost of a READ (4 KiB and 1 MiB, sequential)
// of a file of the image and of a file of the node's writable state, with the open-file
// cache and without it (a descriptor opened per READ, as before the cache).
func BenchmarkRead(b *testing.B) {
	root := testImage(b)
	const size = 8 << 20
	data := bytes.Repeat([]byte("nfsroot!"), size/8)
	for _, p := range []string{"usr/share/big", "tmp/big"} {
		if err := os.WriteFile(filepath.Join(root, p), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for _, file := range []struct{ name, path string }{{"image", "usr/share/big"}, {"state", "tmp/big"}} {
		for _, cached := range []bool{true, false} {
			for _, count := range []uint32{4 << 10, 1 << 20} {
				name := fmt.Sprintf("%s/cache=%v/%dKiB", file.name, cached, count>>10)
				b.Run(name, func(b *testing.B) {
					c, fh := benchConn(b, root)
					if cached {
						files := newFileCache(0, 0)
						b.Cleanup(files.close)
						for _, x := range c.st.exports {
							x.files = files
						}
					}
					for _, comp := range strings.Split(file.path, "/") {
						reply := c.benchCall(b, procLookup, func(e *xdr.Encoder) { e.Opaque(fh); e.String(comp) })
						d := xdr.NewDecoder(reply[4+24:])
						if d.Uint32() != 0 {
							b.Fatalf("lookup %s failed", comp)
						}
						fh = append([]byte(nil), d.Opaque(64)...)
					}
					b.SetBytes(int64(count))
					off := uint64(0)
					for b.Loop() {
						reply := c.benchCall(b, procRead, func(e *xdr.Encoder) { e.Opaque(fh); e.Uint64(off); e.Uint32(count) })
						if len(reply) < int(count) {
							b.Fatalf("short READ reply: %d bytes", len(reply))
						}
						putReply(reply)
						off = (off + uint64(count)) % size
					}
				})
			}
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
