package image

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
	"golang.org/x/sys/unix"
)

// Format is the layout of a packed image.
type Format string

// Formats.
const (
	// CPIO is a cpio archive in the "newc" format, the one the kernel unpacks as an
	// initramfs and nodeinit unpacks into a RAM root. It holds owners, modes, device
	// nodes, FIFOs, sockets and hard links; it cannot hold extended attributes.
	CPIO Format = "cpio"
	// Tar is a POSIX (PAX) tar archive; it also holds extended attributes (as
	// SCHILY.xattr records, the form GNU tar and bsdtar use). Sockets are left out.
	Tar Format = "tar"
	// Squashfs is a compressed read-only filesystem, made by mksquashfs.
	Squashfs Format = "squashfs"
	// NFS is the image directory itself, exported over NFS: packing checks it and
	// writes nothing.
	NFS Format = "nfs"
)

// PackOptions says how to pack a tree. The zero value packs a gzip-compressed cpio
// archive with the files' own times, quietly.
type PackOptions struct {
	// Format is CPIO, Tar, Squashfs or NFS. If empty, CPIO.
	Format Format
	// Compression of a CPIO or Tar stream (Gzip, Zstd or None), or the compressor inside a
	// Squashfs image (Gzip, Zstd or Xz). If empty, Gzip.
	Compression Compression
	// Level is the compression level (gzip 1-9, zstd 1-22). If zero, the compressor's
	// default (gzip 6, zstd 3).
	Level int
	// Workers is the number of compression goroutines (mksquashfs processors). If zero,
	// GOMAXPROCS.
	Workers int
	// Deterministic makes the output a function of the tree's names, contents, owners
	// and modes only: every time is MTime and inode numbers are assigned in walk order.
	// (Entries are always written sorted by name.)
	Deterministic bool
	// MTime is the time of every entry when Deterministic is set. If zero, the Unix epoch.
	MTime time.Time
	// Exclude lists patterns of paths to leave out, in the syntax of xCAT's exlist
	// ("./usr/share/man*", "+./usr/share/locale/C*" to keep some back): see excluder.
	Exclude []string
	// CrossFilesystems descends into directories on which another filesystem is
	// mounted. By default the walk stays on the root's filesystem, like find -xdev, so a
	// /proc or /dev left mounted in a build root is not packed.
	CrossFilesystems bool
	// Progress receives a progress bar (carriage-return redrawn). If nil, packing is
	// quiet. TerminalProgress(os.Stderr) gives a bar only on a terminal.
	Progress io.Writer
	// Logger receives warnings (entries a format cannot hold). If nil, discard.
	Logger *slog.Logger
}

// PackStats describes a finished pack.
type PackStats struct {
	Entries int64 // entries written
	Skipped int64 // entries left out because the format cannot hold them (logged)
	Bytes   int64 // bytes of regular-file data read
	Written int64 // bytes written to the output
	Elapsed time.Duration
}

// ErrFormat is wrapped by errors about a format or compression that cannot do what was
// asked.
var ErrFormat = errors.New("unsupported format")

func (o *PackOptions) resolve() error {
	if o.Format == "" {
		o.Format = CPIO
	}
	if o.Compression == "" {
		o.Compression = Gzip
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch o.Format {
	case CPIO, Tar:
		switch o.Compression {
		case Gzip, Zstd, None:
		default:
			return fmt.Errorf("image: %s with compression %q: %w (want gzip, zstd or none)", o.Format, o.Compression, ErrFormat)
		}
	case Squashfs:
		switch o.Compression {
		case Gzip, Zstd, Xz:
		default:
			return fmt.Errorf("image: squashfs with compression %q: %w (want gzip, zstd or xz)", o.Compression, ErrFormat)
		}
	case NFS:
	default:
		return fmt.Errorf("image: format %q: %w (want cpio, tar, squashfs or nfs)", o.Format, ErrFormat)
	}
	return nil
}

// Pack writes the tree at root to w as a cpio or tar stream, compressed as opts say. It
// streams: memory stays bounded (tens of MiB of compression buffers) whatever the size
// of the tree. Squashfs and NFS need PackFile.
func Pack(ctx context.Context, root string, w io.Writer, opts PackOptions) (PackStats, error) {
	if err := opts.resolve(); err != nil {
		return PackStats{}, err
	}
	if opts.Format != CPIO && opts.Format != Tar {
		return PackStats{}, fmt.Errorf("image: Pack to a stream: format %s: %w (use PackFile)", opts.Format, ErrFormat)
	}
	ex, err := newExcluder(opts.Exclude)
	if err != nil {
		return PackStats{}, err
	}
	start := time.Now()
	var prog *progress
	if opts.Progress != nil {
		total, _, err := treeSize(ctx, root, ex, !opts.CrossFilesystems)
		if err != nil {
			return PackStats{}, err
		}
		prog = newProgress(opts.Progress, "packimage", total)
	}

	cw := &countWriter{w: w}
	zw, err := compressor(cw, opts.Compression, opts.Level, opts.Workers)
	if err != nil {
		return PackStats{}, err
	}
	bw := bufio.NewWriterSize(zw, 1<<20)
	p := &packer{opts: &opts, prog: prog, stats: PackStats{}, hardlinks: map[devIno]linkInfo{}, nextIno: 2}
	wk := &walker{root: root, exclude: ex, oneFS: !opts.CrossFilesystems, xattrs: opts.Format == Tar}
	switch opts.Format {
	case CPIO:
		rw := cpio.Newc.Writer(bw)
		wk.fn = func(e *entry) error { return p.cpioEntry(rw, root, e) }
		err = wk.walk(ctx)
		if err == nil {
			err = cpio.WriteTrailer(rw)
		}
	case Tar:
		tw := tar.NewWriter(bw)
		p.buf = make([]byte, 256<<10)
		wk.fn = func(e *entry) error { return p.tarEntry(tw, root, e) }
		err = wk.walk(ctx)
		if err == nil {
			err = tw.Close()
		}
	}
	if err == nil {
		err = bw.Flush()
	}
	if cerr := zw.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("image: %s: %w", opts.Compression, cerr)
	}
	p.stats.Written = cw.n
	p.stats.Elapsed = time.Since(start)
	if err != nil {
		return p.stats, err
	}
	prog.finish()
	return p.stats, nil
}

// PackFile packs the tree at root into the file out, in any format. The file is written
// under a temporary name in out's directory and renamed into place when complete, so a
// node never fetches half an image. For NFS nothing is written: the tree is checked and
// exported as it is.
func PackFile(ctx context.Context, root, out string, opts PackOptions) (PackStats, error) {
	if err := opts.resolve(); err != nil {
		return PackStats{}, err
	}
	switch opts.Format {
	case NFS:
		fi, err := os.Stat(root)
		if err != nil {
			return PackStats{}, fmt.Errorf("image: nfs root %s: %w", root, err)
		}
		if !fi.IsDir() {
			return PackStats{}, fmt.Errorf("image: nfs root %s: not a directory", root)
		}
		return PackStats{}, nil
	case Squashfs:
		return packSquashfs(ctx, root, out, &opts)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp*")
	if err != nil {
		return PackStats{}, fmt.Errorf("image: %w", err)
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 1<<20)
	st, err := Pack(ctx, root, bw, opts)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), out)
	}
	if err != nil {
		return st, fmt.Errorf("image: pack %s to %s: %w", root, out, err)
	}
	return st, nil
}

type devIno struct{ dev, ino uint64 }

type linkInfo struct {
	ino  uint64 // inode number in the archive
	name string // first name written
}

type packer struct {
	opts      *PackOptions
	prog      *progress
	stats     PackStats
	hardlinks map[devIno]linkInfo
	nextIno   uint64
	buf       []byte
}

func (p *packer) mtime(e *entry) int64 {
	if p.opts.Deterministic {
		if p.opts.MTime.IsZero() {
			return 0
		}
		return p.opts.MTime.Unix()
	}
	return e.st.Mtim.Sec
}

// link returns the archive inode of e and, for the second and later names of a hard-
// linked file, the first name.
func (p *packer) link(e *entry) (ino uint64, first string) {
	if e.st.Nlink > 1 && e.typ() != unix.S_IFDIR {
		k := devIno{e.st.Dev, e.st.Ino}
		if li, ok := p.hardlinks[k]; ok {
			return li.ino, li.name
		}
		p.hardlinks[k] = linkInfo{ino: p.nextIno, name: e.rel}
	}
	ino = p.nextIno
	p.nextIno++
	return ino, ""
}

func (p *packer) cpioEntry(rw cpio.RecordWriter, root string, e *entry) error {
	ino, first := p.link(e)
	info := cpio.Info{
		Ino:   ino,
		Mode:  uint64(e.st.Mode),
		UID:   uint64(e.st.Uid),
		GID:   uint64(e.st.Gid),
		NLink: uint64(e.st.Nlink),
		MTime: uint64(p.mtime(e)),
		Name:  e.rel,
	}
	rec := cpio.Record{Info: info}
	var f *os.File
	switch e.typ() {
	case unix.S_IFREG:
		if first == "" && e.st.Size > 0 {
			if e.st.Size > 1<<32-1 {
				return fmt.Errorf("image: %s: %d bytes: %w (cpio newc holds files up to 4 GiB; use tar or squashfs)",
					e.rel, e.st.Size, ErrFormat)
			}
			var err error
			f, err = os.Open(relJoin(root, e.rel))
			if err != nil {
				return fmt.Errorf("image: %w", err)
			}
			rec.Info.FileSize = uint64(e.st.Size)
			rec.ReaderAt = &fileData{f: f, size: e.st.Size, prog: p.prog}
			p.stats.Bytes += e.st.Size
		}
	case unix.S_IFLNK:
		rec.Info.FileSize = uint64(len(e.link))
		rec.ReaderAt = stringReaderAt(e.link)
	case unix.S_IFCHR, unix.S_IFBLK:
		rec.Info.Rmajor = uint64(unix.Major(e.st.Rdev))
		rec.Info.Rminor = uint64(unix.Minor(e.st.Rdev))
	}
	err := rw.WriteRecord(rec)
	if f != nil {
		f.Close()
	}
	if err != nil {
		return fmt.Errorf("image: cpio %s: %w", e.rel, err)
	}
	p.stats.Entries++
	return nil
}

func (p *packer) tarEntry(tw *tar.Writer, root string, e *entry) error {
	name := "./" + e.rel
	if e.rel == "." {
		name = "./"
	}
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(e.st.Mode & 0o7777),
		Uid:     int(e.st.Uid),
		Gid:     int(e.st.Gid),
		ModTime: time.Unix(p.mtime(e), 0),
	}
	_, first := p.link(e)
	switch e.typ() {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		if e.rel != "." {
			hdr.Name += "/"
		}
	case unix.S_IFREG:
		if first != "" {
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = "./" + first
		} else {
			hdr.Typeflag = tar.TypeReg
			hdr.Size = e.st.Size
		}
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = e.link
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if e.typ() == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor = int64(unix.Major(e.st.Rdev))
		hdr.Devminor = int64(unix.Minor(e.st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		p.stats.Skipped++
		p.opts.Logger.Warn("image: tar cannot hold this file type; left out", "path", e.rel, "mode", fmt.Sprintf("%#o", e.st.Mode))
		return nil
	}
	if len(e.xattrs) > 0 {
		hdr.PAXRecords = make(map[string]string, len(e.xattrs))
		for _, x := range e.xattrs {
			hdr.PAXRecords["SCHILY.xattr."+x.name] = string(x.value)
		}
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("image: tar %s: %w", e.rel, err)
	}
	if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
		f, err := os.Open(relJoin(root, e.rel))
		if err != nil {
			return fmt.Errorf("image: %w", err)
		}
		n, err := io.CopyBuffer(tw, io.NewSectionReader(&fileData{f: f, size: hdr.Size, prog: p.prog}, 0, hdr.Size), p.buf)
		f.Close()
		if err == nil && n != hdr.Size {
			err = fmt.Errorf("file shrank from %d to %d bytes while packing", hdr.Size, n)
		}
		if err != nil {
			return fmt.Errorf("image: tar %s: %w", e.rel, err)
		}
		p.stats.Bytes += n
	}
	p.stats.Entries++
	return nil
}

// fileData reads the first size bytes of a file, counting them for the progress bar.
// A file that grew while packing is cut at the size its header announced.
type fileData struct {
	f    *os.File
	size int64
	prog *progress
}

func (d *fileData) ReadAt(b []byte, off int64) (int, error) {
	if off >= d.size {
		return 0, io.EOF
	}
	if rem := d.size - off; int64(len(b)) > rem {
		b = b[:rem]
	}
	n, err := d.f.ReadAt(b, off)
	d.prog.add(int64(n))
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

type stringReaderAt string

func (s stringReaderAt) ReadAt(b []byte, off int64) (int, error) {
	if off >= int64(len(s)) {
		return 0, io.EOF
	}
	n := copy(b, s[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}
