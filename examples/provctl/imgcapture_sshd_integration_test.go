//go:build integration

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/provkit/provkit/image"
	"github.com/provkit/provkit/internal/sshdtest"
	"github.com/provkit/provkit/internal/testenv"
)

// TestSSHDImgcapture captures a golden tree from a real OpenSSH server with provctl
// imgcapture, checks the osimage it defines (lsdef -t osimage), the packed image and the
// boot files, then captures again after a change and sees only the change move.
func TestSSHDImgcapture(t *testing.T) {
	testenv.Require(t, testenv.Root(), testenv.Program("/usr/sbin/sshd", "go"))
	sd := sshdtest.Start(t, nil, "")
	port, key, kh := sd.Port(), sd.KeyFile, sd.KnownHosts
	agent := filepath.Join(t.TempDir(), "nodeinit")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", agent, "github.com/provkit/provkit/examples/nodeinit")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build nodeinit: %v\n%s", err, b)
	}

	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	golden := t.TempDir()
	for p, s := range map[string]string{
		"etc/os-release":             "ID=debian\nVERSION_ID=\"12\"\n",
		"etc/hostname":               "golden\n",
		"etc/machine-id":             "0123456789abcdef0123456789abcdef\n",
		"etc/ssh/ssh_host_rsa_key":   "golden secret\n",
		"boot/vmlinuz-" + release:    "a kernel",
		"boot/initrd.img-" + release: "an initrd",
		"usr/bin/tool":               strings.Repeat("x", 100000),
		"tmp/scratch":                "left out",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(golden, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(golden, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("tool", filepath.Join(golden, "usr/bin/tool-link")); err != nil {
		t.Fatal(err)
	}

	c := newCLI(t)
	inst := filepath.Join(c.dir, "install")
	c.ok("chtab", "key=installdir", "site.value="+inst)
	c.ok("chtab", "key=tftpdir", "site.value="+filepath.Join(c.dir, "tftpboot"))
	c.ok("nodeadd", "golden", "groups=all", "hosts.ip=127.0.0.1")
	over := filepath.Join(inst, "sysclone/overrides/compute/etc")
	if err := os.MkdirAll(over, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(over, "motd"), []byte("compute\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"imgcapture", "golden", "-t", "sysclone", "-o", "gold1", "--root", golden, "--override", "compute",
		"--port", fmt.Sprint(port), "-i", key, "--known-hosts", kh, "--nodeinit", agent}
	out := c.ok(args...)
	if !strings.Contains(out, "osimage gold1") || !strings.Contains(out, "(full:") {
		t.Errorf("imgcapture said %q", out)
	}
	dir := filepath.Join(inst, "sysclone/images/gold1")
	def := c.ok("lsdef", "-t", "osimage", "gold1")
	for _, want := range []string{"provmethod=sysclone", "rootimgdir=" + dir, "osvers=debian12", "imagetype=linux", "kernelver=" + release} {
		if !strings.Contains(def, "    "+want+"\n") {
			t.Errorf("lsdef -t osimage gold1 lacks %s:\n%s", want, def)
		}
	}
	if got := c.ok("lsdef", "-t", "osimage"); !strings.Contains(got, "gold1  (osimage)") {
		t.Errorf("lsdef -t osimage = %q", got)
	}

	// The tree, less what a capture leaves out.
	tree := filepath.Join(dir, image.CloneTreeDir)
	diff, _ := exec.Command("diff", "-r", "--no-dereference", golden, tree).CombinedOutput()
	wantDiff := fmt.Sprintf("Only in %s/etc: machine-id\nOnly in %s/etc/ssh: ssh_host_rsa_key\nOnly in %s/tmp: scratch\n", golden, golden, golden)
	if string(diff) != wantDiff {
		t.Errorf("diff -r golden captured:\n%s\nwant:\n%s", diff, wantDiff)
	}
	for f, want := range map[string]string{"kernel": "a kernel", "initrd": "an initrd"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v", f, b, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, image.CloneOverrides)); err != nil || string(b) != "compute\n" {
		t.Errorf("%s: %q, %v", image.CloneOverrides, b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "overrides/compute.sysclone")); err != nil {
		t.Errorf("override not packed: %v", err)
	}
	// The packed image lays the same tree.
	f, err := os.Open(filepath.Join(dir, image.CloneImageFile))
	if err != nil {
		t.Fatal(err)
	}
	laid := t.TempDir()
	_, err = image.ReceiveClone(context.Background(), f, laid, nil)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if d, err := exec.Command("diff", "-r", "--no-dereference", tree, laid).CombinedOutput(); err != nil {
		t.Errorf("the packed image differs from the tree: %v\n%s", err, d)
	}

	// A change, and a second capture moves only it.
	if err := os.WriteFile(filepath.Join(golden, "etc/hostname"), []byte("golden2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out = c.ok(args...)
	if !strings.Contains(out, "(incremental:") || !strings.Contains(out, " 1 files transferred") {
		t.Errorf("second imgcapture said %q", out)
	}
	if b, _ := os.ReadFile(filepath.Join(tree, "etc/hostname")); string(b) != "golden2\n" {
		t.Errorf("re-captured hostname %q", b)
	}

	// A host key that is not in known_hosts is refused, and nothing changes.
	other := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := append(args[:len(args)-4:len(args)-4], "--known-hosts", other, "--nodeinit", agent)
	if errs := c.fails(bad...); !strings.Contains(errs, "host key") {
		t.Errorf("unknown host key: %q", errs)
	}
}
