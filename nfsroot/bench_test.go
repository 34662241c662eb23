package nfsroot

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
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

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
