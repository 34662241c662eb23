package inband_test

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/provkit/provkit/bmc/ipmi"
	"github.com/provkit/provkit/bmc/ipmi/inband"
)

// A BMC that accepts every command, standing in for /dev/ipmi0: Setup's steps are what it
// sets. With a real device, pass the *inband.Dev of inband.Open.
func ExampleSetup() {
	accept := inband.ExchangerFunc(func(_ context.Context, r ipmi.Request) (ipmi.Response, error) {
		resp := ipmi.Response{NetFn: r.NetFn + 1, Cmd: r.Cmd}
		switch r.Cmd {
		case ipmi.CmdGetUserAccess:
			resp.Data = []byte{4, 1, 1, 0x14} // 4 users
		case ipmi.CmdGetUserName:
			resp.Data = make([]byte, 16) // all unnamed
		}
		return resp, nil
	})
	res, err := inband.Setup(context.Background(), accept, inband.Config{
		Addr: netip.MustParsePrefix("10.98.1.7/16"), Gateway: netip.MustParseAddr("10.98.0.254"),
		User: "root", Password: "s3cret",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range res.Steps {
		fmt.Println(s)
	}
	// Output:
	// ipsrc static
	// ipaddr 10.98.1.7
	// netmask 255.255.0.0
	// defgw ipaddr 10.98.0.254
	// vlan id off
	// user 2 name root
	// user 2 password
	// user 2 access channel 1 privilege admin
	// user 2 enable
	// channel 1 access always, privilege limit admin
	// channel 1 access always, privilege limit admin (active)
}
