package ha

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Database types (-t).
const (
	SQLite     = "sqlite"
	PostgreSQL = "postgresql"
)

// Link is one shared-data link: while this node is active, Local is a symbolic link to
// Shared; on a standby, Local is whatever it was before (kept aside under BackupSuffix while
// active).
type Link struct {
	Local string
	// Shared is the directory in the shared-data path. If empty, SharedDir followed by Local
	// (xCAT's layout: /install is linked to <shared>/install).
	Shared string
}

// DefaultLinks are the shared-data directories of a provkit management node, as xCAT links
// /install, /tftpboot, /etc/xcat and the database: the store (/var/lib/provkit: the SQLite
// file and the DHCP lease journal), the boot root (/tftpboot), the images (/install) and the
// configuration and state (/etc/provkit); with PostgreSQL on shared storage, its data too.
func DefaultLinks(dbType string) []Link {
	l := []Link{{Local: "/var/lib/provkit"}, {Local: "/tftpboot"}, {Local: "/install"}, {Local: "/etc/provkit"}}
	if dbType == PostgreSQL {
		l = append(l, Link{Local: "/var/lib/postgresql"})
	}
	return l
}

// Manager makes this host the active management node (Activate) or a standby
// (Deactivate), following xCAT's shared-data HA design (xcatha.py -s/-a/-d). Its fields are
// the design's flags and what the design hard-codes; the zero value of each optional field
// works. A Manager must not be copied after first use.
type Manager struct {
	// Interface is the NIC that carries the virtual IP (-i). xCAT's alias form "eth0:1" is
	// accepted: the address goes on eth0 with the label eth0:1.
	Interface string
	// VIP is the virtual IP with its prefix length (-v, -m).
	VIP netip.Prefix
	// SharedDir is the shared-data directory (-p), on storage every management node mounts.
	SharedDir string
	// DBType is the database type of the store (-t): SQLite or PostgreSQL. If empty, SQLite.
	DBType string
	// Store, if set, is the store's DSN (a SQLite path or a postgres:// URL): Activate checks it
	// agrees with DBType and that a SQLite file lives in the shared data.
	Store string
	// Hostname is the virtual IP's host name. If empty, Activate looks the VIP up in HostsFile
	// and does no host-name handling when it finds none. Setup needs it.
	Hostname string
	// HostsFile is the /etc/hosts-style file that resolves the VIP's name. If empty, /etc/hosts.
	HostsFile string
	// SetHostname makes Activate set this host's name to the VIP's name, as xCAT does, and
	// Deactivate put the previous name back.
	SetHostname bool
	// Links are the shared-data links. If nil, DefaultLinks(DBType).
	Links []Link
	// Services are started in this order by Activate and stopped in reverse by Deactivate.
	Services []Service
	// StateDir is a local directory where the manager remembers what it changed (the previous
	// host name). If empty, /var/lib/provkit-ha.
	StateDir string
	// Attempts is how many times Activate starts a service before it gives up. If zero, 5.
	Attempts int
	// RetryDelay is the pause between two attempts. If zero, 1 s.
	RetryDelay time.Duration
	// HealthTimeout is how long a started service has to become healthy. If zero, 30 s.
	HealthTimeout time.Duration
	// StopTimeout bounds each service's Stop when undoing and deactivating. If zero, 10 s.
	StopTimeout time.Duration
	// Network probes, adds and removes the virtual IP. If nil, SystemNetwork{}.
	Network Network
	// Host reads and sets the host name. If nil, the kernel's (uname, sethostname).
	Host Hostnamer
	// Progress, if set, is told about every step as it completes, fails, retries or is undone.
	Progress func(Event)
	// Logger receives the same as Progress, and more detail. If nil, nothing is logged.
	Logger *slog.Logger

	// vipMu orders the VIP's changes between Activate/Deactivate and the automatic mode's
	// lease keeper, which refreshes and drops the address from another goroutine.
	vipMu sync.Mutex
	vipUp bool
	// leaseGuard is set by Auto: it says whether an address with a kernel lifetime of d may
	// be (re)installed now, that is whether the lease outlives it.
	leaseGuard func(d time.Duration) bool
	vipLife    time.Duration
	// undoBy is set by Auto: undoing a failed activation must be over by then.
	undoBy func() time.Time
}

// EventKind says what happened to a step.
type EventKind string

// Event kinds of Setup, Activate and Deactivate, and of the automatic mode.
const (
	EventDone       EventKind = "done"
	EventFailed     EventKind = "failed"
	EventRetry      EventKind = "retry"
	EventUndone     EventKind = "undone"
	EventUndoFailed EventKind = "undo-failed"

	EventRecovered EventKind = "recovered" // Auto: stale state from an earlier run cleaned up
	EventStandby   EventKind = "standby"   // Auto: another node holds the lock
	EventAcquired  EventKind = "acquired"  // Auto: this node took the lock
	EventActive    EventKind = "active"    // Auto: activation complete
	EventRenewFail EventKind = "renew-failed"
	EventLost      EventKind = "lost"      // Auto: the lease is lost: fencing starts
	EventFenced    EventKind = "fenced"    // Auto: deactivated after losing the lease
	EventUnhealthy EventKind = "unhealthy" // Auto: a service failed its health check
	EventRestarted EventKind = "restarted"
	EventGaveUp    EventKind = "gave-up"  // Auto: could not activate or keep services up
	EventReleased  EventKind = "released" // Auto: deactivated and released the lock (Time: when the release began)
)

// Event is one step's outcome, for progress output.
type Event struct {
	Time   time.Time
	Kind   EventKind
	Step   string
	Detail string
	// Attempt and Attempts number a service start attempt.
	Attempt, Attempts int
	// Token is the lease's fencing token (automatic mode).
	Token int64
	Err   error
}

func (e Event) String() string {
	var b strings.Builder
	b.WriteString(string(e.Kind))
	if e.Step != "" {
		b.WriteString(" " + e.Step)
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if e.Attempts > 0 {
		fmt.Fprintf(&b, " (attempt %d/%d)", e.Attempt, e.Attempts)
	}
	if e.Token != 0 {
		fmt.Fprintf(&b, " token=%d", e.Token)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// settings are a Manager's fields with defaults resolved and input checked, once per call.
type settings struct {
	dev, label    string
	vip           netip.Prefix
	shared        string
	dbType        string
	store         string
	hostname      string
	hostsFile     string
	setHostname   bool
	links         []Link
	services      []Service
	stateDir      string
	attempts      int
	retryDelay    time.Duration
	healthTimeout time.Duration
	healthPoll    time.Duration
	stopTimeout   time.Duration
	net           Network
	host          Hostnamer
	progress      func(Event)
	log           *slog.Logger
	undoBy        func() time.Time
}

func (m *Manager) settings() (*settings, error) {
	s := &settings{
		vip: m.VIP, shared: m.SharedDir, dbType: m.DBType, store: m.Store,
		hostname: m.Hostname, hostsFile: m.HostsFile, setHostname: m.SetHostname,
		services: m.Services, stateDir: m.StateDir, attempts: m.Attempts,
		retryDelay: m.RetryDelay, healthTimeout: m.HealthTimeout, stopTimeout: m.StopTimeout,
		healthPoll: 50 * time.Millisecond, net: m.Network, host: m.Host, log: m.Logger,
	}
	var err error
	if s.dev, s.label, err = splitInterface(m.Interface); err != nil {
		return nil, err
	}
	if !s.vip.IsValid() || !s.vip.Addr().Is4() || s.vip.Bits() == 0 {
		return nil, fmt.Errorf("virtual IP %q: want an IPv4 address with a prefix length or netmask", m.VIP)
	}
	if s.vip.Addr() == s.vip.Masked().Addr() && s.vip.Bits() < 31 {
		return nil, fmt.Errorf("virtual IP %s is the network address of %s", s.vip.Addr(), s.vip.Masked())
	}
	if s.shared == "" || !filepath.IsAbs(s.shared) {
		return nil, fmt.Errorf("shared-data path %q: want an absolute path", m.SharedDir)
	}
	s.shared = filepath.Clean(s.shared)
	switch s.dbType {
	case "":
		s.dbType = SQLite
	case SQLite, PostgreSQL:
	default:
		return nil, fmt.Errorf("database type %q: want %s or %s", m.DBType, SQLite, PostgreSQL)
	}
	if s.hostname != "" && !validHostname(s.hostname) {
		return nil, fmt.Errorf("host name %q: want letters, digits, '-' and '.' only", s.hostname)
	}
	if s.hostsFile == "" {
		s.hostsFile = "/etc/hosts"
	}
	links := m.Links
	if links == nil {
		links = DefaultLinks(s.dbType)
	}
	seen := map[string]bool{}
	for _, l := range links {
		if !filepath.IsAbs(l.Local) || filepath.Clean(l.Local) == "/" {
			return nil, fmt.Errorf("link %q: want an absolute local path other than /", l.Local)
		}
		l.Local = filepath.Clean(l.Local)
		if l.Shared == "" {
			l.Shared = filepath.Join(s.shared, l.Local)
		}
		if !filepath.IsAbs(l.Shared) {
			return nil, fmt.Errorf("link %s: shared path %q is not absolute", l.Local, l.Shared)
		}
		l.Shared = filepath.Clean(l.Shared)
		if within(l.Shared, l.Local) || within(l.Local, l.Shared) {
			return nil, fmt.Errorf("link %s: shared path %s overlaps it", l.Local, l.Shared)
		}
		if seen[l.Local] {
			return nil, fmt.Errorf("link %s: given twice", l.Local)
		}
		seen[l.Local] = true
		s.links = append(s.links, l)
	}
	names := map[string]bool{}
	for i, svc := range s.services {
		if svc == nil || svc.Name() == "" {
			return nil, fmt.Errorf("service %d: nil or without a name", i+1)
		}
		if names[svc.Name()] {
			return nil, fmt.Errorf("service %s: given twice", svc.Name())
		}
		names[svc.Name()] = true
	}
	if s.stateDir == "" {
		s.stateDir = "/var/lib/provkit-ha"
	}
	if s.attempts <= 0 {
		s.attempts = 5
	}
	if s.retryDelay <= 0 {
		s.retryDelay = time.Second
	}
	if s.healthTimeout <= 0 {
		s.healthTimeout = 30 * time.Second
	}
	if s.stopTimeout <= 0 {
		s.stopTimeout = 10 * time.Second
	}
	if s.net == nil {
		s.net = SystemNetwork{}
	}
	if s.host == nil {
		s.host = kernelHost{}
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m.vipMu.Lock()
	s.undoBy = m.undoBy
	m.vipMu.Unlock()
	s.progress = func(e Event) {
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		attrs := []any{"step", e.Step}
		if e.Detail != "" {
			attrs = append(attrs, "detail", e.Detail)
		}
		if e.Err != nil {
			attrs = append(attrs, "err", e.Err)
		}
		s.log.Info("ha: "+string(e.Kind), attrs...)
		if m.Progress != nil {
			m.Progress(e)
		}
	}
	return s, nil
}

// splitInterface reads -i: "eth0" or xCAT's alias form "eth0:1".
func splitInterface(s string) (dev, label string, err error) {
	dev, _, alias := strings.Cut(s, ":")
	if dev == "" || len(s) > 15 || strings.ContainsAny(s, "/ \t\n") {
		return "", "", fmt.Errorf("interface %q: want a NIC name such as eth0 or eth0:1", s)
	}
	if alias {
		label = s
	}
	return dev, label, nil
}

func validHostname(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" || len(part) > 63 || part[0] == '-' || part[len(part)-1] == '-' {
			return false
		}
		for _, r := range part {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// step is one reversible change.
type step struct {
	name string
	do   func(ctx context.Context) (detail string, err error)
	undo func(ctx context.Context) error // nil: nothing to undo
}

// runner runs steps and, when one fails, undoes the completed ones in reverse order.
type runner struct {
	op   string
	s    *settings
	done []step
}

func (r *runner) run(ctx context.Context, steps []step) error {
	for _, st := range steps {
		if err := ctx.Err(); err != nil {
			return r.fail(ctx, st.name, fmt.Errorf("interrupted before this step: %w", err))
		}
		detail, err := st.do(ctx)
		if err != nil {
			return r.fail(ctx, st.name, err)
		}
		if detail != "" || !strings.HasPrefix(st.name, "service ") {
			r.s.progress(Event{Kind: EventDone, Step: st.name, Detail: detail})
		}
		if st.undo != nil {
			r.done = append(r.done, st)
		}
	}
	return nil
}

// fail undoes every completed step, newest first, and returns the StepError.
func (r *runner) fail(ctx context.Context, name string, err error) error {
	r.s.progress(Event{Kind: EventFailed, Step: name, Err: err})
	e := &StepError{Op: r.op, Step: name, Err: err}
	// Undo even when ctx has ended (that may be why we are here), within a bound of its own.
	deadline := time.Now().Add(r.s.stopTimeout*time.Duration(len(r.s.services)+1) + 5*time.Second)
	if r.s.undoBy != nil {
		deadline = r.s.undoBy()
	}
	uctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	for i := len(r.done) - 1; i >= 0; i-- {
		st := r.done[i]
		if uerr := st.undo(uctx); uerr != nil {
			e.UndoErrs = append(e.UndoErrs, fmt.Errorf("%s: %w", st.name, uerr))
			r.s.progress(Event{Kind: EventUndoFailed, Step: st.name, Err: uerr})
			continue
		}
		e.Undone = append(e.Undone, st.name)
		r.s.progress(Event{Kind: EventUndone, Step: st.name})
	}
	return e
}

// Activate makes this host the active management node: it checks the database type,
// probes the virtual IP (refusing it when another host answers), adds it to the interface
// and announces it with gratuitous ARP, sets the host-name resolution, links the shared
// data, and starts the services in order, each with up to Attempts attempts. When a step
// fails, every step already done is undone in reverse order, and the *StepError says which
// step failed and what was undone. Bad settings change nothing.
func (m *Manager) Activate(ctx context.Context) error {
	s, err := m.settings()
	if err != nil {
		return &StepError{Op: "activate", Step: "settings", Err: err}
	}
	r := &runner{op: "activate", s: s}
	steps := []step{
		{name: "database type", do: func(context.Context) (string, error) { return checkDBType(s) }},
		{name: "probe", do: func(ctx context.Context) (string, error) {
			if err := s.net.Probe(ctx, s.dev, s.vip.Addr()); err != nil {
				return "", err
			}
			return fmt.Sprintf("%s is free on %s", s.vip.Addr(), s.dev), nil
		}},
		{name: "vip", do: func(ctx context.Context) (string, error) { return m.vipAdd(ctx, s) },
			undo: func(ctx context.Context) error { return m.vipRemove(ctx, s) }},
	}
	var hn hostnameChange
	steps = append(steps, step{name: "hostname",
		do:   func(context.Context) (string, error) { return hn.apply(s) },
		undo: func(context.Context) error { return hn.revert(s) }})
	for _, l := range s.links {
		var lc linkChange
		steps = append(steps, step{name: "link " + l.Local,
			do:   func(context.Context) (string, error) { return lc.apply(l) },
			undo: func(context.Context) error { return lc.revert() }})
	}
	for _, svc := range s.services {
		steps = append(steps, step{name: "service " + svc.Name(),
			do: func(ctx context.Context) (string, error) { return "", startService(ctx, svc, s, s.progress) },
			undo: func(ctx context.Context) error {
				sctx, cancel := context.WithTimeout(ctx, s.stopTimeout)
				defer cancel()
				return svc.Stop(sctx)
			}})
	}
	return r.run(ctx, steps)
}

// Deactivate makes this host a standby: it stops the services in reverse order, removes
// the shared-data links (putting back what was there before), removes the virtual IP and
// restores the host name and hosts file. It does all it can even when a step fails, and is
// safe to run on a host that is not active (it then changes nothing). When ctx ends, the
// services are stopped the hard way.
func (m *Manager) Deactivate(ctx context.Context) error {
	s, err := m.settings()
	if err != nil {
		return &StepError{Op: "deactivate", Step: "settings", Err: err}
	}
	var errs []error
	first := ""
	note := func(name string, err error) {
		if err != nil {
			if first == "" {
				first = name
			}
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			s.progress(Event{Kind: EventFailed, Step: name, Err: err})
			return
		}
		s.progress(Event{Kind: EventDone, Step: name})
	}
	for i := len(s.services) - 1; i >= 0; i-- {
		svc := s.services[i]
		sctx, cancel := context.WithTimeout(ctx, s.stopTimeout)
		note("stop "+svc.Name(), svc.Stop(sctx))
		cancel()
	}
	for i := len(s.links) - 1; i >= 0; i-- {
		note("unlink "+s.links[i].Local, unlink(s.links[i]))
	}
	note("remove vip", m.vipRemove(ctx, s))
	note("restore hostname", restoreHostname(s))
	if len(errs) > 0 {
		return &StepError{Op: "deactivate", Step: first, Err: errors.Join(errs...)}
	}
	return nil
}

// Setup prepares the shared data for HA, as xCAT's setup does: it checks that the virtual
// IP is free, records the database type in the shared-data directory (refusing a directory
// set up for another type), seeds each shared directory from this host's local one when the
// shared one does not exist yet, and adds "VIP Hostname" to the hosts file. It leaves the
// node a standby: Activate makes it active. On failure it undoes what it did.
func (m *Manager) Setup(ctx context.Context) error {
	s, err := m.settings()
	if err != nil {
		return &StepError{Op: "setup", Step: "settings", Err: err}
	}
	if s.hostname == "" {
		return &StepError{Op: "setup", Step: "settings", Err: errors.New("the virtual IP's host name is required (-n)")}
	}
	r := &runner{op: "setup", s: s}
	var mk markerChange
	var hosts hostsChange
	steps := []step{
		{name: "probe", do: func(ctx context.Context) (string, error) {
			if err := s.net.Probe(ctx, s.dev, s.vip.Addr()); err != nil {
				return "", err
			}
			return fmt.Sprintf("%s is free on %s", s.vip.Addr(), s.dev), nil
		}},
		{name: "database type", do: func(context.Context) (string, error) { return mk.apply(s) },
			undo: func(context.Context) error { return mk.revert() }},
	}
	for _, l := range s.links {
		var sc seedChange
		steps = append(steps, step{name: "shared " + l.Shared,
			do:   func(context.Context) (string, error) { return sc.apply(l) },
			undo: func(context.Context) error { return sc.revert() }})
	}
	steps = append(steps, step{name: "hosts",
		do:   func(context.Context) (string, error) { return hosts.apply(s, "") },
		undo: func(context.Context) error { return hosts.revert(s) }})
	return r.run(ctx, steps)
}
