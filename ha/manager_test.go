package ha_test

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/provkit/provkit/ha"
	"github.com/provkit/provkit/ha/hatest"
)

var vip = netip.MustParsePrefix("10.96.0.10/24")

// fixture is a management node made of temporary directories and fakes.
type fixture struct {
	t                         *testing.T
	dir, shared, hosts, state string
	locals                    []string
	net                       *hatest.Network
	host                      *hatest.Host
	calls                     *hatest.Calls
	svcs                      []*hatest.Service
	m                         *ha.Manager
	events                    []ha.Event
}

func newFixture(t *testing.T, services ...string) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), net: &hatest.Network{}, host: &hatest.Host{Name: "mn1"}, calls: &hatest.Calls{}}
	f.shared = filepath.Join(f.dir, "shared")
	f.hosts = filepath.Join(f.dir, "hosts")
	f.state = filepath.Join(f.dir, "state")
	write(t, f.hosts, "127.0.0.1\tlocalhost\n10.96.1.11\tmn1\n")
	var links []ha.Link
	for _, name := range []string{"tftpboot", "install"} {
		local := filepath.Join(f.dir, "local", name)
		write(t, filepath.Join(local, "from-"+name), name+" data\n")
		f.locals = append(f.locals, local)
		links = append(links, ha.Link{Local: local})
	}
	var svcs []ha.Service
	for _, s := range services {
		svc := &hatest.Service{ServiceName: s, Calls: f.calls}
		f.svcs = append(f.svcs, svc)
		svcs = append(svcs, svc)
	}
	f.m = &ha.Manager{
		Interface: "eth0", VIP: vip, SharedDir: f.shared, DBType: ha.SQLite,
		Hostname: "mn.cluster", HostsFile: f.hosts, SetHostname: true,
		Links: links, Services: svcs, StateDir: f.state,
		RetryDelay: time.Millisecond, HealthTimeout: time.Second,
		Network: f.net, Host: f.host,
		Progress: func(e ha.Event) { f.events = append(f.events, e) },
	}
	return f
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// snapshot is what a node's state looks like from outside: enough to prove that a failed
// Activate or a Deactivate put everything back.
type snapshot struct {
	Hosts    string
	Hostname string
	VIP      bool
	Locals   []string // "dir" or "link -> target" per local path, plus backups
	Running  []string
}

func (f *fixture) snap() snapshot {
	f.t.Helper()
	s := snapshot{Hosts: read(f.t, f.hosts), VIP: f.net.Has(vip.Addr())}
	s.Hostname, _ = f.host.Hostname()
	for _, l := range f.locals {
		for _, p := range []string{l, l + ha.BackupSuffix} {
			fi, err := os.Lstat(p)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				continue
			case err != nil:
				f.t.Fatal(err)
			case fi.Mode()&fs.ModeSymlink != 0:
				target, _ := os.Readlink(p)
				s.Locals = append(s.Locals, filepath.Base(p)+" -> "+target)
			default:
				s.Locals = append(s.Locals, filepath.Base(p)+" dir")
			}
		}
	}
	for _, svc := range f.svcs {
		if svc.Running() {
			s.Running = append(s.Running, svc.Name())
		}
	}
	return s
}

func (f *fixture) setup() {
	f.t.Helper()
	if err := f.m.Setup(context.Background()); err != nil {
		f.t.Fatalf("Setup: %v", err)
	}
	f.events = nil
}

func TestActivateDeactivate(t *testing.T) {
	f := newFixture(t, "database", "provd", "dns")
	f.setup()
	standby := f.snap()
	if err := f.m.Activate(context.Background()); err != nil {
		t.Fatalf("Activate: %v", err)
	}
	active := f.snap()
	want := snapshot{
		Hosts:    standby.Hosts,
		Hostname: "mn.cluster",
		VIP:      true,
		Locals: []string{
			"tftpboot -> " + filepath.Join(f.shared, f.locals[0]), "tftpboot" + ha.BackupSuffix + " dir",
			"install -> " + filepath.Join(f.shared, f.locals[1]), "install" + ha.BackupSuffix + " dir",
		},
		Running: []string{"database", "provd", "dns"},
	}
	if diff := cmp.Diff(want, active); diff != "" {
		t.Errorf("after Activate (-want +got):\n%s", diff)
	}
	// The shared copy made by Setup is what the links show.
	if got := read(t, filepath.Join(f.locals[0], "from-tftpboot")); got != "tftpboot data\n" {
		t.Errorf("through the link: %q", got)
	}
	var steps []string
	for _, e := range f.events {
		steps = append(steps, string(e.Kind)+" "+e.Step)
	}
	wantSteps := []string{"done database type", "done probe", "done vip", "done hostname",
		"done link " + f.locals[0], "done link " + f.locals[1],
		"done service database", "done service provd", "done service dns"}
	if diff := cmp.Diff(wantSteps, steps); diff != "" {
		t.Errorf("Activate's steps (-want +got):\n%s", diff)
	}
	if err := f.m.Deactivate(context.Background()); err != nil {
		t.Fatalf("Deactivate: %v", err)
	}
	if diff := cmp.Diff(standby, f.snap()); diff != "" {
		t.Errorf("Deactivate did not restore the standby state (-want +got):\n%s", diff)
	}
	wantCalls := []string{"start database", "start provd", "start dns", "stop dns", "stop provd", "stop database"}
	if diff := cmp.Diff(wantCalls, f.calls.List()); diff != "" {
		t.Errorf("service calls (-want +got):\n%s", diff)
	}
	wantNet := []string{"probe 10.96.0.10" /* Setup */, "probe 10.96.0.10", "up 10.96.0.10/24 eth0", "down 10.96.0.10/24 eth0"}
	if diff := cmp.Diff(wantNet, f.net.Log()); diff != "" {
		t.Errorf("network calls (-want +got):\n%s", diff)
	}
	// A second Deactivate on a standby changes nothing.
	if err := f.m.Deactivate(context.Background()); err != nil {
		t.Fatalf("Deactivate on a standby: %v", err)
	}
	if diff := cmp.Diff(standby, f.snap()); diff != "" {
		t.Errorf("Deactivate on a standby changed (-want +got):\n%s", diff)
	}
}

// TestActivateUndo makes each step fail in turn and checks that Activate undoes every step
// done before, in reverse order, and reports the failing step.
func TestActivateUndo(t *testing.T) {
	tests := []struct {
		name     string
		breakIt  func(f *fixture)
		step     string
		is       error
		undone   []string
		calls    []string
		hostname string
	}{
		{
			name:    "database type",
			breakIt: func(f *fixture) { f.m.DBType = ha.PostgreSQL },
			step:    "database type", is: ha.ErrDBType,
		},
		{
			name: "vip in use",
			breakIt: func(f *fixture) {
				f.net.Others = map[netip.Addr]net.HardwareAddr{vip.Addr(): {2, 0, 0, 0, 0, 9}}
			},
			step: "probe", is: ha.ErrVIPInUse,
		},
		{
			name:    "vip",
			breakIt: func(f *fixture) { f.net.FailUp = errors.New("netlink says no") },
			step:    "vip",
		},
		{
			name: "second link",
			breakIt: func(f *fixture) {
				if err := os.RemoveAll(filepath.Join(f.shared, f.locals[1])); err != nil {
					f.t.Fatal(err)
				}
			},
			step: "link " + "$1", is: ha.ErrNotSetUp,
			undone: []string{"link $0", "hostname", "vip"},
		},
		{
			name:    "third service never healthy",
			breakIt: func(f *fixture) { f.svcs[2].FailStarts = 100 },
			step:    "service dns",
			undone:  []string{"service provd", "service database", "link $1", "link $0", "hostname", "vip"},
			calls: []string{"start database", "start provd",
				"start dns", "stop dns", "start dns", "stop dns", "start dns", "stop dns",
				"start dns", "stop dns", "start dns", "stop dns",
				"stop provd", "stop database"},
		},
		{
			name:    "first service start error",
			breakIt: func(f *fixture) { f.svcs[0].StartErr = errors.New("no such unit") },
			step:    "service database",
			undone:  []string{"link $1", "link $0", "hostname", "vip"},
			calls: []string{"start database", "stop database", "start database", "stop database", "start database",
				"stop database", "start database", "stop database", "start database", "stop database"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "database", "provd", "dns")
			f.setup()
			before := f.snap()
			tt.breakIt(f)
			err := f.m.Activate(context.Background())
			var se *ha.StepError
			if !errors.As(err, &se) {
				t.Fatalf("Activate = %v, want a *StepError", err)
			}
			expand := func(s string) string {
				return strings.NewReplacer("$0", f.locals[0], "$1", f.locals[1]).Replace(s)
			}
			if se.Step != expand(tt.step) {
				t.Errorf("failed step = %q, want %q (%v)", se.Step, expand(tt.step), err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			var wantUndone []string
			for _, u := range tt.undone {
				wantUndone = append(wantUndone, expand(u))
			}
			if diff := cmp.Diff(wantUndone, se.Undone); diff != "" {
				t.Errorf("undone steps (-want +got):\n%s", diff)
			}
			if len(se.UndoErrs) > 0 {
				t.Errorf("undo errors: %v", se.UndoErrs)
			}
			if diff := cmp.Diff(tt.calls, f.calls.List()); diff != "" {
				t.Errorf("service calls (-want +got):\n%s", diff)
			}
			after := f.snap()
			if diff := cmp.Diff(before, after); diff != "" {
				t.Errorf("state after the failed Activate (-want +got):\n%s", diff)
			}
			if !strings.Contains(err.Error(), expand(tt.step)) {
				t.Errorf("message %q does not name the step %q", err, expand(tt.step))
			}
		})
	}
}

func TestActivateRetries(t *testing.T) {
	f := newFixture(t, "provd")
	f.setup()
	f.svcs[0].FailStarts = 2
	if err := f.m.Activate(context.Background()); err != nil {
		t.Fatalf("Activate: %v", err)
	}
	want := []string{"start provd", "stop provd", "start provd", "stop provd", "start provd"}
	if diff := cmp.Diff(want, f.calls.List()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	var retries []int
	for _, e := range f.events {
		if e.Kind == ha.EventRetry {
			retries = append(retries, e.Attempt)
		}
	}
	if diff := cmp.Diff([]int{1, 2}, retries); diff != "" {
		t.Errorf("retry events (-want +got):\n%s", diff)
	}
}

// TestActivateCancelled interrupts a service start: everything done is undone.
func TestActivateCancelled(t *testing.T) {
	f := newFixture(t, "database", "slow")
	f.setup()
	before := f.snap()
	f.svcs[1].FailStarts = 1000
	f.m.RetryDelay = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	f.m.Progress = func(e ha.Event) {
		if e.Kind == ha.EventRetry {
			cancel()
		}
	}
	err := f.m.Activate(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Activate = %v, want context.Canceled", err)
	}
	if diff := cmp.Diff(before, f.snap()); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
}

// TestBadSettings: bad input gets an error naming it, and nothing changes.
func TestBadSettings(t *testing.T) {
	tests := []struct {
		name string
		edit func(m *ha.Manager)
		want string
	}{
		{"no interface", func(m *ha.Manager) { m.Interface = "" }, `interface ""`},
		{"interface with space", func(m *ha.Manager) { m.Interface = "eth 0" }, `interface "eth 0"`},
		{"no vip", func(m *ha.Manager) { m.VIP = netip.Prefix{} }, "virtual IP"},
		{"ipv6 vip", func(m *ha.Manager) { m.VIP = netip.MustParsePrefix("fd00::1/64") }, "IPv4"},
		{"network address", func(m *ha.Manager) { m.VIP = netip.MustParsePrefix("10.96.0.0/24") }, "network address"},
		{"relative shared", func(m *ha.Manager) { m.SharedDir = "shared" }, `shared-data path "shared"`},
		{"mysql", func(m *ha.Manager) { m.DBType = "mysql" }, `database type "mysql"`},
		{"bad hostname", func(m *ha.Manager) { m.Hostname = "mn_1" }, `host name "mn_1"`},
		{"relative link", func(m *ha.Manager) { m.Links = []ha.Link{{Local: "install"}} }, `link "install"`},
		{"root link", func(m *ha.Manager) { m.Links = []ha.Link{{Local: "/"}} }, `link "/"`},
		{"link twice", func(m *ha.Manager) { m.Links = []ha.Link{{Local: "/a"}, {Local: "/a/"}} }, "given twice"},
		{"nested link", func(m *ha.Manager) { m.Links = []ha.Link{{Local: "/a", Shared: "/a/b"}} }, "overlaps"},
		{"service twice", func(m *ha.Manager) {
			m.Services = []ha.Service{&ha.Func{ServiceName: "x"}, &ha.Func{ServiceName: "x"}}
		}, "service x: given twice"},
		{"nameless service", func(m *ha.Manager) { m.Services = []ha.Service{&ha.Func{}} }, "service 1"},
		{"sqlite outside links", func(m *ha.Manager) { m.Store = "/var/lib/other/provkit.db" }, "not inside any shared-data link"},
		{"postgres url for sqlite", func(m *ha.Manager) { m.Store = "postgres://db/provkit" }, "PostgreSQL URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "provd")
			f.setup()
			before := f.snap()
			tt.edit(f.m)
			err := f.m.Activate(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Activate = %v, want an error containing %q", err, tt.want)
			}
			if diff := cmp.Diff(before, f.snap()); diff != "" {
				t.Errorf("state changed (-want +got):\n%s", diff)
			}
			if got := f.net.Log(); len(got) > 0 && got[len(got)-1] != "probe 10.96.0.10" {
				t.Errorf("network touched: %v", got)
			}
		})
	}
}

func TestSetup(t *testing.T) {
	f := newFixture(t)
	f.setup()
	for i, l := range f.locals {
		name := []string{"tftpboot", "install"}[i]
		if got := read(t, filepath.Join(f.shared, l, "from-"+name)); got != name+" data\n" {
			t.Errorf("shared copy of %s: %q", l, got)
		}
	}
	mk, err := ha.ReadMarker(f.shared)
	if err != nil || mk.DBType != ha.SQLite || mk.VIP != vip.String() || mk.Hostname != "mn.cluster" {
		t.Errorf("ReadMarker = %+v, %v", mk, err)
	}
	if got, want := read(t, f.hosts), "127.0.0.1\tlocalhost\n10.96.1.11\tmn1\n10.96.0.10\tmn.cluster mn\n"; got != want {
		t.Errorf("hosts:\n%s\nwant:\n%s", got, want)
	}
	// Setting up again keeps the shared data; another database type is refused and changes
	// nothing.
	write(t, filepath.Join(f.shared, f.locals[0], "newer"), "x")
	f.setup()
	if _, err := os.Stat(filepath.Join(f.shared, f.locals[0], "newer")); err != nil {
		t.Errorf("second Setup lost shared data: %v", err)
	}
	f.m.DBType = ha.PostgreSQL
	f.m.Links = append(f.m.Links, ha.Link{Local: filepath.Join(f.dir, "local", "pg")})
	err = f.m.Setup(context.Background())
	if !errors.Is(err, ha.ErrDBType) {
		t.Fatalf("Setup -t postgresql on sqlite data = %v, want ErrDBType", err)
	}
	if _, err := os.Stat(filepath.Join(f.shared, f.dir, "local", "pg")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("refused Setup created shared data: %v", err)
	}
}

// TestSetupUndo: a Setup that fails half-way removes the shared data it created.
func TestSetupUndo(t *testing.T) {
	f := newFixture(t)
	hosts := read(t, f.hosts)
	// The second link's local path is a file: it cannot be copied as a directory.
	if err := os.RemoveAll(f.locals[1]); err != nil {
		t.Fatal(err)
	}
	write(t, f.locals[1], "not a directory")
	err := f.m.Setup(context.Background())
	var se *ha.StepError
	if !errors.As(err, &se) || se.Step != "shared "+filepath.Join(f.shared, f.locals[1]) {
		t.Fatalf("Setup = %v, want a failure at the second link", err)
	}
	for _, p := range []string{filepath.Join(f.shared, f.locals[0]), filepath.Join(f.shared, ha.MarkerFile)} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}
	if got := read(t, f.hosts); got != hosts {
		t.Errorf("hosts changed: %q", got)
	}
}

// TestActivateKeepsForeignHostsLines: a VIP name already in the hosts file is used, and
// Deactivate leaves the admin's line alone.
func TestActivateKeepsForeignHostsLines(t *testing.T) {
	f := newFixture(t)
	f.setup()
	f.m.Hostname = "" // look it up
	before := read(t, f.hosts)
	if err := f.m.Activate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if name, _ := f.host.Hostname(); name != "mn.cluster" {
		t.Errorf("host name = %q, want the VIP's name from the hosts file", name)
	}
	if err := f.m.Deactivate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := read(t, f.hosts); got != before {
		t.Errorf("hosts file changed:\n%s", got)
	}
	if name, _ := f.host.Hostname(); name != "mn1" {
		t.Errorf("host name = %q after Deactivate, want mn1", name)
	}
}
