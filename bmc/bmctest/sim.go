package bmctest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// chassisScript is ipmi_sim's chassis_control program. ipmi_sim runs it through the
// shell with " get power", " set power 1", " set boot pxe", " set reset 1" ... appended
// and reads "power:<0|1>" and "boot:<name>" lines back. $1 is the simulator's state
// directory: one file per name, and calls.log with every call. Only shell builtins are
// used, so a call costs one shell.
const chassisScript = `#!/bin/sh
D=$1; shift
echo "$*" >> "$D/calls.log"
case $1 in
  set) shift; while [ $# -ge 2 ]; do echo "$2" > "$D/$1"; shift 2; done ;;
  get) shift; for k; do v=; read -r v 2>/dev/null < "$D/$k"; echo "$k:$v"; done ;;
esac
exit 0
`

const emuFile = `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
mc_enable 0x20
`

// Options configure the simulators.
type Options struct {
	// User and Password of the administrator account. If empty, "admin" and "pass".
	User, Password string
	// Program is ipmi_sim's path. If empty, "ipmi_sim" from $PATH.
	Program string
	// StartCmd, if set, makes the simulators manage a VM instead of using the chassis
	// script: ipmi_sim runs StartCmd on power on and kills it on power off. In it,
	// {serial} is replaced by the simulator's VM serial port (where qemu's
	// ipmi-bmc-extern device connects back) and {dir} by the simulator's directory.
	StartCmd string
	// PoweroffWait and KillWait are ipmi_sim's poweroff_wait and kill_wait (seconds),
	// used with StartCmd. If zero, 2 and 2.
	PoweroffWait, KillWait int
}

// Sim is one running ipmi_sim.
type Sim struct {
	// Addr is the simulator's IPMI LAN address, 127.0.0.1:port.
	Addr string
	// SerialPort is the VM serial port when Options.StartCmd is set.
	SerialPort int
	// User and Password are the administrator's credentials.
	User, Password string
	// Dir holds its configuration, chassis state and log.
	Dir string

	cmd  *exec.Cmd
	done chan struct{}
}

// Sims is a set of running simulators.
type Sims struct {
	List []*Sim
	dir  string
}

// Start starts n simulators under dir, each on a free loopback port, and waits until
// all listen. Stop (or the context's end) kills them.
func Start(ctx context.Context, dir string, n int, o Options) (*Sims, error) {
	if o.User == "" {
		o.User = "admin"
	}
	if o.Password == "" {
		o.Password = "pass"
	}
	if o.Program == "" {
		o.Program = "ipmi_sim"
	}
	if o.PoweroffWait == 0 {
		o.PoweroffWait = 2
	}
	if o.KillWait == 0 {
		o.KillWait = 2
	}
	prog, err := exec.LookPath(o.Program)
	if err != nil {
		return nil, fmt.Errorf("bmctest: %w", err)
	}
	script := filepath.Join(dir, "chassis.sh")
	emu := filepath.Join(dir, "sim.emu")
	if err := os.WriteFile(script, []byte(chassisScript), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(emu, []byte(emuFile), 0o644); err != nil {
		return nil, err
	}
	nports := n
	if o.StartCmd != "" {
		nports = 2 * n
	}
	ports, err := FreeUDPPorts(nports)
	if err != nil {
		return nil, err
	}
	s := &Sims{dir: dir}
	for i := range n {
		sim := &Sim{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i])), User: o.User, Password: o.Password,
			Dir: filepath.Join(dir, fmt.Sprintf("sim%d", i)), done: make(chan struct{})}
		if o.StartCmd != "" {
			sim.SerialPort = ports[n+i]
		}
		if err := sim.start(ctx, prog, script, emu, o, i); err != nil {
			s.Stop()
			return nil, err
		}
		s.List = append(s.List, sim)
	}
	if err := s.wait(ctx, ports[:n]); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// StartT starts n simulators for a test, in a temporary directory, stopped at its end.
func StartT(tb testing.TB, n int, o Options) *Sims {
	tb.Helper()
	s, err := Start(context.Background(), tb.TempDir(), n, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

func (sim *Sim) start(ctx context.Context, prog, script, emu string, o Options, i int) error {
	state := filepath.Join(sim.Dir, "state")
	if err := os.MkdirAll(state, 0o755); err != nil {
		return err
	}
	for k, v := range map[string]string{"power": "0", "boot": "none"} {
		if err := os.WriteFile(filepath.Join(sim.Dir, k), []byte(v+"\n"), 0o644); err != nil {
			return err
		}
	}
	guid := make([]byte, 16)
	rand.Read(guid)
	_, port, _ := net.SplitHostPort(sim.Addr)
	var b strings.Builder
	fmt.Fprintf(&b, "name \"sim%d\"\nset_working_mc 0x20\n  startlan 1\n    addr 127.0.0.1 %s\n", i, port)
	b.WriteString("    priv_limit admin\n")
	for _, p := range []string{"callback", "user", "operator", "admin"} {
		fmt.Fprintf(&b, "    allowed_auths_%s none md2 md5 straight\n", p)
	}
	fmt.Fprintf(&b, "    guid %s\n  endlan\n", hex.EncodeToString(guid))
	if o.StartCmd != "" {
		fmt.Fprintf(&b, "  serial 15 127.0.0.1 %d codec VM\n", sim.SerialPort)
		fmt.Fprintf(&b, "  startcmd %q\n  startnow false\n  poweroff_wait %d\n  kill_wait %d\n",
			strings.NewReplacer("{serial}", strconv.Itoa(sim.SerialPort), "{dir}", sim.Dir).Replace(o.StartCmd), o.PoweroffWait, o.KillWait)
	} else {
		fmt.Fprintf(&b, "  chassis_control \"%s %s\"\n", script, sim.Dir)
	}
	fmt.Fprintf(&b, "  user 2 true %q %q admin 10 none md2 md5 straight\n", o.User, o.Password)
	conf := filepath.Join(sim.Dir, "lan.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(sim.Dir, "sim.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	sim.cmd = exec.Command(prog, "-c", conf, "-f", emu, "-s", state, "-n", "-p")
	sim.cmd.Dir = sim.Dir
	sim.cmd.Stdout, sim.cmd.Stderr = log, log
	sim.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := sim.cmd.Start(); err != nil {
		return fmt.Errorf("bmctest: start ipmi_sim: %w", err)
	}
	go func() { sim.cmd.Wait(); close(sim.done) }()
	return nil
}

// wait polls /proc/net/udp until every port is bound.
func (s *Sims) wait(ctx context.Context, ports []int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		bound, err := boundUDPPorts()
		if err != nil {
			return err
		}
		missing := 0
		for _, p := range ports {
			if !bound[p] {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		for _, sim := range s.List {
			select {
			case <-sim.done:
				out, _ := os.ReadFile(filepath.Join(sim.Dir, "sim.log"))
				return fmt.Errorf("bmctest: ipmi_sim for %s exited: %s", sim.Addr, out)
			default:
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bmctest: %d of %d simulators not listening: %w", missing, len(ports), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func boundUDPPorts() (map[int]bool, error) {
	f, err := os.Open("/proc/net/udp")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bound := map[int]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue
		}
		_, port, ok := strings.Cut(fs[1], ":")
		if !ok {
			continue
		}
		if p, err := strconv.ParseUint(port, 16, 16); err == nil {
			bound[int(p)] = true
		}
	}
	return bound, sc.Err()
}

// FreeUDPPorts returns n loopback UDP ports that were free a moment ago.
func FreeUDPPorts(n int) ([]int, error) {
	var conns []net.PacketConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("bmctest: free port: %w", err)
		}
		conns = append(conns, c)
		ports = append(ports, c.LocalAddr().(*net.UDPAddr).Port)
	}
	return ports, nil
}

// Stop kills the simulators and the programs they started.
func (s *Sims) Stop() {
	var wg sync.WaitGroup
	for _, sim := range s.List {
		wg.Go(sim.stop)
	}
	wg.Wait()
}

func (sim *Sim) stop() {
	if sim.cmd == nil || sim.cmd.Process == nil {
		return
	}
	// The process group holds ipmi_sim and whatever it started (the chassis script, qemu).
	syscall.Kill(-sim.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-sim.done:
	case <-time.After(5 * time.Second):
	}
}

// Power is the chassis power as the chassis script last set it: "0" or "1".
func (sim *Sim) Power() string { return sim.read("power") }

// Boot is the boot device as the chassis script last set it: none, pxe, default (disk),
// cdrom, bios.
func (sim *Sim) Boot() string { return sim.read("boot") }

// SetPower sets the chassis power the script reports, as if the node changed by itself.
func (sim *Sim) SetPower(on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	return os.WriteFile(filepath.Join(sim.Dir, "power"), []byte(v+"\n"), 0o644)
}

// Calls are the chassis script's calls so far: "get power", "set power 1", ...
func (sim *Sim) Calls() []string {
	b, _ := os.ReadFile(filepath.Join(sim.Dir, "calls.log"))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// Log is ipmi_sim's output.
func (sim *Sim) Log() string {
	b, _ := os.ReadFile(filepath.Join(sim.Dir, "sim.log"))
	return string(b)
}

func (sim *Sim) read(name string) string {
	b, _ := os.ReadFile(filepath.Join(sim.Dir, name))
	return strings.TrimSpace(string(b))
}

// Pid is ipmi_sim's process ID.
func (sim *Sim) Pid() int { return sim.cmd.Process.Pid }

// Blackhole is a UDP socket that reads and drops everything: a BMC that is there but
// never answers. Close stops it.
type Blackhole struct {
	Addr string
	pc   net.PacketConn
	wg   sync.WaitGroup
}

// NewBlackhole listens on a loopback port.
func NewBlackhole() (*Blackhole, error) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &Blackhole{Addr: pc.LocalAddr().String(), pc: pc}
	b.wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); errors.Is(err, net.ErrClosed) {
				return
			}
		}
	})
	return b, nil
}

// Close stops the blackhole.
func (b *Blackhole) Close() error {
	err := b.pc.Close()
	b.wg.Wait()
	return err
}
