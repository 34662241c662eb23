package nfsroot

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// A View is who a client is: the node whose CDSL tree and writable state it sees, and the
// exports it may mount.
type View struct {
	// Node is the node's id (a cdsl node id: no '/', no white space). It names the node's
	// CDSL tree (cluster/cdsl/<Node> in the image) and its state directory.
	Node string
	// Exports, when not empty, restricts the node to these export paths (the image it
	// boots); empty allows every export whose Clients contain the client.
	Exports []string
}

// ErrUnknownClient is what Views returns for an address that belongs to no node.
var ErrUnknownClient = errors.New("nfsroot: unknown client")

// Views tells who a client is from its address.
type Views interface {
	// View returns the client's view, or an error wrapping ErrUnknownClient when the
	// address belongs to no node; such a client can mount nothing.
	View(ctx context.Context, client netip.Addr) (View, error)
}

// ViewsFunc adapts a function to Views.
type ViewsFunc func(ctx context.Context, client netip.Addr) (View, error)

// View calls f.
func (f ViewsFunc) View(ctx context.Context, client netip.Addr) (View, error) { return f(ctx, client) }

// Server is an NFSv3 server (with MOUNT v3 and a portmapper) exporting images to diskless
// nodes. The zero value listens on :2049 and :111 and exports nothing; set Exports (and
// usually Views) and call Serve, once.
//
// Clients mount without a lock manager (NLM is not served): mount with -o nolock, or
// nfsroot=server:/path,nolock on a kernel command line; with the portmapper on port 111 no
// other option is needed.
type Server struct {
	// Exports are the images served.
	Exports []Export
	// Views maps client addresses to nodes. If nil, a client's node id is its address
	// ("10.94.0.2").
	Views Views

	// Listener serves NFS and MOUNT (and answers portmapper calls too). If nil, Serve
	// listens on Addr.
	Listener net.Listener
	// Addr is the TCP address to listen on when Listener is nil; if empty, ":2049".
	Addr string
	// PortmapListener answers portmapper (rpcbind) calls over TCP, so that kernel clients
	// find the NFS and MOUNT ports by themselves. If nil and NoPortmap is false, Serve
	// listens on PortmapAddr.
	PortmapListener net.Listener
	// PortmapPacketConn answers portmapper calls over UDP (optional). If nil, NoPortmap is
	// false and Serve listens itself, it also listens on PortmapAddr over UDP.
	PortmapPacketConn net.PacketConn
	// PortmapAddr is where Serve listens for portmapper calls; if empty, ":111".
	PortmapAddr string
	// NoPortmap disables the portmapper; clients then need port=2049,mountport=2049.
	NoPortmap bool

	// Insecure accepts calls from unprivileged source ports (1024 and up), like knfsd's
	// "insecure" export option. By default they are refused, so that only root on a client
	// can speak for the client's users.
	Insecure bool
	// MaxConns bounds simultaneous connections; if zero, 4096.
	MaxConns int
	// MaxInFlight bounds the calls one connection has in progress; if zero, 32.
	MaxInFlight int
	// MaxCalls bounds the calls in progress on the whole server (each may hold a buffer of
	// up to 1 MiB); if zero, 256.
	MaxCalls int
	// IdleTimeout closes connections idle this long; if zero, 15 minutes.
	IdleTimeout time.Duration
	// CacheTTL is how long attributes and directory listings of the images (never of the
	// nodes' writable state) are cached: a change an administrator makes to an image under
	// a running server shows within this time. If zero, 2 seconds; negative disables it.
	CacheTTL time.Duration
	// MaxOpenFiles bounds the regular files kept open between READs (shared by all exports
	// and nodes), so that a file read in many READs is opened once, as nfs-ganesha's
	// open-file cache does; a descriptor unused for 5 seconds is closed, and all are closed
	// when Serve returns. If zero, 1024; negative opens the file for each READ.
	MaxOpenFiles int

	// Logger receives one line per mount and per error; nil discards. The first Serve of a
	// process also routes go-nfs's own messages (a package-level logger in go-nfs) here,
	// at debug level, unless the program called nfs.SetLogger before.
	Logger *slog.Logger

	// fileIdle, when set, replaces defaultFileIdle (tests).
	fileIdle time.Duration
	// onServe, when set, is called with the serving state before Serve listens (tests).
	onServe func(*serving)
}

const (
	progPortmap = 100000
	progNFS     = 100003
	progMount   = 100005

	// maxRecord bounds a request: a WRITE of wtmax bytes plus headers.
	maxRecord = maxIO + 64<<10
	// maxIO is the largest READ and WRITE (rtmax, wtmax).
	maxIO = 1 << 20
)

// serving is the state of one Serve call.
type serving struct {
	srv      *Server
	log      *slog.Logger
	exports  []*export
	byID     map[uint32]*export
	views    Views
	verifier [8]byte
	nfsPort  int
	maxConns int
	inflight int
	calls    chan struct{}
	idle     time.Duration

	mu    sync.Mutex
	conns map[*conn]struct{}

	files *fileCache // nil when MaxOpenFiles is negative
}

// Serve serves until ctx is done, then closes the listeners and connections and returns
// nil. It returns an error when the configuration is invalid or a listener fails.
func (s *Server) Serve(ctx context.Context) error {
	st := &serving{srv: s, log: s.Logger, byID: map[uint32]*export{}, views: s.Views,
		maxConns: s.MaxConns, inflight: s.MaxInFlight, idle: s.IdleTimeout, conns: map[*conn]struct{}{}}
	if st.log == nil {
		st.log = slog.New(slog.DiscardHandler)
	}
	if st.maxConns <= 0 {
		st.maxConns = 4096
	}
	if st.inflight <= 0 {
		st.inflight = 32
	}
	maxCalls := s.MaxCalls
	if maxCalls <= 0 {
		maxCalls = 256
	}
	st.calls = make(chan struct{}, maxCalls)
	if st.idle <= 0 {
		st.idle = 15 * time.Minute
	}
	if st.views == nil {
		st.views = ViewsFunc(func(_ context.Context, a netip.Addr) (View, error) {
			return View{Node: a.Unmap().String()}, nil
		})
	}
	_, _ = rand.Read(st.verifier[:])
	routeGoNFSLog(st.log)
	st.files = newFileCache(s.MaxOpenFiles, s.fileIdle)
	defer func() {
		st.files.close()
		for _, x := range st.exports {
			x.close()
		}
	}()
	for _, e := range s.Exports {
		x, err := newExport(e, s.CacheTTL)
		if err != nil {
			return err
		}
		if o := st.byID[x.id]; o != nil {
			x.close()
			return fmt.Errorf("nfsroot: exports %s and %s: duplicate or colliding paths", o.path, x.path)
		}
		x.files = st.files
		st.exports = append(st.exports, x)
		st.byID[x.id] = x
	}
	if s.onServe != nil {
		s.onServe(st)
	}

	var lns []net.Listener
	var pcs []net.PacketConn
	closeAll := func() {
		for _, l := range lns {
			l.Close()
		}
		for _, pc := range pcs {
			pc.Close()
		}
	}
	nfsL := s.Listener
	if nfsL == nil {
		addr := s.Addr
		if addr == "" {
			addr = ":2049"
		}
		var err error
		if nfsL, err = (&net.ListenConfig{}).Listen(ctx, "tcp", addr); err != nil {
			return fmt.Errorf("nfsroot: %w", err)
		}
	}
	lns = append(lns, nfsL)
	if ta, ok := nfsL.Addr().(*net.TCPAddr); ok {
		st.nfsPort = ta.Port
	}
	if !s.NoPortmap {
		pl, pc := s.PortmapListener, s.PortmapPacketConn
		if pl == nil {
			addr := s.PortmapAddr
			if addr == "" {
				addr = ":111"
			}
			var err error
			if pl, err = (&net.ListenConfig{}).Listen(ctx, "tcp", addr); err != nil {
				closeAll()
				return fmt.Errorf("nfsroot: portmapper: %w", err)
			}
			if pc == nil {
				if pc, err = (&net.ListenConfig{}).ListenPacket(ctx, "udp", addr); err != nil {
					pl.Close()
					closeAll()
					return fmt.Errorf("nfsroot: portmapper: %w", err)
				}
			}
		}
		lns = append(lns, pl)
		if pc != nil {
			pcs = append(pcs, pc)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(lns)+len(pcs))
	for _, l := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := st.accept(ctx, l, &wg); err != nil {
				errc <- err
				cancel()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		st.files.run(ctx)
	}()
	for _, pc := range pcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := st.servePacket(ctx, pc); err != nil {
				errc <- err
				cancel()
			}
		}()
	}
	st.log.Info("nfsroot serving", "addr", nfsL.Addr().String(), "exports", len(st.exports))
	<-ctx.Done()
	closeAll()
	st.mu.Lock()
	for c := range st.conns {
		c.nc.Close()
	}
	st.mu.Unlock()
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// accept runs the accept loop of one listener; it returns nil when ctx ends it.
func (st *serving) accept(ctx context.Context, l net.Listener, wg *sync.WaitGroup) error {
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(delay):
				case <-ctx.Done():
					return nil
				}
				continue
			}
			return fmt.Errorf("nfsroot: accept on %s: %w", l.Addr(), err)
		}
		delay = 0
		c := st.newConn(ctx, nc)
		st.mu.Lock()
		if len(st.conns) >= st.maxConns {
			st.mu.Unlock()
			st.log.Warn("too many connections", "ip", c.remote.Addr().String())
			nc.Close()
			continue
		}
		st.conns[c] = struct{}{}
		st.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.serve()
			st.mu.Lock()
			delete(st.conns, c)
			st.mu.Unlock()
		}()
	}
}

// servePacket answers portmapper calls over UDP, one at a time.
func (st *serving) servePacket(ctx context.Context, pc net.PacketConn) error {
	buf := make([]byte, 9000)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("nfsroot: portmapper: %w", err)
		}
		reply := st.udpCall(buf[:n])
		if reply != nil {
			_, _ = pc.WriteTo(reply, addr)
		}
	}
}

func addrPortOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
