// Package nfsrootbench measures the stock go-nfs v0.0.4 handle cache (helpers.CachingHandler)
// at the sizes bench/nfsroot/run.sh compares with nfsroot's handle table
// (nfsroot.BenchmarkHandleLookup and BenchmarkHandleMemory).
package nfsrootbench

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/go-git/go-billy/v5/memfs"
	nfshelper "github.com/willscott/go-nfs/helpers"
)

// fill gives the stock handler n handles shaped like nfsroot's benchmark: directories five
// levels deep, 20 subdirectories each, 100 files per directory.
func fill(n int) ([][]byte, func(fh []byte) error, func() int) {
	fsys := memfs.New()
	h := nfshelper.NewCachingHandler(nfshelper.NewNullAuthHandler(fsys), n+16)
	type dir struct{ path []string }
	level := []dir{{}}
	var handles [][]byte
	count := 0
	for depth := 0; count < n; depth++ {
		var next []dir
		for _, d := range level {
			for i := 0; i < 100 && count < n; i++ {
				p := append(append([]string{}, d.path...), fmt.Sprintf("lib%s-%d.so.%d", strings.Repeat("x", i%17), i, depth))
				fh := h.ToHandle(fsys, p)
				count++
				if count%max(1, n/4096) == 0 {
					handles = append(handles, fh)
				}
				if i < 20 && depth < 5 {
					next = append(next, dir{p})
				}
			}
		}
		if len(next) == 0 {
			next = level
		}
		level = next
	}
	from := func(fh []byte) error { _, _, err := h.FromHandle(fh); return err }
	runtime.KeepAlive(h)
	return handles, from, func() int { runtime.KeepAlive(h); return count }
}

func BenchmarkStockHandleLookup(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		handles, from, _ := fill(n)
		b.Run(fmt.Sprintf("go-nfs/%d", n), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if err := from(handles[i%len(handles)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStockHandleMemory reports the heap the stock cache needs for a million handles.
func BenchmarkStockHandleMemory(b *testing.B) {
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, _, keep := fill(1_000_000)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1e6, "MB/1M-handles")
		keep()
	}
}
