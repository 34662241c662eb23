//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/provkit/provkit/image"
	"github.com/provkit/provkit/internal/testenv"
)

// TestRootLoopSysclone runs nodeinit's sysclone mode against an HTTP server that serves
// an osimage directory as provd does: it reads the layout, lays the image onto a loop
// device over HTTP, makes the node's fix-ups and reports each state.
func TestRootLoopSysclone(t *testing.T) {
	testenv.Require(t, testenv.Root(), testenv.Program("losetup", "sfdisk", "mke2fs"))
	ctx := context.Background()
	golden := t.TempDir()
	for p, s := range map[string]string{
		"etc/hostname":                 "golden\n",
		"etc/hosts":                    "127.0.0.1\tlocalhost\n",
		"etc/network/interfaces":       "source /etc/network/interfaces.d/*\n",
		"usr/bin/tool":                 strings.Repeat("tool ", 50000),
		"etc/ssh/sshd_config":          "PermitRootLogin yes\n",
		"etc/network/interfaces.d/.ok": "",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(golden, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(golden, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The osimage directory, as imgcapture leaves it.
	imgdir := t.TempDir()
	f, err := os.Create(filepath.Join(imgdir, image.CloneImageFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := image.PackClone(ctx, golden, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	layout := image.DiskLayout{Disks: []image.LayoutDisk{{Device: "/dev/vda", Size: 48 << 20, SectorSize: 512, Label: "gpt",
		Partitions: []image.LayoutPartition{{Number: 1, Start: 2048, Size: 94208, Type: "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
			Grow: true, FSType: "ext4", FSUUID: "3f1e0c55-6a43-4a6b-9c1e-2f2b9e1d0a77", Mountpoint: "/"}}}}}
	b, _ := json.Marshal(layout)
	if err := os.WriteFile(filepath.Join(imgdir, image.CloneLayout), b, 0o644); err != nil {
		t.Fatal(err)
	}
	// One override tree (SystemImager style): a file of its own laid over the image.
	over := t.TempDir()
	if err := os.MkdirAll(filepath.Join(over, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(over, "etc/motd"), []byte("compute class\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(imgdir, "overrides"), 0o755); err != nil {
		t.Fatal(err)
	}
	of, err := os.Create(filepath.Join(imgdir, "overrides/compute.sysclone"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := image.PackClone(ctx, over, of); err != nil {
		t.Fatal(err)
	}
	of.Close()
	if err := os.WriteFile(filepath.Join(imgdir, image.CloneOverrides), []byte("# classes\ncompute\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sink := &statusSink{}
	mux := http.NewServeMux()
	mux.Handle("/install/sysclone/images/gold/", http.StripPrefix("/install/sysclone/images/gold/", http.FileServer(http.Dir(imgdir))))
	mux.Handle("/api/v1/status", sink)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", "-P", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", loop).Run() })

	cfg, err := ParseCmdline("NODE=n9 provkit.sysclone=" + srv.URL + "/install/sysclone/images/gold provkit.disk=" + loop +
		" provkit.status=" + srv.URL + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	deployMount = t.TempDir()
	var con bytes.Buffer
	c := &console{w: &con, start: time.Now()}
	if err := deploySysclone(ctx, cfg, netInfo{Iface: "ens3", MAC: "52:54:00:98:00:09"}, newReporter(cfg, c), c); err != nil {
		t.Fatalf("deploy: %v\n%s", err, con.String())
	}
	want := []string{"n9 partitioning", "n9 formatting", "n9 imaging", "n9 overrides", "n9 bootloader", "n9 fixup", "n9 installed"}
	if diff := cmp.Diff(want, sink.states()); diff != "" {
		t.Errorf("reported states (-want +got):\n%s", diff)
	}

	mnt := t.TempDir()
	if err := unix.Mount(image.PartitionDevice(loop, 1), mnt, "ext4", unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(mnt, 0)
	for p, want := range map[string]string{
		"etc/hostname":                          "n9\n",
		"etc/network/interfaces.d/provkit-ens3": "# provkit sysclone: n9's boot interface\nauto ens3\niface ens3 inet dhcp\n",
		"etc/provkit/node.conf":                 "NODE=n9\nSTATUS=" + srv.URL + "/api/v1/status\n",
		"usr/bin/tool":                          strings.Repeat("tool ", 50000),
		"etc/motd":                              "compute class\n",
	} {
		if b, err := os.ReadFile(filepath.Join(mnt, p)); err != nil || string(b) != want {
			t.Errorf("%s = %.60q (%v), want %.60q", p, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(mnt, "etc/ssh/ssh_host_ed25519_key")); err != nil {
		t.Errorf("no fresh host key: %v", err)
	}
	t.Logf("console:\n%s", con.String())
}
