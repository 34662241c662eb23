package ha

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

var (
	ownMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	otherMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
	testVIP  = netip.MustParseAddr("10.96.0.10")
)

func mustFrame(t testing.TB, op arp.Operation, srcMAC net.HardwareAddr, srcIP netip.Addr, dstMAC net.HardwareAddr, dstIP netip.Addr) []byte {
	t.Helper()
	b, err := arpFrame(op, srcMAC, srcIP, dstMAC, dstIP)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConflict(t *testing.T) {
	zero := netip.IPv4Unspecified()
	other := netip.MustParseAddr("10.96.0.77")
	tests := []struct {
		name  string
		frame []byte
		want  net.HardwareAddr
	}{
		{"reply to our probe", mustFrame(t, arp.OperationReply, otherMAC, testVIP, ownMAC, zero), otherMAC},
		{"holder asks something", mustFrame(t, arp.OperationRequest, otherMAC, testVIP, zeroMAC, other), otherMAC},
		{"gratuitous from holder", mustFrame(t, arp.OperationRequest, otherMAC, testVIP, zeroMAC, testVIP), otherMAC},
		{"another prober", mustFrame(t, arp.OperationRequest, otherMAC, zero, zeroMAC, testVIP), otherMAC},
		{"our own probe", mustFrame(t, arp.OperationRequest, ownMAC, zero, zeroMAC, testVIP), nil},
		{"someone asks for the VIP", mustFrame(t, arp.OperationRequest, otherMAC, other, zeroMAC, testVIP), nil},
		{"unrelated reply", mustFrame(t, arp.OperationReply, otherMAC, other, ownMAC, zero), nil},
		{"truncated", mustFrame(t, arp.OperationReply, otherMAC, testVIP, ownMAC, zero)[:20], nil},
		{"not ARP", func() []byte {
			f := &ethernet.Frame{Destination: ethernet.Broadcast, Source: otherMAC, EtherType: ethernet.EtherTypeIPv4, Payload: make([]byte, 46)}
			b, _ := f.MarshalBinary()
			return b
		}(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := conflict(tt.frame, testVIP, ownMAC)
			if ok != (tt.want != nil) || got.String() != tt.want.String() {
				t.Errorf("conflict = %v, %v; want %v", got, ok, tt.want)
			}
		})
	}
}

// fakeARP is a net.PacketConn that records what is sent and answers from a script: reply
// is called for each frame written and returns the frames that come back.
type fakeARP struct {
	mu       sync.Mutex
	sent     [][]byte
	queue    [][]byte
	deadline time.Time
	reply    func(sent []byte) [][]byte
}

func (c *fakeARP) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		c.mu.Lock()
		if len(c.queue) > 0 {
			f := c.queue[0]
			c.queue = c.queue[1:]
			c.mu.Unlock()
			return copy(b, f), nil, nil
		}
		d := c.deadline
		c.mu.Unlock()
		if !d.IsZero() && time.Now().After(d) {
			return 0, nil, os.ErrDeadlineExceeded
		}
		time.Sleep(time.Millisecond)
	}
}

func (c *fakeARP) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, append([]byte{}, b...))
	if c.reply != nil {
		c.queue = append(c.queue, c.reply(b)...)
	}
	return len(b), nil
}

func (c *fakeARP) Close() error                       { return nil }
func (c *fakeARP) LocalAddr() net.Addr                { return nil }
func (c *fakeARP) SetDeadline(t time.Time) error      { return c.SetReadDeadline(t) }
func (c *fakeARP) SetWriteDeadline(t time.Time) error { return nil }
func (c *fakeARP) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return nil
}

func TestProbe(t *testing.T) {
	t.Run("free", func(t *testing.T) {
		c := &fakeARP{reply: func([]byte) [][]byte {
			// Noise: our own frame echoed, and someone else's unrelated request.
			return [][]byte{mustFrame(t, arp.OperationRequest, ownMAC, netip.IPv4Unspecified(), zeroMAC, testVIP),
				mustFrame(t, arp.OperationRequest, otherMAC, netip.MustParseAddr("10.96.0.5"), zeroMAC, netip.MustParseAddr("10.96.0.6"))}
		}}
		if err := probe(context.Background(), c, ownMAC, testVIP, 3, 5*time.Millisecond); err != nil {
			t.Fatalf("probe = %v", err)
		}
		if len(c.sent) != 3 {
			t.Fatalf("sent %d probes, want 3", len(c.sent))
		}
		var p arp.Packet
		var f ethernet.Frame
		if err := f.UnmarshalBinary(c.sent[0]); err != nil {
			t.Fatal(err)
		}
		if err := p.UnmarshalBinary(f.Payload); err != nil {
			t.Fatal(err)
		}
		got := []string{f.Destination.String(), p.Operation.String(), p.SenderHardwareAddr.String(), p.SenderIP.String(), p.TargetHardwareAddr.String(), p.TargetIP.String()}
		want := []string{"ff:ff:ff:ff:ff:ff", "OperationRequest", ownMAC.String(), "0.0.0.0", "00:00:00:00:00:00", "10.96.0.10"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("probe frame (-want +got):\n%s", diff)
		}
	})
	t.Run("in use", func(t *testing.T) {
		c := &fakeARP{reply: func([]byte) [][]byte {
			return [][]byte{mustFrame(t, arp.OperationReply, otherMAC, testVIP, ownMAC, netip.IPv4Unspecified())}
		}}
		err := probe(context.Background(), c, ownMAC, testVIP, 3, time.Second)
		var iu *InUseError
		if !errors.As(err, &iu) || !errors.Is(err, ErrVIPInUse) || iu.MAC.String() != otherMAC.String() {
			t.Fatalf("probe = %v, want InUseError from %s", err, otherMAC)
		}
		if len(c.sent) != 1 {
			t.Errorf("sent %d probes after the answer, want 1", len(c.sent))
		}
	})
}

func TestAnnounce(t *testing.T) {
	c := &fakeARP{}
	if err := announce(context.Background(), c, ownMAC, testVIP, 3, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, b := range c.sent {
		var f ethernet.Frame
		var p arp.Packet
		if err := f.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if err := p.UnmarshalBinary(f.Payload); err != nil {
			t.Fatal(err)
		}
		if p.SenderIP != testVIP || p.TargetIP != testVIP || p.SenderHardwareAddr.String() != ownMAC.String() {
			t.Errorf("announcement %v is not gratuitous for %s from %s", p, testVIP, ownMAC)
		}
		ops = append(ops, p.Operation.String())
	}
	if diff := cmp.Diff([]string{"OperationRequest", "OperationReply", "OperationRequest"}, ops); diff != "" {
		t.Errorf("announcements (-want +got):\n%s", diff)
	}
}

// FuzzConflict: no frame makes conflict panic, our own frames never conflict, and a
// conflict names a MAC that is not ours.
func FuzzConflict(f *testing.F) {
	f.Add(mustFrame(f, arp.OperationReply, otherMAC, testVIP, ownMAC, netip.IPv4Unspecified()))
	f.Add(mustFrame(f, arp.OperationRequest, otherMAC, netip.IPv4Unspecified(), zeroMAC, testVIP))
	f.Add(mustFrame(f, arp.OperationRequest, ownMAC, testVIP, zeroMAC, testVIP))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		who, ok := conflict(frame, testVIP, ownMAC)
		if ok && (who.String() == ownMAC.String() || len(who) != 6) {
			t.Fatalf("conflict names %v", who)
		}
		var fr ethernet.Frame
		if fr.UnmarshalBinary(frame) == nil && fr.Source.String() == ownMAC.String() && ok {
			t.Fatalf("a frame from our own MAC conflicts")
		}
	})
}
