// Command provd is provkit's all-in-one boot daemon: DHCP, TFTP and HTTP (boot files,
// per-node boot configs, images, the status API, metrics) from one cluster store, with
// every setting taken from the tables as xCAT takes them (site.master, site.tftpdir,
// site.installdir, site.httpport, site.dhcpinterfaces, site.dhcplease, networks), and
// NFS for statelite images (osimage, litefile, site.statelitedir; see nfs.go).
//
//	provd --db /var/lib/provkit/provkit.db
//
// Statelite images (osimage provmethod statelite, or nodes set to statelite) are served
// over NFSv3 by package nfsroot on :2049, with a portmapper on :111 so that the kernel
// mounts with plain options. There is no lock manager (NLM): nodes mount with nolock,
// which the command line nodeset writes says. Each node, known by its address
// (hosts.ip, inside the networks table), sees the image read-only, its own copy of the
// image's writable paths (litefile; /var, /tmp and /root when it has none) kept under
// site.statelitedir/<osimage>/<node>, and its own host-dependent files (provctl mkcdsl).
// Nothing listens until there is such an image; -nfs=false turns NFS off. See nfs.go and
// examples/internal/glue/nfs.go.
//
// Changes to the tables are live: provd watches the store's generation and answers from
// the new state within one poll interval. See README.md in this directory.
//
// With --dns ADDR provd is also the cluster's name server (UDP and TCP): authoritative for
// site.domain, the networks' domains and their reverse zones, with the names makehosts
// writes, and a caching forwarder to site.forwarders for the cluster's networks.
//
// Node discovery: a node whose MAC is in no table gets an address from its network's
// dynamicrange and boots the discovery image (xcat/genesis.kernel.x86_64 and
// genesis.fs.x86_64.gz in site.tftpdir, built by provctl mknb: nodeinit in discovery mode),
// which posts its identity to /api/v1/discover. provd matches it to a node (by MAC, by the
// switch port of the switch table, or as the next free name of provctl nodediscoverstart),
// records it (mac, vpd, hwinv, discoverydata), runs its chain (osimage=<image>: nodeset) and
// tells it to reboot into it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/dhcp"
	"github.com/provkit/provkit/examples/internal/glue"
	"github.com/provkit/provkit/tftp"
	"golang.org/x/sync/errgroup"
)

// config is provd's command line.
type config struct {
	db         string
	httpAddr   string // "" means :<site.httpport>
	tftpAddr   string
	dhcp       bool
	leaseFile  string
	raIface    string
	raPrefix   string
	poll       time.Duration
	logLevel   string
	ipxeDir    string
	dhcpIfaces string
	nfs        bool
	nfsAddr    string
	nfsPortmap string
	nfsState   string
	dnsAddr    string
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("provd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.db, "db", "", "store: a SQLite file path or a postgres:// URL (default $PROVKIT_DB, else ./provkit.db)")
	fs.StringVar(&c.httpAddr, "http", "", "HTTP listen address (default :<site.httpport>, 80)")
	fs.StringVar(&c.tftpAddr, "tftp", ":69", "TFTP listen address; empty disables TFTP")
	fs.BoolVar(&c.dhcp, "dhcp", true, "serve DHCP on port 67 for the networks table")
	fs.StringVar(&c.dhcpIfaces, "dhcp-interfaces", "", "serve DHCP only on these interfaces (default site.dhcpinterfaces)")
	fs.StringVar(&c.leaseFile, "leases", "", "DHCP lease journal (default <db directory>/dhcp.leases; memory for PostgreSQL stores)")
	fs.StringVar(&c.raIface, "ra-interface", "", "send IPv6 router advertisements on this interface (ends iPXE's IPv6 wait)")
	fs.StringVar(&c.raPrefix, "ra-prefix", "", "IPv6 /64 prefix to advertise with -ra-interface (e.g. fd00:93::/64)")
	fs.DurationVar(&c.poll, "poll", 250*time.Millisecond, "how often to check the store for changes")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.nfs, "nfs", true, "serve the statelite images of the tables over NFSv3 (from the first such image on)")
	fs.StringVar(&c.nfsAddr, "nfs-addr", ":2049", "NFS and MOUNT listen address (TCP)")
	fs.StringVar(&c.nfsPortmap, "nfs-portmap", ":111", "portmapper listen address (TCP and UDP); empty disables it, and statelite nodes are told port= and mountport=")
	fs.StringVar(&c.nfsState, "nfs-state", "", "directory of the nodes' writable state (default site.statelitedir, else "+glue.DefaultStateliteDir+")")
	fs.StringVar(&c.dnsAddr, "dns", "", "serve the cluster's DNS on this address, UDP and TCP (e.g. :53); empty: no DNS")
	fs.StringVar(&c.ipxeDir, "ipxe-dir", "/usr/lib/ipxe", "where iPXE binaries are (served as xcat/xnba.kpxe and xcat/xnba.efi when the TFTP root has none)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.db == "" {
		c.db = os.Getenv("PROVKIT_DB")
	}
	if c.db == "" {
		c.db = cluster.DefaultDSN
	}
	return c, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "provd: %v\n", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	store, err := cluster.Open(ctx, cfg.db)
	if err != nil {
		return err
	}
	defer store.Close()
	vs, err := newViews(ctx, store, cfg.poll, log)
	if err != nil {
		return err
	}
	v := vs.Current()
	httpPort, err := glue.HTTPPort(v)
	if err != nil {
		return err
	}
	if cfg.httpAddr == "" {
		cfg.httpAddr = fmt.Sprintf(":%d", httpPort)
	} else if _, p, err := net.SplitHostPort(cfg.httpAddr); err == nil {
		fmt.Sscanf(p, "%d", &httpPort)
	}
	addrs := &glue.LocalAddrs{}
	m := newMetrics()
	m.gauge("provd_view_reloads_total", func() float64 { return float64(vs.reloads.Load()) })
	bg := &glue.Boot{Views: vs, Addrs: addrs, HTTPPort: httpPort}
	if cfg.nfs && cfg.nfsPortmap == "" {
		_, port, err := net.SplitHostPort(cfg.nfsAddr)
		if err != nil {
			return fmt.Errorf("-nfs-addr: %w", err)
		}
		bg.NFSOptions = "port=" + port + ",mountport=" + port
	}

	// Boot files: generated per-node configs over the TFTP root, with iPXE from Debian's
	// ipxe package as a fallback for xCAT's xnba names.
	tftpdir := orDefault(v.Site("tftpdir"), "/tftpboot")
	root, err := tftp.OpenDir(tftpdir)
	if err != nil {
		return fmt.Errorf("site.tftpdir %s: %w", tftpdir, err)
	}
	files := tftp.Overlay(bg.DiscoveryFiles(), tftp.Overlay(&tftp.BootConfigs{Nodes: bg}, tftp.Overlay(root, ipxeFallback(cfg.ipxeDir))))
	installdir := orDefault(v.Site("installdir"), "/install")
	inst, err := tftp.OpenDir(installdir)
	if err != nil {
		return fmt.Errorf("site.installdir %s: %w", installdir, err)
	}
	onTransfer := func(t tftp.Transfer) {
		m.add("provd_boot_transfers_total", 1)
		m.add("provd_boot_bytes_total", float64(t.Bytes))
		if t.Err != nil {
			m.add("provd_boot_transfer_errors_total", 1)
			log.Debug("transfer", "ip", t.Client, "path", t.Name, "err", t.Err)
		} else {
			log.Debug("transfer", "ip", t.Client, "path", t.Name, "bytes", t.Bytes, "duration", t.Duration)
		}
	}

	mux := http.NewServeMux()
	mux.Handle("/tftpboot/", http.StripPrefix("/tftpboot", &tftp.HTTPHandler{Files: files, OnTransfer: onTransfer}))
	mux.Handle("/install/", http.StripPrefix("/install", &tftp.HTTPHandler{Files: inst, OnTransfer: onTransfer}))
	mux.Handle("/api/v1/status", &statusHandler{store: store, views: vs, log: log, metrics: m, now: time.Now})
	dh := &discoverHandler{store: store, views: vs, log: log, metrics: m, now: time.Now}
	mux.Handle("/api/v1/discover", dh)
	mux.Handle("/api/v1/discover/bmcsetup", &bmcResultHandler{store: store, views: vs, log: log, metrics: m})
	mux.Handle("/metrics", m)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	ln, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	hs := &http.Server{Handler: cleanPath(mux), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return vs.Serve(gctx) })
	g.Go(func() error {
		err := hs.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return hs.Shutdown(sctx)
	})
	if cfg.tftpAddr != "" {
		pc, err := net.ListenPacket("udp4", cfg.tftpAddr)
		if err != nil {
			return fmt.Errorf("tftp: %w", err)
		}
		ts := &tftp.Server{Files: files, Conn: pc, OnTransfer: onTransfer, Logger: log.With("service", "tftp")}
		g.Go(func() error { return ts.Serve(gctx) })
	}
	if cfg.dhcp {
		nets, err := glue.DHCPNetworks(v, addrs)
		if err != nil {
			return err
		}
		bg.DiscoveryBoot(v, nets)
		ifaces := cfg.dhcpIfaces
		if ifaces == "" {
			ifaces = v.Site("dhcpinterfaces")
		}
		leases := cfg.leaseFile
		if leases == "" && !cluster.IsPostgresDSN(cfg.db) {
			leases = path.Join(path.Dir(cfg.db), "dhcp.leases")
		}
		ds := &dhcp.Server{
			Networks:   nets,
			Hosts:      &glue.DHCPHosts{Boot: bg},
			LeaseFile:  leases,
			Interfaces: dhcpInterfaces(ifaces),
			Logger:     log.With("service", "dhcp"),
			OnDiscover: onDHCPDiscover(log.With("service", "dhcp"), m),
		}
		var lt leaseTable = ds
		dh.dhcp.Store(&lt)
		mux.Handle("/api/v1/dhcp/leases", &leasesHandler{srv: ds})
		m.gauge("provd_dhcp_received_total", func() float64 { s, _ := ds.Stats(); return float64(s.Received) })
		m.gauge("provd_dhcp_replied_total", func() float64 { s, _ := ds.Stats(); return float64(s.Replied) })
		m.gauge("provd_dhcp_leases", func() float64 { s, _ := ds.Stats(); return float64(s.Leases) })
		g.Go(func() error { return ds.Serve(gctx) })
	}
	if cfg.nfs {
		ns := &nfsService{
			Views:       vs,
			Addr:        cfg.nfsAddr,
			PortmapAddr: cfg.nfsPortmap,
			StateDir:    cfg.nfsState,
			Interval:    max(cfg.poll, time.Second),
			Log:         log,
		}
		m.gauge("provd_nfs_exports", func() float64 { return float64(ns.exports.Load()) })
		m.gauge("provd_nfs_restarts_total", func() float64 { return float64(ns.restarts.Load()) })
		g.Go(func() error { return ns.Serve(gctx) })
	}
	if cfg.dnsAddr != "" {
		ds, err := newDNS(cfg.dnsAddr, vs, log, m)
		if err != nil {
			return err
		}
		g.Go(func() error { return ds.Serve(gctx) })
	}
	if cfg.raIface != "" {
		ra := &dhcp.RouterAdvertiser{Interface: cfg.raIface, Logger: log.With("service", "ra")}
		if cfg.raPrefix != "" {
			p, err := netip.ParsePrefix(cfg.raPrefix)
			if err != nil {
				return fmt.Errorf("-ra-prefix: %w", err)
			}
			ra.Prefixes = []netip.Prefix{p}
		}
		g.Go(func() error { return ra.Serve(gctx) })
	}
	log.Info("provd serving", "db", store.String(), "http", ln.Addr().String(), "tftp", cfg.tftpAddr, "dhcp", cfg.dhcp, "nfs", cfg.nfs, "tftpdir", tftpdir, "installdir", installdir)
	return g.Wait()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// dhcpInterfaces reads site.dhcpinterfaces: a comma list of interfaces, where xCAT also
// allows "host|if1,if2" entries; the entries for other hosts are ignored.
func dhcpInterfaces(s string) []string {
	host, _ := os.Hostname()
	var out []string
	for _, part := range strings.Split(s, ";") {
		if h, list, ok := strings.Cut(part, "|"); ok {
			if h != host && h != "" {
				continue
			}
			part = list
		}
		for _, ifc := range strings.Split(part, ",") {
			if ifc = strings.TrimSpace(ifc); ifc != "" && ifc != "noboot" {
				out = append(out, ifc)
			}
		}
	}
	return out
}

// ipxeFallback serves Debian's iPXE builds under xCAT's names when the TFTP root lacks them.
func ipxeFallback(dir string) tftp.Files {
	names := map[string]string{"xcat/xnba.kpxe": "undionly.kpxe", "xcat/xnba.efi": "ipxe.efi"}
	return tftp.FilesFunc(func(ctx context.Context, client netip.Addr, name string) (tftp.File, error) {
		f, ok := names[name]
		if !ok {
			return nil, os.ErrNotExist
		}
		d, err := tftp.OpenDir(dir)
		if err != nil {
			return nil, os.ErrNotExist
		}
		return d.Open(ctx, client, f)
	})
}

// cleanPath cleans request paths before routing: xCAT's image URLs carry a double slash
// (http://srv:80//install/...), which ServeMux would answer with a redirect.
func cleanPath(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; strings.Contains(p, "//") {
			r2 := r.Clone(r.Context())
			r2.URL.Path = path.Clean(p)
			if strings.HasSuffix(p, "/") && !strings.HasSuffix(r2.URL.Path, "/") {
				r2.URL.Path += "/"
			}
			r = r2
		}
		h.ServeHTTP(w, r)
	})
}
