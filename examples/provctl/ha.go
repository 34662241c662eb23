package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/provkit/provkit/ha"
	"github.com/spf13/cobra"
)

// haFlags are the flags of hasetup and hafailover: xCAT's (-p, -i, -v, -m, -t, -n) and what
// xcatha.py hard-codes (links, services, retries).
type haFlags struct {
	path, nic, vip, netmask, dbType, hostname string
	hostsFile, stateDir, provd                string
	links, services                           []string
	setHostname                               bool
	attempts                                  int
	retryDelay, healthTimeout, stopTimeout    time.Duration
	// automatic mode
	lockDSN, name   string
	ttl, vipLife    time.Duration
	probes          int
	probeWait       time.Duration
	activate, deact bool
	auto, status    bool
}

func (f *haFlags) common(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVarP(&f.path, "path", "p", "", "shared-data directory, on storage every management node mounts")
	fl.StringVarP(&f.nic, "nic", "i", "", "NIC for the virtual IP (eth0, or an alias such as eth0:1)")
	fl.StringVarP(&f.vip, "vip", "v", "", "virtual IP address")
	fl.StringVarP(&f.netmask, "netmask", "m", "255.255.255.0", "netmask (or prefix length) of the virtual IP")
	fl.StringVarP(&f.dbType, "dbtype", "t", "", "database type of the store: sqlite or postgresql (default: from the store's DSN)")
	fl.StringVar(&f.hostsFile, "hosts-file", "/etc/hosts", "hosts file that resolves the virtual IP's name")
	fl.StringVar(&f.stateDir, "state-dir", "/var/lib/provkit-ha", "local directory for this node's HA state (pid files, logs, the previous host name)")
	fl.StringArrayVar(&f.links, "link", nil, "shared-data link LOCAL[=SHARED] (repeatable; default /var/lib/provkit, /tftpboot, /install, /etc/provkit, and /var/lib/postgresql with -t postgresql)")
}

func (f *haFlags) serviceFlags(c *cobra.Command) {
	fl := c.Flags()
	fl.StringArrayVar(&f.services, "service", nil, "service to run, in start order: NAME=unit:UNIT or NAME=exec:PROGRAM ARGS[;user=U][;stop=SIG][;timeout=D][;health=http://...|tcp:HOST:PORT] (repeatable; default: postgresql's unit with -t postgresql, then provd)")
	fl.StringVar(&f.provd, "provd", "", "provd program for the default service (default: provd beside provctl, else on PATH)")
	fl.BoolVar(&f.setHostname, "set-hostname", true, "while active, take the virtual IP's host name, as xCAT does")
	fl.IntVar(&f.attempts, "attempts", 5, "start attempts per service")
	fl.DurationVar(&f.retryDelay, "retry-delay", time.Second, "pause between start attempts")
	fl.DurationVar(&f.healthTimeout, "health-timeout", 30*time.Second, "how long a started service has to become healthy")
	fl.DurationVar(&f.stopTimeout, "stop-timeout", 10*time.Second, "how long a service has to stop before SIGKILL")
	fl.IntVar(&f.probes, "arp-probes", 3, "ARP probes sent before taking the virtual IP")
	fl.DurationVar(&f.probeWait, "arp-wait", 100*time.Millisecond, "how long to listen for an answer after each ARP probe")
}

// storeDSN is the store the HA services use: --db, $PROVKIT_DB, or the standard path in the
// shared store directory.
func (a *app) storeDSN() string {
	if a.dsn != "" {
		return a.dsn
	}
	if d := os.Getenv("PROVKIT_DB"); d != "" {
		return d
	}
	return "/var/lib/provkit/provkit.db"
}

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// vipPrefix reads -v and -m.
func (f *haFlags) vipPrefix() (netip.Prefix, error) {
	addr, err := netip.ParseAddr(f.vip)
	if err != nil || !addr.Is4() {
		return netip.Prefix{}, fmt.Errorf("-v %q: want an IPv4 address", f.vip)
	}
	bits := -1
	if m, err := netip.ParseAddr(f.netmask); err == nil && m.Is4() {
		b := m.As4()
		ones, size := net.IPv4Mask(b[0], b[1], b[2], b[3]).Size()
		if size == 32 {
			bits = ones
		}
	} else if n, err := strconv.Atoi(strings.TrimPrefix(f.netmask, "/")); err == nil {
		bits = n
	}
	if bits < 1 || bits > 32 {
		return netip.Prefix{}, fmt.Errorf("-m %q: want a netmask such as 255.255.255.0 or a prefix length", f.netmask)
	}
	return netip.PrefixFrom(addr, bits), nil
}

func (f *haFlags) parseLinks() ([]ha.Link, error) {
	if len(f.links) == 0 {
		return nil, nil
	}
	var out []ha.Link
	for _, s := range f.links {
		local, shared, _ := strings.Cut(s, "=")
		if !filepath.IsAbs(local) || (shared != "" && !filepath.IsAbs(shared)) {
			return nil, fmt.Errorf("--link %q: want LOCAL or LOCAL=SHARED, absolute paths", s)
		}
		out = append(out, ha.Link{Local: local, Shared: shared})
	}
	return out, nil
}

// dbTypeFor resolves -t against the store's DSN.
func (f *haFlags) dbTypeFor(dsn string) (string, error) {
	want := ha.SQLite
	if isPostgres(dsn) {
		want = ha.PostgreSQL
	}
	switch f.dbType {
	case "":
		return want, nil
	case ha.SQLite, ha.PostgreSQL:
		return f.dbType, nil
	case "mysql":
		return "", errors.New("-t mysql: provkit's store is SQLite or PostgreSQL")
	}
	return "", fmt.Errorf("-t %q: want sqlite or postgresql", f.dbType)
}

// serviceSpecs returns the --service values, or the default services.
func (a *app) serviceSpecs(f *haFlags, prefix netip.Prefix, dbType, dsn string) ([]ha.ServiceSpec, error) {
	var specs []ha.ServiceSpec
	for _, s := range f.services {
		sp, err := ha.ParseServiceSpec(s)
		if err != nil {
			return nil, err
		}
		specs = append(specs, sp)
	}
	if len(specs) > 0 {
		return specs, nil
	}
	if dbType == ha.PostgreSQL {
		specs = append(specs, ha.ServiceSpec{Name: "database", Kind: "unit", Unit: "postgresql"})
	}
	provd := f.provd
	if provd == "" {
		if exe, err := os.Executable(); err == nil {
			if p := filepath.Join(filepath.Dir(exe), "provd"); isExecutable(p) {
				provd = p
			}
		}
	}
	if provd == "" {
		p, err := exec.LookPath("provd")
		if err != nil {
			return nil, errors.New("no provd to run: give --provd PATH or --service")
		}
		provd = p
	}
	if !filepath.IsAbs(provd) {
		if p, err := filepath.Abs(provd); err == nil {
			provd = p
		}
	}
	specs = append(specs, ha.ServiceSpec{Name: "provd", Kind: "exec", Argv: []string{provd, "--db", dsn},
		Health: "http://" + prefix.Addr().String() + "/healthz"})
	return specs, nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// haState is what hafailover -a records so that -d (another run) undoes the same things.
type haState struct {
	Nic         string   `json:"nic"`
	VIP         string   `json:"vip"`
	Path        string   `json:"path"`
	DBType      string   `json:"dbtype"`
	Store       string   `json:"store"`
	HostsFile   string   `json:"hosts_file"`
	SetHostname bool     `json:"set_hostname"`
	Links       []string `json:"links,omitempty"`
	Services    []string `json:"services"`
	StopTimeout string   `json:"stop_timeout"`
}

const haStateFile = "hafailover.json"

// manager builds the ha.Manager the flags describe. detached selects pid files for exec'd
// services (manual mode: they outlive provctl); withServices false leaves services out
// (hasetup, and -d with nothing recorded).
func (a *app) manager(f *haFlags, detached, withServices bool) (*ha.Manager, *haState, error) {
	if f.path == "" || f.nic == "" || f.vip == "" {
		return nil, nil, errors.New("-p (shared-data path), -i (NIC) and -v (virtual IP) are required")
	}
	prefix, err := f.vipPrefix()
	if err != nil {
		return nil, nil, err
	}
	dsn := a.storeDSN()
	dbType, err := f.dbTypeFor(dsn)
	if err != nil {
		return nil, nil, err
	}
	links, err := f.parseLinks()
	if err != nil {
		return nil, nil, err
	}
	var specs []ha.ServiceSpec
	if withServices {
		if specs, err = a.serviceSpecs(f, prefix, dbType, dsn); err != nil {
			return nil, nil, err
		}
	}
	// Check the store against -t only when one was named.
	store := ""
	if a.dsn != "" || os.Getenv("PROVKIT_DB") != "" {
		store = dsn
	}
	st := &haState{Nic: f.nic, VIP: prefix.String(), Path: f.path, DBType: dbType, Store: dsn,
		HostsFile: f.hostsFile, SetHostname: f.setHostname, Links: f.links, StopTimeout: f.stopTimeout.String()}
	var svcs []ha.Service
	for _, sp := range specs {
		if sp.Kind == "exec" {
			if sp.LogFile == "" {
				sp.LogFile = filepath.Join(f.stateDir, sp.Name+".log")
			}
			if detached && sp.PIDFile == "" {
				sp.PIDFile = filepath.Join(f.stateDir, sp.Name+".pid")
			}
			if sp.StopTimeout == 0 {
				sp.StopTimeout = f.stopTimeout
			}
		}
		svc, err := sp.Service()
		if err != nil {
			return nil, nil, err
		}
		st.Services = append(st.Services, sp.String())
		svcs = append(svcs, svc)
	}
	m := &ha.Manager{
		Interface: f.nic, VIP: prefix, SharedDir: f.path, DBType: dbType, Store: store,
		Hostname: f.hostname, HostsFile: f.hostsFile, SetHostname: f.setHostname,
		Links: links, Services: svcs, StateDir: f.stateDir,
		Attempts: f.attempts, RetryDelay: f.retryDelay, HealthTimeout: f.healthTimeout, StopTimeout: f.stopTimeout,
		Network:  ha.SystemNetwork{Probes: f.probes, ProbeWait: f.probeWait},
		Progress: a.printStep,
	}
	return m, st, nil
}

// printStep writes one step's outcome.
func (a *app) printStep(e ha.Event) {
	word := map[ha.EventKind]string{ha.EventDone: "ok", ha.EventFailed: "FAILED", ha.EventRetry: "retry",
		ha.EventUndone: "undone", ha.EventUndoFailed: "UNDO FAILED"}[e.Kind]
	if word == "" {
		word = string(e.Kind)
	}
	line := fmt.Sprintf("  %-7s %s", word, e.Step)
	if e.Detail != "" {
		line += ": " + e.Detail
	}
	if e.Attempts > 0 && (e.Kind == ha.EventRetry || e.Attempt > 1) {
		line += fmt.Sprintf(" (attempt %d/%d)", e.Attempt, e.Attempts)
	}
	if e.Err != nil {
		line += ": " + e.Err.Error()
	}
	w := a.stdout
	if e.Kind == ha.EventFailed || e.Kind == ha.EventUndoFailed {
		w = a.stderr
	}
	fmt.Fprintln(w, line)
}

func (a *app) hasetupCmd() *cobra.Command {
	f := &haFlags{}
	c := &cobra.Command{
		Use:   "hasetup -p PATH -i NIC -v VIP -n HOSTNAME [-m NETMASK] [-t sqlite|postgresql]",
		Short: "Prepare the shared data for management-node HA (xCAT's xcatha.py -s)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if f.hostname == "" {
				return usageError(c, "-n (the virtual IP's host name) is required")
			}
			m, _, err := a.manager(f, true, false)
			if err != nil {
				return usageError(c, err.Error())
			}
			fmt.Fprintf(a.stdout, "Setting up %s (%s) on %s with shared data in %s\n", m.VIP, f.hostname, f.nic, f.path)
			if err := m.Setup(c.Context()); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Shared data ready. Run `provctl hafailover -a -p %s -i %s -v %s` on the node to make active.\n", f.path, f.nic, m.VIP.Addr())
			return nil
		},
	}
	f.common(c)
	c.Flags().StringVarP(&f.hostname, "hostname", "n", "", "host name of the virtual IP")
	c.Flags().IntVar(&f.probes, "arp-probes", 3, "ARP probes sent to check the virtual IP is free")
	c.Flags().DurationVar(&f.probeWait, "arp-wait", 100*time.Millisecond, "how long to listen for an answer after each ARP probe")
	return c
}

func (a *app) hafailoverCmd() *cobra.Command {
	f := &haFlags{}
	c := &cobra.Command{
		Use:   "hafailover -a|-d|--auto|--status -p PATH -i NIC -v VIP [-m NETMASK] [-t sqlite|postgresql] [--service SPEC]...",
		Short: "Make this node the active management node (-a), a standby (-d), or run automatic failover (--auto)",
		Long: `hafailover moves the management node's virtual IP, shared data and services, as xCAT's
xcatha.py -a/-d does: -a probes the virtual IP (refusing it when another host answers), adds it
with gratuitous ARP, sets its host name, links the shared data and starts the services in order
with retries, undoing everything if a step fails; -d stops the services in reverse, unlinks,
removes the virtual IP and restores the host name.

--auto runs until interrupted: this node takes over when it gets the lock (a lease in the
PostgreSQL store, --lock), and deactivates itself before its lease can expire when it cannot
renew it. Services run as children of provctl and die with it.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			n := 0
			for _, b := range []bool{f.activate, f.deact, f.auto, f.status} {
				if b {
					n++
				}
			}
			if n != 1 {
				return usageError(c, "give exactly one of -a, -d, --auto, --status")
			}
			switch {
			case f.activate:
				return a.haActivate(c, f)
			case f.deact:
				return a.haDeactivate(c, f)
			case f.status:
				return a.haStatus(c, f)
			default:
				return a.haAuto(c, f)
			}
		},
	}
	fl := c.Flags()
	fl.BoolVarP(&f.activate, "activate", "a", false, "make this node the active management node")
	fl.BoolVarP(&f.deact, "deactivate", "d", false, "make this node a standby")
	fl.BoolVar(&f.auto, "auto", false, "run automatic failover until interrupted")
	fl.BoolVar(&f.status, "status", false, "show who holds the lock")
	fl.StringVar(&f.lockDSN, "lock", "", "PostgreSQL URL of the lock (default: --db when it is PostgreSQL)")
	fl.StringVar(&f.name, "name", "", "this node's name in the lock (default: the host name)")
	fl.DurationVar(&f.ttl, "ttl", 2*time.Second, "lease time: a dead active node is replaced about this long after it dies (more than 4/3 × (--vip-lifetime + 250ms): 1.7s with the default)")
	fl.DurationVar(&f.vipLife, "vip-lifetime", time.Second, "kernel lifetime of the virtual IP in automatic mode (whole seconds, shorter than --ttl)")
	f.common(c)
	f.serviceFlags(c)
	return c
}

func (a *app) haActivate(c *cobra.Command, f *haFlags) error {
	m, st, err := a.manager(f, true, true)
	if err != nil {
		return usageError(c, err.Error())
	}
	if err := os.MkdirAll(f.stateDir, 0o755); err != nil {
		return fmt.Errorf("--state-dir: %w", err)
	}
	// Record first: should provctl die half-way, -d still knows what to undo. An existing
	// record is an activation not undone yet: never overwrite it.
	b, _ := json.MarshalIndent(st, "", "  ")
	statePath := filepath.Join(f.stateDir, haStateFile)
	sf, err := os.OpenFile(statePath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("this node is already active, or its last activation was not undone (%s): run hafailover -d first", statePath)
	}
	if err != nil {
		return fmt.Errorf("--state-dir: %w", err)
	}
	_, werr := sf.Write(append(b, '\n'))
	if cerr := sf.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(statePath)
		return fmt.Errorf("--state-dir: %w", werr)
	}
	fmt.Fprintf(a.stdout, "Activating %s on %s (shared data %s, %s store)\n", m.VIP, f.nic, f.path, st.DBType)
	if err := m.Activate(c.Context()); err != nil {
		var se *ha.StepError
		if errors.As(err, &se) && len(se.UndoErrs) == 0 {
			os.Remove(statePath)
		}
		return err
	}
	fmt.Fprintln(a.stdout, "This node is the active management node.")
	return nil
}

func (a *app) haDeactivate(c *cobra.Command, f *haFlags) error {
	statePath := filepath.Join(f.stateDir, haStateFile)
	b, err := os.ReadFile(statePath)
	switch {
	case err == nil:
		var st haState
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("%s: %w", statePath, err)
		}
		if f.nic != "" && f.nic != st.Nic {
			return fmt.Errorf("-i %s, but this node was activated on %s (%s)", f.nic, st.Nic, statePath)
		}
		if f.vip != "" {
			if p, err := netip.ParsePrefix(st.VIP); err == nil && p.Addr().String() != f.vip {
				return fmt.Errorf("-v %s, but this node was activated with %s (%s)", f.vip, p.Addr(), statePath)
			}
		}
		g := *f
		g.nic, g.path, g.dbType, g.hostsFile, g.setHostname, g.links, g.services = st.Nic, st.Path, st.DBType, st.HostsFile, st.SetHostname, st.Links, st.Services
		p, _ := netip.ParsePrefix(st.VIP)
		g.vip, g.netmask = p.Addr().String(), fmt.Sprint(p.Bits())
		if d, err := time.ParseDuration(st.StopTimeout); err == nil {
			g.stopTimeout = d
		}
		saved := a.dsn
		a.dsn = st.Store
		m, _, err := a.manager(&g, true, true)
		a.dsn = saved
		if err != nil {
			return fmt.Errorf("%s: %w", statePath, err)
		}
		fmt.Fprintf(a.stdout, "Deactivating %s on %s\n", m.VIP, g.nic)
		if err := m.Deactivate(c.Context()); err != nil {
			return err
		}
		os.Remove(statePath)
	case errors.Is(err, fs.ErrNotExist):
		if f.nic == "" || f.vip == "" || f.path == "" {
			return usageError(c, "this node has no activation recorded in "+statePath+": give -p, -i and -v to undo one by hand")
		}
		m, _, err := a.manager(f, true, false)
		if err != nil {
			return usageError(c, err.Error())
		}
		fmt.Fprintf(a.stdout, "Deactivating %s on %s (no activation recorded: removing the address, links and host name only)\n", m.VIP, f.nic)
		if err := m.Deactivate(c.Context()); err != nil {
			return err
		}
	default:
		return err
	}
	fmt.Fprintln(a.stdout, "This node is a standby management node.")
	return nil
}

func (a *app) lockFor(f *haFlags) (*ha.PGLock, error) {
	dsn := f.lockDSN
	if dsn == "" && isPostgres(a.storeDSN()) {
		dsn = a.storeDSN()
	}
	if dsn == "" {
		return nil, errors.New("--lock: automatic failover needs a PostgreSQL store for its lock (--lock or a postgres:// --db)")
	}
	if !isPostgres(dsn) {
		return nil, fmt.Errorf("--lock %q: want a postgres:// URL", dsn)
	}
	return &ha.PGLock{DSN: dsn, Name: "provkit", TTL: f.ttl}, nil
}

func (a *app) haStatus(c *cobra.Command, f *haFlags) error {
	l, err := a.lockFor(f)
	if err != nil {
		return usageError(c, err.Error())
	}
	defer l.Close()
	li, err := l.Info(c.Context())
	if err != nil {
		return err
	}
	if li.Remaining == 0 {
		fmt.Fprintf(a.stdout, "lock %s: free (last holder %s, token %d)\n", li.Name, orDash(li.Holder), li.Token)
		return nil
	}
	fmt.Fprintf(a.stdout, "lock %s: held by %s, token %d, acquired %s, %s left\n", li.Name, li.Holder, li.Token,
		li.Acquired.UTC().Format(time.RFC3339Nano), li.Remaining.Round(time.Millisecond))
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// syncWriter serializes lines written by several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) line(text string) {
	s.mu.Lock()
	fmt.Fprintln(s.w, text)
	s.mu.Unlock()
}

func (a *app) haAuto(c *cobra.Command, f *haFlags) error {
	l, err := a.lockFor(f)
	if err != nil {
		return usageError(c, err.Error())
	}
	defer l.Close()
	m, _, err := a.manager(f, false, true)
	if err != nil {
		return usageError(c, err.Error())
	}
	if err := os.MkdirAll(f.stateDir, 0o755); err != nil {
		return fmt.Errorf("--state-dir: %w", err)
	}
	name := f.name
	if name == "" {
		name, _ = os.Hostname()
	}
	out := &syncWriter{w: a.stdout}
	stamp := func(e ha.Event) string {
		return e.Time.UTC().Format(time.RFC3339Nano) + " " + name + " "
	}
	m.Progress = func(e ha.Event) {
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		out.line(stamp(e) + "step " + e.String())
	}
	auto := &ha.Auto{Manager: m, Lock: l, Name: name, VIPLifetime: f.vipLife,
		OnEvent: func(e ha.Event) { out.line(stamp(e) + e.String()) }}
	out.line(fmt.Sprintf("%s%s automatic failover of %s on %s, lock %s (lease %s), services %s",
		stamp(ha.Event{Time: time.Now()}), "start", m.VIP, f.nic, l.Name, f.ttl, serviceNames(m.Services)))
	return auto.Run(c.Context())
}

func serviceNames(svcs []ha.Service) string {
	var n []string
	for _, s := range svcs {
		n = append(n, s.Name())
	}
	if len(n) == 0 {
		return "none"
	}
	return strings.Join(n, ",")
}
