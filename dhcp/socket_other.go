//go:build !linux

package dhcp

import (
	"errors"
	"net"
	"time"
)

// Socket is the server's link to the network. It exists on Linux only; elsewhere give
// Server.Conn a PacketConn.
type Socket struct{}

// ListenSocket is not supported on this system.
func ListenSocket(addr string) (*Socket, error) {
	return nil, errors.New("dhcp: ListenSocket needs Linux (IP_PKTINFO and packet sockets); set Server.Conn")
}

// LinkLayer reports false.
func (s *Socket) LinkLayer() bool                           { return false }
func (s *Socket) ReadFrom(b []byte) (int, net.Addr, error)  { return 0, nil, net.ErrClosed }
func (s *Socket) WriteTo(b []byte, a net.Addr) (int, error) { return 0, net.ErrClosed }
func (s *Socket) Close() error                              { return nil }
func (s *Socket) LocalAddr() net.Addr                       { return nil }
func (s *Socket) SetDeadline(t time.Time) error             { return nil }
func (s *Socket) SetReadDeadline(t time.Time) error         { return nil }
func (s *Socket) SetWriteDeadline(t time.Time) error        { return nil }
func (s *Socket) readBatch(b *batch) (int, error)           { return 0, net.ErrClosed }
func (s *Socket) send(b *batch, w *slot) error              { return net.ErrClosed }
