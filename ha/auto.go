package ha

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Auto runs a management node in automatic mode: a standby until it holds the Lock, then
// active (Manager.Activate) while it keeps the lease, supervising the services; a standby
// again when it loses the lease, when its services cannot be kept up, or when Run's context
// ends (then it deactivates and releases the lock, so a standby takes over at once).
//
// The order of events when a lease is lost is the point: an active node that cannot renew
// its lease removes the virtual IP at once and finishes deactivating before its lease
// expires, and no other node can acquire the lock before the lease expires. Two safety nets
// cover a node that cannot act: the virtual IP has a kernel lifetime shorter than the lease
// (refreshed after each renewal, only while the lease outlives it), so it vanishes by itself
// if this process dies or hangs; and exec'd services (Process without PIDFile) die with this
// process.
//
// Auto takes the Manager over: it sets the VIP's lifetime and bounds undo by the lease.
type Auto struct {
	Manager *Manager
	Lock    Lock
	// Name is this node's name in the lock. If empty, the host name.
	Name string
	// RenewInterval is how often the active node renews its lease. If zero, TTL/8.
	RenewInterval time.Duration
	// FenceMargin: the active node deactivates when the lease it last renewed has less than
	// this left. It bounds the time deactivation may take. If zero, TTL/2.
	FenceMargin time.Duration
	// PollInterval is how often a standby tries the lock when no release is announced. If
	// zero, 250 ms (a standby also wakes when the holder's lease is due to expire).
	PollInterval time.Duration
	// HealthInterval is how often the active node checks its services. If zero, 1 s.
	HealthInterval time.Duration
	// VIPLifetime is the virtual IP's kernel lifetime, in whole seconds. If zero, 1 s.
	VIPLifetime time.Duration
	// OnEvent, if set, is told about every change of state.
	OnEvent func(Event)
	// Logger, if set, receives the same events.
	Logger *slog.Logger
}

// vipSlack is the margin between the VIP's kernel lifetime running out and the lease
// expiring: the kernel deletes an expired address within tens of milliseconds.
const vipSlack = 250 * time.Millisecond

type outcome int

const (
	outLost outcome = iota
	outStopped
	outGaveUp
)

func (a *Auto) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if a.Logger != nil {
		a.Logger.Info("ha: "+string(e.Kind), "step", e.Step, "detail", e.Detail, "token", e.Token, "err", e.Err)
	}
	if a.OnEvent != nil {
		a.OnEvent(e)
	}
}

// Run runs the node until ctx ends. It first undoes whatever an earlier run of this node
// left active (Manager.Deactivate), then competes for the lock.
func (a *Auto) Run(ctx context.Context) error {
	if a.Manager == nil || a.Lock == nil {
		return errors.New("ha: Auto needs a Manager and a Lock")
	}
	m := a.Manager
	if _, err := m.settings(); err != nil {
		return fmt.Errorf("ha: %w", err)
	}
	life := a.VIPLifetime
	if life == 0 {
		life = time.Second
	}
	if life < time.Second || life%time.Second != 0 {
		return fmt.Errorf("ha: VIP lifetime %s: want whole seconds, at least 1 s", life)
	}
	// A lease whose length is known is checked before anything changes.
	if l, ok := a.Lock.(*PGLock); ok {
		if _, _, err := a.timing(l.ttl(), life); err != nil {
			return err
		}
	}
	name := a.Name
	if name == "" {
		name, _ = os.Hostname()
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	holder := name + "/" + hex.EncodeToString(rnd[:])

	m.vipMu.Lock()
	m.vipLife = life
	m.leaseGuard = func(time.Duration) bool { return false }
	m.vipMu.Unlock()
	defer func() {
		m.vipMu.Lock()
		m.leaseGuard, m.undoBy = nil, nil
		m.vipMu.Unlock()
	}()

	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	err := m.Deactivate(rctx)
	cancel()
	a.emit(Event{Kind: EventRecovered, Detail: "undid what an earlier run may have left", Err: err})

	for {
		lease, err := a.acquire(ctx, holder)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		out, err := a.serve(ctx, lease, life)
		if err != nil {
			return err
		}
		switch {
		case ctx.Err() != nil || out == outStopped:
			return nil
		case out == outGaveUp:
			// Leave the peer time to take the lock before competing again.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(2 * lease.TTL):
			}
		}
	}
}

// acquire waits as a standby until this node holds the lock.
func (a *Auto) acquire(ctx context.Context, holder string) (Lease, error) {
	poll := a.PollInterval
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	var lastHolder string
	var lastToken int64 = -1
	var lastErr string
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		lease, err := a.Lock.Acquire(actx, holder)
		cancel()
		if err == nil {
			a.emit(Event{Kind: EventAcquired, Detail: "holder " + holder, Token: lease.Token})
			return lease, nil
		}
		if ctx.Err() != nil {
			return Lease{}, ctx.Err()
		}
		wait := poll
		var held *HeldError
		if errors.As(err, &held) {
			if held.Holder != lastHolder || held.Token != lastToken {
				lastHolder, lastToken = held.Holder, held.Token
				a.emit(Event{Kind: EventStandby, Detail: fmt.Sprintf("%s holds the lock (%s left)", orWord(held.Holder, "nobody"), held.Remaining.Round(time.Millisecond)), Token: held.Token})
			}
			// Wake when the lease is due to run out, not a poll later.
			if r := held.Remaining + 2*time.Millisecond; r < wait {
				wait = r
			}
			lastErr = ""
		} else if err.Error() != lastErr {
			lastErr = err.Error()
			a.emit(Event{Kind: EventStandby, Detail: "cannot reach the lock", Err: err})
		}
		if w, ok := a.Lock.(Waiter); ok && lastErr == "" {
			if err := w.Wait(ctx, wait); err != nil && ctx.Err() == nil {
				// Fall back to sleeping; the next Acquire reconnects.
				time.Sleep(min(wait, poll))
			}
			continue
		}
		select {
		case <-ctx.Done():
			return Lease{}, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// keeper renews a lease in the background and fences the moment it is lost.
type keeper struct {
	a     *Auto
	renew time.Duration
	fence time.Duration

	mu     sync.Mutex
	lease  Lease
	reason error

	lost chan struct{} // closed when the lease is lost
	stop chan struct{} // closed to stop renewing
	done chan struct{} // closed when the keeper returns
}

func (k *keeper) current() Lease {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lease
}

func (k *keeper) run() {
	defer close(k.done)
	failing := false
	for {
		fenceAt := k.current().ValidUntil().Add(-k.fence)
		wait := min(k.renew, time.Until(fenceAt))
		t := time.NewTimer(max(wait, 0))
		select {
		case <-k.stop:
			t.Stop()
			return
		case <-t.C:
		}
		if !time.Now().Before(fenceAt) {
			k.lose(fmt.Errorf("no renewal for %s: the lease has less than %s left", k.current().TTL-k.fence, k.fence))
			return
		}
		rctx, cancel := context.WithDeadline(context.Background(), fenceAt)
		l, err := k.a.Lock.Renew(rctx, k.current())
		cancel()
		switch {
		case err == nil:
			k.mu.Lock()
			k.lease = l
			k.mu.Unlock()
			if failing {
				failing = false
				k.a.emit(Event{Kind: EventRenewFail, Detail: "renewed again", Token: l.Token})
			}
			if err := k.a.Manager.refreshVIP(context.Background()); err != nil {
				k.a.emit(Event{Kind: EventRenewFail, Step: "vip", Detail: "refreshing the address", Err: err})
			}
		case errors.Is(err, ErrLost):
			k.lose(err)
			return
		default:
			if !failing {
				failing = true
				k.a.emit(Event{Kind: EventRenewFail, Detail: "will fence unless a renewal succeeds", Token: k.current().Token, Err: err})
			}
		}
	}
}

// lose fences: the virtual IP goes first, from this goroutine, whatever the main one does.
func (k *keeper) lose(why error) {
	dctx, cancel := context.WithDeadline(context.Background(), k.current().ValidUntil())
	err := k.a.Manager.DropVIP(dctx)
	cancel()
	k.mu.Lock()
	k.reason = why
	k.mu.Unlock()
	k.a.emit(Event{Kind: EventLost, Detail: "virtual IP removed, deactivating", Token: k.current().Token, Err: errors.Join(why, err)})
	close(k.lost)
}

func (k *keeper) isLost() bool { return isClosed(k.lost) }

func (k *keeper) halt() {
	select {
	case <-k.stop:
	default:
		close(k.stop)
	}
	<-k.done
}

// timing returns the renewal interval and the fence margin for leases of ttl, or an error
// when ttl is too short for them and a VIP lifetime of life.
func (a *Auto) timing(ttl, life time.Duration) (renew, fence time.Duration, err error) {
	renew = a.RenewInterval
	if renew <= 0 {
		renew = ttl / 8
	}
	fence = a.FenceMargin
	if fence <= 0 {
		fence = ttl / 2
	}
	if ttl < life+vipSlack+2*renew || fence >= ttl-renew {
		return 0, 0, fmt.Errorf("ha: lease TTL %s too short: it must exceed the VIP lifetime %s + %s + two renewals (%s), and the fence margin %s plus a renewal",
			ttl, life, vipSlack, renew, fence)
	}
	return renew, fence, nil
}

// serve activates under a lease and supervises until the lease is lost, the services
// cannot be kept up, or ctx ends.
func (a *Auto) serve(ctx context.Context, lease Lease, life time.Duration) (outcome, error) {
	m := a.Manager
	renew, fence, err := a.timing(lease.TTL, life)
	if err != nil {
		_ = a.Lock.Release(ctx, lease)
		return 0, err
	}
	k := &keeper{a: a, renew: renew, fence: fence, lease: lease,
		lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	m.vipMu.Lock()
	m.leaseGuard = func(d time.Duration) bool {
		return !k.isLost() && time.Now().Add(d+vipSlack).Before(k.current().ValidUntil())
	}
	m.undoBy = func() time.Time { return k.current().ValidUntil().Add(-fence / 10) }
	m.vipMu.Unlock()
	defer func() {
		m.vipMu.Lock()
		m.leaseGuard = func(time.Duration) bool { return false }
		m.undoBy = nil
		m.vipMu.Unlock()
	}()
	go k.run()

	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-k.lost:
			cancel()
		case <-actx.Done():
		}
	}()
	fenced := func(err error) (outcome, error) {
		k.halt()
		k.mu.Lock()
		why := k.reason
		k.mu.Unlock()
		a.emit(Event{Kind: EventFenced, Detail: fmt.Sprintf("deactivated %s before the lease expires (%v)", time.Until(k.current().ValidUntil()).Round(time.Millisecond), why), Token: lease.Token, Err: err})
		return outLost, nil
	}
	release := func(kind EventKind, err error) {
		k.halt()
		if k.isLost() {
			a.emit(Event{Kind: EventFenced, Detail: "deactivated; the lease was lost meanwhile", Token: lease.Token, Err: err})
			return
		}
		// The event's time is when the release began: the other node may acquire the
		// lock before Release returns here, but never before this instant.
		begun := time.Now()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		rerr := a.Lock.Release(rctx, k.current())
		cancel()
		a.emit(Event{Time: begun, Kind: kind, Detail: "lock released", Token: lease.Token, Err: errors.Join(err, rerr)})
	}

	if err := m.Activate(actx); err != nil {
		switch {
		case k.isLost():
			return fenced(err)
		case ctx.Err() != nil:
			release(EventReleased, nil)
			return outStopped, nil
		default:
			release(EventGaveUp, err)
			return outGaveUp, nil
		}
	}
	a.emit(Event{Kind: EventActive, Detail: "serving on the virtual IP", Token: lease.Token})

	every := a.HealthInterval
	if every <= 0 {
		every = time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-k.lost:
			dctx, dcancel := context.WithDeadline(context.Background(), k.current().ValidUntil().Add(-fence/10))
			err := m.Deactivate(dctx)
			dcancel()
			return fenced(err)
		case <-ctx.Done():
			// A clean hand-over: keep renewing while the services stop, then release.
			dctx, dcancel := context.WithTimeout(context.Background(), time.Minute)
			err := m.Deactivate(dctx)
			dcancel()
			release(EventReleased, err)
			return outStopped, nil
		case <-tick.C:
			if err := m.check(actx, func(e Event) { a.emit(e) }); err != nil {
				if k.isLost() {
					continue // the next round fences
				}
				dctx, dcancel := context.WithTimeout(context.Background(), time.Minute)
				derr := m.Deactivate(dctx)
				dcancel()
				release(EventGaveUp, errors.Join(err, derr))
				return outGaveUp, nil
			}
		}
	}
}

// Check makes sure every service is healthy: a service that fails its health check twice
// in a row (or is not running) is restarted, with up to Attempts attempts. It returns an
// error when a service could not be brought back.
func (m *Manager) Check(ctx context.Context) error {
	return m.check(ctx, nil)
}

func (m *Manager) check(ctx context.Context, emit func(Event)) error {
	s, err := m.settings()
	if err != nil {
		return err
	}
	if emit == nil {
		emit = s.progress
	}
	for _, svc := range s.services {
		hctx, cancel := context.WithTimeout(ctx, s.healthTimeout)
		err := svc.Healthy(hctx)
		cancel()
		if err != nil && !errors.Is(err, ErrNotRunning) && ctx.Err() == nil {
			time.Sleep(200 * time.Millisecond)
			hctx, cancel := context.WithTimeout(ctx, s.healthTimeout)
			err = svc.Healthy(hctx)
			cancel()
		}
		if err == nil || ctx.Err() != nil {
			continue
		}
		emit(Event{Kind: EventUnhealthy, Step: "service " + svc.Name(), Err: err})
		sctx, cancel := context.WithTimeout(ctx, s.stopTimeout)
		_ = svc.Stop(sctx)
		cancel()
		if err := startService(ctx, svc, s, func(Event) {}); err != nil {
			return fmt.Errorf("service %s: restart: %w", svc.Name(), err)
		}
		emit(Event{Kind: EventRestarted, Step: "service " + svc.Name()})
	}
	return nil
}
