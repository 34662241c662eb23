//go:build integration

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/provkit/provkit/internal/netns"
	"github.com/provkit/provkit/internal/pgtest"
	"github.com/provkit/provkit/internal/testenv"
)

// haLab is two management nodes (mn1, mn2) and a client on one bridge, each in a network
// namespace made by the test. The nodes' own addresses are on an admin subnet
// (10.96.K.0/24); the virtual IP and the client are on the cluster subnet (10.96.K+1.0/24),
// so everything the client reaches on the cluster subnet is reached through the VIP.
type haLab struct {
	t       *testing.T
	bins    *haBins
	dir     string
	sw, cl  *netns.NS
	mn      [2]*netns.NS
	provd   string
	vip     netip.Addr
	prefix  netip.Prefix // the cluster subnet
	shared  string
	nodes   [2]labNode
	client  netip.Addr
	clMAC   string
	writers []netip.Addr // extra client addresses, one per status writer
}

// labNode is one management node's local paths.
type labNode struct {
	name, dir, hosts, state string
	locals                  []string // local paths linked to the shared data while active
	links                   []string // --link values
}

func haNeeds() []testenv.Need {
	return []testenv.Need{testenv.Root(), testenv.Program("ip", "unshare", "nsenter", "curl", "udhcpc", "go")}
}

func newHALab(t *testing.T, bins *haBins, k int) *haLab {
	t.Helper()
	lab := &haLab{t: t, bins: bins, dir: t.TempDir()}
	// The postgres user must reach the shared data: open the test's directories.
	for d := lab.dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	lab.vip = netip.AddrFrom4([4]byte{10, 96, byte(k + 1), 1})
	lab.prefix = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 96, byte(k + 1), 0}), 24)
	lab.client = netip.AddrFrom4([4]byte{10, 96, byte(k + 1), 50})
	lab.clMAC = fmt.Sprintf("52:54:00:96:%02x:50", k)

	lab.sw = netns.New(t, "hasw")
	lab.sw.MustIP(t, "link", "add", "br0", "type", "bridge")
	lab.sw.MustIP(t, "link", "set", "br0", "up")
	join := func(ns *netns.NS, port, addr string) {
		netns.Veth(t, ns, "eth0", addr, lab.sw, port, "")
		lab.sw.MustIP(t, "link", "set", port, "master", "br0")
	}
	for i := range lab.mn {
		lab.mn[i] = netns.New(t, "mn")
		join(lab.mn[i], fmt.Sprintf("p%d", i+1), fmt.Sprintf("10.96.%d.%d/24", k, 11+i))
	}
	lab.cl = netns.New(t, "hacl")
	join(lab.cl, "pc", lab.client.String()+"/24")
	lab.cl.MustIP(t, "link", "set", "eth0", "address", lab.clMAC)

	lab.shared = filepath.Join(lab.dir, "shared")
	writeFile(t, filepath.Join(lab.shared, "tftpboot", "hello.txt"), "hello from the shared boot root\n")
	if err := os.MkdirAll(filepath.Join(lab.shared, "install"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range lab.nodes {
		n := &lab.nodes[i]
		n.name = fmt.Sprintf("mn%d", i+1)
		n.dir = filepath.Join(lab.dir, n.name)
		n.hosts = filepath.Join(n.dir, "hosts")
		n.state = filepath.Join(n.dir, "state")
		writeFile(t, n.hosts, fmt.Sprintf("127.0.0.1\tlocalhost\n10.96.%d.%d\t%s\n", k, 11+i, n.name))
		for _, d := range []string{"tftpboot", "install"} {
			local := filepath.Join(n.dir, d)
			writeFile(t, filepath.Join(local, "local-"+n.name), "only on "+n.name+"\n")
			n.locals = append(n.locals, local)
			n.links = append(n.links, local+"="+filepath.Join(lab.shared, d))
		}
	}
	return lab
}

// haBins builds the module's commands once for all the subtests of TestNetnsHA.
type haBins struct {
	mu    sync.Mutex
	dir   string
	paths map[string]string
	pg    string // a PostgreSQL server's URL (hatest.Postgres), "" if there is none
}

func (b *haBins) build(t *testing.T, pkg string) string {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.paths[pkg]; ok {
		return p
	}
	if b.paths == nil {
		b.paths = map[string]string{}
	}
	out := filepath.Join(b.dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	b.paths[pkg] = out
	return out
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// provctlIn returns a command running provctl (built from this package, so that it is the
// real program with its signal handling) inside a node's namespace, in a UTS namespace of
// its own so that host-name changes stay there.
func (lab *haLab) provctlIn(ctx context.Context, i int, args ...string) *exec.Cmd {
	provctl := lab.bins.build(lab.t, "github.com/provkit/provkit/examples/provctl")
	return lab.mn[i].Command(ctx, append([]string{"unshare", "--uts", provctl}, args...)...)
}

// pc runs provctl in node i's namespace and returns its output and exit code.
func (lab *haLab) pc(i int, args ...string) (stdout, stderr string, code int) {
	lab.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := lab.provctlIn(ctx, i, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		lab.t.Fatalf("provctl %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// pcOK runs provctl in node i's namespace and fails the test unless it exits 0.
func (lab *haLab) pcOK(i int, args ...string) string {
	lab.t.Helper()
	out, errs, code := lab.pc(i, args...)
	if code != 0 {
		lab.t.Fatalf("%s: provctl %s: exit %d\n%s%s%s", lab.nodes[i].name, strings.Join(args, " "), code, out, errs, lab.serviceLogs(i))
	}
	return out
}

// serviceLogs returns the logs of node i's services.
func (lab *haLab) serviceLogs(i int) string {
	logs, _ := filepath.Glob(filepath.Join(lab.nodes[i].state, "*.log"))
	var b strings.Builder
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "--- %s:\n%s", l, data)
	}
	return b.String()
}

// haArgs are the flags every ha command of node i takes.
func (lab *haLab) haArgs(i int) []string {
	n := lab.nodes[i]
	args := []string{"-p", lab.shared, "-i", "eth0", "-v", lab.vip.String(), "-m", "255.255.255.0",
		"--hosts-file", n.hosts, "--state-dir", n.state}
	for _, l := range n.links {
		args = append(args, "--link", l)
	}
	return args
}

// vipOn reports whether node i's eth0 has the VIP.
func (lab *haLab) vipOn(i int) bool {
	out, err := exec.Command("ip", "-n", lab.mn[i].Name, "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil {
		lab.t.Fatalf("ip addr: %v: %s", err, out)
	}
	return strings.Contains(string(out), " "+lab.vip.String()+"/")
}

// procs lists the live processes of a namespace as "pid name".
func procs(t *testing.T, ns *netns.NS) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "pids", ns.Name).Output()
	if err != nil {
		t.Fatalf("ip netns pids %s: %v", ns.Name, err)
	}
	var list []string
	for _, pid := range strings.Fields(string(out)) {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			continue
		}
		s := string(stat)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open || len(s) < closing+3 || s[closing+2] == 'Z' {
			continue
		}
		list = append(list, pid+" "+s[open+1:closing])
	}
	return list
}

// linkState describes node i's local paths: "dir" or "link" each, and leftover backups.
func (lab *haLab) linkState(i int) []string {
	var out []string
	for _, l := range lab.nodes[i].locals {
		for _, p := range []string{l, l + ".provkit-standby"} {
			fi, err := os.Lstat(p)
			switch {
			case err != nil:
				continue
			case fi.Mode()&os.ModeSymlink != 0:
				out = append(out, filepath.Base(p)+":link")
			default:
				out = append(out, filepath.Base(p)+":dir")
			}
		}
	}
	return out
}

// eventually polls cond until it holds, or fails the test.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting until %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dhcpLease runs a real DHCP client (busybox udhcpc) in the client namespace and returns
// the address it was offered and the server identifier.
func (lab *haLab) dhcpLease() (ip, server string) {
	lab.t.Helper()
	script := filepath.Join(lab.dir, "udhcpc.sh")
	if _, err := os.Stat(script); err != nil {
		writeFile(lab.t, script, "#!/bin/sh\n[ \"$1\" = bound ] && echo \"bound ip=$ip serverid=$serverid\"\nexit 0\n")
		if err := os.Chmod(script, 0o755); err != nil {
			lab.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := lab.cl.Command(ctx, "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5", "-T", "1", "-s", script).CombinedOutput()
	if err != nil {
		lab.t.Fatalf("udhcpc: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "bound "); ok {
			for _, f := range strings.Fields(rest) {
				if v, ok := strings.CutPrefix(f, "ip="); ok {
					ip = v
				}
				if v, ok := strings.CutPrefix(f, "serverid="); ok {
					server = v
				}
			}
		}
	}
	if ip == "" {
		lab.t.Fatalf("udhcpc got no lease:\n%s", out)
	}
	return ip, server
}

// httpGet fetches path from the VIP with curl in the client namespace.
func (lab *haLab) httpGet(path string) string {
	lab.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := lab.cl.Command(ctx, "curl", "-sS", "-f", "--retry", "5", "--retry-connrefused", "--retry-delay", "1", "-m", "5",
		"http://"+lab.vip.String()+path).CombinedOutput()
	if err != nil {
		lab.t.Fatalf("curl http://%s%s: %v\n%s", lab.vip, path, err, out)
	}
	return string(out)
}

// checkServed proves the client is served through the VIP by node i: the VIP is on node i
// only, a real DHCP client gets its reserved address from the VIP, and curl fetches a boot
// file from the shared boot root through the VIP.
func (lab *haLab) checkServed(i int) {
	lab.t.Helper()
	if !lab.vipOn(i) || lab.vipOn(1-i) {
		lab.t.Fatalf("VIP on mn1 %v, on mn2 %v; want on %s only", lab.vipOn(0), lab.vipOn(1), lab.nodes[i].name)
	}
	ip, server := lab.dhcpLease()
	if ip != lab.client.String() || server != lab.vip.String() {
		lab.t.Errorf("DHCP lease %s from %s, want %s from the VIP %s", ip, server, lab.client, lab.vip)
	}
	if got := lab.httpGet("/tftpboot/hello.txt"); got != "hello from the shared boot root\n" {
		lab.t.Errorf("GET /tftpboot/hello.txt through the VIP = %q", got)
	}
}

// defineCluster puts the cluster the services serve into the store at dsn, with provctl
// in this process: the boot root and images in the shared data, the cluster network, the
// client as node c1 with its MAC, and one node per status writer.
func (lab *haLab) defineCluster(dsn string, writers int) {
	lab.t.Helper()
	pc := func(args ...string) {
		lab.t.Helper()
		var out, errb bytes.Buffer
		if code := run(context.Background(), append([]string{"provctl", "--db", dsn}, args...), strings.NewReader(""), &out, &errb); code != 0 {
			lab.t.Fatalf("provctl %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
		}
	}
	pc("chtab", "key=tftpdir", "site.value="+filepath.Join(lab.shared, "tftpboot"))
	pc("chtab", "key=installdir", "site.value="+filepath.Join(lab.shared, "install"))
	pc("chtab", "key=domain", "site.value=cluster.test")
	pc("chtab", "key=dhcpinterfaces", "site.value=eth0")
	pc("mkdef", "-t", "network", "-o", "clusternet", "net="+lab.prefix.Addr().String(), "mask=255.255.255.0", "mgtifname=eth0")
	pc("nodeadd", "c1", "groups=clients,all", "hosts.ip="+lab.client.String(), "mac.mac="+lab.clMAC)
	lab.writers = nil
	for w := range writers {
		a := netip.AddrFrom4([4]byte{10, 96, lab.prefix.Addr().As4()[2], byte(101 + w)})
		lab.writers = append(lab.writers, a)
		lab.cl.MustIP(lab.t, "addr", "add", a.String()+"/24", "dev", "eth0")
		pc("nodeadd", fmt.Sprintf("w%d", w+1), "groups=writers,all", "hosts.ip="+a.String())
	}
}

// provdService is the --service value that runs provd against dsn.
func (lab *haLab) provdService(dsn string) string {
	if lab.provd == "" {
		lab.provd = lab.bins.build(lab.t, "github.com/provkit/provkit/examples/provd")
	}
	return "provd=exec:" + lab.provd + " --db " + dsn + " --dhcp-interfaces eth0 --poll 200ms" +
		";health=http://" + lab.vip.String() + "/healthz;timeout=3s"
}

// nsClient returns an HTTP client whose connections are made inside ns, from local.
func nsClient(ns *netns.NS, local netip.Addr) *http.Client {
	return &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var c net.Conn
				err := ns.Do(func() error {
					d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: local.AsSlice()}}
					var err error
					c, err = d.DialContext(ctx, network, addr)
					return err
				})
				return c, err
			},
		},
	}
}

// statusWriters post node states through the VIP, as nodes report their boot progress:
// each writer w<N> reports "seq-1", "seq-2", ... for its own node from its own address,
// and remembers which reports provd acknowledged.
type statusWriters struct {
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	acked map[string]int // node -> last acknowledged sequence number
	tried map[string]int // node -> last attempted sequence number
	fails int
}

func (lab *haLab) startWriters() *statusWriters {
	sw := &statusWriters{stop: make(chan struct{}), acked: map[string]int{}, tried: map[string]int{}}
	for i, a := range lab.writers {
		node := fmt.Sprintf("w%d", i+1)
		client := nsClient(lab.cl, a)
		sw.wg.Add(1)
		go func() {
			defer sw.wg.Done()
			for seq := 1; ; seq++ {
				select {
				case <-sw.stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				body, _ := json.Marshal(map[string]string{"node": node, "state": fmt.Sprintf("seq-%d", seq)})
				sw.mu.Lock()
				sw.tried[node] = seq
				sw.mu.Unlock()
				resp, err := client.Post("http://"+lab.vip.String()+"/api/v1/status", "application/json", bytes.NewReader(body))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				sw.mu.Lock()
				if err == nil && resp.StatusCode == http.StatusNoContent {
					sw.acked[node] = seq
				} else {
					sw.fails++
				}
				sw.mu.Unlock()
			}
		}()
	}
	return sw
}

func (sw *statusWriters) halt() {
	close(sw.stop)
	sw.wg.Wait()
}

func (sw *statusWriters) total() int {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	n := 0
	for _, s := range sw.acked {
		n += s
	}
	return n
}

// verify checks that the store kept every acknowledged report: each writer's node holds its
// last acknowledged state, or a later one it attempted (an unacknowledged request may still
// have been applied).
func (sw *statusWriters) verify(t *testing.T, nodestat func(node string) string) {
	t.Helper()
	sw.mu.Lock()
	defer sw.mu.Unlock()
	acked := 0
	for node, last := range sw.acked {
		acked += last
		got := strings.TrimPrefix(nodestat(node), node+": ")
		seq, err := strconv.Atoi(strings.TrimPrefix(got, "seq-"))
		if err != nil || seq < last || seq > sw.tried[node] {
			t.Errorf("%s: the store has %q; the last acknowledged report was seq-%d (last attempted seq-%d)", node, got, last, sw.tried[node])
		}
	}
	if acked == 0 {
		t.Fatal("no status report was acknowledged")
	}
	t.Logf("%d status reports acknowledged through the VIP, %d failed or timed out during the failover; none lost", acked, sw.fails)
}

// runner is a provctl process running automatic failover in a node's namespace.
type runner struct {
	t     *testing.T
	node  string
	cmd   *exec.Cmd
	done  chan struct{}
	mu    sync.Mutex
	lines []string
}

func (lab *haLab) startAuto(i int, dsn string, extra ...string) *runner {
	lab.t.Helper()
	args := append([]string{"hafailover", "--auto", "--db", dsn, "--name", lab.nodes[i].name}, lab.haArgs(i)...)
	args = append(args, "--retry-delay", "200ms", "--health-timeout", "20s", "--stop-timeout", "3s", "--service", lab.provdService(dsn))
	args = append(args, extra...)
	r := &runner{t: lab.t, node: lab.nodes[i].name, done: make(chan struct{})}
	r.cmd = lab.provctlIn(context.Background(), i, args...)
	pr, pw := io.Pipe()
	r.cmd.Stdout, r.cmd.Stderr = pw, pw
	if err := r.cmd.Start(); err != nil {
		lab.t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			r.mu.Lock()
			r.lines = append(r.lines, sc.Text())
			r.mu.Unlock()
		}
	}()
	go func() {
		r.cmd.Wait()
		pw.Close()
		close(r.done)
	}()
	lab.t.Cleanup(func() {
		r.kill()
		if lab.t.Failed() {
			lab.t.Logf("%s's output:\n%s", r.node, strings.Join(r.all(), "\n"))
		}
	})
	return r
}

func (r *runner) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// wait returns the n-th line (from 1) whose event (the word after the timestamp and node)
// is kind, waiting for it, and its time.
func (r *runner) wait(kind string, n int, timeout time.Duration) (string, time.Time) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		seen := 0
		for _, l := range r.all() {
			f := strings.Fields(l)
			if len(f) >= 3 && f[1] == r.node && strings.TrimSuffix(f[2], ":") == kind {
				if seen++; seen == n {
					at, err := time.Parse(time.RFC3339Nano, f[0])
					if err != nil {
						r.t.Fatalf("%s: line %q: %v", r.node, l, err)
					}
					return l, at
				}
			}
		}
		select {
		case <-r.done:
			r.t.Fatalf("%s exited before %s #%d:\n%s", r.node, kind, n, strings.Join(r.all(), "\n"))
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: no %s #%d within %s:\n%s", r.node, kind, n, timeout, strings.Join(r.all(), "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *runner) kill() {
	if r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-r.done
}

// term stops the runner cleanly (SIGTERM) and waits for it.
func (r *runner) term() {
	r.t.Helper()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		r.t.Fatalf("%s did not stop on SIGTERM", r.node)
	}
	if code := r.cmd.ProcessState.ExitCode(); code != 0 {
		r.t.Errorf("%s exited %d after SIGTERM:\n%s", r.node, code, strings.Join(r.all(), "\n"))
	}
}

// pgProxy forwards connections made inside a namespace to the PostgreSQL server of the
// host: the management nodes reach the shared store through it, and the test can freeze it
// to cut one node off from the store (packets vanish; nothing is closed).
type pgProxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	cond     *sync.Cond
	frozen   bool
	closed   bool
	conns    []net.Conn
	wg       sync.WaitGroup
}

func newPGProxy(t *testing.T, ns *netns.NS, upstream string) *pgProxy {
	t.Helper()
	p := &pgProxy{upstream: upstream}
	p.cond = sync.NewCond(&p.mu)
	if err := ns.Do(func() error {
		var err error
		p.ln, err = net.Listen("tcp", "127.0.0.1:5432")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *pgProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if !p.waitThawed() {
				c.Close()
				return
			}
			up, err := net.Dial("tcp", p.upstream)
			if err != nil {
				c.Close()
				return
			}
			if !p.track(c, up) {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.pipe(up, c) }()
			p.pipe(c, up)
		}()
	}
}

func (p *pgProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	p.conns = append(p.conns, cs...)
	return true
}

// waitThawed blocks while the proxy is frozen; false once it is closed.
func (p *pgProxy) waitThawed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.frozen && !p.closed {
		p.cond.Wait()
	}
	return !p.closed
}

func (p *pgProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitThawed() {
				break
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

func (p *pgProxy) freeze() { p.mu.Lock(); p.frozen = true; p.mu.Unlock() }

func (p *pgProxy) thaw() {
	p.mu.Lock()
	p.frozen = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *pgProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	conns := p.conns
	p.mu.Unlock()
	p.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	p.wg.Wait()
}

// freshPostgres creates a database of its own on bins.pg ($PROVKIT_TEST_PG or a server of
// the test's own), dropped at the end, and returns its URL on the host and the host:port of
// the server.
func freshPostgres(t *testing.T, bins *haBins) (dsn, hostport string) {
	t.Helper()
	base := bins.pg
	if base == "" {
		testenv.Require(t, testenv.Env("PROVKIT_TEST_PG", "a PostgreSQL server (scripts/pg-test.sh start DIR), or PostgreSQL's programs (package postgresql)"))
	}
	dsn = pgtest.FreshDatabase(t, base, "pkha")
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return dsn, u.Host
}

// nodeDSN is the store's URL as the management nodes see it: through their proxy.
func nodeDSN(dsn string) string {
	u, _ := url.Parse(dsn)
	u.Host = "127.0.0.1:5432"
	return u.String()
}
