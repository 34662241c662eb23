package tftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// A File is the content of one boot file, opened for one transfer. Servers read it from
// the start to the end (TFTP may seek back to retransmit, HTTP seeks for Range requests)
// and close it when the transfer ends. Stat gives the size and modification time.
//
// A *os.File is a File, and the HTTP handler hands it to net/http unchanged so that
// large files go out with sendfile(2).
type File interface {
	io.ReadSeeker
	io.Closer
	Stat() (fs.FileInfo, error)
}

// Files resolves the name a client requested to content. The name is already clean:
// relative, slash-separated, without "." or ".." elements (fs.ValidPath holds).
//
// Open returns an error wrapping fs.ErrNotExist when there is no such file,
// fs.ErrPermission when the client may not read it; servers map other errors to a
// generic failure. It may be called from many goroutines at once.
type Files interface {
	Open(ctx context.Context, client netip.Addr, name string) (File, error)
}

// FilesFunc adapts a function to Files.
type FilesFunc func(ctx context.Context, client netip.Addr, name string) (File, error)

// Open calls f.
func (f FilesFunc) Open(ctx context.Context, client netip.Addr, name string) (File, error) {
	return f(ctx, client, name)
}

// Dir serves the regular files under a directory, confined by os.Root: ".." cannot climb
// out, and a symbolic link may point anywhere inside the directory but not outside it
// (such a link is refused with an error, as are absolute links). Directories, devices and
// FIFOs are reported as not existing. The zero Dir serves nothing; make one with OpenDir.
type Dir struct {
	root *os.Root
}

// OpenDir opens the boot root at path. Close it when done.
func OpenDir(path string) (*Dir, error) {
	r, err := os.OpenRoot(path)
	if err != nil {
		return nil, fmt.Errorf("tftp: boot root: %w", err)
	}
	return &Dir{root: r}, nil
}

// Close releases the directory.
func (d *Dir) Close() error {
	if d.root == nil {
		return nil
	}
	return d.root.Close()
}

// Open opens name under the root. The client address is not used.
func (d *Dir) Open(_ context.Context, _ netip.Addr, name string) (File, error) {
	if d.root == nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	// O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
	f, err := d.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, mapOpenError(err)
	}
	if err := checkRegular(f, name); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// mapOpenError turns an os.Root refusal (a path or link escaping the root) into a
// permission error, so that clients see "access violation" rather than a server fault.
func mapOpenError(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "path escapes from parent" {
		return &fs.PathError{Op: pe.Op, Path: pe.Path, Err: fs.ErrPermission}
	}
	return err
}

func checkRegular(f interface{ Stat() (fs.FileInfo, error) }, name string) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("tftp: stat %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return nil
}

// FS serves the regular files of fsys. Its files must implement io.Seeker (those of
// os.DirFS, embed.FS and fstest.MapFS do). Note that os.DirFS follows symbolic links out
// of its directory: use OpenDir for a directory on disk.
func FS(fsys fs.FS) Files {
	return FilesFunc(func(_ context.Context, _ netip.Addr, name string) (File, error) {
		f, err := fsys.Open(name)
		if err != nil {
			return nil, err
		}
		if err := checkRegular(f, name); err != nil {
			f.Close()
			return nil, err
		}
		rs, ok := f.(File)
		if !ok {
			f.Close()
			return nil, fmt.Errorf("tftp: %s: file of %T cannot seek", name, f)
		}
		return rs, nil
	})
}

// Overlay layers top over bottom: a name top does not have (fs.ErrNotExist) comes from
// bottom. Typically top generates per-node configs and bottom is the boot root.
func Overlay(top, bottom Files) Files {
	return FilesFunc(func(ctx context.Context, client netip.Addr, name string) (File, error) {
		f, err := top.Open(ctx, client, name)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return f, err
		}
		return bottom.Open(ctx, client, name)
	})
}

// NewFile returns a File over generated content. A zero modTime means unknown (HTTP then
// sends no Last-Modified).
func NewFile(name string, modTime time.Time, data []byte) File {
	return &memFile{Reader: bytes.NewReader(data), info: memInfo{name: name, size: int64(len(data)), mod: modTime}}
}

type memFile struct {
	*bytes.Reader
	info memInfo
}

func (f *memFile) Close() error               { return nil }
func (f *memFile) Stat() (fs.FileInfo, error) { return f.info, nil }

type memInfo struct {
	name string
	size int64
	mod  time.Time
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return 0o444 }
func (i memInfo) ModTime() time.Time { return i.mod }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }
