package cluster

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestDiscoverBMCSetup checks what runcmd=bmcsetup gives the discovery image: the BMC's
// address with its network's mask and gateway, and the credentials, from the ipmi,
// networks and passwd tables; or, when they do not give them, a skipped step with why.
func TestDiscoverBMCSetup(t *testing.T) {
	bmcNet := Row{"netname": "bmc", "net": "10.98.0.0", "mask": "255.255.0.0", "gateway": "10.98.0.254"}
	for _, tc := range []struct {
		name      string
		chain     string
		rows      map[string][]Row
		want      *BMCSetup
		skipped   string   // prefix of the one skipped step, if any
		runImages []string // RunImages wanted
	}{
		{
			name:  "ipmi table",
			chain: "runcmd=bmcsetup,osimage=img",
			rows: map[string][]Row{"networks": {bmcNet},
				"ipmi": {{"node": "compute", "bmc": `|n(\d+)|10.98.1.($1)|`, "username": "root", "password": "s3cret"}}},
			want: &BMCSetup{Addr: netip.MustParsePrefix("10.98.1.1/16"), Gateway: netip.MustParseAddr("10.98.0.254"), User: "root", Password: "s3cret"},
		},
		{
			name:  "passwd table, BMC named by a node, VLAN",
			chain: "runcmd=bmcsetup,osimage=img",
			rows: map[string][]Row{"networks": {{"netname": "bmc", "net": "10.98.0.0", "mask": "16", "gateway": "<xcatmaster>"}},
				"nodelist": {{"node": "n1-bmc", "groups": "bmc"}}, "hosts": {{"node": "n1-bmc", "ip": "10.98.7.7"}},
				"ipmi":   {{"node": "n1", "bmc": "n1-bmc", "taggedvlan": "vl12"}},
				"passwd": {{"key": "ipmi", "username": "ADMIN", "password": "admin-pw"}}},
			want: &BMCSetup{Addr: netip.MustParsePrefix("10.98.7.7/16"), User: "ADMIN", Password: "admin-pw", VLAN: 12},
		},
		{
			name:  "ipmi user, passwd password",
			chain: "runcmd=bmcsetup,osimage=img",
			rows: map[string][]Row{"networks": {bmcNet}, "ipmi": {{"node": "n1", "bmc": "10.98.1.50", "username": "ops"}},
				"passwd": {{"key": "ipmi", "username": "ADMIN", "password": "admin-pw"}}},
			want: &BMCSetup{Addr: netip.MustParsePrefix("10.98.1.50/16"), Gateway: netip.MustParseAddr("10.98.0.254"), User: "ops", Password: "admin-pw"},
		},
		{name: "no ipmi.bmc", chain: "runcmd=bmcsetup,osimage=img", skipped: "runcmd=bmcsetup: the node has no ipmi.bmc"},
		{
			name: "no network", chain: "runcmd=bmcsetup,osimage=img",
			rows:    map[string][]Row{"ipmi": {{"node": "n1", "bmc": "10.98.1.50", "username": "u", "password": "p"}}},
			skipped: "runcmd=bmcsetup: no networks entry contains the BMC's address 10.98.1.50",
		},
		{
			name: "no password", chain: "runcmd=bmcsetup,osimage=img",
			rows:    map[string][]Row{"networks": {bmcNet}, "ipmi": {{"node": "n1", "bmc": "10.98.1.50", "username": "u"}}},
			skipped: "runcmd=bmcsetup: no BMC user or password",
		},
		{
			name: "unresolvable bmc", chain: "runcmd=bmcsetup,osimage=img",
			rows:    map[string][]Row{"networks": {bmcNet}, "ipmi": {{"node": "n1", "bmc": "nobody", "username": "u", "password": "p"}}},
			skipped: `runcmd=bmcsetup: ipmi.bmc "nobody" is neither`,
		},
		{
			name: "bad vlan", chain: "runcmd=bmcsetup,osimage=img",
			rows:    map[string][]Row{"networks": {bmcNet}, "ipmi": {{"node": "n1", "bmc": "10.98.1.50", "username": "u", "password": "p", "taggedvlan": "5000"}}},
			skipped: `runcmd=bmcsetup: ipmi.taggedvlan "5000"`,
		},
		{name: "other command", chain: "runcmd=myscript,osimage=img", skipped: "runcmd=myscript: provkit's discovery image runs no genesis command"},
		{name: "runimage", chain: "runimage=http://10.97.0.1/a.tgz,runimage=https://mn/b.tar,osimage=img",
			runImages: []string{"http://10.97.0.1/a.tgz", "https://mn/b.tar"}},
		{name: "runimage not a URL", chain: "runimage=/install/a.tgz,osimage=img", skipped: `runimage=/install/a.tgz: "/install/a.tgz" is not an http:// or https:// URL`},
		{name: "runimage ftp", chain: "runimage=ftp://mn/a.tgz,osimage=img", skipped: `runimage=ftp://mn/a.tgz: "ftp://mn/a.tgz" is not`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, s *DB) {
				discoverySite(t, s)
				update(t, s, func(tx Tx) error {
					if err := tx.Put("chain", Row{"node": "compute", "chain": tc.chain}); err != nil {
						return err
					}
					for table, rs := range tc.rows {
						if err := tx.Put(table, rs...); err != nil {
							return err
						}
					}
					return nil
				})
				got, err := Discover(context.Background(), s, report("u-1", "52:54:00:97:00:01"), discoveryTime)
				if err != nil {
					t.Fatal(err)
				}
				if got.Node != "n1" || got.Next != "reboot" {
					t.Errorf("Discover: node %q next %q, want n1 reboot", got.Node, got.Next)
				}
				if diff := cmp.Diff(tc.want, got.BMC, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
					t.Errorf("Discover(...).BMC (-want +got):\n%s", diff)
				}
				wantDone := []string{"osimage=img"}
				if tc.want != nil {
					wantDone = []string{"runcmd=bmcsetup", "osimage=img"}
				}
				var ran []string
				for _, u := range tc.runImages {
					ran = append(ran, "runimage="+u)
				}
				wantDone = append(ran, wantDone...)
				if diff := cmp.Diff(tc.runImages, got.RunImages); diff != "" {
					t.Errorf("Discover(...).RunImages (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(wantDone, got.Done); diff != "" {
					t.Errorf("Discover(...).Done (-want +got):\n%s", diff)
				}
				if tc.skipped == "" && len(got.Skipped) != 0 || tc.skipped != "" && (len(got.Skipped) != 1 || !strings.HasPrefix(got.Skipped[0], tc.skipped)) {
					t.Errorf("Discover(...).Skipped = %q, want one step starting %q", got.Skipped, tc.skipped)
				}
			})
		})
	}
}

func TestBMCSetupStringHidesPassword(t *testing.T) {
	b := BMCSetup{Addr: netip.MustParsePrefix("10.98.1.1/16"), Gateway: netip.MustParseAddr("10.98.0.254"), User: "root", Password: "s3cret-pw", VLAN: 3}
	for _, s := range []string{b.String(), b.LogValue().String()} {
		if strings.Contains(s, "s3cret-pw") || !strings.Contains(s, "10.98.1.1/16") || !strings.Contains(s, "vlan 3") {
			t.Errorf("String() = %q, want the settings without the password", s)
		}
	}
}
