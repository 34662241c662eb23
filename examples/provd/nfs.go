package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/examples/internal/glue"
	"github.com/provkit/provkit/nfsroot"
)

// nfsService serves the statelite images of the tables over NFSv3 with package nfsroot:
// what is exported, with which writable paths and to whom is glue's (glue/nfs.go).
//
// An nfsroot.Server exports a fixed list for one Serve, so when the tables change the
// export set (an osimage defined or removed, litefile edited, a node set to statelite on
// a new image) the service stops the server and starts a new one on the same sockets.
// Connections open at that moment are closed; kernel clients reconnect by themselves and
// their file handles stay valid, because nfsroot's handles are a function of the path.
// Clients that connect meanwhile wait in the listen backlog. Nothing listens until there
// is a first image to export; the sockets then stay open until Serve returns.
type nfsService struct {
	// Views is the current cluster view.
	Views glue.ViewSource
	// Addr is where NFS and MOUNT listen; if empty, ":2049".
	Addr string
	// PortmapAddr is where the portmapper listens (TCP and UDP); empty disables it, and
	// nodes are then told the port (glue.Boot.NFSOptions).
	PortmapAddr string
	// StateDir overrides site.statelitedir (provd's -nfs-state).
	StateDir string
	// Insecure accepts calls from unprivileged ports (nfsroot.Server.Insecure).
	Insecure bool
	// Interval is how often the view is checked for a new export set; if zero, 1 s.
	Interval time.Duration
	// Retry is how often images that could not be exported (not built yet, say) are
	// tried again when nothing else changed; if zero, 5 s.
	Retry time.Duration
	// Log receives the service's and nfsroot's messages; nil discards.
	Log *slog.Logger
	// Listen and ListenPacket open the sockets; nil means the net package's.
	Listen       func(ctx context.Context, network, addr string) (net.Listener, error)
	ListenPacket func(ctx context.Context, network, addr string) (net.PacketConn, error)

	exports  atomic.Int64 // exported images, for /metrics
	restarts atomic.Int64 // servers started after the first, for /metrics
}

// Serve serves until ctx is done and returns nil then. It returns an error when the
// sockets cannot be opened for the images the tables hold when it starts (later, such a
// failure is logged and tried again), or when a socket fails.
func (s *nfsService) Serve(ctx context.Context) error {
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	interval, retry := s.Interval, s.Retry
	if interval <= 0 {
		interval = time.Second
	}
	if retry <= 0 {
		retry = 5 * time.Second
	}
	views := &glue.NFSViews{Views: s.Views}
	var (
		sock     *nfsSockets
		run      *nfsRun
		lastView *cluster.View
		want     []nfsroot.Export
		current  []nfsroot.Export
		started  bool
		pending  bool // a computation asked for a later retry
		retryAt  time.Time
		openAt   time.Time // when to try opening the sockets again after a failure
		report   string    // the problems last logged
	)
	defer func() {
		if run != nil {
			run.stop()
		}
		if sock != nil {
			sock.close()
		}
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for first := true; ; first = false {
		v := s.Views.Current()
		if v != lastView || pending && time.Now().After(retryAt) {
			lastView = v
			var problems []string
			want, problems, pending = s.compute(v, log)
			if r := strings.Join(problems, "\n"); r != report {
				report = r
				for _, p := range problems {
					log.Warn("nfs: "+p, "service", "nfs")
				}
			}
			retryAt = time.Now().Add(retry)
		}
		if !slices.EqualFunc(want, current, exportEqual) || run == nil && len(want) > 0 {
			if sock == nil && !time.Now().Before(openAt) {
				var err error
				if sock, err = s.open(ctx); err != nil {
					if first {
						return err
					}
					log.Error("nfs: cannot serve the statelite images", "service", "nfs", "err", err)
					openAt = time.Now().Add(retry)
				}
			}
			if sock != nil {
				if run != nil {
					run.stop()
					if run.err != nil {
						return fmt.Errorf("nfs: %w", run.err)
					}
					s.restarts.Add(1)
				}
				run = s.start(sock, want, views, log, started)
				current, started = want, true
				s.exports.Store(int64(len(want)))
			}
		}
		var ended <-chan struct{}
		if run != nil {
			ended = run.done
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ended:
			if run.err == nil {
				run.err = errors.New("nfsroot server stopped")
			}
			return fmt.Errorf("nfs: %w", run.err)
		case <-tick.C:
		}
	}
}

// compute works out the exports of view v. problems describes what is left out; retry
// is true when an image may become exportable without a change to the tables (its root
// not built yet).
func (s *nfsService) compute(v *cluster.View, log *slog.Logger) (exports []nfsroot.Export, problems []string, retry bool) {
	stateDir, err := glue.StateliteDir(v, s.StateDir)
	if err != nil {
		return nil, []string{"no statelite image is exported: " + err.Error()}, false
	}
	images, errs := glue.NFSExports(v, stateDir)
	for _, err := range errs {
		problems = append(problems, err.Error())
	}
	for _, img := range images {
		for _, ig := range img.Ignored {
			problems = append(problems, "osimage "+img.OSImage+": "+ig)
		}
		if err := checkExport(img.Export, log); err != nil {
			problems = append(problems, fmt.Sprintf("osimage %s is not exported: %v", img.OSImage, err))
			retry = true
			continue
		}
		exports = append(exports, img.Export)
	}
	return exports, problems, retry
}

func exportEqual(a, b nfsroot.Export) bool {
	return a.Path == b.Path && a.Root == b.Root && a.StateDir == b.StateDir &&
		slices.Equal(a.Writable, b.Writable) && slices.Equal(a.Clients, b.Clients)
}

// checkExport asks nfsroot whether it accepts e, without serving it: Serve validates its
// exports first, and with a context that is already done it returns right after.
func checkExport(e nfsroot.Export, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	srv := &nfsroot.Server{Exports: []nfsroot.Export{e}, Listener: newIdleListener(), NoPortmap: true,
		Logger: slog.New(quiet{log.Handler()})}
	return srv.Serve(ctx)
}

// nfsRun is one nfsroot.Server serving.
type nfsRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error // valid after done
}

func (r *nfsRun) stop() {
	r.cancel()
	<-r.done
}

func (s *nfsService) start(sock *nfsSockets, exports []nfsroot.Export, views nfsroot.Views, log *slog.Logger, restart bool) *nfsRun {
	paths := make([]string, len(exports))
	for i, e := range exports {
		paths[i] = e.Path
	}
	verb := "serving"
	if restart {
		verb = "restarting with a new export set"
	}
	log.Info("nfs: "+verb, "service", "nfs", "addr", sock.nfs.l.Addr().String(), "portmap", sock.portmap != nil, "exports", strings.Join(paths, " "))
	srv := &nfsroot.Server{
		Exports:   exports,
		Views:     views,
		Listener:  sock.nfs.next(),
		NoPortmap: sock.portmap == nil,
		Insecure:  s.Insecure,
		Logger:    log.With("service", "nfs"),
	}
	if sock.portmap != nil {
		srv.PortmapListener = sock.portmap.next()
		srv.PortmapPacketConn = sock.portmapUDP.next()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &nfsRun{cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = srv.Serve(ctx)
		close(r.done)
	}()
	return r
}

// nfsSockets are the service's sockets, kept across server restarts.
type nfsSockets struct {
	nfs        *sharedListener
	portmap    *sharedListener   // nil without a portmapper
	portmapUDP *sharedPacketConn // nil without a portmapper
}

func (s *nfsService) open(ctx context.Context) (*nfsSockets, error) {
	listen, listenPacket := s.Listen, s.ListenPacket
	if listen == nil {
		listen = (&net.ListenConfig{}).Listen
	}
	if listenPacket == nil {
		listenPacket = (&net.ListenConfig{}).ListenPacket
	}
	addr := s.Addr
	if addr == "" {
		addr = ":2049"
	}
	l, err := listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("nfs: %w", err)
	}
	sock := &nfsSockets{nfs: newSharedListener(l)}
	if s.PortmapAddr != "" {
		pl, err := listen(ctx, "tcp", s.PortmapAddr)
		if err != nil {
			sock.close()
			return nil, fmt.Errorf("nfs: portmapper: %w (is rpcbind running? stop it, or run provd with -nfs-portmap '')", err)
		}
		sock.portmap = newSharedListener(pl)
		pc, err := listenPacket(ctx, "udp", s.PortmapAddr)
		if err != nil {
			sock.close()
			return nil, fmt.Errorf("nfs: portmapper: %w (is rpcbind running? stop it, or run provd with -nfs-portmap '')", err)
		}
		sock.portmapUDP = &sharedPacketConn{pc: pc}
	}
	return sock, nil
}

func (s *nfsSockets) close() {
	s.nfs.close()
	if s.portmap != nil {
		s.portmap.close()
	}
	if s.portmapUDP != nil {
		s.portmapUDP.pc.Close()
	}
}

// sharedListener hands the connections of one listening socket to a succession of
// servers: each gets a view of it (next) that it may close, as nfsroot.Server does when it
// stops, without closing the socket.
type sharedListener struct {
	l       net.Listener
	conns   chan net.Conn
	closing chan struct{}
	dead    chan struct{} // closed when the accept loop has ended; err says why
	err     error
}

func newSharedListener(l net.Listener) *sharedListener {
	s := &sharedListener{l: l, conns: make(chan net.Conn), closing: make(chan struct{}), dead: make(chan struct{})}
	go s.acceptLoop()
	return s
}

func (s *sharedListener) acceptLoop() {
	defer close(s.dead)
	var delay time.Duration
	for {
		c, err := s.l.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(delay):
					continue
				case <-s.closing:
				}
			}
			s.err = err
			return
		}
		delay = 0
		select {
		case s.conns <- c:
		case <-s.closing:
			c.Close()
			s.err = net.ErrClosed
			return
		}
	}
}

func (s *sharedListener) close() {
	close(s.closing)
	s.l.Close()
	<-s.dead
}

// next returns a view of the socket for one server.
func (s *sharedListener) next() net.Listener {
	return &listenerView{s: s, done: make(chan struct{})}
}

type listenerView struct {
	s    *sharedListener
	done chan struct{}
	once sync.Once
}

func (v *listenerView) Accept() (net.Conn, error) {
	select {
	case <-v.done:
		return nil, net.ErrClosed
	default:
	}
	select {
	case c := <-v.s.conns:
		return c, nil
	case <-v.done:
		return nil, net.ErrClosed
	case <-v.s.dead:
		return nil, fmt.Errorf("accept on %s: %w", v.s.l.Addr(), v.s.err)
	}
}

func (v *listenerView) Close() error {
	v.once.Do(func() { close(v.done) })
	return nil
}

func (v *listenerView) Addr() net.Addr { return v.s.l.Addr() }

// sharedPacketConn is the UDP portmapper socket, handed to a succession of servers.
type sharedPacketConn struct {
	pc net.PacketConn
}

// next returns a view of the socket for one server; the previous one must be closed and
// its reader gone (nfsroot.Server.Serve has returned).
func (s *sharedPacketConn) next() net.PacketConn {
	_ = s.pc.SetReadDeadline(time.Time{})
	return &packetConnView{PacketConn: s.pc, done: make(chan struct{})}
}

type packetConnView struct {
	net.PacketConn
	done chan struct{}
	once sync.Once
}

func (v *packetConnView) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := v.PacketConn.ReadFrom(b)
	if err != nil {
		select {
		case <-v.done:
			return 0, nil, net.ErrClosed
		default:
		}
	}
	return n, a, err
}

// Close ends this server's use of the socket: a read in progress returns at once.
func (v *packetConnView) Close() error {
	v.once.Do(func() {
		close(v.done)
		_ = v.PacketConn.SetReadDeadline(time.Unix(1, 0))
	})
	return nil
}

// idleListener accepts nothing until it is closed (checkExport's).
type idleListener struct {
	done chan struct{}
	once sync.Once
}

func newIdleListener() *idleListener { return &idleListener{done: make(chan struct{})} }

func (l *idleListener) Accept() (net.Conn, error) {
	<-l.done
	return nil, net.ErrClosed
}

func (l *idleListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *idleListener) Addr() net.Addr { return checkAddr{} }

type checkAddr struct{}

func (checkAddr) Network() string { return "check" }
func (checkAddr) String() string  { return "export check" }

// quiet drops info records: checkExport's server announces that it serves, which it
// does not. Other levels pass, in particular go-nfs's own debug messages, which the first
// nfsroot.Server of the process routes to its logger for good (see nfsroot's golog.go).
type quiet struct{ slog.Handler }

func (q quiet) Enabled(ctx context.Context, l slog.Level) bool {
	return l != slog.LevelInfo && q.Handler.Enabled(ctx, l)
}

func (q quiet) WithAttrs(as []slog.Attr) slog.Handler { return quiet{q.Handler.WithAttrs(as)} }
func (q quiet) WithGroup(name string) slog.Handler    { return quiet{q.Handler.WithGroup(name)} }
