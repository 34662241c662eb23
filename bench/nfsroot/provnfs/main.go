// Command provnfs serves one image with nfsroot, for bench/nfsroot/run.sh and manual tests.
//
//	provnfs -root DIR -export /images/bench -listen 10.94.0.1:2049 -portmap 10.94.0.1:111 \
//	        -clients 10.94.0.0/16 [-state DIR -writable /var,/tmp]
package main

import (
	"context"
	"flag"
	"log"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/provkit/provkit/nfsroot"
)

func main() {
	root := flag.String("root", "", "image directory to export")
	export := flag.String("export", "/images/bench", "export path clients mount")
	listen := flag.String("listen", "127.0.0.1:2049", "NFS and MOUNT address")
	portmap := flag.String("portmap", "", "portmapper address (empty: no portmapper)")
	clients := flag.String("clients", "127.0.0.0/8", "comma-separated client prefixes")
	state := flag.String("state", "", "state directory for writable paths")
	writable := flag.String("writable", "", "comma-separated writable paths")
	insecure := flag.Bool("insecure", false, "accept unprivileged client ports")
	verbose := flag.Bool("v", false, "log debug messages")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here until exit")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if *root == "" {
		log.Fatal("provnfs: -root is required")
	}
	e := nfsroot.Export{Path: *export, Root: *root, StateDir: *state}
	for _, c := range strings.Split(*clients, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			log.Fatalf("provnfs: -clients: %v", err)
		}
		e.Clients = append(e.Clients, p)
	}
	if *writable != "" {
		e.Writable = strings.Split(*writable, ",")
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	s := &nfsroot.Server{
		Exports:     []nfsroot.Export{e},
		Addr:        *listen,
		PortmapAddr: *portmap,
		NoPortmap:   *portmap == "",
		Insecure:    *insecure,
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := s.Serve(ctx); err != nil {
		log.Printf("provnfs: %v", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}
