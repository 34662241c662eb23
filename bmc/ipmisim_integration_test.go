//go:build integration

package bmc_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/provkit/provkit/bmc"
	"github.com/provkit/provkit/bmc/bmctest"
	"github.com/provkit/provkit/bmc/ipmi"
	"github.com/provkit/provkit/internal/testenv"
)

const simPassword = "Xy7-simpass" // distinctive, to be searched for in argv, logs and errors

func simTargets(sims *bmctest.Sims) []bmc.Target {
	ts := make([]bmc.Target, len(sims.List))
	for i, s := range sims.List {
		ts[i] = bmc.Target{Node: fmt.Sprintf("n%d", i+1), Mgt: "ipmi", Addr: s.Addr, User: s.User, Password: bmc.Secret(s.Password)}
	}
	return ts
}

// ipmitoolStatus asks the real ipmitool what the simulator's power is.
func ipmitoolStatus(t *testing.T, s *bmctest.Sim) string {
	t.Helper()
	host, port, _ := strings.Cut(s.Addr, ":")
	cmd := exec.Command("ipmitool", "-I", "lanplus", "-C", "3", "-H", host, "-p", port, "-U", s.User, "-E", "chassis", "power", "status")
	cmd.Env = append(os.Environ(), "IPMI_PASSWORD="+s.Password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ipmitool: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func one(t *testing.T, c *bmc.Client, rs []bmc.Result) bmc.Result {
	t.Helper()
	if len(rs) != 1 {
		t.Fatalf("%d results", len(rs))
	}
	return rs[0]
}

// TestIPMISimBehaviour drives one ipmi_sim through every rpower and rsetboot verb, with
// the native provider and with bmclib's ipmitool provider, and checks what the
// simulator's chassis control script was told.
func TestIPMISimBehaviour(t *testing.T) {
	testenv.Require(t, testenv.Program("ipmi_sim", "ipmitool"))
	for _, provider := range []string{"lanplus", "ipmitool"} {
		t.Run(provider, func(t *testing.T) {
			sims := bmctest.StartT(t, 1, bmctest.Options{Password: simPassword})
			sim := sims.List[0]
			ts := simTargets(sims)
			c := &bmc.Client{Ipmitool: provider == "ipmitool"}
			ctx := context.Background()
			defer c.Close(ctx)
			seen := 0
			newCalls := func() []string {
				calls := sim.Calls()
				n := calls[seen:]
				seen = len(calls)
				return n
			}
			steps := []struct {
				name  string
				run   func() []bmc.Result
				text  string
				power string // chassis script's power after the step
				boot  string // chassis script's boot device after the step ("" = not checked)
				call  string // a chassis script call the step must make ("" = none)
				never string // a call the step must not make
			}{
				{"stat off", func() []bmc.Result { return c.Power(ctx, ts, bmc.Stat) }, "off", "0", "", "get power", "set power"},
				{"on", func() []bmc.Result { return c.Power(ctx, ts, bmc.On) }, "on", "1", "", "set power 1", ""},
				{"stat on", func() []bmc.Result { return c.Power(ctx, ts, bmc.Stat) }, "on", "1", "", "get power", "set power"},
				{"on when on", func() []bmc.Result { return c.Power(ctx, ts, bmc.On) }, "on", "1", "", "", "set power"},
				{"reset", func() []bmc.Result { return c.Power(ctx, ts, bmc.Reset) }, "reset", "1", "", "set reset 1", ""},
				{"boot when on", func() []bmc.Result { return c.Power(ctx, ts, bmc.Boot) }, "reset", "1", "", "set reset 1", "set power"},
				{"setboot net", func() []bmc.Result { return c.SetBoot(ctx, ts, bmc.BootNet, bmc.BootOptions{}) }, "Network", "1", "pxe", "set boot pxe", ""},
				{"setboot hd -p -u", func() []bmc.Result {
					return c.SetBoot(ctx, ts, bmc.BootDisk, bmc.BootOptions{Persistent: true, UEFI: true})
				}, "Hard Drive", "1", "default", "set boot default", ""},
				{"setboot cd", func() []bmc.Result { return c.SetBoot(ctx, ts, bmc.BootCD, bmc.BootOptions{}) }, "CD/DVD", "1", "cdrom", "set boot cdrom", ""},
				{"softoff", func() []bmc.Result { return c.Power(ctx, ts, bmc.SoftOff) }, "softoff", "1", "", "set shutdown 1", ""},
				{"off", func() []bmc.Result { return c.Power(ctx, ts, bmc.Off) }, "off", "0", "", "set power 0", ""},
				{"off when off", func() []bmc.Result { return c.Power(ctx, ts, bmc.Off) }, "off", "0", "", "", "set power"},
				{"reset when off", func() []bmc.Result { return c.Power(ctx, ts, bmc.Reset) }, "off", "0", "", "", "set reset"},
				{"boot when off", func() []bmc.Result { return c.Power(ctx, ts, bmc.Boot) }, "on", "1", "", "set power 1", ""},
			}
			for _, st := range steps {
				r := one(t, c, st.run())
				calls := newCalls()
				if r.Err != nil || r.Text != st.text {
					t.Errorf("%s: %+v, want %q", st.name, r, st.text)
				}
				if got := sim.Power(); got != st.power {
					t.Errorf("%s: chassis power %q, want %q", st.name, got, st.power)
				}
				if st.boot != "" && sim.Boot() != st.boot {
					t.Errorf("%s: chassis boot %q, want %q", st.name, sim.Boot(), st.boot)
				}
				if st.call != "" && !slices.Contains(calls, st.call) {
					t.Errorf("%s: chassis calls %q lack %q", st.name, calls, st.call)
				}
				for _, cl := range calls {
					if st.never != "" && strings.HasPrefix(cl, st.never) {
						t.Errorf("%s: chassis call %q should not happen", st.name, cl)
					}
				}
			}
			if got := ipmitoolStatus(t, sim); got != "Chassis Power is on" {
				t.Errorf("ipmitool says %q, want Chassis Power is on", got)
			}
		})
	}
}

// TestIPMISimWrongCredentials checks the per-node error for a wrong password and a wrong
// user, and that the password is in no error, no log line and (for the ipmitool
// provider) no argv: the provider passes it in ipmitool's environment.
func TestIPMISimWrongCredentials(t *testing.T) {
	testenv.Require(t, testenv.Program("ipmi_sim", "ipmitool"))
	sims := bmctest.StartT(t, 1, bmctest.Options{Password: simPassword})
	sim := sims.List[0]
	dir := t.TempDir()
	argvLog := filepath.Join(dir, "argv.log")
	ipmitool, err := exec.LookPath("ipmitool")
	if err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(dir, "ipmitool")
	script := fmt.Sprintf("#!/bin/sh\necho \"argv: $*\" >> %s\necho \"password in env: ${IPMITOOL_PASSWORD:+yes}\" >> %s\nexec %s \"$@\"\n", argvLog, argvLog, ipmitool)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, provider := range []string{"lanplus", "ipmitool"} {
		t.Run(provider, func(t *testing.T) {
			var logbuf strings.Builder
			c := &bmc.Client{Ipmitool: provider == "ipmitool", IpmitoolPath: wrapper, Timeout: 10 * time.Second,
				Logger: debugLogger(&logbuf)}
			defer c.Close(context.Background())
			ts := []bmc.Target{
				{Node: "good", Addr: sim.Addr, User: "admin", Password: simPassword},
				{Node: "badpw", Addr: sim.Addr, User: "admin", Password: "Xy7-wrongpw"},
				{Node: "baduser", Addr: sim.Addr, User: "nobody", Password: simPassword},
			}
			rs := c.Power(context.Background(), ts, bmc.Stat)
			if rs[0].Err != nil || rs[0].Text != "off" {
				t.Errorf("good: %+v", rs[0])
			}
			for _, r := range rs[1:] {
				if r.Err == nil {
					t.Errorf("%s: no error", r.Node)
					continue
				}
				if provider == "lanplus" && !errors.Is(r.Err, bmc.ErrAuth) {
					t.Errorf("%s: %v, want ErrAuth", r.Node, r.Err)
				}
				line, _ := bmc.FormatResult(r)
				t.Logf("%s", line)
			}
			all := fmt.Sprintf("%v %+v", rs, ts) + logbuf.String()
			if strings.Contains(all, "Xy7") {
				t.Errorf("password leaked:\n%s", all)
			}
		})
	}
	b, err := os.ReadFile(argvLog)
	if err != nil {
		t.Fatalf("the ipmitool provider never ran ipmitool: %v", err)
	}
	if strings.Contains(string(b), "Xy7") || !strings.Contains(string(b), "-E") || !strings.Contains(string(b), "password in env: yes") {
		t.Errorf("ipmitool argv/env log:\n%s", b)
	}
}

// TestIPMISimUnreachable checks that a BMC that never answers costs its node a timeout
// error and nothing else, and that a port where nothing listens fails at once.
func TestIPMISimUnreachable(t *testing.T) {
	testenv.Require(t, testenv.Program("ipmi_sim", "ipmitool"))
	sims := bmctest.StartT(t, 1, bmctest.Options{Password: simPassword})
	bh, err := bmctest.NewBlackhole()
	if err != nil {
		t.Fatal(err)
	}
	defer bh.Close()
	free, _ := bmctest.FreeUDPPorts(1)
	for _, provider := range []string{"lanplus", "ipmitool"} {
		t.Run(provider, func(t *testing.T) {
			// Long enough for the healthy node on a loaded machine (ipmitool forks twice).
			timeout := 3 * time.Second
			if provider == "ipmitool" {
				timeout = 8 * time.Second
			}
			c := &bmc.Client{Ipmitool: provider == "ipmitool", Timeout: timeout, RetryInterval: 300 * time.Millisecond}
			defer c.Close(context.Background())
			ts := []bmc.Target{
				simTargets(sims)[0],
				{Node: "dead", Addr: bh.Addr, User: "admin", Password: simPassword},
				{Node: "refused", Addr: fmt.Sprintf("127.0.0.1:%d", free[0]), User: "admin", Password: simPassword},
			}
			rs := c.Power(context.Background(), ts, bmc.Stat)
			if rs[0].Err != nil {
				t.Errorf("n1: %v", rs[0].Err)
			}
			if rs[1].Err == nil || (provider == "lanplus" && !errors.Is(rs[1].Err, context.DeadlineExceeded)) {
				t.Errorf("dead: %v, want a timeout", rs[1].Err)
			}
			if rs[2].Err == nil || (provider == "lanplus" && !errors.Is(rs[2].Err, bmc.ErrUnreachable)) {
				t.Errorf("refused: %v, want ErrUnreachable", rs[2].Err)
			}
			for _, r := range rs {
				line, _ := bmc.FormatResult(r)
				t.Logf("%s (%v)", line, r.Elapsed.Round(time.Millisecond))
			}
		})
	}
}

// TestIPMISimFanOut100 powers 100 simulators on and off at once and checks every one.
func TestIPMISimFanOut100(t *testing.T) {
	testenv.Require(t, testenv.Program("ipmi_sim", "ipmitool"))
	sims := bmctest.StartT(t, 100, bmctest.Options{Password: simPassword})
	ts := simTargets(sims)
	c := &bmc.Client{}
	ctx := context.Background()
	defer c.Close(ctx)
	check := func(step string, rs []bmc.Result, text, power string) {
		t.Helper()
		for i, r := range rs {
			if r.Err != nil || r.Text != text || r.Node != ts[i].Node {
				t.Errorf("%s: %s: %+v, want %q", step, ts[i].Node, r, text)
			}
			if got := sims.List[i].Power(); power != "" && got != power {
				t.Errorf("%s: %s: chassis power %q, want %q", step, ts[i].Node, got, power)
			}
		}
	}
	check("stat", c.Power(ctx, ts, bmc.Stat), "off", "0")
	check("on", c.Power(ctx, ts, bmc.On), "on", "1")
	check("stat", c.Power(ctx, ts, bmc.Stat), "on", "1")
	check("setboot", c.SetBoot(ctx, ts, bmc.BootNet, bmc.BootOptions{}), "Network", "1")
	for _, i := range []int{0, 49, 99} {
		if got := ipmitoolStatus(t, sims.List[i]); got != "Chassis Power is on" {
			t.Errorf("ipmitool says %s is %q", ts[i].Node, got)
		}
		if b := sims.List[i].Boot(); b != "pxe" {
			t.Errorf("%s boot %q, want pxe", ts[i].Node, b)
		}
	}
	check("off", (&bmc.Client{DisableReuse: true}).Power(ctx, ts, bmc.Off), "off", "0")
}

// TestIPMISimCipherSuite17 asks ipmi_sim (which implements only the SHA-1 suites) for
// cipher suite 17: the node gets the BMC's refusal at once, not a timeout.
func TestIPMISimCipherSuite17(t *testing.T) {
	testenv.Require(t, testenv.Program("ipmi_sim"))
	sims := bmctest.StartT(t, 1, bmctest.Options{Password: simPassword})
	c := &bmc.Client{CipherSuite: 17, Timeout: 5 * time.Second}
	defer c.Close(context.Background())
	r := c.Power(context.Background(), simTargets(sims), bmc.Stat)[0]
	line, _ := bmc.FormatResult(r)
	t.Log(line)
	var st ipmi.StatusCode
	if !errors.As(r.Err, &st) || errors.Is(r.Err, context.DeadlineExceeded) {
		t.Errorf("suite 17: %v, want the BMC's RMCP+ status", r.Err)
	}
}
