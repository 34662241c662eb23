//go:build integration

package dhcp

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/provkit/provkit/internal/testenv"
)

// TestISCConfigAcceptedByDhcpd has ISC dhcpd itself check the rendered configuration.
func TestISCConfigAcceptedByDhcpd(t *testing.T) {
	testenv.Require(t, testenv.Program("dhcpd"))
	for _, name := range []string{"isc/cluster.conf"} {
		path := filepath.Join("testdata", name)
		if _, err := os.Stat(path); err != nil {
			t.Fatal(err)
		}
		lease := filepath.Join(t.TempDir(), "dhcpd.leases")
		if err := os.WriteFile(lease, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("dhcpd", "-t", "-4", "-cf", path, "-lf", lease).CombinedOutput()
		if err != nil || bytes.Contains(out, []byte("error")) {
			t.Errorf("dhcpd -t -cf %s: %v\n%s", path, err, out)
		}
	}
}
