// Command image is the benchmark driver of bench/image/bench.sh: it builds the benchmark
// root filesystem with image.Build and packs or unpacks it with image.PackFile and
// image.Unpack, printing one line of figures per run.
//
//	go run ./bench/image build -dir ROOT [-suite bookworm] [-packages a,b]
//	go run ./bench/image pack -root ROOT -out FILE [-format cpio] [-compression gzip] [-level 0]
//	go run ./bench/image unpack -in FILE -dir DIR
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/provkit/provkit/image"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: image build|pack|unpack [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch os.Args[1] {
	case "build":
		err = build(ctx, os.Args[2:])
	case "pack":
		err = pack(ctx, os.Args[2:])
	case "unpack":
		err = unpack(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func build(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	dir := fs.String("dir", "", "image directory to make")
	suite := fs.String("suite", "bookworm", "Debian suite")
	pkgs := fs.String("packages", "", "extra packages, comma-separated")
	fs.Parse(args)
	var p []string
	if *pkgs != "" {
		p = strings.Split(*pkgs, ",")
	}
	res, err := image.Build(ctx, image.Spec{Dir: *dir, Source: image.Debootstrap{Suite: *suite}, Packages: p, Output: os.Stderr})
	if err != nil {
		return err
	}
	fmt.Printf("built %s in %s\n", res.Dir, res.Elapsed.Round(time.Second))
	return nil
}

func pack(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("pack", flag.ExitOnError)
	root := fs.String("root", "", "tree to pack")
	out := fs.String("out", "", "output file")
	format := fs.String("format", "cpio", "cpio, tar, squashfs")
	comp := fs.String("compression", "gzip", "gzip, zstd, none (squashfs: gzip, zstd, xz)")
	level := fs.Int("level", 0, "compression level (0: default)")
	workers := fs.Int("workers", 0, "compression goroutines (0: GOMAXPROCS)")
	progress := fs.Bool("progress", false, "progress bar on stderr when it is a terminal")
	fs.Parse(args)
	opts := image.PackOptions{Format: image.Format(*format), Compression: image.Compression(*comp), Level: *level, Workers: *workers}
	if *progress {
		opts.Progress = image.TerminalProgress(os.Stderr)
	}
	st, err := image.PackFile(ctx, *root, *out, opts)
	if err != nil {
		return err
	}
	fmt.Printf("entries=%d in=%d out=%d elapsed=%.2fs\n", st.Entries, st.Bytes, st.Written, st.Elapsed.Seconds())
	return nil
}

func unpack(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("unpack", flag.ExitOnError)
	in := fs.String("in", "", "packed image")
	dir := fs.String("dir", "", "target directory")
	fs.Parse(args)
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := image.Unpack(ctx, f, *dir, image.UnpackOptions{})
	if err != nil {
		return err
	}
	fmt.Printf("entries=%d bytes=%d elapsed=%.2fs format=%s compression=%s\n", st.Entries, st.Bytes, st.Elapsed.Seconds(), st.Format, st.Compression)
	return nil
}
