//go:build integration

package bmc_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/provkit/provkit/bmc"
	"github.com/provkit/provkit/bmc/bmctest"
	"github.com/provkit/provkit/internal/testenv"
)

// qemuCmd is the VM ipmi_sim starts on power on: qemu's ipmi-bmc-extern device connects
// back to the simulator's VM serial port, which is how ipmi_sim knows the VM is up.
const qemuCmd = "qemu-system-x86_64 -machine pc,accel=tcg -m 64 -display none -nodefaults -no-user-config" +
	" -chardev socket,id=ipmi0,host=127.0.0.1,port={serial},reconnect=1" +
	" -device ipmi-bmc-extern,id=bmc0,chardev=ipmi0 -device isa-ipmi-kcs,bmc=bmc0" +
	" -pidfile {dir}/vm.pid"

func vmPid(dir string) int {
	b, err := os.ReadFile(dir + "/vm.pid")
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid == 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err != nil || strings.Contains(string(st), ") Z ") {
		return 0 // gone, or a zombie ipmi_sim has not reaped yet
	}
	return pid
}

func eventually(t *testing.T, what string, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestVMQemuIPMIBMCExtern joins ipmi_sim to a qemu VM: rpower on really starts the VM,
// rpower stat reports the VM's state, rpower off really stops it.
func TestVMQemuIPMIBMCExtern(t *testing.T) {
	testenv.Require(t, testenv.Program("ipmi_sim", "qemu-system-x86_64"))
	sims := bmctest.StartT(t, 1, bmctest.Options{Password: simPassword, StartCmd: qemuCmd, PoweroffWait: 1, KillWait: 2})
	sim := sims.List[0]
	ts := simTargets(sims)
	c := &bmc.Client{Timeout: 10 * time.Second}
	ctx := context.Background()
	defer c.Close(ctx)
	power := func(a bmc.Action) bmc.Result {
		t.Helper()
		r := c.Power(ctx, ts, a)[0]
		if r.Err != nil {
			t.Fatalf("rpower %s: %v\nipmi_sim log:\n%s", a, r.Err, sim.Log())
		}
		return r
	}
	if r := power(bmc.Stat); r.Text != "off" || vmPid(sim.Dir) != 0 {
		t.Fatalf("before: %q, VM pid %d", r.Text, vmPid(sim.Dir))
	}
	if r := power(bmc.On); r.Text != "on" {
		t.Fatalf("rpower on: %q", r.Text)
	}
	eventually(t, "qemu started", 10*time.Second, func() bool { return vmPid(sim.Dir) != 0 })
	pid := vmPid(sim.Dir)
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if !strings.Contains(string(cmdline), "ipmi-bmc-extern") {
		t.Errorf("process %d is not the VM: %q", pid, cmdline)
	}
	eventually(t, "rpower stat says on", 10*time.Second, func() bool { return power(bmc.Stat).Text == "on" })
	if r := power(bmc.Off); r.Text != "off" {
		t.Fatalf("rpower off: %q", r.Text)
	}
	eventually(t, "qemu stopped", 15*time.Second, func() bool { return vmPid(sim.Dir) == 0 })
	eventually(t, "rpower stat says off", 10*time.Second, func() bool { return power(bmc.Stat).Text == "off" })
	// With the VM codec ipmi_sim hands boot options to the VM side; record what it says.
	r := c.SetBoot(ctx, ts, bmc.BootNet, bmc.BootOptions{})[0]
	line, _ := bmc.FormatResult(r)
	t.Logf("VM pid %d started by rpower on and stopped by rpower off; rsetboot net: %s", pid, line)
}
