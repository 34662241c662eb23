//go:build integration

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nsBMC is OpenIPMI's ipmi_sim running in the test network's namespace as the BMC of a
// VM: qemu's ipmi-bmc-extern device connects to its VM serial port (the in-band side,
// what the guest's /dev/ipmi0 reaches over the isa-ipmi-kcs interface) and ipmitool
// reaches its LAN side over lanplus on the namespace's loopback.
type nsBMC struct {
	s          *bootSite
	dir        string
	lanPort    int
	serialPort int
	User, Pass string // the factory administrator (user 2)
}

// startNSBMC starts ipmi_sim in s's namespace. The ports are the namespace's own.
func startNSBMC(t *testing.T, s *bootSite) *nsBMC {
	t.Helper()
	b := &nsBMC{s: s, dir: filepath.Join(s.dir, "bmc"), lanPort: 9623, serialPort: 9002, User: "admin", Pass: "factory-pw"}
	if err := os.MkdirAll(filepath.Join(b.dir, "state"), 0o755); err != nil {
		t.Fatal(err)
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "name \"vmbmc\"\nset_working_mc 0x20\n  startlan 1\n    addr 127.0.0.1 %d\n    priv_limit admin\n", b.lanPort)
	for _, p := range []string{"callback", "user", "operator", "admin"} {
		fmt.Fprintf(&conf, "    allowed_auths_%s none md2 md5 straight\n", p)
	}
	conf.WriteString("    guid a123456789abcdefa123456789abcdef\n  endlan\n")
	fmt.Fprintf(&conf, "  serial 15 127.0.0.1 %d codec VM\n", b.serialPort)
	fmt.Fprintf(&conf, "  user 2 true %q %q admin 10 none md2 md5 straight\n", b.User, b.Pass)
	emu := "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\n"
	for name, body := range map[string]string{"lan.conf": conf.String(), "sim.emu": emu} {
		if err := os.WriteFile(filepath.Join(b.dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	log, err := os.Create(filepath.Join(b.dir, "sim.log"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := s.net.NS.Command(ctx, "ipmi_sim", "-c", filepath.Join(b.dir, "lan.conf"), "-f", filepath.Join(b.dir, "sim.emu"),
		"-s", filepath.Join(b.dir, "state"), "-n", "-p")
	cmd.Dir = b.dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("ipmi_sim: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait(); log.Close() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := b.ipmitool(b.User, b.Pass, "mc", "info")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ipmi_sim does not answer lanplus: %v: %s\nipmi_sim log:\n%s", err, out, b.log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	return b
}

// qemuArgs join a VM to the simulator: an external BMC on the KCS interface.
func (b *nsBMC) qemuArgs() []string {
	return []string{"-chardev", "socket,id=ipmi0,host=127.0.0.1,port=" + strconv.Itoa(b.serialPort) + ",reconnect=1",
		"-device", "ipmi-bmc-extern,id=bmc0,chardev=ipmi0", "-device", "isa-ipmi-kcs,bmc=bmc0"}
}

// ipmitool runs the real ipmitool over lanplus against the simulator, from the
// namespace (outside the VM). The password goes in the environment (-E), not argv.
func (b *nsBMC) ipmitool(user, pass string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	argv := append([]string{"ipmitool", "-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", strconv.Itoa(b.lanPort), "-U", user, "-E", "-N", "2", "-R", "2"}, args...)
	cmd := b.s.net.NS.Command(ctx, argv...)
	cmd.Env = append(os.Environ(), "IPMI_PASSWORD="+pass)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (b *nsBMC) log() string {
	out, _ := os.ReadFile(filepath.Join(b.dir, "sim.log"))
	return string(out)
}
