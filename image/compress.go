package image

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/ulikunitz/xz"
)

// Compression is how a cpio or tar stream is compressed. For squashfs it names the
// compressor mksquashfs uses inside the filesystem.
type Compression string

// Compressions.
const (
	Gzip Compression = "gzip" // parallel gzip (klauspost/pgzip): what kernels, xCAT and Warewulf expect
	Zstd Compression = "zstd" // zstandard (klauspost/compress): much faster at a similar size
	None Compression = "none"
	Xz   Compression = "xz" // read only for cpio and tar (xCAT's rootimg.cpio.xz); squashfs may use it
)

// Ext is the usual file-name suffix for the compression: ".gz", ".zst", ".xz" or "".
func (c Compression) Ext() string {
	switch c {
	case Gzip:
		return ".gz"
	case Zstd:
		return ".zst"
	case Xz:
		return ".xz"
	}
	return ""
}

// compressor wraps w in the writer for c. level 0 means the compressor's default;
// workers <= 0 means GOMAXPROCS.
func compressor(w io.Writer, c Compression, level, workers int) (io.WriteCloser, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	switch c {
	case Gzip:
		if level == 0 {
			level = pgzip.DefaultCompression
		}
		if level < pgzip.HuffmanOnly || level > pgzip.BestCompression {
			return nil, fmt.Errorf("image: gzip level %d: want 1 to 9", level)
		}
		zw, err := pgzip.NewWriterLevel(w, level)
		if err != nil {
			return nil, fmt.Errorf("image: gzip: %w", err)
		}
		// 1 MiB blocks, two per worker in flight: about 4 MiB of buffers per worker.
		if err := zw.SetConcurrency(1<<20, 2*workers); err != nil {
			return nil, fmt.Errorf("image: gzip: %w", err)
		}
		return zw, nil
	case Zstd:
		lvl := zstd.SpeedDefault
		if level != 0 {
			if level < 1 || level > 22 {
				return nil, fmt.Errorf("image: zstd level %d: want 1 to 22", level)
			}
			lvl = zstd.EncoderLevelFromZstd(level)
		}
		// Asynchronous stream encoding, without WithConcurrentBlocks: on a 1.1 GB root
		// that option took 440 MB of memory for no gain in time on two cores; this takes
		// 25 MB.
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(lvl), zstd.WithEncoderConcurrency(workers))
		if err != nil {
			return nil, fmt.Errorf("image: zstd: %w", err)
		}
		return zw, nil
	case None, "":
		return nopCloser{w}, nil
	case Xz:
		return nil, fmt.Errorf("image: compression %q: writing xz is not supported (use gzip or zstd)", c)
	}
	return nil, fmt.Errorf("image: compression %q: want gzip, zstd or none", c)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// Magic numbers of the formats Unpack and nodeinit recognise.
var (
	magicGzip     = []byte{0x1f, 0x8b}
	magicZstd     = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz       = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicNewc     = []byte("070701")
	magicNewcCRC  = []byte("070702")
	magicSquashfs = []byte("hsqs")
)

// DetectCompression reports the compression of a stream from its first bytes (at least
// 6 for xz): Gzip, Zstd, Xz, or None.
func DetectCompression(head []byte) Compression {
	switch {
	case bytes.HasPrefix(head, magicGzip):
		return Gzip
	case bytes.HasPrefix(head, magicZstd):
		return Zstd
	case bytes.HasPrefix(head, magicXz):
		return Xz
	}
	return None
}

// Decompress returns a reader of the decompressed stream of r, whose compression it
// detects from the first bytes (gzip, zstd, xz, or none). It is pure Go (nodeinit uses
// it). Closing it releases the decompressor, not r.
func Decompress(r io.Reader) (io.ReadCloser, Compression, error) {
	return decompress(context.Background(), r, false)
}

// decompress is Decompress; with useXz, it runs xz streams through the xz program when
// there is one, about four times faster than the Go decoder (a kernel package's 400 MB
// data.tar.xz: 16 s instead of 88 s here), stopped when ctx is done.
func decompress(ctx context.Context, r io.Reader, useXz bool) (io.ReadCloser, Compression, error) {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < 16 {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	head, err := br.Peek(6)
	if err != nil && err != io.EOF {
		return nil, None, fmt.Errorf("image: read stream head: %w", err)
	}
	c := DetectCompression(head)
	if c == Xz && useXz {
		if p, err := exec.LookPath("xz"); err == nil {
			return execDecompress(ctx, br, p, "-dc")
		}
	}
	switch c {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("image: gzip: %w", err)
		}
		return zr, c, nil
	case Zstd:
		// One goroutine and low memory: nodeinit runs this on a node with a small RAM disk
		// budget, and the kernel's page cache does the rest.
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(128<<20))
		if err != nil {
			return nil, c, fmt.Errorf("image: zstd: %w", err)
		}
		return zstdCloser{zr}, c, nil
	case Xz:
		zr, err := xz.NewReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("image: xz: %w", err)
		}
		return io.NopCloser(zr), c, nil
	}
	return io.NopCloser(br), None, nil
}

type zstdCloser struct{ *zstd.Decoder }

func (z zstdCloser) Close() error { z.Decoder.Close(); return nil }

// execDecompress pipes r through a decompressing program.
func execDecompress(ctx context.Context, r io.Reader, prog string, args ...string) (io.ReadCloser, Compression, error) {
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Stdin = r
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, Xz, fmt.Errorf("image: %s: %w", prog, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, Xz, fmt.Errorf("image: %s: %w", prog, err)
	}
	return &cmdReader{rc: out, cmd: cmd, stderr: &stderr}, Xz, nil
}

// cmdReader reads a program's output; a read that reaches the end reports the
// program's failure, so a corrupt stream is an error and not a short file.
type cmdReader struct {
	rc     io.ReadCloser
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	waited bool
	err    error
}

func (c *cmdReader) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	if err == io.EOF {
		if werr := c.wait(); werr != nil {
			return n, werr
		}
	}
	return n, err
}

func (c *cmdReader) wait() error {
	if !c.waited {
		c.waited = true
		if err := c.cmd.Wait(); err != nil {
			c.err = fmt.Errorf("image: %s: %w: %s", c.cmd.Path, err, strings.TrimSpace(c.stderr.String()))
		}
	}
	return c.err
}

// Close stops the program if it is still running and reaps it.
func (c *cmdReader) Close() error {
	if !c.waited && c.cmd.Process != nil {
		_ = c.cmd.Process.Kill()
	}
	c.rc.Close()
	_ = c.wait()
	return nil
}
