package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/u-root/u-root/pkg/mount/loop"
	"golang.org/x/sys/unix"

	"github.com/provkit/provkit/image"
)

// Where nodeinit builds the new root, and keeps what must outlive the switch (under
// /run, which moves into the new root).
const (
	newRoot     = "/newroot"
	runDir      = "/run/provkit"
	sfsFile     = runDir + "/root.sfs"
	lowerDir    = runDir + "/lower"
	overlayDir  = runDir + "/rw"
	httpTimeout = 30 * time.Second // to connect and get the response headers
)

// fetchRoot downloads the packed image at cfg.ImageURL and makes it the new root: a
// cpio or tar stream is unpacked into a tmpfs as it arrives (never held whole in RAM
// twice); a squashfs image is stored in /run, loop-mounted and given a writable tmpfs
// overlay.
func fetchRoot(ctx context.Context, cfg Config, dir string, con *console) error {
	u := cfg.ImageURL.String()
	t0 := time.Now()
	resp, err := getWithRetry(ctx, u, con)
	if err != nil {
		return err
	}
	con.debugf("root: HTTP %s, %d bytes, headers after %.2fs", resp.Status, resp.ContentLength, time.Since(t0).Seconds())
	defer resp.Body.Close()
	start := time.Now()
	cr := &countReader{r: resp.Body, con: con, total: resp.ContentLength, start: start, next: start.Add(5 * time.Second)}
	if cfg.ImageSHA != nil {
		cr.hash = sha256.New()
	}
	dr, comp, err := image.Decompress(bufio.NewReaderSize(cr, 1<<20))
	if err != nil {
		return fmt.Errorf("root image %s: %w", u, err)
	}
	defer dr.Close()
	br := bufio.NewReaderSize(dr, 1<<20)
	head, _ := br.Peek(512)
	format := image.DetectFormat(head)
	switch format {
	case image.CPIO, image.Tar:
		opts := "mode=0755"
		if cfg.RootSize != "" {
			opts += ",size=" + cfg.RootSize
		}
		if err := unix.Mount("rootfs", dir, "tmpfs", 0, opts); err != nil {
			return fmt.Errorf("root: mount tmpfs on %s: %w", dir, err)
		}
		con.printf("root: unpacking %s %s from %s into tmpfs", format, comp, u)
		st, err := image.Unpack(ctx, br, dir, image.UnpackOptions{Format: format})
		if err != nil {
			return fmt.Errorf("root image %s: after %d entries: %w", u, st.Entries, err)
		}
		if err := cr.verify(cfg.ImageSHA); err != nil {
			return fmt.Errorf("root image %s: %w", u, err)
		}
		con.printf("root: %d entries, %.1f MiB unpacked from %.1f MiB in %.1fs",
			st.Entries, float64(st.Bytes)/(1<<20), float64(cr.n)/(1<<20), time.Since(start).Seconds())
		if st.XattrsSkipped > 0 {
			con.warn("root: %d extended attributes could not be set (tmpfs lacks user.* xattrs before Linux 6.6)", st.XattrsSkipped)
		}
		return nil
	case image.Squashfs:
		return squashfsRoot(ctx, br, dir, u, cr, cfg.ImageSHA, con)
	}
	n := min(len(head), 16)
	return fmt.Errorf("root image %s: not a cpio, tar or squashfs image (after %s decompression; first bytes %q)", u, comp, head[:n])
}

// getWithRetry GETs u, retrying a few times while the server cannot be reached (a
// server that answers with an error status is not retried: the URL is wrong).
func getWithRetry(ctx context.Context, u string, con *console) (*http.Response, error) {
	client := &http.Client{Transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		ResponseHeaderTimeout: httpTimeout,
	}}
	var last error
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			con.warn("root: %v; retrying", last)
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(attempt) * 2 * time.Second):
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, fmt.Errorf("root image %s: %w", u, err)
		}
		req.Header.Set("User-Agent", "provkit-nodeinit")
		resp, err := client.Do(req)
		if err != nil {
			last = fmt.Errorf("root image %s: %w", u, err)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("root image %s: HTTP %s", u, resp.Status)
		}
		return resp, nil
	}
	return nil, last
}

// countReader counts (and hashes) downloaded bytes and prints progress every few
// seconds.
type countReader struct {
	r     io.Reader
	n     int64
	total int64
	con   *console
	start time.Time
	next  time.Time
	hash  hash.Hash // nil: no checksum asked
}

// verify reads what is left of the download (an archive ends before its padding) and
// compares the checksum, if one was asked for.
func (c *countReader) verify(want []byte) error {
	if want == nil {
		return nil
	}
	if _, err := io.Copy(io.Discard, io.LimitReader(c, 1<<20)); err != nil {
		return fmt.Errorf("read the end of the image: %w", err)
	}
	if got := c.hash.Sum(nil); !bytes.Equal(got, want) {
		return fmt.Errorf("SHA-256 %x, want %x (provkit.imgsha256): the image is corrupt or not the one meant", got, want)
	}
	c.con.printf("root: SHA-256 matches")
	return nil
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.hash != nil {
		c.hash.Write(p[:n])
	}
	if now := time.Now(); now.After(c.next) {
		c.next = now.Add(5 * time.Second)
		el := now.Sub(c.start).Seconds()
		if c.total > 0 {
			c.con.printf("root: %.0f%% (%.1f of %.1f MiB, %.1f MiB/s)", 100*float64(c.n)/float64(c.total),
				float64(c.n)/(1<<20), float64(c.total)/(1<<20), float64(c.n)/(1<<20)/el)
		} else {
			c.con.printf("root: %.1f MiB (%.1f MiB/s)", float64(c.n)/(1<<20), float64(c.n)/(1<<20)/el)
		}
	}
	return n, err
}

// squashfsRoot stores the image in /run, mounts it through a loop device and puts a
// tmpfs overlay on it at dir. Needs the loop, squashfs and overlay modules.
func squashfsRoot(ctx context.Context, r io.Reader, dir, u string, cr *countReader, sum []byte, con *console) error {
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return err
	}
	f, err := os.Create(sfsFile)
	if err != nil {
		return fmt.Errorf("root: %w", err)
	}
	_, err = io.Copy(f, &ctxReader{ctx: ctx, r: r})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("root image %s: store squashfs: %w", u, err)
	}
	if err := cr.verify(sum); err != nil {
		return fmt.Errorf("root image %s: %w", u, err)
	}
	con.printf("root: squashfs image of %.1f MiB stored in %.1fs; mounting", float64(cr.n)/(1<<20), time.Since(cr.start).Seconds())
	if err := os.MkdirAll(lowerDir, 0o755); err != nil {
		return err
	}
	lp, err := loop.New(sfsFile, "squashfs", "")
	if err != nil {
		return fmt.Errorf("root: loop device for %s: %w (are the loop and squashfs modules loaded?)", sfsFile, err)
	}
	if _, err := lp.Mount(lowerDir, unix.MS_RDONLY); err != nil {
		return fmt.Errorf("root: mount squashfs: %w (is the squashfs module loaded?)", err)
	}
	return overlay(lowerDir, dir)
}

// overlay puts a writable tmpfs over the read-only tree at lower and mounts the result
// at dir.
func overlay(lower, dir string) error {
	if err := os.MkdirAll(overlayDir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("overlay-rw", overlayDir, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("root: tmpfs for the overlay: %w", err)
	}
	for _, d := range []string{"upper", "work"} {
		if err := os.MkdirAll(filepath.Join(overlayDir, d), 0o755); err != nil {
			return err
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s/upper,workdir=%s/work", lower, overlayDir, overlayDir)
	if err := unix.Mount("overlay", dir, "overlay", 0, opts); err != nil {
		return fmt.Errorf("root: mount overlay (%s): %w (is the overlay module loaded?)", opts, err)
	}
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// nfsRoot mounts root=nfs:<server>:<path> with the kernel NFS client at dir (or, with
// provkit.overlay=1, below a writable tmpfs overlay).
func nfsRoot(ctx context.Context, cfg Config, dir string, con *console) error {
	r := cfg.NFS
	addr, err := resolve(ctx, r.Server)
	if err != nil {
		return fmt.Errorf("nfs: server %s: %w", r.Server, err)
	}
	opts := r.mountOptions(addr)
	target := dir
	if cfg.Overlay {
		if err := os.MkdirAll(lowerDir, 0o755); err != nil {
			return err
		}
		target = lowerDir
	}
	var flags uintptr
	if r.readOnly() {
		flags |= unix.MS_RDONLY
	}
	src := r.Server + ":" + r.Path
	con.printf("nfs: mounting %s (%s)", src, opts)
	start := time.Now()
	for attempt := 0; ; attempt++ {
		err = unix.Mount(src, target, "nfs", flags, opts)
		if err == nil {
			break
		}
		if attempt == 3 || ctx.Err() != nil || !(errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ETIMEDOUT) || errors.Is(err, unix.EHOSTUNREACH)) {
			return fmt.Errorf("nfs: mount %s (%s): %w%s", src, opts, err, nfsHint(err))
		}
		con.warn("nfs: mount %s: %v; retrying", src, err)
		time.Sleep(time.Duration(attempt+1) * time.Second)
	}
	con.printf("nfs: mounted %s in %.1fs", src, time.Since(start).Seconds())
	if cfg.Overlay {
		return overlay(lowerDir, dir)
	}
	return nil
}

func nfsHint(err error) string {
	switch {
	case errors.Is(err, unix.ENODEV):
		return " (no nfs filesystem: is the nfsv3 module in the initramfs?)"
	case errors.Is(err, unix.ECONNREFUSED), errors.Is(err, unix.EIO):
		return " (no NFS server there? without rpcbind on the server, give port=,mountport= in the root= options)"
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return " (is the path exported to this node's address?)"
	}
	return ""
}

func resolve(ctx context.Context, host string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	as, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
	if err != nil {
		return netip.Addr{}, err
	}
	return as[0].Unmap(), nil
}

// checkInit makes sure the new root has an executable init, resolving symlinks inside
// the new root (as they will be after the switch).
func checkInit(dir, init string) error {
	rfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("new root %s: %w", dir, err)
	}
	defer unix.Close(rfd)
	fd, err := unix.Openat2(rfd, init, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	if err != nil {
		return fmt.Errorf("init %s not found in the new root: %w (set provkit.init= to the image's init)", init, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("init %s: %w", init, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o111 == 0 {
		return fmt.Errorf("init %s in the new root is not an executable file (mode %#o)", init, st.Mode)
	}
	return nil
}
