package inband

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/provkit/provkit/bmc/ipmi"
)

// The Linux IPMI device interface (include/uapi/linux/ipmi.h), for 64-bit Linux.
const (
	ipmiSystemInterfaceAddrType = 0x0c
	ipmiBMCChannel              = 0x0f
	ipmiResponseRecvType        = 1
	// IPMICTL_SEND_COMMAND is _IOR('i', 13, struct ipmi_req), IPMICTL_RECEIVE_MSG_TRUNC
	// _IOWR('i', 11, struct ipmi_recv).
	ipmictlSendCommand     = 2<<30 | uintptr(unsafe.Sizeof(ipmiReq{}))<<16 | 'i'<<8 | 13
	ipmictlReceiveMsgTrunc = 3<<30 | uintptr(unsafe.Sizeof(ipmiRecv{}))<<16 | 'i'<<8 | 11
)

type ipmiMsg struct {
	netfn   uint8
	cmd     uint8
	dataLen uint16
	data    *byte
}

type ipmiReq struct {
	addr    *byte
	addrLen uint32
	msgid   int64
	msg     ipmiMsg
}

type ipmiRecv struct {
	recvType int32
	addr     *byte
	addrLen  uint32
	msgid    int64
	msg      ipmiMsg
}

// ipmiSystemInterfaceAddr is struct ipmi_system_interface_addr: int addr_type; short
// channel; unsigned char lun.
type ipmiSystemInterfaceAddr struct {
	addrType int32
	channel  int16
	lun      uint8
	_        uint8
}

// DefaultPath is the first IPMI device of the Linux ipmi_devintf driver.
const DefaultPath = "/dev/ipmi0"

// Dev is an open Linux IPMI device (ipmi_devintf, with a system interface driver such
// as ipmi_si behind it): requests go to the BMC over the system interface (KCS, SMIC,
// BT or SSIF), with no session and no password.
type Dev struct {
	mu    sync.Mutex
	f     *os.File
	msgid int64
	// Timeout bounds one exchange when the context has no deadline. If zero, 5 seconds.
	Timeout time.Duration
}

// Open opens the IPMI device at path (DefaultPath if empty).
func Open(path string) (*Dev, error) {
	if path == "" {
		path = DefaultPath
	}
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("inband: %w", err)
	}
	return &Dev{f: f}, nil
}

// Close closes the device.
func (d *Dev) Close() error { return d.f.Close() }

// ErrTimeout is returned (wrapped) when the BMC does not answer in time.
var ErrTimeout = errors.New("inband: no answer from the BMC")

// Do sends r to the BMC and waits for its answer. A non-zero completion code is in the
// response, not an error.
func (d *Dev) Do(ctx context.Context, r ipmi.Request) (ipmi.Response, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(r.Data) > 0xFFFF {
		return ipmi.Response{}, fmt.Errorf("inband: request of %d bytes", len(r.Data))
	}
	d.msgid++
	addr := ipmiSystemInterfaceAddr{addrType: ipmiSystemInterfaceAddrType, channel: ipmiBMCChannel}
	req := ipmiReq{addr: (*byte)(unsafe.Pointer(&addr)), addrLen: uint32(unsafe.Sizeof(addr)), msgid: d.msgid,
		msg: ipmiMsg{netfn: uint8(r.NetFn), cmd: r.Cmd, dataLen: uint16(len(r.Data))}}
	if len(r.Data) > 0 {
		req.msg.data = &r.Data[0]
	}
	rc, err := d.f.SyscallConn()
	if err != nil {
		return ipmi.Response{}, err
	}
	var errno error
	if err := rc.Control(func(fd uintptr) {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, fd, ipmictlSendCommand, uintptr(unsafe.Pointer(&req)))
		if e != 0 {
			errno = e
		}
	}); err != nil {
		return ipmi.Response{}, err
	}
	runtime.KeepAlive(&addr)
	runtime.KeepAlive(r.Data)
	if errno != nil {
		return ipmi.Response{}, fmt.Errorf("inband: send netfn 0x%02x cmd 0x%02x: %w", uint8(r.NetFn), r.Cmd, errno)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(cmpOr(d.Timeout, 5*time.Second))
	}
	buf := make([]byte, 1024)
	for {
		if err := ctx.Err(); err != nil {
			return ipmi.Response{}, fmt.Errorf("inband: netfn 0x%02x cmd 0x%02x: %w", uint8(r.NetFn), r.Cmd, err)
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return ipmi.Response{}, fmt.Errorf("netfn 0x%02x cmd 0x%02x: %w", uint8(r.NetFn), r.Cmd, ErrTimeout)
		}
		ready := false
		if err := rc.Control(func(fd uintptr) {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, e := unix.Poll(fds, int(min(wait, 200*time.Millisecond)/time.Millisecond)+1)
			ready = e == nil && n > 0
		}); err != nil {
			return ipmi.Response{}, err
		}
		if !ready {
			continue
		}
		var raddr ipmiSystemInterfaceAddr
		recv := ipmiRecv{addr: (*byte)(unsafe.Pointer(&raddr)), addrLen: uint32(unsafe.Sizeof(raddr)),
			msg: ipmiMsg{data: &buf[0], dataLen: uint16(len(buf))}}
		errno = nil
		if err := rc.Control(func(fd uintptr) {
			_, _, e := unix.Syscall(unix.SYS_IOCTL, fd, ipmictlReceiveMsgTrunc, uintptr(unsafe.Pointer(&recv)))
			if e != 0 {
				errno = e
			}
		}); err != nil {
			return ipmi.Response{}, err
		}
		runtime.KeepAlive(&raddr)
		runtime.KeepAlive(buf)
		if errno != nil && !errors.Is(errno, unix.EMSGSIZE) { // EMSGSIZE: truncated, still delivered
			if errors.Is(errno, unix.EAGAIN) || errors.Is(errno, unix.EINTR) {
				continue
			}
			return ipmi.Response{}, fmt.Errorf("inband: receive: %w", errno)
		}
		if recv.recvType != ipmiResponseRecvType || recv.msgid != d.msgid {
			continue // an event or a late answer to an earlier request
		}
		return parseRecv(r, recv.msg.netfn, recv.msg.cmd, buf[:min(int(recv.msg.dataLen), len(buf))])
	}
}

// parseRecv turns what the driver delivered (netfn, cmd, completion code and data) into a
// Response for request r.
func parseRecv(r ipmi.Request, netfn, cmd uint8, data []byte) (ipmi.Response, error) {
	if len(data) < 1 {
		return ipmi.Response{}, fmt.Errorf("inband: netfn 0x%02x cmd 0x%02x: answer without completion code: %w", uint8(r.NetFn), r.Cmd, ipmi.ErrShort)
	}
	if netfn|1 != uint8(r.NetFn)|1 || cmd != r.Cmd {
		return ipmi.Response{}, fmt.Errorf("inband: answer netfn 0x%02x cmd 0x%02x to request netfn 0x%02x cmd 0x%02x", netfn, cmd, uint8(r.NetFn), r.Cmd)
	}
	return ipmi.Response{NetFn: ipmi.NetFn(netfn | 1), Cmd: cmd, Code: ipmi.CompletionCode(data[0]), Data: append([]byte(nil), data[1:]...)}, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
