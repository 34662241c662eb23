//go:build integration

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/provkit/provkit/internal/testenv"
)

// nodestatOn reads a node's state from the store at dsn with provctl in this process.
func nodestatOn(t *testing.T, dsn string) func(string) string {
	return func(node string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"provctl", "--db", dsn, "nodestat", node}, strings.NewReader(""), &out, &errb); code != 0 {
			t.Fatalf("nodestat %s: %s", node, errb.String())
		}
		return strings.TrimSpace(out.String())
	}
}

// TestNetnsPostgresAutoFailover runs `provctl hafailover --auto` on two management nodes
// sharing a PostgreSQL store (the lock and provd's tables). The client is served DHCP and
// HTTP through the VIP by the active node before and after: killing the active node's
// process (SIGKILL: no clean-up) makes the standby take over; the killed node, restarted,
// undoes what it left and becomes the standby; stopping the active node (SIGTERM) hands over
// at once. Status reports posted through the VIP during all this are all in the store.
func TestNetnsPostgresAutoFailover(t *testing.T) {
	testenv.Require(t, append(haNeeds(), testenv.Env("PROVKIT_TEST_PG", "a PostgreSQL server (scripts/pg-test.sh start DIR)"))...)
	lab := newHALab(t, 10)
	dsn, hostport := freshPostgres(t)
	lab.defineCluster(dsn, 8)
	for i := range lab.mn {
		newPGProxy(t, lab.mn[i], hostport)
	}
	ndsn := nodeDSN(dsn)
	for i := range lab.mn {
		out := lab.pcOK(i, append([]string{"hasetup", "--db", ndsn, "-n", "mn.cluster.test"}, lab.haArgs(i)...)...)
		if !strings.Contains(out, "Shared data ready") {
			t.Errorf("hasetup on %s:\n%s", lab.nodes[i].name, out)
		}
	}
	hostsStandby := [2]string{readFile(t, lab.nodes[0].hosts), readFile(t, lab.nodes[1].hosts)}

	mn1 := lab.startAuto(0, ndsn)
	mn1.wait("active", 1, time.Minute)
	mn2 := lab.startAuto(1, ndsn)
	mn2.wait("standby", 1, time.Minute)
	lab.checkServed(0)
	if got := lab.linkState(0); !slices.Equal(got, []string{"tftpboot:link", "tftpboot.provkit-standby:dir", "install:link", "install.provkit-standby:dir"}) {
		t.Errorf("mn1's local paths while active: %v", got)
	}
	if out, _ := hostCmd("nsenter", "-t", fmt.Sprint(mn1.cmd.Process.Pid), "-u", "hostname"); out != "mn.cluster.test" {
		t.Errorf("mn1's host name while active = %q, want the VIP's", out)
	}
	if out := lab.pcOK(1, "hafailover", "--status", "--db", ndsn); !strings.Contains(out, "held by mn1/") {
		t.Errorf("hafailover --status = %q", out)
	}

	writers := lab.startWriters()
	eventually(t, time.Minute, "status reports are acknowledged", func() bool { return writers.total() > 20 })

	// The active node dies.
	killed := time.Now()
	mn1.kill()
	_, active2 := mn2.wait("active", 1, time.Minute)
	lab.checkServed(1)
	if p := procs(t, lab.mn[0]); len(p) > 0 {
		t.Errorf("processes left on the dead node mn1: %v", p)
	}
	before := writers.total()
	eventually(t, time.Minute, "reports are acknowledged by mn2", func() bool { return writers.total() > before+20 })

	// The dead node comes back: it cleans up after its predecessor and waits.
	mn1 = lab.startAuto(0, ndsn)
	mn1.wait("recovered", 1, time.Minute)
	mn1.wait("standby", 1, time.Minute)
	if got := lab.linkState(0); !slices.Equal(got, []string{"tftpboot:dir", "install:dir"}) {
		t.Errorf("mn1's local paths after its restart: %v, want its own directories back", got)
	}

	// A clean stop hands over at once: mn1 takes the lock after mn2 released it.
	mn2.term()
	_, released := mn2.wait("released", 1, time.Second)
	_, acquired := mn1.wait("acquired", 1, time.Minute)
	mn1.wait("active", 1, time.Minute)
	if acquired.Before(released) {
		t.Errorf("mn1 acquired at %v, before mn2 released at %v", acquired, released)
	}
	lab.checkServed(0)
	writers.halt()
	writers.verify(t, nodestatOn(t, dsn))

	mn1.term()
	for i := range lab.mn {
		if lab.vipOn(i) {
			t.Errorf("%s keeps the VIP after stopping", lab.nodes[i].name)
		}
		if p := procs(t, lab.mn[i]); len(p) > 0 {
			t.Errorf("processes left on %s: %v", lab.nodes[i].name, p)
		}
		if got := lab.linkState(i); !slices.Equal(got, []string{"tftpboot:dir", "install:dir"}) {
			t.Errorf("%s's local paths after stopping: %v", lab.nodes[i].name, got)
		}
		if got := readFile(t, lab.nodes[i].hosts); got != hostsStandby[i] {
			t.Errorf("%s's hosts file after stopping:\n%s", lab.nodes[i].name, cmp.Diff(hostsStandby[i], got))
		}
	}
	t.Logf("mn2 active %s after mn1 was killed (lease 2 s)", active2.Sub(killed).Round(time.Millisecond))
}

// TestNetnsPostgresFenceOrdering cuts the active node off from the store (its packets to
// PostgreSQL vanish; its link to the clients stays up). It must remove the VIP and stop its
// services before its lease expires, and the standby gets the lock only after: the order is
// read from the nodes' own timestamps and from the store's record of the grant, on one clock.
func TestNetnsPostgresFenceOrdering(t *testing.T) {
	testenv.Require(t, append(haNeeds(), testenv.Env("PROVKIT_TEST_PG", "a PostgreSQL server (scripts/pg-test.sh start DIR)"))...)
	lab := newHALab(t, 20)
	dsn, hostport := freshPostgres(t)
	lab.defineCluster(dsn, 0)
	proxies := [2]*pgProxy{newPGProxy(t, lab.mn[0], hostport), newPGProxy(t, lab.mn[1], hostport)}
	ndsn := nodeDSN(dsn)
	for i := range lab.mn {
		lab.pcOK(i, append([]string{"hasetup", "--db", ndsn, "-n", "mn.cluster.test"}, lab.haArgs(i)...)...)
	}
	mn1 := lab.startAuto(0, ndsn)
	mn1.wait("active", 1, time.Minute)
	mn2 := lab.startAuto(1, ndsn)
	mn2.wait("standby", 1, time.Minute)
	lab.checkServed(0)

	proxies[0].freeze()
	_, lost := mn1.wait("lost", 1, time.Minute)
	_, fenced := mn1.wait("fenced", 1, time.Minute)
	_, acquired := mn2.wait("acquired", 1, time.Minute)
	_, active := mn2.wait("active", 1, time.Minute)
	var granted time.Time
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if err := c.QueryRow(ctx, "SELECT acquired FROM provkit_ha_lease WHERE name = 'provkit'").Scan(&granted); err != nil {
		t.Fatal(err)
	}
	order := []time.Time{lost, fenced, granted, acquired, active}
	if !slices.IsSortedFunc(order, func(a, b time.Time) int { return a.Compare(b) }) {
		t.Errorf("mn1 lost the lease %v, mn1 fenced %v, the store granted mn2 %v, mn2 acquired %v, mn2 active %v: want that order",
			lost.Format(time.StampMicro), fenced.Format(time.StampMicro), granted.Format(time.StampMicro), acquired.Format(time.StampMicro), active.Format(time.StampMicro))
	}
	t.Logf("mn1 gave its lease up at +0 (no renewal for half the lease), fenced +%s; the store granted mn2 +%s; mn2 active +%s",
		fenced.Sub(lost).Round(time.Millisecond), granted.Sub(lost).Round(time.Millisecond), active.Sub(lost).Round(time.Millisecond))
	if p := procs(t, lab.mn[0]); len(p) != 1 || !strings.HasPrefix(p[0], fmt.Sprint(mn1.cmd.Process.Pid)+" ") {
		t.Errorf("processes on the fenced node mn1: %v, want only its HA process (pid %d)", p, mn1.cmd.Process.Pid)
	}
	lab.checkServed(1)

	// Back in touch, mn1 stays a standby.
	proxies[0].thaw()
	mn1.wait("standby", 1, time.Minute)
	mn2.term()
	mn1.wait("active", 1, time.Minute) // its first activation; the second comes now
	mn1.wait("active", 2, time.Minute)
	mn1.term()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hostCmd runs a command in the host namespace and returns its trimmed output.
func hostCmd(name string, args ...string) (string, error) {
	out, err := osexec.Command(name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestNetnsVIPInUse: when another host answers for the VIP, activation is refused with a
// clear error, and nothing changes on the node.
func TestNetnsVIPInUse(t *testing.T) {
	testenv.Require(t, haNeeds()...)
	lab := newHALab(t, 30)
	lab.nodes[0].links = append(lab.nodes[0].links, filepath.Join(lab.nodes[0].dir, "store")+"="+filepath.Join(lab.shared, "store"))
	lab.pcOK(0, append([]string{"hasetup", "--db", filepath.Join(lab.nodes[0].dir, "store", "provkit.db"), "-n", "mn"}, lab.haArgs(0)...)...)
	hosts := readFile(t, lab.nodes[0].hosts)
	lab.cl.MustIP(t, "addr", "add", lab.vip.String()+"/24", "dev", "eth0")

	out, errs, code := lab.pc(0, append([]string{"hafailover", "-a", "--db", filepath.Join(lab.nodes[0].dir, "store", "provkit.db"),
		"--service", "sleeper=exec:/bin/sleep 1000"}, lab.haArgs(0)...)...)
	if code == 0 {
		t.Fatalf("hafailover -a with the VIP in use: exit 0\n%s", out)
	}
	mac := strings.ToLower(lab.clMAC)
	if !strings.Contains(errs, "virtual IP "+lab.vip.String()+" is in use: "+mac+" answered an ARP probe") || !strings.Contains(errs, "nothing was changed") {
		t.Errorf("error output:\n%s\nwant the VIP, the MAC that answered (%s), and that nothing changed", errs, mac)
	}
	if lab.vipOn(0) {
		t.Error("mn1 took the VIP")
	}
	if got := lab.linkState(0); !slices.Equal(got, []string{"tftpboot:dir", "install:dir"}) {
		t.Errorf("mn1's local paths: %v", got)
	}
	if p := procs(t, lab.mn[0]); len(p) > 0 {
		t.Errorf("processes started on mn1: %v", p)
	}
	if got := readFile(t, lab.nodes[0].hosts); got != hosts {
		t.Errorf("hosts file changed: %s", cmp.Diff(hosts, got))
	}
	if _, err := os.Stat(filepath.Join(lab.nodes[0].state, haStateFile)); !os.IsNotExist(err) {
		t.Errorf("activation state left: %v", err)
	}
}

// TestNetnsActivateUndo: a service that fails to start makes hafailover -a undo every step:
// no VIP, no links, no services, the hosts file as it was.
func TestNetnsActivateUndo(t *testing.T) {
	testenv.Require(t, haNeeds()...)
	lab := newHALab(t, 40)
	db := filepath.Join(lab.nodes[0].dir, "store", "provkit.db")
	lab.nodes[0].links = append(lab.nodes[0].links, filepath.Join(lab.nodes[0].dir, "store")+"="+filepath.Join(lab.shared, "store"))
	lab.pcOK(0, append([]string{"hasetup", "--db", db, "-n", "mn"}, lab.haArgs(0)...)...)
	lab.defineCluster(filepath.Join(lab.shared, "store", "provkit.db"), 0)
	hosts := readFile(t, lab.nodes[0].hosts)
	args := append([]string{"hafailover", "-a", "--db", db, "--retry-delay", "100ms",
		"--service", lab.provdService(db),
		"--service", "keeper=exec:/bin/sleep 1000",
		"--service", "broken=exec:/bin/false"}, lab.haArgs(0)...)
	out, errs, code := lab.pc(0, args...)
	if code == 0 {
		t.Fatalf("hafailover -a with a broken service: exit 0\n%s", out)
	}
	for _, want := range []string{"ok      service provd", "ok      service keeper", "retry   service broken", "(attempt 4/5)",
		"undone  service keeper", "undone  service provd", "undone  link " + lab.nodes[0].locals[0], "undone  hostname", "undone  vip"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errs, "ha: activate: service broken: failed 5 attempts") || !strings.Contains(errs, "exit status 1") {
		t.Errorf("error output:\n%s", errs)
	}
	if lab.vipOn(0) {
		t.Error("the VIP is left on mn1")
	}
	if got := lab.linkState(0); !slices.Equal(got, []string{"tftpboot:dir", "install:dir"}) {
		t.Errorf("mn1's local paths: %v", got)
	}
	if p := procs(t, lab.mn[0]); len(p) > 0 {
		t.Errorf("services left on mn1: %v", p)
	}
	if got := readFile(t, lab.nodes[0].hosts); got != hosts {
		t.Errorf("hosts file: %s", cmp.Diff(hosts, got))
	}
	if entries, _ := os.ReadDir(lab.nodes[0].state); len(entries) > 0 {
		var names []string
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".log") {
				names = append(names, e.Name())
			}
		}
		if len(names) > 0 {
			t.Errorf("state left: %v", names)
		}
	}
}
