// Package bmc is power and boot-device control for many nodes at once: xCAT's rpower,
// rsetboot and the power part of nodestat, over github.com/bmc-toolbox/bmclib/v2.
//
// Each Target is one node's BMC as the cluster's tables describe it (nodehm.mgt,
// ipmi.bmc, credentials). The provider is chosen per target: "ipmi" goes to a native
// IPMI v2.0 LAN client (package lanplus, registered with bmclib as provider "lanplus"),
// "redfish" and "openbmc" to bmclib's redfish provider, "ipmitool" (or Client.Ipmitool) to
// bmclib's ipmitool provider. A Client fans an operation out to all targets with bounded
// concurrency and a per-node timeout, returns one Result per node, stops when its context
// is cancelled, and keeps each BMC's session for the next operation.
//
// Passwords travel as Secret, which never prints; they are never put in argv (the native
// client needs no program, and bmclib's ipmitool provider passes -E with the password in
// the environment), in log lines or in error messages.
//
// A CLI glues it to the cluster's tables: one Target per node from nodehm.mgt, ipmi.bmc
// and the credentials, then
//
//	c := &bmc.Client{}
//	defer c.Close(context.Background())
//	targets := []bmc.Target{
//		{Node: "n1", Mgt: "ipmi", Addr: "10.0.0.101", User: "admin", Password: bmc.Secret(pw)},
//	}
//	os.Exit(c.Rpower(ctx, targets, "on", os.Stdout, os.Stderr)) // prints "n1: on"
//
// Rsetboot does the same for boot devices ("n1: Network"), and StatWithPower gives
// nodestat -p's "noping(off)" from a Stat result.
//
// Configuring a node's own BMC from the node (xCAT's bmcsetup, which discovery's
// runcmd=bmcsetup runs in the discovery image) is package bmc/ipmi/inband: in-band IPMI
// through /dev/ipmi0, no network and no password needed.
package bmc
