//go:build integration

package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

type syscallRawConn = syscall.RawConn

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

type ackRec struct {
	mac string
	ip  netip.Addr
}

// storm is n DHCP clients on one UDP socket (port 68, broadcast flag set, so replies come
// back by broadcast): each runs DISCOVER/OFFER/REQUEST/ACK with retries until it is bound.
type storm struct {
	conn    *net.UDPConn
	n       int
	mu      sync.Mutex
	pending map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4
	acks    []ackRec
	final   map[string]netip.Addr
	nak     int
	bound   atomic.Int64
}

func newStorm(c *net.UDPConn, n int) *storm {
	return &storm{conn: c, n: n, pending: map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4{}, final: map[string]netip.Addr{}}
}

func (s *storm) acked() int { return int(s.bound.Load()) }

func (s *storm) allACKs() []ackRec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ackRec(nil), s.acks...)
}

func (s *storm) finalACKs() []ackRec {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ackRec
	for m, a := range s.final {
		out = append(out, ackRec{m, a})
	}
	return out
}

func (s *storm) naks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nak
}

func (s *storm) run(ctx context.Context) error {
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, 2048)
		for ctx.Err() == nil && s.acked() < s.n {
			_ = s.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			n, _, err := s.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				continue
			}
			p, err := dhcpv4.FromBytes(buf[:n])
			if err != nil || p.OpCode != dhcpv4.OpcodeBootReply {
				continue
			}
			s.mu.Lock()
			ch := s.pending[p.TransactionID]
			s.mu.Unlock()
			if ch != nil {
				select {
				case ch <- p:
				default:
				}
			}
		}
	}()
	sem := make(chan struct{}, 100)
	var wg sync.WaitGroup
	for i := range s.n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.client(ctx, i)
		}()
	}
	wg.Wait()
	<-readerDone
	if s.acked() < s.n {
		return fmt.Errorf("%d of %d clients bound: %w", s.acked(), s.n, ctx.Err())
	}
	return nil
}

var bcast67 = net.UDPAddrFromAddrPort(netip.MustParseAddrPort("255.255.255.255:67"))

// exchange sends p until a reply of one of the wanted types arrives (at most tries times).
func (s *storm) exchange(ctx context.Context, p *dhcpv4.DHCPv4, tries int, want ...dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	ch := make(chan *dhcpv4.DHCPv4, 4)
	s.mu.Lock()
	s.pending[p.TransactionID] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, p.TransactionID)
		s.mu.Unlock()
	}()
	b := p.ToBytes()
	for range tries {
		if _, err := s.conn.WriteTo(b, bcast67); err != nil {
			return nil, err
		}
		timer := time.NewTimer(400 * time.Millisecond)
	wait:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil, ctx.Err()
			case <-timer.C:
				break wait
			case r := <-ch:
				for _, mt := range want {
					if r.MessageType() == mt {
						timer.Stop()
						return r, nil
					}
				}
			}
		}
	}
	return nil, errors.New("no answer")
}

func (s *storm) client(ctx context.Context, i int) {
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x91, byte(i >> 8), byte(i)}
	attempt := uint32(0)
	xid := func() dhcpv4.TransactionID {
		attempt++
		v := uint32(i)<<16 | attempt&0xffff
		return dhcpv4.TransactionID{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
	}
	for ctx.Err() == nil {
		d, _ := dhcpv4.New(dhcpv4.WithTransactionID(xid()), dhcpv4.WithHwAddr(mac),
			dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithBroadcast(true))
		offer, err := s.exchange(ctx, d, 10, dhcpv4.MessageTypeOffer)
		if err != nil {
			continue
		}
		r, _ := dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithTransactionID(xid()), dhcpv4.WithBroadcast(true))
		ack, err := s.exchange(ctx, r, 10, dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)
		if err != nil {
			continue
		}
		if ack.MessageType() == dhcpv4.MessageTypeNak {
			s.mu.Lock()
			s.nak++
			s.mu.Unlock()
			continue
		}
		a, _ := netip.AddrFromSlice(ack.YourIPAddr.To4())
		s.mu.Lock()
		s.acks = append(s.acks, ackRec{mac.String(), a})
		s.final[mac.String()] = a
		s.mu.Unlock()
		s.bound.Add(1)
		return
	}
}
