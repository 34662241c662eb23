//go:build integration

package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/provkit/provkit/internal/testenv"
	"github.com/provkit/provkit/internal/vmtest"
)

// lldpFrame is what a switch sends on a port (IEEE 802.1AB): chassis ID (a MAC), port
// ID (an interface name), TTL, system name, management address.
func lldpFrame(sysName, port string, mgmt netip.Addr) []byte {
	f := []byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e, 0x52, 0x54, 0x00, 0x97, 0xee, 0x01, 0x88, 0xcc}
	tlv := func(typ int, v []byte) {
		f = binary.BigEndian.AppendUint16(f, uint16(typ<<9|len(v)))
		f = append(f, v...)
	}
	tlv(1, []byte{4, 0x52, 0x54, 0x00, 0x97, 0xee, 0x01})
	tlv(2, append([]byte{5}, port...))
	tlv(3, []byte{0, 120})
	tlv(5, []byte(sysName))
	a := mgmt.As4()
	tlv(8, []byte{5, 1, a[0], a[1], a[2], a[3], 2, 0, 0, 0, 1, 0})
	tlv(0, nil)
	return f
}

// sendLLDP plays the switch: an LLDP frame on the bridge every second until the test
// ends (the bridge floods it to the VM's tap).
func sendLLDP(t *testing.T, s *bootSite, frame []byte) {
	t.Helper()
	var fd int
	err := s.net.NS.Do(func() error {
		ifc, err := net.InterfaceByName(s.net.Bridge)
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: 0x88cc, Ifindex: ifc.Index})
	})
	if err != nil {
		t.Fatalf("LLDP sender: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			_, _ = unix.Write(fd, frame)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done; unix.Close(fd) })
}

// TestVMDiscoverySequential is discovery end to end: a VM whose MAC is in no table
// PXE-boots from provd, gets an address from the discovery range and the discovery
// image (nodeinit in discovery mode, built by mknb), reports itself with the switch port
// an LLDP frame named, is discovered as the next free node of the sequence started with
// nodediscoverstart (n1 is taken already), has its chain run (nodeset to its osimage)
// and reboots into its stateless image under its new name; nodestat shows each step.
// The chain's runcmd=bmcsetup configures the VM's BMC (ipmi_sim, joined to the VM's KCS
// interface) over in-band IPMI from the discovery image: the real ipmitool then finds
// the address, netmask, gateway and VLAN of the tables over lanplus, and logs in as the new
// user with its new password. Its runimage= step has the discovery image fetch an
// archive from provd's /install and run its runme.sh, which prints on the console.
func TestVMDiscoverySequential(t *testing.T) {
	testenv.Require(t, vmtest.Needs()...)
	s := newBootSite(t, netip.MustParsePrefix("10.97.1.1/24"))
	root := filepath.Join(s.dir, "src")
	busyboxRoot(t, root, "PROVKIT-ROOTFS-INIT")

	s.pc("chtab", "key=tftpdir", "site.value="+filepath.Join(s.dir, "tftpboot"))
	s.pc("chtab", "key=installdir", "site.value="+filepath.Join(s.dir, "install"))
	s.pc("chtab", "key=domain", "site.value=cluster.test")
	s.pc("chtab", "key=master", "site.value=10.97.1.1")
	s.pc("chtab", "key=dhcpinterfaces", "site.value=br0")
	s.pc("chtab", "key=discoverykcmdline", "site.value=provkit.lldpwait=8 quiet")
	s.pc("mkdef", "-t", "network", "-o", "bootnet", "net=10.97.1.0", "mask=255.255.255.0", "mgtifname=br0",
		"dynamicrange=10.97.1.200-10.97.1.220", "nameservers=10.97.1.1")
	s.pc("nodeadd", "n[1-3]", "groups=compute,all")
	writeRunImage(t, filepath.Join(s.dir, "install/runimage/hello.tgz"),
		"#!/bin/sh\necho \"RUNIMAGE-MARKER $PROVKIT_NODE $(cat data.txt)\"\n", "payload-42")
	chain := "runcmd=bmcsetup,runimage=http://10.97.1.1/install/runimage/hello.tgz,osimage=busybox-netboot"
	s.pc("chtab", "node=compute", `hosts.ip=|n(\d+)|10.97.1.($1+10)|`, "noderes.netboot=xnba", "nodehm.serialport=0",
		"nodehm.serialspeed=115200", "chain.chain="+chain)
	s.pc("chtab", "node=n1", "mac.mac=52:54:00:97:01:01") // discovered before: not free
	s.pc("mkdef", "-t", "network", "-o", "bmcnet", "net=10.97.2.0", "mask=255.255.255.0", "gateway=10.97.2.254")
	s.pc("chtab", "node=compute", `ipmi.bmc=|n(\d+)|10.97.2.($1+10)|`, "ipmi.username=ops", "ipmi.password=ops-Pw-42", "ipmi.taggedvlan=12")
	s.pc("mkdef", "-t", "osimage", "-o", "busybox-netboot", "osvers=busybox", "osarch=x86_64", "profile=compute",
		"provmethod=netboot", "rootimgdir="+filepath.Join(s.dir, "install/netboot/busybox"), "addkcmdline=quiet panic=-1")
	s.pc("genimage", "busybox-netboot", "--source", "dir:"+root, "--kernel-deb", s.kernel.Deb, "--nodeinit", s.nodeinit)
	s.pc("packimage", "busybox-netboot")
	s.pc("mknb", "x86_64", "--kernel-deb", s.kernel.Deb, "--nodeinit", s.nodeinit)
	if got := s.pc("nodediscoverstart", "-n", "n[1-3]"); got != "Sequential Discovery: Started:\n    Number of free node names: 2\n" {
		t.Fatalf("nodediscoverstart = %q", got)
	}
	sendLLDP(t, s, lldpFrame("leaf1.cluster.test", "swp7", netip.MustParseAddr("10.97.1.250")))
	s.startProvd("--ra-interface", "br0", "--ra-prefix", s.net.Addr6.Masked().String(), "--dns", "10.97.1.1:53")

	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x97, 0x01, 0x0b}
	bmc := startNSBMC(t, s)
	// Before: no address on the BMC's LAN channel, and no user ops.
	if out, err := bmc.ipmitool(bmc.User, bmc.Pass, "lan", "print", "1"); err != nil || !strings.Contains(out, "IP Address              : 0.0.0.0") {
		t.Fatalf("ipmitool lan print 1 before discovery: %v\n%s", err, out)
	}
	if out, err := bmc.ipmitool("ops", "ops-Pw-42", "mc", "info"); err == nil {
		t.Fatalf("user ops logs in before discovery:\n%s", out)
	}
	vm := vmtest.StartVM(t, vmtest.VMConfig{Net: s.net, MAC: mac, Name: "new", Reboot: true, ResetOnLockup: true, Args: bmc.qemuArgs()})
	vm.WaitFor(t, "discovery: I am n2 (10.97.1.12)", 3*time.Minute)
	if line, err := vm.Await("bmcsetup: done", time.Second); err != nil {
		failed, _ := vm.Await("bmcsetup: ", time.Second)
		t.Errorf("bmcsetup did not finish in the discovery image: %q\nipmi_sim log:\n%s", failed, bmc.log())
	} else {
		t.Logf("discovery image: %s", line)
	}
	if _, err := vm.Await("RUNIMAGE-MARKER n2 payload-42", 30*time.Second); err != nil {
		got, _ := vm.Await("runimage: ", time.Second)
		t.Errorf("runimage's runme.sh did not print its marker: %v (%q)", err, got)
	}
	t.Logf("qemu start to discovered: %.1fs", vm.Since().Seconds())
	states := s.waitStatus("n2", "booted", 4*time.Minute)
	line := vm.WaitFor(t, "PROVKIT-ROOTFS-INIT", time.Minute)
	t.Logf("qemu start to booted as n2: %.1fs; states %v", vm.Since().Seconds(), states)
	if want := "discovered netbooting booting booted"; strings.Join(states, " ") != want {
		t.Errorf("n2 went through %v, want %s", states, want)
	}
	if !strings.Contains(line, "host=n2") {
		t.Errorf("the image's init says %q, want host=n2", line)
	}

	// What discovery recorded.
	if got := s.pc("nodels", "n2", "mac.mac", "vpd.uuid", "hwinv.cpucount", "chain.currstate"); !strings.Contains(got, "n2: mac.mac: 52:54:00:97:01:0b\n") ||
		!strings.Contains(got, "n2: vpd.uuid: mac-52540097010b\n") || !strings.Contains(got, "n2: chain.currstate: netboot busybox-x86_64-compute\n") {
		t.Errorf("nodels n2 =\n%s", got)
	}
	ls := s.pc("nodediscoverls")
	if !strings.Contains(ls, "Discovered 1 node.") || !strings.Contains(ls, "mac-52540097010b") || !strings.Contains(ls, "sequential") {
		t.Errorf("nodediscoverls =\n%s", ls)
	}
	long := s.pc("nodediscoverls", "-u", "mac-52540097010b", "-l")
	for _, want := range []string{"    node=n2", "    method=sequential", "switchname=eth0!leaf1.cluster.test", "switchport=eth0!swp7",
		"switchaddr=eth0!10.97.1.250", "nichwaddr=eth0!52:54:00:97:01:0b", "bootmac=52:54:00:97:01:0b"} {
		if !strings.Contains(long, want) {
			t.Errorf("nodediscoverls -l has no %q:\n%s", want, long)
		}
	}
	// The switch port is in the switch table now: next time n2 is found by it.
	if got := s.pc("tabdump", "switch"); !strings.Contains(got, `"n2","leaf1.cluster.test","swp7"`) {
		t.Errorf("tabdump switch =\n%s", got)
	}
	logs := strings.Join(s.provdLog.all(), "\n")
	for _, want := range []string{"dhcp: unknown node", "path=xcat/xnba/nets/10.97.1.0_24", "path=xcat/genesis.fs.x86_64.gz",
		"msg=\"node discovered\" node=n2 mac=52:54:00:97:01:0b method=sequential", chain,
		`msg="discovery: bmcsetup sent" node=n2 bmc="ip 10.97.2.12/24 gateway 10.97.2.254 user ops vlan 12"`, `msg="bmcsetup done" node=n2`, "path=xcat/xnba/nodes/n2"} {
		if !strings.Contains(logs, want) {
			t.Errorf("provd's log has no %q", want)
		}
	}
	if strings.Contains(logs, "ops-Pw-42") {
		t.Errorf("provd's log holds the BMC password")
	}
	// From outside the VM, with the real ipmitool over lanplus: the BMC has the tables'
	// address, netmask and gateway, and the new user logs in with its new password.
	lan, err := bmc.ipmitool("ops", "ops-Pw-42", "lan", "print", "1")
	if err != nil {
		t.Errorf("ipmitool -U ops lan print 1: %v\n%s\nipmi_sim log:\n%s", err, lan, bmc.log())
	}
	for _, want := range []string{"IP Address Source       : Static Address", "IP Address              : 10.97.2.12",
		"Subnet Mask             : 255.255.255.0", "Default Gateway IP      : 10.97.2.254", "802.1q VLAN ID          : 12\n"} {
		if !strings.Contains(lan, want) {
			t.Errorf("ipmitool lan print 1 has no %q:\n%s", want, lan)
		}
	}
	if out, err := bmc.ipmitool("ops", "wrong-password", "mc", "info"); err == nil {
		t.Errorf("ipmitool -U ops with a wrong password logs in:\n%s", out)
	}
	if got := s.pc("nodediscoverstop"); !strings.HasPrefix(got, "Discovered 1 nodes.\n    NODE") || !strings.Contains(got, "n2") {
		t.Errorf("nodediscoverstop = %q", got)
	}
	// The discovered node's name resolves at once in provd's DNS.
	out, err := s.net.NS.Command(context.Background(), "dig", "+short", "@10.97.1.1", "n2.cluster.test").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "10.97.1.12" {
		t.Errorf("dig n2.cluster.test = %q, %v", out, err)
	}
}

// writeRunImage writes a runimage= archive: a gzip'd tar of runme.sh and data.txt.
func writeRunImage(t *testing.T, path, script, data string) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, f := range []struct {
		name, body string
		mode       int64
	}{{"runme.sh", script, 0o755}, {"data.txt", data, 0o644}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
