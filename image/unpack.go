package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// UnpackOptions says how to unpack an image stream. The zero value works.
type UnpackOptions struct {
	// Format is CPIO or Tar. If empty, it is detected from the stream.
	Format Format
	// Progress receives a running count of bytes unpacked. If nil, quiet.
	Progress io.Writer
	// Logger receives warnings. If nil, discard.
	Logger *slog.Logger
	// ExecXz decompresses xz streams with the xz program when it is on PATH (four
	// times faster than the Go decoder). nodeinit has no such program and leaves it off.
	ExecXz bool
}

// UnpackStats describes a finished unpack.
type UnpackStats struct {
	Format        Format
	Compression   Compression
	Entries       int64
	Bytes         int64 // bytes of file data written
	Skipped       int64 // device nodes left out (not root)
	XattrsSkipped int64 // xattrs the target filesystem or our privileges refused (logged)
	Elapsed       time.Duration
}

// Unpack reads a packed image (cpio or tar; gzip, zstd, xz or uncompressed: all detected
// from the stream) and creates its tree in dir, streaming: nothing is held in memory
// but the current entry's header. Owners, modes, times, device nodes, hard links and
// (tar) xattrs are set as the archive says. Run as root for a faithful copy; otherwise
// owners are left as they fall and device nodes are skipped (counted in Skipped).
//
// Names are resolved inside dir as if dir were the root (see extractor): an archive
// cannot write outside it. A malformed archive is an error naming what is wrong and
// where; what was unpacked before it stays.
func Unpack(ctx context.Context, r io.Reader, dir string, opts UnpackOptions) (UnpackStats, error) {
	start := time.Now()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var stats UnpackStats
	prog := newProgress(opts.Progress, "unpack", 0)
	if prog != nil {
		r = &progressReader{r: r, p: prog}
	}
	dr, comp, err := decompress(ctx, r, opts.ExecXz)
	if err != nil {
		return stats, err
	}
	defer dr.Close()
	stats.Compression = comp
	br := bufio.NewReaderSize(&ctxReader{ctx: ctx, r: dr}, 256<<10)
	format := opts.Format
	if format == "" {
		head, _ := br.Peek(512)
		format = DetectFormat(head)
		if format == Squashfs {
			return stats, fmt.Errorf("image: unpack: squashfs cannot be unpacked from a stream (mount it): %w", ErrFormat)
		}
		if format == "" {
			return stats, fmt.Errorf("image: unpack: stream is neither cpio (newc) nor tar (after %s decompression): %w", comp, ErrFormat)
		}
	}
	stats.Format = format
	x, err := newExtractor(dir, log, &stats)
	if err != nil {
		return stats, err
	}
	defer x.close()
	switch format {
	case CPIO:
		err = unpackCPIO(br, x)
	case Tar:
		err = unpackTar(br, x)
	default:
		err = fmt.Errorf("image: unpack format %q: %w (want cpio or tar)", format, ErrFormat)
	}
	if err == nil {
		err = x.finish()
	}
	stats.Elapsed = time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			return stats, fmt.Errorf("image: unpack: %w", ctx.Err())
		}
		return stats, err
	}
	prog.finish()
	return stats, nil
}

// DetectFormat tells a packed image's format from the first bytes of its decompressed
// stream (512 are enough): CPIO, Tar or Squashfs, or "" when it is none of them.
func DetectFormat(head []byte) Format {
	switch {
	case bytes.HasPrefix(head, magicNewc) || bytes.HasPrefix(head, magicNewcCRC):
		return CPIO
	case bytes.HasPrefix(head, magicSquashfs):
		return Squashfs
	case len(head) >= 262 && bytes.Equal(head[257:262], []byte("ustar")):
		return Tar
	}
	return ""
}

func unpackCPIO(r io.Reader, x *extractor) error {
	cr := NewCPIOReader(r)
	for {
		h, err := cr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		n, err := cpioNode(h, cr)
		if err != nil {
			return err
		}
		if err := x.addCPIO(n, h); err != nil {
			return err
		}
	}
}

// cpioNode converts a cpio header; for a symlink it reads the target.
func cpioNode(h *CPIOHeader, cr *CPIOReader) (node, error) {
	name, err := cleanName(h.Name)
	if err != nil {
		return node{}, err
	}
	n := node{name: name, mode: h.Mode, uid: int(h.UID), gid: int(h.GID), mtime: int64(h.MTime),
		rdev: unix.Mkdev(h.RDevMajor, h.RDevMinor)}
	switch h.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		n.size, n.r = int64(h.Size), cr
	case unix.S_IFLNK:
		if h.Size == 0 || h.Size > cpioMaxName {
			return n, fmt.Errorf("image: cpio: symlink %s: target of %d bytes: %w", name, h.Size, ErrCPIO)
		}
		b := make([]byte, h.Size)
		if _, err := io.ReadFull(cr, b); err != nil {
			return n, fmt.Errorf("image: cpio: symlink %s: %w", name, err)
		}
		n.linkname = string(b)
	case unix.S_IFDIR, unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
	default:
		return n, fmt.Errorf("image: cpio: %s: unknown file type %#o: %w", name, h.Mode&unix.S_IFMT, ErrCPIO)
	}
	return n, nil
}

// addCPIO adds a cpio entry, turning later members of a hard-link group (same inode and
// device, nlink > 1) into links to the first.
func (x *extractor) addCPIO(n node, h *CPIOHeader) error {
	if h.Mode&unix.S_IFMT == unix.S_IFREG && h.NLink > 1 {
		k := cpioLinkKey{h.Ino, h.DevMajor, h.DevMinor}
		if first, ok := x.cpioIno[k]; ok && first != n.name {
			n.hardlink = first
			return x.link(n, false)
		}
		x.cpioIno[k] = n.name
	}
	return x.add(n)
}

func unpackTar(r io.Reader, x *extractor) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("image: tar: %w", err)
		}
		name, err := cleanName(h.Name)
		if err != nil {
			return err
		}
		n := node{name: name, mode: uint32(h.Mode) & 0o7777, uid: h.Uid, gid: h.Gid, mtime: h.ModTime.Unix(),
			rdev: unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))}
		for k, v := range h.PAXRecords {
			if xk, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if n.xattrs == nil {
					n.xattrs = map[string]string{}
				}
				n.xattrs[xk] = v
			}
		}
		switch h.Typeflag {
		case tar.TypeReg: // the reader reports old '\x00' entries as TypeReg
			n.mode |= unix.S_IFREG
			n.size, n.r = h.Size, tr
		case tar.TypeDir:
			n.mode |= unix.S_IFDIR
		case tar.TypeSymlink:
			n.mode |= unix.S_IFLNK
			n.linkname = h.Linkname
		case tar.TypeLink:
			t, err := cleanName(h.Linkname)
			if err != nil {
				return err
			}
			n.mode |= unix.S_IFREG
			n.hardlink = t
		case tar.TypeChar:
			n.mode |= unix.S_IFCHR
		case tar.TypeBlock:
			n.mode |= unix.S_IFBLK
		case tar.TypeFifo:
			n.mode |= unix.S_IFIFO
		case tar.TypeXGlobalHeader:
			continue
		default:
			x.stats.Skipped++
			x.log.Warn("image: tar entry of unsupported type left out", "path", name, "type", string(h.Typeflag))
			continue
		}
		if err := x.add(n); err != nil {
			return err
		}
	}
}

// ctxReader fails reads once ctx is done, so a long unpack stops when asked.
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

type progressReader struct {
	r io.Reader
	p *progress
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.add(int64(n))
	return n, err
}
