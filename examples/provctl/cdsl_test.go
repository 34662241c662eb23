package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cdslImage defines osimage img over a small root and returns the root's directory.
func cdslImage(t *testing.T, c *cli) string {
	t.Helper()
	dir := filepath.Join(c.dir, "install", "img")
	root := filepath.Join(dir, "rootimg")
	for _, d := range []string{"etc", "var/lib/app"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok("mkdef", "-t", "osimage", "-o", "img", "provmethod=statelite", "rootimgdir="+dir)
	return root
}

func TestMkcdsl(t *testing.T) {
	c := newCLI(t)
	c.ok("nodeadd", "n[1-2]", "groups=compute,all")
	root := cdslImage(t, c)

	if got := c.ok("mkcdsl", "img", "-l"); got != "mkcdsl: img has no CDSLs\n" {
		t.Errorf("mkcdsl -l before any CDSL = %q", got)
	}
	if got, want := c.ok("mkcdsl", "img", "-a", "/etc/hostname"), "mkcdsl: img: /etc/hostname is host-dependent (2 node trees in "+root+"/cluster/cdsl)\n"; got != want {
		t.Errorf("mkcdsl -a = %q, want %q", got, want)
	}
	if l, err := os.Readlink(filepath.Join(root, "etc/hostname")); err != nil || l != "../cdsl.local/etc/hostname" {
		t.Errorf("etc/hostname links to %q, %v; want ../cdsl.local/etc/hostname", l, err)
	}
	for _, n := range []string{"n1", "n2", "default"} {
		if got := readFile(t, filepath.Join(root, "cluster/cdsl", n, "etc/hostname")); got != "image\n" {
			t.Errorf("%s's etc/hostname = %q, want the image's", n, got)
		}
	}
	c.ok("mkcdsl", "img", "-a", "/var/lib")
	if got, want := c.ok("mkcdsl", "img", "-s", "/var/lib/app"), "mkcdsl: img: /var/lib/app is shared (2 node trees in "+root+"/cluster/cdsl)\n"; got != want {
		t.Errorf("mkcdsl -s = %q, want %q", got, want)
	}
	if got, want := c.ok("mkcdsl", "img", "-l"), "/etc/hostname: hostdependent\n/var/lib: hostdependent\n/var/lib/app: shared\n"; got != want {
		t.Errorf("mkcdsl -l = %q, want %q", got, want)
	}
	if got := c.ok("mkcdsl", "img", "-c"); got != "mkcdsl: img: no problems\n" {
		t.Errorf("mkcdsl -c = %q", got)
	}

	// nodeadd gives new nodes their trees in images with CDSLs.
	c.ok("nodeadd", "n3", "groups=compute,all")
	if got := readFile(t, filepath.Join(root, "cluster/cdsl/n3/etc/hostname")); got != "image\n" {
		t.Errorf("nodeadd n3: its etc/hostname = %q, want the default copy", got)
	}

	// A node's own copy survives -d --from.
	if err := os.WriteFile(filepath.Join(root, "cluster/cdsl/n2/etc/hostname"), []byte("n2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "cluster/cdsl/n1/etc/hostname")); err != nil {
		t.Fatal(err)
	}
	out, errs, code := c.run("", "provctl", "mkcdsl", "img", "-c")
	if code != 1 || !strings.Contains(out, "/etc/hostname (node n1): ") || !strings.Contains(errs, "1 CDSL problems") {
		t.Errorf("mkcdsl -c of a broken tree = exit %d, %q, %q; want exit 1 naming n1's etc/hostname", code, out, errs)
	}
	// noderm keeps the node's tree; -c names it.
	c.ok("noderm", "n3")
	out, errs, code = c.run("", "provctl", "mkcdsl", "img", "-c")
	if want := "/cluster/cdsl/n3: node n3 is not in the cluster"; code != 1 || !strings.Contains(out, want) || !strings.Contains(errs, "2 CDSL problems") {
		t.Errorf("mkcdsl -c after noderm n3 = exit %d, %q, %q; want exit 1, %q and 2 problems", code, out, errs, want)
	}
	if _, err := os.Stat(filepath.Join(root, "cluster/cdsl/n3/etc/hostname")); err != nil {
		t.Errorf("noderm n3 removed its tree: %v", err)
	}
	c.ok("mkcdsl", "img", "-d", "/etc/hostname", "--from", "n2")
	if fi, err := os.Lstat(filepath.Join(root, "etc/hostname")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("etc/hostname after -d: %v, %v; want a file", fi, err)
	}
	if got := readFile(t, filepath.Join(root, "etc/hostname")); got != "n2\n" {
		t.Errorf("etc/hostname after -d --from n2 = %q", got)
	}
}

func TestMkcdslNodes(t *testing.T) {
	c := newCLI(t)
	c.ok("nodeadd", "n[1-3]", "groups=compute,all")
	root := cdslImage(t, c)
	c.ok("mkcdsl", "img", "-a", "/etc/hostname", "-n", "n[1-2]")
	ents, err := os.ReadDir(filepath.Join(root, "cluster/cdsl"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != "default n1 n2" {
		t.Errorf("trees = %v, want default n1 n2", got)
	}
}

func TestMkcdslErrors(t *testing.T) {
	c := newCLI(t)
	c.ok("nodeadd", "n1", "groups=all")
	root := cdslImage(t, c)
	c.ok("mkdef", "-t", "osimage", "-o", "unbuilt", "provmethod=statelite", "rootimgdir="+filepath.Join(c.dir, "nowhere"))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"img"}, "give exactly one of -a, -s, -l, -c and -d"},
		{[]string{"img", "-a", "-l", "/etc/hostname"}, "give exactly one of -a, -s, -l, -c and -d"},
		{[]string{"img", "-a"}, "-a, -s and -d need a path"},
		{[]string{"img", "-l", "/etc"}, "-l and -c take no path"},
		{[]string{"img", "-l", "--from", "n1"}, "--from goes with -d"},
		{[]string{"img", "-c", "-n", "n1"}, "-n goes with -a or -s"},
		{[]string{"nosuch", "-l"}, "Could not find an object named 'nosuch'"},
		{[]string{"unbuilt", "-l"}, "osimage unbuilt: no root filesystem at " + filepath.Join(c.dir, "nowhere", "rootimg")},
		{[]string{"img", "-a", "/no/such/path"}, "/no/such/path"},
		{[]string{"img", "-a", "/etc/../x"}, "invalid path"},
		{[]string{"img", "-d", "/etc/hostname"}, "osimage img has no CDSLs"},
		{[]string{"img", "-s", "/var/lib/app"}, "wrong CDSL nesting"},
		{[]string{"img", "-a", "/cluster"}, "/cluster: "},
	} {
		errs := c.fails(append([]string{"mkcdsl"}, tc.args...)...)
		if !strings.Contains(errs, tc.want) {
			t.Errorf("mkcdsl %v: %q, want it to say %q", tc.args, errs, tc.want)
		}
	}
	// Nothing was changed by the failures.
	if _, err := os.Stat(filepath.Join(root, ".cdsl_inventory.xml")); err == nil {
		t.Errorf("a failed mkcdsl left an inventory")
	}
}
