package tftp

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// nsDialer opens transfer sockets in the network namespace of the request socket. When
// that is the process's own namespace it dials directly; otherwise (a socket opened by a
// test or by provd inside another namespace) one OS thread stays in that namespace for
// the life of Serve and opens the sockets there.
type nsDialer struct {
	reqs chan nsReq
	done chan struct{}
}

type nsReq struct {
	local  netip.Addr
	client netip.AddrPort
	reply  chan nsResp
}

type nsResp struct {
	c   net.Conn
	err error
}

func dialUDP(local netip.Addr, client netip.AddrPort) (net.Conn, error) {
	var laddr *net.UDPAddr
	if local.IsValid() && !local.IsUnspecified() {
		laddr = &net.UDPAddr{IP: local.AsSlice(), Zone: local.Zone()}
	}
	return net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(client))
}

func newNSDialer(conn net.PacketConn) (*nsDialer, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return &nsDialer{}, nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return &nsDialer{}, nil
	}
	nsfd := -1
	var ierr error
	if err := raw.Control(func(fd uintptr) {
		nsfd, ierr = unix.IoctlRetInt(int(fd), unix.SIOCGSKNS)
	}); err != nil || ierr != nil {
		return &nsDialer{}, nil // no SIOCGSKNS (old kernel, no CAP): dial in our namespace
	}
	var sockNS, ourNS unix.Stat_t
	if unix.Fstat(nsfd, &sockNS) != nil || unix.Stat("/proc/self/ns/net", &ourNS) != nil ||
		(sockNS.Ino == ourNS.Ino && sockNS.Dev == ourNS.Dev) {
		unix.Close(nsfd)
		return &nsDialer{}, nil
	}
	d := &nsDialer{reqs: make(chan nsReq), done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// The thread stays locked and is never returned to the scheduler: it exits with
		// this goroutine, so no other goroutine ever runs in the foreign namespace.
		runtime.LockOSThread()
		err := unix.Setns(nsfd, unix.CLONE_NEWNET)
		unix.Close(nsfd)
		started <- err
		if err != nil {
			return
		}
		for {
			select {
			case r := <-d.reqs:
				c, err := dialUDP(r.local, r.client)
				r.reply <- nsResp{c, err}
			case <-d.done:
				return
			}
		}
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("tftp: enter the request socket's network namespace: %w", os.NewSyscallError("setns", err))
	}
	return d, nil
}

func (d *nsDialer) dial(local netip.Addr, client netip.AddrPort) (net.Conn, error) {
	if d.reqs == nil {
		return dialUDP(local, client)
	}
	reply := make(chan nsResp, 1)
	select {
	case d.reqs <- nsReq{local, client, reply}:
	case <-d.done:
		return nil, net.ErrClosed
	}
	r := <-reply
	return r.c, r.err
}

func (d *nsDialer) close() {
	if d.done != nil {
		close(d.done)
	}
}
