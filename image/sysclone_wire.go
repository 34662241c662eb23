package image

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// The sysclone stream: what the capture agent sends over SSH, and what a packed clone
// image (rootimg.sysclone) holds for nodeinit to lay onto a disk. It is a sequence of
// frames, each a type byte, a uvarint payload length and the payload:
//
//	'H' hello (JSON)          both ways, first: version and options
//	'I' info (JSON)           agent: the golden node (host, kernel, disks, fstab)
//	'E' entry                 one file, directory, link or device (binary, below)
//	'D' data                  uvarint file id, then bytes of that file, in order
//	'Z' hole                  uvarint file id, uvarint length: a hole in a sparse file
//	'F' file end              uvarint file id, status byte (0 ok, 1 changed while read,
//	                          2 gone or unreadable), message
//	'U' up                    the last directory opened has no more entries
//	'W' walk end (JSON)       agent: totals; no more entries
//	'w' warning (text)        agent: something was left out
//	'X' error (text)          fatal
//	'R' request               receiver to agent: uvarint file id, path: send its data
//	'Q' quit                  receiver to agent: no more requests
//
// An entry is: uvarint flags, path, uvarint st_mode, uvarint uid, uvarint gid, varint
// mtime seconds, uvarint nanoseconds, then by type: regular files uvarint size and
// uvarint id; devices uvarint rdev; symlinks the target; with flagHardlink the path of
// the earlier entry it is a link to; with flagXattrs a uvarint count of (name, value)
// pairs. Strings and byte strings are a uvarint length and the bytes. With flagInline
// the file's D/Z frames and its F frame follow the entry at once; otherwise the receiver
// asks for them with R. Paths are relative, slash-separated and clean; "." is the root.
// Directories come before what they hold, and each directory's entries end with 'U'.
const (
	frameHello    = 'H'
	frameInfo     = 'I'
	frameEntry    = 'E'
	frameData     = 'D'
	frameHole     = 'Z'
	frameFileEnd  = 'F'
	frameUp       = 'U'
	frameWalkEnd  = 'W'
	frameWarning  = 'w'
	frameError    = 'X'
	frameRequest  = 'R'
	frameQuit     = 'Q'
	streamMagic   = "provkit-sysclone\n"
	streamVersion = 1

	maxFrame      = 1 << 20 // payload bytes
	dataChunk     = 256 << 10
	maxPathLen    = 4096
	maxXattrs     = 1024
	maxXattrName  = 255
	maxXattrValue = 64 << 10
)

// Entry flags.
const (
	flagInline   = 1 << 0
	flagHardlink = 1 << 1
	flagXattrs   = 1 << 2
)

// File end statuses.
const (
	fileOK      = 0
	fileChanged = 1 // the file changed while it was read: what arrived may be torn
	fileGone    = 2 // the file vanished or could not be read: nothing usable arrived
)

// ErrStream is wrapped by errors about a malformed sysclone stream.
var ErrStream = errors.New("bad sysclone stream")

// cloneEntry is one entry of the stream.
type cloneEntry struct {
	flags    uint64
	path     string
	mode     uint32 // st_mode: type and permission bits
	uid, gid uint32
	mtime    int64 // seconds
	mtimeNs  uint32
	size     int64  // regular files
	id       uint64 // regular files: the id its data frames carry
	rdev     uint64 // devices
	link     string // symlink target, or with flagHardlink the first name
	xattrs   []xattr
}

func (e *cloneEntry) typ() uint32 { return e.mode & unix.S_IFMT }

func (e *cloneEntry) hardlink() bool { return e.flags&flagHardlink != 0 }

// frameWriter writes frames to a buffered stream.
type frameWriter struct {
	w   *bufio.Writer
	buf []byte // scratch for building payloads
	n   int64  // bytes written
}

func newFrameWriter(w io.Writer) *frameWriter {
	return &frameWriter{w: bufio.NewWriterSize(w, 256<<10), buf: make([]byte, 0, 4096)}
}

func (fw *frameWriter) frame(typ byte, payload []byte) error {
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = typ
	n := 1 + binary.PutUvarint(hdr[1:], uint64(len(payload)))
	if _, err := fw.w.Write(hdr[:n]); err != nil {
		return err
	}
	_, err := fw.w.Write(payload)
	fw.n += int64(n + len(payload))
	return err
}

// frame2 writes a frame whose payload is head followed by body (data frames: the id,
// then the file's bytes without copying them into a payload first).
func (fw *frameWriter) frame2(typ byte, head, body []byte) error {
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = typ
	n := 1 + binary.PutUvarint(hdr[1:], uint64(len(head)+len(body)))
	if _, err := fw.w.Write(hdr[:n]); err != nil {
		return err
	}
	if _, err := fw.w.Write(head); err != nil {
		return err
	}
	_, err := fw.w.Write(body)
	fw.n += int64(n + len(head) + len(body))
	return err
}

func (fw *frameWriter) flush() error { return fw.w.Flush() }

func (fw *frameWriter) entry(e *cloneEntry) error {
	b := fw.buf[:0]
	b = binary.AppendUvarint(b, e.flags)
	b = appendString(b, e.path)
	b = binary.AppendUvarint(b, uint64(e.mode))
	b = binary.AppendUvarint(b, uint64(e.uid))
	b = binary.AppendUvarint(b, uint64(e.gid))
	b = binary.AppendVarint(b, e.mtime)
	b = binary.AppendUvarint(b, uint64(e.mtimeNs))
	switch {
	case e.hardlink():
		b = appendString(b, e.link)
	case e.typ() == unix.S_IFREG:
		b = binary.AppendUvarint(b, uint64(e.size))
		b = binary.AppendUvarint(b, e.id)
	case e.typ() == unix.S_IFCHR || e.typ() == unix.S_IFBLK:
		b = binary.AppendUvarint(b, e.rdev)
	case e.typ() == unix.S_IFLNK:
		b = appendString(b, e.link)
	}
	if e.flags&flagXattrs != 0 {
		b = binary.AppendUvarint(b, uint64(len(e.xattrs)))
		for _, x := range e.xattrs {
			b = appendString(b, x.name)
			b = appendString(b, string(x.value))
		}
	}
	fw.buf = b
	if len(b) > maxFrame {
		return fmt.Errorf("%w: entry %s is %d bytes", ErrStream, e.path, len(b))
	}
	return fw.frame(frameEntry, b)
}

func (fw *frameWriter) idFrame(typ byte, id uint64, vals ...uint64) error {
	b := binary.AppendUvarint(fw.buf[:0], id)
	for _, v := range vals {
		b = binary.AppendUvarint(b, v)
	}
	fw.buf = b
	return fw.frame(typ, b)
}

func (fw *frameWriter) data(id uint64, p []byte) error {
	var head [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(head[:], id)
	return fw.frame2(frameData, head[:n], p)
}

func (fw *frameWriter) fileEnd(id uint64, status byte, msg string) error {
	b := binary.AppendUvarint(fw.buf[:0], id)
	b = append(b, status)
	b = append(b, msg...)
	fw.buf = b
	return fw.frame(frameFileEnd, b)
}

func (fw *frameWriter) request(id uint64, p string) error {
	b := binary.AppendUvarint(fw.buf[:0], id)
	b = appendString(b, p)
	fw.buf = b
	return fw.frame(frameRequest, b)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// frameReader reads frames; the payload slice is valid until the next call.
type frameReader struct {
	r   *bufio.Reader
	buf []byte
	n   int64 // bytes read
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 256<<10), buf: make([]byte, 64<<10)}
}

// next returns the next frame. io.EOF at a frame boundary is returned as io.EOF; inside
// a frame as io.ErrUnexpectedEOF.
func (fr *frameReader) next() (byte, []byte, error) {
	typ, err := fr.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, err := binary.ReadUvarint(fr.r)
	if err != nil {
		return 0, nil, unexpected(err)
	}
	if n > maxFrame {
		return 0, nil, fmt.Errorf("%w: frame %q of %d bytes (at most %d)", ErrStream, typ, n, maxFrame)
	}
	if int(n) > cap(fr.buf) {
		fr.buf = make([]byte, n)
	}
	p := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, p); err != nil {
		return 0, nil, unexpected(err)
	}
	fr.n += 1 + int64(uvarintLen(n)) + int64(n)
	return typ, p, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// dec reads the fields of a payload; the first error sticks.
type dec struct {
	b   []byte
	err error
}

func (d *dec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: truncated number", ErrStream)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: truncated number", ErrStream)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) bytes(max int) []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: string of %d bytes (at most %d, %d left)", ErrStream, n, max, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) byte1() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = fmt.Errorf("%w: truncated", ErrStream)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// decodeEntry reads an 'E' payload and checks it: a clean relative path, a known file
// type, bounded names and values.
func decodeEntry(p []byte) (cloneEntry, error) {
	d := &dec{b: p}
	var e cloneEntry
	e.flags = d.uvarint()
	e.path = string(d.bytes(maxPathLen))
	mode := d.uvarint()
	uid, gid := d.uvarint(), d.uvarint()
	e.mtime = d.varint()
	ns := d.uvarint()
	if d.err != nil {
		return e, d.err
	}
	if mode > 0xffffffff || uid > 0xffffffff || gid > 0xffffffff || ns >= 1e9 {
		return e, fmt.Errorf("%w: entry %q: mode, owner or time out of range", ErrStream, e.path)
	}
	e.mode, e.uid, e.gid, e.mtimeNs = uint32(mode), uint32(uid), uint32(gid), uint32(ns)
	if err := checkStreamPath(e.path); err != nil {
		return e, err
	}
	switch {
	case e.hardlink():
		e.link = string(d.bytes(maxPathLen))
		if d.err == nil {
			if err := checkStreamPath(e.link); err != nil || e.link == "." || e.typ() == unix.S_IFDIR {
				return e, fmt.Errorf("%w: entry %q: bad hard link target %q", ErrStream, e.path, e.link)
			}
		}
	case e.typ() == unix.S_IFREG:
		size := d.uvarint()
		e.id = d.uvarint()
		if size > 1<<62 {
			return e, fmt.Errorf("%w: entry %q: size %d", ErrStream, e.path, size)
		}
		e.size = int64(size)
	case e.typ() == unix.S_IFCHR || e.typ() == unix.S_IFBLK:
		e.rdev = d.uvarint()
	case e.typ() == unix.S_IFLNK:
		e.link = string(d.bytes(maxPathLen))
		if d.err == nil && (e.link == "" || strings.IndexByte(e.link, 0) >= 0) {
			return e, fmt.Errorf("%w: symlink %q: bad target", ErrStream, e.path)
		}
	case e.typ() == unix.S_IFDIR, e.typ() == unix.S_IFIFO, e.typ() == unix.S_IFSOCK:
	default:
		return e, fmt.Errorf("%w: entry %q: unknown file type %#o", ErrStream, e.path, e.typ())
	}
	if e.path == "." && e.typ() != unix.S_IFDIR {
		return e, fmt.Errorf("%w: the root entry is not a directory", ErrStream)
	}
	if e.flags&flagXattrs != 0 {
		n := d.uvarint()
		if n > maxXattrs {
			return e, fmt.Errorf("%w: entry %q: %d xattrs", ErrStream, e.path, n)
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			name := string(d.bytes(maxXattrName))
			val := d.bytes(maxXattrValue)
			if d.err == nil && (name == "" || strings.IndexByte(name, 0) >= 0) {
				return e, fmt.Errorf("%w: entry %q: bad xattr name", ErrStream, e.path)
			}
			e.xattrs = append(e.xattrs, xattr{name: name, value: append([]byte(nil), val...)})
		}
	}
	if e.flags&^(flagInline|flagHardlink|flagXattrs) != 0 {
		return e, fmt.Errorf("%w: entry %q: unknown flags %#x", ErrStream, e.path, e.flags)
	}
	if d.err != nil {
		return e, fmt.Errorf("entry %q: %w", e.path, d.err)
	}
	if len(d.b) != 0 {
		return e, fmt.Errorf("%w: entry %q: %d bytes left over", ErrStream, e.path, len(d.b))
	}
	return e, nil
}

// checkStreamPath accepts "." and clean relative slash-separated paths without "..".
func checkStreamPath(p string) error {
	if p == "." {
		return nil
	}
	if p == "" || strings.IndexByte(p, 0) >= 0 || path.IsAbs(p) || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("%w: path %q", ErrStream, p)
	}
	return nil
}
