package nfsroot

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/provkit/provkit/nfsroot/internal/xdr"
)

// FuzzServeCall sends arbitrary NFS, MOUNT and portmapper calls (argument bytes from the
// fuzzer, on a real server over loopback) and checks that the server answers every call with
// a well-formed reply, or drops the connection for what is not RPC at all, and keeps serving:
// a NULL call on a fresh connection must still work afterwards.
func FuzzServeCall(f *testing.F) {
	ts := startServer(f, testImage(f), f.TempDir())
	c0, rootFH := mounted(f, ts, "127.0.0.1:0", root0)
	// Some state to play with.
	_, tmp := c0.lookup(rootFH, "tmp")
	_, file := c0.create(tmp, "f", createUnchecked, 0o644, nil)
	c0.write(file, 0, "hello")
	var conns []*client
	for _, id := range []uint32{0, 1000, 2000} {
		conns = append(conns, dial(f, ts.addr, "127.0.0.1:0", xdr.Creds{Flavor: xdr.AuthSys, UID: id, GID: id}))
	}
	root := handle{export: exportID("/images/compute"), id: rootID("/images/compute")}.encode()
	args := func(build func(e *xdr.Encoder)) []byte {
		e := &xdr.Encoder{}
		build(e)
		return e.B
	}
	seeds := []struct {
		prog, proc uint32
		args       []byte
	}{
		{progNFS, procGetattr, args(func(e *xdr.Encoder) { e.Opaque(root) })},
		{progNFS, procLookup, args(func(e *xdr.Encoder) { e.Opaque(root); e.String("tmp") })},
		{progNFS, procLookup, args(func(e *xdr.Encoder) { e.Opaque(root); e.String("..") })},
		{progNFS, procReaddirplus, args(func(e *xdr.Encoder) { e.Opaque(root); e.Uint64(0); e.Uint64(0); e.Uint32(512); e.Uint32(4096) })},
		{progNFS, procReaddir, args(func(e *xdr.Encoder) { e.Opaque(root); e.Uint64(3); e.Uint64(0); e.Uint32(4096) })},
		{progNFS, procRead, args(func(e *xdr.Encoder) { e.Opaque(root); e.Uint64(0); e.Uint32(100) })},
		{progNFS, procAccess, args(func(e *xdr.Encoder) { e.Opaque(root); e.Uint32(0x3f) })},
		{progNFS, procCreate, args(func(e *xdr.Encoder) { e.Opaque(root); e.String("x"); e.Uint32(2); e.Uint64(1) })},
		{progNFS, procMkdir, args(func(e *xdr.Encoder) {
			e.Opaque(root)
			e.String("d")
			e.Uint32(0)
			e.Uint32(0)
			e.Uint32(0)
			e.Uint32(0)
			e.Uint32(0)
			e.Uint32(0)
		})},
		{progNFS, procSetattr, args(func(e *xdr.Encoder) {
			e.Opaque(root)
			e.Bool(true)
			e.Uint32(0o777)
			e.Uint32(0)
			e.Uint32(0)
			e.Uint32(0)
			e.Uint32(1)
			e.Uint32(2)
			e.Uint32(5)
			e.Uint32(6)
			e.Bool(false)
		})},
		{progNFS, procWrite, args(func(e *xdr.Encoder) { e.Opaque(root); e.Uint64(0); e.Uint32(3); e.Uint32(2); e.String("abc") })},
		{progNFS, procRename, args(func(e *xdr.Encoder) { e.Opaque(root); e.String("a"); e.Opaque(root); e.String("b") })},
		{progNFS, procSymlink, args(func(e *xdr.Encoder) {
			e.Opaque(root)
			e.String("l")
			e.Uint32(0)
			e.Uint32(0)
			e.Uint32(0)
			e.Uint32(0)
			e.Uint32(0)
			e.Uint32(0)
			e.String("/etc")
		})},
		{progNFS, procMknod, args(func(e *xdr.Encoder) {
			e.Opaque(root)
			e.String("n")
			e.Uint32(3)
			e.Uint32(0)
			e.Uint32(0)
			e.Uint32(0)
			e.Uint32(0)
			e.Uint32(0)
			e.Uint32(0)
			e.Uint32(8)
			e.Uint32(0)
		})},
		{progNFS, procLink, args(func(e *xdr.Encoder) { e.Opaque(root); e.Opaque(root); e.String("x") })},
		{progNFS, procRemove, args(func(e *xdr.Encoder) { e.Opaque(root); e.String("tmp") })},
		{progNFS, procFsstat, args(func(e *xdr.Encoder) { e.Opaque(root) })},
		{progMount, mntMnt, args(func(e *xdr.Encoder) { e.String("/images/compute/tmp") })},
		{progMount, mntExport, nil},
		{progPortmap, pmapGetport, args(func(e *xdr.Encoder) { e.Uint32(progNFS); e.Uint32(3); e.Uint32(6); e.Uint32(0) })},
		{progPortmap, rpcbGetaddr, args(func(e *xdr.Encoder) { e.Uint32(progNFS); e.Uint32(3); e.String("tcp"); e.String(""); e.String("") })},
	}
	for _, s := range seeds {
		f.Add(s.prog, uint32(3), s.proc, uint32(0), s.args)
	}
	f.Fuzz(func(t *testing.T, prog, vers, proc, uid uint32, argBytes []byte) {
		switch prog % 3 {
		case 0:
			prog = progNFS
		case 1:
			prog = progMount
		default:
			prog = progPortmap
		}
		if vers%4 == 0 {
			vers = 3
		}
		// One connection per identity, kept across inputs (thousands of connections would
		// exhaust the loopback's ports).
		c := conns[uid%3]
		// Replace the export's root handle bytes the fuzzer may mangle with the real one
		// sometimes, so that deep paths are reached.
		if len(argBytes) >= 20 && argBytes[0] == 0 && argBytes[3] == 16 {
			copy(argBytes[4:20], rootFH)
		}
		r, err := c.tryCall(prog, vers%5, proc%24, func(e *xdr.Encoder) { e.B = append(e.B, argBytes...) })
		if err != nil {
			t.Fatalf("call %d.%d.%d: %v", prog, vers, proc, err)
		}
		if r.XID != c.xid {
			t.Fatalf("reply XID %d, want %d", r.XID, c.xid)
		}
		// The server, and this connection, are still healthy.
		if r, err := c.tryCall(progNFS, 3, procNull, nil); err != nil || !r.Accepted || r.Stat != xdr.Success {
			t.Fatalf("NULL after the call: %+v, %v", r, err)
		}
	})
}

// FuzzRecords writes arbitrary bytes as the raw stream of a connection: the server may close
// the connection but must never crash or hang another client.
func FuzzRecords(f *testing.F) {
	ts := startServer(f, testImage(f), f.TempDir())
	healthy := dial(f, ts.addr, "127.0.0.1:0", root0)
	f.Add([]byte{0x80, 0, 0, 4, 0, 0, 0, 1})
	f.Add([]byte{0, 0, 0, 1, 0xff})
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, stream []byte) {
		nc, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write(stream)
		nc.(*net.TCPConn).CloseWrite()
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(nc)
		for {
			if _, err := xdr.ReadRecord(br, nil, 4<<20); err != nil {
				break
			}
		}
		nc.(*net.TCPConn).SetLinger(0) // no TIME_WAIT: thousands of inputs would use up the ports
		nc.Close()
		if r, err := healthy.tryCall(progNFS, 3, procNull, nil); err != nil || !r.Accepted {
			t.Fatalf("NULL after the stream: %+v, %v", r, err)
		}
	})
}
