package image

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// A CPIOHeader is one record of a newc ("070701") or newc-with-CRC ("070702") cpio
// archive.
type CPIOHeader struct {
	Ino       uint32
	Mode      uint32 // type and permission bits, Linux encoding (S_IFREG|0644 ...)
	UID, GID  uint32
	NLink     uint32
	MTime     uint32
	Size      uint32 // bytes of data that follow (the target, for a symlink)
	DevMajor  uint32
	DevMinor  uint32
	RDevMajor uint32 // device numbers of a character or block device node
	RDevMinor uint32
	Check     uint32
	Name      string
}

// ErrCPIO is wrapped by errors about a malformed cpio archive.
var ErrCPIO = errors.New("malformed cpio archive")

const (
	cpioHeaderLen = 110
	// cpioMaxName bounds the name field (PATH_MAX): a header claiming more is malformed,
	// so a hostile archive cannot make the reader allocate gigabytes.
	cpioMaxName = 4096
	cpioTrailer = "TRAILER!!!"
)

// CPIOReader reads a newc cpio stream record by record, without seeking: it is what
// nodeinit unpacks a downloaded image with. Archives concatenated one after the other
// (as in a Linux initramfs, each ending in its trailer, with NUL padding between) read as
// one.
type CPIOReader struct {
	r      *bufio.Reader
	off    int64 // bytes consumed from r
	remain int64 // data bytes of the current record not yet read
	pad    int64 // padding after the current record's data
	done   bool
	hdr    [cpioHeaderLen]byte
}

// NewCPIOReader returns a reader of the cpio stream r.
func NewCPIOReader(r io.Reader) *CPIOReader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &CPIOReader{r: br}
}

func (c *CPIOReader) discard(n int64) error {
	for n > 0 {
		k := int(min(n, 1<<30))
		d, err := c.r.Discard(k)
		c.off += int64(d)
		n -= int64(d)
		if err != nil {
			return err
		}
	}
	return nil
}

// Next skips what is left of the current record and returns the next header. At the end
// of the archive it returns io.EOF.
func (c *CPIOReader) Next() (*CPIOHeader, error) {
	if c.done {
		return nil, io.EOF
	}
	if err := c.discard(c.remain + c.pad); err != nil {
		return nil, c.truncated(err)
	}
	c.remain, c.pad = 0, 0
	for {
		h, err := c.readHeader()
		if err != nil {
			return nil, err
		}
		if h.Name != cpioTrailer {
			return h, nil
		}
		// The trailer: another archive may follow after NUL padding.
		if err := c.discard(c.pad); err != nil {
			return nil, c.truncated(err)
		}
		c.pad = 0
		more, err := c.skipZeros()
		if err != nil {
			return nil, err
		}
		if !more {
			c.done = true
			return nil, io.EOF
		}
	}
}

// skipZeros skips NUL padding after a trailer and reports whether another archive
// starts after it.
func (c *CPIOReader) skipZeros() (bool, error) {
	for {
		b, err := c.r.Peek(1)
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if b[0] != 0 {
			head, err := c.r.Peek(6)
			if err == nil && (bytes.Equal(head, magicNewc) || bytes.Equal(head, magicNewcCRC)) {
				return true, nil
			}
			return false, fmt.Errorf("image: cpio: data after the trailer at offset %d: %w", c.off, ErrCPIO)
		}
		if _, err := c.r.Discard(1); err != nil {
			return false, err
		}
		c.off++
	}
}

func (c *CPIOReader) truncated(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("image: cpio: archive ends at offset %d inside a record: %w", c.off, ErrCPIO)
	}
	return fmt.Errorf("image: cpio: %w", err)
}

func (c *CPIOReader) readHeader() (*CPIOHeader, error) {
	start := c.off
	n, err := io.ReadFull(c.r, c.hdr[:])
	c.off += int64(n)
	if err == io.EOF {
		return nil, fmt.Errorf("image: cpio: archive ends at offset %d without a trailer: %w", c.off, ErrCPIO)
	}
	if err != nil {
		return nil, c.truncated(err)
	}
	magic := c.hdr[:6]
	if !bytes.Equal(magic, magicNewc) && !bytes.Equal(magic, magicNewcCRC) {
		return nil, fmt.Errorf("image: cpio: bad magic %q at offset %d (want newc 070701 or 070702): %w", magic, start, ErrCPIO)
	}
	var f [13]uint32
	for i := range f {
		field := c.hdr[6+8*i : 14+8*i]
		v, err := strconv.ParseUint(string(field), 16, 32)
		if err != nil {
			return nil, fmt.Errorf("image: cpio: header at offset %d: field %d %q is not hex: %w", start, i, field, ErrCPIO)
		}
		f[i] = uint32(v)
	}
	h := &CPIOHeader{Ino: f[0], Mode: f[1], UID: f[2], GID: f[3], NLink: f[4], MTime: f[5], Size: f[6],
		DevMajor: f[7], DevMinor: f[8], RDevMajor: f[9], RDevMinor: f[10], Check: f[12]}
	namesize := f[11]
	if namesize == 0 || namesize > cpioMaxName {
		return nil, fmt.Errorf("image: cpio: header at offset %d: name size %d (want 1 to %d): %w", start, namesize, cpioMaxName, ErrCPIO)
	}
	// The name is NUL-terminated and padded so that header+name is a multiple of 4.
	nameLen := int64(namesize)
	padded := (cpioHeaderLen+nameLen+3)&^3 - cpioHeaderLen
	buf := make([]byte, padded)
	n, err = io.ReadFull(c.r, buf)
	c.off += int64(n)
	if err != nil {
		return nil, c.truncated(err)
	}
	name := buf[:nameLen]
	if name[nameLen-1] != 0 {
		return nil, fmt.Errorf("image: cpio: header at offset %d: name not NUL-terminated: %w", start, ErrCPIO)
	}
	name = name[:nameLen-1]
	if bytes.IndexByte(name, 0) >= 0 {
		return nil, fmt.Errorf("image: cpio: header at offset %d: NUL inside the name: %w", start, ErrCPIO)
	}
	h.Name = string(name)
	c.remain = int64(h.Size)
	c.pad = (4 - int64(h.Size)%4) % 4
	return h, nil
}

// Read reads the data of the current record.
func (c *CPIOReader) Read(p []byte) (int, error) {
	if c.remain <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.remain {
		p = p[:c.remain]
	}
	n, err := c.r.Read(p)
	c.off += int64(n)
	c.remain -= int64(n)
	if err == io.EOF {
		if c.remain > 0 {
			return n, c.truncated(io.ErrUnexpectedEOF)
		}
		err = nil
	}
	return n, err
}

// WriteTo copies the data of the current record to w.
func (c *CPIOReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for c.remain > 0 {
		chunk, err := c.r.Peek(int(min(c.remain, int64(c.r.Size()))))
		if len(chunk) > 0 {
			m, werr := w.Write(chunk)
			total += int64(m)
			if _, derr := c.r.Discard(m); derr != nil {
				return total, derr
			}
			c.off += int64(m)
			c.remain -= int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err != nil {
			if err == io.EOF || err == bufio.ErrBufferFull {
				if err == io.EOF && c.remain > 0 && len(chunk) == 0 {
					return total, c.truncated(io.ErrUnexpectedEOF)
				}
				continue
			}
			return total, err
		}
	}
	return total, nil
}
