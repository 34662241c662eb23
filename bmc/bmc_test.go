package bmc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		name string
		t    Target
		want endpoint
		err  error
	}{
		{"ipmi host", Target{Addr: "10.0.0.5"}, endpoint{"ipmi", "10.0.0.5", "623"}, nil},
		{"ipmi host:port", Target{Mgt: "IPMI", Addr: "bmc-n1:6230"}, endpoint{"ipmi", "bmc-n1", "6230"}, nil},
		{"redfish default port", Target{Mgt: "redfish", Addr: "10.0.0.5"}, endpoint{"redfish", "10.0.0.5", "443"}, nil},
		{"openbmc", Target{Mgt: "openbmc", Addr: "[fd00::5]:8443"}, endpoint{"openbmc", "fd00::5", "8443"}, nil},
		{"bare ipv6", Target{Addr: "fd00::5"}, endpoint{"ipmi", "fd00::5", "623"}, nil},
		{"ipmitool", Target{Mgt: "ipmitool", Addr: "h"}, endpoint{"ipmitool", "h", "623"}, nil},
		{"empty address", Target{Addr: " "}, endpoint{}, ErrBadTarget},
		{"bad port", Target{Addr: "h:99999"}, endpoint{}, ErrBadTarget},
		{"word port", Target{Addr: "h:ipmi"}, endpoint{}, ErrBadTarget},
		{"garbage", Target{Addr: "a:b:c"}, endpoint{}, ErrBadTarget},
		{"unsupported mgt", Target{Mgt: "kvm", Addr: "h"}, endpoint{}, ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.t.parse()
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Errorf("parse(%+v) = %v, want %v", tt.t, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parse(%+v) = %+v, %v; want %+v", tt.t, got, err, tt.want)
			}
		})
	}
}

func TestParseVerbs(t *testing.T) {
	for in, want := range map[string]Action{"on": On, "OFF": Off, "state": Stat, "status": Stat, "stat": Stat,
		"softoff": SoftOff, "reset": Reset, "boot": Boot, "cycle": Cycle} {
		if got, err := ParseAction(in); err != nil || got != want {
			t.Errorf("ParseAction(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseAction("explode"); err == nil || !strings.Contains(err.Error(), `"explode"`) {
		t.Errorf("ParseAction(explode) = %v, want an error naming it", err)
	}
	for in, want := range map[string]BootDevice{"net": BootNet, "hd": BootDisk, "cd": BootCD, "def": BootDefault,
		"default": BootDefault, "setup": BootSetup, "floppy": BootFloppy} {
		if got, err := ParseBootDevice(in); err != nil || got != want {
			t.Errorf("ParseBootDevice(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseBootDevice("usb"); err == nil || !strings.Contains(err.Error(), `"usb"`) {
		t.Errorf("ParseBootDevice(usb) = %v, want an error naming it", err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	tg := Target{Node: "n1", Addr: "h", User: "admin", Password: "hunter2-pw"}
	var logbuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logbuf, nil)).Info("x", "target", tg, "pw", tg.Password)
	slog.New(slog.NewTextHandler(&logbuf, nil)).Info("x", "pw", tg.Password)
	outs := []string{logbuf.String(), tg.Password.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10s"} {
		outs = append(outs, fmt.Sprintf(verb, tg), fmt.Sprintf(verb, tg.Password), fmt.Sprintf(verb, []Target{tg}))
	}
	for _, o := range outs {
		if strings.Contains(o, "hunter2") || strings.Contains(o, fmt.Sprintf("%x", "hunter2")) {
			t.Errorf("password printed: %s", o)
		}
	}
	if string(tg.Password) != "hunter2-pw" {
		t.Error("string(Secret) must give the value")
	}
}

// fleet is a set of fake BMCs behind the Driver seam, keyed by address.
type fleet struct {
	mu       sync.Mutex
	power    map[string]string
	calls    []string
	opens    atomic.Int32
	closes   atomic.Int32
	inflight atomic.Int32
	maxIn    atomic.Int32
	delay    time.Duration
	block    map[string]bool // addresses whose driver blocks until ctx ends
	errs     map[string]error
}

func newFleet() *fleet {
	return &fleet{power: map[string]string{}, block: map[string]bool{}, errs: map[string]error{}}
}

type fakeDriver struct {
	f    *fleet
	addr string
}

func (f *fleet) driver(t Target) (Driver, error) { return &fakeDriver{f: f, addr: t.Addr}, nil }

func (d *fakeDriver) Name() string { return "fake" }
func (d *fakeDriver) Open(ctx context.Context) error {
	d.f.opens.Add(1)
	d.f.mu.Lock()
	err := d.f.errs[d.addr]
	d.f.mu.Unlock()
	return err
}
func (d *fakeDriver) Close(context.Context) error { d.f.closes.Add(1); return nil }
func (d *fakeDriver) enter(ctx context.Context) error {
	n := d.f.inflight.Add(1)
	defer d.f.inflight.Add(-1)
	for {
		m := d.f.maxIn.Load()
		if n <= m || d.f.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	d.f.mu.Lock()
	block := d.f.block[d.addr]
	d.f.mu.Unlock()
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	select {
	case <-time.After(d.f.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}
func (d *fakeDriver) PowerStateGet(ctx context.Context) (string, error) {
	if err := d.enter(ctx); err != nil {
		return "", err
	}
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	d.f.calls = append(d.f.calls, d.addr+" get")
	if p, ok := d.f.power[d.addr]; ok {
		return p, nil
	}
	return "off", nil
}
func (d *fakeDriver) PowerSet(ctx context.Context, state string) (bool, error) {
	if err := d.enter(ctx); err != nil {
		return false, err
	}
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	d.f.calls = append(d.f.calls, d.addr+" set "+state)
	switch state {
	case "on", "reset", "cycle":
		d.f.power[d.addr] = "on"
	case "off", "soft":
		d.f.power[d.addr] = "off"
	}
	return true, nil
}
func (d *fakeDriver) BootDeviceSet(ctx context.Context, dev string, persistent, efi bool) (bool, error) {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	d.f.calls = append(d.f.calls, fmt.Sprintf("%s boot %s %t %t", d.addr, dev, persistent, efi))
	return true, nil
}

func targets(n int) []Target {
	ts := make([]Target, n)
	for i := range ts {
		ts[i] = Target{Node: fmt.Sprintf("n%d", i+1), Addr: fmt.Sprintf("10.95.0.%d", i+1), User: "admin", Password: "pw-secret"}
	}
	return ts
}

// TestPowerSemantics checks each rpower action against xCAT's IPMI plugin: the state is
// read first and the command sent only when needed.
func TestPowerSemantics(t *testing.T) {
	tests := []struct {
		from   string
		action Action
		text   string
		power  PowerState
		calls  []string
	}{
		{"off", Stat, "off", PowerOff, []string{"get"}},
		{"on", Stat, "on", PowerOn, []string{"get"}},
		{"off", On, "on", PowerOn, []string{"get", "set on"}},
		{"on", On, "on", PowerOn, []string{"get"}},
		{"on", Off, "off", PowerOff, []string{"get", "set off"}},
		{"off", Off, "off", PowerOff, []string{"get"}},
		{"on", SoftOff, "softoff", PowerOn, []string{"get", "set soft"}},
		{"off", SoftOff, "off", PowerOff, []string{"get"}},
		{"on", Reset, "reset", PowerOn, []string{"get", "set reset"}},
		{"off", Reset, "off", PowerOff, []string{"get"}},
		{"on", Boot, "reset", PowerOn, []string{"get", "set reset"}},
		{"off", Boot, "on", PowerOn, []string{"get", "set on"}},
		{"on", Cycle, "cycle", PowerOn, []string{"get", "set cycle"}},
		{"off", Cycle, "on", PowerOn, []string{"get", "set on"}},
	}
	for _, tt := range tests {
		t.Run(tt.from+" "+string(tt.action), func(t *testing.T) {
			f := newFleet()
			tg := targets(1)
			f.power[tg[0].Addr] = tt.from
			c := &Client{NewDriver: f.driver}
			rs := c.Power(context.Background(), tg, tt.action)
			want := []Result{{Node: "n1", Text: tt.text, Power: tt.power}}
			if d := cmp.Diff(want, rs, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Elapsed" }, cmp.Ignore())); d != "" {
				t.Errorf("results (-want +got):\n%s", d)
			}
			var calls []string
			for _, c := range f.calls {
				calls = append(calls, strings.TrimPrefix(c, tg[0].Addr+" "))
			}
			if d := cmp.Diff(tt.calls, calls); d != "" {
				t.Errorf("calls (-want +got):\n%s", d)
			}
		})
	}
}

func TestSetBoot(t *testing.T) {
	f := newFleet()
	c := &Client{NewDriver: f.driver}
	tests := []struct {
		dev  BootDevice
		o    BootOptions
		text string
		call string
	}{
		{BootNet, BootOptions{}, "Network", "boot pxe false false"},
		{BootDisk, BootOptions{Persistent: true}, "Hard Drive", "boot disk true false"},
		{BootCD, BootOptions{UEFI: true}, "CD/DVD", "boot cdrom false true"},
		{BootSetup, BootOptions{}, "BIOS Setup", "boot bios false false"},
		{BootDefault, BootOptions{}, "boot override inactive", "boot none false false"},
	}
	for _, tt := range tests {
		f.calls = nil
		rs := c.SetBoot(context.Background(), targets(1), tt.dev, tt.o)
		if rs[0].Err != nil || rs[0].Text != tt.text || rs[0].Boot != tt.dev {
			t.Errorf("SetBoot(%s) = %+v; want text %q", tt.dev, rs[0], tt.text)
		}
		if d := cmp.Diff([]string{"10.95.0.1 " + tt.call}, f.calls); d != "" {
			t.Errorf("SetBoot(%s) calls (-want +got):\n%s", tt.dev, d)
		}
	}
	// The fake provider cannot read the boot override: bmclib finds no implementation.
	if rs := c.BootState(context.Background(), targets(1)); !errors.Is(rs[0].Err, ErrUnsupported) {
		t.Errorf("BootState on a provider without it = %v, want ErrUnsupported", rs[0].Err)
	}
	rs := c.SetBoot(context.Background(), targets(2), "usb", BootOptions{})
	for _, r := range rs {
		if r.Err == nil {
			t.Errorf("SetBoot(usb) on %s succeeded", r.Node)
		}
	}
}

func TestFanOutBoundedAndOrdered(t *testing.T) {
	f := newFleet()
	f.delay = 5 * time.Millisecond
	var seen atomic.Int32
	c := &Client{NewDriver: f.driver, Concurrency: 4, OnResult: func(Result) { seen.Add(1) }}
	ts := targets(60)
	rs := c.Power(context.Background(), ts, Stat)
	if len(rs) != len(ts) {
		t.Fatalf("%d results for %d targets", len(rs), len(ts))
	}
	for i, r := range rs {
		if r.Node != ts[i].Node || r.Err != nil || r.Text != "off" {
			t.Errorf("result %d = %+v", i, r)
		}
	}
	if m := f.maxIn.Load(); m > 4 || m < 2 {
		t.Errorf("%d BMCs talked to at once, want 2..4", m)
	}
	if n := seen.Load(); n != 60 {
		t.Errorf("OnResult called %d times, want 60", n)
	}
}

func TestPerNodeTimeoutAndCancel(t *testing.T) {
	f := newFleet()
	ts := targets(3)
	f.block[ts[1].Addr] = true
	c := &Client{NewDriver: f.driver, Timeout: 100 * time.Millisecond}
	rs := c.Power(context.Background(), ts, Stat)
	if rs[0].Err != nil || rs[2].Err != nil {
		t.Errorf("healthy nodes failed: %v, %v", rs[0].Err, rs[2].Err)
	}
	if !errors.Is(rs[1].Err, context.DeadlineExceeded) {
		t.Errorf("blocked node: %v, want DeadlineExceeded", rs[1].Err)
	}

	for k := range f.block {
		delete(f.block, k)
	}
	f.delay = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	rs = (&Client{NewDriver: f.driver, Concurrency: 2}).Power(ctx, targets(10), Stat)
	if time.Since(start) > 5*time.Second {
		t.Errorf("cancel took %v", time.Since(start))
	}
	for _, r := range rs {
		if !errors.Is(r.Err, context.Canceled) {
			t.Errorf("%s: %v, want context.Canceled", r.Node, r.Err)
		}
	}
}

func TestReuse(t *testing.T) {
	f := newFleet()
	c := &Client{NewDriver: f.driver}
	ctx := context.Background()
	for range 3 {
		c.Power(ctx, targets(5), Stat)
	}
	if n := f.opens.Load(); n != 5 {
		t.Errorf("%d opens for 3 runs on 5 BMCs with reuse, want 5", n)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.closes.Load(); n != 5 {
		t.Errorf("Close logged out %d, want 5", n)
	}

	f = newFleet()
	c = &Client{NewDriver: f.driver, DisableReuse: true}
	for range 3 {
		c.Power(ctx, targets(5), Stat)
	}
	if n, m := f.opens.Load(), f.closes.Load(); n != 15 || m != 15 {
		t.Errorf("without reuse: %d opens, %d closes; want 15, 15", n, m)
	}

	// A changed password replaces the kept connection.
	f = newFleet()
	c = &Client{NewDriver: f.driver}
	ts := targets(1)
	c.Power(ctx, ts, Stat)
	ts[0].Password = "new-password"
	c.Power(ctx, ts, Stat)
	if n := f.opens.Load(); n != 2 {
		t.Errorf("%d opens after a password change, want 2", n)
	}
}

func TestReport(t *testing.T) {
	rs := []Result{
		{Node: "n1", Text: "on"},
		{Node: "n2", Err: errors.New("lanplus: 10.0.0.2:623: RAKP 2: authentication failed:\n\twrong password")},
		{Node: "n3", Text: "Network"},
	}
	var out, errw bytes.Buffer
	if code := Report(&out, &errw, rs); code != 1 {
		t.Errorf("Report exit code = %d, want 1", code)
	}
	if got, want := out.String(), "n1: on\nn3: Network\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if got, want := errw.String(), "n2: Error: lanplus: 10.0.0.2:623: RAKP 2: authentication failed: wrong password\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
	if ExitCode(rs[:1]) != 0 || ExitCode(rs) != 1 || ExitCode(nil) != 0 {
		t.Error("ExitCode wrong")
	}
}

func TestProviderErrorRedacted(t *testing.T) {
	f := newFleet()
	ts := targets(1)
	f.errs[ts[0].Addr] = fmt.Errorf("login with password %s refused: %w", ts[0].Password, ErrAuth)
	var logbuf bytes.Buffer
	c := &Client{NewDriver: f.driver, Logger: slog.New(slog.NewTextHandler(&logbuf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	rs := c.Power(context.Background(), ts, Stat)
	if rs[0].Err == nil || strings.Contains(rs[0].Err.Error(), "pw-secret") || strings.Contains(logbuf.String(), "pw-secret") {
		t.Errorf("password leaked: err %v, log %s", rs[0].Err, logbuf.String())
	}
	if !errors.Is(rs[0].Err, ErrAuth) {
		t.Errorf("redacted error lost its sentinel: %v", rs[0].Err)
	}
}

func TestCLIHelpers(t *testing.T) {
	f := newFleet()
	c := &Client{NewDriver: f.driver}
	ctx := context.Background()
	var out, errw bytes.Buffer
	if code := c.Rpower(ctx, targets(2), "state", &out, &errw); code != 0 || out.String() != "n1: off\nn2: off\n" || errw.Len() != 0 {
		t.Errorf("Rpower state: %d %q %q", code, out.String(), errw.String())
	}
	out.Reset()
	if code := c.Rpower(ctx, targets(2), "explode", &out, &errw); code != 1 || out.Len() != 0 || !strings.Contains(errw.String(), `"explode"`) {
		t.Errorf("Rpower explode: %d %q %q", code, out.String(), errw.String())
	}
	errw.Reset()
	if code := c.Rsetboot(ctx, targets(1), "hd", BootOptions{Persistent: true}, &out, &errw); code != 0 || out.String() != "n1: Hard Drive\n" {
		t.Errorf("Rsetboot hd: %d %q %q", code, out.String(), errw.String())
	}
	if got := StatWithPower("noping", Result{Node: "n1", Power: PowerOff, Text: "off"}); got != "noping(off)" {
		t.Errorf("StatWithPower = %q", got)
	}
	if got := StatWithPower("noping", Result{Node: "n1", Err: errors.New("timeout")}); got != "noping(Error: timeout)" {
		t.Errorf("StatWithPower(error) = %q", got)
	}
}
