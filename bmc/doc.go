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
// A CLI glues it to the cluster's tables:
//
//	c := &bmc.Client{}
//	defer c.Close(context.Background())
//	results := c.Power(ctx, []bmc.Target{
//		{Node: "n1", Mgt: "ipmi", Addr: "10.0.0.101", User: "admin", Password: bmc.Secret(pw)},
//	}, bmc.On)
//	os.Exit(bmc.Report(os.Stdout, os.Stderr, results)) // n1: on
package bmc
