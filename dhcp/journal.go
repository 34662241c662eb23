package dhcp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// The lease file is an append-only journal of text lines, one per change:
//
//	b 10.0.0.5 hw=1:52:54:00:12:34:56 exp=1767225600 cid=01525400123456 host=node01 crc=1c291ca3
//	r 10.0.0.5 hw=1:52:54:00:12:34:56 crc=...
//	d 10.0.0.9 exp=1767229200 crc=...
//	x 10.0.0.5 id=ff00112233 crc=...
//
// b binds an address to a client, r releases it, d quarantines a declined address, x is an
// administrator's removal. Every line carries a CRC-32C of the bytes before " crc=". A line
// is written with one write(2) before the client is answered, so a process killed at any
// moment leaves either the whole line or a torn last line, which the next open cuts off.
// Corruption anywhere else stops the open with an error that names the file and line.
//
// The journal is rewritten (compacted) into a snapshot of live leases when it grows past
// twice the live count: the snapshot is written to a temporary file, synced, then renamed
// over the journal, with the lines appended meanwhile copied in before the rename.

type op byte

const (
	opBind    op = 'b'
	opRelease op = 'r'
	opDecline op = 'd'
	opForget  op = 'x'
)

type record struct {
	op       op
	ip       uint32
	key      string
	expires  int64
	clientID string
	hostname string
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends the journal line of r to b.
func appendRecord(b []byte, r *record) []byte {
	start := len(b)
	b = append(b, byte(r.op), ' ')
	b = appendIP(b, r.ip)
	if r.key != "" {
		b = append(b, ' ')
		b = appendKey(b, r.key)
	}
	if r.op == opBind || r.op == opDecline {
		b = append(b, " exp="...)
		b = strconv.AppendInt(b, r.expires, 10)
	}
	if r.clientID != "" {
		b = append(b, " cid="...)
		b = hex.AppendEncode(b, []byte(r.clientID))
	}
	if r.hostname != "" {
		b = append(b, " host="...)
		b = appendEscaped(b, r.hostname)
	}
	sum := crc32.Checksum(b[start:], castagnoli)
	b = append(b, " crc="...)
	b = appendHex32(b, sum)
	return append(b, '\n')
}

func appendIP(b []byte, ip uint32) []byte {
	b = strconv.AppendUint(b, uint64(ip>>24), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(ip>>16&0xff), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(ip>>8&0xff), 10)
	b = append(b, '.')
	return strconv.AppendUint(b, uint64(ip&0xff), 10)
}

const hexDigits = "0123456789abcdef"

func appendHex32(b []byte, v uint32) []byte {
	for i := 28; i >= 0; i -= 4 {
		b = append(b, hexDigits[v>>uint(i)&0xf])
	}
	return b
}

func appendKey(b []byte, key string) []byte {
	if key[0] == 'h' {
		b = append(b, "hw="...)
		b = strconv.AppendUint(b, uint64(key[1]), 10)
		for i := 2; i < len(key); i++ {
			b = append(b, ':', hexDigits[key[i]>>4], hexDigits[key[i]&0xf])
		}
		return b
	}
	b = append(b, "id="...)
	return hex.AppendEncode(b, []byte(key[1:]))
}

// appendEscaped writes s with space, '%', '=' and non-printable bytes as %XX.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '%' || c == '=' {
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return b
}

// parseRecord parses one journal line (without its newline).
func parseRecord(line []byte) (record, error) {
	var r record
	i := bytes.LastIndex(line, []byte(" crc="))
	if i < 0 {
		return r, errors.New("no checksum")
	}
	want, err := strconv.ParseUint(string(line[i+5:]), 16, 32)
	if err != nil || len(line)-i-5 != 8 {
		return r, fmt.Errorf("bad checksum field %q", line[i+5:])
	}
	body := line[:i]
	if got := crc32.Checksum(body, castagnoli); uint32(want) != got {
		return r, fmt.Errorf("checksum mismatch: line says %08x, content is %08x", want, got)
	}
	fields := bytes.Split(body, []byte(" "))
	if len(fields) < 2 || len(fields[0]) != 1 {
		return r, errors.New("want an operation and an address")
	}
	r.op = op(fields[0][0])
	switch r.op {
	case opBind, opRelease, opDecline, opForget:
	default:
		return r, fmt.Errorf("unknown operation %q", fields[0])
	}
	a, err := parseIPv4(fields[1])
	if err != nil {
		return r, err
	}
	r.ip = a
	hasExp := false
	for _, f := range fields[2:] {
		k, v, ok := bytes.Cut(f, []byte("="))
		if !ok {
			return r, fmt.Errorf("field %q: want key=value", f)
		}
		switch string(k) {
		case "hw":
			t, mac, ok := bytes.Cut(v, []byte(":"))
			ht, err := strconv.ParseUint(string(t), 10, 8)
			if !ok || err != nil {
				return r, fmt.Errorf("hw %q: want type:mac", v)
			}
			hw, err := parseColonHex(mac)
			if err != nil || len(hw) == 0 || len(hw) > 16 {
				return r, fmt.Errorf("hw %q: bad hardware address", v)
			}
			r.key = hwKey(uint8(ht), hw)
		case "id":
			id, err := hex.DecodeString(string(v))
			if err != nil || len(id) == 0 {
				return r, fmt.Errorf("id %q: want hex", v)
			}
			r.key = idKey(id)
		case "exp":
			e, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return r, fmt.Errorf("exp %q: want unix seconds", v)
			}
			r.expires, hasExp = e, true
		case "cid":
			id, err := hex.DecodeString(string(v))
			if err != nil {
				return r, fmt.Errorf("cid %q: want hex", v)
			}
			r.clientID = string(id)
		case "host":
			h, err := unescape(v)
			if err != nil {
				return r, fmt.Errorf("host %q: %w", v, err)
			}
			r.hostname = h
		default:
			return r, fmt.Errorf("unknown field %q", k)
		}
	}
	if (r.op == opBind || r.op == opDecline) && !hasExp {
		return r, errors.New("missing exp")
	}
	if r.op != opDecline && r.key == "" {
		return r, errors.New("missing client (hw= or id=)")
	}
	return r, nil
}

func parseIPv4(b []byte) (uint32, error) {
	var v uint32
	parts := bytes.Split(b, []byte("."))
	if len(parts) != 4 {
		return 0, fmt.Errorf("address %q: want a.b.c.d", b)
	}
	for _, p := range parts {
		n, err := strconv.ParseUint(string(p), 10, 8)
		if err != nil || len(p) > 3 {
			return 0, fmt.Errorf("address %q: want a.b.c.d", b)
		}
		v = v<<8 | uint32(n)
	}
	return v, nil
}

func parseColonHex(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, nil
	}
	parts := bytes.Split(b, []byte(":"))
	out := make([]byte, len(parts))
	for i, p := range parts {
		if len(p) != 2 {
			return nil, errors.New("want two hex digits per byte")
		}
		if _, err := hex.Decode(out[i:i+1], p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func unescape(b []byte) (string, error) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '%' {
			out = append(out, b[i])
			continue
		}
		if i+2 >= len(b) {
			return "", errors.New("truncated %-escape")
		}
		var c [1]byte
		if _, err := hex.Decode(c[:], b[i+1:i+3]); err != nil {
			return "", fmt.Errorf("bad %%-escape: %w", err)
		}
		out = append(out, c[0])
		i += 2
	}
	return string(out), nil
}

// journal is the open lease file.
//
// Records are appended to pend under the lease table's lock (tmu) and numbered; a writer
// goroutine (run) owns the file: it takes what is pending, writes it with one write(2),
// and publishes the number of the last record written. A worker waits for the records its
// ACKs depend on before it sends them (group commit across workers), while OFFERs and
// NAKs, which promise nothing durable, go out at once. Compaction and periodic syncs go
// through the writer too, so only it ever touches the file after open.
//
// Without run (tests, and openJournal before Serve starts it), flush writes synchronously.
type journal struct {
	path string
	f    *os.File
	lock *os.File    // flock'd <path>.lock: one server per lease file
	tmu  *sync.Mutex // the lease table's lock

	// Guarded by tmu.
	pend      []byte // records not yet written
	seq       uint64 // number of the last record appended
	lines     int    // lines in the file and pending
	rewriting bool   // a compaction is writing its snapshot
	diff      []byte // records taken for writing while rewriting

	// Owned by the writer (or by the caller of flush).
	spare []byte
	size  int64 // bytes in the file
	dirty bool  // written since the last sync

	wake chan struct{} // a record is pending
	ctl  chan jctl

	wmu     sync.Mutex
	written uint64        // number of the last record in the file
	werr    error         // the last write error, cleared by a success
	changed chan struct{} // closed and replaced whenever written or werr changes
}

// jctl is a request to the writer: a compaction's new file to switch to, or stop.
type jctl struct {
	snapshot *os.File
	lines    int
	stop     bool
	done     chan error
}

// append adds r to the pending records and returns its number. Called with tmu held. A nil
// journal keeps leases in memory and returns 0.
func (j *journal) append(r *record) uint64 {
	if j == nil {
		return 0
	}
	j.pend = appendRecord(j.pend, r)
	j.lines++
	j.seq++
	if j.wake != nil {
		select {
		case j.wake <- struct{}{}:
		default:
		}
	}
	return j.seq
}

// writePending writes what is pending to the file with one write(2) and publishes it.
// Called by the writer, or by flush; not with tmu held.
func (j *journal) writePending() error {
	j.tmu.Lock()
	buf := j.pend
	target := j.seq
	if len(buf) > 0 {
		// Swap buffers: appends go on into spare while buf is written. spare must never
		// be buf's array (an empty swap would make them one): it is taken, then handed
		// back only after the write.
		j.pend = j.spare[:0]
		j.spare = nil
		if j.rewriting {
			j.diff = append(j.diff, buf...)
		}
	}
	j.tmu.Unlock()
	var err error
	if len(buf) > 0 {
		var n int
		n, err = j.f.Write(buf)
		if err != nil {
			if n > 0 {
				_ = j.f.Truncate(j.size) // cut a partial write off again
			}
			err = fmt.Errorf("dhcp: lease file %s: %w", j.path, err)
			// Put the records back in front of what came meanwhile, to retry.
			j.tmu.Lock()
			j.pend = append(buf, j.pend...)
			j.tmu.Unlock()
		} else {
			j.size += int64(n)
			j.dirty = true
			j.spare = buf[:0]
		}
	}
	j.wmu.Lock()
	if err == nil {
		j.written = target
	}
	j.werr = err
	if j.changed != nil {
		close(j.changed)
	}
	j.changed = make(chan struct{})
	j.wmu.Unlock()
	return err
}

// flush writes the pending records now (no writer goroutine).
func (j *journal) flush() error {
	if j == nil {
		return nil
	}
	return j.writePending()
}

// wait blocks until record seq is in the file, or the write failed, or timeout passed. It
// reports whether the record is in the file.
func (j *journal) wait(seq uint64, timeout time.Duration) (bool, error) {
	if j == nil || seq == 0 {
		return true, nil
	}
	var timer *time.Timer
	for {
		j.wmu.Lock()
		written, werr, ch := j.written, j.werr, j.changed
		if ch == nil {
			j.changed = make(chan struct{})
			ch = j.changed
		}
		j.wmu.Unlock()
		if written >= seq {
			if timer != nil {
				timer.Stop()
			}
			return true, nil
		}
		if werr != nil {
			return false, werr
		}
		if timer == nil {
			timer = time.NewTimer(timeout)
			defer timer.Stop()
		}
		select {
		case <-ch:
		case <-timer.C:
			return false, fmt.Errorf("dhcp: lease file %s: write takes longer than %s", j.path, timeout)
		}
	}
}

// run is the writer goroutine: it writes pending records as they come, syncs the file
// every syncEvery when it changed, and carries out compaction switches, until stopped.
func (j *journal) run(log func(error)) {
	syncT := time.NewTicker(syncEvery)
	defer syncT.Stop()
	for {
		select {
		case <-j.wake:
			if err := j.writePending(); err != nil {
				log(err)
				time.Sleep(10 * time.Millisecond) // a failing disk: do not spin
			}
		case <-syncT.C:
			if j.dirty {
				j.dirty = false
				if err := j.f.Sync(); err != nil {
					log(fmt.Errorf("dhcp: sync lease file %s: %w", j.path, err))
				}
			}
		case c := <-j.ctl:
			if c.stop {
				err := j.writePending()
				if serr := j.f.Sync(); err == nil && serr != nil {
					err = fmt.Errorf("dhcp: sync lease file %s: %w", j.path, serr)
				}
				c.done <- err
				return
			}
			c.done <- j.switchTo(c.snapshot, c.lines)
		}
	}
}

// start runs the writer goroutine; stop ends it after a last write and sync.
func (j *journal) start(log func(error)) (stop func() error) {
	j.wake = make(chan struct{}, 1)
	j.ctl = make(chan jctl)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		j.run(log)
	}()
	return func() error {
		done := make(chan error, 1)
		j.ctl <- jctl{stop: true, done: done}
		err := <-done
		<-exited
		return err
	}
}

// compactTo hands a synced snapshot file to the writer, which switches to it.
func (j *journal) compactTo(f *os.File, lines int) error {
	if j.ctl == nil {
		return j.switchTo(f, lines)
	}
	done := make(chan error, 1)
	j.ctl <- jctl{snapshot: f, lines: lines, done: done}
	return <-done
}

// openJournal locks and reads the lease file at path (creating it if missing), replays it
// into t, cuts off a torn last line, and opens it for appending.
func openJournal(path string, t *leaseTable) (*journal, error) {
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("dhcp: lease file lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("dhcp: lease file %s is in use by another server: %w", path, err)
	}
	j := &journal{path: path, lock: lock, tmu: &t.mu}
	ok := false
	defer func() {
		if !ok {
			j.close()
		}
	}()
	// O_APPEND: every write lands at the end, also after the truncate below.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("dhcp: lease file: %w", err)
	}
	j.f = f
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("dhcp: lease file %s: %w", path, err)
	}
	good, lines, err := replay(data, t)
	if err != nil {
		return nil, fmt.Errorf("dhcp: lease file %s: %w", path, err)
	}
	if good < len(data) {
		// A torn last line: the process died inside write(2). Its client was not answered.
		if err := f.Truncate(int64(good)); err != nil {
			return nil, fmt.Errorf("dhcp: lease file %s: cut torn line: %w", path, err)
		}
	}
	j.lines = lines
	j.size = int64(good)
	ok = true
	return j, nil
}

// replay applies every complete line of data to t. It returns the length of the prefix of
// complete lines and their count. Only the last line may be torn.
func replay(data []byte, t *leaseTable) (good, lines int, err error) {
	for off, n := 0, 1; off < len(data); n++ {
		nl := bytes.IndexByte(data[off:], '\n')
		if nl < 0 {
			return off, lines, nil // torn last line
		}
		line := data[off : off+nl]
		if len(bytes.TrimSpace(line)) > 0 {
			r, err := parseRecord(line)
			if err != nil {
				return off, lines, fmt.Errorf("line %d: %w", n, err)
			}
			t.apply(&r)
			lines++
		}
		off += nl + 1
		good = off
	}
	return good, lines, nil
}

// close writes what is pending and closes the file.
func (j *journal) close() error {
	if j == nil {
		return nil
	}
	var err error
	if j.f != nil {
		if len(j.pend) > 0 {
			err = j.flush()
		}
		if cerr := j.f.Close(); err == nil {
			err = cerr
		}
	}
	if j.lock != nil {
		j.lock.Close() // releases the flock
	}
	return err
}

// writeSnapshot writes recs to a new file at path+".tmp" and syncs it, without the table
// lock; switchTo then adds the records written meanwhile and renames it in.
func (j *journal) writeSnapshot(recs []record) (*os.File, error) {
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("dhcp: compact lease file: %w", err)
	}
	var b []byte
	for i := range recs {
		b = appendRecord(b, &recs[i])
		if len(b) > 1<<16 {
			if _, err := f.Write(b); err != nil {
				f.Close()
				return nil, fmt.Errorf("dhcp: compact lease file %s: %w", tmp, err)
			}
			b = b[:0]
		}
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, fmt.Errorf("dhcp: compact lease file %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("dhcp: compact lease file %s: %w", tmp, err)
	}
	return f, nil
}

// switchTo finishes a compaction: it writes what is pending to the current file, then the
// records taken since the snapshot began to the new file f, renames f over the journal
// and continues in it. Run by the writer (or directly without one).
func (j *journal) switchTo(f *os.File, lines int) error {
	abort := func(err error) error {
		j.tmu.Lock()
		j.rewriting = false
		j.diff = nil
		j.tmu.Unlock()
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := j.writePending(); err != nil {
		return abort(err)
	}
	j.tmu.Lock()
	j.rewriting = false
	diff := j.diff
	j.diff = nil
	pendLines := bytes.Count(j.pend, []byte("\n"))
	j.tmu.Unlock()
	if _, err := f.Write(diff); err != nil {
		return abort(fmt.Errorf("dhcp: compact lease file: %w", err))
	}
	if err := f.Sync(); err != nil {
		return abort(fmt.Errorf("dhcp: compact lease file: %w", err))
	}
	if err := os.Rename(f.Name(), j.path); err != nil {
		return abort(fmt.Errorf("dhcp: compact lease file: %w", err))
	}
	old := j.f
	j.f = f
	if st, err := f.Stat(); err == nil {
		j.size = st.Size()
	}
	j.tmu.Lock()
	j.lines = lines + bytes.Count(diff, []byte("\n")) + pendLines
	j.tmu.Unlock()
	old.Close()
	return syncDir(j.path)
}

func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
