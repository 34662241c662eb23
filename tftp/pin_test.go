package tftp_test

import (
	"bytes"
	"testing"
	"time"

	pintftp "github.com/pin/tftp/v3"
	"github.com/provkit/provkit/tftp"
)

// TestPinClient fetches files with pin/tftp's client, an independent implementation of
// blksize and tsize.
func TestPinClient(t *testing.T) {
	root, files := bootRoot(t)
	addr, _ := serve(t, &tftp.Server{Files: openDir(t, root)})
	for _, tc := range []struct {
		file string
		bs   int
	}{{"big", 1468}, {"three-blocks", 1468}, {"small", 0}, {"empty", 8192}} {
		c, err := pintftp.NewClient(addr.String())
		must(t, err)
		c.SetTimeout(2 * time.Second)
		if tc.bs > 0 {
			c.SetBlockSize(tc.bs)
		}
		c.RequestTSize(true)
		wt, err := c.Receive(tc.file, "octet")
		if err != nil {
			t.Fatalf("pin Receive(%q): %v", tc.file, err)
		}
		size, ok := wt.(pintftp.IncomingTransfer).Size()
		var buf bytes.Buffer
		if _, err := wt.WriteTo(&buf); err != nil {
			t.Fatalf("pin WriteTo(%q): %v", tc.file, err)
		}
		if !bytes.Equal(buf.Bytes(), files[tc.file]) || !ok || size != int64(len(files[tc.file])) {
			t.Errorf("pin got %q: %d bytes, tsize %d %v; want %d bytes", tc.file, buf.Len(), size, ok, len(files[tc.file]))
		}
	}
}
