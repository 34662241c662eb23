package image

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Mksquashfs is the program packSquashfs runs.
const mksquashfs = "mksquashfs"

// packSquashfs runs mksquashfs (squashfs-tools; go-diskfs cannot write symlinks into
// squashfs). Owners, modes, device nodes, hard links and xattrs are kept by mksquashfs
// itself; exclusions are computed by our own walk, so they mean the same as for cpio and
// tar, and passed to it as an exclude file.
func packSquashfs(ctx context.Context, root, out string, opts *PackOptions) (PackStats, error) {
	start := time.Now()
	ex, err := newExcluder(opts.Exclude)
	if err != nil {
		return PackStats{}, err
	}
	fi, err := os.Stat(root)
	if err != nil {
		return PackStats{}, fmt.Errorf("image: squashfs root %s: %w", root, err)
	}
	if !fi.IsDir() {
		return PackStats{}, fmt.Errorf("image: squashfs root %s: not a directory", root)
	}
	var st PackStats
	// Count what goes in, and list what stays out.
	var excluded bytes.Buffer
	wk := &walker{root: root, oneFS: !opts.CrossFilesystems, fn: func(e *entry) error {
		st.Entries++
		if e.typ() == unix.S_IFREG {
			st.Bytes += e.st.Size
		}
		return nil
	}}
	if ex != nil {
		wk.exclude = &excluder{patterns: ex.patterns}
		// A second walk without exclusions finds the topmost excluded paths.
		lister := &walker{root: root, oneFS: !opts.CrossFilesystems}
		var skipUnder string
		lister.fn = func(e *entry) error {
			if skipUnder != "" && strings.HasPrefix(e.rel, skipUnder) {
				return nil
			}
			skipUnder = ""
			isDir := e.typ() == unix.S_IFDIR
			if !ex.excluded(e.rel, isDir) {
				return nil
			}
			// With "+" patterns an excluded directory may hold files put back: then
			// exclude its files one by one and keep the directory.
			if isDir && ex.hasIncludes() {
				return nil
			}
			if strings.ContainsAny(e.rel, "\n") {
				return fmt.Errorf("image: squashfs: cannot exclude %q (newline in name)", e.rel)
			}
			excluded.WriteString(e.rel + "\n")
			if isDir {
				skipUnder = e.rel + "/"
			}
			return nil
		}
		if err := lister.walk(ctx); err != nil {
			return st, err
		}
	}
	if err := wk.walk(ctx); err != nil {
		return st, err
	}

	tmp := filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".tmp"+strconv.Itoa(os.Getpid()))
	defer os.Remove(tmp)
	args := []string{root, tmp, "-noappend", "-comp", string(opts.Compression)}
	if opts.Level != 0 {
		if opts.Compression == Xz {
			return st, fmt.Errorf("image: squashfs xz has no level: %w", ErrFormat)
		}
		args = append(args, "-Xcompression-level", strconv.Itoa(opts.Level))
	}
	if opts.Workers > 0 {
		args = append(args, "-processors", strconv.Itoa(opts.Workers))
	}
	if !opts.CrossFilesystems {
		args = append(args, "-one-file-system")
	}
	if opts.Deterministic {
		t := int64(0)
		if !opts.MTime.IsZero() {
			t = opts.MTime.Unix()
		}
		ts := strconv.FormatInt(t, 10)
		args = append(args, "-reproducible", "-mkfs-time", ts, "-all-time", ts)
	}
	if excluded.Len() > 0 {
		ef := tmp + ".exclude"
		if err := os.WriteFile(ef, excluded.Bytes(), 0o600); err != nil {
			return st, fmt.Errorf("image: %w", err)
		}
		defer os.Remove(ef)
		args = append(args, "-ef", ef)
	}
	// Memory: mksquashfs defaults to a quarter of RAM for its caches.
	args = append(args, "-mem", "192M")
	if opts.Progress == nil {
		args = append(args, "-no-progress", "-quiet")
	}
	cmd := exec.CommandContext(ctx, mksquashfs, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if opts.Progress != nil {
		cmd.Stdout = opts.Progress
	}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return st, fmt.Errorf("image: mksquashfs: %w", ctx.Err())
		}
		return st, fmt.Errorf("image: mksquashfs %s: %w: %s", root, err, lastLines(stderr.Bytes(), 5))
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return st, fmt.Errorf("image: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return st, fmt.Errorf("image: %w", err)
	}
	if fi, err := os.Stat(out); err == nil {
		st.Written = fi.Size()
	}
	st.Elapsed = time.Since(start)
	return st, nil
}

// lastLines returns the last n non-empty lines of b, joined by "; ".
func lastLines(b []byte, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 0 {
		return "(no output)"
	}
	return strings.Join(lines, "; ")
}
