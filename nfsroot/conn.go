package nfsroot

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/provkit/provkit/nfsroot/internal/xdr"
)

// conn is one client connection. Its reader parses calls in order and hands NFS calls to at
// most MaxInFlight goroutines; replies go out whole, in completion order (RPC matches them
// by XID).
type conn struct {
	st     *serving
	ctx    context.Context
	cancel context.CancelFunc
	nc     net.Conn
	remote netip.AddrPort

	wmu  sync.Mutex
	werr error

	sem  chan struct{}
	wg   sync.WaitGroup
	idle bool // no bytes of a further call were buffered when the current one was read

	whoMu  sync.Mutex
	who    View
	whoSet bool

	laneMu sync.Mutex
	lane   *lane

	// raw is the TCP socket, for READ replies sent with sendfile(2); nil for other
	// connections.
	raw syscall.RawConn
}

func (st *serving) newConn(ctx context.Context, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(ctx)
	c := &conn{st: st, ctx: ctx, cancel: cancel, nc: nc, remote: addrPortOf(nc.RemoteAddr()),
		sem: make(chan struct{}, st.inflight)}
	if tc, ok := nc.(*net.TCPConn); ok {
		c.raw, _ = tc.SyscallConn()
	}
	return c
}

var recPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func getBuf() *[]byte { return recPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > maxRecord+64<<10 {
		return
	}
	*b = (*b)[:0]
	recPool.Put(b)
}

func (c *conn) serve() {
	defer func() {
		c.cancel()
		c.wg.Wait()
		c.laneMu.Lock()
		if c.lane != nil {
			c.lane.close()
		}
		c.laneMu.Unlock()
		c.nc.Close()
	}()
	go func() { // unblock the reader when the server stops
		<-c.ctx.Done()
		c.nc.Close()
	}()
	br := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.st.idle))
		bp := getBuf()
		rec, err := xdr.ReadRecord(br, *bp, maxRecord)
		if err != nil {
			putBuf(bp)
			if !errors.Is(err, net.ErrClosed) && c.ctx.Err() == nil && !isEOF(err) {
				c.st.log.Debug("connection closed", "ip", c.remote.Addr().String(), "err", err)
			}
			return
		}
		*bp = rec
		c.idle = br.Buffered() == 0
		call, err := xdr.ParseCall(rec)
		if err != nil {
			if errors.Is(err, xdr.ErrBadCred) {
				c.replyAuth(call.XID, xdr.AuthBadCred)
				putBuf(bp)
				continue
			}
			putBuf(bp)
			c.st.log.Debug("not an RPC call", "ip", c.remote.Addr().String(), "err", err)
			return
		}
		c.dispatch(call, bp)
	}
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// dispatch routes one call; it owns bp (the record) and returns it to the pool when done.
func (c *conn) dispatch(call xdr.Call, bp *[]byte) {
	switch call.Prog {
	case progPortmap:
		c.write(c.portmapCall(call))
		putBuf(bp)
		return
	case progMount, progNFS:
	default:
		c.write(acceptReply(call.XID, xdr.ProgUnavail))
		putBuf(bp)
		return
	}
	if call.Vers != 3 {
		e := newReply(call.XID, xdr.ProgMismatch)
		e.Uint32(3)
		e.Uint32(3)
		c.write(e.B)
		putBuf(bp)
		return
	}
	if !c.st.srv.Insecure && c.remote.Port() >= 1024 {
		c.st.log.Warn("call from an unprivileged port refused (set Insecure to allow)", "ip", c.remote.Addr().String(), "port", c.remote.Port())
		c.replyAuth(call.XID, xdr.AuthTooWeak)
		putBuf(bp)
		return
	}
	if call.Prog == progMount {
		c.write(c.mount(call))
		putBuf(bp)
		return
	}
	select {
	case c.sem <- struct{}{}:
	case <-c.ctx.Done():
		putBuf(bp)
		return
	}
	select {
	case c.st.calls <- struct{}{}:
	case <-c.ctx.Done():
		<-c.sem
		putBuf(bp)
		return
	}
	release := func() {
		<-c.st.calls
		<-c.sem
	}
	if c.idle && len(c.sem) == 1 {
		// Nothing else in progress and no call waiting behind this one: answer it on the
		// reader goroutine. A client with one call outstanding at a time (most metadata
		// walks, and a reader that waits for each READ, as libnfs's nfs-cat) then costs no
		// goroutine switch per call. A large READ costs little time here: its data leaves
		// with sendfile, from a descriptor kept open.
		if reply := c.nfs(call, bp); reply != nil {
			c.write(reply)
			putReply(reply)
		}
		release()
		return
	}
	c.wg.Add(1)
	go func() {
		defer func() {
			release()
			c.wg.Done()
		}()
		if reply := c.nfs(call, bp); reply != nil {
			c.write(reply)
			putReply(reply)
		}
	}()
}

// bigPool holds reply buffers large enough for a READ of maxIO bytes, smallPool the
// others.
var (
	bigPool   = sync.Pool{New: func() any { b := make([]byte, 0, maxIO+4096); return &b }}
	smallPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}
)

func getReply() []byte { return (*bigPool.Get().(*[]byte))[:0] }

func putReply(b []byte) {
	switch c := cap(b); {
	case c >= maxIO+4096:
		b = b[:0]
		bigPool.Put(&b)
	case c >= 1024 && c <= 128<<10:
		b = b[:0]
		smallPool.Put(&b)
	}
}

// identify resolves who the client is, once per connection: a failure of Views other than
// ErrUnknownClient (a database that did not answer) is tried again on the next call.
func (c *conn) identify() (View, error) {
	c.whoMu.Lock()
	defer c.whoMu.Unlock()
	if c.whoSet {
		return c.who, nil
	}
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	who, err := c.st.views.View(ctx, c.remote.Addr().Unmap())
	if err != nil {
		return View{}, err
	}
	c.who, c.whoSet = who, true
	return who, nil
}

// viewOf returns the client's view of export x, or an error when the client may not use it.
func (c *conn) viewOf(x *export) (*view, error) {
	if !x.allows(c.remote.Addr()) {
		return nil, errNotAllowed
	}
	who, err := c.identify()
	if err != nil {
		return nil, err
	}
	if len(who.Exports) > 0 {
		ok := false
		for _, p := range who.Exports {
			if p == x.path || p == x.cfg.Path {
				ok = true
			}
		}
		if !ok {
			return nil, errNotAllowed
		}
	}
	return x.view(who.Node)
}

var errNotAllowed = errors.New("client not allowed for this export")

// write sends one reply record; rec starts with 4 bytes reserved for the record mark.
func (c *conn) write(rec []byte) {
	if rec == nil {
		return
	}
	xdr.MarkRecord(rec)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Minute))
	if _, err := c.nc.Write(rec); err != nil {
		c.werr = err
		c.nc.Close()
	}
}

// writeFile sends a reply record made of hdr (4 bytes reserved for the record mark) and
// then n bytes of the file fd from off, with sendfile(2): the data goes from the page
// cache to the socket without being copied through the server's memory. n must be a
// multiple of 4 (no XDR padding follows). A file shorter than off+n by now (truncated since
// it was stat'ed) leaves the record incomplete: the connection is closed, and the client
// sends the call again on a new one. So does an error reading the file, which writeFile
// returns (nil for errors of the connection) so that the caller answers the next READ of
// that file with a pread and an error status rather than another closed connection.
func (c *conn) writeFile(hdr []byte, fd int, off int64, n int) (fileErr error) {
	binary.BigEndian.PutUint32(hdr, uint32(len(hdr)-4+n)|1<<31)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return nil
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Minute))
	var err error
	sent := 0
	werr := c.raw.Write(func(s uintptr) bool {
		for len(hdr) > 0 {
			// MSG_MORE: the header leaves in the same segment as the data.
			m, e := unix.SendmsgN(int(s), hdr, nil, nil, unix.MSG_MORE|unix.MSG_NOSIGNAL)
			switch e {
			case nil:
				hdr = hdr[m:]
				continue
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false
			}
			err = e
			return true
		}
		for sent < n {
			m, e := unix.Sendfile(int(s), fd, &off, n-sent)
			switch {
			case e == unix.EINTR:
				continue
			case e == unix.EAGAIN:
				return false
			case e != nil:
				err = e
				if e != unix.EPIPE && e != unix.ECONNRESET && e != unix.ENOTCONN {
					fileErr = e
				}
				return true
			case m == 0:
				err = io.ErrUnexpectedEOF // the file shrank
				return true
			}
			sent += m
		}
		return true
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			c.st.log.Debug("READ reply cut short: the file shrank", "ip", c.remote.Addr().String())
		}
		c.werr = err
		c.nc.Close()
	}
	return fileErr
}

func (c *conn) replyAuth(xid uint32, stat xdr.AuthStat) {
	e := &xdr.Encoder{B: make([]byte, 4, 64)}
	xdr.AppendAuthError(e, xid, stat)
	c.write(e.B)
}

// newReply starts a reply record (4 bytes reserved for the record mark).
func newReply(xid uint32, stat xdr.AcceptStat) *xdr.Encoder {
	e := &xdr.Encoder{B: append((*smallPool.Get().(*[]byte))[:0], 0, 0, 0, 0)}
	xdr.AppendAccepted(e, xid, stat)
	return e
}

func acceptReply(xid uint32, stat xdr.AcceptStat) []byte { return newReply(xid, stat).B }
