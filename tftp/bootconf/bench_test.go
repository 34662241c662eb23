package bootconf

import (
	"fmt"
	"testing"
)

// BenchmarkResolveRender is the per-request cost of a generated config: parse the name,
// render the node's file. 10,000 nodes take 10,000 times this.
func BenchmarkResolveRender(b *testing.B) {
	n := xcatNode()
	names := make([]string, 0, 64)
	for i := range 64 {
		names = append(names, fmt.Sprintf("xcat/xnba/nodes/node%04d", i))
	}
	i := 0
	for b.Loop() {
		req, ok := ParseName(names[i%len(names)])
		if !ok {
			b.Fatal("not parsed")
		}
		n.Name = req.Query.Name
		if _, err := Render(req.Format, n); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
