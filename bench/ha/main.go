// Command habench measures management-node failover for bench/ha/run.sh: the time from
// powering off the active management node (its link goes down and every process of it is
// SIGKILLed) to the client's next successful HTTP and DHCP answers through the virtual IP,
// with provkit's automatic mode (provctl hafailover --auto, lease in PostgreSQL) and with
// keepalived (VRRP, provd started and stopped by its notify scripts) on the same namespaces,
// one after the other in the same run.
//
//	habench -provctl bin/provctl -provd bin/provd -n 20
//
// Namespaces (all removed at the end): pkhab-sw (bridge), pkhab-m1 and pkhab-m2 (management
// nodes, 10.96.200.11/.12), pkhab-db (PostgreSQL, 10.96.200.5), pkhab-cl (the client,
// 10.96.201.50). The virtual IP is 10.96.201.1.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/provkit/provkit/internal/netns"
)

const (
	nsSW, nsDB, nsCL = "pkhab-sw", "pkhab-db", "pkhab-cl"
	vip              = "10.96.201.1"
	clientMAC        = "52:54:00:96:c9:50"
	dbAddr           = "10.96.200.5"
)

var nodes = []string{"pkhab-m1", "pkhab-m2"}

type config struct {
	provctl, provd, work string
	n                    int
	systems              []string
	ttl                  time.Duration
	probes               int
	advert               string
}

func main() {
	var c config
	var systems string
	flag.StringVar(&c.provctl, "provctl", "", "provctl program")
	flag.StringVar(&c.provd, "provd", "", "provd program")
	flag.StringVar(&c.work, "work", "", "work directory (default: a new one in /tmp)")
	flag.IntVar(&c.n, "n", 20, "failovers per system")
	flag.StringVar(&systems, "systems", "provkit keepalived", "systems to measure, in order")
	flag.DurationVar(&c.ttl, "ttl", 2*time.Second, "provkit's lease (hafailover --ttl)")
	flag.IntVar(&c.probes, "arp-probes", 3, "provkit's ARP probes before taking the VIP")
	flag.StringVar(&c.advert, "advert", "1", "keepalived's advert_int in seconds (below 1: VRRPv3)")
	flag.Parse()
	c.systems = strings.Fields(systems)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "habench:", err)
		os.Exit(1)
	}
}

// sample is one failover: how long until the client had each answer.
type sample struct{ http, dhcp time.Duration }

func run(ctx context.Context, c config) error {
	if c.provctl == "" || c.provd == "" {
		return errors.New("-provctl and -provd are required")
	}
	for _, p := range []*string{&c.provctl, &c.provd} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	if c.work == "" {
		w, err := os.MkdirTemp("", "provkit-habench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(w)
		c.work = w
	}
	if err := os.MkdirAll(c.work, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(c.work, 0o755); err != nil {
		return err
	}
	lab := &lab{c: c}
	defer lab.teardown()
	if err := lab.setup(ctx); err != nil {
		return err
	}
	results := map[string][]sample{}
	for _, sys := range c.systems {
		var s []sample
		var err error
		switch sys {
		case "provkit":
			s, err = lab.measure(ctx, &provkitStack{lab: lab})
		case "keepalived":
			s, err = lab.measure(ctx, &keepalivedStack{lab: lab})
		default:
			err = fmt.Errorf("unknown system %q", sys)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", sys, err)
		}
		results[sys] = s
	}
	report(c, results)
	return nil
}

// lab is the namespaces, the PostgreSQL server and the shared data.
type lab struct {
	c      config
	pg     *exec.Cmd
	dsn    string
	shared string
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (l *lab) setup(ctx context.Context) error {
	l.teardown() // leftovers of an interrupted run
	for _, ns := range append([]string{nsSW, nsDB, nsCL}, nodes...) {
		if err := ip("netns", "add", ns); err != nil {
			return err
		}
		if err := ip("-n", ns, "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	if err := ip("-n", nsSW, "link", "add", "br0", "type", "bridge"); err != nil {
		return err
	}
	if err := ip("-n", nsSW, "link", "set", "br0", "up"); err != nil {
		return err
	}
	hosts := map[string]string{nsDB: dbAddr + "/24", nodes[0]: "10.96.200.11/24", nodes[1]: "10.96.200.12/24", nsCL: "10.96.201.50/24"}
	for i, ns := range []string{nsDB, nodes[0], nodes[1], nsCL} {
		a, b := fmt.Sprintf("pkhabv%da", i), fmt.Sprintf("pkhabv%db", i)
		for _, args := range [][]string{
			{"link", "add", a, "type", "veth", "peer", "name", b},
			{"link", "set", a, "netns", ns}, {"link", "set", b, "netns", nsSW},
			{"-n", ns, "link", "set", a, "name", "eth0"}, {"-n", nsSW, "link", "set", b, "name", fmt.Sprintf("p%d", i)},
			{"-n", nsSW, "link", "set", fmt.Sprintf("p%d", i), "master", "br0"}, {"-n", nsSW, "link", "set", fmt.Sprintf("p%d", i), "up"},
			{"-n", ns, "addr", "add", hosts[ns], "dev", "eth0"},
		} {
			if err := ip(args...); err != nil {
				return err
			}
		}
		if ns == nsCL {
			if err := ip("-n", ns, "link", "set", "eth0", "address", clientMAC); err != nil {
				return err
			}
		}
		if err := ip("-n", ns, "link", "set", "eth0", "up"); err != nil {
			return err
		}
	}
	if err := l.startPostgres(ctx); err != nil {
		return err
	}
	// The shared data and the cluster: the client as node c1, served by provd.
	l.shared = filepath.Join(l.c.work, "shared")
	if err := os.MkdirAll(filepath.Join(l.shared, "tftpboot"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(l.shared, "install"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(l.shared, "tftpboot", "hello.txt"), []byte("hello\n"), 0o644); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"chtab", "key=tftpdir", "site.value=" + filepath.Join(l.shared, "tftpboot")},
		{"chtab", "key=installdir", "site.value=" + filepath.Join(l.shared, "install")},
		{"chtab", "key=dhcpinterfaces", "site.value=eth0"},
		{"mkdef", "-t", "network", "-o", "clusternet", "net=10.96.201.0", "mask=255.255.255.0", "mgtifname=eth0"},
		{"nodeadd", "c1", "groups=all", "hosts.ip=10.96.201.50", "mac.mac=" + clientMAC},
	} {
		if out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", nodes[0], l.c.provctl, "--db", l.dsn}, args...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("provctl %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// startPostgres runs a PostgreSQL server of its own in the db namespace: the shared store.
func (l *lab) startPostgres(ctx context.Context) error {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	if len(dirs) == 0 {
		return errors.New("no PostgreSQL in /usr/lib/postgresql (package postgresql)")
	}
	slices.Sort(dirs)
	bin := dirs[len(dirs)-1]
	data := filepath.Join(l.c.work, "pg")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cred := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	if err := os.Chown(data, uid, gid); err != nil {
		return err
	}
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
	initdb.SysProcAttr = cred
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, out)
	}
	f, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	fmt.Fprintln(f, "host all all 10.96.0.0/16 trust")
	f.Close()
	log, err := os.Create(filepath.Join(l.c.work, "postgres.log"))
	if err != nil {
		return err
	}
	l.pg = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-h", dbAddr, "-p", "5432", "-k", data, "-c", "max_connections=100")
	l.pg.SysProcAttr = cred
	l.pg.Stdout, l.pg.Stderr = log, log
	// Started from a thread inside the db namespace, postgres lives there (ip netns exec
	// cannot drop to the postgres user).
	if err := (&netns.NS{Name: nsDB}).Do(l.pg.Start); err != nil {
		return err
	}
	l.dsn = "postgres://postgres@" + dbAddr + ":5432/postgres?sslmode=disable"
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command("ip", "netns", "exec", nodes[0], l.c.provctl, "--db", l.dsn, "nodels").CombinedOutput()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("PostgreSQL does not answer: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (l *lab) teardown() {
	if l.pg != nil && l.pg.Process != nil {
		_ = l.pg.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { l.pg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = l.pg.Process.Kill()
		}
		l.pg = nil
	}
	for _, ns := range append([]string{nsCL, nsDB, nsSW}, nodes...) {
		killAll(ns)
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
}

// killAll SIGKILLs every process of a namespace.
func killAll(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, p := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(p); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// powerOff is a management node losing power: its link goes down and its processes die.
func powerOff(i int) {
	_ = ip("-n", nodes[i], "link", "set", "eth0", "down")
	killAll(nodes[i])
}

func powerOn(i int) error {
	return ip("-n", nodes[i], "link", "set", "eth0", "up")
}

// vipHolder returns the node that has the VIP, or -1.
func vipHolder() int {
	holder := -1
	for i, ns := range nodes {
		out, _ := exec.Command("ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0").Output()
		if strings.Contains(string(out), " "+vip+"/") {
			holder = i
		}
	}
	return holder
}

// stack is one HA system on the lab: it starts a node's HA process, and tells when that
// node is a standby.
type stack interface {
	start(ctx context.Context, i int) (*proc, error)
	standby(p *proc) string // the line that says the node is a standby
	active(p *proc) string  // the line that says the node is active
	revive(i int) error     // cleans up what a power-off left (before start)
	stop()
}

// proc is a node's HA process with its output lines.
type proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func startProc(cmd *exec.Cmd, logPath string) (*proc, error) {
	p := &proc{cmd: cmd, done: make(chan struct{})}
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			fmt.Fprintln(log, sc.Text())
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
		log.Close()
	}()
	go func() { cmd.Wait(); pw.Close(); close(p.done) }()
	return p, nil
}

// waitLine waits until a line of p contains s.
func (p *proc) waitLine(ctx context.Context, s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		p.mu.Lock()
		found := slices.ContainsFunc(p.lines, func(l string) bool { return strings.Contains(l, s) })
		last := ""
		if len(p.lines) > 0 {
			last = p.lines[len(p.lines)-1]
		}
		p.mu.Unlock()
		if found {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before %q (last line %q)", s, last)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %q within %s (last line %q)", s, timeout, last)
		}
	}
}

// measure runs n failovers of a stack and returns their samples.
func (l *lab) measure(ctx context.Context, st stack) ([]sample, error) {
	defer st.stop()
	defer func() {
		for i := range nodes {
			killAll(nodes[i])
			_ = powerOn(i)
			_ = ip("-n", nodes[i], "addr", "del", vip+"/24", "dev", "eth0")
		}
	}()
	procs := make([]*proc, len(nodes))
	var err error
	if procs[0], err = st.start(ctx, 0); err != nil {
		return nil, err
	}
	if err := procs[0].waitLine(ctx, st.active(procs[0]), time.Minute); err != nil {
		return nil, fmt.Errorf("%s: %w", nodes[0], err)
	}
	if procs[1], err = st.start(ctx, 1); err != nil {
		return nil, err
	}
	if err := procs[1].waitLine(ctx, st.standby(procs[1]), time.Minute); err != nil {
		return nil, fmt.Errorf("%s: %w", nodes[1], err)
	}
	var out []sample
	for round := 0; round < l.c.n; round++ {
		if _, err := l.probe(ctx, time.Now(), 30*time.Second); err != nil {
			return nil, fmt.Errorf("round %d: the client is not served before the failover: %w", round+1, err)
		}
		dead := vipHolder()
		if dead < 0 {
			return nil, fmt.Errorf("round %d: no node has the VIP", round+1)
		}
		t0 := time.Now()
		powerOff(dead)
		s, err := l.probe(ctx, t0, time.Minute)
		if err != nil {
			return nil, fmt.Errorf("round %d: after powering off %s: %w", round+1, nodes[dead], err)
		}
		out = append(out, s)
		fmt.Fprintf(os.Stderr, "  round %2d: %s off; HTTP after %s, DHCP after %s\n", round+1, nodes[dead], s.http.Round(time.Millisecond), s.dhcp.Round(time.Millisecond))
		<-procs[dead].done
		if err := powerOn(dead); err != nil {
			return nil, err
		}
		if err := st.revive(dead); err != nil {
			return nil, err
		}
		if procs[dead], err = st.start(ctx, dead); err != nil {
			return nil, err
		}
		if err := procs[dead].waitLine(ctx, st.standby(procs[dead]), time.Minute); err != nil {
			return nil, fmt.Errorf("round %d: %s back: %w", round+1, nodes[dead], err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return out, nil
}

// probe asks, from the client, for HTTP and DHCP answers through the VIP until it has
// both; it returns how long after t0 each first succeeded. A new attempt of each starts
// every 20 ms (attempts that get no answer wait up to 300 ms, at most 20 at a time), so the
// figures resolve to about 20 ms rather than to an attempt's timeout.
func (l *lab) probe(ctx context.Context, t0 time.Time, timeout time.Duration) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cl := &netns.NS{Name: nsCL}
	var s sample
	var herr, derr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var c net.Conn
				err := cl.Do(func() error {
					var err error
					c, err = (&net.Dialer{Timeout: 300 * time.Millisecond}).DialContext(ctx, network, addr)
					return err
				})
				return c, err
			}}}
		d, err := firstSuccess(ctx, t0, func(ctx context.Context) bool {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+vip+"/tftpboot/hello.txt", nil)
			resp, err := client.Do(req)
			if err != nil {
				return false
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		s.http, herr = d, err
		if err != nil {
			herr = fmt.Errorf("no HTTP answer through %s: %w", vip, err)
		}
	}()
	go func() {
		defer wg.Done()
		var c *nclient4.Client
		if err := cl.Do(func() error {
			var err error
			c, err = nclient4.New("eth0", nclient4.WithTimeout(300*time.Millisecond), nclient4.WithRetry(1))
			return err
		}); err != nil {
			derr = err
			return
		}
		defer c.Close()
		want := net.ParseIP(vip).To4()
		d, err := firstSuccess(ctx, t0, func(ctx context.Context) bool {
			offer, err := c.DiscoverOffer(ctx, dhcpv4.WithBroadcast(true))
			return err == nil && offer.ServerIdentifier().Equal(want)
		})
		s.dhcp, derr = d, err
		if err != nil {
			derr = fmt.Errorf("no DHCP offer from %s: %w", vip, err)
		}
	}()
	wg.Wait()
	return s, errors.Join(herr, derr)
}

// firstSuccess starts attempt every 20 ms (at most 20 running) until one succeeds, and
// returns when that one was answered, after t0.
func firstSuccess(ctx context.Context, t0 time.Time, attempt func(context.Context) bool) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	won := make(chan time.Duration, 1)
	sem := make(chan struct{}, 20)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case sem <- struct{}{}:
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				actx, acancel := context.WithTimeout(ctx, 300*time.Millisecond)
				defer acancel()
				if attempt(actx) {
					select {
					case won <- time.Since(t0):
					default:
					}
				}
			}()
		case d := <-won:
			return d, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		select {
		case d := <-won:
			return d, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-tick.C:
		}
	}
}

// provkitStack is provctl hafailover --auto on each node.
type provkitStack struct {
	lab  *lab
	once sync.Once
	err  error
}

func (p *provkitStack) setup() error {
	p.once.Do(func() {
		for i, ns := range nodes {
			dir := filepath.Join(p.lab.c.work, ns)
			for _, d := range []string{"tftpboot", "install"} {
				if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
					p.err = err
					return
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "hosts"), fmt.Appendf(nil, "127.0.0.1 localhost\n10.96.200.%d %s\n", 11+i, ns), 0o644); err != nil {
				p.err = err
				return
			}
			args := append([]string{"netns", "exec", ns, "unshare", "--uts", p.lab.c.provctl, "hasetup", "--db", p.lab.dsn, "-n", "mn.cluster.test"}, p.args(i)...)
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				p.err = fmt.Errorf("hasetup on %s: %v: %s", ns, err, out)
				return
			}
		}
	})
	return p.err
}

func (p *provkitStack) args(i int) []string {
	dir := filepath.Join(p.lab.c.work, nodes[i])
	return []string{"-p", p.lab.shared, "-i", "eth0", "-v", vip, "-m", "24", "--hosts-file", filepath.Join(dir, "hosts"),
		"--state-dir", filepath.Join(dir, "state"),
		"--link", filepath.Join(dir, "tftpboot") + "=" + filepath.Join(p.lab.shared, "tftpboot"),
		"--link", filepath.Join(dir, "install") + "=" + filepath.Join(p.lab.shared, "install")}
}

func (p *provkitStack) start(ctx context.Context, i int) (*proc, error) {
	if err := p.setup(); err != nil {
		return nil, err
	}
	c := p.lab.c
	args := append([]string{"netns", "exec", nodes[i], "unshare", "--uts", c.provctl, "hafailover", "--auto", "--db", p.lab.dsn,
		"--name", nodes[i], "--ttl", c.ttl.String(), "--arp-probes", strconv.Itoa(c.probes), "--retry-delay", "200ms",
		"--service", "provd=exec:" + c.provd + " --db " + p.lab.dsn + " --dhcp-interfaces eth0 --poll 200ms;health=http://" + vip + "/healthz;timeout=2s"},
		p.args(i)...)
	return startProc(exec.Command("ip", args...), filepath.Join(c.work, nodes[i]+"-provkit.log"))
}

func (p *provkitStack) standby(*proc) string { return " standby: " }
func (p *provkitStack) active(*proc) string  { return " active: " }
func (p *provkitStack) revive(int) error     { return nil } // the runner recovers by itself
func (p *provkitStack) stop() {
	for i := range nodes {
		killAll(nodes[i])
	}
}

// keepalivedStack is keepalived (VRRP) on each node, with notify scripts that start provd
// on the master and stop it elsewhere: the usual way to run a service that must run on one
// node only.
type keepalivedStack struct {
	lab *lab
}

func (k *keepalivedStack) start(ctx context.Context, i int) (*proc, error) {
	c := k.lab.c
	dir := filepath.Join(c.work, "keepalived-"+nodes[i])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	notify := filepath.Join(dir, "notify.sh")
	script := fmt.Sprintf(`#!/bin/sh
# keepalived notify script: $1 is the new state. Starts provd on the master, stops it otherwise.
pidf=%[1]s/provd.pid
case "$1" in
MASTER) %[2]s --db '%[3]s' --dhcp-interfaces eth0 --poll 200ms >>%[1]s/provd.log 2>&1 &
        echo $! >"$pidf" ;;
*)      [ -f "$pidf" ] && kill "$(cat "$pidf")" 2>/dev/null; rm -f "$pidf" ;;
esac
`, dir, c.provd, k.lab.dsn)
	if err := os.WriteFile(notify, []byte(script), 0o755); err != nil {
		return nil, err
	}
	version := "" // VRRPv2 advertises in whole seconds; v3 in centiseconds (a global option)
	if f, err := strconv.ParseFloat(c.advert, 64); err == nil && f < 1 {
		version = "  vrrp_version 3\n"
	}
	conf := fmt.Sprintf(`global_defs {
  router_id %[1]s
  script_user root
  enable_script_security
%[5]s}
vrrp_instance VI_1 {
  state BACKUP
  nopreempt
  interface eth0
  virtual_router_id 96
  priority 100
  advert_int %[2]s
  virtual_ipaddress {
    %[3]s/24 dev eth0
  }
  notify_master "%[4]s MASTER"
  notify_backup "%[4]s BACKUP"
  notify_fault "%[4]s FAULT"
  notify_stop "%[4]s STOP"
}
`, nodes[i], c.advert, vip, notify, version)
	cf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", "netns", "exec", nodes[i], "keepalived", "--dont-fork", "--log-console", "--log-detail", "--vrrp",
		"--use-file", cf, "--pid", filepath.Join(dir, "keepalived.pid"), "--vrrp_pid", filepath.Join(dir, "vrrp.pid"))
	return startProc(cmd, filepath.Join(dir, "keepalived.log"))
}

func (k *keepalivedStack) standby(*proc) string { return "Entering BACKUP STATE" }
func (k *keepalivedStack) active(*proc) string  { return "Entering MASTER STATE" }

// revive removes what keepalived, killed, left on the node: the VIP and the pid files.
func (k *keepalivedStack) revive(i int) error {
	_ = ip("-n", nodes[i], "addr", "del", vip+"/24", "dev", "eth0")
	dir := filepath.Join(k.lab.c.work, "keepalived-"+nodes[i])
	for _, f := range []string{"keepalived.pid", "vrrp.pid", "provd.pid"} {
		os.Remove(filepath.Join(dir, f))
	}
	return nil
}

func (k *keepalivedStack) stop() {
	for i := range nodes {
		killAll(nodes[i])
	}
}

func stats(ds []time.Duration) (min, med, p90, max, mean time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	at := func(q float64) time.Duration { return s[int(q*float64(len(s)-1)+0.5)] }
	return s[0], at(0.5), at(0.9), s[len(s)-1], sum / time.Duration(len(s))
}

func report(c config, results map[string][]sample) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond)) }
	fmt.Printf("\n# takeover after powering off the active management node (link down + SIGKILL), %d failovers per system\n", c.n)
	fmt.Printf("# provkit: hafailover --auto, lease %s in PostgreSQL, %d ARP probes; keepalived: VRRP advert_int %s, provd started by notify_master\n", c.ttl, c.probes, c.advert)
	fmt.Printf("%-11s %-6s %8s %8s %8s %8s %8s\n", "system", "answer", "min ms", "median", "p90", "max", "mean")
	medians := map[string]map[string]time.Duration{}
	for _, sys := range c.systems {
		s := results[sys]
		if len(s) == 0 {
			continue
		}
		medians[sys] = map[string]time.Duration{}
		for _, kind := range []string{"http", "dhcp", "both"} {
			var ds []time.Duration
			for _, x := range s {
				ds = append(ds, map[string]time.Duration{"http": x.http, "dhcp": x.dhcp, "both": max(x.http, x.dhcp)}[kind])
			}
			mn, md, p9, mx, mean := stats(ds)
			medians[sys][kind] = md
			fmt.Printf("%-11s %-6s %8s %8s %8s %8s %8s\n", sys, kind, ms(mn), ms(md), ms(p9), ms(mx), ms(mean))
		}
	}
	if p, k := medians["provkit"], medians["keepalived"]; p != nil && k != nil {
		fmt.Printf("median ratio provkit/keepalived: http %.2f, dhcp %.2f, both %.2f\n",
			float64(p["http"])/float64(k["http"]), float64(p["dhcp"])/float64(k["dhcp"]), float64(p["both"])/float64(k["both"]))
	}
}
