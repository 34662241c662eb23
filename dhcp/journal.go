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
	"syscall"
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

// journal is the open lease file. Its methods are called with the lease table's lock held,
// except sync and the slow half of compaction, which run on the maintenance goroutine.
//
// Records are appended to pend and written by flush, one write(2) for all the records of
// a batch of packets (group commit). A worker flushes before it sends any reply that
// depends on a record, so no client is acknowledged before its lease is in the file.
type journal struct {
	path  string
	f     *os.File
	lock  *os.File // flock'd <path>.lock: one server per lease file
	pend  []byte   // records not yet written
	size  int64    // bytes in the file
	lines int      // lines in the file, and pending

	rewriting bool   // a compaction is writing the snapshot
	diff      []byte // lines written while rewriting
	dirty     bool   // written since the last sync
}

// append adds r to the pending records. A nil journal keeps leases in memory.
func (j *journal) append(r *record) {
	if j == nil {
		return
	}
	j.pend = appendRecord(j.pend, r)
	j.lines++
}

// flush writes the pending records with one write(2). On error nothing is written (a
// partial write is cut off again) and the records stay pending.
func (j *journal) flush() error {
	if j == nil || len(j.pend) == 0 {
		return nil
	}
	n, err := j.f.Write(j.pend)
	if err != nil {
		if n > 0 {
			_ = j.f.Truncate(j.size)
		}
		return fmt.Errorf("dhcp: lease file %s: %w", j.path, err)
	}
	j.size += int64(n)
	if j.rewriting {
		j.diff = append(j.diff, j.pend...)
	}
	j.pend = j.pend[:0]
	j.dirty = true
	return nil
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
	j := &journal{path: path, lock: lock}
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
		err = j.flush()
		if cerr := j.f.Close(); err == nil {
			err = cerr
		}
	}
	if j.lock != nil {
		j.lock.Close() // releases the flock
	}
	return err
}

// writeSnapshot writes recs to a new file at path+".tmp" and syncs it; the table lock is not
// held. finishSnapshot (under the lock) then adds the lines appended meanwhile and renames it in.
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

// finishSnapshot appends the lines written since the snapshot began, renames the new file
// over the journal and switches to it. Called with the table lock held.
func (j *journal) finishSnapshot(f *os.File, lines int) error {
	if err := j.flush(); err != nil {
		j.rewriting = false
		j.diff = nil
		f.Close()
		return err
	}
	j.rewriting = false
	diff := j.diff
	j.diff = nil
	if _, err := f.Write(diff); err != nil {
		f.Close()
		return fmt.Errorf("dhcp: compact lease file: %w", err)
	}
	if err := os.Rename(f.Name(), j.path); err != nil {
		f.Close()
		return fmt.Errorf("dhcp: compact lease file: %w", err)
	}
	old := j.f
	j.f = f
	j.lines = lines + bytes.Count(diff, []byte("\n"))
	if st, err := f.Stat(); err == nil {
		j.size = st.Size()
	}
	j.dirty = true
	old.Close()
	return nil
}

func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
