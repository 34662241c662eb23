// Command dhcpbench runs provkit's DHCP server for bench/dhcp/run.sh: one network, either
// N reservations (MACs and addresses from the same scheme as the peers' configurations) or a
// dynamic pool, leases persisted in a journal. It can also write the peers' configurations
// and perfdhcp's MAC list, so that every server gets the same clients.
//
//	dhcpbench -serve -iface srv0 -net 10.91.0.0/16 -server 10.91.0.1 -reservations 10000 -leases /tmp/l
//	dhcpbench -gen kea|dnsmasq|macs -reservations 10000 ...
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/provkit/provkit/dhcp"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dhcpbench:", err)
		os.Exit(1)
	}
}

type config struct {
	iface        string
	prefix       netip.Prefix
	server       netip.Addr
	reservations int
	pool         dhcp.Range
	leases       string
	workers      int
	memEvery     time.Duration
	cpuprofile   string
	verbose      bool
}

// reservation i: MAC 02:91:00:00:hh:ll, address 10.91.16.1 + i (inside -net).
func reservation(c *config, i int) (net.HardwareAddr, netip.Addr) {
	mac := net.HardwareAddr{0x02, 0x91, 0x00, byte(i >> 16), byte(i >> 8), byte(i)}
	base := c.prefix.Addr().As4()
	v := uint32(base[0])<<24 | uint32(base[1])<<16 | 16<<8 | 1
	v += uint32(i)
	return mac, netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func run() error {
	var c config
	var prefix, server, pool, gen string
	serve := flag.Bool("serve", false, "run the server until SIGTERM")
	flag.StringVar(&gen, "gen", "", "write a configuration to stdout: kea, dnsmasq or macs")
	flag.StringVar(&c.iface, "iface", "srv0", "interface facing the clients")
	flag.StringVar(&prefix, "net", "10.91.0.0/16", "the network")
	flag.StringVar(&server, "server", "10.91.0.1", "the server's address")
	flag.IntVar(&c.reservations, "reservations", 0, "number of reservations (0: dynamic pool)")
	flag.StringVar(&pool, "pool", "10.91.64.1-10.91.255.250", "dynamic range first-last")
	flag.StringVar(&c.leases, "leases", "", "lease file (empty: memory only)")
	flag.IntVar(&c.workers, "workers", 0, "workers (0: default)")
	flag.DurationVar(&c.memEvery, "mem", 0, "print heap and RSS to stderr this often")
	flag.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile")
	flag.BoolVar(&c.verbose, "v", false, "debug log")
	flag.Parse()
	var err error
	if c.prefix, err = netip.ParsePrefix(prefix); err != nil {
		return err
	}
	if c.server, err = netip.ParseAddr(server); err != nil {
		return err
	}
	first, last, ok := strings.Cut(pool, "-")
	if !ok {
		return fmt.Errorf("pool %q: want first-last", pool)
	}
	if c.pool.First, err = netip.ParseAddr(first); err != nil {
		return err
	}
	if c.pool.Last, err = netip.ParseAddr(last); err != nil {
		return err
	}
	switch {
	case gen != "":
		return generate(&c, gen)
	case *serve:
		return serveDHCP(&c)
	}
	return errors.New("want -serve or -gen")
}

func serveDHCP(c *config) error {
	n := dhcp.Network{
		Prefix:     c.prefix,
		Interface:  c.iface,
		ServerAddr: c.server,
		Routers:    []netip.Addr{c.server},
		DNS:        []netip.Addr{c.server},
		Domain:     "bench.test",
		LeaseTime:  4 * time.Hour,
	}
	s := &dhcp.Server{Networks: []dhcp.Network{n}, LeaseFile: c.leases, Workers: c.workers}
	if c.reservations > 0 {
		var t dhcp.HostTable
		for i := range c.reservations {
			mac, ip := reservation(c, i)
			if err := t.Put(dhcp.Host{Name: fmt.Sprintf("n%05d", i), MAC: mac, IP: ip}); err != nil {
				return err
			}
		}
		s.Hosts = &t
		s.DenyUnknown = true
	} else {
		s.Networks[0].Ranges = []dhcp.Range{c.pool}
	}
	level := slog.LevelWarn
	if c.verbose {
		level = slog.LevelDebug
	}
	s.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if c.cpuprofile != "" {
		f, err := os.Create(c.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if c.memEvery > 0 {
		go memLog(ctx, s, c.memEvery)
	}
	fmt.Fprintln(os.Stderr, "dhcpbench: serving")
	return s.Serve(ctx)
}

// memLog prints one line per interval: seconds, RSS, Go heap in use, leases, replies.
func memLog(ctx context.Context, s *dhcp.Server, every time.Duration) {
	start := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st, _ := s.Stats()
		fmt.Fprintf(os.Stderr, "mem t=%.0fs rss_kib=%d heap_inuse_kib=%d leases=%d replied=%d\n",
			time.Since(start).Seconds(), rssKiB(), ms.HeapInuse>>10, st.Leases, st.Replied)
	}
}

func rssKiB() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			var v int
			fmt.Sscan(f[1], &v)
			return v
		}
	}
	return -1
}

func generate(c *config, what string) error {
	switch what {
	case "macs":
		for i := range c.reservations {
			mac, _ := reservation(c, i)
			fmt.Println(mac)
		}
		return nil
	case "kea":
		return genKea(c)
	case "dnsmasq":
		return genDnsmasq(c)
	}
	return fmt.Errorf("-gen %q: want kea, dnsmasq or macs", what)
}

// genKea writes a kea-dhcp4 configuration: memfile leases (persisted), raw sockets.
// Reads KEA_LEASES for the lease file path.
func genKea(c *config) error {
	type res struct {
		HW string `json:"hw-address"`
		IP string `json:"ip-address"`
	}
	subnet := map[string]any{
		"id":     1,
		"subnet": c.prefix.String(),
		"option-data": []map[string]any{
			{"name": "routers", "data": c.server.String()},
			{"name": "domain-name-servers", "data": c.server.String()},
			{"name": "domain-name", "data": "bench.test"},
		},
		"interface": c.iface,
	}
	if c.reservations > 0 {
		var rs []res
		for i := range c.reservations {
			mac, ip := reservation(c, i)
			rs = append(rs, res{mac.String(), ip.String()})
		}
		subnet["reservations"] = rs
		subnet["pools"] = []any{}
	} else {
		subnet["pools"] = []map[string]string{{"pool": c.pool.First.String() + " - " + c.pool.Last.String()}}
	}
	conf := map[string]any{
		"Dhcp4": map[string]any{
			"interfaces-config": map[string]any{"interfaces": []string{c.iface}, "dhcp-socket-type": "raw"},
			"lease-database": map[string]any{"type": "memfile", "persist": true, "name": os.Getenv("KEA_LEASES"),
				"lfc-interval": 3600},
			"valid-lifetime":           14400,
			"reservations-global":      false,
			"reservations-in-subnet":   true,
			"reservations-out-of-pool": c.reservations > 0,
			"subnet4":                  []any{subnet},
			"loggers": []map[string]any{{"name": "kea-dhcp4", "severity": "WARN",
				"output_options": []map[string]string{{"output": "stderr"}}}},
		},
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	return enc.Encode(conf)
}

// genDnsmasq writes a dnsmasq configuration: DHCP only, lease file from DNSMASQ_LEASES.
func genDnsmasq(c *config) error {
	w := os.Stdout
	fmt.Fprintf(w, "port=0\nno-resolv\nno-hosts\nkeep-in-foreground\ninterface=%s\nbind-interfaces\n", c.iface)
	// no-ping: dnsmasq would otherwise ping each new address before offering it (Kea and
	// provkit do not), which is what a benchmark of the protocol engine should leave out.
	fmt.Fprintf(w, "dhcp-leasefile=%s\ndhcp-authoritative\ndhcp-lease-max=1000000\nno-ping\n", os.Getenv("DNSMASQ_LEASES"))
	fmt.Fprintf(w, "dhcp-option=option:router,%s\ndhcp-option=option:dns-server,%s\ndomain=bench.test\n", c.server, c.server)
	netmask := net.IP(net.CIDRMask(c.prefix.Bits(), 32)).String()
	if c.reservations > 0 {
		fmt.Fprintf(w, "dhcp-range=%s,static,%s,4h\n", c.prefix.Addr(), netmask)
		for i := range c.reservations {
			mac, ip := reservation(c, i)
			fmt.Fprintf(w, "dhcp-host=%s,%s\n", mac, ip)
		}
	} else {
		fmt.Fprintf(w, "dhcp-range=%s,%s,%s,4h\n", c.pool.First, c.pool.Last, netmask)
	}
	return nil
}
