// Package hatest has fakes of package ha's seams for tests and examples that run without
// root: a Network that keeps addresses in memory, a Lock on the process's clock, a Hostnamer,
// and a Service that records its calls.
package hatest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/provkit/provkit/ha"
)

// Network is an in-memory ha.Network. Addresses listed in Others are "answered by another
// host"; Log records every call as "probe ADDR", "up PREFIX DEV", "down PREFIX DEV". Networks
// made by one Segment see each other's addresses, as hosts on one Ethernet segment do.
type Network struct {
	mu     sync.Mutex
	up     map[netip.Addr]ha.VIP
	Others map[netip.Addr]net.HardwareAddr
	// FailUp, if set, is returned by Up.
	FailUp error
	log    []string

	seg *Segment
	mac net.HardwareAddr
}

// Segment is an Ethernet segment shared by several hosts' Networks. It records every
// moment two hosts had the same address: a split brain.
type Segment struct {
	mu        sync.Mutex
	hosts     []*Network
	conflicts []string
}

// Host returns the Network of one more host on the segment.
func (s *Segment) Host(name string) *Network {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := &Network{seg: s, mac: net.HardwareAddr{2, 0, 0, 0, 0, byte(len(s.hosts) + 1)}}
	s.hosts = append(s.hosts, n)
	return n
}

// Conflicts lists every time an address went up on a host while another had it.
func (s *Segment) Conflicts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.conflicts)
}

// holder returns the MAC of another host of the segment that has addr up.
func (s *Segment) holder(self *Network, addr netip.Addr) net.HardwareAddr {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	hosts := slices.Clone(s.hosts)
	s.mu.Unlock()
	for _, h := range hosts {
		if h == self {
			continue
		}
		h.mu.Lock()
		_, ok := h.up[addr]
		h.mu.Unlock()
		if ok {
			return h.mac
		}
	}
	return nil
}

func (n *Network) record(s string) {
	n.log = append(n.log, s)
}

// Probe answers like an ARP probe would.
func (n *Network) Probe(ctx context.Context, iface string, addr netip.Addr) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.record("probe " + addr.String())
	if v, ok := n.up[addr]; ok {
		return &ha.InUseError{Addr: addr, Local: v.Interface}
	}
	if mac, ok := n.Others[addr]; ok {
		return &ha.InUseError{Addr: addr, MAC: mac}
	}
	n.mu.Unlock()
	mac := n.seg.holder(n, addr)
	n.mu.Lock()
	if mac != nil {
		return &ha.InUseError{Addr: addr, MAC: mac}
	}
	return ctx.Err()
}

// Up installs v.
func (n *Network) Up(ctx context.Context, v ha.VIP) (bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.FailUp != nil {
		return false, n.FailUp
	}
	if n.up == nil {
		n.up = map[netip.Addr]ha.VIP{}
	}
	_, present := n.up[v.Prefix.Addr()]
	n.up[v.Prefix.Addr()] = v
	if !present {
		n.record("up " + v.Prefix.String() + " " + v.Interface)
		n.mu.Unlock()
		if mac := n.seg.holder(n, v.Prefix.Addr()); mac != nil {
			n.seg.mu.Lock()
			n.seg.conflicts = append(n.seg.conflicts, fmt.Sprintf("%s up on %s while %s has it", v.Prefix.Addr(), n.mac, mac))
			n.seg.mu.Unlock()
		}
		n.mu.Lock()
	}
	return !present, nil
}

// Down removes v.
func (n *Network) Down(ctx context.Context, v ha.VIP) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.up[v.Prefix.Addr()]; ok {
		n.record("down " + v.Prefix.String() + " " + v.Interface)
	}
	delete(n.up, v.Prefix.Addr())
	return nil
}

// Has reports whether addr is installed.
func (n *Network) Has(addr netip.Addr) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.up[addr]
	return ok
}

// Log returns the calls so far.
func (n *Network) Log() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.log)
}

// Host is an in-memory ha.Hostnamer.
type Host struct {
	mu   sync.Mutex
	Name string
}

func (h *Host) Hostname() (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.Name, nil
}

func (h *Host) SetHostname(name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.Name = name
	return nil
}

// Calls is a journal shared by several Services, so a test sees their global order.
type Calls struct {
	mu  sync.Mutex
	log []string
}

func (c *Calls) add(s string) {
	c.mu.Lock()
	c.log = append(c.log, s)
	c.mu.Unlock()
}

// List returns the calls so far, as "start NAME", "stop NAME".
func (c *Calls) List() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.log)
}

// Service is a fake ha.Service. Its first FailStarts starts succeed but leave it not running
// (the attempt fails); StartErr, if set, makes every Start fail.
type Service struct {
	ServiceName string
	Calls       *Calls
	FailStarts  int
	StartErr    error

	mu      sync.Mutex
	running bool
	starts  int
}

func (s *Service) Name() string { return s.ServiceName }

func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.starts++
	if s.Calls != nil {
		s.Calls.add("start " + s.ServiceName)
	}
	if s.StartErr != nil {
		return s.StartErr
	}
	s.running = s.starts > s.FailStarts
	return nil
}

func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Calls != nil {
		s.Calls.add("stop " + s.ServiceName)
	}
	s.running = false
	return nil
}

func (s *Service) Healthy(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return fmt.Errorf("%s: %w", s.ServiceName, ha.ErrNotRunning)
	}
	return nil
}

// Running reports whether the service runs.
func (s *Service) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// Kill makes the service stop running, as a crash would.
func (s *Service) Kill() {
	s.mu.Lock()
	s.running = false
	s.mu.Unlock()
}

// ErrUnreachable is what Lock returns to a holder cut off by Cut.
var ErrUnreachable = errors.New("hatest: lock store unreachable")

// Lock is an in-memory ha.Lock with the same semantics as ha.PGLock, on this process's
// clock. Grants records every acquisition, for ordering proofs.
type Lock struct {
	TTL time.Duration

	mu      sync.Mutex
	holder  string
	token   int64
	expires time.Time
	cut     map[string]bool
	grants  []Grant
}

// Grant is one acquisition of the lock.
type Grant struct {
	Holder string
	Token  int64
	At     time.Time
}

func (l *Lock) ttl() time.Duration {
	if l.TTL == 0 {
		return 2 * time.Second
	}
	return l.TTL
}

// Cut makes the lock unreachable for holders whose name starts with prefix (until Heal).
func (l *Lock) Cut(prefix string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut == nil {
		l.cut = map[string]bool{}
	}
	l.cut[prefix] = true
}

// Heal undoes Cut.
func (l *Lock) Heal(prefix string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.cut, prefix)
}

func (l *Lock) isCut(holder string) bool {
	for p := range l.cut {
		if len(holder) >= len(p) && holder[:len(p)] == p {
			return true
		}
	}
	return false
}

func (l *Lock) Acquire(ctx context.Context, holder string) (ha.Lease, error) {
	start := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isCut(holder) {
		return ha.Lease{}, ErrUnreachable
	}
	now := time.Now()
	if now.Before(l.expires) && l.holder != holder {
		return ha.Lease{}, &ha.HeldError{Holder: l.holder, Token: l.token, Remaining: l.expires.Sub(now)}
	}
	l.token++
	l.holder, l.expires = holder, now.Add(l.ttl())
	l.grants = append(l.grants, Grant{Holder: holder, Token: l.token, At: now})
	return ha.Lease{Holder: holder, Token: l.token, Start: start, TTL: l.ttl()}, nil
}

func (l *Lock) Renew(ctx context.Context, ls ha.Lease) (ha.Lease, error) {
	start := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isCut(ls.Holder) {
		return ls, ErrUnreachable
	}
	now := time.Now()
	if l.holder != ls.Holder || l.token != ls.Token || !now.Before(l.expires) {
		return ls, ha.ErrLost
	}
	l.expires = now.Add(l.ttl())
	ls.Start, ls.TTL = start, l.ttl()
	return ls, nil
}

func (l *Lock) Release(ctx context.Context, ls ha.Lease) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isCut(ls.Holder) {
		return ErrUnreachable
	}
	if l.holder == ls.Holder && l.token == ls.Token {
		l.holder, l.expires = "", time.Time{}
	}
	return nil
}

// Grants returns every acquisition so far.
func (l *Lock) Grants() []Grant {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.grants)
}
