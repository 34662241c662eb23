package dns

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

func TestZoneFilesGolden(t *testing.T) {
	tab := testTable(t)
	for _, zf := range tab.ZoneFiles() {
		var b bytes.Buffer
		if _, err := zf.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		golden(t, FileName(zf.Zone.Name), b.Bytes())

		// Round trip: what we write reads back as the same zone.
		back, err := ParseZoneFile(bytes.NewReader(b.Bytes()), zf.Zone.Name, "golden")
		if err != nil {
			t.Fatalf("ParseZoneFile(our own %s): %v", zf.Zone.Name, err)
		}
		want := zf
		want.Zone.NS = want.Zone.ns()
		want.Zone.Admin = want.Zone.admin()
		want.Zone.TTL = time.Duration(want.Zone.ttl()) * time.Second
		want.Zone.NegativeTTL = time.Duration(want.Zone.negTTL()) * time.Second
		if diff := cmp.Diff(want, back); diff != "" {
			t.Errorf("zone %s read back (-want +got):\n%s", zf.Zone.Name, diff)
		}
	}
}

func TestZoneFileUpdate(t *testing.T) {
	zf := ZoneFile{Zone: Zone{Name: "cluster.test."}, Records: []Record{
		{Name: "n1.cluster.test.", Type: "A", Value: "10.97.0.11"},
		{Name: "n10.cluster.test.", Type: "A", Value: "10.97.0.20"},
		{Name: "login.cluster.test.", Type: "CNAME", Value: "n1.cluster.test."},
		{Name: "printer.cluster.test.", Type: "A", Value: "10.97.9.9", TTL: 3600},
	}}
	// makedns n1: n1's records replaced; others kept, sorted naturally (n2 before n10).
	zf.Update([]string{"n1.cluster.test", "login.cluster.test."}, []Record{
		{Name: "n1.cluster.test.", Type: "A", Value: "10.97.0.21"},
		{Name: "n2.cluster.test.", Type: "A", Value: "10.97.0.12"},
	})
	want := []Record{
		{Name: "n1.cluster.test.", Type: "A", Value: "10.97.0.21"},
		{Name: "n2.cluster.test.", Type: "A", Value: "10.97.0.12"},
		{Name: "n10.cluster.test.", Type: "A", Value: "10.97.0.20"},
		{Name: "printer.cluster.test.", Type: "A", Value: "10.97.9.9", TTL: 3600},
	}
	if diff := cmp.Diff(want, zf.Records); diff != "" {
		t.Errorf("after Update (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"n1.cluster.test.", "n10.cluster.test.", "n2.cluster.test.", "printer.cluster.test."}, zf.Names()); diff != "" {
		t.Errorf("Names (-want +got):\n%s", diff)
	}
}

func TestNextSerial(t *testing.T) {
	day := time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ old, want uint32 }{
		{0, 2026030700},
		{7, 2026030700},
		{2026030700, 2026030701},
		{2026030799, 2026030800},
		{2030010100, 2030010101},
		{^uint32(0), ^uint32(0)},
	} {
		if got := NextSerial(tc.old, day); got != tc.want {
			t.Errorf("NextSerial(%d) = %d, want %d", tc.old, got, tc.want)
		}
	}
}

func TestParseZoneFileErrors(t *testing.T) {
	for _, tc := range []struct{ name, text string }{
		{"no SOA", "$ORIGIN cluster.test.\nn1 IN A 10.97.0.11\n"},
		{"outside the zone", "@ IN SOA ns hostmaster 1 2 3 4 5\nn1.example.com. IN A 10.97.0.11\n"},
		{"two SOA", "@ IN SOA ns hostmaster 1 2 3 4 5\n@ IN SOA ns hostmaster 1 2 3 4 5\n"},
		{"include", "@ IN SOA ns hostmaster 1 2 3 4 5\n$INCLUDE /etc/passwd\n"},
		{"syntax", "@ IN SOA ns hostmaster 1 2 3 4 5\nn1 IN A 10.97.0\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseZoneFile(strings.NewReader(tc.text), "cluster.test.", "db.cluster.test")
			if err == nil || !strings.Contains(err.Error(), "db.cluster.test") {
				t.Errorf("ParseZoneFile = %v, want an error naming the file", err)
			}
		})
	}
}

func TestNamedConf(t *testing.T) {
	c := &NamedConf{Dir: "/var/lib/provkit/bind", Zones: []string{"cluster.test.", "0.97.10.in-addr.arpa."},
		Forwarders: []netip.Addr{netip.MustParseAddr("10.97.0.53"), netip.MustParseAddr("10.97.0.54")}}
	var zones, opts bytes.Buffer
	if err := c.WriteZones(&zones); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteOptions(&opts); err != nil {
		t.Fatal(err)
	}
	golden(t, "named.conf.zones", zones.Bytes())
	golden(t, "named.conf.options", opts.Bytes())
}
