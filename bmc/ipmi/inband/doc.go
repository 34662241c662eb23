// Package inband talks to the local BMC over in-band IPMI: the Linux IPMI device
// (/dev/ipmi0 of the ipmi_devintf driver, with ipmi_si or ipmi_ssif and ipmi_msghandler
// behind it), through its IPMICTL_SEND_COMMAND and IPMICTL_RECEIVE_MSG_TRUNC ioctls. The
// system interface needs no session and no password: whoever is root on the node owns
// its BMC, which is how xCAT's discovery image configures a new node's BMC.
//
// Setup is xCAT's bmcsetup over it: a static address, netmask and gateway (and VLAN) on
// the LAN channel, and an enabled administrator with a password, so that the BMC answers
// ipmitool -I lanplus from then on. The messages are package ipmi's.
//
//	dev, err := inband.Open("") // /dev/ipmi0
//	if err != nil {
//		return err
//	}
//	defer dev.Close()
//	res, err := inband.Setup(ctx, dev, inband.Config{
//		Addr:    netip.MustParsePrefix("10.98.1.7/16"),
//		Gateway: netip.MustParseAddr("10.98.0.254"),
//		User:    "root", Password: pw,
//	})
//	fmt.Println(res.Steps) // never holds the password; nor do the errors
package inband
