package ha

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// A Service is a daemon the active management node runs: the database, provd (DHCP, TFTP,
// HTTP, NFS), DNS. Activate starts the services in order and Deactivate stops them in
// reverse order.
type Service interface {
	// Name names the service in messages ("database", "provd", "dns").
	Name() string
	// Start starts the service and returns once it is launched; it need not be healthy yet.
	Start(ctx context.Context) error
	// Stop stops the service and returns once it is gone. Stopping a service that is not
	// running is not an error. When ctx ends, Stop stops it the hard way.
	Stop(ctx context.Context) error
	// Healthy returns nil when the service serves. An error that wraps ErrNotRunning means
	// it is not running at all (it exited); any other error means "not yet".
	Healthy(ctx context.Context) error
}

// Func is a Service made of functions, for daemons the embedder controls itself. A nil
// function does nothing and succeeds.
type Func struct {
	ServiceName string
	StartFunc   func(ctx context.Context) error
	StopFunc    func(ctx context.Context) error
	HealthyFunc func(ctx context.Context) error
}

func (f *Func) Name() string { return f.ServiceName }

func (f *Func) Start(ctx context.Context) error { return call(ctx, f.StartFunc) }

func (f *Func) Stop(ctx context.Context) error { return call(ctx, f.StopFunc) }

func (f *Func) Healthy(ctx context.Context) error { return call(ctx, f.HealthyFunc) }

func call(ctx context.Context, fn func(context.Context) error) error {
	if fn == nil {
		return nil
	}
	return fn(ctx)
}

// InProcess runs a server of this program as a Service: Start calls Serve in a goroutine
// with a context that Stop cancels. It fits provkit's servers (dhcp.Server, tftp.Server, an
// http.Server wrapper), whose Serve(ctx) returns nil on a clean close.
type InProcess struct {
	ServiceName string
	// Serve runs the server until ctx ends.
	Serve func(ctx context.Context) error
	// Health, if set, tells whether the running server answers. If nil, running is healthy.
	Health func(ctx context.Context) error

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Serve's result, once done is closed
}

func (s *InProcess) Name() string { return s.ServiceName }

// Start launches Serve. Starting a running service does nothing.
func (s *InProcess) Start(ctx context.Context) error {
	if s.Serve == nil {
		return fmt.Errorf("service %s: no Serve function", s.ServiceName)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		select {
		case <-s.done:
		default:
			return nil
		}
	}
	// The server's lifetime is its own: it must outlive Start's context.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	s.cancel, s.done, s.err = cancel, done, nil
	go func() {
		err := s.Serve(sctx)
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(done)
	}()
	return nil
}

// Stop cancels Serve's context and waits for it to return, or for ctx to end.
func (s *InProcess) Stop(ctx context.Context) error {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("service %s: still serving: %w", s.ServiceName, ctx.Err())
	}
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("service %s: %w", s.ServiceName, err)
	}
	return nil
}

// Healthy reports ErrNotRunning once Serve has returned, else asks Health.
func (s *InProcess) Healthy(ctx context.Context) error {
	s.mu.Lock()
	done, err := s.done, s.err
	s.mu.Unlock()
	if done == nil {
		return fmt.Errorf("service %s: %w", s.ServiceName, ErrNotRunning)
	}
	select {
	case <-done:
		if err == nil {
			return fmt.Errorf("service %s: returned: %w", s.ServiceName, ErrNotRunning)
		}
		return fmt.Errorf("service %s: %w: %w", s.ServiceName, ErrNotRunning, err)
	default:
	}
	return call(ctx, s.Health)
}

// HTTPCheck returns a health check that GETs url and wants a 2xx answer.
func HTTPCheck(url string) func(context.Context) error {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// TCPCheck returns a health check that connects to addr (host:port).
func TCPCheck(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// PGCheck returns a health check that opens a session on the PostgreSQL server at dsn and
// runs a query: a server still recovering, or refusing the client, is not healthy.
func PGCheck(dsn string) func(context.Context) error {
	return func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer c.Close(context.WithoutCancel(ctx))
		return c.Ping(ctx)
	}
}

// startService starts svc and waits until it is healthy, making up to attempts attempts.
// A failed attempt is stopped before the next one, and after the last one, so nothing is left
// running when it returns an error.
func startService(ctx context.Context, svc Service, s *settings, progress func(Event)) error {
	var last error
	for attempt := 1; attempt <= s.attempts; attempt++ {
		if attempt > 1 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w (after attempt %d/%d: %w)", ctx.Err(), attempt-1, s.attempts, last)
			case <-time.After(s.retryDelay):
			}
		}
		last = startOnce(ctx, svc, s)
		if last == nil {
			progress(Event{Kind: EventDone, Step: "service " + svc.Name(), Attempt: attempt, Attempts: s.attempts})
			return nil
		}
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.stopTimeout)
		if err := svc.Stop(stopCtx); err != nil {
			last = errors.Join(last, fmt.Errorf("stopping the failed attempt: %w", err))
		}
		cancel()
		if ctx.Err() != nil {
			return fmt.Errorf("%w (attempt %d/%d: %w)", ctx.Err(), attempt, s.attempts, last)
		}
		if attempt < s.attempts {
			progress(Event{Kind: EventRetry, Step: "service " + svc.Name(), Attempt: attempt, Attempts: s.attempts, Err: last})
		}
	}
	return fmt.Errorf("failed %d attempts, the last: %w", s.attempts, last)
}

// startOnce is one attempt: Start, then poll Healthy until it passes, the service dies, or
// the health timeout passes.
func startOnce(ctx context.Context, svc Service, s *settings) error {
	if err := svc.Start(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	deadline := time.Now().Add(s.healthTimeout)
	tick := time.NewTicker(s.healthPoll)
	defer tick.Stop()
	for {
		hctx, cancel := context.WithDeadline(ctx, deadline)
		err := svc.Healthy(hctx)
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrNotRunning):
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		case !time.Now().Before(deadline):
			return fmt.Errorf("not healthy after %s: %w", s.healthTimeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
