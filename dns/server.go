package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
)

// Server is an embedded DNS server for a cluster: authoritative for the zones its
// Records hold (the cluster's domain, the reverse zones of its networks), a caching
// forwarder for everything else. It serves UDP and TCP.
//
// The fields are read once when Serve starts. Records is consulted on every query, so a
// change in the data is answered at once, without a reload.
type Server struct {
	// Records holds the names the server is authoritative for. If nil, every query is
	// forwarded (or refused when there are no Forwarders).
	Records Records

	// Forwarders are the upstream servers queried, in order, for names outside the
	// server's zones (site.forwarders). If empty, such queries are refused.
	Forwarders []netip.AddrPort

	// RecursionFrom are the client networks allowed to use the forwarders. If nil, every
	// client may (an open resolver: give the cluster's networks and loopback instead
	// whenever the server listens on an address others can reach). Queries for the
	// server's own zones are answered to everybody.
	RecursionFrom []netip.Prefix

	// PacketConn is the UDP socket and Listener the TCP one. If both are nil, Serve opens
	// both on Addr. Serve closes them when it returns.
	PacketConn net.PacketConn
	Listener   net.Listener
	// Addr is where Serve listens when PacketConn and Listener are nil. If empty, ":53".
	Addr string

	// Workers is how many UDP queries are handled at once. If zero, 2 x GOMAXPROCS.
	Workers int
	// MaxTCPConns bounds the TCP connections served at once; more are closed at once.
	// If zero, 128.
	MaxTCPConns int
	// MaxForwards bounds the upstream queries in flight; beyond it clients get SERVFAIL.
	// If zero, 256.
	MaxForwards int
	// ForwardTimeout is how long one forwarder is given to answer. If zero, 2 s.
	ForwardTimeout time.Duration
	// CacheSize is how many forwarded answers are cached. If zero, 10,000; negative
	// disables the cache.
	CacheSize int
	// MaxCacheTTL caps how long a forwarded answer is cached. If zero, 1 hour.
	MaxCacheTTL time.Duration

	// Logger receives the server's log; nil discards it.
	Logger *slog.Logger

	now func() time.Time // for tests; nil means time.Now
	st  atomic.Pointer[state]
}

// Stats are the server's counters.
type Stats struct {
	Queries       uint64 // queries received (UDP and TCP)
	Authoritative uint64 // answered from Records
	Forwarded     uint64 // sent upstream (cache misses)
	CacheHits     uint64 // answered from the cache
	Refused       uint64 // refused (not ours, no recursion for the client)
	Failed        uint64 // SERVFAIL: upstream failed or too many in flight
	Malformed     uint64 // dropped or answered FORMERR
}

// ErrNotServing is returned by Server methods that need a running Serve.
var ErrNotServing = errors.New("dns: server is not serving")

// ednsSize is the UDP payload size the server advertises, the DNS flag day 2020 value.
const ednsSize = 1232

// state is what Serve resolved from the fields.
type state struct {
	records   Records
	recursion []netip.Prefix
	openRec   bool
	fwd       *forwarder
	pc        net.PacketConn
	ln        net.Listener
	log       *slog.Logger
	tcpSem    chan struct{}

	queries, auth, refused, malformed atomic.Uint64
}

// Serve answers queries until ctx is done, then closes the sockets, waits for the
// queries in progress and returns nil. It returns an error if the sockets cannot be
// opened or fail.
func (s *Server) Serve(ctx context.Context) error {
	st, err := s.compile()
	if err != nil {
		return err
	}
	s.st.Store(st)
	defer s.st.CompareAndSwap(st, nil)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	workers := s.Workers
	if workers <= 0 {
		workers = 2 * runtime.GOMAXPROCS(0)
	}
	errc := make(chan error, workers+1) // every goroutine can report without blocking
	if st.pc != nil {
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := st.serveUDP(ctx); err != nil {
					errc <- err
				}
			}()
		}
	}
	if st.ln != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := st.serveTCP(ctx, &wg); err != nil {
				errc <- err
			}
		}()
	}
	var serr error
	select {
	case <-ctx.Done():
	case serr = <-errc:
	}
	cancel()
	if st.pc != nil {
		st.pc.Close()
	}
	if st.ln != nil {
		st.ln.Close()
	}
	wg.Wait()
	st.fwd.wait()
	return serr
}

func (s *Server) compile() (*state, error) {
	log := s.Logger
	if log == nil {
		log = discard()
	}
	st := &state{records: s.Records, recursion: s.RecursionFrom, openRec: s.RecursionFrom == nil, log: log}
	for _, f := range s.Forwarders {
		if !f.IsValid() || f.Port() == 0 {
			return nil, fmt.Errorf("dns: forwarder %s: want an address and port", f)
		}
	}
	for _, p := range s.RecursionFrom {
		if !p.IsValid() {
			return nil, fmt.Errorf("dns: RecursionFrom: invalid prefix %s", p)
		}
	}
	now := s.now
	if now == nil {
		now = time.Now
	}
	st.fwd = newForwarder(s.Forwarders, s.MaxForwards, s.ForwardTimeout, s.CacheSize, s.MaxCacheTTL, now, log)
	maxTCP := s.MaxTCPConns
	if maxTCP <= 0 {
		maxTCP = 128
	}
	st.tcpSem = make(chan struct{}, maxTCP)
	st.pc, st.ln = s.PacketConn, s.Listener
	defer func() {
		// A deep receive queue rides out bursts (a rack booting asks all at once);
		// the kernel caps it at net.core.rmem_max. Best effort.
		if u, ok := st.pc.(interface{ SetReadBuffer(int) error }); ok && st.pc != nil {
			_ = u.SetReadBuffer(4 << 20)
		}
	}()
	if st.pc == nil && st.ln == nil {
		addr := s.Addr
		if addr == "" {
			addr = ":53"
		}
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, fmt.Errorf("dns: %w", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			return nil, fmt.Errorf("dns: %w", err)
		}
		st.pc, st.ln = pc, ln
	}
	return st, nil
}

// Stats returns the counters of the running server.
func (s *Server) Stats() (Stats, error) {
	st := s.st.Load()
	if st == nil {
		return Stats{}, ErrNotServing
	}
	return Stats{
		Queries:       st.queries.Load(),
		Authoritative: st.auth.Load(),
		Forwarded:     st.fwd.forwarded.Load(),
		CacheHits:     st.fwd.hits.Load(),
		Refused:       st.refused.Load(),
		Failed:        st.fwd.failed.Load(),
		Malformed:     st.malformed.Load(),
	}, nil
}

// FlushCache empties the cache of forwarded answers.
func (s *Server) FlushCache() error {
	st := s.st.Load()
	if st == nil {
		return ErrNotServing
	}
	st.fwd.cache.flush()
	return nil
}

// query is one decoded query and where its answer goes.
type query struct {
	msg     *mdns.Msg
	from    netip.Addr
	udpSize int  // the largest answer the client takes over UDP; 0 for TCP
	edns    bool // the query had an OPT record
	do      bool
}

func (st *state) serveUDP(ctx context.Context) error {
	buf := make([]byte, 4096)
	out := make([]byte, 0, 4096)
	for {
		n, addr, err := st.pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("dns: udp: %w", err)
		}
		st.queries.Add(1)
		q, resp := st.decode(buf[:n], 0)
		if q == nil && resp == nil {
			continue
		}
		if q != nil {
			q.from = addrOf(addr)
			var fwd bool
			resp, fwd = st.answer(q)
			if fwd {
				st.forwardUDP(ctx, q, addr)
				continue
			}
		}
		out = st.send(out, resp, q, addr)
	}
}

// send packs resp (truncated to what the client takes) and writes it to addr.
func (st *state) send(out []byte, resp *mdns.Msg, q *query, addr net.Addr) []byte {
	size := mdns.MinMsgSize
	if q != nil && q.udpSize > 0 {
		size = q.udpSize
	}
	resp.Truncate(size)
	b, err := resp.PackBuffer(out[:cap(out)])
	if err != nil {
		st.log.Warn("dns: pack answer", "err", err)
		return out
	}
	if _, err := st.pc.WriteTo(b, addr); err != nil {
		st.log.Debug("dns: udp write", "ip", addr.String(), "err", err)
	}
	if cap(b) > cap(out) && cap(b) <= 64*1024 {
		out = b[:0]
	}
	return out
}

func (st *state) forwardUDP(ctx context.Context, q *query, addr net.Addr) {
	st.fwd.resolve(ctx, q, func(resp *mdns.Msg) { st.send(nil, resp, q, addr) })
}

func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// decode reads a query. It returns the query, or an error answer to send (FORMERR,
// NOTIMP, BADVERS), or neither when the packet deserves no answer at all.
func (st *state) decode(pkt []byte, tcp int) (*query, *mdns.Msg) {
	if len(pkt) < 12 {
		st.malformed.Add(1)
		return nil, nil
	}
	m := new(mdns.Msg)
	if err := m.Unpack(pkt); err != nil {
		st.malformed.Add(1)
		// Answer FORMERR when at least the header is readable and it is a query.
		if pkt[2]&0x80 != 0 {
			return nil, nil
		}
		r := new(mdns.Msg)
		r.Id = binary.BigEndian.Uint16(pkt)
		r.Response = true
		r.Opcode = int(pkt[2]>>3) & 0xf
		r.Rcode = mdns.RcodeFormatError
		return nil, r
	}
	if m.Response {
		st.malformed.Add(1)
		return nil, nil
	}
	q := &query{msg: m, udpSize: mdns.MinMsgSize}
	if tcp > 0 {
		q.udpSize = 0
	}
	if opt := m.IsEdns0(); opt != nil {
		q.edns = true
		q.do = opt.Do()
		if opt.Version() != 0 {
			r := new(mdns.Msg)
			r.SetRcode(m, mdns.RcodeBadVers)
			r.SetEdns0(ednsSize, false)
			return nil, r
		}
		if tcp == 0 {
			q.udpSize = max(mdns.MinMsgSize, min(int(opt.UDPSize()), ednsSize))
		}
	}
	switch {
	case m.Opcode != mdns.OpcodeQuery:
		r := new(mdns.Msg)
		r.SetRcode(m, mdns.RcodeNotImplemented)
		return nil, withEDNS(r, q)
	case len(m.Question) != 1:
		st.malformed.Add(1)
		r := new(mdns.Msg)
		r.SetRcodeFormatError(m)
		return nil, withEDNS(r, q)
	}
	return q, nil
}

func withEDNS(r *mdns.Msg, q *query) *mdns.Msg {
	if q != nil && q.edns {
		r.SetEdns0(ednsSize, q.do)
	}
	return r
}

// maxChase bounds the CNAME chain the server follows inside its own data.
const maxChase = 8

// answer answers q from Records, or reports that it must be forwarded.
func (st *state) answer(q *query) (resp *mdns.Msg, forward bool) {
	m := q.msg
	qq := m.Question[0]
	r := new(mdns.Msg)
	r.SetReply(m)
	r.Compress = true
	recursion := st.fwd.enabled() && st.recursionFor(q.from)
	r.RecursionAvailable = recursion
	switch qq.Qtype {
	case mdns.TypeAXFR, mdns.TypeIXFR:
		st.refused.Add(1)
		r.Rcode = mdns.RcodeRefused
		return withEDNS(r, q), false
	}
	if qq.Qclass != mdns.ClassINET && qq.Qclass != mdns.ClassANY {
		st.refused.Add(1)
		r.Rcode = mdns.RcodeRefused
		return withEDNS(r, q), false
	}
	name := strings.ToLower(qq.Name)
	var res Result
	if st.records != nil {
		res = st.records.Lookup(name)
	}
	if res.Zone == nil && !res.Exists {
		if recursion && m.RecursionDesired {
			return nil, true
		}
		st.refused.Add(1)
		r.Rcode = mdns.RcodeRefused
		return withEDNS(r, q), false
	}
	st.auth.Add(1)
	r.Authoritative = true
	owner := qq.Name
	for hop := 0; ; hop++ {
		if !res.Exists {
			// RFC 6604: the rcode speaks of the last name of the chain.
			r.Rcode = mdns.RcodeNameError
			break
		}
		if res.CNAME != "" {
			r.Answer = append(r.Answer, &mdns.CNAME{Hdr: hdr(owner, mdns.TypeCNAME, res.Zone), Target: res.CNAME})
			if qq.Qtype == mdns.TypeCNAME || hop >= maxChase {
				break
			}
			owner = res.CNAME
			res = st.records.Lookup(res.CNAME)
			if res.Zone == nil && !res.Exists {
				break // outside our data: the resolver follows it
			}
			continue
		}
		addRecords(r, owner, qq.Qtype, &res)
		break
	}
	if len(r.Answer) == 0 || (r.Rcode == mdns.RcodeSuccess && !answers(r, qq.Qtype)) {
		if z := res.Zone; z != nil {
			soa := z.SOA()
			soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
			r.Ns = append(r.Ns, soa)
		}
	}
	return withEDNS(r, q), false
}

// answers reports whether r holds a record of type t (or anything, for ANY), beyond the
// CNAME chain that led there.
func answers(r *mdns.Msg, t uint16) bool {
	for _, rr := range r.Answer {
		h := rr.Header()
		if h.Rrtype == t || t == mdns.TypeANY || t == mdns.TypeCNAME && h.Rrtype == mdns.TypeCNAME {
			return true
		}
	}
	return false
}

func hdr(name string, t uint16, z *Zone) mdns.RR_Header {
	ttl := uint32(DefaultTTL / time.Second)
	if z != nil {
		ttl = z.ttl()
	}
	return mdns.RR_Header{Name: name, Rrtype: t, Class: mdns.ClassINET, Ttl: ttl}
}

// addRecords adds the records of res of type t to r's answer, and the SOA and NS of a
// zone apex.
func addRecords(r *mdns.Msg, owner string, t uint16, res *Result) {
	anyT := t == mdns.TypeANY
	for _, a := range res.Addrs {
		switch {
		case a.Is4() && (t == mdns.TypeA || anyT):
			r.Answer = append(r.Answer, &mdns.A{Hdr: hdr(owner, mdns.TypeA, res.Zone), A: a.AsSlice()})
		case a.Is6() && (t == mdns.TypeAAAA || anyT):
			r.Answer = append(r.Answer, &mdns.AAAA{Hdr: hdr(owner, mdns.TypeAAAA, res.Zone), AAAA: a.AsSlice()})
		}
	}
	if t == mdns.TypePTR || anyT {
		for _, p := range res.PTR {
			r.Answer = append(r.Answer, &mdns.PTR{Hdr: hdr(owner, mdns.TypePTR, res.Zone), Ptr: p})
		}
	}
	z := res.Zone
	if z == nil || !strings.EqualFold(owner, z.Name) {
		return
	}
	if t == mdns.TypeSOA || anyT {
		soa := z.SOA()
		soa.Hdr.Name = owner
		r.Answer = append(r.Answer, soa)
	}
	if t == mdns.TypeNS || anyT {
		for _, ns := range z.ns() {
			r.Answer = append(r.Answer, &mdns.NS{Hdr: hdr(owner, mdns.TypeNS, z), Ns: ns})
		}
	}
}

func (st *state) recursionFor(a netip.Addr) bool {
	if st.openRec {
		return true
	}
	for _, p := range st.recursion {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// serveTCP accepts connections; each is served on its own goroutine, at most
// MaxTCPConns at once.
func (st *state) serveTCP(ctx context.Context, wg *sync.WaitGroup) error {
	var conns sync.Map
	defer conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
	for {
		c, err := st.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("dns: tcp: %w", err)
		}
		select {
		case st.tcpSem <- struct{}{}:
		default:
			c.Close()
			continue
		}
		conns.Store(c, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-st.tcpSem }()
			defer conns.Delete(c)
			defer c.Close()
			st.serveConn(ctx, c)
		}()
	}
}

// tcpIdle is how long a TCP connection may sit without a query (RFC 7766 suggests
// seconds).
const tcpIdle = 10 * time.Second

func (st *state) serveConn(ctx context.Context, c net.Conn) {
	from := addrOf(c.RemoteAddr())
	var lenb [2]byte
	buf := make([]byte, 0, 512)
	for ctx.Err() == nil {
		_ = c.SetReadDeadline(time.Now().Add(tcpIdle))
		if _, err := io.ReadFull(c, lenb[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(lenb[:]))
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		pkt := buf[:n]
		if _, err := io.ReadFull(c, pkt); err != nil {
			return
		}
		st.queries.Add(1)
		q, resp := st.decode(pkt, 1)
		if q == nil && resp == nil {
			return
		}
		if q != nil {
			q.from = from
			var fwd bool
			resp, fwd = st.answer(q)
			if fwd {
				done := make(chan *mdns.Msg, 1)
				st.fwd.resolve(ctx, q, func(m *mdns.Msg) { done <- m })
				select {
				case resp = <-done:
				case <-ctx.Done():
					return
				}
			}
		}
		b, err := resp.Pack()
		if err != nil {
			st.log.Warn("dns: pack answer", "err", err)
			return
		}
		out := make([]byte, 2+len(b))
		binary.BigEndian.PutUint16(out, uint16(len(b)))
		copy(out[2:], b)
		_ = c.SetWriteDeadline(time.Now().Add(tcpIdle))
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
