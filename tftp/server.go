package tftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Defaults of the Server fields.
const (
	DefaultAddr          = ":69"
	DefaultMaxTransfers  = 512
	DefaultTimeout       = time.Second
	DefaultRetries       = 5
	DefaultMaxWindowSize = 64
	DefaultTransferLimit = 30 * time.Minute
)

// Errors reported to OnTransfer (wrapped) for requests the server refuses.
var (
	// ErrWriteRefused: the server is read-only; a WRQ gets an access violation.
	ErrWriteRefused = errors.New("writes are refused")
	// ErrBusy: MaxTransfers transfers were running; the request was dropped so that the
	// client retries it after its own timeout.
	ErrBusy = errors.New("server busy")
)

// A Server is a read-only TFTP server (RFC 1350) with the options of RFC 2347 (option
// negotiation), 2348 (blksize), 2349 (timeout, tsize) and 7440 (windowsize). Each
// transfer runs from its own UDP port (TID) in its own goroutine. The zero Server serves
// nothing on port 69; set Files.
type Server struct {
	// Files resolves requested names. If nil, every request gets "file not found".
	Files Files

	// Conn is the socket requests arrive on; Serve closes it when it returns. If nil,
	// Serve listens on Addr.
	Conn net.PacketConn
	// Addr is the UDP address to listen on when Conn is nil. If empty, DefaultAddr.
	Addr string

	// MaxTransfers bounds the transfers running at once; further requests are dropped
	// (clients retry them). If zero, DefaultMaxTransfers.
	MaxTransfers int
	// MaxBlockSize caps the negotiated blksize. If zero, MaxBlockSize (65464).
	MaxBlockSize int
	// MaxWindowSize caps the negotiated windowsize. If zero, DefaultMaxWindowSize.
	// One disables windowing.
	MaxWindowSize int
	// Timeout is how long a transfer waits for an acknowledgement before it sends again,
	// unless the client negotiates the timeout option. If zero, DefaultTimeout.
	Timeout time.Duration
	// Retries is how many times in a row a transfer sends again without progress before
	// it gives up. If zero, DefaultRetries.
	Retries int
	// TransferLimit bounds the duration of one transfer. If zero, DefaultTransferLimit.
	TransferLimit time.Duration
	// SpinWait is how long a transfer may busy-wait for an acknowledgement before it
	// sleeps until one arrives. A transfer spins only while its recent round trips are
	// shorter than SpinWait and while fewer than half of the CPUs (GOMAXPROCS) are
	// spinning: it shortens each block of a lockstep transfer on a fast path by the
	// sleep and wake-up, at the cost of CPU time. If zero, DefaultSpinWait; negative
	// never spins.
	SpinWait time.Duration

	// DialTransfer opens the socket of one transfer, connected to the client. If nil, a
	// UDP socket on the address the request arrived at, with a fresh port, in the network
	// namespace of Conn. Tests use it to inject loss.
	DialTransfer func(local netip.Addr, client netip.AddrPort) (net.Conn, error)

	// OnTransfer, if set, is called once for each request when it ends (served, failed or
	// refused). It runs on the serving goroutines and must not block.
	OnTransfer func(Transfer)
	// Logger receives one debug record per transfer and warnings. If nil, nothing is logged.
	Logger *slog.Logger
}

// A Transfer records one request to the TFTP server or the HTTP handler.
type Transfer struct {
	Proto      string         // "tftp" or "http"
	Client     netip.AddrPort // the client's address
	Name       string         // the requested name, cleaned when it was valid
	Size       int64          // size of the file, -1 if it was not opened
	Bytes      int64          // bytes delivered (TFTP: acknowledged; HTTP: written)
	BlockSize  int            // TFTP: negotiated block size
	WindowSize int            // TFTP: negotiated window size
	Resent     int            // TFTP: windows sent again after a timeout or a gap
	Start      time.Time
	Duration   time.Duration
	Err        error // nil when the whole file was delivered
}

type config struct {
	files        Files
	maxTransfers int
	maxBlock     int
	maxWindow    int
	timeout      time.Duration
	retries      int
	limit        time.Duration
	spin         time.Duration
	spinners     *atomic.Int32 // transfers spinning now
	maxSpinners  int32
	log          *slog.Logger
	onTransfer   func(Transfer)
}

func (s *Server) config() config {
	c := config{
		files:        s.Files,
		maxTransfers: s.MaxTransfers,
		maxBlock:     s.MaxBlockSize,
		maxWindow:    s.MaxWindowSize,
		timeout:      s.Timeout,
		retries:      s.Retries,
		limit:        s.TransferLimit,
		spin:         s.SpinWait,
		spinners:     new(atomic.Int32),
		maxSpinners:  int32(runtime.GOMAXPROCS(0) / 2),
		log:          s.Logger,
		onTransfer:   s.OnTransfer,
	}
	if c.files == nil {
		c.files = FilesFunc(func(context.Context, netip.Addr, string) (File, error) { return nil, fs.ErrNotExist })
	}
	if c.maxTransfers <= 0 {
		c.maxTransfers = DefaultMaxTransfers
	}
	if c.maxBlock <= 0 || c.maxBlock > MaxBlockSize {
		c.maxBlock = MaxBlockSize
	}
	if c.maxBlock < MinBlockSize {
		c.maxBlock = MinBlockSize
	}
	if c.maxWindow <= 0 {
		c.maxWindow = DefaultMaxWindowSize
	}
	if c.maxWindow > MaxWindowSize {
		c.maxWindow = MaxWindowSize
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.retries <= 0 {
		c.retries = DefaultRetries
	}
	if c.limit <= 0 {
		c.limit = DefaultTransferLimit
	}
	if c.spin == 0 {
		c.spin = DefaultSpinWait
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Serve answers requests until ctx is done, then closes the socket, aborts the running
// transfers (telling their clients), waits for them and returns nil. It returns an error
// if the socket cannot be opened or fails.
func (s *Server) Serve(ctx context.Context) error {
	cfg := s.config()
	conn := s.Conn
	if conn == nil {
		addr := s.Addr
		if addr == "" {
			addr = DefaultAddr
		}
		var err error
		if conn, err = net.ListenPacket("udp", addr); err != nil {
			return fmt.Errorf("tftp: listen: %w", err)
		}
	}
	dial := s.DialTransfer
	if dial == nil {
		d, err := newNSDialer(conn)
		if err != nil {
			conn.Close()
			return err
		}
		defer d.close()
		dial = d.dial
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	l := &loop{cfg: cfg, conn: conn, dial: dial, sem: make(chan struct{}, cfg.maxTransfers), active: map[netip.AddrPort]bool{}}
	err := l.run(ctx)
	cancel()
	conn.Close()
	l.wg.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, net.ErrClosed)) {
		return nil
	}
	return err
}

// loop is the request loop of one Serve call.
type loop struct {
	cfg  config
	conn net.PacketConn
	dial func(netip.Addr, netip.AddrPort) (net.Conn, error)
	sem  chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	active map[netip.AddrPort]bool // clients with a running transfer (duplicate RRQs are ignored)
}

// packetReader reads a request and the local address it was sent to.
type packetReader func(b []byte) (n int, local netip.Addr, from netip.AddrPort, err error)

func (l *loop) reader() packetReader {
	var fallback netip.Addr
	if ua, ok := l.conn.LocalAddr().(*net.UDPAddr); ok {
		fallback = ua.AddrPort().Addr().Unmap()
	}
	uc, ok := l.conn.(*net.UDPConn)
	if !ok {
		return func(b []byte) (int, netip.Addr, netip.AddrPort, error) {
			n, from, err := l.conn.ReadFrom(b)
			if err != nil {
				return 0, fallback, netip.AddrPort{}, err
			}
			ap, _ := netip.ParseAddrPort(from.String())
			return n, fallback, unmapAP(ap), nil
		}
	}
	if fallback.Is4() {
		pc := ipv4.NewPacketConn(uc)
		if pc.SetControlMessage(ipv4.FlagDst, true) == nil {
			return func(b []byte) (int, netip.Addr, netip.AddrPort, error) {
				n, cm, from, err := pc.ReadFrom(b)
				if err != nil {
					return 0, fallback, netip.AddrPort{}, err
				}
				local := fallback
				if cm != nil {
					if a, ok := netip.AddrFromSlice(cm.Dst); ok && !a.Unmap().IsMulticast() && a.Unmap() != netip.IPv4Unspecified() && !isBroadcast(a) {
						local = a.Unmap()
					}
				}
				return n, local, unmapAP(from.(*net.UDPAddr).AddrPort()), nil
			}
		}
	} else {
		pc := ipv6.NewPacketConn(uc)
		if pc.SetControlMessage(ipv6.FlagDst, true) == nil {
			return func(b []byte) (int, netip.Addr, netip.AddrPort, error) {
				n, cm, from, err := pc.ReadFrom(b)
				if err != nil {
					return 0, fallback, netip.AddrPort{}, err
				}
				local := fallback
				if cm != nil {
					if a, ok := netip.AddrFromSlice(cm.Dst); ok && !a.IsMulticast() && !isBroadcast(a) {
						local = a.Unmap()
					}
				}
				return n, local, unmapAP(from.(*net.UDPAddr).AddrPort()), nil
			}
		}
	}
	return func(b []byte) (int, netip.Addr, netip.AddrPort, error) {
		n, from, err := uc.ReadFromUDPAddrPort(b)
		return n, fallback, unmapAP(from), err
	}
}

// isBroadcast reports the limited broadcast address: a reply cannot come from it.
func isBroadcast(a netip.Addr) bool {
	return a.Unmap() == netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

func unmapAP(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (l *loop) run(ctx context.Context) error {
	read := l.reader()
	buf := make([]byte, 65536)
	var errb []byte
	for {
		n, local, from, err := read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("tftp: read request: %w", err)
		}
		req, err := ParseRequest(buf[:n])
		if err != nil {
			if n >= 2 && (buf[1] == byte(opRRQ) || buf[1] == byte(opWRQ)) && buf[0] == 0 {
				errb = appendError(errb[:0], CodeIllegalOp, "malformed request")
				_, _ = l.conn.WriteTo(errb, net.UDPAddrFromAddrPort(from))
			}
			l.cfg.log.Debug("tftp: bad request", "client", from, "err", err)
			continue
		}
		start := time.Now()
		if req.Write {
			errb = appendError(errb[:0], CodeAccess, "server is read-only")
			_, _ = l.conn.WriteTo(errb, net.UDPAddrFromAddrPort(from))
			l.record(Transfer{Proto: "tftp", Client: from, Name: req.Name, Size: -1, Start: start,
				Err: fmt.Errorf("tftp: WRQ %q from %s: %w", req.Name, from, ErrWriteRefused)})
			continue
		}
		l.mu.Lock()
		dup := l.active[from]
		l.mu.Unlock()
		if dup {
			continue // a retransmitted RRQ: its transfer is running
		}
		select {
		case l.sem <- struct{}{}:
		default:
			l.record(Transfer{Proto: "tftp", Client: from, Name: req.Name, Size: -1, Start: start,
				Err: fmt.Errorf("tftp: RRQ %q from %s: %w", req.Name, from, ErrBusy)})
			continue
		}
		l.mu.Lock()
		l.active[from] = true
		l.mu.Unlock()
		l.wg.Add(1)
		go func() {
			defer func() {
				l.mu.Lock()
				delete(l.active, from)
				l.mu.Unlock()
				<-l.sem
				l.wg.Done()
			}()
			l.record(l.transfer(ctx, req, local, from, start))
		}()
	}
}

func (l *loop) record(t Transfer) {
	t.Duration = time.Since(t.Start)
	if t.Err != nil {
		l.cfg.log.Debug("tftp: transfer failed", "client", t.Client, "path", t.Name, "bytes", t.Bytes, "duration", t.Duration, "err", t.Err)
	} else {
		l.cfg.log.Debug("tftp: transfer", "client", t.Client, "path", t.Name, "bytes", t.Bytes,
			"blksize", t.BlockSize, "windowsize", t.WindowSize, "duration", t.Duration)
	}
	if l.cfg.onTransfer != nil {
		l.cfg.onTransfer(t)
	}
}

// transfer serves one RRQ.
func (l *loop) transfer(ctx context.Context, req Request, local netip.Addr, client netip.AddrPort, start time.Time) Transfer {
	t := Transfer{Proto: "tftp", Client: client, Name: req.Name, Size: -1, Start: start}
	conn, err := l.dial(local, client)
	if err != nil {
		t.Err = fmt.Errorf("tftp: socket for %s: %w", client, err)
		return t
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, l.cfg.limit)
	defer cancel()

	fail := func(code ErrorCode, msg string, err error) Transfer {
		_, _ = conn.Write(appendError(nil, code, msg))
		t.Err = err
		return t
	}
	name, err := CleanName(req.Name)
	if err != nil {
		return fail(CodeAccess, "bad file name", err)
	}
	t.Name = name
	var r io.Reader
	switch req.Mode {
	case "octet", "netascii":
	default:
		return fail(CodeIllegalOp, "unsupported mode", fmt.Errorf("tftp: RRQ %q: mode %q: %w", name, req.Mode, ErrMalformed))
	}
	f, err := l.cfg.files.Open(ctx, client.Addr(), name)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fail(CodeNotFound, "file not found", err)
		case errors.Is(err, fs.ErrPermission), errors.Is(err, ErrBadName):
			return fail(CodeAccess, "access violation", err)
		}
		return fail(CodeUndefined, "cannot open file", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail(CodeUndefined, "cannot open file", fmt.Errorf("tftp: stat %s: %w", name, err))
	}
	t.Size = fi.Size()
	r = f
	if req.Mode == "netascii" {
		r = netasciiReader(f)
	}

	s := newSender(conn, l.cfg, r)
	defer s.release()
	oack := s.negotiate(req, t.Size)
	t.BlockSize, t.WindowSize = s.bs, s.ws
	err = s.run(ctx, oack)
	t.Bytes, t.Resent = s.acked, s.resent
	if err != nil {
		t.Err = fmt.Errorf("tftp: RRQ %q from %s: %w", name, client, err)
	}
	return t
}
