package tftp

import (
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// rawConn sends and receives the packets of a transfer on its connected UDP socket with
// raw system calls. The socket is non-blocking, so neither call blocks: a read that finds
// no packet returns EAGAIN and the goroutine waits in Go's network poller as
// net.Conn.Read would. What it saves is the runtime's system-call bookkeeping, which wakes
// the runtime's monitor thread on each call once the process was idle: in a lockstep
// transfer, two wake-ups per block that compete with the client for the CPUs.
//
// A read may also spin (see spinner) before it waits in the poller.
type rawConn struct {
	rc     syscall.RawConn
	spin   *spinner
	n      int
	err    syscall.Errno
	buf    []byte
	start  time.Time
	until  time.Duration // spin this long at most; 0: do not spin
	readFn func(fd uintptr) bool
	sendFn func(fd uintptr) bool
}

func newRawConn(c net.Conn, sp *spinner) *rawConn {
	uc, ok := c.(*net.UDPConn)
	if !ok {
		return nil
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawConn{rc: rc, spin: sp}
	r.readFn = func(fd uintptr) bool {
		p := bufPtr(r.buf)
		for i := 0; ; i++ {
			n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, p, uintptr(len(r.buf)), 0, 0, 0)
			if e == syscall.EINTR {
				continue
			}
			if e != syscall.EAGAIN {
				r.n, r.err = int(n), e
				r.endSpin()
				return true
			}
			if r.until == 0 {
				return false
			}
			if i&7 == 7 && time.Since(r.start) > r.until {
				r.endSpin()
				return false
			}
		}
	}
	r.sendFn = func(fd uintptr) bool {
		var n uintptr
		e := syscall.EINTR
		for e == syscall.EINTR {
			n, _, e = syscall.RawSyscall6(syscall.SYS_SENDTO, fd, bufPtr(r.buf), uintptr(len(r.buf)), 0, 0, 0)
		}
		if e == syscall.EAGAIN {
			return false
		}
		r.n, r.err = int(n), e
		return true
	}
	return r
}

func bufPtr(b []byte) uintptr {
	if len(b) == 0 {
		return 0
	}
	return uintptr(unsafe.Pointer(&b[0]))
}

func (r *rawConn) endSpin() {
	if r.until != 0 {
		r.until = 0
		r.spin.release()
	}
}

// read receives one packet into b, waiting in the network poller (and so honouring the
// connection's read deadline) while none is queued.
func (r *rawConn) read(b []byte) (int, error) {
	r.buf = b
	r.start = time.Now()
	r.until = r.spin.acquire()
	err := r.rc.Read(r.readFn)
	r.endSpin()
	r.buf = nil
	if err != nil {
		return 0, err
	}
	r.spin.observe(time.Since(r.start))
	if r.err != 0 {
		return 0, os.NewSyscallError("recvfrom", r.err)
	}
	return r.n, nil
}

// write sends b as one packet.
func (r *rawConn) write(b []byte) error {
	r.buf = b
	err := r.rc.Write(r.sendFn)
	r.buf = nil
	if err != nil {
		return err
	}
	if r.err != 0 {
		return os.NewSyscallError("sendto", r.err)
	}
	return nil
}
