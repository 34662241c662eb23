package image

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// cloneBenchTree makes a tree of 2,000 files of 16 KiB in 40 directories (32 MB).
func cloneBenchTree(b *testing.B) string {
	b.Helper()
	root := b.TempDir()
	data := bytes.Repeat([]byte("provkit sysclone benchmark data\n"), 512)
	for d := range 40 {
		dir := filepath.Join(root, fmt.Sprintf("d%02d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 50 {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", f)), data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	return root
}

// BenchmarkCaptureFull is the stream of a first capture, agent and receiver in this
// process (no SSH): the protocol's own cost.
func BenchmarkCaptureFull(b *testing.B) {
	root := cloneBenchTree(b)
	b.SetBytes(2000 * 16 << 10)
	for i := 0; b.Loop(); i++ {
		dir := filepath.Join(b.TempDir(), fmt.Sprint(i))
		if _, err := pipeCapture(b, context.Background(), CaptureSpec{Dir: dir, Root: root, NoDefaultExclude: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCaptureUnchanged is a re-capture of an unchanged tree: only the walk and the
// comparison.
func BenchmarkCaptureUnchanged(b *testing.B) {
	root := cloneBenchTree(b)
	dir := filepath.Join(b.TempDir(), "img")
	spec := CaptureSpec{Dir: dir, Root: root, NoDefaultExclude: true}
	if _, err := pipeCapture(b, context.Background(), spec); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		res, err := pipeCapture(b, context.Background(), spec)
		if err != nil || res.Stats.Changed != 0 {
			b.Fatalf("%v, %d changed", err, res.Stats.Changed)
		}
	}
}

// BenchmarkPackReceiveClone packs a tree and lays it into an empty directory, as a
// deploy does after the download.
func BenchmarkPackReceiveClone(b *testing.B) {
	root := cloneBenchTree(b)
	b.SetBytes(2000 * 16 << 10)
	var buf bytes.Buffer
	for i := 0; b.Loop(); i++ {
		buf.Reset()
		if _, err := PackClone(context.Background(), root, &buf); err != nil {
			b.Fatal(err)
		}
		if _, err := ReceiveClone(context.Background(), &buf, filepath.Join(b.TempDir(), fmt.Sprint(i)), nil); err != nil {
			b.Fatal(err)
		}
	}
}
