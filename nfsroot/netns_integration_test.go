//go:build integration

package nfsroot

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/provkit/provkit/internal/netns"
	"github.com/provkit/provkit/internal/testenv"
)

// TestNetnsLibnfsClients serves an image from a network namespace to libnfs's userspace
// clients (nfs-cat, nfs-ls, nfs-cp) in three other namespaces: node n1 at 10.94.1.2, node
// n2 at 10.94.2.2, and 10.94.3.2 that belongs to no node.
func TestNetnsLibnfsClients(t *testing.T) {
	testenv.Require(t, testenv.Root(), testenv.Program("ip", "nfs-cat", "nfs-ls", "nfs-cp"))
	before := runtime.NumGoroutine()

	srv := netns.New(t, "nfs")
	a, b, c := netns.New(t, "nfa"), netns.New(t, "nfb"), netns.New(t, "nfc")
	netns.Veth(t, srv, "na", "10.94.1.1/24", a, "eth0", "10.94.1.2/24")
	netns.Veth(t, srv, "nb", "10.94.2.1/24", b, "eth0", "10.94.2.2/24")
	netns.Veth(t, srv, "nc", "10.94.3.1/24", c, "eth0", "10.94.3.2/24")

	root, state := testImage(t), t.TempDir()
	big := make([]byte, 24<<20+12345)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(root, "usr/share/big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	var l, pl net.Listener
	var pc net.PacketConn
	err := srv.Do(func() error {
		var err error
		if l, err = net.Listen("tcp", "0.0.0.0:2049"); err != nil {
			return err
		}
		if pl, err = net.Listen("tcp", "0.0.0.0:111"); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", "0.0.0.0:111")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	views := ViewsFunc(func(_ context.Context, addr netip.Addr) (View, error) {
		switch addr.String() {
		case "10.94.1.2":
			return View{Node: "n1"}, nil
		case "10.94.2.2":
			return View{Node: "n2"}, nil
		}
		return View{}, fmt.Errorf("%s: %w", addr, ErrUnknownClient)
	})
	s := &Server{
		Exports: []Export{{
			Path: "/images/compute", Root: root, StateDir: state,
			Writable: []string{"/var", "/tmp"},
			Clients:  []netip.Prefix{netip.MustParsePrefix("10.94.0.0/16")},
		}},
		Views: views, Listener: l, PortmapListener: pl, PortmapPacketConn: pc,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()

	url := func(server, p string) string {
		return fmt.Sprintf("nfs://%s/images/compute%s?version=3&nfsport=2049&mountport=2049&auto-traverse-mounts=0", server, p)
	}
	run := func(ns *netns.NS, argv ...string) (string, string, error) {
		t.Helper()
		cctx, ccancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer ccancel()
		cmd := ns.Command(cctx, argv...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	image := snapshotDir(t, root)

	t.Run("per-node CDSL", func(t *testing.T) {
		for _, tt := range []struct {
			ns     *netns.NS
			server string
			want   string
		}{{a, "10.94.1.1", "n1\n"}, {b, "10.94.2.1", "n2\n"}} {
			out, errs, err := run(tt.ns, "nfs-cat", url(tt.server, "/etc/hostname"))
			if err != nil || out != tt.want {
				t.Errorf("nfs-cat etc/hostname from %s = %q, %v (%s), want %q", tt.server, out, err, errs, tt.want)
			}
		}
	})
	t.Run("portmapper", func(t *testing.T) {
		// No ports in the URL: libnfs asks the portmapper on port 111.
		out, errs, err := run(a, "nfs-cat", "nfs://10.94.1.1/images/compute/etc/ssh/ssh_host_key?version=3&auto-traverse-mounts=0")
		if err != nil || out != "secret-of-n1\n" {
			t.Errorf("nfs-cat through the portmapper = %q, %v (%s)", out, err, errs)
		}
	})
	t.Run("large file", func(t *testing.T) {
		out, errs, err := run(b, "nfs-cat", url("10.94.2.1", "/usr/share/big.bin"))
		if err != nil || sha256.Sum256([]byte(out)) != sha256.Sum256(big) {
			t.Errorf("nfs-cat of %d bytes: got %d bytes, %v (%s)", len(big), len(out), err, errs)
		}
	})
	t.Run("recursive listing", func(t *testing.T) {
		out, errs, err := run(a, "nfs-ls", "-R", url("10.94.1.1", ""))
		if err != nil {
			t.Fatalf("nfs-ls -R: %v (%s)", err, errs)
		}
		for _, want := range []string{" etc/hostname\n", " cluster/cdsl/n1/etc/ssh/ssh_host_key\n", " usr/bin/tool\n", " var/lib/dpkg/status\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("n1's listing lacks %q", strings.TrimSpace(want))
			}
		}
		if strings.Contains(out, "cluster/cdsl/n2") {
			t.Error("n1's listing shows n2's tree")
		}
	})
	t.Run("writes land in the node's state", func(t *testing.T) {
		local := filepath.Join(t.TempDir(), "boot.log")
		if err := os.WriteFile(local, []byte("n1 booted\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, errs, err := run(a, "nfs-cp", local, url("10.94.1.1", "/var/log/boot.log")); err != nil {
			t.Fatalf("nfs-cp to /var/log: %v (%s)", err, errs)
		}
		if got, err := os.ReadFile(filepath.Join(state, "n1/var/log/boot.log")); err != nil || string(got) != "n1 booted\n" {
			t.Errorf("n1's state has %q, %v", got, err)
		}
		out, errs, err := run(b, "nfs-ls", url("10.94.2.1", "/var/log"))
		if err != nil || strings.Contains(out, "boot.log") {
			t.Errorf("n2's /var/log = %q, %v (%s); want it without n1's file", out, err, errs)
		}
		out, _, err = run(a, "nfs-cat", url("10.94.1.1", "/var/log/boot.log"))
		if err != nil || out != "n1 booted\n" {
			t.Errorf("n1 reads back %q, %v", out, err)
		}
	})
	t.Run("read-only image", func(t *testing.T) {
		local := filepath.Join(t.TempDir(), "evil")
		os.WriteFile(local, []byte("evil\n"), 0o644)
		_, errs, err := run(a, "nfs-cp", local, url("10.94.1.1", "/usr/bin/evil"))
		if err == nil {
			t.Fatal("nfs-cp into /usr/bin succeeded")
		}
		if !strings.Contains(errs, "ROFS") && !strings.Contains(strings.ToLower(errs), "read-only") {
			t.Errorf("nfs-cp into /usr/bin failed with %q, want a read-only error", errs)
		}
		if diff := cmpSnap(image, snapshotDir(t, root)); diff != "" {
			t.Errorf("the image changed: %s", diff)
		}
	})
	t.Run("unknown client cannot mount", func(t *testing.T) {
		_, errs, err := run(c, "nfs-ls", url("10.94.3.1", ""))
		if err == nil || !strings.Contains(errs, "MNT3ERR_ACCES") {
			t.Errorf("nfs-ls from an unknown client: %v, %q; want MNT3ERR_ACCES", err, errs)
		}
	})

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v", err)
	}
	waitGoroutines(t, before)
}

func cmpSnap(a, b map[string]string) string {
	var diffs []string
	for k, v := range a {
		if b[k] != v {
			diffs = append(diffs, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			diffs = append(diffs, "+"+k)
		}
	}
	return strings.Join(diffs, ", ")
}
