package vmtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// VMConfig describes a VM.
type VMConfig struct {
	// Net is the network the VM's NIC attaches to (a new tap on its bridge). Required.
	Net *Net
	// MAC of the NIC. If empty, 52:54:00:98:00:01.
	MAC net.HardwareAddr
	// NIC is the qemu device model: "virtio-net-pci" (default) or "e1000". Their default
	// ROMs from ipxe-qemu boot; romfile=pxe-virtio.rom does not (reference/README.md).
	NIC string
	// MemoryMB is the RAM. If zero, 512.
	MemoryMB int
	// Kernel, Initrd and Append boot a kernel directly (qemu -kernel), skipping the
	// firmware and the network boot. If Kernel is empty, the VM boots from the network
	// (-boot n): SeaBIOS, then the iPXE ROM of the NIC.
	Kernel, Initrd, Append string
	// Name labels the console log in the test output. If empty, "vm".
	Name string
	// FirmwareConsole copies the BIOS and iPXE text screen to the serial console
	// (sgabios), to see where a network boot spends its time. It slows the boot a little.
	FirmwareConsole bool
	// Reboot lets a guest reboot restart the VM (a discovered node reboots into its
	// image). If false, qemu exits when the guest reboots (-no-reboot).
	Reboot bool
	// Disks are raw disk image files attached as virtio disks (vda, vdb, ...).
	Disks []string
	// BootDisk boots from the first disk (-boot c) when Kernel is empty, instead of the
	// network.
	BootDisk bool
	// ResetOnLockup resets the VM (qemu's system_reset, as a BMC power cycle would) when
	// the guest kernel reports a soft lockup. Under TCG on a loaded host a guest's
	// reboot(2) now and then hangs in "BUG: soft lockup ... ksoftirqd" for good; tests
	// whose guests reboot set it so that the hang costs a reset, not the test. Without
	// -Reboot, qemu then exits as it does at a guest reboot.
	ResetOnLockup bool
	// Args are added to qemu's command line, e.g. an IPMI BMC:
	// "-chardev", "socket,...", "-device", "ipmi-bmc-extern,...".
	Args []string
}

// VM is a running qemu. Its serial console is captured line by line.
type VM struct {
	Name    string
	LogPath string // the console log, each line prefixed with seconds since start

	start  time.Time
	cancel context.CancelFunc
	done   chan struct{}
	err    error // qemu's exit, valid after done

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on each new line
	resets  int           // system_resets sent for soft lockups
	monitor string        // the human monitor's unix socket
}

// StartVM starts qemu-system-x86_64 under TCG in the namespace of cfg.Net. The VM is
// killed when the test ends; if the test failed, its console log is written to the test
// output.
func StartVM(tb testing.TB, cfg VMConfig) *VM {
	tb.Helper()
	if cfg.Net == nil {
		tb.Fatalf("vmtest: VMConfig.Net is required")
	}
	if cfg.MAC == nil {
		cfg.MAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x98, 0x00, 0x01}
	}
	if cfg.NIC == "" {
		cfg.NIC = "virtio-net-pci"
	}
	if cfg.MemoryMB == 0 {
		cfg.MemoryMB = 512
	}
	if cfg.Name == "" {
		cfg.Name = "vm"
	}
	tap := cfg.Net.Tap(tb)
	// -cpu max gives the guest RDRAND, so the kernel's random pool is ready at once:
	// with qemu's default CPU a TCG guest has no entropy source and getrandom() (Go's
	// crypto/rand, hence every DHCP transaction ID) blocks for minutes.
	args := []string{"qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", strconv.Itoa(cfg.MemoryMB), "-smp", "1",
		"-display", "none", "-vga", "none", "-serial", "stdio", "-no-user-config",
		"-netdev", "tap,id=n0,ifname=" + tap + ",script=no,downscript=no",
		"-device", cfg.NIC + ",netdev=n0,mac=" + cfg.MAC.String()}
	if !cfg.Reboot {
		args = append(args, "-no-reboot")
	}
	args = append(args, cfg.Args...)
	if cfg.FirmwareConsole {
		args = append(args, "-machine", "graphics=off")
	}
	for _, d := range cfg.Disks {
		if strings.ContainsAny(d, ",") {
			tb.Fatalf("vmtest: disk path %q has a comma", d)
		}
		args = append(args, "-drive", "file="+d+",if=virtio,format=raw,cache=unsafe")
	}
	if cfg.Kernel != "" {
		args = append(args, "-kernel", cfg.Kernel)
		if cfg.Initrd != "" {
			args = append(args, "-initrd", cfg.Initrd)
		}
		if cfg.Append != "" {
			args = append(args, "-append", cfg.Append)
		}
	} else if cfg.BootDisk {
		args = append(args, "-boot", "c")
	} else {
		args = append(args, "-boot", "n")
	}
	monitor := filepath.Join(tb.TempDir(), "monitor")
	args = append(args, "-monitor", "unix:"+monitor+",server=on,wait=off")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := cfg.Net.NS.Command(ctx, args...)
	cmd.Stdin = nil
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	vm := &VM{Name: cfg.Name, LogPath: filepath.Join(tb.TempDir(), cfg.Name+"-console.log"), cancel: cancel,
		done: make(chan struct{}), changed: make(chan struct{}), monitor: monitor}
	logf, err := os.Create(vm.LogPath)
	if err != nil {
		cancel()
		tb.Fatalf("vmtest: %v", err)
	}
	vm.start = time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		logf.Close()
		tb.Fatalf("vmtest: start qemu: %v", err)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			fmt.Fprintf(logf, "[%7.3f] %s\n", time.Since(vm.start).Seconds(), line)
			vm.mu.Lock()
			vm.lines = append(vm.lines, line)
			close(vm.changed)
			vm.changed = make(chan struct{})
			vm.mu.Unlock()
			if cfg.ResetOnLockup && strings.Contains(line, "BUG: soft lockup") {
				err := vm.reset()
				fmt.Fprintf(logf, "[%7.3f] vmtest: soft lockup: system_reset (%v)\n", time.Since(vm.start).Seconds(), err)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		<-readDone
		logf.Close()
		vm.mu.Lock()
		vm.err = err
		vm.mu.Unlock()
		close(vm.done)
	}()
	tb.Cleanup(func() {
		vm.Stop()
		if tb.Failed() {
			b, _ := os.ReadFile(vm.LogPath)
			tb.Logf("vmtest: %s serial console (%s):\n%s", vm.Name, vm.LogPath, tail(string(b), 12000))
		}
	})
	return vm
}

// reset sends system_reset to qemu's monitor.
func (vm *VM) reset() error {
	c, err := net.DialTimeout("unix", vm.monitor, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	vm.mu.Lock()
	vm.resets++
	vm.mu.Unlock()
	_, err = io.WriteString(c, "system_reset\n")
	// Let qemu read the command before the connection closes.
	time.Sleep(200 * time.Millisecond)
	return err
}

// Resets is how many times the VM was reset for a soft lockup (ResetOnLockup).
func (vm *VM) Resets() int {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.resets
}

// Stop kills the VM and waits for qemu to exit.
func (vm *VM) Stop() {
	vm.cancel()
	<-vm.done
}

// LogConsole writes the console log so far, with timestamps, to the test output (for
// go test -v runs that want to see where a boot spends its time).
func (vm *VM) LogConsole(tb testing.TB) {
	tb.Helper()
	b, _ := os.ReadFile(vm.LogPath)
	tb.Logf("vmtest: %s serial console:\n%s", vm.Name, tail(string(b), 12000))
}

// Exited is closed when qemu has exited (the guest powered off, or Stop).
func (vm *VM) Exited() <-chan struct{} { return vm.done }

// Console returns the console lines so far.
func (vm *VM) Console() []string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return append([]string(nil), vm.lines...)
}

// Since returns the time since qemu started.
func (vm *VM) Since() time.Duration { return time.Since(vm.start) }

// WaitFor waits until a console line contains marker and returns that line. It fails
// the test if the VM exits first or timeout passes (the console log is then printed).
// Lines seen before the call count.
func (vm *VM) WaitFor(tb testing.TB, marker string, timeout time.Duration) string {
	tb.Helper()
	line, err := vm.Await(marker, timeout)
	if err != nil {
		tb.Fatalf("vmtest: %s: %v", vm.Name, err)
	}
	return line
}

// Await is WaitFor returning an error instead of failing the test.
func (vm *VM) Await(marker string, timeout time.Duration) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := 0
	for {
		vm.mu.Lock()
		for ; seen < len(vm.lines); seen++ {
			if strings.Contains(vm.lines[seen], marker) {
				l := vm.lines[seen]
				vm.mu.Unlock()
				return l, nil
			}
		}
		ch := vm.changed
		vm.mu.Unlock()
		select {
		case <-ch:
		case <-vm.done:
			// Drain what arrived with the exit.
			vm.mu.Lock()
			for ; seen < len(vm.lines); seen++ {
				if strings.Contains(vm.lines[seen], marker) {
					l := vm.lines[seen]
					vm.mu.Unlock()
					return l, nil
				}
			}
			err := vm.err
			vm.mu.Unlock()
			return "", fmt.Errorf("qemu exited (%v) after %.1fs before the console showed %q", err, vm.Since().Seconds(), marker)
		case <-deadline.C:
			return "", fmt.Errorf("no console line with %q within %s", marker, timeout)
		}
	}
}
