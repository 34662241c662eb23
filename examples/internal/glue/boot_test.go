package glue

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/image"
)

// TestBootSysclone: a node set to sysclone boots the osimage's deploy kernel and
// initramfs with nodeinit's sysclone mode pointed at the captured image directory.
func TestBootSysclone(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	inst := filepath.Join(dir, "install")
	imgdir := filepath.Join(inst, "sysclone/images/gold")
	s, err := cluster.Open(ctx, filepath.Join(dir, "provkit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Update(ctx, func(tx cluster.Tx) error {
		for tab, rows := range map[string][]cluster.Row{
			"site":       {{"key": "installdir", "value": inst}},
			"nodelist":   {{"node": "n1", "groups": "compute"}},
			"hosts":      {{"node": "n1", "ip": "10.0.0.11"}},
			"nodetype":   {{"node": "n1", "provmethod": "gold"}},
			"chain":      {{"node": "n1", "currstate": "sysclone gold"}},
			"osimage":    {{"imagename": "gold", "provmethod": "sysclone", "imagetype": "linux"}},
			"linuximage": {{"imagename": "gold", "rootimgdir": imgdir}},
		} {
			if err := tx.Put(tab, rows...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := cluster.LoadView(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	addrs := &LocalAddrs{AddrsFn: func() ([]net.Addr, error) {
		return []net.Addr{&net.IPNet{IP: net.IPv4(10, 0, 0, 1), Mask: net.CIDRMask(24, 32)}}, nil
	}}
	g := &Boot{Views: ViewSourceFunc(func() *cluster.View { return v }), Addrs: addrs, HTTPPort: 8080}
	n, err := v.Node("n1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Node(v, n); err == nil || !strings.Contains(err.Error(), "run imgcapture") {
		t.Fatalf("before a capture: err = %v, want one saying to run imgcapture", err)
	}
	if err := os.MkdirAll(imgdir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{image.CloneLayout, image.CloneImageFile} {
		if err := os.WriteFile(filepath.Join(imgdir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bn, err := g.Node(v, n)
	if err != nil {
		t.Fatal(err)
	}
	if bn.Kernel != "xcat/osimage/gold/kernel" || bn.Initrd != "xcat/osimage/gold/initrd-sysclone.gz" ||
		bn.Cmdline != "provkit.sysclone=http://10.0.0.1:8080/install/sysclone/images/gold NODE=n1 provkit.status=http://10.0.0.1:8080/api/v1/status" {
		t.Errorf("boot = kernel %q initrd %q cmdline %q", bn.Kernel, bn.Initrd, bn.Cmdline)
	}
}
