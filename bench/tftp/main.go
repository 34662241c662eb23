// Command tftp-bench serves a directory with provkit's TFTP server and HTTP handler (and
// Go's http.FileServer for comparison), or fetches files with provkit's TFTP test client,
// for bench/tftp/run.sh. It is a benchmark driver: nothing imports it.
//
//	tftp-bench serve -root DIR -tftp 127.0.0.1:6970 -http 127.0.0.1:8081 -fileserver 127.0.0.1:8082
//	tftp-bench get -server 127.0.0.1:6970 -blksize 1468 -windowsize 16 -n 50 FILE
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/provkit/provkit/tftp"
	"github.com/provkit/provkit/tftp/tftptest"
	"golang.org/x/sync/errgroup"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tftp-bench serve|get ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "get":
		err = get(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tftp-bench:", err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	root := fs.String("root", ".", "directory to serve")
	tftpAddr := fs.String("tftp", "127.0.0.1:6970", "TFTP address")
	httpAddr := fs.String("http", "127.0.0.1:8081", "provkit HTTP address")
	fsAddr := fs.String("fileserver", "", "net/http FileServer address (empty: none)")
	limit := fs.Duration("limit", 10*time.Minute, "stop after this long")
	spin := fs.Duration("spin", 0, "tftp.Server.SpinWait (0: the default, negative: never spin)")
	_ = fs.Parse(args)

	dir, err := tftp.OpenDir(*root)
	if err != nil {
		return err
	}
	defer dir.Close()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancel2 := context.WithTimeout(ctx, *limit)
	defer cancel2()

	g, ctx := errgroup.WithContext(ctx)
	srv := &tftp.Server{Files: dir, Addr: *tftpAddr, SpinWait: *spin}
	g.Go(func() error { return srv.Serve(ctx) })
	servers := []*http.Server{{Addr: *httpAddr, Handler: &tftp.HTTPHandler{Files: dir}}}
	if *fsAddr != "" {
		servers = append(servers, &http.Server{Addr: *fsAddr, Handler: http.FileServer(http.Dir(*root))})
	}
	for _, hs := range servers {
		g.Go(func() error {
			if err := hs.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
			defer c()
			return hs.Shutdown(sctx)
		})
	}
	return g.Wait()
}

func get(args []string) error {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	server := fs.String("server", "127.0.0.1:6970", "TFTP server")
	bs := fs.Int("blksize", 0, "blksize option (0: none)")
	ws := fs.Int("windowsize", 0, "windowsize option (0: none)")
	n := fs.Int("n", 1, "concurrent transfers")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("get: one file name")
	}
	ap, err := netip.ParseAddrPort(*server)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	var mu sync.Mutex
	var total int64
	g, ctx := errgroup.WithContext(ctx)
	for range *n {
		g.Go(func() error {
			r, err := tftptest.Get(ctx, ap, fs.Arg(0), io.Discard, tftptest.Options{BlockSize: *bs, WindowSize: *ws})
			mu.Lock()
			total += r.Bytes
			mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	d := time.Since(start)
	fmt.Printf("%d bytes in %.3f s: %.1f MB/s\n", total, d.Seconds(), float64(total)/d.Seconds()/1e6)
	return nil
}
