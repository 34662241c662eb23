package tftp

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/pin/tftp/v3/netascii"
)

// maxWindowBytes bounds the memory of one transfer's window: the server answers a larger
// blksize*windowsize request with a smaller windowsize (RFC 7440 allows it).
const maxWindowBytes = 512 << 10

// ErrTimeout is wrapped by the error of a transfer whose client stopped answering.
var ErrTimeout = errors.New("no acknowledgement")

func netasciiReader(r io.Reader) io.Reader { return netascii.ToReader(r) }

// sender sends one file: lockstep when the window is 1 block, RFC 7440 windows otherwise.
// The window buffer holds blocks base..base+n-1, each as a whole DATA packet, packed
// back to back so that one sendmsg with UDP GSO sends the whole window.
type sender struct {
	conn    net.Conn
	gso     *gsoConn // nil: one write per packet
	raw     *rawConn // nil: packets through conn
	r       io.Reader
	br      *bufio.Reader
	timeout time.Duration
	retries int
	bs, ws  int

	buf     []byte // ws slots of 4+bs bytes
	slot    int    // 4+bs
	base    uint64 // block index of the first unacknowledged block (1-based, no wrap)
	n       int    // blocks in buf
	eof     bool   // the final block is in buf or acknowledged
	final   uint64 // index of the final block, valid when eof
	lastLen int    // payload length of the final block
	rbuf    [516]byte

	acked  int64 // payload bytes acknowledged
	resent int   // windows (or packets) sent again
	maxBS  int
	maxWS  int
}

func newSender(conn net.Conn, cfg config, r io.Reader) *sender {
	s := &sender{conn: conn, r: r, timeout: cfg.timeout, retries: cfg.retries,
		bs: DefaultBlockSize, ws: 1, maxBS: cfg.maxBlock, maxWS: cfg.maxWindow}
	s.gso = newGSOConn(conn)
	// A negative budget or a limit of 0 (GOMAXPROCS 1) never spins.
	s.raw = newRawConn(conn, &spinner{budget: cfg.spin, active: cfg.spinners, limit: cfg.maxSpinners})
	return s
}

func (s *sender) release() {
	if s.br != nil {
		s.br.Reset(nil)
		bufPool.Put(s.br)
		s.br = nil
	}
}

// negotiate applies the request's options and returns the OACK options, empty when the
// client asked for none the server honours (then the transfer starts with DATA 1).
func (s *sender) negotiate(req Request, size int64) []Option {
	var ack []Option
	wantWS := 0
	for _, o := range req.Options {
		switch o.Name {
		case "blksize":
			v, err := strconv.Atoi(o.Value)
			if err != nil || v < MinBlockSize || v > MaxBlockSize {
				continue
			}
			s.bs = min(v, s.maxBS)
			ack = append(ack, Option{"blksize", ""})
		case "tsize":
			if size >= 0 {
				ack = append(ack, Option{"tsize", strconv.FormatInt(size, 10)})
			}
		case "timeout":
			v, err := strconv.Atoi(o.Value)
			if err != nil || v < 1 || v > 255 {
				continue
			}
			s.timeout = time.Duration(v) * time.Second
			ack = append(ack, Option{"timeout", strconv.Itoa(v)})
		case "windowsize":
			v, err := strconv.Atoi(o.Value)
			if err != nil || v < 1 || v > MaxWindowSize {
				continue
			}
			wantWS = v
			ack = append(ack, Option{"windowsize", ""})
		}
	}
	if wantWS > 0 {
		s.ws = max(1, min(wantWS, s.maxWS, maxWindowBytes/(s.bs+4)))
	}
	for i := range ack {
		switch ack[i].Name {
		case "blksize":
			ack[i].Value = strconv.Itoa(s.bs)
		case "windowsize":
			ack[i].Value = strconv.Itoa(s.ws)
		}
	}
	s.slot = s.bs + 4
	s.buf = make([]byte, s.ws*s.slot)
	if s.bs < bufSize {
		s.br = bufPool.Get().(*bufio.Reader)
		s.br.Reset(s.r)
		s.r = s.br
	}
	if s.gso != nil && !s.gso.init(s.slot, s.ws) {
		s.gso = nil
	}
	return ack
}

// run sends the OACK (if any) and the file, and returns when the client acknowledged the
// final block, sent an error, stopped answering or ctx ended.
func (s *sender) run(ctx context.Context, oack []Option) error {
	stop := context.AfterFunc(ctx, func() { _ = s.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	if len(oack) > 0 {
		if err := s.handshake(ctx, appendOACK(nil, oack)); err != nil {
			return err
		}
	}
	s.base = 1
	tries := 0
	send := true
	dupOK := false
	for {
		if send {
			if err := s.fill(); err != nil {
				s.sendError(CodeUndefined, "read error")
				return fmt.Errorf("read block %d: %w", s.base+uint64(s.n), err)
			}
			if err := s.sendWindow(); err != nil && !refused(err) {
				return fmt.Errorf("send block %d: %w", s.base, err)
			}
			if err := s.setDeadline(time.Now().Add(s.timeout)); err != nil {
				return err
			}
			if ctx.Err() != nil {
				return s.cancelled(ctx)
			}
			send, dupOK = false, s.ws > 1
		}
		n, err := s.read()
		if err != nil {
			if ctx.Err() != nil {
				return s.cancelled(ctx)
			}
			if refused(err) {
				continue
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return fmt.Errorf("read acknowledgement: %w", err)
			}
			if tries++; tries > s.retries {
				s.sendError(CodeUndefined, "timeout")
				return fmt.Errorf("block %d after %d tries: %w", s.base, tries, ErrTimeout)
			}
			s.resent++
			send = true
			continue
		}
		if n < 4 {
			continue
		}
		switch binary.BigEndian.Uint16(s.rbuf[:]) {
		case opACK:
			d := int(binary.BigEndian.Uint16(s.rbuf[2:]) - uint16(s.base-1))
			if d > s.n {
				continue // stale or not sent
			}
			if d == 0 {
				// The client re-acknowledged the block before this window: it lost the
				// window's first packet (RFC 7440). Send again at once, once per window;
				// in lockstep wait for the timeout (no Sorcerer's Apprentice).
				if dupOK {
					dupOK = false
					s.resent++
					send = true
				}
				continue
			}
			s.slide(d)
			tries = 0
			if s.eof && s.base > s.final {
				return nil
			}
			send = true
		case opERROR:
			return parseError(s.rbuf[:n])
		}
	}
}

// handshake sends the OACK until the client acknowledges it with ACK 0.
func (s *sender) handshake(ctx context.Context, oack []byte) error {
	for tries := 0; ; tries++ {
		if tries > s.retries {
			return fmt.Errorf("OACK after %d tries: %w", tries, ErrTimeout)
		}
		if tries > 0 {
			s.resent++
		}
		if _, err := s.conn.Write(oack); err != nil && !refused(err) {
			return fmt.Errorf("send OACK: %w", err)
		}
		if err := s.setDeadline(time.Now().Add(s.timeout)); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return s.cancelled(ctx)
		}
		for {
			n, err := s.read()
			if err != nil {
				if ctx.Err() != nil {
					return s.cancelled(ctx)
				}
				if refused(err) {
					continue
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return fmt.Errorf("read acknowledgement of OACK: %w", err)
			}
			if n < 4 {
				continue
			}
			switch binary.BigEndian.Uint16(s.rbuf[:]) {
			case opACK:
				if binary.BigEndian.Uint16(s.rbuf[2:]) == 0 {
					return nil
				}
			case opERROR:
				return parseError(s.rbuf[:n])
			}
		}
	}
}

// refused reports the error a connected UDP socket returns once after an ICMP port
// unreachable: a packet sent after the client closed (say, a window sent again while the
// final ACK was on its way). The socket's queued packets (that ACK) are still there, so
// the transfer reads on; a client that is really gone ends in a timeout.
func refused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

func (s *sender) setDeadline(t time.Time) error { return s.conn.SetReadDeadline(t) }

func (s *sender) read() (int, error) {
	if s.raw != nil {
		return s.raw.read(s.rbuf[:])
	}
	return s.conn.Read(s.rbuf[:])
}

// write sends one packet.
func (s *sender) write(b []byte) error {
	if s.raw != nil {
		return s.raw.write(b)
	}
	_, err := s.conn.Write(b)
	return err
}

func (s *sender) cancelled(ctx context.Context) error {
	msg := "server shutting down"
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		msg = "transfer time limit"
	}
	s.sendError(CodeUndefined, msg)
	return fmt.Errorf("block %d: %w", s.base, ctx.Err())
}

func (s *sender) sendError(code ErrorCode, msg string) {
	_, _ = s.conn.Write(appendError(s.rbuf[:0:len(s.rbuf)], code, msg))
}

// fill reads blocks into the free slots of the window.
func (s *sender) fill() error {
	for s.n < s.ws && !s.eof {
		p := s.buf[s.n*s.slot : (s.n+1)*s.slot]
		idx := s.base + uint64(s.n)
		binary.BigEndian.PutUint16(p, opDATA)
		binary.BigEndian.PutUint16(p[2:], uint16(idx))
		m, err := io.ReadFull(s.r, p[4:])
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			s.eof, s.final, s.lastLen = true, idx, m
		default:
			return err
		}
		s.n++
	}
	return nil
}

// windowLen is the byte length of the packed window.
func (s *sender) windowLen() int {
	if s.n == 0 {
		return 0
	}
	l := s.n * s.slot
	if s.eof && s.final == s.base+uint64(s.n)-1 {
		l -= s.bs - s.lastLen
	}
	return l
}

func (s *sender) sendWindow() error {
	l := s.windowLen()
	if s.gso != nil {
		err := s.gso.write(s.buf[:l])
		if err == nil || refused(err) {
			return err
		}
		s.gso = nil // the path does not take GSO: fall back to one write per packet
	}
	for off := 0; off < l; off += s.slot {
		if err := s.write(s.buf[off:min(off+s.slot, l)]); err != nil {
			return err
		}
	}
	return nil
}

// slide drops the first k blocks, which the client acknowledged.
func (s *sender) slide(k int) {
	bytes := int64(k) * int64(s.bs)
	if s.eof && s.final < s.base+uint64(k) {
		bytes -= int64(s.bs - s.lastLen)
	}
	s.acked += bytes
	if k < s.n {
		copy(s.buf, s.buf[k*s.slot:s.n*s.slot])
	}
	s.n -= k
	s.base += uint64(k)
}

// bufSize is the read-ahead of a transfer whose blocks are smaller.
const bufSize = 64 << 10

// bufPool recycles the read-ahead buffers across transfers.
var bufPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufSize) }}
