package image

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
)

// ErrAr is wrapped by errors about a malformed ar archive (a .deb).
var ErrAr = errors.New("malformed ar archive")

// An ArHeader is one member of an ar archive.
type ArHeader struct {
	Name string
	Size int64
	Mode uint32
}

// ArReader reads the members of a System V / GNU ar archive, the container of a Debian
// package (debian-binary, control.tar.*, data.tar.*), as a stream.
type ArReader struct {
	r      *bufio.Reader
	remain int64
	pad    int64
	off    int64
	began  bool
}

// NewArReader returns a reader of the ar archive r.
func NewArReader(r io.Reader) *ArReader {
	return &ArReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next skips the rest of the current member and returns the next header, or io.EOF.
func (a *ArReader) Next() (*ArHeader, error) {
	if !a.began {
		a.began = true
		magic := make([]byte, 8)
		if _, err := io.ReadFull(a.r, magic); err != nil || string(magic) != "!<arch>\n" {
			return nil, fmt.Errorf("image: ar: no \"!<arch>\" magic: %w", ErrAr)
		}
		a.off = 8
	}
	if n, err := a.r.Discard(int(a.remain + a.pad)); err != nil {
		a.off += int64(n)
		return nil, fmt.Errorf("image: ar: member ends early at offset %d: %w", a.off, ErrAr)
	}
	a.off += a.remain + a.pad
	a.remain, a.pad = 0, 0
	var h [60]byte
	n, err := io.ReadFull(a.r, h[:])
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, fmt.Errorf("image: ar: header at offset %d cut short (%d bytes): %w", a.off, n, ErrAr)
	}
	start := a.off
	a.off += 60
	if h[58] != '`' || h[59] != '\n' {
		return nil, fmt.Errorf("image: ar: header at offset %d: bad terminator: %w", start, ErrAr)
	}
	name := strings.TrimRight(string(h[0:16]), " ")
	name = strings.TrimSuffix(name, "/") // GNU ar ends names with "/"
	size, err := strconv.ParseInt(strings.TrimSpace(string(h[48:58])), 10, 64)
	if err != nil || size < 0 {
		return nil, fmt.Errorf("image: ar: member %q at offset %d: size %q: %w", name, start, bytes.TrimSpace(h[48:58]), ErrAr)
	}
	mode, err := strconv.ParseUint(strings.TrimSpace(string(h[40:48])), 8, 32)
	if err != nil && strings.TrimSpace(string(h[40:48])) != "" {
		return nil, fmt.Errorf("image: ar: member %q at offset %d: mode %q: %w", name, start, bytes.TrimSpace(h[40:48]), ErrAr)
	}
	a.remain, a.pad = size, size%2
	return &ArHeader{Name: name, Size: size, Mode: uint32(mode)}, nil
}

// Read reads the current member's data.
func (a *ArReader) Read(p []byte) (int, error) {
	if a.remain <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > a.remain {
		p = p[:a.remain]
	}
	n, err := a.r.Read(p)
	a.remain -= int64(n)
	a.off += int64(n)
	if err == io.EOF && a.remain > 0 {
		return n, fmt.Errorf("image: ar: member data ends early at offset %d: %w", a.off, ErrAr)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// ExtractDeb unpacks the files of a Debian package into dir, like dpkg-deb -x: the
// data.tar member, compressed with xz, zstd or gzip or not at all. Nothing is installed
// and no maintainer script runs. Use it to take a kernel and its modules from
// linux-image-*.deb without installing it.
func ExtractDeb(ctx context.Context, deb, dir string, logger *slog.Logger) error {
	f, err := os.Open(deb)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	defer f.Close()
	ar := NewArReader(f)
	for {
		h, err := ar.Next()
		if err == io.EOF {
			return fmt.Errorf("image: %s: no data.tar member: %w", deb, ErrAr)
		}
		if err != nil {
			return fmt.Errorf("image: %s: %w", deb, err)
		}
		if !strings.HasPrefix(h.Name, "data.tar") {
			continue
		}
		if _, err := Unpack(ctx, ar, dir, UnpackOptions{Format: Tar, Logger: logger, ExecXz: true}); err != nil {
			return fmt.Errorf("image: %s: %w", deb, err)
		}
		return nil
	}
}
