// Package bmctest runs BMCs for tests and benchmarks: OpenIPMI's ipmi_sim simulators on
// loopback ports, each with a chassis control script whose calls and state the test can
// read (Start, StartT); a BMC that never answers (Blackhole); a small in-process IPMI
// v2.0 BMC (FakeBMC) and Redfish service (FakeRedfish) for tests that must not depend on
// a Debian program.
//
//	sims := bmctest.StartT(t, 100, bmctest.Options{})
//	for _, s := range sims.List {
//		// s.Addr, s.User, s.Password; after an rpower on, s.Power() == "1"
//	}
package bmctest
