// Command dnsbench serves and describes the zone of bench/dns/run.sh: a cluster of N nodes
// (n1..nN in cluster.test, addresses in 10.97.0.0/16, one alias in ten), with the PTR
// records of its reverse zone. The same data goes to every server of the run: provkit's
// dns.Server straight from the table, BIND and Unbound from the zone files that package
// dns renders for makedns.
//
//	dnsbench gen -n 10000 -dir /tmp/b -queries 100000   # zone files, peers' configs, dnsperf's query file
//	dnsbench serve -n 10000 -addr 127.0.0.1:5301        # provkit's server, until SIGINT/SIGTERM
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/provkit/provkit/dns"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dnsbench gen|serve [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(os.Args[2:])
	case "serve":
		err = serve(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dnsbench:", err)
		os.Exit(1)
	}
}

func addr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 97, byte(i / 250), byte(i%250 + 1)})
}

// table is the benchmark's data: n nodes, an alias "login<k>" for every tenth node.
func table(n int) (*dns.Table, error) {
	zones := []dns.Zone{
		{Name: "cluster.test.", NS: []string{"ns.cluster.test."}, Serial: 1, TTL: time.Hour},
		{Name: "97.10.in-addr.arpa.", NS: []string{"ns.cluster.test."}, Serial: 1, TTL: time.Hour},
	}
	hosts := []dns.Host{{Name: "ns.cluster.test.", Addrs: []netip.Addr{netip.MustParseAddr("10.97.255.254")}}}
	for i := 1; i <= n; i++ {
		h := dns.Host{Name: fmt.Sprintf("n%d.cluster.test.", i), Addrs: []netip.Addr{addr(i)}}
		if i%10 == 0 {
			h.Aliases = []string{fmt.Sprintf("login%d.cluster.test.", i/10)}
		}
		hosts = append(hosts, h)
	}
	return dns.NewTable(zones, hosts)
}

func gen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	n := fs.Int("n", 10000, "nodes")
	dir := fs.String("dir", "", "output directory")
	queries := fs.Int("queries", 100000, "queries in the dnsperf file")
	bindPort := fs.Int("bind-port", 5302, "BIND's port")
	unboundPort := fs.Int("unbound-port", 5303, "Unbound's port")
	threads := fs.Int("threads", 2, "threads for BIND and Unbound")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("gen: -dir is required")
	}
	t, err := table(*n)
	if err != nil {
		return err
	}
	var zones []string
	for _, zf := range t.ZoneFiles() {
		var b bytes.Buffer
		if _, err := zf.WriteTo(&b); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(*dir, dns.FileName(zf.Zone.Name)), b.Bytes(), 0o644); err != nil {
			return err
		}
		zones = append(zones, zf.Zone.Name)
	}
	conf := &dns.NamedConf{Dir: *dir, Zones: zones}
	var zb bytes.Buffer
	if err := conf.WriteZones(&zb); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*dir, "named.conf.zones"), zb.Bytes(), 0o644); err != nil {
		return err
	}
	named := fmt.Sprintf(`options {
	directory "%[1]s";
	pid-file "%[1]s/named.pid";
	session-keyfile "%[1]s/session.key";
	listen-on port %[2]d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	notify no;
	minimal-responses yes;
};
include "%[1]s/named.conf.zones";
`, *dir, *bindPort)
	if err := os.WriteFile(filepath.Join(*dir, "named.conf"), []byte(named), 0o644); err != nil {
		return err
	}
	unbound := fmt.Sprintf(`server:
	interface: 127.0.0.1
	port: %[2]d
	do-ip6: no
	username: ""
	chroot: ""
	directory: "%[1]s"
	pidfile: "%[1]s/unbound.pid"
	use-syslog: no
	logfile: ""
	num-threads: %[3]d
	so-reuseport: yes
	access-control: 127.0.0.0/8 allow
	module-config: "iterator"
	minimal-responses: yes
	# Unbound answers test. (RFC 6761) and 10.in-addr.arpa. (RFC 1918) itself unless told.
	local-zone: "test." nodefault
	local-zone: "10.in-addr.arpa." nodefault
remote-control:
	control-enable: no
`, *dir, *unboundPort, *threads)
	for _, z := range zones {
		unbound += fmt.Sprintf("auth-zone:\n\tname: %q\n\tzonefile: %q\n\tfor-downstream: yes\n\tfor-upstream: no\n\tfallback-enabled: no\n", z, filepath.Join(*dir, dns.FileName(z)))
	}
	if err := os.WriteFile(filepath.Join(*dir, "unbound.conf"), []byte(unbound), 0o644); err != nil {
		return err
	}
	// The query mix: 70% A of a node, 15% PTR of a node's address, 10% A of an alias
	// (CNAME + A), 5% names that do not exist.
	f, err := os.Create(filepath.Join(*dir, "queries.txt"))
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	r := rand.New(rand.NewPCG(1, 2))
	for range *queries {
		i := 1 + r.IntN(*n)
		switch p := r.IntN(100); {
		case p < 70:
			fmt.Fprintf(w, "n%d.cluster.test A\n", i)
		case p < 85:
			fmt.Fprintf(w, "%s PTR\n", dns.ReverseName(addr(i)))
		case p < 95 && *n >= 10:
			fmt.Fprintf(w, "login%d.cluster.test A\n", 1+r.IntN(*n/10))
		default:
			fmt.Fprintf(w, "x%d.cluster.test A\n", i)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	n := fs.Int("n", 10000, "nodes")
	a := fs.String("addr", "127.0.0.1:5301", "listen address (UDP and TCP)")
	workers := fs.Int("workers", 0, "UDP workers (0: the server's default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	t, err := table(*n)
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", *a)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *a)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &dns.Server{Records: t, PacketConn: pc, Listener: ln, Workers: *workers}
	fmt.Fprintf(os.Stderr, "dnsbench: serving %d names on %s\n", t.Len(), *a)
	return srv.Serve(ctx)
}
