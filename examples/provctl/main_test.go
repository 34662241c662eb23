package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// cli runs provctl in-process against one store.
type cli struct {
	t   *testing.T
	db  string
	dir string
}

func newCLI(t *testing.T) *cli {
	dir := t.TempDir()
	return &cli{t: t, db: filepath.Join(dir, "provkit.db"), dir: dir}
}

// run executes argv (argv[0] is the program name) with stdin and returns stdout, stderr
// and the exit code.
func (c *cli) run(stdin string, argv ...string) (string, string, int) {
	c.t.Helper()
	var out, errb bytes.Buffer
	args := append([]string{argv[0], "--db", c.db}, argv[1:]...)
	if filepath.Base(argv[0]) != "provctl" {
		// A verb-named link: put --db after the verb's own arguments.
		args = append(append([]string{argv[0]}, argv[1:]...), "--db", c.db)
	}
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

// ok runs a provctl verb and fails the test unless it exits 0.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	out, errs, code := c.run("", append([]string{"provctl"}, args...)...)
	if code != 0 {
		c.t.Fatalf("provctl %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

// fails runs a verb that must fail and returns its stderr.
func (c *cli) fails(args ...string) string {
	c.t.Helper()
	_, errs, code := c.run("", append([]string{"provctl"}, args...)...)
	if code == 0 {
		c.t.Fatalf("provctl %s: exit 0, want a failure", strings.Join(args, " "))
	}
	return errs
}

func TestTableCommands(t *testing.T) {
	c := newCLI(t)
	c.ok("nodeadd", "node[01-03]", "groups=compute,all")
	if got := c.ok("nodels"); got != "node01\nnode02\nnode03\n" {
		t.Errorf("nodels = %q", got)
	}
	c.ok("chtab", "node=compute", `hosts.ip=|node(\d+)|10.0.0.($1+0)|`, "nodetype.os=debian12")
	c.ok("chtab", "key=domain", "site.value=cluster.com")
	if got, want := c.ok("tabdump", "hosts"), "#node,ip,hostnames,otherinterfaces,comments,disable\n\"compute\",\"|node(\\d+)|10.0.0.($1+0)|\",,,,\n"; got != want {
		t.Errorf("tabdump hosts:\n got %q\nwant %q", got, want)
	}
	if got, want := c.ok("tabdump", "nodelist"), "#node,groups,status,statustime,appstatus,appstatustime,primarysn,hidden,updatestatus,updatestatustime,zonename,comments,disable\n\"node01\",\"compute,all\",,,,,,,,,,,\n\"node02\",\"compute,all\",,,,,,,,,,,\n\"node03\",\"compute,all\",,,,,,,,,,,\n"; got != want {
		t.Errorf("tabdump nodelist:\n got %q\nwant %q", got, want)
	}
	if got := c.ok("lsdef", "node02", "-i", "ip,os"); got != "Object name: node02\n    ip=10.0.0.2\n    os=debian12\n" {
		t.Errorf("lsdef node02 -i ip,os = %q", got)
	}
	if got := c.ok("nodels", "compute", "nodetype.os"); got != "node01: debian12\nnode02: debian12\nnode03: debian12\n" {
		t.Errorf("nodels compute nodetype.os = %q", got)
	}
	if got := c.ok("nodels", "node01,node03", "groups", "hosts.ip"); got != "node01: nodelist.groups: compute,all\nnode01: hosts.ip: 10.0.0.1\nnode03: nodelist.groups: compute,all\nnode03: hosts.ip: 10.0.0.3\n" {
		t.Errorf("nodels with two attributes = %q", got)
	}
	// chtab += merges without duplicates.
	c.ok("chtab", "key=rsh_test", "site.value=/opt/xcat/bin/scp")
	c.ok("chtab", "key=rsh_test", "site.value+=/opt/xcat/bin/rcp,/opt/xcat/bin/scp")
	if got := c.ok("tabdump", "-w", "key==rsh_test", "site"); !strings.Contains(got, `"rsh_test","/opt/xcat/bin/scp,/opt/xcat/bin/rcp",,`) {
		t.Errorf("chtab += : %q", got)
	}
	// Errors name the input and change nothing.
	if e := c.fails("nodels", "node01,nonexist"); !strings.Contains(e, "Invalid nodes and/or groups in noderange: nonexist") {
		t.Errorf("nodels nonexist: %q", e)
	}
	if e := c.fails("chtab", "error=error", "site.comments=error"); !strings.Contains(e, `No column "error" in table "site"`) {
		t.Errorf("chtab bad key: %q", e)
	}
	if e := c.fails("chtab", "-d", "key=abc123", "nonexist_table1", "nonexist_table2"); !strings.Contains(e, "nonexist_table1") || !strings.Contains(e, "nonexist_table2") {
		t.Errorf("chtab -d on missing tables: %q", e)
	}
	// nodech: ,= appends and ^= removes list items.
	c.ok("nodech", "node01", "groups,=gpu", "nodetype.arch=x86_64")
	c.ok("nodech", "node01", "groups^=compute")
	if got := c.ok("nodels", "node01", "groups"); got != "node01: all,gpu\n" {
		t.Errorf("after nodech: %q", got)
	}
	c.ok("noderm", "node03")
	if got := c.ok("nodels"); got != "node01\nnode02\n" {
		t.Errorf("after noderm: %q", got)
	}
	// A link named after a verb behaves like xCAT's command.
	out, errs, code := c.run("", "/usr/local/bin/nodels", "compute")
	if code != 0 || out != "node02\n" {
		t.Errorf("argv[0]=nodels: %q %q %d", out, errs, code)
	}
}

func TestTabdumpRestoreRoundTrip(t *testing.T) {
	c := newCLI(t)
	c.ok("nodeadd", "n[1-3]", "groups=all")
	c.ok("chtab", "key=motd", `site.value=say "hi", then
a second line`, "site.comments=quoted, multi-line")
	dump := c.ok("tabdump", "site")
	f := filepath.Join(c.dir, "site.csv")
	if err := os.WriteFile(f, []byte(dump), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok("chtab", "key=domain", "site.value=changed.example")
	c.ok("chtab", "key=extra", "site.value=1")
	c.ok("tabrestore", f)
	if got := c.ok("tabdump", "site"); got != dump {
		t.Errorf("tabdump after tabrestore differs:\n%s", cmp.Diff(dump, got))
	}
	// A bad line aborts the whole restore and leaves the table as it was.
	bad := filepath.Join(c.dir, "nodelist.csv")
	if err := os.WriteFile(bad, []byte("#node,groups\n\"x1\",\"all\"\n\"x2\",\"all\"garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if e := c.fails("tabrestore", bad); !strings.Contains(e, "line 3") {
		t.Errorf("bad CSV error does not name line 3: %q", e)
	}
	if got := c.ok("nodels"); got != "n1\nn2\nn3\n" {
		t.Errorf("nodelist after a failed tabrestore = %q", got)
	}
	unknown := filepath.Join(c.dir, "hosts.csv")
	if err := os.WriteFile(unknown, []byte("#node,ipaddr\n\"n1\",\"10.0.0.1\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if e := c.fails("tabrestore", unknown); !strings.Contains(e, `"ipaddr"`) {
		t.Errorf("unknown column error does not name it: %q", e)
	}
}

func TestDefCommands(t *testing.T) {
	c := newCLI(t)
	if got := c.ok("mkdef", "-t", "node", "-o", "nrtestnode10+3", "groups=all", "mgt=ipmi", "bmc=10.1.0.1"); got != "4 object definitions have been created or modified.\n" {
		t.Errorf("mkdef output = %q", got)
	}
	if got := c.ok("lsdef"); got != "nrtestnode10  (node)\nnrtestnode11  (node)\nnrtestnode12  (node)\nnrtestnode13  (node)\n" {
		t.Errorf("lsdef = %q", got)
	}
	if e := c.fails("mkdef", "nrtestnode10", "groups=all"); !strings.Contains(e, "already exists") {
		t.Errorf("mkdef existing: %q", e)
	}
	if got := c.ok("chdef", "newnode", "groups=all"); !strings.Contains(got, "New object definitions 'newnode' have been created.") {
		t.Errorf("chdef new: %q", got)
	}
	want := "Object name: nrtestnode10\n    bmc=10.1.0.1\n    groups=all\n    mgt=ipmi\n    postbootscripts=otherpkgs\n    postscripts=syslog,remoteshell,syncfiles\n"
	if got := c.ok("lsdef", "nrtestnode10"); got != want {
		t.Errorf("lsdef nrtestnode10:\n%s", cmp.Diff(want, got))
	}
	// lsdef -z | mkdef -z of a renamed copy gives an identical stanza.
	stanza := c.ok("lsdef", "-z", "nrtestnode11")
	renamed := strings.Replace(stanza, "nrtestnode11:", "copynode:", 1)
	if _, e, code := c.run(renamed, "provctl", "mkdef", "-z"); code != 0 {
		t.Fatalf("mkdef -z: %s", e)
	}
	if got := c.ok("lsdef", "-z", "copynode"); got != renamed {
		t.Errorf("stanza of the copy:\n%s", cmp.Diff(renamed, got))
	}
	c.ok("mkdef", "-t", "network", "-o", "mgt", "net=10.0.0.0", "mask=255.255.255.0", "mgtifname=eth0")
	if got := c.ok("lsdef", "-t", "network"); got != "mgt  (network)\n" {
		t.Errorf("lsdef -t network = %q", got)
	}
	if got := c.ok("lsdef", "-t", "site"); got != "clustersite  (site)\n" {
		t.Errorf("lsdef -t site = %q", got)
	}
	if e := c.fails("lsdef", "-t", "nosuchtype"); !strings.Contains(e, "not a valid") {
		t.Errorf("lsdef -t nosuchtype: %q", e)
	}
	if got := c.ok("lsdef", "-w", "mgt==ipmi", "-s"); got != "copynode  (node)\nnrtestnode10  (node)\nnrtestnode11  (node)\nnrtestnode12  (node)\nnrtestnode13  (node)\n" {
		t.Errorf("lsdef -w mgt==ipmi -s = %q", got)
	}
	c.ok("rmdef", "nrtestnode1[0-1]")
	if got := c.ok("nodels"); got != "copynode\nnewnode\nnrtestnode12\nnrtestnode13\n" {
		t.Errorf("after rmdef: %q", got)
	}
}

func TestMakehostsCommand(t *testing.T) {
	c := newCLI(t)
	c.ok("chtab", "key=domain", "site.value=cluster.com")
	c.ok("nodeadd", "node[01-02]", "groups=compute")
	c.ok("chtab", "node=compute", `hosts.ip=|node(\d+)|10.0.0.($1+0)|`)
	hosts := filepath.Join(c.dir, "hosts")
	c.ok("makehosts", "-n", "--file", hosts)
	b, _ := os.ReadFile(hosts)
	if want := "127.0.0.1 localhost\n10.0.0.1 node01 node01.cluster.com \n10.0.0.2 node02 node02.cluster.com \n"; string(b) != want {
		t.Errorf("makehosts -n:\n%s", cmp.Diff(want, string(b)))
	}
	c.ok("makehosts", "-d", "node01", "--file", hosts)
	b, _ = os.ReadFile(hosts)
	if want := "127.0.0.1 localhost\n10.0.0.2 node02 node02.cluster.com \n"; string(b) != want {
		t.Errorf("makehosts -d node01:\n%s", cmp.Diff(want, string(b)))
	}
	if _, err := os.Stat(hosts + ".xcatbak"); err != nil {
		t.Errorf("no backup: %v", err)
	}
}

// TestKilledTabrestore kills a provctl process in the middle of a large tabrestore and
// checks that the table is exactly what it was before.
func TestKilledTabrestore(t *testing.T) {
	c := newCLI(t)
	c.ok("nodeadd", "keep[1-5]", "groups=all")
	before := c.ok("tabdump", "nodelist")
	var b bytes.Buffer
	b.WriteString("#node,groups,comments\n")
	for i := 0; i < 300000; i++ {
		fmt.Fprintf(&b, "\"big%06d\",\"compute,all\",\"row %d of a restore that will be killed\"\n", i, i)
	}
	f := filepath.Join(c.dir, "nodelist.csv")
	if err := os.WriteFile(f, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "tabrestore", f, "--db", c.db)
	cmd.Env = append(os.Environ(), "PROVCTL_TEST_MAIN=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once the write-ahead log shows the transaction writing.
	wal := c.db + "-wal"
	deadline := time.Now().Add(60 * time.Second)
	killed := false
	for time.Now().Before(deadline) {
		if st, err := os.Stat(wal); err == nil && st.Size() > 1<<20 {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			killed = true
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	err := cmd.Wait()
	if !killed {
		t.Fatalf("the restore never reached 1 MiB of WAL before it ended (%v)", err)
	}
	if got := c.ok("tabdump", "nodelist"); got != before {
		t.Errorf("nodelist after a killed tabrestore:\n%s", cmp.Diff(before, got))
	}
}

func TestMain(m *testing.M) {
	if os.Getenv("PROVCTL_TEST_MAIN") == "1" {
		os.Exit(run(context.Background(), append([]string{"provctl"}, os.Args[1:]...), os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestMakedhcp(t *testing.T) {
	c := newCLI(t)
	c.ok("chtab", "key=domain", "site.value=cluster.com")
	c.ok("mkdef", "-t", "network", "-o", "mgt", "net=10.0.0.0", "mask=255.255.255.0", "mgtifname=eth0", "tftpserver=10.0.0.1", "dynamicrange=10.0.0.200-10.0.0.250")
	c.ok("nodeadd", "node[01-03]", "groups=compute,all", "noderes.netboot=xnba")
	c.ok("chtab", "node=compute", `hosts.ip=|node(\d+)|10.0.0.($1+0)|`, "noderes.tftpserver=10.0.0.1")
	c.ok("chtab", "node=node01", "mac.mac=52:54:00:00:00:01")
	c.ok("chtab", "node=node02", "mac.mac=52:54:00:00:00:02!node02-alt|52:54:00:00:00:12")
	c.ok("chtab", "node=node03", "mac.mac=11:22:33")
	if got := c.ok("makedhcp", "node01,node02", "-q"); got != "node01: ip-address = 10.0.0.1, hardware-address = 52:54:00:00:00:01\nnode02: ip-address = 10.0.0.2, hardware-address = 52:54:00:00:00:02\nnode02: ip-address = 10.0.0.2, hardware-address = 52:54:00:00:00:12\n" {
		t.Errorf("makedhcp -q = %q", got)
	}
	if e := c.fails("makedhcp", "node03"); !strings.Contains(e, `node03: Error: MAC address "11:22:33" is not valid`) {
		t.Errorf("makedhcp with a short MAC: %q", e)
	}
	conf := filepath.Join(c.dir, "dhcpd.conf")
	c.ok("makedhcp", "-n", "--isc-file", conf)
	b, _ := os.ReadFile(conf)
	if !strings.Contains(string(b), "subnet 10.0.0.0 netmask 255.255.255.0 {") || !strings.Contains(string(b), "range dynamic-bootp 10.0.0.200 10.0.0.250;") || strings.Contains(string(b), "host node01") {
		t.Errorf("makedhcp -n wrote:\n%s", b)
	}
	c.ok("makedhcp", "node01,node02", "--isc-file", conf)
	b, _ = os.ReadFile(conf)
	for _, want := range []string{"host node01 {", "hardware ethernet 52:54:00:00:00:01;", "fixed-address 10.0.0.1;", "host node02-alt {"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("after makedhcp node01,node02 the file lacks %q:\n%s", want, b)
		}
	}
	c.ok("makedhcp", "node01", "-d", "--isc-file", conf)
	b, _ = os.ReadFile(conf)
	if strings.Contains(string(b), "host node01 {") || !strings.Contains(string(b), "node02") {
		t.Errorf("after makedhcp -d node01:\n%s", b)
	}
}
