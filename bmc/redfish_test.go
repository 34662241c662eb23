package bmc_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/provkit/provkit/bmc"
	"github.com/provkit/provkit/bmc/bmctest"
)

// TestRedfishThroughBmclib drives bmclib's redfish provider (gofish) against a fake
// Redfish service: the provider is chosen per target, the session is kept between
// operations and logged in again when the BMC expires it.
func TestRedfishThroughBmclib(t *testing.T) {
	for _, mgt := range []string{"redfish", "openbmc"} {
		t.Run(mgt, func(t *testing.T) {
			f := bmctest.NewFakeRedfish("root", "Rf7-secret")
			defer f.Close()
			var logbuf bytes.Buffer
			c := &bmc.Client{Logger: debugLogger(&logbuf)}
			ctx := context.Background()
			ts := []bmc.Target{{Node: "r1", Mgt: mgt, Addr: f.Addr(), User: "root", Password: "Rf7-secret"}}
			step := func(name string, rs []bmc.Result, want string) {
				t.Helper()
				if rs[0].Err != nil || rs[0].Text != want {
					t.Errorf("%s: %+v, want %q", name, rs[0], want)
				}
			}
			step("stat", c.Power(ctx, ts, bmc.Stat), "off")
			step("on", c.Power(ctx, ts, bmc.On), "on")
			step("stat", c.Power(ctx, ts, bmc.Stat), "on")
			step("setboot", c.SetBoot(ctx, ts, bmc.BootNet, bmc.BootOptions{UEFI: true}), "Network")
			if tg, en, mode := f.Boot(); tg != "Pxe" || en != "Once" || mode != "UEFI" {
				t.Errorf("boot override %s/%s/%s, want Pxe/Once/UEFI", tg, en, mode)
			}
			if _, logins := f.Sessions(); logins != 1 {
				t.Errorf("%d log-ins for 4 operations, want 1 (session kept)", logins)
			}
			f.ExpireSessions()
			step("off after the session expired", c.Power(ctx, ts, bmc.Off), "off")
			if _, logins := f.Sessions(); logins != 2 {
				t.Errorf("%d log-ins, want 2", logins)
			}
			if d := cmp.Diff([]string{"On", "ForceOff"}, f.Resets()); d != "" {
				t.Errorf("resets (-want +got):\n%s", d)
			}
			c.Close(ctx)
			if active, _ := f.Sessions(); active != 0 {
				t.Errorf("%d sessions left after Close", active)
			}

			bad := []bmc.Target{{Node: "r2", Mgt: mgt, Addr: f.Addr(), User: "root", Password: "Rf7-wrong"}}
			rs := c.Power(ctx, bad, bmc.Stat)
			if rs[0].Err == nil {
				t.Fatal("wrong password: no error")
			}
			line, _ := bmc.FormatResult(rs[0])
			t.Log(line)
			if strings.Contains(line+logbuf.String(), "Rf7") {
				t.Errorf("password leaked: %s\n%s", line, logbuf.String())
			}
		})
	}
}
