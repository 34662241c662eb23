package dhcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is an embedded DHCPv4 server for a cluster: reservations from Hosts, a dynamic
// pool for unknown clients, PXE/iPXE/UEFI/HTTP boot answers, relay support, and leases
// persisted crash-safe in LeaseFile. The zero value serves nothing until it has Networks;
// with a Network that has Ranges it hands out addresses like any DHCP server.
//
// The fields are read once when Serve starts; changing them afterwards has no effect on a
// running Serve. Reservations are live: Hosts is consulted on every request.
type Server struct {
	// Networks are the subnets served. Each is validated when Serve starts.
	Networks []Network

	// Hosts finds reservations by MAC (and by client identifier and address when it
	// implements ClientIDHosts and AddrHosts). If nil, every client is unknown.
	Hosts Hosts

	// DenyUnknown ignores clients without a reservation, as "deny unknown-clients" in the
	// ISC configurations of xCAT and Kerrighed. If false, they get an address from the
	// network's Ranges when it has any.
	DenyUnknown bool

	// DenyBOOTP ignores BOOTP clients (requests without a DHCP message type), as ISC's
	// "deny bootp". If false, a BOOTP client with a reservation gets its reserved address
	// and boot file, as ISC dhcpd answers a fixed-address host; one without a reservation
	// gets nothing (ISC's dynamic-bootp is not supported).
	DenyBOOTP bool

	// OnDiscover, if set, is called for each DHCPDISCOVER from a client without a
	// reservation, with the address offered (zero if none: denied or pool full), so that
	// node discovery can record it. It runs on the worker that handles the packet and must
	// return quickly; it must not call back into the Server.
	OnDiscover func(Discovery)

	// LeaseFile is the path of the lease journal. If empty, leases live in memory and a
	// restart forgets them. An ACK leaves only after its lease is in the file (written
	// with write(2): it survives the server being killed at any moment); the file is
	// fsync'd every second, so a power cut can lose at most the last second of leases.
	// The server takes an exclusive lock on LeaseFile+".lock".
	LeaseFile string

	// Conn is the socket to serve on. If nil, Serve opens a Socket on port 67 (Linux).
	// A *Socket reports the arrival interface and reaches clients that have no address yet
	// at their MAC. Any other PacketConn (loopback in tests) has no link layer: replies
	// that would go to a client's MAC or to the broadcast address go to the address the
	// request came from. Serve closes Conn when it returns.
	Conn net.PacketConn

	// Interfaces, if set, restricts serving to requests that arrive on these interfaces
	// (site.dhcpinterfaces), relayed or not. It needs a *Socket (the arrival interface).
	Interfaces []string

	// Workers is how many packets are handled at once. If zero, 4 x GOMAXPROCS, at most 64.
	Workers int

	// ClientPort and RelayPort are where replies go: clients listen on 68, relays on 67.
	// If zero, those.
	ClientPort, RelayPort int

	// Logger receives the server's log; nil discards it.
	Logger *slog.Logger

	now func() time.Time // for tests; nil means time.Now

	st atomic.Pointer[state]
}

// Discovery describes a DHCPDISCOVER from a client without a reservation.
type Discovery struct {
	MAC      net.HardwareAddr
	HWType   uint8
	ClientID []byte
	// Interface is the name of the interface the request arrived on ("" if unknown).
	Interface string
	// Relay is the relay agent's address (giaddr), zero for a local client.
	Relay netip.Addr
	// Network is the prefix of the network the client is on.
	Network netip.Prefix
	// Arch is option 93 (0xffff if absent); VendorClass is option 60, UserClass option 77.
	Arch        uint16
	VendorClass string
	UserClass   []string
	// Hostname is option 12 as the client sent it.
	Hostname string
	// Offered is the address offered, zero if none.
	Offered netip.Addr
}

// ErrNotServing is returned by Server methods that need a running Serve.
var ErrNotServing = errors.New("dhcp: server is not serving")

const (
	offerHold   = 60 * time.Second
	declineHold = time.Hour
	sweepEvery  = 30 * time.Second
	syncEvery   = time.Second
	// journalWait bounds how long ACKs wait for their leases to be written.
	journalWait = 2 * time.Second
	// compactMin is the journal length below which it is never compacted.
	compactMin = 4096
)

// state is everything Serve resolved from the fields: the packet path reads only this.
type state struct {
	nets       []*netState
	hosts      Hosts
	idHosts    ClientIDHosts
	addrHosts  AddrHosts
	deny       bool
	denyBOOTP  bool
	onDiscover func(Discovery)
	leases     *leaseTable
	tr         transport
	log        *slog.Logger
	debug      bool
	ifaceAllow map[string]bool
	clientPort uint16
	relayPort  uint16
	now        func() time.Time

	// counters, for tests and Stats
	received, replied, dropped atomic.Uint64
}

// netState is a Network compiled for the packet path: every option value it always sends
// is encoded once.
type netState struct {
	n          Network
	prefix     netip.Prefix
	netAddr    uint32
	bcastAddr  uint32
	ranges     []urange
	poolSize   int
	cursor     uint32 // next address to try; guarded by the lease table lock
	serverAddr uint32
	nextServer uint32
	leaseSecs  uint32
	special    map[uint32]bool // never handed out dynamically

	mask, bcast, routers, dns, domain, ntp, logs, search, mtu string
}

type urange struct{ lo, hi uint32 }

func (s *Server) compile() (*state, error) {
	st := &state{
		hosts:      s.Hosts,
		deny:       s.DenyUnknown,
		denyBOOTP:  s.DenyBOOTP,
		onDiscover: s.OnDiscover,
		log:        s.Logger,
		now:        s.now,
		clientPort: 68,
		relayPort:  67,
	}
	if st.log == nil {
		st.log = slog.New(slog.DiscardHandler)
	}
	st.debug = st.log.Enabled(context.Background(), slog.LevelDebug)
	if st.now == nil {
		st.now = time.Now
	}
	if s.ClientPort != 0 {
		if s.ClientPort < 0 || s.ClientPort > 65535 {
			return nil, fmt.Errorf("dhcp: client port %d out of range", s.ClientPort)
		}
		st.clientPort = uint16(s.ClientPort)
	}
	if s.RelayPort != 0 {
		if s.RelayPort < 0 || s.RelayPort > 65535 {
			return nil, fmt.Errorf("dhcp: relay port %d out of range", s.RelayPort)
		}
		st.relayPort = uint16(s.RelayPort)
	}
	if s.Hosts != nil {
		st.idHosts, _ = s.Hosts.(ClientIDHosts)
		st.addrHosts, _ = s.Hosts.(AddrHosts)
	}
	if len(s.Interfaces) > 0 {
		st.ifaceAllow = make(map[string]bool)
		for _, n := range s.Interfaces {
			st.ifaceAllow[n] = true
		}
	}
	for i := range s.Networks {
		n := s.Networks[i]
		if err := n.Validate(); err != nil {
			return nil, err
		}
		for _, o := range st.nets {
			if o.prefix.Overlaps(n.Prefix) {
				return nil, fmt.Errorf("dhcp: network %s overlaps network %s", n.Prefix, o.prefix)
			}
		}
		st.nets = append(st.nets, compileNetwork(n))
	}
	return st, nil
}

func compileNetwork(n Network) *netState {
	n.Ranges = slices.Clone(n.Ranges)
	n.Options = slices.Clone(n.Options)
	ns := &netState{n: n, prefix: n.Prefix, special: make(map[uint32]bool)}
	ns.netAddr = addrU32(n.Prefix.Addr())
	hostBits := 32 - n.Prefix.Bits()
	ns.bcastAddr = ns.netAddr | (1<<hostBits - 1)
	ns.special[ns.netAddr] = true
	ns.special[ns.bcastAddr] = true
	maskv := ^uint32(0) << hostBits
	ns.mask = u32String(maskv)
	ns.bcast = u32String(ns.bcastAddr)
	for _, r := range n.Ranges {
		ns.ranges = append(ns.ranges, urange{addrU32(r.First), addrU32(r.Last)})
		ns.poolSize += r.Size()
	}
	if len(ns.ranges) > 0 {
		ns.cursor = ns.ranges[0].lo
	}
	if n.ServerAddr.IsValid() {
		ns.serverAddr = addrU32(n.ServerAddr)
		ns.special[ns.serverAddr] = true
	}
	if n.NextServer.IsValid() {
		ns.nextServer = addrU32(n.NextServer)
	}
	ns.leaseSecs = durationSeconds(n.leaseTime())
	ns.routers = addrsString(n.Routers)
	for _, r := range n.Routers {
		ns.special[addrU32(r)] = true
	}
	ns.dns = addrsString(n.DNS)
	ns.ntp = addrsString(n.NTP)
	ns.logs = addrsString(n.LogServers)
	ns.domain = n.Domain
	if n.MTU > 0 {
		ns.mtu = string([]byte{byte(n.MTU >> 8), byte(n.MTU)})
	}
	if len(n.DomainSearch) > 0 {
		ns.search = string(encodeDomainList(n.DomainSearch))
	}
	return ns
}

func u32String(v uint32) string {
	return string([]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func addrsString(as []netip.Addr) string {
	var b []byte
	for _, a := range as {
		v := a.As4()
		b = append(b, v[:]...)
	}
	return string(b)
}

// encodeDomainList encodes option 119 (RFC 3397) without compression.
func encodeDomainList(domains []string) []byte {
	var b []byte
	for _, d := range domains {
		for _, label := range strings.Split(strings.TrimSuffix(d, "."), ".") {
			if label == "" || len(label) > 63 {
				continue
			}
			b = append(b, byte(len(label)))
			b = append(b, label...)
		}
		b = append(b, 0)
	}
	return b
}

func (ns *netState) inRanges(ip uint32) bool {
	for _, r := range ns.ranges {
		if r.lo <= ip && ip <= r.hi {
			return true
		}
	}
	return false
}

func (ns *netState) contains(ip uint32) bool {
	return ip&^(ns.bcastAddr^ns.netAddr) == ns.netAddr
}

// Serve answers DHCP requests until ctx is done, then closes the socket, waits for the
// workers, syncs the lease file and returns nil. It returns an error if the configuration
// is invalid, the lease file cannot be opened, or the socket fails.
func (s *Server) Serve(ctx context.Context) error {
	st, err := s.compile()
	if err != nil {
		return err
	}
	st.leases = newLeaseTable()
	if s.LeaseFile != "" {
		j, err := openJournal(s.LeaseFile, st.leases)
		if err != nil {
			return err
		}
		st.leases.j = j
		if j.lines > compactMin && j.lines > 2*len(st.leases.byIP) {
			if err := st.compact(); err != nil {
				j.close()
				return err
			}
		}
	}
	conn := s.Conn
	if conn == nil {
		sock, err := ListenSocket(":67")
		if err != nil {
			st.leases.j.close()
			return err
		}
		conn = sock
	}
	st.tr = newTransport(conn)
	if err := st.checkServerAddrs(conn); err != nil {
		conn.Close()
		st.leases.j.close()
		return err
	}
	if !s.st.CompareAndSwap(nil, st) {
		conn.Close()
		st.leases.j.close()
		return errors.New("dhcp: Serve called twice")
	}
	defer s.st.Store(nil)

	workers := s.Workers
	if workers <= 0 {
		workers = min(4*runtime.GOMAXPROCS(0), 64)
	}
	st.log.Info("dhcp: serving", "networks", len(st.nets), "workers", workers,
		"leases", len(st.leases.byIP), "addr", conn.LocalAddr().String())

	stopWriter := func() error { return nil }
	if j := st.leases.j; j != nil {
		stopWriter = j.start(func(err error) { st.log.Error("dhcp: lease file", "err", err) })
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var fatal error
	var fatalOnce sync.Once
	fail := func(err error) {
		fatalOnce.Do(func() { fatal = err })
		cancel()
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := st.work(ctx, batchSize); err != nil {
				fail(err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		st.maintain(ctx)
	}()
	<-ctx.Done()
	conn.Close()
	wg.Wait()

	if err := stopWriter(); err != nil && fatal == nil {
		fatal = err
	}
	if err := st.leases.j.close(); err != nil && fatal == nil {
		fatal = err
	}
	st.log.Info("dhcp: stopped", "received", st.received.Load(), "replied", st.replied.Load())
	return fatal
}

// checkServerAddrs makes sure every network has a server identifier when the socket cannot
// tell the address a request arrived at.
func (st *state) checkServerAddrs(conn net.PacketConn) error {
	if _, ok := conn.(*Socket); ok {
		return nil
	}
	if st.ifaceAllow != nil {
		return fmt.Errorf("dhcp: Interfaces is set but Conn (%T) cannot tell the arrival interface: use a *Socket", conn)
	}
	local := netip.Addr{}
	if ua, ok := conn.LocalAddr().(*net.UDPAddr); ok {
		local, _ = netip.AddrFromSlice(ua.IP)
		local = local.Unmap()
	}
	for _, ns := range st.nets {
		if ns.serverAddr == 0 && (!local.Is4() || local.IsUnspecified()) {
			return fmt.Errorf("dhcp: network %s: ServerAddr is required when Conn (%s) is not a *Socket bound to one address",
				ns.prefix, conn.LocalAddr())
		}
	}
	return nil
}

// work is one worker: read a batch of packets (one recvmmsg on Linux), handle each, write
// the lease records of the batch with one write(2), then send the replies. Its buffers
// are its own and reused.
func (st *state) work(ctx context.Context, size int) error {
	b := newBatch(size)
	for {
		n, err := st.tr.readBatch(b)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("dhcp: socket closed: %w", err)
			}
			st.log.Warn("dhcp: read", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		st.received.Add(uint64(n))
		for _, w := range b.slots[:n] {
			w.ok = false
			if st.ifaceAllow != nil && !st.ifaceAllow[w.meta.ifname] {
				continue
			}
			w.rt, w.ok = st.handle(ctx, w, w.in[:w.n])
		}
		// OFFERs and NAKs go out at once; ACKs once the journal holds their leases (the
		// writer writes the records of all workers with one write: group commit).
		ready, acks := b.ready[:0], b.acks[:0]
		var need uint64
		for _, w := range b.slots[:n] {
			switch {
			case !w.ok:
				st.dropped.Add(1)
			case w.seq == 0:
				ready = append(ready, w)
			default:
				acks = append(acks, w)
				need = max(need, w.seq)
			}
		}
		st.sendAll(b, ready)
		if len(acks) > 0 {
			if ok, err := st.leases.j.wait(need, journalWait); !ok {
				st.log.Error("dhcp: lease not written: not acknowledging", "count", len(acks), "err", err)
				st.dropped.Add(uint64(len(acks)))
				continue
			}
			st.sendAll(b, acks)
		}
	}
}

func (st *state) sendAll(b *batch, slots []*slot) {
	if len(slots) == 0 {
		return
	}
	if bs, ok := st.tr.(batchSender); ok {
		st.replied.Add(uint64(bs.sendBatch(b, slots, st.logSendErr)))
		return
	}
	for _, w := range slots {
		if err := st.tr.send(b, w); err != nil {
			st.logSendErr(w, err)
			continue
		}
		st.replied.Add(1)
	}
}

func (st *state) logSendErr(w *slot, err error) {
	st.log.Warn("dhcp: send", "to", w.rt.String(), "err", err)
}

// maintain sweeps expired leases and compacts the lease file when it has grown. (The
// journal's writer syncs it.)
func (st *state) maintain(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastSweep := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t := st.leases
		t.mu.Lock()
		if time.Since(lastSweep) >= sweepEvery {
			lastSweep = time.Now()
			if n := t.sweep(st.now().Unix()); n > 0 && st.debug {
				st.log.Debug("dhcp: swept leases", "count", n)
			}
		}
		needCompact := t.j != nil && t.j.lines > compactMin && t.j.lines > 2*len(t.byIP)
		t.mu.Unlock()
		if needCompact {
			if err := st.compact(); err != nil {
				st.log.Error("dhcp: compact lease file", "err", err)
			}
		}
	}
}

// compact rewrites the journal as a snapshot of the live leases while the server keeps
// answering; see journal.go.
func (st *state) compact() error {
	t := st.leases
	t.mu.Lock()
	recs := t.snapshot(st.now().Unix())
	t.j.rewriting = true
	t.j.diff = t.j.diff[:0]
	t.mu.Unlock()

	sortRecords(recs)
	f, err := t.j.writeSnapshot(recs)
	if err != nil {
		t.mu.Lock()
		t.j.rewriting = false
		t.j.diff = nil
		t.mu.Unlock()
		return err
	}
	return t.j.compactTo(f, len(recs))
}

// Leases returns a snapshot of every lease, sorted by address. It returns ErrNotServing when
// Serve is not running.
func (s *Server) Leases() ([]Lease, error) {
	st := s.st.Load()
	if st == nil {
		return nil, ErrNotServing
	}
	t := st.leases
	t.mu.Lock()
	out := make([]Lease, 0, len(t.byIP))
	for _, l := range t.byIP {
		out = append(out, l.export())
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b Lease) int { return a.IP.Compare(b.IP) })
	return out, nil
}

// ForgetLease removes the lease of the Ethernet client with hardware address mac and
// persists the removal, as `makedhcp -d` does. It reports whether there was one.
func (s *Server) ForgetLease(mac net.HardwareAddr) (bool, error) {
	st := s.st.Load()
	if st == nil {
		return false, ErrNotServing
	}
	t := st.leases
	t.mu.Lock()
	found := t.forget(hwKey(1, mac))
	var seq uint64
	if t.j != nil {
		seq = t.j.seq
	}
	t.mu.Unlock()
	if !found {
		return false, nil
	}
	_, err := t.j.wait(seq, journalWait)
	return true, err
}

// Stats are counters of a running server.
type Stats struct {
	Received, Replied, Dropped uint64
	Leases                     int
}

// Stats returns the counters of the running Serve, or ErrNotServing.
func (s *Server) Stats() (Stats, error) {
	st := s.st.Load()
	if st == nil {
		return Stats{}, ErrNotServing
	}
	st.leases.mu.Lock()
	n := len(st.leases.byIP)
	st.leases.mu.Unlock()
	return Stats{Received: st.received.Load(), Replied: st.replied.Load(), Dropped: st.dropped.Load(), Leases: n}, nil
}

var _ io.Closer = (*Socket)(nil)
