package bmc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/provkit/provkit/bmc"
	"github.com/provkit/provkit/bmc/bmctest"
	"github.com/provkit/provkit/bmc/ipmi"
)

const password = "Zq9-secret!"

func fakes(t testing.TB, n int) ([]*bmctest.FakeBMC, []bmc.Target) {
	t.Helper()
	var fs []*bmctest.FakeBMC
	var ts []bmc.Target
	for i := range n {
		f, err := bmctest.NewFakeBMC("admin", password)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		fs = append(fs, f)
		ts = append(ts, bmc.Target{Node: fmt.Sprintf("n%d", i+1), Mgt: "ipmi", Addr: f.Addr(), User: "admin", Password: password})
	}
	return fs, ts
}

// TestLanplusEndToEnd drives the native provider through bmclib against in-process BMCs.
func TestLanplusEndToEnd(t *testing.T) {
	fs, ts := fakes(t, 3)
	fs[1].SetPowerOn(true)
	c := &bmc.Client{RetryInterval: 20 * time.Millisecond}
	ctx := context.Background()
	defer c.Close(ctx)

	texts := func(rs []bmc.Result) []string {
		var out []string
		for _, r := range rs {
			line, _ := bmc.FormatResult(r)
			out = append(out, line)
		}
		return out
	}
	if d := cmp.Diff([]string{"n1: off", "n2: on", "n3: off"}, texts(c.Power(ctx, ts, bmc.Stat))); d != "" {
		t.Errorf("stat (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"n1: on", "n2: reset", "n3: on"}, texts(c.Power(ctx, ts, bmc.Boot))); d != "" {
		t.Errorf("boot (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"n1: Network", "n2: Network", "n3: Network"}, texts(c.SetBoot(ctx, ts, bmc.BootNet, bmc.BootOptions{UEFI: true}))); d != "" {
		t.Errorf("setboot (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"n1: Network", "n2: Network", "n3: Network"}, texts(c.BootState(ctx, ts))); d != "" {
		t.Errorf("setboot stat (-want +got):\n%s", d)
	}
	for i, f := range fs {
		if !f.PowerOn() {
			t.Errorf("n%d is off after boot", i+1)
		}
		if got, want := f.Boot(), (ipmi.BootFlags{Valid: true, EFI: true, Device: ipmi.BootPXE}); got != want {
			t.Errorf("n%d boot flags %+v, want %+v", i+1, got, want)
		}
		if _, opened := f.Sessions(); opened != 1 {
			t.Errorf("n%d: %d sessions opened for 4 operations, want 1 (kept)", i+1, opened)
		}
	}
	if d := cmp.Diff([]string{"hard reset", "boot pxe valid=true persistent=false efi=true"}, fs[1].Commands()); d != "" {
		t.Errorf("n2 commands (-want +got):\n%s", d)
	}

	// The BMC forgets the session (timeout, BMC reset): the next operation logs in again.
	fs[0].ForgetSessions()
	if rs := c.Power(ctx, ts[:1], bmc.Off); rs[0].Err != nil || rs[0].Text != "off" {
		t.Errorf("off after the BMC forgot the session: %+v", rs[0])
	}
	if _, opened := fs[0].Sessions(); opened != 2 {
		t.Errorf("%d sessions opened, want 2", opened)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for i, f := range fs {
		if active, _ := f.Sessions(); active != 0 {
			t.Errorf("n%d: %d sessions left after Close", i+1, active)
		}
	}
}

// TestNoPasswordLeak runs every failure a node can have and checks that the password is
// in no result, no error and no log line.
func TestNoPasswordLeak(t *testing.T) {
	fs, ts := fakes(t, 1)
	bh, err := bmctest.NewBlackhole()
	if err != nil {
		t.Fatal(err)
	}
	defer bh.Close()
	free, _ := bmctest.FreeUDPPorts(1)
	targets := []bmc.Target{
		ts[0],
		{Node: "wrongpw", Addr: fs[0].Addr(), User: "admin", Password: "Zq9-wrong!!"},
		{Node: "wronguser", Addr: fs[0].Addr(), User: "root", Password: password},
		{Node: "dead", Addr: bh.Addr, User: "admin", Password: password},
		{Node: "refused", Addr: fmt.Sprintf("127.0.0.1:%d", free[0]), User: "admin", Password: password},
		{Node: "badmgt", Mgt: "hmc", Addr: "h", User: "admin", Password: password},
		{Node: "toolong", Addr: fs[0].Addr(), User: "admin", Password: bmc.Secret(password + strings.Repeat("x", 20))},
	}
	var logbuf bytes.Buffer
	c := &bmc.Client{Timeout: 300 * time.Millisecond, RetryInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logbuf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	defer c.Close(context.Background())
	rs := c.Power(context.Background(), targets, bmc.On)
	var out, errw bytes.Buffer
	if code := bmc.Report(&out, &errw, rs); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	wantErr := map[string]error{"wrongpw": bmc.ErrAuth, "wronguser": bmc.ErrAuth, "dead": context.DeadlineExceeded,
		"refused": bmc.ErrUnreachable, "badmgt": bmc.ErrUnsupported}
	for _, r := range rs {
		if want, ok := wantErr[r.Node]; ok && !errors.Is(r.Err, want) {
			t.Errorf("%s: %v, want %v", r.Node, r.Err, want)
		}
	}
	if rs[0].Err != nil || rs[len(rs)-1].Err == nil {
		t.Errorf("n1: %v; toolong: %v", rs[0].Err, rs[len(rs)-1].Err)
	}
	all := out.String() + errw.String() + logbuf.String() + fmt.Sprintf("%+v %#v", rs, targets)
	if strings.Contains(all, "Zq9") {
		t.Errorf("password leaked:\n%s", all)
	}
	t.Logf("report:\n%s%s", out.String(), errw.String())
}

func BenchmarkStat(b *testing.B) {
	_, ts := fakes(b, 50)
	ctx := context.Background()
	for _, reuse := range []bool{true, false} {
		b.Run(fmt.Sprintf("nodes=50/reuse=%t", reuse), func(b *testing.B) {
			c := &bmc.Client{DisableReuse: !reuse}
			defer c.Close(ctx)
			for b.Loop() {
				for _, r := range c.Power(ctx, ts, bmc.Stat) {
					if r.Err != nil {
						b.Fatal(r.Err)
					}
				}
			}
			b.ReportMetric(float64(b.N*len(ts))/b.Elapsed().Seconds(), "nodes/s")
		})
	}
}

func ExampleClient_Power() {
	// Two BMCs in this process stand in for real ones.
	n1, _ := bmctest.NewFakeBMC("admin", "pw")
	defer n1.Close()
	n2, _ := bmctest.NewFakeBMC("admin", "pw")
	defer n2.Close()
	n2.SetPowerOn(true)

	targets := []bmc.Target{
		{Node: "n1", Mgt: "ipmi", Addr: n1.Addr(), User: "admin", Password: "pw"},
		{Node: "n2", Mgt: "ipmi", Addr: n2.Addr(), User: "admin", Password: "pw"},
		{Node: "n3", Mgt: "ipmi", Addr: n2.Addr(), User: "admin", Password: "wrong"},
	}
	c := &bmc.Client{}
	defer c.Close(context.Background())
	ctx := context.Background()
	bmc.Report(os.Stdout, os.Stdout, c.Power(ctx, targets[:2], bmc.Stat))
	rs := c.Power(ctx, targets, bmc.On)
	for _, r := range rs {
		if errors.Is(r.Err, bmc.ErrAuth) {
			fmt.Println(r.Node + ": Error: authentication failed")
			continue
		}
		line, _ := bmc.FormatResult(r)
		fmt.Println(line)
	}
	code := bmc.ExitCode(rs)
	bmc.Report(os.Stdout, os.Stdout, c.SetBoot(ctx, targets[:2], bmc.BootNet, bmc.BootOptions{}))
	fmt.Println("exit", code)
	// Output:
	// n1: off
	// n2: on
	// n1: on
	// n2: on
	// n3: Error: authentication failed
	// n1: Network
	// n2: Network
	// exit 1
}

// TestNoGoroutineLeft: a run and Close leave no goroutine behind, also when nodes time out.
func TestNoGoroutineLeft(t *testing.T) {
	_, ts := fakes(t, 20)
	bh, err := bmctest.NewBlackhole()
	if err != nil {
		t.Fatal(err)
	}
	defer bh.Close()
	ts = append(ts, bmc.Target{Node: "dead", Addr: bh.Addr, User: "admin", Password: password})
	before := runtime.NumGoroutine()
	c := &bmc.Client{Timeout: 200 * time.Millisecond, RetryInterval: 50 * time.Millisecond, Concurrency: 8}
	ctx := context.Background()
	c.Power(ctx, ts, bmc.On)
	c.SetBoot(ctx, ts, bmc.BootNet, bmc.BootOptions{})
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines left:\n%s", n-before, buf[:runtime.Stack(buf, true)])
	}
}

// TestIdleSessionsAbandoned: a session idle past MaxIdle is not trusted: it is given up
// (the BMC is told, without waiting) and a fresh one opened.
func TestIdleSessionsAbandoned(t *testing.T) {
	fs, ts := fakes(t, 2)
	c := &bmc.Client{MaxIdle: 50 * time.Millisecond}
	ctx := context.Background()
	defer c.Close(ctx)
	c.Power(ctx, ts, bmc.Stat)
	time.Sleep(120 * time.Millisecond)
	for _, r := range c.Power(ctx, ts[:1], bmc.Stat) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	// The Close Session of an abandoned session is not waited for: poll for its arrival.
	check := func() string {
		a0, o0 := fs[0].Sessions()
		a1, o1 := fs[1].Sessions()
		if a0 != 1 || o0 != 2 || a1 != 0 || o1 != 1 {
			return fmt.Sprintf("n1: %d active, %d opened (want 1, 2); n2 (swept): %d active, %d opened (want 0, 1)", a0, o0, a1, o1)
		}
		return ""
	}
	for deadline := time.Now().Add(5 * time.Second); check() != "" && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if msg := check(); msg != "" {
		t.Error(msg)
	}
}
