package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTabrestoreXCATDump restores an xCAT-style database dump (one tabdump file per table,
// as dumpxCATdb writes them) that uses the hardware-control and virtualization tables
// (ppc, ppchcp, vm, iscsi, zvm, mp, mpa), then reads it back with tabdump and lsdef.
func TestTabrestoreXCATDump(t *testing.T) {
	c := newCLI(t)
	files, err := filepath.Glob(filepath.Join("testdata", "xcatdump", "*.csv"))
	if err != nil || len(files) < 10 {
		t.Fatalf("fixture files: %v, %v", files, err)
	}
	for _, f := range files {
		c.ok("tabrestore", f)
	}
	// Every table dumps back byte for byte.
	for _, f := range files {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		table := strings.TrimSuffix(filepath.Base(f), ".csv")
		if diff := cmp.Diff(string(want), c.ok("tabdump", table)); diff != "" {
			t.Errorf("tabdump %s after tabrestore (-file +dump):\n%s", table, diff)
		}
	}
	tables := strings.Fields(c.ok("tabdump"))
	for _, want := range []string{"iscsi", "mp", "mpa", "ppc", "ppchcp", "vm", "zvm", "hypervisor", "prodkey", "websrv"} {
		if !strings.Contains(" "+strings.Join(tables, " ")+" ", " "+want+" ") {
			t.Errorf("tabdump does not list table %s", want)
		}
	}

	cases := []struct{ args, want string }{
		// An LPAR: hcp, id, pprofile, parent and hwtype come from ppc (mgt=hmc, inherited).
		{"lpar1 -i hcp,hwtype,id,mgt,parent,pprofile,status",
			"Object name: lpar1\n    hcp=hmc1\n    hwtype=lpar\n    id=1\n    mgt=hmc\n    parent=cec1\n    pprofile=lpar1_prof\n    status=booted\n"},
		// The HMC: its credentials live in ppchcp, keyed by hcp (nodetype=hmc).
		{"hmc1 -i hwtype,password,username",
			"Object name: hmc1\n    hwtype=hmc\n    password=abc123\n    username=hscroot\n"},
		// A blade: mpa, and id and hwtype from mp for mgt=blade; serial settings from its group.
		{"blade1 -i hwtype,id,mpa,serialport,serialspeed",
			"Object name: blade1\n    hwtype=blade\n    id=3\n    mpa=mm1\n    serialport=1\n    serialspeed=19200\n"},
		// The management module: credentials and slots from mpa (nodetype=mm).
		{"mm1 -i displayname,password,slots,username",
			"Object name: mm1\n    displayname=chassis 1\n    password=PASSW0RD\n    slots=14\n    username=USERID\n"},
		// A z/VM guest: hcp and userid from zvm for mgt=zvm.
		{"zlinux1 -i hcp,hwtype,userid",
			"Object name: zlinux1\n    hcp=zhcp.example.org\n    hwtype=vm\n    userid=LINUX1\n"},
		// A KVM guest booting from iSCSI.
		{"vm1 -i iscsipassword,iscsiserver,iscsitarget,vmcpus,vmhost,vmmemory,vmnics,vmothersetting,vmstorage",
			"Object name: vm1\n    iscsipassword=s3cret, with comma\n    iscsiserver=10.90.0.5\n    iscsitarget=iqn.2026-02.org.example:vm1\n" +
				"    vmcpus=2\n    vmhost=kvmhost1\n    vmmemory=4096\n    vmnics=br0\n    vmothersetting=vcpupin:'0-1';cpumode:host-passthrough\n" +
				"    vmstorage=dir:///var/lib/libvirt/images\n"},
	}
	for _, tc := range cases {
		if got := c.ok(append([]string{"lsdef"}, strings.Fields(tc.args)...)...); got != tc.want {
			t.Errorf("lsdef %s:\n%s", tc.args, cmp.Diff(tc.want, got))
		}
	}
	// nodels reads the new tables' columns too, with group inheritance.
	if got := c.ok("nodels", "lpar", "ppc.hcp"); got != "lpar1: hmc1\nlpar2: hmc1\n" {
		t.Errorf("nodels lpar ppc.hcp = %q", got)
	}
	// chdef writes them: pprofile goes to ppc for mgt=hmc, and is refused for mgt=kvm.
	c.ok("chdef", "lpar2", "pprofile=big")
	if got := c.ok("tabdump", "-w", "node==lpar2", "ppc"); got != "#node,hcp,id,pprofile,parent,nodetype,supernode,sfp,comments,disable\n\"lpar2\",\"hmc1\",\"2\",\"big\",\"cec1\",\"lpar\",,,\"migrated from p7\",\n" {
		t.Errorf("ppc lpar2 after chdef pprofile=big: %q", got)
	}
	if e := c.fails("chdef", "vm1", "pprofile=big"); !strings.Contains(e, "pprofile") {
		t.Errorf("chdef vm1 pprofile (mgt=kvm): %q", e)
	}
}
