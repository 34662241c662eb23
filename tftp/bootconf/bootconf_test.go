package bootconf

import (
	"errors"
	"flag"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// addrEq lets go-cmp compare netip.Addr values.
var addrEq = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// xcatNode is the stateless node of artifacts.md §4.
func xcatNode() Node {
	return Node{
		Name:    "node01",
		State:   "netboot rhels7.9-x86_64-compute",
		Kernel:  "xcat/osimage/rhels7.9-x86_64-netboot-compute/kernel",
		Initrd:  "xcat/osimage/rhels7.9-x86_64-netboot-compute/initrd-stateless.gz",
		Cmdline: "imgurl=http://10.0.0.1:80//install/netboot/rhels7.9/x86_64/compute/rootimg.cpio.gz XCAT=10.0.0.1:3001 NODE=node01 FC=0 XCATHTTPPORT=80",
		MAC:     mustMAC("e6:d4:d2:3a:ad:06"),
		IP:      netip.MustParseAddr("10.0.0.101"),
		Server:  netip.MustParseAddr("10.0.0.1"),
	}
}

func TestRenderGolden(t *testing.T) {
	with := func(f func(*Node)) Node { n := xcatNode(); f(&n); return n }
	tests := []struct {
		name   string
		format Format
		node   Node
	}{
		{"pxelinux-netboot", PXELinux, xcatNode()},
		{"pxelinux-debian", PXELinux, with(func(n *Node) {
			n.State = "netboot debian12-x86_64-compute"
			n.Kernel = "xcat/osimage/debian12-x86_64-netboot-compute/kernel"
			n.Initrd = "xcat/osimage/debian12-x86_64-netboot-compute/initrd-stateless.gz"
			n.Cmdline = "imgurl=http://10.92.0.1:80//install/netboot/debian12/x86_64/compute/rootimg.cpio.zst NODE=node01 console=tty0 console=ttyS0,115200"
		})},
		{"pxelinux-no-cmdline", PXELinux, with(func(n *Node) { n.Cmdline = "" })},
		{"pxelinux-old-path", PXELinux, with(func(n *Node) {
			n.Kernel = "xcat/netboot/alt/x86_64/compute//kernel"
			n.Initrd = "xcat/netboot/alt/x86_64/compute//initrd-stateless.gz"
		})},
		{"pxelinux-no-ipappend", PXELinux, with(func(n *Node) { n.NoIPAppend = true })},
		{"pxelinux-mboot", PXELinux, with(func(n *Node) { n.Kernel = "xcat/xen/vmlinuz!xcat/xen/xen.gz" })},
		{"pxelinux-boot", PXELinux, with(func(n *Node) { n.State = "boot" })},
		{"pxelinux-no-state", PXELinux, with(func(n *Node) { n.State = ""; n.Kernel = "" })},
		{"xnba-netboot", XNBA, xcatNode()},
		{"xnba-uefi-netboot", XNBAUEFI, xcatNode()},
		{"xnba-no-cmdline", XNBA, with(func(n *Node) { n.Cmdline = "" })},
		{"xnba-httpport", XNBA, with(func(n *Node) { n.HTTPPort = 8080 })},
		{"xnba-boot", XNBA, with(func(n *Node) { n.State = "boot" })},
		{"xnba-uefi-boot", XNBAUEFI, with(func(n *Node) { n.State = "boot" })},
		{"xnba-iscsi-boot", XNBA, with(func(n *Node) { n.State = "boot"; n.ISCSI = true })},
		{"grub2-netboot", GRUB2, xcatNode()},
		{"grub2-http", GRUB2, with(func(n *Node) { n.NetBoot = "grub2-http"; n.HTTPPort = 8080 })},
		{"grub2-uefi-debug", GRUB2, with(func(n *Node) { n.UEFI = true; n.Debug = true })},
		{"grub2-boot", GRUB2, with(func(n *Node) { n.State = "boot" })},
		{"grub2-statelite", GRUB2, with(func(n *Node) {
			n.State = "statelite rhels7.9-ppc64le-compute"
			n.Cmdline = "root=nfs:10.0.0.1:/install/netboot/rhels7.9/ppc64le/compute/rootimg:ro,noac STATEMNT= XCAT=10.0.0.1:3001 NODE=node01"
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Render(tt.format, tt.node)
			if err != nil {
				t.Fatalf("Render(%s, %+v) error %v", tt.format, tt.node, err)
			}
			path := filepath.Join("testdata", "golden", tt.name)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("Render(%s) mismatch with %s (-want +got):\n%s", tt.format, path, diff)
			}
		})
	}
}

// TestRenderExact pins the xCAT quirks independently of the golden files.
func TestRenderExact(t *testing.T) {
	n := xcatNode()
	n.Cmdline = ""
	got, _ := Render(PXELinux, n)
	want := "#netboot rhels7.9-x86_64-compute\nDEFAULT xCAT\nLABEL xCAT\n KERNEL xcat/osimage/rhels7.9-x86_64-netboot-compute/kernel\n" +
		" APPEND initrd=xcat/osimage/rhels7.9-x86_64-netboot-compute/initrd-stateless.gz \n  IPAPPEND 2\n"
	if string(got) != want {
		t.Errorf("pxelinux without cmdline:\n%q\nwant\n%q", got, want)
	}
	n.State = "boot"
	got, _ = Render(GRUB2, n)
	if want := "#boot\nset timeout=5\n"; string(got) != want {
		t.Errorf("grub2 boot = %q, want %q", got, want)
	}
	got, _ = Render(GRUB2, xcatNode())
	if got[len(got)-1] != '}' {
		t.Errorf("grub2 netboot ends %q, want a final } without newline", got[len(got)-5:])
	}
	got, _ = Render(XNBAUEFI, n)
	if want := "#!gpxe\n#boot\nexit\n"; string(got) != want {
		t.Errorf("xnba uefi boot = %q, want %q", got, want)
	}
}

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		name   string
		format Format
		mod    func(*Node)
		want   error
	}{
		{"offline", PXELinux, func(n *Node) { n.State = "offline" }, ErrNoConfig},
		{"offline is not exist", XNBA, func(n *Node) { n.State = "offline" }, fs.ErrNotExist},
		{"other loader", GRUB2, func(n *Node) { n.NetBoot = "xnba" }, ErrNoConfig},
		{"unknown loader", PXELinux, func(n *Node) { n.NetBoot = "yaboot" }, ErrNoConfig},
		{"newline in cmdline", PXELinux, func(n *Node) { n.Cmdline = "a\nDEFAULT evil" }, ErrBadNode},
		{"no name", GRUB2, func(n *Node) { n.Name = "" }, ErrBadNode},
		{"bad port", XNBA, func(n *Node) { n.HTTPPort = 70000 }, ErrBadNode},
		{"xnba memdisk", XNBA, func(n *Node) { n.Kernel = "xcat/memdisk" }, ErrBadNode},
		{"unknown format", Format(99), func(*Node) {}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := xcatNode()
			tt.mod(&n)
			got, err := Render(tt.format, n)
			if err == nil {
				t.Fatalf("Render(%s) = %q, want an error", tt.format, got)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Render(%s) error %v, want %v", tt.format, err, tt.want)
			}
		})
	}
	n := xcatNode()
	n.NetBoot = "pxe"
	if _, err := Render(PXELinux, n); err != nil {
		t.Errorf("Render(pxelinux) of a pxe node: %v", err)
	}
}

func TestParseName(t *testing.T) {
	mac := mustMAC("aa:bb:cc:dd:ee:0f")
	tests := []struct {
		name string
		want Request
		ok   bool
	}{
		{"pxelinux.cfg/01-aa-bb-cc-dd-ee-0f", Request{PXELinux, Query{MAC: mac}}, true},
		{"pxelinux.cfg/01-AA-BB-CC-DD-EE-0F", Request{PXELinux, Query{MAC: mac}}, true},
		{"pxelinux.cfg/0A5B0001", Request{PXELinux, Query{IP: netip.MustParseAddr("10.91.0.1")}}, true},
		{"pxelinux.cfg/node01", Request{PXELinux, Query{Name: "node01"}}, true},
		{"pxelinux.cfg/n1.cluster.com", Request{PXELinux, Query{Name: "n1.cluster.com"}}, true},
		{"pxelinux.cfg/default", Request{}, false},
		{"pxelinux.cfg/0A5B000", Request{}, false},
		{"pxelinux.cfg/0", Request{}, false},
		{"pxelinux.cfg/b8945908-d6a6-41a9-611d-74a6ab80b83d", Request{PXELinux, Query{Name: "b8945908-d6a6-41a9-611d-74a6ab80b83d"}}, true},
		{"pxelinux.cfg/01-aa-bb-cc", Request{PXELinux, Query{Name: "01-aa-bb-cc"}}, true},
		{"pxelinux.cfg/01-aa:bb:cc:dd:ee:0f", Request{}, false},
		{"pxelinux.cfg/sub/node01", Request{}, false},
		{"xcat/xnba/nodes/node01", Request{XNBA, Query{Name: "node01"}}, true},
		{"xcat/xnba/nodes/node01.uefi", Request{XNBAUEFI, Query{Name: "node01"}}, true},
		{"xcat/xnba/nodes/node01.elilo", Request{}, false},
		{"xcat/xnba/nodes/.uefi", Request{}, false},
		{"boot/grub2/node01", Request{GRUB2, Query{Name: "node01"}}, true},
		{"boot/grub2/grub2.ppc", Request{}, false},
		{"boot/grub2/grub.cfg", Request{}, false},
		{"boot/grub2/grub.cfg-01-aa-bb-cc-dd-ee-0f", Request{GRUB2, Query{MAC: mac}}, true},
		{"grub.cfg-01-aa-bb-cc-dd-ee-0f", Request{GRUB2, Query{MAC: mac}}, true},
		{"EFI/BOOT/grub.cfg-0A5B0001", Request{GRUB2, Query{IP: netip.MustParseAddr("10.91.0.1")}}, true},
		{"boot/grub2/grub.cfg-0A5B00", Request{}, false},
		{"boot/grub2/grub.cfg-0a5b0001", Request{}, false},
		{"pxelinux.0", Request{}, false},
		{"xcat/osimage/img/kernel", Request{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseName(tt.name)
		if ok != tt.ok || !cmp.Equal(got, tt.want, addrEq) {
			t.Errorf("ParseName(%q) = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestNames(t *testing.T) {
	n := xcatNode()
	want := map[Format][]string{
		PXELinux: {"pxelinux.cfg/node01", "pxelinux.cfg/01-e6-d4-d2-3a-ad-06", "pxelinux.cfg/0A000065"},
		XNBA:     {"xcat/xnba/nodes/node01"},
		XNBAUEFI: {"xcat/xnba/nodes/node01.uefi"},
		GRUB2:    {"boot/grub2/node01", "boot/grub2/grub.cfg-01-e6-d4-d2-3a-ad-06", "boot/grub2/grub.cfg-0A000065"},
	}
	for f, w := range want {
		got := Names(f, n)
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("Names(%s) (-want +got):\n%s", f, diff)
		}
		// Every name resolves back to the node, in the same format.
		for _, name := range got {
			req, ok := ParseName(name)
			if !ok || req.Format != f || !matches(req.Query, n) {
				t.Errorf("ParseName(%q) = %+v, %v; want format %s for node01", name, req, ok, f)
			}
		}
	}
}

func matches(q Query, n Node) bool {
	switch {
	case q.MAC != nil:
		return q.MAC.String() == n.MAC.String()
	case q.IP.IsValid():
		return q.IP == n.IP
	}
	return q.Name == n.Name
}

// FuzzParseName checks that ParseName never panics and that what it accepts names the
// same request again in its canonical form.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"pxelinux.cfg/01-aa-bb-cc-dd-ee-0f", "pxelinux.cfg/0A5B0001", "pxelinux.cfg/node01",
		"xcat/xnba/nodes/n1.uefi", "boot/grub2/grub.cfg-01-aa-bb-cc-dd-ee-ff", "grub.cfg-C0A80001",
		"boot/grub2/node7", "pxelinux.cfg/default", "x/grub.cfg-", "pxelinux.cfg/01-zz-bb-cc-dd-ee-ff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		req, ok := ParseName(name)
		if !ok {
			if !cmp.Equal(req, Request{}, addrEq) {
				t.Fatalf("ParseName(%q) = %+v with false", name, req)
			}
			return
		}
		set := 0
		if req.Query.Name != "" {
			set++
			if !validNodeName(req.Query.Name) {
				t.Fatalf("ParseName(%q) gave node name %q", name, req.Query.Name)
			}
		}
		if req.Query.MAC != nil {
			set++
		}
		if req.Query.IP.IsValid() {
			set++
		}
		if set != 1 {
			t.Fatalf("ParseName(%q) = %+v: want exactly one query field", name, req)
		}
		n := Node{Name: req.Query.Name, MAC: req.Query.MAC, IP: req.Query.IP}
		if n.Name == "" {
			n.Name = "x"
		}
		for _, canon := range Names(req.Format, n) {
			again, ok := ParseName(canon)
			if ok && again.Format == req.Format && matches(again.Query, n) && matches(req.Query, n) {
				return
			}
		}
		t.Fatalf("ParseName(%q) = %+v, but no canonical name of it parses back", name, req)
	})
}
