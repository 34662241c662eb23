package cdsl

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParseInventory feeds arbitrary bytes to the inventory parser. Whatever it accepts must
// survive a round trip through marshal unchanged, and respect the rules the operations rely
// on (clean paths outside the infrastructure, valid node ids, correct nesting).
func FuzzParseInventory(f *testing.F) {
	f.Add([]byte(`<cdsls config_version="1"><defaults cdsltree="cluster/cdsl" cdsltree_shared="cluster/shared" cdsl_link="cdsl.local" maxnodeidnum="0" use_nodeids="False" default_dir="default"/></cdsls>`))
	f.Add([]byte(`<?xml version="1.0"?>
<cdsls config_version="1">
  <defaults cdsltree="cluster/cdsl" cdsltree_shared="cluster/shared" cdsl_link="cdsl.local" maxnodeidnum="0" use_nodeids="False" default_dir="default" expandstring=".cdsl"/>
  <cdsl src="var" type="hostdependent" timestamp="1700000000.250"><nodes><noderef ref="n1"/><noderef ref="n2"/></nodes></cdsl>
  <cdsl src="var/lib/dpkg" type="shared" timestamp="1700000001"><nodes><noderef ref="n1"/></nodes></cdsl>
  <cdsl src="etc/hostname" type="hostdependent"/>
</cdsls>`))
	f.Add([]byte(`<cdsls config_version="1"><defaults cdsltree="c/t" cdsltree_shared="c/s" cdsl_link="l"/><cdsl src="../x" type="hostdependent"/></cdsls>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := parseInventory(data)
		if err != nil {
			return
		}
		for _, e := range inv.Entries {
			if c, err := CleanPath(e.Path); err != nil || c != e.Path || inv.Layout.reserved(e.Path) {
				t.Fatalf("accepted entry path %q", e.Path)
			}
			for _, n := range e.Nodes {
				if ValidNode(n) != nil {
					t.Fatalf("accepted node %q", n)
				}
			}
		}
		again, err := parseInventory(inv.marshal())
		if err != nil {
			t.Fatalf("marshal output does not parse: %v\n%s", err, inv.marshal())
		}
		if diff := cmp.Diff(inv, again); diff != "" {
			t.Fatalf("round trip changed the inventory (-first +second):\n%s", diff)
		}
	})
}

// FuzzCleanPath checks that CleanPath never returns a path that climbs out of the root, and
// that its output is a fixed point.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/etc/hostname", "a/../b", "./x//y/", "..", "/", "", "a\x00b", "cdsl.local/etc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		c, err := CleanPath(p)
		if err != nil {
			return
		}
		if c == "" || strings.HasPrefix(c, "/") || strings.HasSuffix(c, "/") || strings.Contains(c, "//") {
			t.Fatalf("CleanPath(%q) = %q", p, c)
		}
		for _, part := range strings.Split(c, "/") {
			if part == ".." || part == "." {
				t.Fatalf("CleanPath(%q) = %q keeps %q", p, c, part)
			}
		}
		if c2, err := CleanPath(c); err != nil || c2 != c {
			t.Fatalf("CleanPath(%q) = %q, %v; not a fixed point of %q", c, c2, err, p)
		}
	})
}
