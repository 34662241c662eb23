package image

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// benchTree makes a tree of n files with sizes from a few bytes to 1 MiB (about 48 MiB
// in all for n=600) whose content compresses like binaries and text do (about 3:1).
func benchTree(b *testing.B, n int) (string, int64) {
	b.Helper()
	dir := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"provkit ", "node ", "image ", "kernel ", "0x7f454c46 ", "libc.so.6 ", "\n", "\t", "return ", "func "}
	var total int64
	for i := range n {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", i%23))
		os.MkdirAll(sub, 0o755)
		size := 1 << (rng.IntN(21)) // 1 B .. 1 MiB
		var buf bytes.Buffer
		for buf.Len() < size {
			if rng.IntN(4) == 0 {
				var raw [16]byte
				for j := range raw {
					raw[j] = byte(rng.Uint32())
				}
				buf.Write(raw[:])
			} else {
				buf.WriteString(words[rng.IntN(len(words))])
			}
		}
		data := buf.Bytes()[:size]
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%04d", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(size)
	}
	return dir, total
}

type discardCounter struct{ n int64 }

func (d *discardCounter) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }

func BenchmarkPack(b *testing.B) {
	dir, total := benchTree(b, 600)
	for _, o := range []PackOptions{
		{Format: CPIO, Compression: Gzip},
		{Format: CPIO, Compression: Gzip, Level: 1},
		{Format: CPIO, Compression: Zstd},
		{Format: CPIO, Compression: None},
		{Format: Tar, Compression: Zstd},
	} {
		name := fmt.Sprintf("%s-%s", o.Format, o.Compression)
		if o.Level != 0 {
			name += fmt.Sprintf("-%d", o.Level)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(total)
			var out discardCounter
			for b.Loop() {
				out.n = 0
				if _, err := Pack(context.Background(), dir, &out, o); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(total)/float64(out.n), "ratio")
		})
	}
}

func BenchmarkUnpack(b *testing.B) {
	dir, total := benchTree(b, 600)
	for _, c := range []Compression{Gzip, Zstd} {
		var archive bytes.Buffer
		if _, err := Pack(context.Background(), dir, &archive, PackOptions{Compression: c}); err != nil {
			b.Fatal(err)
		}
		b.Run("cpio-"+string(c), func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				out := b.TempDir()
				if _, err := Unpack(context.Background(), bytes.NewReader(archive.Bytes()), out, UnpackOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
