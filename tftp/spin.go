package tftp

import (
	"sync/atomic"
	"time"
)

// DefaultSpinWait is how long a transfer busy-waits for an acknowledgement before it
// sleeps, when Server.SpinWait is zero.
const DefaultSpinWait = 50 * time.Microsecond

// A spinner decides whether a transfer busy-waits for its next acknowledgement instead
// of sleeping in the network poller. In lockstep each block waits one round trip; on a
// short path (a few tens of microseconds) the sleep and the wake-up are a large part of
// it. Spinning is adaptive, like a mutex's: a transfer spins only while its recent round
// trips (a moving average) are under the budget, and only while fewer than half of
// the CPUs are spinning, so that the clients and the other transfers keep the rest.
type spinner struct {
	budget time.Duration // 0: never spin
	active *atomic.Int32 // transfers spinning now, shared by the server's transfers
	limit  int32
	avg    time.Duration // moving average of the wait for a packet
}

// acquire returns how long the next read may spin, 0 for not at all; a non-zero answer
// must be given back with release.
func (s *spinner) acquire() time.Duration {
	if s == nil || s.budget <= 0 || s.avg >= s.budget {
		return 0
	}
	if s.active.Add(1) > s.limit {
		s.active.Add(-1)
		return 0
	}
	return s.budget
}

func (s *spinner) release() { s.active.Add(-1) }

// observe records how long a read waited for its packet.
func (s *spinner) observe(d time.Duration) {
	if s != nil {
		s.avg += (d - s.avg) / 8
	}
}
