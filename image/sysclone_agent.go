package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// captureHello is the receiver's first frame: what to send.
type captureHello struct {
	Version int      `json:"version"`
	Root    string   `json:"root"`              // the tree to capture on the golden node, "/" usually
	Exclude []string `json:"exclude,omitempty"` // exlist patterns ("/proc/*")
	Inline  bool     `json:"inline,omitempty"`  // send every file's data with its entry
	Xattrs  bool     `json:"xattrs,omitempty"`  // read and send extended attributes
	Totals  bool     `json:"totals,omitempty"`  // count the tree first and send 'T'
	NoInfo  bool     `json:"noinfo,omitempty"`  // skip the disk layout commands
}

// agentHello is the agent's answer.
type agentHello struct {
	Version int    `json:"version"`
	Agent   string `json:"agent"`
}

// walkTotals is the 'W' frame (and, with Totals, the 'T' frame before the walk).
type walkTotals struct {
	Entries int64 `json:"entries"`
	Files   int64 `json:"files"`
	Bytes   int64 `json:"bytes"` // regular-file sizes
}

const frameTotals = 'T'

// AgentOptions configure ServeCapture.
type AgentOptions struct {
	// Run runs a command on the golden node and returns its standard output (lsblk,
	// sfdisk). If nil, exec.CommandContext with a 30 s timeout.
	Run func(ctx context.Context, argv ...string) ([]byte, error)
}

// ServeCapture is the capture agent: the program provctl imgcapture starts on the golden
// node over SSH (nodeinit's "agent" command runs it with its standard input and output).
// It reads the receiver's hello from in, sends the node's description (host, kernel,
// disks and partition tables from lsblk and sfdisk, mounts), then walks the tree and
// sends every entry to out: data inline for a first capture, or on request when the
// receiver already has a copy and asks only for what changed. It returns when the
// receiver says it is done (nil), or on the first error.
func ServeCapture(ctx context.Context, in io.Reader, out io.Writer, opts AgentOptions) error {
	fr := newFrameReader(in)
	fw := newFrameWriter(out)
	typ, p, err := fr.next()
	if err != nil {
		return fmt.Errorf("image: agent: read hello: %w", err)
	}
	var h captureHello
	if typ != frameHello || json.Unmarshal(p, &h) != nil {
		return fmt.Errorf("image: agent: first frame is %q, not a hello: %w", typ, ErrStream)
	}
	if h.Version != streamVersion {
		_ = fw.frame(frameError, []byte(fmt.Sprintf("agent speaks version %d, receiver %d", streamVersion, h.Version)))
		_ = fw.flush()
		return fmt.Errorf("image: agent: receiver speaks version %d: %w", h.Version, ErrStream)
	}
	b, _ := json.Marshal(agentHello{Version: streamVersion, Agent: "provkit"})
	if err := fw.frame(frameHello, b); err != nil {
		return err
	}
	a := &captureAgent{fw: fw, hello: h, run: opts.Run}
	if a.run == nil {
		a.run = runCommand
	}
	ex, err := newExcluder(h.Exclude)
	if err != nil {
		a.fatal(err)
		return err
	}
	a.ex = ex
	root := h.Root
	if root == "" {
		root = "/"
	}
	root = filepath.Clean(root)
	a.root = root
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		err = fmt.Errorf("image: agent: root %s is not a directory (%v)", root, err)
		a.fatal(err)
		return err
	}
	mounts, _ := readMountinfo("/proc/self/mountinfo")
	a.devs = allowedDevices(root, st.Dev, mounts)
	if !h.NoInfo {
		info := gatherInfo(ctx, root, mounts, a.run)
		b, _ := json.Marshal(info)
		if err := a.send(func() error { return fw.frame(frameInfo, b) }); err != nil {
			return err
		}
	}
	if h.Totals {
		var t walkTotals
		w := &cloneWalker{root: root, ex: ex, devs: a.devs, fn: func(e *cloneEntry, _ string) error {
			t.Entries++
			if e.typ() == unix.S_IFREG && !e.hardlink() {
				t.Files++
				t.Bytes += e.size
			}
			return nil
		}}
		if err := w.walk(ctx); err != nil {
			a.fatal(err)
			return err
		}
		b, _ := json.Marshal(t)
		if err := a.send(func() error { return fw.frame(frameTotals, b) }); err != nil {
			return err
		}
	}
	if err := fw.flush(); err != nil {
		return err
	}

	// The requests are served while the walk goes on; both write frames under a.mu.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	reqErr := make(chan error, 1)
	go func() { reqErr <- a.serveRequests(ctx, fr) }()

	var totals walkTotals
	w := &cloneWalker{root: root, ex: ex, devs: a.devs, xattrs: h.Xattrs, warn: a.warn,
		fn: func(e *cloneEntry, abs string) error {
			totals.Entries++
			if e.typ() == unix.S_IFREG && !e.hardlink() {
				totals.Files++
				totals.Bytes += e.size
				if h.Inline {
					e.flags |= flagInline
				}
			}
			return a.send(func() error {
				if err := fw.entry(e); err != nil {
					return err
				}
				if e.flags&flagInline != 0 {
					return a.sendFile(fw, e.id, abs, e)
				}
				return nil
			})
		},
		up: func() error { return a.send(func() error { return fw.frame(frameUp, nil) }) },
	}
	werr := w.walk(ctx)
	if werr != nil {
		a.fatal(werr)
		cancel()
		<-reqErr
		return werr
	}
	b, _ = json.Marshal(totals)
	if err := a.send(func() error {
		if err := fw.frame(frameWalkEnd, b); err != nil {
			return err
		}
		return fw.flush()
	}); err != nil {
		return err
	}
	return <-reqErr
}

type captureAgent struct {
	mu    sync.Mutex
	fw    *frameWriter
	hello captureHello
	root  string
	ex    *excluder
	devs  map[uint64]bool
	run   func(ctx context.Context, argv ...string) ([]byte, error)
	buf   []byte
}

// send runs fn with the output to itself.
func (a *captureAgent) send(fn func() error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return fn()
}

func (a *captureAgent) fatal(err error) {
	_ = a.send(func() error {
		_ = a.fw.frame(frameError, []byte(err.Error()))
		return a.fw.flush()
	})
}

func (a *captureAgent) warn(msg string) {
	_ = a.send(func() error { return a.fw.frame(frameWarning, []byte(msg)) })
}

// serveRequests answers 'R' frames until 'Q' or the end of the input.
func (a *captureAgent) serveRequests(ctx context.Context, fr *frameReader) error {
	for {
		typ, p, err := fr.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("image: agent: receiver went away: %w", io.ErrUnexpectedEOF)
			}
			return fmt.Errorf("image: agent: %w", err)
		}
		switch typ {
		case frameQuit:
			return a.send(a.fw.flush)
		case frameRequest:
			d := &dec{b: p}
			id := d.uvarint()
			rel := string(d.bytes(maxPathLen))
			if d.err != nil {
				return fmt.Errorf("image: agent: request: %w", d.err)
			}
			if err := checkStreamPath(rel); err != nil || rel == "." {
				return fmt.Errorf("image: agent: request for %q: %w", rel, ErrStream)
			}
			abs := filepath.Join(a.root, filepath.FromSlash(rel))
			if err := a.send(func() error { return a.sendFile(a.fw, id, abs, nil) }); err != nil {
				return err
			}
		default:
			return fmt.Errorf("image: agent: unexpected frame %q from the receiver: %w", typ, ErrStream)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// Let the frames go out when the receiver is waiting for them.
		if fr.r.Buffered() == 0 {
			if err := a.send(a.fw.flush); err != nil {
				return err
			}
		}
	}
}

// sendFile sends the data of the regular file abs as D and Z frames and ends it with F.
// If e is nil (a request) the file is checked to still be a regular file. A file that
// cannot be opened gives an F with status fileGone.
func (a *captureAgent) sendFile(fw *frameWriter, id uint64, abs string, e *cloneEntry) error {
	f, err := openNoatime(abs)
	if err != nil {
		return fw.fileEnd(id, fileGone, err.Error())
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fw.fileEnd(id, fileGone, "not a regular file any more")
	}
	if a.buf == nil {
		a.buf = make([]byte, dataChunk)
	}
	size := st.Size
	if e != nil {
		size = e.size // the size the entry announced
	}
	var off int64
	sparse := st.Blocks*512 < st.Size
	for off < size {
		if sparse {
			data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
			if err != nil { // ENXIO: only a hole to the end
				data = size
			}
			if data > size {
				data = size
			}
			if data > off {
				if err := fw.idFrame(frameHole, id, uint64(data-off)); err != nil {
					return err
				}
				off = data
				continue
			}
			hole, err := unix.Seek(int(f.Fd()), off, unix.SEEK_HOLE)
			if err != nil || hole > size {
				hole = size
			}
			if err := a.copyRange(fw, id, f, off, hole); err != nil {
				return err
			}
			if n := hole - off; n > 0 {
				off = hole
				continue
			}
			sparse = false // the filesystem says no hole here: read on
		}
		if err := a.copyRange(fw, id, f, off, size); err != nil {
			return err
		}
		off = size
	}
	status, msg := byte(fileOK), ""
	var st2 unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st2); err == nil && (st2.Size != size || st2.Mtim != st.Mtim) {
		status, msg = fileChanged, "changed while it was read"
	}
	return fw.fileEnd(id, status, msg)
}

// copyRange sends bytes [off, end) of f. A file that shrank is padded with zeros so the
// receiver gets the announced size; the F frame then says it changed.
func (a *captureAgent) copyRange(fw *frameWriter, id uint64, f *os.File, off, end int64) error {
	for off < end {
		n := min(int64(len(a.buf)), end-off)
		m, err := f.ReadAt(a.buf[:n], off)
		if m < int(n) && (err == io.EOF || err == nil) {
			clear(a.buf[m:n])
			m = int(n)
		} else if err != nil && err != io.EOF {
			clear(a.buf[:n])
			m = int(n)
		}
		if err := fw.data(id, a.buf[:m]); err != nil {
			return err
		}
		off += int64(m)
	}
	return nil
}

func openNoatime(p string) (*os.File, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOATIME|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

// cloneWalker walks a golden node's tree depth-first, each directory's names sorted,
// staying on the filesystems in devs (the root's and the disk filesystems mounted below
// it: not /proc, /sys, tmpfs ...). Hard links after the first name of a file are sent as
// links to it.
type cloneWalker struct {
	root   string
	ex     *excluder
	devs   map[uint64]bool
	xattrs bool
	fn     func(e *cloneEntry, abs string) error
	up     func() error
	warn   func(string)
	links  map[devIno]string
	nextID uint64
}

func (w *cloneWalker) walk(ctx context.Context) error {
	w.links = map[devIno]string{}
	var st unix.Stat_t
	if err := unix.Lstat(w.root, &st); err != nil {
		return fmt.Errorf("image: capture root %s: %w", w.root, err)
	}
	e := w.entry(".", w.root, &st)
	if err := w.fn(e, w.root); err != nil {
		return err
	}
	return w.dir(ctx, w.root, ".")
}

func (w *cloneWalker) entry(rel, abs string, st *unix.Stat_t) *cloneEntry {
	e := &cloneEntry{path: rel, mode: st.Mode, uid: st.Uid, gid: st.Gid, mtime: st.Mtim.Sec, mtimeNs: uint32(st.Mtim.Nsec)}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		if st.Nlink > 1 {
			k := devIno{st.Dev, st.Ino}
			if first, ok := w.links[k]; ok {
				e.flags |= flagHardlink
				e.link = first
				return e
			}
			w.links[k] = rel
		}
		w.nextID++
		e.id, e.size = w.nextID, st.Size
	case unix.S_IFCHR, unix.S_IFBLK:
		e.rdev = st.Rdev
	case unix.S_IFLNK:
		l, err := os.Readlink(abs)
		if err != nil || l == "" {
			l = "?"
		}
		e.link = l
	}
	if w.xattrs {
		xs, err := listXattrs(abs)
		if err != nil && w.warn != nil {
			w.warn(fmt.Sprintf("%s: xattrs: %v", rel, err))
		}
		if len(xs) > 0 {
			e.flags |= flagXattrs
			e.xattrs = xs
		}
	}
	return e
}

func (w *cloneWalker) dir(ctx context.Context, abs, rel string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	names, err := readDirNames(abs)
	if err != nil {
		if w.warn != nil {
			w.warn(fmt.Sprintf("%s: %v", rel, err))
		}
		names = nil
	}
	for _, name := range names {
		childAbs := abs + "/" + name
		if abs == "/" {
			childAbs = "/" + name
		}
		childRel := name
		if rel != "." {
			childRel = rel + "/" + name
		}
		var st unix.Stat_t
		if err := unix.Lstat(childAbs, &st); err != nil {
			continue // gone while we walked
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if w.ex.excluded(childRel, isDir) {
			continue
		}
		e := w.entry(childRel, childAbs, &st)
		if err := w.fn(e, childAbs); err != nil {
			return err
		}
		if isDir && w.devs[st.Dev] {
			if err := w.dir(ctx, childAbs, childRel); err != nil {
				return err
			}
		} else if isDir && w.up != nil {
			// A mount point of another filesystem: listed, not entered.
			if err := w.up(); err != nil {
				return err
			}
		}
	}
	if w.up != nil {
		return w.up()
	}
	return nil
}

// A mount is one line of /proc/self/mountinfo.
type mount struct {
	Dev        string `json:"dev"` // "254:1"
	Mountpoint string `json:"mountpoint"`
	FSType     string `json:"fstype"`
	Source     string `json:"source"`
	Options    string `json:"options,omitempty"`
}

// readMountinfo reads the mounts of this process.
func readMountinfo(p string) ([]mount, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return parseMountinfo(string(b)), nil
}

// parseMountinfo reads /proc/<pid>/mountinfo: "36 35 98:0 /mnt1 /mnt2 rw,noatime
// master:1 - ext3 /dev/root rw,errors=continue"; octal escapes in paths are decoded.
func parseMountinfo(s string) []mount {
	var out []mount
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 6 || sep < 6 || sep+2 >= len(f) {
			continue
		}
		out = append(out, mount{Dev: f[2], Mountpoint: unescapeMount(f[4]), FSType: f[sep+1],
			Source: unescapeMount(f[sep+2]), Options: f[5]})
	}
	return out
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// diskFilesystems are the filesystem types a capture walks into when they are mounted
// below the root: the ones that live on the node's disks.
var diskFilesystems = map[string]bool{"ext2": true, "ext3": true, "ext4": true, "xfs": true, "btrfs": true,
	"vfat": true, "msdos": true, "f2fs": true, "jfs": true, "reiserfs": true, "exfat": true}

// allowedDevices returns the device numbers the walk may enter: the root's own and those
// of disk filesystems mounted below it.
func allowedDevices(root string, rootDev uint64, mounts []mount) map[uint64]bool {
	devs := map[uint64]bool{rootDev: true}
	for _, m := range mounts {
		if !diskFilesystems[m.FSType] || !under(root, m.Mountpoint) {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(m.Mountpoint, &st) == nil {
			devs[st.Dev] = true
		}
	}
	return devs
}

// under reports whether p is root or below it.
func under(root, p string) bool {
	if root == "/" {
		return strings.HasPrefix(p, "/")
	}
	return p == root || strings.HasPrefix(p, root+"/")
}

// GoldenInfo describes the golden node at capture time: what the agent reports besides
// the files.
type GoldenInfo struct {
	Hostname  string   `json:"hostname"`
	Machine   string   `json:"machine"` // uname -m
	Kernel    string   `json:"kernel"`  // uname -r
	OSRelease string   `json:"os_release,omitempty"`
	Mounts    []mount  `json:"mounts,omitempty"` // disk filesystems under the root, mountpoints relative to it ("/", "/boot")
	Swaps     []string `json:"swaps,omitempty"`  // devices from /proc/swaps
	// Lsblk is `lsblk -J -b -o ...` output; Sfdisk maps each disk that holds a captured
	// filesystem ("/dev/vda") to `sfdisk -J` output, SfdiskDump to `sfdisk -d`.
	Lsblk      string            `json:"lsblk,omitempty"`
	Sfdisk     map[string]string `json:"sfdisk,omitempty"`
	SfdiskDump map[string]string `json:"sfdisk_dump,omitempty"`
	// MBR maps each of those disks to its first 440 bytes (boot code), hex.
	MBR map[string]string `json:"mbr,omitempty"`
	// Blkid maps each partition of those disks that lsblk gives no FSTYPE for (lsblk
	// reads it from udev's database: a node without udev has none) to `blkid -o export`
	// output.
	Blkid    map[string]string `json:"blkid,omitempty"`
	Warnings []string          `json:"warnings,omitempty"`
}

// lsblkColumns are the columns the layout needs.
const lsblkColumns = "NAME,KNAME,PATH,TYPE,SIZE,FSTYPE,UUID,LABEL,PARTUUID,PARTLABEL,PARTTYPE,PKNAME,MAJ:MIN,LOG-SEC"

func gatherInfo(ctx context.Context, root string, mounts []mount, run func(context.Context, ...string) ([]byte, error)) GoldenInfo {
	var info GoldenInfo
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		info.Hostname = unix.ByteSliceToString(u.Nodename[:])
		info.Machine = unix.ByteSliceToString(u.Machine[:])
		info.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err == nil {
			info.OSRelease = string(b)
			break
		}
	}
	disks := map[string]bool{}
	for _, m := range mounts {
		if !diskFilesystems[m.FSType] || !under(root, m.Mountpoint) {
			continue
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(m.Mountpoint, root), "/")
		if root == "/" {
			rel = m.Mountpoint
		}
		m.Mountpoint = path.Clean(rel)
		info.Mounts = append(info.Mounts, m)
		if strings.HasPrefix(m.Source, "/dev/") {
			disks[m.Source] = true
		}
	}
	if b, err := os.ReadFile("/proc/swaps"); err == nil {
		for i, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); i > 0 && len(f) > 1 && f[1] == "partition" {
				info.Swaps = append(info.Swaps, unescapeMount(f[0]))
				disks[unescapeMount(f[0])] = true
			}
		}
	}
	out, err := run(ctx, "lsblk", "-J", "-b", "-o", lsblkColumns)
	if err != nil {
		info.Warnings = append(info.Warnings, fmt.Sprintf("lsblk: %v", err))
		return info
	}
	info.Lsblk = string(out)
	parents, err := parentDisks(out, slices.Sorted(mapKeys(disks)))
	if err != nil {
		info.Warnings = append(info.Warnings, err.Error())
	}
	info.Sfdisk, info.SfdiskDump, info.MBR = map[string]string{}, map[string]string{}, map[string]string{}
	nodes, _ := ParseLsblk(out)
	for _, d := range parents {
		if out, err := run(ctx, "sfdisk", "-J", d); err == nil {
			info.Sfdisk[d] = string(out)
		} else {
			info.Warnings = append(info.Warnings, fmt.Sprintf("sfdisk -J %s: %v", d, err))
		}
		if out, err := run(ctx, "sfdisk", "-d", d); err == nil {
			info.SfdiskDump[d] = string(out)
		}
		for _, n := range nodes {
			if n.PKName != "" && "/dev/"+n.PKName == d && n.FSType == "" && strings.HasPrefix(n.Path, "/dev/") {
				if out, err := run(ctx, "blkid", "-o", "export", n.Path); err == nil {
					if info.Blkid == nil {
						info.Blkid = map[string]string{}
					}
					info.Blkid[n.Path] = string(out)
				}
			}
		}
		if f, err := os.Open(d); err == nil {
			b := make([]byte, 440)
			if _, err := io.ReadFull(f, b); err == nil {
				info.MBR[d] = fmt.Sprintf("%x", b)
			}
			f.Close()
		}
	}
	return info
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// runCommand runs argv and returns its standard output.
func runCommand(ctx context.Context, argv ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if s := strings.TrimSpace(stderr.String()); s != "" {
			return out, fmt.Errorf("%w: %s", err, s)
		}
		return out, err
	}
	return out, nil
}
