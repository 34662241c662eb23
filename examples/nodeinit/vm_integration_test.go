//go:build integration

package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/google/go-cmp/cmp"
	nfs "github.com/willscott/go-nfs"
	nfshelper "github.com/willscott/go-nfs/helpers"

	"github.com/provkit/provkit/image"
	"github.com/provkit/provkit/internal/testenv"
	"github.com/provkit/provkit/internal/vmtest"
)

// receiver is the test's status endpoint: it records each node's states in order.
type receiver struct {
	mu      sync.Mutex
	states  map[string][]string
	changed chan struct{}
}

func newReceiver() *receiver {
	return &receiver{states: map[string][]string{}, changed: make(chan struct{})}
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var st Status
	if req.Method != http.MethodPost || json.NewDecoder(req.Body).Decode(&st) != nil || st.Node == "" {
		http.Error(w, "want POST of {\"node\":...,\"state\":...}", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.states[st.Node] = append(r.states[st.Node], st.State)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// wait waits until node reports a state for which done is true, and returns all its
// states so far.
func (r *receiver) wait(t *testing.T, vm *vmtest.VM, node string, timeout time.Duration, done func(string) bool) []string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		got := append([]string(nil), r.states[node]...)
		ch := r.changed
		r.mu.Unlock()
		if len(got) > 0 && done(got[len(got)-1]) {
			return got
		}
		select {
		case <-ch:
		case <-vm.Exited():
			t.Fatalf("VM exited; %s reported %q", node, got)
		case <-deadline:
			t.Fatalf("no final state from %s within %s; reported %q", node, timeout, got)
		}
	}
}

// rootInit is /sbin/init of the test image: it proves it runs as PID 1 of the new root
// and says what the root filesystem is.
const rootInit = `#!/bin/sh
echo "PROVKIT-ROOT-OK pid=$$ host=$(hostname) rootfs=$(awk '$2=="/"{t=$3} END{print t}' /proc/mounts) ip=$(ip -4 -o addr show eth0 | awk '{print $4}')"
sleep 20
poweroff -f
`

// buildRootfs builds the busybox image with image.Build (from a staged directory) and
// returns its directory.
func buildRootfs(t *testing.T) string {
	t.Helper()
	stage := t.TempDir()
	for _, d := range []string{"bin", "sbin", "dev", "proc", "sys", "run", "tmp", "etc", "newroot"} {
		os.MkdirAll(filepath.Join(stage, d), 0o755)
	}
	b, err := os.ReadFile(vmtest.Busybox)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(stage, "bin/busybox"), b, 0o755)
	for _, applet := range []string{"sh", "echo", "hostname", "ip", "awk", "sleep", "poweroff", "cat", "mount", "ls"} {
		os.Symlink("busybox", filepath.Join(stage, "bin", applet))
	}
	os.WriteFile(filepath.Join(stage, "sbin/init"), []byte(rootInit), 0o755)
	os.WriteFile(filepath.Join(stage, "etc/motd"), []byte("provkit test image\n"), 0o644)
	dir := filepath.Join(t.TempDir(), "rootimg")
	if _, err := image.Build(context.Background(), image.Spec{Dir: dir, Source: image.Directory{Path: stage}}); err != nil {
		t.Fatalf("image.Build: %v", err)
	}
	return dir
}

// node is one VM test set-up: network, boot server, image server, status receiver.
type node struct {
	name  string
	mac   net.HardwareAddr
	net   *vmtest.Net
	base  string // http://bridge:port
	files *http.ServeMux
	recv  *receiver
	tftp  string
}

func newNode(t *testing.T, subnet int) *node {
	t.Helper()
	n := &node{name: fmt.Sprintf("n%d", subnet), mac: net.HardwareAddr{0x52, 0x54, 0x00, 0x98, byte(subnet), 0x05},
		files: http.NewServeMux(), recv: newReceiver(), tftp: t.TempDir()}
	n.net = vmtest.NewNet(t, "ni", netip.MustParsePrefix(fmt.Sprintf("10.98.%d.1/24", subnet)))
	n.files.Handle("/status", n.recv)
	n.base = n.net.ServeHTTP(t, 0, n.files)
	return n
}

func (n *node) serveFile(urlPath, file string) string {
	n.files.HandleFunc(urlPath, func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, file) })
	return n.base + urlPath
}

// boot writes the iPXE script (xCAT's BOOTIF form), starts dnsmasq and the VM.
func (n *node) boot(t *testing.T, kernelFile, initrd, cmdline string) *vmtest.VM {
	t.Helper()
	kernel := n.serveFile("/boot/kernel", kernelFile)
	ird := n.serveFile("/boot/initrd-stateless.gz", initrd)
	script := fmt.Sprintf("#!ipxe\nkernel %s console=ttyS0 quiet panic=-1 NODE=%s BOOTIF=01-${netX/mac:hexhyp} provkit.status=%s/status %s\ninitrd %s\nboot\n",
		kernel, n.name, n.base, cmdline, ird)
	if err := os.WriteFile(filepath.Join(n.tftp, "boot.ipxe"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	vmtest.StartDnsmasq(t, n.net, vmtest.DnsmasqConfig{TFTPRoot: n.tftp, BootFile: "boot.ipxe",
		Hosts: map[string]netip.Addr{n.mac.String(): n.net.Host(5)}})
	return vmtest.StartVM(t, vmtest.VMConfig{Net: n.net, MAC: n.mac, Name: n.name, MemoryMB: 512})
}

// initramfs builds the nodeinit initramfs with image.WriteInitramfs.
func initramfs(t *testing.T, k *vmtest.Kernel, modules ...string) string {
	t.Helper()
	bin := vmtest.BuildGo(t, "github.com/provkit/provkit/examples/nodeinit")
	out := filepath.Join(t.TempDir(), "initrd-stateless.gz")
	info, err := image.WriteInitramfsFile(context.Background(), out, image.InitramfsSpec{
		Init: bin, KernelRoot: k.Root, KernelVersion: k.Version,
		Modules:  append(image.VirtioNetModules(), modules...),
		Files:    map[string]string{"bin/busybox": vmtest.Busybox},
		Symlinks: map[string]string{"bin/sh": "busybox"},
	})
	if err != nil {
		t.Fatalf("image.WriteInitramfs: %v", err)
	}
	t.Logf("initramfs: %d modules, %.1f MiB", len(info.Modules), float64(info.Written)/(1<<20))
	return out
}

var bootedStates = []string{StateNetbooting, StateBooting, StateBooted}

func isFinal(s string) bool { return s == StateBooted || strings.HasPrefix(s, statePrefixFail) }

func needs(t *testing.T) {
	testenv.Require(t, append(vmtest.Needs(), testenv.Program("dnsmasq"))...)
}

// TestVMNodeinitStateless is the proof of the stateless path: the VM net-boots from
// dnsmasq (DHCP, TFTP) and the test's HTTP server (Debian kernel, the nodeinit
// initramfs built by image), nodeinit downloads the busybox image packed by image as
// cpio.gz, unpacks it into tmpfs, switches root, and the receiver sees netbooting ->
// booting -> booted; the console shows the image's init running as PID 1.
func TestVMNodeinitStateless(t *testing.T) {
	needs(t)
	t.Parallel()
	k := vmtest.DebianKernel(t)
	n := newNode(t, 20)
	root := buildRootfs(t)
	img := filepath.Join(t.TempDir(), "rootimg.cpio.gz")
	if _, err := image.PackFile(context.Background(), root, img, image.PackOptions{Format: image.CPIO, Compression: image.Gzip}); err != nil {
		t.Fatal(err)
	}
	url := n.serveFile("/install/netboot/rootimg.cpio.gz", img)
	// The boot files as provd will serve them: kernel and initramfs made by MakeBoot
	// from the extracted kernel package.
	boot, err := image.MakeBoot(context.Background(), image.BootSpec{
		Dir: filepath.Join(t.TempDir(), "tftpboot/xcat/osimage/test"), ImageRoot: k.Root, KernelVersion: k.Version,
		Init: vmtest.BuildGo(t, "github.com/provkit/provkit/examples/nodeinit"), Modules: image.VirtioNetModules(),
	})
	if err != nil {
		t.Fatalf("image.MakeBoot: %v", err)
	}
	sum, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	vm := n.boot(t, boot.Kernel, boot.Initrd, fmt.Sprintf("imgurl=%s provkit.imgsha256=%x provkit.debug=1", url, sha256.Sum256(sum)))
	got := n.recv.wait(t, vm, n.name, 4*time.Minute, isFinal)
	if diff := cmp.Diff(bootedStates, got); diff != "" {
		t.Fatalf("states of %s (-want +got):\n%s", n.name, diff)
	}
	line := vm.WaitFor(t, "PROVKIT-ROOT-OK", time.Minute)
	for _, want := range []string{"pid=1 ", "host=" + n.name, "rootfs=tmpfs ", "ip=" + n.net.Host(5).String()} {
		if !strings.Contains(line, want) {
			t.Errorf("image init says %q; want %q in it", line, want)
		}
	}
	t.Logf("qemu start to booted: %.1fs", vm.Since().Seconds())
	if testing.Verbose() {
		vm.LogConsole(t)
	}
}

// TestVMNodeinitSquashfs boots a squashfs image (zstd inside) fetched over HTTP: stored
// in /run, loop-mounted, with a tmpfs overlay.
func TestVMNodeinitSquashfs(t *testing.T) {
	needs(t)
	testenv.Require(t, testenv.Program("mksquashfs"))
	t.Parallel()
	k := vmtest.DebianKernel(t)
	n := newNode(t, 22)
	root := buildRootfs(t)
	img := filepath.Join(t.TempDir(), "rootimg.sfs")
	if _, err := image.PackFile(context.Background(), root, img, image.PackOptions{Format: image.Squashfs, Compression: image.Zstd}); err != nil {
		t.Fatal(err)
	}
	vm := n.boot(t, k.Vmlinuz, initramfs(t, k, image.SquashfsRootModules()...), "imgurl="+n.serveFile("/rootimg.sfs", img))
	got := n.recv.wait(t, vm, n.name, 4*time.Minute, isFinal)
	if diff := cmp.Diff(bootedStates, got); diff != "" {
		t.Fatalf("states of %s (-want +got):\n%s", n.name, diff)
	}
	if line := vm.WaitFor(t, "PROVKIT-ROOT-OK", time.Minute); !strings.Contains(line, "rootfs=overlay ") || !strings.Contains(line, "pid=1 ") {
		t.Errorf("image init says %q; want pid 1 on an overlayfs root", line)
	}
}

// TestVMNodeinitNFS boots with root=nfs: from a minimal go-nfs server started by this
// test (NFS serving proper is package nfsroot's), with the kernel NFS client.
func TestVMNodeinitNFS(t *testing.T) {
	needs(t)
	t.Parallel()
	k := vmtest.DebianKernel(t)
	n := newNode(t, 21)
	root := buildRootfs(t)
	l := n.net.Listen(t, 2049)
	handler := nfshelper.NewCachingHandler(nfshelper.NewNullAuthHandler(osfs.New(root)), 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = nfs.Serve(l, handler)
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	opts := "ro,port=2049,mountport=2049,noacl"
	vm := n.boot(t, k.Vmlinuz, initramfs(t, k, image.NFSRootModules()...), fmt.Sprintf("root=nfs:%s:/:%s", n.net.Addr.Addr(), opts))
	got := n.recv.wait(t, vm, n.name, 4*time.Minute, isFinal)
	if diff := cmp.Diff(bootedStates, got); diff != "" {
		t.Fatalf("states of %s (-want +got):\n%s", n.name, diff)
	}
	if line := vm.WaitFor(t, "PROVKIT-ROOT-OK", time.Minute); !strings.Contains(line, "rootfs=nfs ") || !strings.Contains(line, "pid=1 ") {
		t.Errorf("image init says %q; want pid 1 on an nfs root", line)
	}
}

// TestVMNodeinitFailure asks for an image that is not there: nodeinit reports
// "failed: ... 404 ...", says so on the console and, with provkit.rescue=1, starts the
// busybox shell of the initramfs.
func TestVMNodeinitFailure(t *testing.T) {
	needs(t)
	t.Parallel()
	k := vmtest.DebianKernel(t)
	n := newNode(t, 23)
	vm := n.boot(t, k.Vmlinuz, initramfs(t, k), "imgurl="+n.base+"/no/such/image.cpio.gz provkit.rescue=1")
	got := n.recv.wait(t, vm, n.name, 4*time.Minute, isFinal)
	if len(got) != 2 || got[0] != StateNetbooting || !strings.HasPrefix(got[1], "failed: ") || !strings.Contains(got[1], "404") {
		t.Fatalf("states of %s = %q, want netbooting then failed: ... 404", n.name, got)
	}
	vm.WaitFor(t, "BOOT FAILED", time.Minute)
	vm.WaitFor(t, "starting a rescue shell", time.Minute)
}
