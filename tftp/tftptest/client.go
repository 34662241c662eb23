// Package tftptest holds a TFTP client for tests and benchmarks: RFC 1350 with the
// blksize, tsize, timeout and windowsize (RFC 7440) options, and a hook to drop packets.
// curl and tftp-hpa have no windowsize; atftp 0.8 does, and the tests use it too.
package tftptest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Options of one Get. Zero values mean: no option sent.
type Options struct {
	BlockSize  int           // blksize to ask for
	WindowSize int           // windowsize to ask for
	TSize      bool          // ask for tsize
	Timeout    time.Duration // retransmit timeout; if zero, 1s
	Retries    int           // if zero, 5
	Mode       string        // if empty, "octet"
	// Drop, if set, is asked about each DATA packet received; true discards it
	// (simulated loss).
	Drop func(block uint64) bool
}

// Result describes a finished Get.
type Result struct {
	Bytes      int64
	BlockSize  int   // negotiated
	WindowSize int   // negotiated
	TSize      int64 // from the OACK, -1 if none
	OACK       map[string]string
	Server     netip.AddrPort // the server's transfer port
}

// ServerError is an ERROR packet from the server.
type ServerError struct {
	Code    uint16
	Message string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("tftp server error %d: %s", e.Code, e.Message)
}

// Get fetches name from server into w.
func Get(ctx context.Context, server netip.AddrPort, name string, w io.Writer, o Options) (Result, error) {
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Retries <= 0 {
		o.Retries = 5
	}
	if o.Mode == "" {
		o.Mode = "octet"
	}
	res := Result{BlockSize: 512, WindowSize: 1, TSize: -1}
	network := "udp4"
	if server.Addr().Is6() {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, nil)
	if err != nil {
		return res, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	rrq := binary.BigEndian.AppendUint16(nil, 1)
	rrq = append(append(rrq, name...), 0)
	rrq = append(append(rrq, o.Mode...), 0)
	opt := func(k, v string) { rrq = append(append(append(append(rrq, k...), 0), v...), 0) }
	if o.BlockSize > 0 {
		opt("blksize", strconv.Itoa(o.BlockSize))
	}
	if o.TSize {
		opt("tsize", "0")
	}
	if o.WindowSize > 0 {
		opt("windowsize", strconv.Itoa(o.WindowSize))
	}
	sa := net.UDPAddrFromAddrPort(server)
	if _, err := conn.WriteToUDP(rrq, sa); err != nil {
		return res, err
	}

	buf := make([]byte, 65536)
	var (
		tid      netip.AddrPort     // server transfer address, once known
		next     uint64         = 1 // next block expected
		sinceAck int
		gapAcked bool
		tries    int
		last     []byte = rrq // what to send again on timeout
	)
	send := func(p []byte) error {
		last = p
		if tid.IsValid() {
			_, err := conn.WriteToUDPAddrPort(p, tid)
			return err
		}
		_, err := conn.WriteToUDP(p, sa)
		return err
	}
	ack := func(block uint64) error {
		sinceAck = 0
		return send(binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 4), uint16(block)))
	}
	for {
		if err := conn.SetReadDeadline(time.Now().Add(o.Timeout)); err != nil {
			return res, err
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if tries++; tries > o.Retries {
					return res, fmt.Errorf("tftptest: %s: timeout at block %d", name, next)
				}
				if err := send(last); err != nil {
					return res, err
				}
				continue
			}
			return res, err
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if !tid.IsValid() {
			tid = from
			res.Server = from
		} else if from != tid {
			continue // another TID: RFC 1350 says answer ERROR 5; ignoring is enough here
		}
		if n < 4 {
			continue
		}
		p := buf[:n]
		switch binary.BigEndian.Uint16(p) {
		case 5:
			msg := p[4:]
			if i := strings.IndexByte(string(msg), 0); i >= 0 {
				msg = msg[:i]
			}
			return res, &ServerError{Code: binary.BigEndian.Uint16(p[2:]), Message: string(msg)}
		case 6:
			if next != 1 {
				continue
			}
			res.OACK = map[string]string{}
			fields := strings.Split(strings.TrimSuffix(string(p[2:]), "\x00"), "\x00")
			for i := 0; i+1 < len(fields); i += 2 {
				res.OACK[strings.ToLower(fields[i])] = fields[i+1]
			}
			if v, ok := res.OACK["blksize"]; ok {
				res.BlockSize, _ = strconv.Atoi(v)
			}
			if v, ok := res.OACK["windowsize"]; ok {
				res.WindowSize, _ = strconv.Atoi(v)
			}
			if v, ok := res.OACK["tsize"]; ok {
				res.TSize, _ = strconv.ParseInt(v, 10, 64)
			}
			tries = 0
			if err := ack(0); err != nil {
				return res, err
			}
		case 3:
			blk := binary.BigEndian.Uint16(p[2:])
			if o.Drop != nil && blk == uint16(next) && o.Drop(next) {
				continue
			}
			if blk != uint16(next) {
				// A gap or a block sent again: acknowledge what we have, once until
				// progress, so that the server goes on from there.
				if !gapAcked {
					gapAcked = true
					if err := ack(next - 1); err != nil {
						return res, err
					}
				}
				continue
			}
			gapAcked = false
			data := p[4:]
			if _, err := w.Write(data); err != nil {
				return res, err
			}
			res.Bytes += int64(len(data))
			tries = 0
			next++
			sinceAck++
			if len(data) < res.BlockSize {
				return res, ack(next - 1)
			}
			if sinceAck >= res.WindowSize {
				if err := ack(next - 1); err != nil {
					return res, err
				}
			}
		}
	}
}
