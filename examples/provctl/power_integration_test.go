//go:build integration

package main

import (
	"strings"
	"testing"

	"github.com/provkit/provkit/bmc/bmctest"
	"github.com/provkit/provkit/internal/testenv"
)

// TestIPMISimRpower drives rpower, rsetboot and nodestat -p through provctl against two
// OpenIPMI simulators, with the BMC address from a group regex and the credentials from
// the passwd table, as an xCAT site keeps them.
func TestIPMISimRpower(t *testing.T) {
	testenv.Require(t, testenv.Program("ipmi_sim"))
	sims := bmctest.StartT(t, 2, bmctest.Options{})
	c := newCLI(t)
	c.ok("nodeadd", "n[1-2]", "groups=compute,all")
	c.ok("chtab", "node=compute", "nodehm.mgt=ipmi")
	for i, s := range sims.List {
		c.ok("chtab", "node="+[]string{"n1", "n2"}[i], "ipmi.bmc="+s.Addr)
	}
	c.ok("chtab", "key=ipmi", "passwd.username="+sims.List[0].User, "passwd.password="+sims.List[0].Password)
	if got := c.ok("rpower", "compute", "stat"); got != "n1: off\nn2: off\n" {
		t.Errorf("rpower stat = %q", got)
	}
	if got := c.ok("rpower", "n1", "on"); got != "n1: on\n" {
		t.Errorf("rpower n1 on = %q", got)
	}
	if sims.List[0].Power() != "1" || sims.List[1].Power() == "1" {
		t.Errorf("simulator power after rpower n1 on: %q %q, want 1 and off", sims.List[0].Power(), sims.List[1].Power())
	}
	if got := c.ok("rsetboot", "n2", "net"); got != "n2: Network\n" {
		t.Errorf("rsetboot n2 net = %q", got)
	}
	if b := sims.List[1].Boot(); b != "pxe" {
		t.Errorf("simulator boot device = %q, want pxe", b)
	}
	c.ok("updatenodestat", "n1", "booted")
	if got := c.ok("nodestat", "compute", "-p"); !strings.HasPrefix(got, "n1: booted(on)\nn2: unknown(off)") {
		t.Errorf("nodestat -p = %q", got)
	}
	// A wrong password: a per-node error, exit code 1, and the password never printed.
	c.ok("chtab", "node=n2", "ipmi.password=wrong-secret-xyz")
	out, errs, code := c.run("", "provctl", "rpower", "compute", "stat")
	if code == 0 || !strings.Contains(errs, "n2: Error:") || !strings.Contains(out, "n1: on") {
		t.Errorf("rpower with a wrong password: exit %d, out %q, err %q", code, out, errs)
	}
	if strings.Contains(out+errs, "wrong-secret-xyz") {
		t.Errorf("the password appears in provctl's output: %q %q", out, errs)
	}
}
