// Package bmc will own power and boot-device control across many nodes through bmclib (IPMI,
// Redfish): bounded fan-out, per-node timeouts and per-node results.
package bmc
