//go:build integration

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/provkit/provkit/ha/hatest"
	"github.com/provkit/provkit/internal/testenv"
)

// TestNetnsHA runs the management-node failover scenarios in network namespaces: two
// management nodes and a client on one bridge, with provctl and provd built once for all.
func TestNetnsHA(t *testing.T) {
	testenv.Require(t, haNeeds()...)
	bins := &haBins{dir: t.TempDir()}
	if err := os.Chmod(bins.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bins.pg = hatest.Postgres(t)
	t.Run("VIPInUse", func(t *testing.T) { testHAVIPInUse(t, bins) })
	t.Run("ActivateUndo", func(t *testing.T) { testHAActivateUndo(t, bins) })
	t.Run("ManualFailover", func(t *testing.T) { testHAManualFailover(t, bins) })
	t.Run("PostgresAutoFailover", func(t *testing.T) { testHAPostgresAutoFailover(t, bins) })
	t.Run("PostgresFenceOrdering", func(t *testing.T) { testHAPostgresFenceOrdering(t, bins) })
}

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

// testHAPostgresAutoFailover runs `provctl hafailover --auto` on two management nodes
// sharing a PostgreSQL store (the lock and provd's tables). The client is served DHCP and
// HTTP through the VIP by the active node before and after: killing the active node's
// process (SIGKILL: no clean-up) makes the standby take over; the killed node, restarted,
// undoes what it left and becomes the standby; stopping the active node (SIGTERM) hands over
// at once. Status reports posted through the VIP during all this are all in the store.
func testHAPostgresAutoFailover(t *testing.T, bins *haBins) {
	lab := newHALab(t, bins, 10)
	dsn, hostport := freshPostgres(t, bins)
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

// testHAPostgresFenceOrdering cuts the active node off from the store (its packets to
// PostgreSQL vanish; its link to the clients stays up). It must remove the VIP and stop its
// services before its lease expires, and the standby gets the lock only after: the order is
// read from the nodes' own timestamps and from the store's record of the grant, on one clock.
func testHAPostgresFenceOrdering(t *testing.T, bins *haBins) {
	lab := newHALab(t, bins, 20)
	dsn, hostport := freshPostgres(t, bins)
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

// hostCmd runs a command in the host namespace and returns its trimmed output.
func hostCmd(name string, args ...string) (string, error) {
	out, err := osexec.Command(name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestNetnsVIPInUse: when another host answers for the VIP, activation is refused with a
// clear error, and nothing changes on the node.
func testHAVIPInUse(t *testing.T, bins *haBins) {
	lab := newHALab(t, bins, 30)
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
func testHAActivateUndo(t *testing.T, bins *haBins) {
	lab := newHALab(t, bins, 40)
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

// pgBin finds Debian's PostgreSQL programs.
func pgBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.Sort(dirs)
	if len(dirs) == 0 {
		return ""
	}
	return dirs[len(dirs)-1]
}

func needPostgresBinaries() testenv.Need {
	return func() string {
		if pgBin() == "" {
			return "PostgreSQL's programs in /usr/lib/postgresql/*/bin (package postgresql)"
		}
		return ""
	}
}

// asPostgres returns a command that runs as the postgres user (PostgreSQL refuses root).
func asPostgres(t *testing.T, prog string, args ...string) *osexec.Cmd {
	t.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cmd := osexec.Command(prog, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	cmd.WaitDelay = 30 * time.Second
	return cmd
}

// chownPostgres makes paths belong to the postgres user.
func chownPostgres(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if out, err := osexec.Command("chown", "-R", "postgres:postgres", p).CombinedOutput(); err != nil {
			t.Fatalf("chown %s: %v: %s", p, err, out)
		}
	}
}

// testHAManualFailover is xCAT's manual procedure with a PostgreSQL store kept on the
// shared storage: hasetup on both nodes, `hafailover -a` on mn1 starts the database (postgres
// on the shared data directory, through mn1's link), provd and DNS (dnsmasq) in that order;
// the client gets DHCP, HTTP and DNS answers through the VIP and reports a status; `hafailover
// -d` on mn1 stops them in reverse order; `hafailover -a` on mn2 serves the client the same
// way, and the acknowledged report is in the store.
func testHAManualFailover(t *testing.T, bins *haBins) {
	testenv.Require(t, needPostgresBinaries(), testenv.Program("dnsmasq", "dig"))
	lab := newHALab(t, bins, 50)
	bin := pgBin()
	pgShared := filepath.Join(lab.shared, "postgresql")
	if err := os.MkdirAll(pgShared, 0o755); err != nil {
		t.Fatal(err)
	}
	chownPostgres(t, pgShared)
	initdb := asPostgres(t, filepath.Join(bin, "initdb"), "-D", filepath.Join(pgShared, "data"), "-A", "trust", "-U", "postgres")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	// As xCAT's setup does for the VIP and the nodes' addresses: let the cluster in.
	hba, err := os.OpenFile(filepath.Join(pgShared, "data", "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(hba, "host all all 10.96.0.0/16 trust")
	hba.Close()
	// The admin loads the cluster into the new database once, before HA takes over.
	port := freePort(t)
	pg := asPostgres(t, filepath.Join(bin, "postgres"), "-D", filepath.Join(pgShared, "data"), "-h", "127.0.0.1", "-p", port, "-k", pgShared)
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Process.Kill() })
	adminDSN := "postgres://postgres@127.0.0.1:" + port + "/postgres?sslmode=disable"
	eventually(t, time.Minute, "the admin's postgres answers", func() bool {
		c, err := pgx.Connect(context.Background(), adminDSN)
		if err == nil {
			c.Close(context.Background())
		}
		return err == nil
	})
	lab.defineCluster(adminDSN, 0)
	_ = pg.Process.Signal(os.Interrupt) // fast shutdown
	if err := pg.Wait(); err != nil {
		t.Fatalf("postgres (admin): %v", err)
	}

	vip := lab.vip.String()
	dsn := "postgres://postgres@" + vip + ":5432/postgres?sslmode=disable"
	services := func(i int) []string {
		n := lab.nodes[i]
		sock := filepath.Join(n.dir, "pgsock")
		if err := os.MkdirAll(sock, 0o755); err != nil {
			t.Fatal(err)
		}
		chownPostgres(t, sock)
		return []string{
			"--service", "database=exec:" + filepath.Join(bin, "postgres") + " -D " + filepath.Join(n.dir, "postgresql", "data") +
				" -h " + vip + " -p 5432 -k " + sock + ";user=postgres;stop=INT;health=" + dsn,
			"--service", lab.provdService(dsn),
			"--service", "dns=exec:/usr/sbin/dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces" +
				" --listen-address=" + vip + " --port=53 --address=/mn.cluster.test/" + vip + " --pid-file=" + filepath.Join(n.dir, "dnsmasq.pid") +
				";health=tcp:" + vip + ":53",
		}
	}
	var hostsStandby [2]string
	for i := range lab.nodes {
		lab.nodes[i].links = append(lab.nodes[i].links, filepath.Join(lab.nodes[i].dir, "postgresql")+"="+pgShared)
		lab.nodes[i].locals = append(lab.nodes[i].locals, filepath.Join(lab.nodes[i].dir, "postgresql"))
		lab.pcOK(i, append([]string{"hasetup", "-t", "postgresql", "--db", dsn, "-n", "mn.cluster.test"}, lab.haArgs(i)...)...)
		hostsStandby[i] = readFile(t, lab.nodes[i].hosts)
	}
	activate := func(i int) {
		t.Helper()
		out := lab.pcOK(i, append(append([]string{"hafailover", "-a", "-t", "postgresql", "--db", dsn, "--retry-delay", "200ms"},
			lab.haArgs(i)...), services(i)...)...)
		if !inOrder(out, "ok      probe", "ok      vip", "ok      hostname", "ok      link", "ok      service database", "ok      service provd", "ok      service dns", "This node is the active management node.") {
			t.Errorf("%s: hafailover -a output:\n%s", lab.nodes[i].name, out)
		}
	}
	deactivate := func(i int) {
		t.Helper()
		out := lab.pcOK(i, "hafailover", "-d", "-i", "eth0", "-v", vip, "--state-dir", lab.nodes[i].state)
		if !inOrder(out, "ok      stop dns", "ok      stop provd", "ok      stop database", "ok      unlink", "ok      remove vip", "ok      restore hostname", "standby") {
			t.Errorf("%s: hafailover -d output:\n%s", lab.nodes[i].name, out)
		}
		if lab.vipOn(i) {
			t.Errorf("%s keeps the VIP", lab.nodes[i].name)
		}
		if p := procs(t, lab.mn[i]); len(p) > 0 {
			t.Errorf("processes left on %s: %v", lab.nodes[i].name, p)
		}
		if got := lab.linkState(i); !slices.Equal(got, []string{"tftpboot:dir", "install:dir"}) {
			t.Errorf("%s's local paths: %v", lab.nodes[i].name, got)
		}
		if got := readFile(t, lab.nodes[i].hosts); got != hostsStandby[i] {
			t.Errorf("%s's hosts file: %s", lab.nodes[i].name, cmp.Diff(hostsStandby[i], got))
		}
	}
	dig := func() string {
		t.Helper()
		out, err := lab.cl.Command(context.Background(), "dig", "+short", "+time=2", "+tries=3", "@"+vip, "mn.cluster.test").CombinedOutput()
		if err != nil {
			t.Fatalf("dig: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}

	activate(0)
	lab.checkServed(0)
	if got := dig(); got != vip {
		t.Errorf("DNS through the VIP on mn1: mn.cluster.test = %q, want %s", got, vip)
	}
	resp, err := nsClient(lab.cl, lab.client).Post("http://"+vip+"/api/v1/status", "application/json", strings.NewReader(`{"node":"c1","state":"reported-to-mn1"}`))
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("status report through the VIP: %v %v", resp, err)
	}
	resp.Body.Close()
	deactivate(0)

	activate(1)
	lab.checkServed(1)
	if got := dig(); got != vip {
		t.Errorf("DNS through the VIP on mn2: mn.cluster.test = %q, want %s", got, vip)
	}
	if got := strings.TrimSpace(lab.pcOK(1, "--db", dsn, "nodestat", "c1")); got != "c1: reported-to-mn1" {
		t.Errorf("after the move, nodestat c1 = %q: the acknowledged report is lost", got)
	}
	deactivate(1)
}

// inOrder reports whether s contains each of subs, in this order.
func inOrder(s string, subs ...string) bool {
	for _, sub := range subs {
		i := strings.Index(s, sub)
		if i < 0 {
			return false
		}
		s = s[i+len(sub):]
	}
	return true
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}
