//go:build integration

package dns

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provkit/provkit/internal/testenv"
)

// TestBINDChecksRenderedFiles has BIND's own checkers read what makedns writes: every
// zone file loads with named-checkzone, and a named.conf that includes both snippets
// passes named-checkconf -z (which loads the zones too).
func TestBINDChecksRenderedFiles(t *testing.T) {
	testenv.Require(t, testenv.Program("named-checkzone", "named-checkconf"))
	dir := t.TempDir()
	tab := testTable(t)
	var zones []string
	for _, zf := range tab.ZoneFiles() {
		var b bytes.Buffer
		if _, err := zf.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, FileName(zf.Zone.Name))
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("named-checkzone", strings.TrimSuffix(zf.Zone.Name, "."), p).CombinedOutput()
		if err != nil {
			t.Errorf("named-checkzone %s: %v\n%s", zf.Zone.Name, err, out)
		}
		zones = append(zones, zf.Zone.Name)
	}
	c := &NamedConf{Dir: dir, Zones: zones, Forwarders: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}
	var zb, ob bytes.Buffer
	if err := c.WriteZones(&zb); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteOptions(&ob); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "named.conf.zones"), zb.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, "named.conf.options"), ob.Bytes(), 0o644)
	conf := "options {\n\tdirectory \"" + dir + "\";\n\tinclude \"" + filepath.Join(dir, "named.conf.options") + "\";\n};\ninclude \"" + filepath.Join(dir, "named.conf.zones") + "\";\n"
	cp := filepath.Join(dir, "named.conf")
	os.WriteFile(cp, []byte(conf), 0o644)
	out, err := exec.CommandContext(context.Background(), "named-checkconf", "-z", cp).CombinedOutput()
	if err != nil {
		t.Errorf("named-checkconf -z: %v\n%s\n%s", err, out, conf)
	}
	t.Logf("named-checkconf -z:\n%s", out)
}
