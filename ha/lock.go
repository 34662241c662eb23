package ha

import (
	"context"
	"time"
)

// Lease is a lock held for a while.
type Lease struct {
	// Holder identifies the holder: unique per holding process, so that a restarted node never
	// mistakes its predecessor's lease for its own.
	Holder string
	// Token is the fencing token: it grows every time the lock changes hands, so a store
	// that remembers the highest token it has seen can refuse a deposed holder's writes.
	Token int64
	// Start is this node's clock when it sent the request that granted or renewed the lease:
	// the store set the lease's expiry after that instant.
	Start time.Time
	// TTL is how long the lease runs from Start.
	TTL time.Duration
}

// ValidUntil is the instant, on this node's monotonic clock, before which no other node can
// obtain the lock.
func (l Lease) ValidUntil() time.Time { return l.Start.Add(l.TTL) }

// Lock is held by at most one management node at a time: once Acquire or Renew returned a
// lease, no other holder obtains the lock before lease.ValidUntil(). The automatic mode
// (Auto) deactivates a node before that instant unless it renewed the lease.
type Lock interface {
	// Acquire takes the lock for holder if it is free (released, or its lease expired). It
	// returns an error matching ErrHeld (a *HeldError) when another holder has it.
	Acquire(ctx context.Context, holder string) (Lease, error)
	// Renew extends a lease from now. It returns an error matching ErrLost when the lease is
	// no longer held, and other errors when it cannot tell (the store is unreachable).
	Renew(ctx context.Context, l Lease) (Lease, error)
	// Release frees the lock at once, if l still holds it.
	Release(ctx context.Context, l Lease) error
}

// Waiter is a Lock that can tell when it is released. Wait returns when the lock may have
// become free, or after at most max.
type Waiter interface {
	Wait(ctx context.Context, max time.Duration) error
}
