package nfsroot

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// insertPath adds a clean path and returns its entry.
func insertPath(t *table, p string) uint32 {
	n := uint32(0)
	for _, c := range splitPath(p) {
		n, _ = t.child(n, c)
	}
	return n
}

func TestTableDeterministic(t *testing.T) {
	paths := []string{"usr", "usr/bin", "usr/bin/ls", "etc/hostname", "var/log/syslog", "a/b/c/d/e/f"}
	a, b := newTable(rootID("/x")), newTable(rootID("/x"))
	for _, p := range paths {
		insertPath(a, p)
	}
	// Another order, as after a restart: same ids.
	for i := len(paths) - 1; i >= 0; i-- {
		insertPath(b, paths[i])
	}
	for _, p := range paths {
		na, _ := a.lookupPath(p)
		nb, _ := b.lookupPath(p)
		if a.idOf(na) != b.idOf(nb) {
			t.Errorf("id of %s differs between tables: %x vs %x", p, a.idOf(na), b.idOf(nb))
		}
		if got := a.path(na); got != p {
			t.Errorf("path(%s) = %q", p, got)
		}
	}
	if other := newTable(rootID("/y")); other.idOf(0) == a.idOf(0) {
		t.Error("two exports share a root id")
	}
}

func TestTableAgainstMap(t *testing.T) {
	tb := newTable(rootID("/e"))
	want := map[uint64]string{tb.idOf(0): ""}
	rng := rand.New(rand.NewPCG(1, 2))
	var paths []string
	for i := 0; i < 50000; i++ {
		var p string
		if len(paths) > 0 && rng.IntN(3) == 0 {
			p = paths[rng.IntN(len(paths))] + "/" + fmt.Sprint(rng.IntN(50))
		} else {
			p = fmt.Sprintf("d%d/f%d", rng.IntN(100), rng.IntN(1000))
		}
		insertPath(tb, p)
		parts := splitPath(p)
		for i := range parts {
			q := strings.Join(parts[:i+1], "/")
			n, _ := tb.lookupPath(q)
			id := tb.idOf(n)
			if old, ok := want[id]; ok && old != q {
				t.Fatalf("id %x for both %q and %q", id, old, q)
			}
			want[id] = q
		}
		paths = append(paths, p)
	}
	// Forget a third of them.
	for id, p := range want {
		if p != "" && rng.IntN(3) == 0 {
			tb.forget(id)
			delete(want, id)
		}
	}
	for id, p := range want {
		n, ok := tb.get(id)
		if !ok {
			t.Fatalf("id %x (%s) lost", id, p)
		}
		if got := tb.path(n); got != p {
			t.Fatalf("path of %x = %q, want %q", id, got, p)
		}
	}
	if tb.size() != len(want) {
		t.Errorf("size() = %d, want %d", tb.size(), len(want))
	}
}

func TestTableCollision(t *testing.T) {
	tb := newTable(rootID("/e"))
	dir := insertPath(tb, "d")
	// Plant another path on the id "d/x" would get.
	id := childID(tb.idOf(dir), "x")
	tb.mu.Lock()
	tb.add(id, 0, "intruder")
	tb.mu.Unlock()
	n, got := tb.child(dir, "x")
	if got == id {
		t.Fatalf("d/x took an id that is taken")
	}
	if got != altID(id) {
		t.Errorf("d/x id = %x, want altID %x", got, altID(id))
	}
	if p := tb.path(n); p != "d/x" {
		t.Errorf("path = %q", p)
	}
	if n2, _ := tb.child(dir, "x"); n2 != n {
		t.Errorf("second lookup of d/x gave entry %d, want %d", n2, n)
	}
}

func TestTableRenameKeepsID(t *testing.T) {
	tb := newTable(rootID("/e"))
	f := insertPath(tb, "tmp/a/file")
	id := tb.idOf(f)
	insertPath(tb, "tmp/a/file/child") // below it (as if a directory)
	to := insertPath(tb, "tmp/b")
	tb.rename(f, to, ".nfs1234")
	n, ok := tb.get(id)
	if !ok || tb.path(n) != "tmp/b/.nfs1234" {
		t.Fatalf("after rename, id %x -> %q, %v", id, tb.path(n), ok)
	}
	c, ok := tb.lookupPath("tmp/a/file/child")
	if ok {
		t.Fatal("child still found under its parent's old path")
	}
	for i := uint32(0); i < tb.n; i++ {
		if tb.parentOf(i) == f && i != f {
			c = i
		}
	}
	if got := tb.path(c); got != "tmp/b/.nfs1234/child" {
		t.Errorf("child of the renamed entry: path %q, want it to follow", got)
	}
	// A new file at the old name gets a different id.
	n2 := insertPath(tb, "tmp/a/file")
	if tb.idOf(n2) == id || n2 == f {
		t.Errorf("new object at the old path reused the renamed object's id")
	}
}

func TestHandleEncoding(t *testing.T) {
	h := handle{export: 0xdeadbeef, id: 0x0102030405060708}
	b := h.encode()
	want := []byte{1, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8}
	if !bytes.Equal(b, want) {
		t.Errorf("encode = %x, want %x", b, want)
	}
	got, err := decodeHandle(b)
	if err != nil || got != h {
		t.Errorf("decode = %+v, %v", got, err)
	}
	for _, bad := range [][]byte{nil, b[:15], append(append([]byte{}, b...), 0), {2, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
		{1, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}} {
		if _, err := decodeHandle(bad); err == nil {
			t.Errorf("decodeHandle(%x) accepted", bad)
		}
	}
}

func FuzzDecodeHandle(f *testing.F) {
	f.Add(handle{export: 1, id: 2}.encode())
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHandle(b)
		if err != nil {
			return
		}
		if !bytes.Equal(h.encode(), b) {
			t.Fatalf("decode(%x) = %+v, which encodes to %x", b, h, h.encode())
		}
	})
}

// TestTableMemory checks the memory budget: a million handles in well under 200 MB.
func TestTableMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a million handles")
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tb := fillTable(1_000_000)
	runtime.GC()
	runtime.ReadMemStats(&after)
	used := after.HeapAlloc - before.HeapAlloc
	t.Logf("1,000,000 handles: %.1f MB heap (%.0f bytes per handle)", float64(used)/1e6, float64(used)/1e6)
	if used > 200<<20 {
		t.Errorf("1,000,000 handles use %d MB, more than 200 MB", used>>20)
	}
	runtime.KeepAlive(tb)
}

// fillTable builds a table shaped like an image: directories five levels deep, 20
// subdirectories each, 100 files per directory, with Debian-like name lengths.
func fillTable(n int) *table {
	tb := newTable(rootID("/images/bench"))
	level := []uint32{0}
	for depth := 0; tb.n < uint32(n); depth++ {
		var next []uint32
		for _, d := range level {
			for i := 0; i < 100 && tb.n < uint32(n); i++ {
				e, _ := tb.child(d, fmt.Sprintf("lib%s-%d.so.%d", strings.Repeat("x", i%17), i, depth))
				if i < 20 && depth < 5 {
					next = append(next, e)
				}
			}
		}
		if len(next) == 0 {
			next = level
		}
		level = next
	}
	return tb
}

func BenchmarkHandleLookup(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		tb := fillTable(n)
		ids := make([]uint64, 0, 4096)
		for i := uint32(0); i < tb.n; i += max(1, tb.n/4096) {
			ids = append(ids, tb.idOf(i))
		}
		fhs := make([][]byte, len(ids))
		for i, id := range ids {
			fhs[i] = handle{export: 1, id: id}.encode()
		}
		b.Run(fmt.Sprintf("nfsroot/%d", n), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				h, err := decodeHandle(fhs[i%len(fhs)])
				if err != nil {
					b.Fatal(err)
				}
				e, ok := tb.get(h.id)
				if !ok {
					b.Fatal("missing")
				}
				_ = tb.path(e)
			}
		})
	}
}

func TestSplitPath(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{{"", nil}, {"a", []string{"a"}}, {"a/b/c", []string{"a", "b", "c"}}} {
		if got := splitPath(tt.in); !cmp.Equal(got, tt.want) {
			t.Errorf("splitPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// BenchmarkHandleMemory reports the heap a million handles take.
func BenchmarkHandleMemory(b *testing.B) {
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		tb := fillTable(1_000_000)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1e6, "MB/1M-handles")
		runtime.KeepAlive(tb)
	}
}
