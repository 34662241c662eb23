package tftp_test

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/provkit/provkit/tftp"
	"github.com/provkit/provkit/tftp/tftptest"
)

// BenchmarkGet measures one 8 MiB TFTP transfer over loopback with the tftptest client.
// bench/tftp/run.sh compares with tftpd-hpa and real clients.
func BenchmarkGet(b *testing.B) {
	data := make([]byte, 8<<20)
	files := tftp.FilesFunc(func(context.Context, netip.Addr, string) (tftp.File, error) {
		return tftp.NewFile("f", time.Time{}, data), nil
	})
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&tftp.Server{Files: files, Conn: conn}).Serve(ctx) }()
	defer func() { cancel(); <-done }()
	addr := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	for _, bc := range []struct {
		name string
		o    tftptest.Options
	}{
		{"lockstep-1468", tftptest.Options{BlockSize: 1468}},
		{"window16-1468", tftptest.Options{BlockSize: 1468, WindowSize: 16}},
		{"window16-8192", tftptest.Options{BlockSize: 8192, WindowSize: 16}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := tftptest.Get(ctx, addr, "f", io.Discard, bc.o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
