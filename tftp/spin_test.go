package tftp

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

func TestSpinnerAdapts(t *testing.T) {
	active := new(atomic.Int32)
	s := &spinner{budget: 50 * time.Microsecond, active: active, limit: 1}
	if d := s.acquire(); d != 50*time.Microsecond {
		t.Fatalf("first acquire = %v, want the budget", d)
	}
	if d := (&spinner{budget: 50 * time.Microsecond, active: active, limit: 1}).acquire(); d != 0 {
		t.Fatalf("second spinner while the first spins (limit 1) = %v, want 0", d)
	}
	s.release()
	if n := active.Load(); n != 0 {
		t.Fatalf("active after release = %d", n)
	}
	// Round trips longer than the budget stop the spinning...
	for range 20 {
		s.observe(time.Millisecond)
	}
	if d := s.acquire(); d != 0 {
		t.Fatalf("acquire after 1 ms round trips = %v, want 0", d)
	}
	// ...and short ones bring it back.
	for range 60 {
		s.observe(10 * time.Microsecond)
	}
	if d := s.acquire(); d == 0 {
		t.Fatalf("acquire after 10 µs round trips = 0, want the budget")
	}
	s.release()
	var none *spinner
	if d := none.acquire(); d != 0 {
		t.Fatalf("nil spinner acquire = %v", d)
	}
	none.observe(time.Second)
	if d := (&spinner{active: active, limit: 1}).acquire(); d != 0 {
		t.Fatalf("zero budget acquire = %v", d)
	}
	if n := active.Load(); n != 0 {
		t.Fatalf("active at the end = %d", n)
	}
}

// TestSenderSpins runs lockstep transfers whose sender spins for its acknowledgements
// over loopback, one with a client that withholds one ACK (so a spin ends in the poller
// and a timeout), and checks the file arrives whole and every spin slot is given back.
func TestSenderSpins(t *testing.T) {
	for _, dropAt := range []int{0, 7} {
		t.Run(fmt.Sprintf("drop%d", dropAt), func(t *testing.T) {
			data := make([]byte, 200*512+17)
			for i := range data {
				data[i] = byte(i * 7)
			}
			client, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			noErr(t, err)
			defer client.Close()
			conn, err := net.DialUDP("udp", nil, client.LocalAddr().(*net.UDPAddr))
			noErr(t, err)
			defer conn.Close()
			cfg := (&Server{Timeout: 100 * time.Millisecond}).config()
			cfg.maxSpinners = 1
			s := newSender(conn, cfg, bytes.NewReader(data))
			defer s.release()
			if s.raw == nil || s.raw.spin == nil {
				t.Fatal("sender on a UDP socket has no spinning raw connection")
			}
			s.negotiate(Request{}, int64(len(data)))
			done := make(chan error, 1)
			go func() { done <- s.run(context.Background(), nil) }()

			var got []byte
			b := make([]byte, 600)
			dropped := false
			for {
				noErr(t, client.SetReadDeadline(time.Now().Add(5*time.Second)))
				n, from, err := client.ReadFromUDP(b)
				noErr(t, err)
				blk := int(binary.BigEndian.Uint16(b[2:]))
				if blk == len(got)/512+1 {
					got = append(got, b[4:n]...)
				}
				if blk == dropAt && !dropped {
					dropped = true
					continue
				}
				ack := []byte{0, byte(opACK), b[2], b[3]}
				_, err = client.WriteToUDP(ack, from)
				noErr(t, err)
				if n < 516 && len(got) == len(data) {
					break
				}
			}
			noErr(t, <-done)
			if !bytes.Equal(got, data) {
				t.Fatalf("received %d bytes, want the %d sent", len(got), len(data))
			}
			if n := cfg.spinners.Load(); n != 0 {
				t.Fatalf("%d spin slots still taken after the transfer", n)
			}
			if s.raw.spin.avg <= 0 {
				t.Fatal("the sender observed no round trip")
			}
			if dropAt > 0 && s.resent == 0 {
				t.Fatal("the withheld ACK caused no resend")
			}
		})
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
