package glue

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/provkit/provkit/cdsl"
	"github.com/provkit/provkit/cluster"
	"github.com/provkit/provkit/nfsroot"
)

// site is a store for glue's tests, changed with the admin's verbs.
type site struct {
	t   *testing.T
	ctx context.Context
	s   *cluster.DB
}

func newSite(t *testing.T) *site {
	t.Helper()
	ctx := context.Background()
	s, err := cluster.Open(ctx, filepath.Join(t.TempDir(), "provkit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &site{t: t, ctx: ctx, s: s}
}

// chtab is provctl chtab.
func (s *site) chtab(args ...string) {
	s.t.Helper()
	key, sets, err := cluster.ParseChtab(args)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := cluster.Chtab(s.ctx, s.s, key, sets); err != nil {
		s.t.Fatalf("chtab %v: %v", args, err)
	}
}

// mkdef is provctl mkdef -t typ -o name attr=value ...
func (s *site) mkdef(typ, name string, attrs ...string) {
	s.t.Helper()
	d := cluster.Definition{Type: typ, Names: []string{name}, Mode: cluster.ModeCreate}
	for _, a := range attrs {
		k, v, _ := strings.Cut(a, "=")
		d.Attrs = append(d.Attrs, cluster.Assign{Attr: k, Value: v})
	}
	if _, err := cluster.Define(s.ctx, s.s, d); err != nil {
		s.t.Fatalf("mkdef -t %s %s: %v", typ, name, err)
	}
}

func (s *site) nodeset(node, arg string) {
	s.t.Helper()
	req, err := cluster.ParseNodeset(arg)
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := cluster.Nodeset(s.ctx, s.s, []string{node}, req); err != nil {
		s.t.Fatalf("nodeset %s %s: %v", node, arg, err)
	}
}

func (s *site) view() *cluster.View {
	s.t.Helper()
	v, err := cluster.LoadView(s.ctx, s.s)
	if err != nil {
		s.t.Fatal(err)
	}
	return v
}

// imageRoot makes <dir>/rootimg with the directories a small image has.
func imageRoot(t *testing.T, dir string) string {
	t.Helper()
	root := filepath.Join(dir, "rootimg")
	for _, d := range []string{"etc", "var/log", "usr/bin", "opt"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestNFSExports(t *testing.T) {
	s := newSite(t)
	dir := t.TempDir()
	s.chtab("key=statelitedir", "site.value=/srv/state")
	s.mkdef("network", "boot", "net=10.94.100.0", "mask=255.255.255.0")
	s.mkdef("network", "ib", "net=10.94.101.0", "mask=255.255.255.0")
	s.mkdef("node", "n1", "groups=compute", "ip=10.94.100.11", "os=deb", "arch=x86_64", "profile=compute")
	// plain: no litefile entries, the default writable paths.
	s.mkdef("osimage", "plain", "provmethod=statelite", "rootimgdir="+dir+"/plain", "osvers=deb", "osarch=x86_64", "profile=compute")
	imageRoot(t, dir+"/plain")
	// lite: its own entries, one through an osimage group, with ignored ones.
	s.mkdef("osimage", "lite", "provmethod=statelite", "groups=sgroup", "rootimgdir="+dir+"/lite/", "osvers=deb", "osarch=x86_64", "profile=compute")
	imageRoot(t, dir+"/lite")
	for _, e := range []struct{ image, file, options string }{
		{"lite", "/var/", "persistent"},
		{"lite", "/var/log/", "tmpfs"},    // below /var
		{"lite", "/etc/ntp.conf", "ro"},   // not writable
		{"sgroup", "/opt/app/", "rw"},     // through the group
		{"lite", "/srv/data/", ""},        // /srv is not in the image
		{"lite", "relative/path", ""},     // not absolute
		{"lite", "/etc/x", "sideways"},    // unknown option
		{"other", "/home/", "persistent"}, // another image's
		{"ALL", "/etc/adjtime", "link,persistent"},
	} {
		s.chtab("image="+e.image+",file="+e.file, "litefile.options="+e.options, "litefile.comments=test")
	}
	// viaNode: provmethod netboot, exported because n1 is set to statelite with it.
	s.mkdef("osimage", "vianode", "provmethod=netboot", "rootimgdir="+dir+"/vianode", "osvers=deb", "osarch=x86_64", "profile=compute")
	imageRoot(t, dir+"/vianode")
	s.nodeset("n1", "osimage=vianode")
	s.nodeset("n1", "statelite")
	// Not exportable.
	s.mkdef("osimage", "nodir", "provmethod=statelite")
	s.mkdef("osimage", "ramdisk", "provmethod=statelite", "rootfstype=ramdisk", "rootimgdir="+dir+"/ramdisk")
	// Not statelite.
	s.mkdef("osimage", "stateless", "provmethod=netboot", "rootimgdir="+dir+"/stateless")

	images, errs := NFSExports(s.view(), "/srv/state")
	clients := []netip.Prefix{netip.MustParsePrefix("10.94.100.0/24"), netip.MustParsePrefix("10.94.101.0/24")}
	want := []NFSImage{
		{OSImage: "lite", Export: nfsroot.Export{Path: dir + "/lite/rootimg", Root: dir + "/lite/rootimg",
			Writable: []string{"/etc/adjtime", "/opt/app", "/var"}, StateDir: "/srv/state/lite", Clients: clients},
			Ignored: []string{
				"litefile /etc/ntp.conf: option ro: not a writable path",
				"litefile relative/path: file \"relative/path\" is not an absolute path",
				"litefile /etc/x: options \"sideways\": want tmpfs, rw, persistent, ro, con, link[,persistent|,ro|,con] or localdisk",
				"litefile /var/log: below writable /var",
				"litefile /srv/data: its directory /srv is missing in the image",
			}},
		{OSImage: "plain", Export: nfsroot.Export{Path: dir + "/plain/rootimg", Root: dir + "/plain/rootimg",
			Writable: []string{"/etc/adjtime"}, StateDir: "/srv/state/plain", Clients: clients}},
		{OSImage: "vianode", Export: nfsroot.Export{Path: dir + "/vianode/rootimg", Root: dir + "/vianode/rootimg",
			Writable: []string{"/etc/adjtime"}, StateDir: "/srv/state/vianode", Clients: clients}},
	}
	if diff := cmp.Diff(want, images, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
		t.Errorf("NFSExports images (-want +got):\n%s", diff)
	}
	var msgs []string
	for _, err := range errs {
		msgs = append(msgs, err.Error())
	}
	wantErrs := []string{
		"osimage nodir: rootimgdir is not set (chdef -t osimage nodir rootimgdir=...)",
		`osimage ramdisk: rootfstype "ramdisk": provd serves statelite images over NFS only (rootfstype nfs or unset)`,
	}
	if diff := cmp.Diff(wantErrs, msgs); diff != "" {
		t.Errorf("NFSExports errors (-want +got):\n%s", diff)
	}
}

func TestNFSExportsDefaultWritable(t *testing.T) {
	s := newSite(t)
	dir := t.TempDir()
	s.mkdef("network", "boot", "net=10.94.100.0", "mask=255.255.255.0")
	s.mkdef("osimage", "img", "provmethod=statelite", "rootimgdir="+dir)
	root := imageRoot(t, dir)
	repo, err := cdsl.Create(root, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.MakeHostDependent("/etc/hostname"); err != nil {
		t.Fatal(err)
	}
	repo.Close()
	images, errs := NFSExports(s.view(), "/srv/state")
	if len(errs) > 0 || len(images) != 1 {
		t.Fatalf("NFSExports = %v, %v; want one image", images, errs)
	}
	if got, want := images[0].Export.Writable, []string{"/var", "/tmp", "/root"}; !cmp.Equal(got, want) {
		t.Errorf("writable = %q, want %q", got, want)
	}
	if len(images[0].Ignored) > 0 {
		t.Errorf("ignored = %q, want none", images[0].Ignored)
	}

	// A litefile entry in the CDSL infrastructure is dropped, not the export.
	s.chtab("image=img,file=/cluster/", "litefile.options=persistent")
	s.chtab("image=img,file=/var/", "litefile.options=persistent")
	images, _ = NFSExports(s.view(), "/srv/state")
	if got, want := images[0].Export.Writable, []string{"/var"}; !cmp.Equal(got, want) {
		t.Errorf("writable = %q, want %q", got, want)
	}
	if got, want := images[0].Ignored, []string{"litefile /cluster: overlaps the CDSL infrastructure /cluster/cdsl"}; !cmp.Equal(got, want) {
		t.Errorf("ignored = %q, want %q", got, want)
	}
}

func TestParseLiteEntry(t *testing.T) {
	for _, tc := range []struct {
		file, options string
		want          string
		wantErr       error // ErrNotWritable, or nil for "some error" when want is ""
	}{
		{file: "/var/", want: "/var"},
		{file: "/etc/hosts", options: "tmpfs", want: "/etc/hosts"},
		{file: " /root/.ssh/ ", options: "rw", want: "/root/.ssh"},
		{file: "/var/lib//x/./", options: "persistent", want: "/var/lib/x"},
		{file: "/opt/", options: "link, persistent", want: "/opt"},
		{file: "/opt/", options: "PERSISTENT", want: "/opt"},
		{file: "/etc/ntp.conf", options: "ro", wantErr: ErrNotWritable},
		{file: "/etc/motd", options: "con", wantErr: ErrNotWritable},
		{file: "/etc/x", options: "link,ro", wantErr: ErrNotWritable},
		{file: "/etc/x", options: "link,con", wantErr: ErrNotWritable},
		{file: "/scratch/", options: "localdisk", wantErr: ErrNotWritable},
		{file: "/", options: "persistent"},
		{file: "var/", options: "persistent"},
		{file: "/var/../etc", options: "persistent"},
		{file: "/var", options: "persistent,ro,x"},
		{file: "/var\x00x"},
		{file: "/ /"},
		{file: "/var/ log/", options: "persistent"},
		{file: "/var /log", options: "persistent"},
	} {
		got, err := ParseLiteEntry(LiteEntry{File: tc.file, Options: tc.options})
		switch {
		case tc.want != "":
			if err != nil || got != tc.want {
				t.Errorf("ParseLiteEntry(%q, %q) = %q, %v; want %q", tc.file, tc.options, got, err, tc.want)
			}
		case tc.wantErr != nil:
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("ParseLiteEntry(%q, %q) = %q, %v; want %v", tc.file, tc.options, got, err, tc.wantErr)
			}
		default:
			if err == nil || errors.Is(err, ErrNotWritable) {
				t.Errorf("ParseLiteEntry(%q, %q) = %q, %v; want an error about the entry", tc.file, tc.options, got, err)
			}
		}
	}
}

func FuzzParseLiteEntry(f *testing.F) {
	f.Add("/var/", "persistent")
	f.Add("/etc/hosts", "")
	f.Add("/a/../b", "rw")
	f.Add("//x//y/", "link,persistent")
	f.Add("/", "tmpfs")
	f.Fuzz(func(t *testing.T, file, options string) {
		p, err := ParseLiteEntry(LiteEntry{File: file, Options: options})
		if err != nil {
			if p != "" {
				t.Fatalf("ParseLiteEntry(%q, %q) = %q with error %v", file, options, p, err)
			}
			return
		}
		if !strings.HasPrefix(p, "/") || p == "/" || path.Clean(p) != p || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
			t.Fatalf("ParseLiteEntry(%q, %q) = %q: not a clean absolute path below the root", file, options, p)
		}
		// Round trip: the result names itself, as a file and as a directory.
		for _, again := range []string{p, p + "/"} {
			if q, err := ParseLiteEntry(LiteEntry{File: again, Options: options}); err != nil || q != p {
				t.Fatalf("ParseLiteEntry(%q, %q) = %q, %v; want %q", again, options, q, err, p)
			}
		}
	})
}

func TestWritablePaths(t *testing.T) {
	got, ignored := WritablePaths([]LiteEntry{
		{File: "/var/log/"}, {File: "/var/"}, {File: "/var/"}, {File: "/variable"}, {File: "/etc/ssh/", Options: "persistent"},
	})
	if want := []string{"/etc/ssh", "/var", "/variable"}; !cmp.Equal(got, want) {
		t.Errorf("WritablePaths = %q, want %q", got, want)
	}
	if want := []string{"litefile /var/log: below writable /var"}; !cmp.Equal(ignored, want) {
		t.Errorf("ignored = %q, want %q", ignored, want)
	}
}

func TestStateliteDir(t *testing.T) {
	for _, tc := range []struct {
		name, flag, site, installdir string
		want, wantErr                string
	}{
		{name: "default", want: DefaultStateliteDir},
		{name: "site", site: "/srv/statelite/", want: "/srv/statelite"},
		{name: "flag wins", flag: "/data/state", site: "/srv/statelite", want: "/data/state"},
		{name: "relative", site: "state", wantErr: `site.statelitedir "state" is not an absolute path`},
		{name: "under installdir", site: "/install/state", wantErr: "site.statelitedir /install/state overlaps site.installdir /install"},
		{name: "under a custom installdir", flag: "/srv/install/x", installdir: "/srv/install", wantErr: "-nfs-state /srv/install/x overlaps site.installdir /srv/install"},
		{name: "holds tftpdir", flag: "/", wantErr: "-nfs-state / overlaps site.installdir /install"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSite(t)
			if tc.site != "" {
				s.chtab("key=statelitedir", "site.value="+tc.site)
			}
			if tc.installdir != "" {
				s.chtab("key=installdir", "site.value="+tc.installdir)
			}
			got, err := StateliteDir(s.view(), tc.flag)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("StateliteDir = %q, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("StateliteDir = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestNodeOSImage(t *testing.T) {
	s := newSite(t)
	s.mkdef("osimage", "deb-x86_64-statelite-compute", "provmethod=statelite", "rootimgdir=/install/a")
	s.mkdef("osimage", "named", "provmethod=statelite", "rootimgdir=/install/b")
	s.mkdef("node", "byname", "groups=all", "os=deb", "arch=x86_64", "profile=compute")
	s.mkdef("node", "byprov", "groups=all", "provmethod=named", "os=deb", "arch=x86_64", "profile=compute")
	s.mkdef("node", "none", "groups=all", "os=deb", "arch=x86_64", "profile=gpu")
	v := s.view()
	for _, tc := range []struct{ node, want string }{
		{"byname", "deb-x86_64-statelite-compute"},
		{"byprov", "named"},
		{"none", ""},
	} {
		n, err := v.Node(tc.node)
		if err != nil {
			t.Fatal(err)
		}
		got, err := NodeOSImage(v, n, "statelite")
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("NodeOSImage(%s) = %q, %v; want %q", tc.node, got, err, tc.want)
		}
	}
}

func TestNFSViews(t *testing.T) {
	s := newSite(t)
	s.mkdef("node", "n1", "groups=all", "ip=10.94.100.11")
	v := s.view()
	views := &NFSViews{Views: ViewSourceFunc(func() *cluster.View { return v })}
	got, err := views.View(context.Background(), netip.MustParseAddr("10.94.100.11"))
	if err != nil || !cmp.Equal(got, nfsroot.View{Node: "n1"}) {
		t.Errorf("View(10.94.100.11) = %+v, %v; want node n1", got, err)
	}
	got, err = views.View(context.Background(), netip.MustParseAddr("::ffff:10.94.100.11"))
	if err != nil || got.Node != "n1" {
		t.Errorf("View(::ffff:10.94.100.11) = %+v, %v; want node n1", got, err)
	}
	if got, err := views.View(context.Background(), netip.MustParseAddr("10.94.100.12")); !errors.Is(err, nfsroot.ErrUnknownClient) {
		t.Errorf("View(10.94.100.12) = %+v, %v; want ErrUnknownClient", got, err)
	}
}

func TestStateliteCmdline(t *testing.T) {
	s := newSite(t)
	s.chtab("key=master", "site.value=10.94.100.1")
	s.mkdef("osimage", "lite", "provmethod=statelite", "rootimgdir=/install/netboot/lite/", "osvers=deb", "osarch=x86_64", "profile=compute")
	s.mkdef("osimage", "ram", "provmethod=statelite", "rootfstype=ramdisk", "rootimgdir=/install/ram", "osvers=deb", "osarch=x86_64", "profile=compute")
	s.mkdef("node", "n1", "groups=all", "ip=10.94.100.11", "mac=52:54:00:94:00:01")
	s.mkdef("node", "n2", "groups=all", "ip=10.94.100.12", "nfsserver=10.94.100.2")
	s.mkdef("node", "n3", "groups=all", "ip=10.94.100.13")
	s.nodeset("n1", "osimage=lite")
	s.nodeset("n2", "osimage=lite")
	s.nodeset("n3", "osimage=ram")
	v := s.view()
	addrs := &LocalAddrs{AddrsFn: func() ([]net.Addr, error) { return nil, nil }}
	for _, tc := range []struct {
		node, nfsOptions, want, wantErr string
	}{
		{node: "n1", want: "root=nfs:10.94.100.1:/install/netboot/lite/rootimg:rw,nolock,vers=3,proto=tcp,mountproto=tcp NODE=n1 provkit.status=http://10.94.100.1/api/v1/status"},
		{node: "n1", nfsOptions: "port=2050,mountport=2050", want: "root=nfs:10.94.100.1:/install/netboot/lite/rootimg:rw,nolock,vers=3,proto=tcp,mountproto=tcp,port=2050,mountport=2050 NODE=n1 provkit.status=http://10.94.100.1/api/v1/status"},
		{node: "n2", want: "root=nfs:10.94.100.2:/install/netboot/lite/rootimg:rw,nolock,vers=3,proto=tcp,mountproto=tcp NODE=n2 provkit.status=http://10.94.100.1/api/v1/status"},
		{node: "n3", wantErr: `osimage ram: rootfstype "ramdisk"`},
	} {
		g := &Boot{Views: ViewSourceFunc(func() *cluster.View { return v }), Addrs: addrs, HTTPPort: 80, NFSOptions: tc.nfsOptions}
		n, err := v.Node(tc.node)
		if err != nil {
			t.Fatal(err)
		}
		bn, err := g.Node(v, n)
		if tc.wantErr != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Errorf("Node(%s) = %q, %v; want error %q", tc.node, bn.Cmdline, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Node(%s): %v", tc.node, err)
		}
		if bn.Cmdline != tc.want {
			t.Errorf("Node(%s) cmdline\n got %q\nwant %q", tc.node, bn.Cmdline, tc.want)
		}
		if bn.Initrd != "xcat/osimage/lite/initrd-statelite.gz" {
			t.Errorf("Node(%s) initrd = %q", tc.node, bn.Initrd)
		}
	}
}
