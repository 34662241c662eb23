package bmc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bmclib "github.com/bmc-toolbox/bmclib/v2"
	"github.com/bmc-toolbox/bmclib/v2/providers/ipmitool"
	"github.com/bmc-toolbox/bmclib/v2/providers/redfish"
	"github.com/go-logr/logr"
	"github.com/jacobweinstock/registrar"

	"github.com/provkit/provkit/bmc/ipmi"
	"github.com/provkit/provkit/bmc/ipmi/lanplus"
)

// Driver is a bmclib provider as this package drives it: bmclib's provider contract for
// connections and power. A driver may also implement bmclib's bmc.BootDeviceSetter and
// bmc.BootDeviceOverrideGetter. (It is bmclib's contract, hence more than three methods.)
type Driver interface {
	Name() string
	Open(ctx context.Context) error
	Close(ctx context.Context) error
	PowerStateGet(ctx context.Context) (state string, err error)
	PowerSet(ctx context.Context, state string) (ok bool, err error)
}

// Client runs power and boot-device operations on many BMCs at once through bmclib,
// with a provider chosen per target by its management type. Its zero value is ready to
// use; set fields before the first call and do not change them after.
//
// A Client keeps each BMC's connection (an IPMI session, a Redfish session) open after an
// operation, so later operations on the same BMCs skip the log-in. Call Close when done:
// it logs the sessions out.
type Client struct {
	// Concurrency is how many BMCs are talked to at once. If zero, 128.
	Concurrency int
	// Timeout bounds one node's whole operation, log-in included. If zero, 10 s.
	Timeout time.Duration
	// RetryInterval is how long the IPMI client waits for an answer before sending a
	// request again (the wait doubles each time). If zero, 1 s.
	RetryInterval time.Duration
	// CipherSuite is the IPMI cipher suite, 3 or 17. If zero, 3.
	CipherSuite ipmi.CipherSuite
	// Ipmitool makes "ipmi" targets use bmclib's ipmitool provider (one ipmitool process
	// per command, the password passed in its environment) instead of the native client.
	Ipmitool bool
	// IpmitoolPath is the ipmitool program for the ipmitool provider. If empty, $PATH.
	IpmitoolPath string
	// TLSConfig is used for Redfish and OpenBMC. If nil, certificates are not verified,
	// as bmclib does by default: BMCs mostly carry self-signed certificates.
	TLSConfig *tls.Config
	// NewDriver, if set, makes the provider for a target instead of the built-in choice
	// (for other bmclib providers, or fakes in tests). It may return nil to fall back to
	// the built-in choice.
	NewDriver func(t Target) (Driver, error)
	// DisableReuse closes each connection right after its operation.
	DisableReuse bool
	// MaxIdle is how long a kept connection may sit unused before it is replaced by a
	// fresh one rather than trusted (BMCs drop idle sessions). If zero, 20 s.
	MaxIdle time.Duration
	// Logger gets one debug line per node and operation. Passwords are never logged. If
	// nil, nothing is logged.
	Logger *slog.Logger
	// OnResult, if set, is called with each node's result as soon as it is known, one
	// call at a time, from the goroutines doing the work.
	OnResult func(Result)

	mu    sync.Mutex
	conns map[string]*conn
	outMu sync.Mutex
}

// Result is one node's outcome.
type Result struct {
	Node string
	// Power is the power state read, or reached by the action; empty if unknown.
	Power PowerState
	// Boot is the boot device set or read.
	Boot BootDevice
	// Text is what xCAT prints after "node: " on success: "on", "off", "reset",
	// "Network", "Hard Drive" ...
	Text string
	// Err is the node's failure; its message never holds the password. Sentinels:
	// ErrAuth, ErrUnreachable, ErrBadTarget, ErrUnsupported; timeouts wrap
	// context.DeadlineExceeded.
	Err error
	// Elapsed is how long the node took.
	Elapsed time.Duration
}

// Errors a Result may wrap.
var (
	// ErrAuth: the BMC refused the credentials.
	ErrAuth = lanplus.ErrAuth
	// ErrUnreachable: nothing answers at the BMC's address (connection refused).
	ErrUnreachable = lanplus.ErrRefused
)

type settings struct {
	conc    int
	timeout time.Duration
	retry   time.Duration
	maxIdle time.Duration
	log     *slog.Logger
}

func (c *Client) settings() settings {
	s := settings{conc: c.Concurrency, timeout: c.Timeout, retry: c.RetryInterval, maxIdle: c.MaxIdle, log: c.Logger}
	if s.conc <= 0 {
		s.conc = 128
	}
	if s.timeout <= 0 {
		s.timeout = 10 * time.Second
	}
	if s.retry <= 0 {
		s.retry = time.Second
	}
	if s.maxIdle <= 0 {
		s.maxIdle = 20 * time.Second
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// conn is one BMC's kept connection: a bmclib client with one registered provider.
type conn struct {
	mu       sync.Mutex // one operation at a time per BMC
	password Secret
	client   *bmclib.Client
	driver   Driver
	open     bool
	lastUsed time.Time
	probe    time.Duration // how long the first command on a kept connection may take
	swept    bool          // removed from the pool by sweep
}

// op is one operation on one opened connection. reused says the connection was kept
// from before (and may have gone stale at the BMC).
type op struct {
	name string
	do   func(ctx context.Context, cn *conn, reused bool, r *Result) error
}

// Power runs an rpower action on every target, at most Concurrency at a time, and
// returns one result per target in the same order. Cancelling ctx ends the run: nodes
// not done get ctx's error.
func (c *Client) Power(ctx context.Context, targets []Target, a Action) []Result {
	if _, err := ParseAction(string(a)); err != nil {
		return fail(targets, err)
	}
	return c.run(ctx, targets, powerOp(a))
}

// SetBoot sets the boot device (rsetboot) on every target.
func (c *Client) SetBoot(ctx context.Context, targets []Target, d BootDevice, o BootOptions) []Result {
	if _, err := ParseBootDevice(string(d)); err != nil {
		return fail(targets, err)
	}
	return c.run(ctx, targets, bootOp(d, o))
}

// BootState reads the boot override (rsetboot stat) of every target.
func (c *Client) BootState(ctx context.Context, targets []Target) []Result {
	return c.run(ctx, targets, bootStatOp())
}

func fail(targets []Target, err error) []Result {
	rs := make([]Result, len(targets))
	for i, t := range targets {
		rs[i] = Result{Node: t.Node, Err: err}
	}
	return rs
}

func (c *Client) run(ctx context.Context, targets []Target, o op) []Result {
	s := c.settings()
	c.sweep(&s)
	results := make([]Result, len(targets))
	workers := min(s.conc, len(targets))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(targets) {
					return
				}
				results[i] = c.runOne(ctx, &s, targets[i], o)
				if c.OnResult != nil {
					c.outMu.Lock()
					c.OnResult(results[i])
					c.outMu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return results
}

func (c *Client) runOne(ctx context.Context, s *settings, t Target, o op) (r Result) {
	start := time.Now()
	r.Node = t.Node
	var ep endpoint
	reused, native := false, false
	defer func() {
		r.Elapsed = time.Since(start)
		r.Err = cleanErr(r.Err, t.Password, native)
		if r.Err != nil {
			r.Power, r.Text = "", ""
		}
		s.log.Debug("bmc", "node", t.Node, "op", o.name, "mgt", ep.mgt, "addr", ep.hostPort(),
			"user", t.User, "reused", reused, "elapsed", r.Elapsed, "result", r.Text, "err", r.Err)
	}()
	if err := ctx.Err(); err != nil {
		r.Err = fmt.Errorf("bmc: %w", err)
		return r
	}
	var err error
	if ep, err = t.parse(); err != nil {
		r.Err = err
		return r
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	var cn *conn
	pooled := false
	for {
		cn, pooled = c.conn(t, ep)
		cn.mu.Lock()
		if !cn.swept {
			break
		}
		cn.mu.Unlock() // swept between lookup and lock: look up again
	}
	defer cn.mu.Unlock()
	if !pooled {
		defer cn.shut(s)
	}
	if cn.client == nil || cn.password != t.Password {
		cn.shut(s)
		if err := c.newDriver(cn, t, ep, s); err != nil {
			r.Err = err
			return r
		}
	}
	if cn.open && time.Since(cn.lastUsed) > s.maxIdle {
		cn.drop(s) // the BMC has probably timed the session out
	}
	_, native = cn.driver.(*lanplusDriver)
	reused = cn.open
	if !cn.open {
		if err := cn.client.Open(ctx); err != nil {
			r.Err = err
			return r
		}
		cn.open = true
	}
	r.Err = cleanErr(o.do(ctx, cn, reused, &r), t.Password, native)
	if r.Err == nil {
		cn.lastUsed = time.Now()
	} else if !errors.Is(r.Err, ErrUnsupported) {
		// Do not keep a connection in an unknown state, nor wait for a BMC that failed.
		cn.drop(s)
	}
	return r
}

// conn returns the kept connection for t, or a fresh unkept one when reuse is off.
func (c *Client) conn(t Target, ep endpoint) (*conn, bool) {
	if c.DisableReuse {
		return &conn{}, false
	}
	key := ep.mgt + "\x00" + ep.hostPort() + "\x00" + t.User
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conns == nil {
		c.conns = make(map[string]*conn)
	}
	cn := c.conns[key]
	if cn == nil {
		cn = &conn{}
		c.conns[key] = cn
	}
	return cn, true
}

// shut closes the connection's sessions (best effort, briefly); the caller holds cn.mu.
func (cn *conn) shut(s *settings) {
	if cn.open && cn.client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.retry)
		cn.client.Close(ctx)
		cancel()
	}
	cn.open = false
}

// drop ends a connection that is probably dead: an IPMI session is abandoned without
// waiting for an answer; others are logged out as shut does.
func (cn *conn) drop(s *settings) {
	if d, ok := cn.driver.(*lanplusDriver); ok && cn.open {
		d.abandon()
		cn.open = false
		return
	}
	cn.shut(s)
}

// sweep forgets the kept IPMI sessions idle for longer than MaxIdle, so that a
// long-running caller does not hold a socket per BMC it once talked to. Sessions in use
// are left alone. It does not wait for any BMC.
func (c *Client) sweep(s *settings) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, cn := range c.conns {
		if !cn.mu.TryLock() {
			continue
		}
		if _, native := cn.driver.(*lanplusDriver); native && (!cn.open || time.Since(cn.lastUsed) > s.maxIdle) {
			cn.drop(s)
			cn.swept = true
			delete(c.conns, key)
		}
		cn.mu.Unlock()
	}
}

// newDriver makes the bmclib client and provider for t; the caller holds cn.mu.
func (c *Client) newDriver(cn *conn, t Target, ep endpoint, s *settings) error {
	var d Driver
	if c.NewDriver != nil {
		var err error
		if d, err = c.NewDriver(t); err != nil {
			return err
		}
	}
	lg := logr.FromSlogHandler(s.log.Handler())
	pass := string(t.Password)
	protocol := "ipmi"
	var features registrar.Features
	cn.probe = 0
	if d == nil {
		mgt := ep.mgt
		if mgt == MgtIPMI && c.Ipmitool {
			mgt = MgtIpmitool
		}
		switch mgt {
		case MgtIPMI:
			d = &lanplusDriver{cfg: lanplus.Config{Addr: ep.hostPort(), User: t.User, Password: pass,
				Suite: c.CipherSuite, RetryInterval: s.retry}}
			features = lanplusFeatures
			cn.probe = 3 * s.retry
		case MgtIpmitool:
			it, err := ipmitool.New(ep.host, t.User, pass, ipmitool.WithPort(ep.port),
				ipmitool.WithCipherSuite(suiteString(c.CipherSuite)), ipmitool.WithIpmitoolPath(c.IpmitoolPath),
				ipmitool.WithLogger(lg))
			if err != nil {
				return fmt.Errorf("bmc: ipmitool provider: %w", err)
			}
			d, features = it, ipmitool.Features
		case MgtRedfish:
			protocol = "redfish"
			d = redfish.New(ep.host, t.User, pass, lg, redfish.WithPort(ep.port), redfish.WithHttpClient(c.httpClient()))
			features = redfish.Features
		case MgtOpenBMC:
			// OpenBMC speaks Redfish (bmcweb). bmclib's openbmc provider cannot set the
			// boot device (v2.3.5) and probes https://host/ without the port, so OpenBMC
			// goes to the redfish provider with ETag matching off, as the openbmc one sets.
			protocol = "redfish"
			d = redfish.New(ep.host, t.User, pass, lg, redfish.WithPort(ep.port), redfish.WithHttpClient(c.httpClient()),
				redfish.WithEtagMatchDisabled(true))
			features = redfish.Features
		default:
			return fmt.Errorf("management type %q: %w", ep.mgt, ErrUnsupported)
		}
	}
	reg := registrar.NewRegistry(registrar.WithLogger(lg))
	reg.Register(d.Name(), protocol, features, nil, d)
	cn.client = bmclib.NewClient(ep.host, t.User, pass, bmclib.WithRegistry(reg), bmclib.WithLogger(lg))
	cn.driver = d
	cn.password = t.Password
	cn.open = false
	return nil
}

func suiteString(s ipmi.CipherSuite) string {
	if s == 0 {
		return "3"
	}
	return fmt.Sprint(uint8(s))
}

func (c *Client) httpClient() *http.Client {
	tc := c.TLSConfig
	if tc == nil {
		tc = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // BMC certificates are self-signed; see TLSConfig
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 2, IdleConnTimeout: 90 * time.Second}}
}

// first runs the first command of an operation. On a kept connection that fails (the
// BMC may have dropped the session) it logs in again and tries once more.
func (cn *conn) first(ctx context.Context, reused bool, f func(context.Context) error) error {
	if !reused {
		return f(ctx)
	}
	fctx, cancel := ctx, context.CancelFunc(func() {})
	if cn.probe > 0 {
		fctx, cancel = context.WithTimeout(ctx, cn.probe)
	}
	err := f(fctx)
	cancel()
	if err == nil || ctx.Err() != nil || errors.Is(err, ErrAuth) {
		return err
	}
	if d, ok := cn.driver.(*lanplusDriver); ok {
		d.abandon()
	} else {
		sctx, scancel := context.WithTimeout(ctx, time.Second)
		cn.client.Close(sctx)
		scancel()
	}
	cn.open = false
	if err := cn.client.Open(ctx); err != nil {
		return err
	}
	cn.open = true
	return f(ctx)
}

// Close logs out of every kept connection, at most Concurrency at a time, and forgets
// them. The Client stays usable.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	conns := c.conns
	c.conns = nil
	c.mu.Unlock()
	s := c.settings()
	sem := make(chan struct{}, s.conc)
	var wg sync.WaitGroup
	var emu sync.Mutex
	var errs []error
	for _, cn := range conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			cn.mu.Lock()
			defer cn.mu.Unlock()
			if cn.open && cn.client != nil {
				cctx, cancel := context.WithTimeout(ctx, s.retry+time.Second)
				if err := cn.client.Close(cctx); err != nil {
					emu.Lock()
					_, native := cn.driver.(*lanplusDriver)
					errs = append(errs, cleanErr(err, cn.password, native))
					emu.Unlock()
				}
				cancel()
			}
			cn.open = false
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// powerOp does an rpower action as xCAT's IPMI plugin does: read the state first, then
// act only if needed, and report what was done.
func powerOp(a Action) op {
	return op{name: "power " + string(a), do: func(ctx context.Context, cn *conn, reused bool, r *Result) error {
		var st PowerState
		err := cn.first(ctx, reused, func(ctx context.Context) error {
			s, err := cn.client.GetPowerState(ctx)
			if err != nil {
				return err
			}
			st, err = normalizePower(s)
			return err
		})
		if err != nil {
			return err
		}
		r.Power, r.Text = st, string(st)
		set := func(state string, text string, after PowerState) error {
			ok, err := cn.client.SetPowerState(ctx, state)
			if err != nil && state == "soft" && softAccepted(err) {
				err = nil // bmclib's redfish provider reports an accepted graceful shutdown as not ok
			} else if err == nil && !ok {
				err = fmt.Errorf("bmc: power %s not done", state)
			}
			if err != nil {
				return err
			}
			r.Text = text
			if after != "" {
				r.Power = after
			}
			return nil
		}
		switch a {
		case On:
			if st != PowerOn {
				return set("on", "on", PowerOn)
			}
		case Off:
			if st != PowerOff {
				return set("off", "off", PowerOff)
			}
		case SoftOff:
			if st != PowerOff {
				return set("soft", "softoff", "")
			}
		case Reset:
			if st != PowerOff {
				return set("reset", "reset", PowerOn)
			}
		case Boot:
			if st == PowerOn {
				return set("reset", "reset", PowerOn)
			}
			return set("on", "on", PowerOn)
		case Cycle:
			if st == PowerOn {
				return set("cycle", "cycle", PowerOn)
			}
			return set("on", "on", PowerOn)
		}
		return nil
	}}
}

func bootOp(d BootDevice, o BootOptions) op {
	return op{name: "setboot " + string(d), do: func(ctx context.Context, cn *conn, reused bool, r *Result) error {
		return cn.first(ctx, reused, func(ctx context.Context) error {
			ok, err := cn.client.SetBootDevice(ctx, d.bmclibName(), o.Persistent, o.UEFI)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("bmc: boot device %s not set", d)
			}
			r.Boot, r.Text = d, d.xcatText()
			return nil
		})
	}}
}

func bootStatOp() op {
	return op{name: "setboot stat", do: func(ctx context.Context, cn *conn, reused bool, r *Result) error {
		return cn.first(ctx, reused, func(ctx context.Context) error {
			o, err := cn.client.GetBootDeviceOverride(ctx)
			if err != nil {
				return err
			}
			r.Boot = bootFromBmclib(string(o.Device))
			r.Text = r.Boot.xcatText()
			return nil
		})
	}}
}

// genericErrs are bmclib's summary errors that add nothing to the provider's own error.
var genericErrs = []string{
	"failed to set power state", "failed to get power state", "failed to set boot device",
	"failed to get boot device override settings", "failed to close connection",
}

func isGeneric(e error) bool {
	msg := e.Error()
	if strings.HasPrefix(msg, "no ") && strings.HasSuffix(msg, " implementations found") {
		return true
	}
	for _, g := range genericErrs {
		if msg == g || (strings.HasPrefix(msg, "provider: ") && strings.HasSuffix(msg, ", "+g)) {
			return true
		}
	}
	return false
}

// softAccepted: the only failure is bmclib's "provider: x, failed to set power state" for
// a provider that answered (false, nil).
func softAccepted(err error) bool {
	var me interface{ WrappedErrors() []error }
	if !errors.As(err, &me) {
		return false
	}
	for _, e := range me.WrappedErrors() {
		if !isGeneric(e) {
			return false
		}
	}
	return true
}

// cleanErr unpacks bmclib's multierror into the provider's own errors (errors.Is still
// works through them) and makes sure the password is not in the message. The native
// client's messages never hold the password (its tests check), and are not searched:
// a password that is a common word ("wrong") would mangle them.
func cleanErr(err error, pw Secret, native bool) error {
	if err == nil {
		return nil
	}
	var me interface{ WrappedErrors() []error }
	if errors.As(err, &me) {
		var keep []error
		for _, e := range me.WrappedErrors() {
			if isGeneric(e) {
				continue
			}
			if strings.HasPrefix(e.Error(), "provider: ") {
				if u := errors.Unwrap(e); u != nil {
					e = u
				}
			}
			keep = append(keep, e)
		}
		if len(keep) == 1 && strings.HasPrefix(keep[0].Error(), "not a ") && strings.Contains(keep[0].Error(), " implementation: ") {
			// bmclib found no provider with the method ("not a BootDeviceSetter implementation").
			return fmt.Errorf("%w by this BMC's provider (%s)", ErrUnsupported, keep[0])
		}
		switch len(keep) {
		case 0:
			if ws := me.WrappedErrors(); len(ws) > 0 {
				err = ws[len(ws)-1]
			}
		case 1:
			err = keep[0]
		default:
			err = errors.Join(keep...)
		}
	}
	if p := string(pw); !native && len(p) >= 3 && strings.Contains(err.Error(), p) {
		return &redactedError{msg: strings.ReplaceAll(err.Error(), p, redacted), err: err}
	}
	return err
}

// redactedError hides a password some provider put into its message. It has no Unwrap,
// so the original message cannot be reached, but errors.Is still sees through it.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string        { return e.msg }
func (e *redactedError) Is(target error) bool { return errors.Is(e.err, target) }
