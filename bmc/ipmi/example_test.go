package ipmi_test

import (
	"fmt"

	"github.com/provkit/provkit/bmc/ipmi"
)

func ExampleAppendRequest() {
	b := ipmi.AppendRequest(nil, ipmi.Request{NetFn: ipmi.NetFnChassis, Cmd: ipmi.CmdChassisControl, Seq: 1, Data: []byte{byte(ipmi.PowerUp)}})
	fmt.Printf("% x\n", b)

	// The BMC's answer to Get Chassis Status: power on, restore policy "previous".
	answer := ipmi.AppendResponse(nil, ipmi.Response{NetFn: ipmi.NetFnChassis + 1, Cmd: ipmi.CmdGetChassisStatus, Seq: 2, Data: []byte{0x21, 0, 0}})
	resp, err := ipmi.ParseResponse(answer)
	if err != nil {
		panic(err)
	}
	st, _ := ipmi.ParseChassisStatus(resp.Data)
	fmt.Println("power on:", st.PowerOn, "restore policy:", st.RestorePolicy)
	// Output:
	// 20 00 e0 81 04 02 01 78
	// power on: true restore policy: 1
}

func ExampleBootFlags() {
	f := ipmi.BootFlags{Valid: true, EFI: true, Device: ipmi.BootPXE}
	fmt.Printf("% x\n", f.Append([]byte{ipmi.BootParamFlags}))
	// Output: 05 a0 04 00 00 00
}
