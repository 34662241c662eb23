// Command sysclone is the provkit side of bench/sysclone/run.sh: it captures a tree over
// SSH with image.Capture (capture), and changes a golden tree the same way every run
// (mutate), as a package update would.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/provkit/provkit/image"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: sysclone capture|mutate ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "capture":
		err = capture(os.Args[2:])
	case "mutate":
		err = mutate(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sysclone:", err)
		os.Exit(1)
	}
}

func capture(args []string) error {
	fl := flag.NewFlagSet("capture", flag.ContinueOnError)
	addr := fl.String("addr", "127.0.0.1:22", "golden node's SSH address")
	key := fl.String("key", "", "private key file")
	kh := fl.String("known-hosts", "", "known_hosts file")
	agent := fl.String("agent", "", "capture agent (nodeinit)")
	root := fl.String("root", "/", "tree to capture on the golden node")
	dir := fl.String("dir", "", "local directory")
	if err := fl.Parse(args); err != nil {
		return err
	}
	spec := image.CaptureSpec{Dir: *dir, Root: *root, Agent: *agent, KeepCaches: true, KeepIdentity: true, NoDefaultExclude: true,
		SSH: image.SSHConfig{Addr: *addr, KeyFiles: []string{*key}, KnownHosts: []string{*kh}, NoAgent: true}}
	// The bench tree is a plain directory: everything is copied, as the peers do.
	res, err := image.Capture(context.Background(), spec)
	if err != nil {
		return err
	}
	s := res.Stats
	out, _ := json.Marshal(map[string]any{"entries": s.Entries, "files": s.Files, "changed": s.Changed,
		"deleted": s.Deleted, "data_bytes": s.DataBytes, "wire_bytes": s.WireBytes, "sent_bytes": s.SentBytes,
		"seconds": s.Elapsed.Seconds(), "warnings": len(s.Warnings)})
	fmt.Println(string(out))
	return nil
}

// mutate changes a tree like a package update: 300 files get new content, 200 only a new
// time, 100 new files appear in a new directory, 100 files go, and the largest file
// grows by 1 MiB. Seeded: every run changes the same files.
func mutate(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: mutate DIR")
	}
	root := args[0]
	var files []string
	sizes := map[string]int64{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if st := fi.Sys(); st != nil && fi.Size() < 1<<20 {
				files = append(files, p)
			}
			sizes[p] = fi.Size()
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(files)
	rng := rand.New(rand.NewPCG(7, 7))
	rng.Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
	if len(files) < 700 {
		return fmt.Errorf("%s: only %d files", root, len(files))
	}
	now := time.Now()
	for _, p := range files[:300] {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		fmt.Fprintf(f, "\n# changed by bench/sysclone %d\n", rng.Int64())
		f.Close()
	}
	for _, p := range files[300:500] {
		if err := os.Chtimes(p, now, now); err != nil {
			return err
		}
	}
	for _, p := range files[500:600] {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	nd := filepath.Join(root, "opt", fmt.Sprintf("new-%d", now.UnixNano()))
	if err := os.MkdirAll(nd, 0o755); err != nil {
		return err
	}
	buf := make([]byte, 16<<10)
	for i := range 100 {
		for j := range buf {
			buf[j] = byte(rng.Uint32())
		}
		if err := os.WriteFile(filepath.Join(nd, fmt.Sprintf("f%03d", i)), buf, 0o644); err != nil {
			return err
		}
	}
	var big string
	for p, s := range sizes {
		if big == "" || s > sizes[big] || (s == sizes[big] && p < big) {
			big = p
		}
	}
	f, err := os.OpenFile(big, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	blk := make([]byte, 1<<20)
	for j := range blk {
		blk[j] = byte(rng.Uint32())
	}
	_, err = f.Write(blk)
	f.Close()
	fmt.Printf("mutated: 300 rewritten, 200 touched, 100 removed, 100 new, %s (%d MB) grew by 1 MiB\n",
		strings.TrimPrefix(big, root), sizes[big]>>20)
	return err
}
