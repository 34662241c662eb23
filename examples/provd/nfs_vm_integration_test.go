//go:build integration

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/provkit/provkit/internal/testenv"
	"github.com/provkit/provkit/internal/vmtest"
)

// stateliteInit is /sbin/init of the statelite test image, on the read-only NFS root. It
// counts its boots in /var (writable, per node, persistent), logs them in a file named
// after the node, tries to write to /usr (the shared base), /tmp (writable) and /root
// (not writable here), prints what it saw on one line and powers off.
const stateliteInit = `#!/bin/sh
export PATH=/bin
h=$(cat /etc/hostname)
d=/var/lib/provkit-test
mkdir -p $d
n=$(cat $d/boots 2>/dev/null || echo 0)
n=$((n+1))
echo $n > $d/boots
echo "boot $n of $h" >> $d/$h.log
probe() { if err=$(touch "$1" 2>&1); then echo writable; else case "$err" in *Read-only*) echo EROFS;; *) echo "other";; esac; fi; }
echo "PROVKIT-STATELITE host=$(hostname) etc_hostname=$h boot=$n var=[$(ls $d | tr '\n' ' ')] log=[$(tr '\n' ';' < $d/$h.log)] tmp=$(probe /tmp/probe) usr=$(probe /usr/probe) root=$(probe /root/probe) rootfs=$(stat -f -c %T /)"
sync
poweroff -f
`

// stateliteRoot makes the busybox tree of the statelite image: every applet the init
// uses is a link made here, since the root is read-only on the node.
func stateliteRoot(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{"bin", "sbin", "proc", "sys", "dev", "run", "tmp", "etc", "var/lib", "root", "usr/share"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile(vmtest.Busybox)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"bin/busybox": string(bb), "sbin/init": stateliteInit, "etc/hostname": "image\n", "usr/share/motd": "shared base\n"}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, applet := range []string{"sh", "cat", "mkdir", "echo", "touch", "ls", "tr", "hostname", "stat", "sync", "poweroff"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
}

// treeSum describes every entry of a tree (type, mode, size, content hash or link
// target) by path, to prove that nothing changed it.
func treeSum(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		desc := fmt.Sprintf("%v %d", fi.Mode(), fi.Size())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + l
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(sum[:8])
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// bootAll starts a VM for each node at once and returns each one's PROVKIT-STATELITE
// line, once every VM has powered off.
func (s *bootSite) bootAll(t *testing.T, round int, macs map[string]net.HardwareAddr) map[string]string {
	t.Helper()
	lines := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(macs))
	for node, mac := range macs {
		vm := vmtest.StartVM(t, vmtest.VMConfig{Net: s.net, MAC: mac, Name: fmt.Sprintf("%s-boot%d", node, round)})
		wg.Add(1)
		go func() {
			defer wg.Done()
			line, err := vm.Await("PROVKIT-STATELITE", 4*time.Minute)
			if err != nil {
				errs <- fmt.Errorf("%s, boot %d: %w", node, round, err)
				return
			}
			select {
			case <-vm.Exited():
			case <-time.After(time.Minute):
				errs <- fmt.Errorf("%s, boot %d: did not power off", node, round)
			}
			t.Logf("%s boot %d: qemu start to powered off in %.1fs", node, round, vm.Since().Seconds())
			if os.Getenv("PROVKIT_VM_CONSOLE") != "" {
				vm.LogConsole(t)
			}
			mu.Lock()
			lines[node] = line[strings.Index(line, "PROVKIT-STATELITE"):]
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	return lines
}

// TestVMStateliteBoot is issue 6's proof: two qemu VMs net-boot at once from provd with
// an NFS root served by nfsroot from the tables (statelite osimage, litefile, a CDSL made
// with provctl mkcdsl), the Debian kernel's NFS client loaded by nodeinit. Each node sees
// its own host-dependent /etc/hostname and its own writable /var; what a node writes in
// /var survives its reboot (n1 boots again) and is invisible to the other; /usr and /root
// are read-only; the shared image is the same byte for byte after the boots.
func TestVMStateliteBoot(t *testing.T) {
	testenv.Require(t, vmtest.Needs()...)
	s := newBootSite(t, netip.MustParsePrefix("10.94.100.1/24"))
	src := filepath.Join(s.dir, "src")
	stateliteRoot(t, src)
	imgdir := filepath.Join(s.dir, "install/netboot/busybox")
	state := filepath.Join(s.dir, "statelite")

	s.pc("chtab", "key=tftpdir", "site.value="+filepath.Join(s.dir, "tftpboot"))
	s.pc("chtab", "key=installdir", "site.value="+filepath.Join(s.dir, "install"))
	s.pc("chtab", "key=statelitedir", "site.value="+state)
	s.pc("chtab", "key=dhcpinterfaces", "site.value=br0")
	s.pc("mkdef", "-t", "network", "-o", "bootnet", "net=10.94.100.0", "mask=255.255.255.0", "mgtifname=br0")
	s.pc("nodeadd", "n[1-2]", "groups=compute,all")
	s.pc("chtab", "node=compute", `hosts.ip=|n(\d+)|10.94.100.($1+10)|`, "noderes.netboot=xnba", "nodehm.serialport=0", "nodehm.serialspeed=115200")
	macs := map[string]net.HardwareAddr{"n1": {0x52, 0x54, 0x00, 0x94, 0x64, 0x01}, "n2": {0x52, 0x54, 0x00, 0x94, 0x64, 0x02}}
	for n, mac := range macs {
		s.pc("chtab", "node="+n, "mac.mac="+mac.String())
	}
	s.pc("mkdef", "-t", "osimage", "-o", "busybox-statelite", "osvers=busybox", "osarch=x86_64", "profile=compute",
		"provmethod=statelite", "rootimgdir="+imgdir, "addkcmdline=quiet panic=-1")
	// xCAT's litefile: /var persistent, /tmp writable; nothing else (so /root is not).
	s.pc("chtab", "image=ALL,file=/var/", "litefile.options=persistent")
	s.pc("chtab", "image=busybox-statelite,file=/tmp/", "litefile.options=tmpfs")
	s.pc("genimage", "busybox-statelite", "--source", "dir:"+src, "--kernel-deb", s.kernel.Deb, "--nodeinit", s.nodeinit)
	// The host-dependent /etc/hostname: each node's copy, edited as an admin would.
	s.pc("mkcdsl", "busybox-statelite", "-a", "/etc/hostname")
	rootimg := filepath.Join(imgdir, "rootimg")
	for n := range macs {
		if err := os.WriteFile(filepath.Join(rootimg, "cluster/cdsl", n, "etc/hostname"), []byte("cdsl-"+n+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.pc("nodeset", "n1,n2", "osimage=busybox-statelite"); got != "n1: statelite busybox-x86_64-compute\nn2: statelite busybox-x86_64-compute\n" {
		t.Fatalf("nodeset = %q", got)
	}
	base := treeSum(t, rootimg)
	s.startProvd("--ra-interface", "br0", "--ra-prefix", s.net.Addr6.Masked().String())

	want := func(node string, boot int, logs string) string {
		return fmt.Sprintf("PROVKIT-STATELITE host=%s etc_hostname=cdsl-%s boot=%d var=[boots cdsl-%s.log ] log=[%s] tmp=writable usr=EROFS root=EROFS rootfs=nfs",
			node, node, boot, node, logs)
	}
	first := s.bootAll(t, 1, macs)
	for n := range macs {
		if w := want(n, 1, "boot 1 of cdsl-"+n+";"); first[n] != w {
			t.Errorf("%s, first boot:\n got %q\nwant %q", n, first[n], w)
		}
	}
	for n := range macs {
		if states := s.waitStatus(n, "booted", time.Minute); strings.Join(states, " ") != "netbooting booting booted" {
			t.Errorf("%s reported %v, want netbooting booting booted", n, states)
		}
	}
	// n1's power cycle (qemu starts again with the same MAC), now that n2 has written its
	// own files: n1 finds its /var as it left it, and none of n2's.
	second := s.bootAll(t, 2, map[string]net.HardwareAddr{"n1": macs["n1"]})
	if w := want("n1", 2, "boot 1 of cdsl-n1;boot 2 of cdsl-n1;"); second["n1"] != w {
		t.Errorf("n1, second boot:\n got %q\nwant %q", second["n1"], w)
	}

	// On the server: each node's /var in its own state directory, the image untouched.
	for n, content := range map[string]string{"n1": "boot 1 of cdsl-n1\nboot 2 of cdsl-n1\n", "n2": "boot 1 of cdsl-n2\n"} {
		p := filepath.Join(state, "busybox-statelite", n, "var/lib/provkit-test", "cdsl-"+n+".log")
		if b, err := os.ReadFile(p); err != nil || string(b) != content {
			t.Errorf("%s = %q, %v; want %q", p, b, err, content)
		}
	}
	if diff := cmp.Diff(base, treeSum(t, rootimg)); diff != "" {
		t.Errorf("the shared image changed (-before +after):\n%s", diff)
	}
	logs := strings.Join(s.provdLog.all(), "\n")
	for n := range macs {
		if !regexp.MustCompile(`msg=mount service=nfs ip=10\.94\.100\.1[12] node=` + n + ` export=` + regexp.QuoteMeta(rootimg)).MatchString(logs) {
			t.Errorf("provd's log has no NFS mount of %s by %s", rootimg, n)
		}
	}
}
