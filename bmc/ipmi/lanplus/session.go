package lanplus

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/provkit/provkit/bmc/ipmi"
)

// Config says how to reach and authenticate to one BMC.
type Config struct {
	// Addr is the BMC's UDP address, host:port (IPMI's port is 623).
	Addr string
	// User and Password are the IPMI credentials. The password is at most 20 bytes.
	User     string
	Password string
	// BMCKey is the BMC's K_G key; empty for BMCs that have none (the usual case).
	BMCKey []byte
	// Suite is the cipher suite; zero means 3 (what ipmitool -C 3 uses).
	Suite ipmi.CipherSuite
	// Privilege is the highest privilege the session asks for; zero means administrator.
	Privilege ipmi.Privilege
	// RetryInterval is how long to wait for the first answer before sending a request
	// again; each later wait doubles, up to 8 times this. Zero means 1 s.
	RetryInterval time.Duration
	// Dial opens the UDP socket; nil means a net.Dialer. Tests inject their own.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Rand is the source of session IDs, random numbers and IVs; nil means crypto/rand.
	Rand io.Reader
}

// Errors callers branch on with errors.Is. Timeouts wrap context.DeadlineExceeded.
var (
	// ErrAuth: the BMC refused the user name or the password (or the BMC key) is wrong.
	ErrAuth = errors.New("authentication failed")
	// ErrRefused: nothing listens at the address (ICMP port unreachable).
	ErrRefused = errors.New("connection refused")
	// ErrClosed: the session was closed.
	ErrClosed = errors.New("session closed")
)

// Session is an open RMCP+ session. Its methods may be called from several goroutines;
// commands are sent one at a time.
type Session struct {
	cfg       Config
	conn      net.Conn
	keys      *ipmi.Keys
	consoleID uint32
	bmcID     uint32
	random    io.Reader

	mu       sync.Mutex // serializes commands; guards the fields below
	seq      uint32
	rqSeq    uint8
	priv     ipmi.Privilege
	closed   bool
	lastUsed time.Time
	out      []byte
	in       []byte

	dlMu     sync.Mutex // guards gen and canceled against the read-deadline race
	gen      uint64     // which exchange the cancel callback belongs to
	canceled bool
}

func (c *Config) defaults() error {
	if c.Suite == 0 {
		c.Suite = ipmi.CipherSuite3
	}
	if _, _, _, err := c.Suite.Algorithms(); err != nil {
		return err
	}
	if c.Privilege == 0 {
		c.Privilege = ipmi.PrivAdmin
	}
	if c.Privilege < ipmi.PrivCallback || c.Privilege > ipmi.PrivAdmin {
		return fmt.Errorf("lanplus: privilege %d is not 1-4", c.Privilege)
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = time.Second
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.Dial == nil {
		var d net.Dialer
		c.Dial = d.DialContext
	}
	if len(c.Password) > ipmi.MaxPasswordLen {
		// Never quote the password itself.
		return fmt.Errorf("lanplus: password of %d bytes is longer than IPMI's %d", len(c.Password), ipmi.MaxPasswordLen)
	}
	if len(c.User) > ipmi.MaxUserLen {
		return fmt.Errorf("lanplus: user name %q is longer than IPMI's %d bytes", c.User, ipmi.MaxUserLen)
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("lanplus: BMC address %q: want host:port", c.Addr)
	}
	return nil
}

// Open dials the BMC and runs the RMCP+ handshake (Open Session, RAKP 1-4). The session
// starts at user privilege and is raised, when a command needs it, to cfg.Privilege.
func Open(ctx context.Context, cfg Config) (*Session, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	conn, err := cfg.Dial(ctx, "udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("lanplus: %s: %w", cfg.Addr, err)
	}
	s := &Session{cfg: cfg, conn: conn, random: cfg.Rand, priv: ipmi.PrivUser,
		out: make([]byte, 0, 256), in: make([]byte, 1024)}
	if err := s.handshake(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	s.lastUsed = time.Now()
	return s, nil
}

// Addr is the BMC address the session talks to.
func (s *Session) Addr() string { return s.cfg.Addr }

// LastUsed is when the session last got an answer.
func (s *Session) LastUsed() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastUsed
}

func (s *Session) handshake(ctx context.Context) error {
	var idb [4]byte
	for s.consoleID == 0 {
		if _, err := io.ReadFull(s.random, idb[:]); err != nil {
			return fmt.Errorf("lanplus: session ID: %w", err)
		}
		s.consoleID = binary.LittleEndian.Uint32(idb[:])
	}
	// Open Session.
	req, err := ipmi.OpenSessionRequest{Tag: 0, MaxPrivilege: s.cfg.Privilege, ConsoleSessionID: s.consoleID, Suite: s.cfg.Suite}.Append(nil)
	if err != nil {
		return err
	}
	var osr ipmi.OpenSessionResponse
	err = s.setup(ctx, "open session", ipmi.PayloadOpenSessionRequest, req, ipmi.PayloadOpenSessionResponse, func(b []byte) (bool, error) {
		r, err := ipmi.ParseOpenSessionResponse(b)
		if r.Tag != 0 || (r.ConsoleSessionID != s.consoleID && !isStatus(err)) {
			return false, nil // not ours
		}
		osr = r
		return true, err
	})
	if err != nil {
		return s.authErr("open session", err)
	}
	if osr.Suite != s.cfg.Suite {
		return fmt.Errorf("lanplus: %s: open session: BMC chose cipher suite %d, not %d", s.cfg.Addr, osr.Suite, s.cfg.Suite)
	}
	s.bmcID = osr.BMCSessionID

	// RAKP 1 and 2.
	h := ipmi.Handshake{Suite: s.cfg.Suite, Password: []byte(s.cfg.Password), BMCKey: s.cfg.BMCKey,
		ConsoleSessionID: s.consoleID, BMCSessionID: s.bmcID,
		Role: byte(s.cfg.Privilege) | ipmi.NameOnlyLookup, User: s.cfg.User}
	if _, err := io.ReadFull(s.random, h.ConsoleRandom[:]); err != nil {
		return fmt.Errorf("lanplus: random: %w", err)
	}
	r1, err := ipmi.RAKP1{Tag: 1, BMCSessionID: s.bmcID, ConsoleRandom: h.ConsoleRandom, Role: h.Role, User: h.User}.Append(nil)
	if err != nil {
		return err
	}
	var r2 ipmi.RAKP2
	err = s.setup(ctx, "RAKP 1", ipmi.PayloadRAKP1, r1, ipmi.PayloadRAKP2, func(b []byte) (bool, error) {
		r, err := ipmi.ParseRAKP2(b)
		if r.Tag != 1 || (r.ConsoleSessionID != s.consoleID && !isStatus(err)) {
			return false, nil
		}
		r2 = r
		r2.AuthCode = append([]byte(nil), r.AuthCode...)
		return true, err
	})
	if err != nil {
		return s.authErr("RAKP 2", err)
	}
	h.BMCRandom, h.BMCGUID = r2.BMCRandom, r2.BMCGUID
	if err := h.CheckRAKP2(r2.AuthCode); err != nil {
		return s.authErr("RAKP 2", err)
	}

	// RAKP 3 and 4.
	r3 := ipmi.RAKP3{Tag: 2, BMCSessionID: s.bmcID, AuthCode: h.RAKP3AuthCode()}.Append(nil)
	var r4 ipmi.RAKP4
	err = s.setup(ctx, "RAKP 3", ipmi.PayloadRAKP3, r3, ipmi.PayloadRAKP4, func(b []byte) (bool, error) {
		r, err := ipmi.ParseRAKP4(b)
		if r.Tag != 2 || (r.ConsoleSessionID != s.consoleID && !isStatus(err)) {
			return false, nil
		}
		r4 = r
		r4.ICV = append([]byte(nil), r.ICV...)
		return true, err
	})
	if err != nil {
		return s.authErr("RAKP 4", err)
	}
	if err := h.CheckRAKP4(r4.ICV); err != nil {
		return s.authErr("RAKP 4", err)
	}
	if s.keys, err = h.Keys(); err != nil {
		return err
	}
	s.seq = 1
	return nil
}

// isStatus: err is an RMCP+ status code (the BMC refused), whose answer may lack the
// console session ID.
func isStatus(err error) bool {
	var st ipmi.StatusCode
	return errors.As(err, &st)
}

// authErr marks the errors that mean the credentials were refused.
func (s *Session) authErr(step string, err error) error {
	var st ipmi.StatusCode
	if errors.Is(err, ipmi.ErrAuthCode) || errors.Is(err, ipmi.ErrICV) ||
		(errors.As(err, &st) && (st == ipmi.StatusUnauthorizedName || st == ipmi.StatusInvalidICV || st == 0x0A)) {
		return fmt.Errorf("lanplus: %s: %s: %w: %w", s.cfg.Addr, step, ErrAuth, err)
	}
	if errors.Is(err, ErrRefused) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("lanplus: %s: %s: %w", s.cfg.Addr, step, err)
}

// setup sends one session set-up message (session ID 0, no integrity) and waits for the
// answer of type want that match accepts.
func (s *Session) setup(ctx context.Context, what string, typ ipmi.PayloadType, payload []byte, want ipmi.PayloadType, match func([]byte) (bool, error)) error {
	pkt, err := ipmi.AppendPacket(s.out[:0], ipmi.Packet{Type: typ, Payload: payload}, nil, nil)
	if err != nil {
		return err
	}
	return s.exchange(ctx, what, func(uint32) ([]byte, error) { return pkt, nil }, func(b []byte) (bool, error) {
		p, err := ipmi.ParsePacket(b, nil)
		if err != nil || p.Type != want {
			return false, nil // noise, or an answer to something else
		}
		return match(p.Payload)
	})
}

// exchange sends what build makes and reads until match accepts an answer, resending
// after RetryInterval (doubling) until ctx ends. build gets the try number from 1.
func (s *Session) exchange(ctx context.Context, what string, build func(try uint32) ([]byte, error), match func([]byte) (bool, error)) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("lanplus: %s: %s: %w", s.cfg.Addr, what, err)
	}
	// Cancelling ctx wakes the blocked Read by moving its deadline into the past. The
	// generation keeps a late callback of an earlier exchange from touching this one.
	s.dlMu.Lock()
	s.gen++
	gen := s.gen
	s.canceled = false
	s.dlMu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		s.dlMu.Lock()
		defer s.dlMu.Unlock()
		if s.gen == gen {
			s.canceled = true
			s.conn.SetReadDeadline(time.Unix(1, 0))
		}
	})
	defer stop()

	wait := s.cfg.RetryInterval
	for try := uint32(1); ; try++ {
		pkt, err := build(try)
		if err != nil {
			return err
		}
		if _, err := s.conn.Write(pkt); err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				return fmt.Errorf("lanplus: %s: %s: %w", s.cfg.Addr, what, ErrRefused)
			}
			return fmt.Errorf("lanplus: %s: %s: %w", s.cfg.Addr, what, err)
		}
		deadline := time.Now().Add(wait)
		s.dlMu.Lock()
		if !s.canceled {
			s.conn.SetReadDeadline(deadline)
		}
		s.dlMu.Unlock()
		for {
			n, err := s.conn.Read(s.in)
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("lanplus: %s: %s: no answer after %d tries: %w", s.cfg.Addr, what, try, ctx.Err())
				}
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break // resend
				}
				if errors.Is(err, syscall.ECONNREFUSED) {
					return fmt.Errorf("lanplus: %s: %s: %w", s.cfg.Addr, what, ErrRefused)
				}
				return fmt.Errorf("lanplus: %s: %s: %w", s.cfg.Addr, what, err)
			}
			ok, err := match(s.in[:n])
			if ok || err != nil {
				return err
			}
		}
		if wait < 8*s.cfg.RetryInterval {
			wait *= 2
		}
	}
}

// Do sends an IPMI request in the session, at privilege priv or more (raising the
// session's privilege first if needed), and returns the response data after the
// completion code. A non-zero completion code is returned as an ipmi.CompletionCode error.
func (s *Session) Do(ctx context.Context, priv ipmi.Privilege, netfn ipmi.NetFn, cmd uint8, data []byte) ([]byte, error) {
	return s.call(ctx, fmt.Sprintf("command 0x%02X/0x%02X", uint8(netfn), cmd), priv, netfn, cmd, data)
}

// call is Do with a name for the command in errors: "lanplus: ADDR: WHAT: ...".
func (s *Session) call(ctx context.Context, what string, priv ipmi.Privilege, netfn ipmi.NetFn, cmd uint8, data []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("lanplus: %s: %s: %w", s.cfg.Addr, what, ErrClosed)
	}
	if priv > s.priv {
		if priv > s.cfg.Privilege {
			return nil, fmt.Errorf("lanplus: %s: %s needs %s privilege, the session is limited to %s", s.cfg.Addr, what, priv, s.cfg.Privilege)
		}
		if _, err := s.do(ctx, "set session privilege "+s.cfg.Privilege.String(), ipmi.NetFnApp, ipmi.CmdSetSessionPrivilege, []byte{byte(s.cfg.Privilege)}); err != nil {
			return nil, err
		}
		s.priv = s.cfg.Privilege
	}
	out, err := s.do(ctx, what, netfn, cmd, data)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), out...), nil
}

// do runs one request/response; the caller holds s.mu. The result aliases s.in.
func (s *Session) do(ctx context.Context, what string, netfn ipmi.NetFn, cmd uint8, data []byte) ([]byte, error) {
	s.rqSeq = (s.rqSeq + 1) & 0x3F
	rq := s.rqSeq
	msg := ipmi.AppendRequest(make([]byte, 0, 16+len(data)), ipmi.Request{NetFn: netfn, Cmd: cmd, Seq: rq, Data: data})
	var resp ipmi.Response
	err := s.exchange(ctx, what, func(uint32) ([]byte, error) {
		seq := s.seq
		s.seq++
		if s.seq == 0 {
			s.seq = 1
		}
		return ipmi.AppendPacket(s.out[:0], ipmi.Packet{Type: ipmi.PayloadIPMI, Encrypted: true, Authenticated: true,
			SessionID: s.bmcID, Seq: seq, Payload: msg}, s.keys, s.random)
	}, func(b []byte) (bool, error) {
		p, err := ipmi.ParsePacket(b, s.keys)
		if err != nil || p.Type != ipmi.PayloadIPMI || p.SessionID != s.consoleID {
			return false, nil
		}
		r, err := ipmi.ParseResponse(p.Payload)
		if err != nil || r.Seq != rq || r.Cmd != cmd || r.NetFn != netfn+1 {
			return false, nil
		}
		resp = r
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	s.lastUsed = time.Now()
	if resp.Code != ipmi.CodeOK {
		return nil, fmt.Errorf("lanplus: %s: %s: %w", s.cfg.Addr, what, resp.Code)
	}
	return resp.Data, nil
}

// Close ends the session at the BMC (Close Session) and closes the socket. It returns
// quickly even if the BMC does not answer: one try, bounded by ctx and RetryInterval.
func (s *Session) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RetryInterval)
	defer cancel()
	_, err := s.do(ctx, "close session", ipmi.NetFnApp, ipmi.CmdCloseSession, binary.LittleEndian.AppendUint32(nil, s.bmcID))
	if cerr := s.conn.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("lanplus: %s: close session: %w", s.cfg.Addr, cerr)
	}
	return err
}

// Abandon ends a session that is probably dead already (idle past the BMC's session
// timeout, or not answering): it sends Close Session once without waiting for an answer,
// so that a BMC that still has the session frees it, and closes the socket.
func (s *Session) Abandon() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.rqSeq = (s.rqSeq + 1) & 0x3F
	msg := ipmi.AppendRequest(nil, ipmi.Request{NetFn: ipmi.NetFnApp, Cmd: ipmi.CmdCloseSession, Seq: s.rqSeq,
		Data: binary.LittleEndian.AppendUint32(nil, s.bmcID)})
	if pkt, err := ipmi.AppendPacket(s.out[:0], ipmi.Packet{Type: ipmi.PayloadIPMI, Encrypted: true, Authenticated: true,
		SessionID: s.bmcID, Seq: s.seq, Payload: msg}, s.keys, s.random); err == nil {
		s.conn.Write(pkt)
	}
	s.conn.Close()
}

// ChassisStatus runs Get Chassis Status.
func (s *Session) ChassisStatus(ctx context.Context) (ipmi.ChassisStatus, error) {
	b, err := s.call(ctx, "get chassis status", ipmi.PrivUser, ipmi.NetFnChassis, ipmi.CmdGetChassisStatus, nil)
	if err != nil {
		return ipmi.ChassisStatus{}, err
	}
	return ipmi.ParseChassisStatus(b)
}

// ChassisControl runs Chassis Control (power up, down, cycle, hard reset, soft shutdown).
func (s *Session) ChassisControl(ctx context.Context, c ipmi.ChassisControl) error {
	if !c.Valid() {
		return fmt.Errorf("lanplus: chassis control %d is not defined", c)
	}
	_, err := s.call(ctx, "chassis "+c.String(), ipmi.PrivOperator, ipmi.NetFnChassis, ipmi.CmdChassisControl, []byte{byte(c)})
	return err
}

// SetBootFlags sets the boot device for the next boot (or every boot, when persistent),
// as xCAT's rsetboot does: first boot option parameter 3 so that the BMC does not clear
// the flags after 60 s (a BMC that does not support it is not an error), then parameter 5.
func (s *Session) SetBootFlags(ctx context.Context, f ipmi.BootFlags) error {
	_, err := s.call(ctx, "set boot option 3", ipmi.PrivOperator, ipmi.NetFnChassis, ipmi.CmdSetSystemBootOptions,
		[]byte{ipmi.BootParamFlagValidClear, ipmi.DontClearOnTimeout})
	var cc ipmi.CompletionCode
	if err != nil && !(errors.As(err, &cc) && (cc == ipmi.CodeParamNotSupported || cc == ipmi.CodeInvalidCommand || cc == 0xCC)) {
		return err
	}
	_, err = s.call(ctx, "set boot flags", ipmi.PrivOperator, ipmi.NetFnChassis, ipmi.CmdSetSystemBootOptions, f.Append([]byte{ipmi.BootParamFlags}))
	return err
}

// BootFlags reads boot option parameter 5.
func (s *Session) BootFlags(ctx context.Context) (ipmi.BootFlags, error) {
	b, err := s.call(ctx, "get boot flags", ipmi.PrivUser, ipmi.NetFnChassis, ipmi.CmdGetSystemBootOptions, []byte{ipmi.BootParamFlags, 0, 0})
	if err != nil {
		return ipmi.BootFlags{}, err
	}
	return ipmi.ParseBootFlags(b)
}
