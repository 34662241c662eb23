package dhcp

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRecordRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		r    record
		line string // without the checksum
	}{
		{"bind", record{op: opBind, ip: addrU32(ip("10.91.0.5")), key: hwKey(1, mac1), expires: 1767225600,
			clientID: "\x01RT\x00\x91\x00\x01", hostname: "node01"},
			"b 10.91.0.5 hw=1:52:54:00:91:00:01 exp=1767225600 cid=01525400910001 host=node01"},
		{"bind by client id, odd host name", record{op: opBind, ip: addrU32(ip("10.91.0.6")), key: idKey([]byte{0xff, 1}), expires: 5,
			hostname: "a b=c%d\x00"}, "b 10.91.0.6 id=ff01 exp=5 host=a%20b%3dc%25d%00"},
		{"release", record{op: opRelease, ip: addrU32(ip("10.91.0.5")), key: hwKey(1, mac1)}, "r 10.91.0.5 hw=1:52:54:00:91:00:01"},
		{"decline", record{op: opDecline, ip: addrU32(ip("10.91.0.9")), expires: 99}, "d 10.91.0.9 exp=99"},
		{"forget", record{op: opForget, ip: addrU32(ip("10.91.0.5")), key: hwKey(32, make([]byte, 16))},
			"x 10.91.0.5 hw=32:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := appendRecord(nil, &tc.r)
			if !bytes.HasSuffix(b, []byte("\n")) {
				t.Fatalf("line %q has no newline", b)
			}
			if got := string(b[:bytes.LastIndex(b, []byte(" crc="))]); got != tc.line {
				t.Errorf("line = %q, want %q", got, tc.line)
			}
			got, err := parseRecord(bytes.TrimSuffix(b, []byte("\n")))
			if err != nil {
				t.Fatalf("parseRecord(%q) = %v", b, err)
			}
			if diff := cmp.Diff(tc.r, got, cmp.AllowUnexported(record{})); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRecordErrors(t *testing.T) {
	good := appendRecord(nil, &record{op: opBind, ip: 1, key: hwKey(1, mac1), expires: 5})
	good = good[:len(good)-1]
	flip := bytes.Clone(good)
	flip[3] ^= 1
	for _, tc := range []struct {
		name, line, want string
	}{
		{"no checksum", "b 10.0.0.1 hw=1:00:11:22:33:44:55 exp=5", "no checksum"},
		{"bad checksum", string(flip), "checksum mismatch"},
		{"short checksum", "b 1.2.3.4 crc=abc", "bad checksum"},
		{"unknown op", withCRC("q 1.2.3.4 hw=1:00:11"), "unknown operation"},
		{"bad address", withCRC("b 1.2.3 hw=1:00:11 exp=1"), "want a.b.c.d"},
		{"big octet", withCRC("b 1.2.3.400 hw=1:00:11 exp=1"), "want a.b.c.d"},
		{"no exp", withCRC("b 1.2.3.4 hw=1:00:11"), "missing exp"},
		{"no client", withCRC("b 1.2.3.4 exp=1"), "missing client"},
		{"bad hw", withCRC("b 1.2.3.4 hw=1:0:11 exp=1"), "bad hardware address"},
		{"unknown field", withCRC("b 1.2.3.4 hw=1:00:11 exp=1 color=red"), "unknown field"},
		{"truncated escape", withCRC("b 1.2.3.4 hw=1:00:11 exp=1 host=ab%4"), "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseRecord([]byte(tc.line))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseRecord(%q) = %v, want error containing %q", tc.line, err, tc.want)
			}
		})
	}
}

// withCRC appends a valid checksum, so the parse fails on what the test means.
func withCRC(body string) string {
	return fmt.Sprintf("%s crc=%08x", body, crc32.Checksum([]byte(body), castagnoli))
}

// leaseDump is a comparable view of a lease table.
type leaseDump struct {
	IP, Key, CID, Host string
	State              LeaseState
	Expires            int64
}

func dump(t *leaseTable) []leaseDump {
	var out []leaseDump
	for ipv, l := range t.byIP {
		if l.ip != ipv {
			panic("index out of sync")
		}
		if l.key != "" && t.byKey[l.key] != l {
			panic("key index out of sync")
		}
		out = append(out, leaseDump{u32Addr(l.ip).String(), fmt.Sprintf("%x", l.key), fmt.Sprintf("%x", l.clientID), l.hostname, l.state, l.expires})
	}
	for k, l := range t.byKey {
		if t.byIP[l.ip] != l {
			panic(fmt.Sprintf("key %x points at a lease not indexed by address", k))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP < out[j].IP })
	return out
}

// journalOps drives a table with a journal through binds, moves, releases, declines and
// forgets, and returns the file's bytes.
func journalOps(t *testing.T, path string) []byte {
	t.Helper()
	tab := newLeaseTable()
	j, err := openJournal(path, tab)
	if err != nil {
		t.Fatal(err)
	}
	tab.j = j
	k := func(i int) string { return hwKey(1, []byte{2, 0, 0, 0, 0, byte(i)}) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 6; i++ {
		tab.bind(k(i), uint32(0x0a5b0000+i), int64(1000+i), []byte{1, byte(i)}, []byte(fmt.Sprintf("n%d", i)))
		must(j.flush()) // one record per write, as under light load
	}
	tab.bind(k(2), 0x0a5b0002, 2000, nil, []byte("n2")) // renewal
	tab.bind(k(3), 0x0a5b0010, 2001, nil, nil)          // moves
	tab.bind(k(7), 0x0a5b0003, 2002, nil, nil)          // takes the freed address
	must(j.flush())                                     // a group commit
	tab.release(k(4), 0x0a5b0004)
	tab.decline(k(5), 0x0a5b0005, 3000)
	tab.forget(k(6))
	tab.bind(k(8), 0x0a5b0004, 2003, nil, []byte("eight"))
	must(j.close())
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestJournalCutAnywhere is kill -9 at every byte: whatever prefix of the file survives,
// opening it succeeds, holds exactly the complete lines, and the file is usable after.
func TestJournalCutAnywhere(t *testing.T) {
	dir := t.TempDir()
	data := journalOps(t, filepath.Join(dir, "full"))
	lines := bytes.SplitAfter(data, []byte("\n"))
	for cut := 0; cut <= len(data); cut++ {
		path := filepath.Join(dir, "cut")
		os.Remove(path)
		if err := os.WriteFile(path, data[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		// The expected state: the complete lines of the prefix, applied in order.
		want := newLeaseTable()
		n := 0
		for _, l := range lines {
			if n+len(l) > cut || !bytes.HasSuffix(l, []byte("\n")) {
				break
			}
			r, err := parseRecord(bytes.TrimSuffix(l, []byte("\n")))
			if err != nil {
				t.Fatal(err)
			}
			want.apply(&r)
			n += len(l)
		}
		got := newLeaseTable()
		j, err := openJournal(path, got)
		if err != nil {
			t.Fatalf("cut at %d: open: %v", cut, err)
		}
		if diff := cmp.Diff(dump(want), dump(got)); diff != "" {
			t.Fatalf("cut at %d (-want +got):\n%s", cut, diff)
		}
		got.j = j
		got.bind(hwKey(1, mac3), 0x0a5b0063, 9, nil, nil)
		if err := j.close(); err != nil {
			t.Fatal(err)
		}
		after := newLeaseTable()
		j2, err := openJournal(path, after)
		if err != nil {
			t.Fatalf("cut at %d: reopen after append: %v", cut, err)
		}
		j2.close()
		if diff := cmp.Diff(dump(got), dump(after)); diff != "" {
			t.Fatalf("cut at %d: append after a torn line (-want +got):\n%s", cut, diff)
		}
	}
}

func TestJournalCorruptionStopsOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "leases")
	data := journalOps(t, path)
	i := bytes.IndexByte(data, '\n') + 5 // inside the second line
	data[i] ^= 0x20
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := openJournal(path, newLeaseTable())
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("open of a corrupt file = %v, want an error naming %s line 2", err, path)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(after, data) {
		t.Errorf("a failed open changed the file")
	}
}

func TestJournalLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases")
	j, err := openJournal(path, newLeaseTable())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openJournal(path, newLeaseTable()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second open = %v, want 'in use'", err)
	}
	j.close()
	j2, err := openJournal(path, newLeaseTable())
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	j2.close()
}

func TestCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases")
	st := &state{leases: newLeaseTable(), now: newClock().now}
	j, err := openJournal(path, st.leases)
	if err != nil {
		t.Fatal(err)
	}
	st.leases.j = j
	tab := st.leases
	now := st.now().Unix()
	for round := range 50 {
		for i := range 20 {
			tab.bind(hwKey(1, []byte{2, 0, 0, 0, 0, byte(i)}), 0x0a5b0000+uint32(i), now+int64(3600+round), nil, nil)
			if err := j.flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	before, _ := os.Stat(path)
	// Compact with appends arriving while the snapshot is written.
	tab.mu.Lock()
	recs := tab.snapshot(now)
	j.rewriting = true
	tab.mu.Unlock()
	f, err := j.writeSnapshot(recs)
	if err != nil {
		t.Fatal(err)
	}
	tab.mu.Lock()
	tab.bind(hwKey(1, mac1), 0x0a5b0063, now+10, nil, []byte("late"))
	tab.mu.Unlock()
	if err := j.flush(); err != nil {
		t.Fatal(err)
	}
	tab.mu.Lock()
	tab.bind(hwKey(1, mac3), 0x0a5b0065, now+10, nil, []byte("pending at the switch"))
	tab.mu.Unlock()
	if err := j.switchTo(f, len(recs)); err != nil {
		t.Fatal(err)
	}
	tab.mu.Lock()
	// And after the switch.
	tab.bind(hwKey(1, mac2), 0x0a5b0064, now+10, nil, []byte("later"))
	tab.mu.Unlock()
	if err := j.flush(); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(path)
	if after.Size() >= before.Size()/10 {
		t.Errorf("compacted file is %d bytes, was %d", after.Size(), before.Size())
	}
	want := dump(tab)
	j.close()
	re := newLeaseTable()
	j2, err := openJournal(path, re)
	if err != nil {
		t.Fatal(err)
	}
	defer j2.close()
	if diff := cmp.Diff(want, dump(re)); diff != "" {
		t.Errorf("state after compaction and reopen (-want +got):\n%s", diff)
	}
	if j2.lines != 23 {
		t.Errorf("compacted journal has %d lines, want 23", j2.lines)
	}
}

func FuzzParseRecord(f *testing.F) {
	for _, r := range []record{
		{op: opBind, ip: 0x0a5b0005, key: hwKey(1, mac1), expires: 1767225600, clientID: "\x01abc", hostname: "node01"},
		{op: opRelease, ip: 1, key: idKey([]byte{1, 2})},
		{op: opDecline, ip: 2, expires: 3},
		{op: opForget, ip: 2, key: hwKey(6, []byte{1})},
	} {
		b := appendRecord(nil, &r)
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte("b 1.2.3.4 crc=00000000"))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := parseRecord(line)
		if err != nil {
			return
		}
		b := appendRecord(nil, &r)
		r2, err := parseRecord(b[:len(b)-1])
		if err != nil {
			t.Fatalf("re-parse of %q: %v", b, err)
		}
		if diff := cmp.Diff(r, r2, cmp.AllowUnexported(record{})); diff != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", line, diff)
		}
	})
}

// TestJournalWriterConcurrent has many goroutines append records and wait for them, as
// workers do for their ACKs, while the writer runs; every record a waiter was told is
// written must be in the file afterwards.
func TestJournalWriterConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases")
	tab := newLeaseTable()
	j, err := openJournal(path, tab)
	if err != nil {
		t.Fatal(err)
	}
	tab.j = j
	stop := j.start(func(err error) { t.Error(err) })
	const workers, each = 8, 300
	var wg sync.WaitGroup
	acked := make(chan string, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				key := hwKey(1, []byte{2, 0, 0, byte(w), byte(i >> 8), byte(i)})
				tab.mu.Lock()
				seq := tab.bind(key, uint32(0x0a5b0000+w*each+i), 99, nil, []byte(fmt.Sprintf("w%d-%d", w, i)))
				tab.mu.Unlock()
				if ok, err := j.wait(seq, 5*time.Second); !ok {
					t.Errorf("wait: %v", err)
					return
				}
				acked <- key
				if i%7 == 0 {
					time.Sleep(time.Duration(i%3) * 100 * time.Microsecond) // let the writer go idle
				}
			}
		}()
	}
	wg.Wait()
	close(acked)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	re := newLeaseTable()
	j2, err := openJournal(path, re)
	if err != nil {
		t.Fatal(err)
	}
	defer j2.close()
	n := 0
	for key := range acked {
		n++
		if re.byKey[key] == nil {
			t.Errorf("record %x acknowledged as written but not in the file", key)
		}
	}
	if n != workers*each {
		t.Errorf("%d records acknowledged, want %d", n, workers*each)
	}
}
