package bmc

import (
	"fmt"
	"strings"
)

// Action is a power action, named as xCAT's rpower names them.
type Action string

// Power actions.
const (
	Stat    Action = "stat"    // report the power state
	On      Action = "on"      // power on (nothing to do if on)
	Off     Action = "off"     // power off at once (nothing to do if off)
	SoftOff Action = "softoff" // ask the OS to shut down (ACPI soft-off)
	Reset   Action = "reset"   // hard reset (nothing to do if off)
	Boot    Action = "boot"    // reset if on, power on if off
	Cycle   Action = "cycle"   // power cycle if on, power on if off
)

// ParseAction parses an rpower verb: on, off, softoff, reset, boot, cycle, or stat
// (also state and status).
func ParseAction(s string) (Action, error) {
	switch a := Action(strings.ToLower(strings.TrimSpace(s))); a {
	case "state", "status":
		return Stat, nil
	case Stat, On, Off, SoftOff, Reset, Boot, Cycle:
		return a, nil
	}
	return "", fmt.Errorf("bmc: power action %q: want on, off, softoff, reset, boot, cycle or stat", s)
}

// PowerState is a node's power state: "on", "off", or what a Redfish BMC said in lower
// case ("poweringon" ...).
type PowerState string

// Power states.
const (
	PowerOn  PowerState = "on"
	PowerOff PowerState = "off"
)

// normalizePower turns what a provider says into a PowerState: bmclib's ipmitool provider
// returns ipmitool's "Chassis Power is on", Redfish says "On", the native one "on".
func normalizePower(s string) (PowerState, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	switch {
	case l == "on" || strings.HasSuffix(l, "power is on"):
		return PowerOn, nil
	case l == "off" || strings.HasSuffix(l, "power is off"):
		return PowerOff, nil
	case l == "" || strings.ContainsAny(l, "\n\t"):
		return "", fmt.Errorf("bmc: unknown power state %q", s)
	}
	return PowerState(l), nil
}

// BootDevice is a boot device, named as xCAT's rsetboot names them.
type BootDevice string

// Boot devices.
const (
	BootNet     BootDevice = "net"     // network (PXE)
	BootDisk    BootDevice = "hd"      // the default hard disk
	BootCD      BootDevice = "cd"      // CD or DVD
	BootSetup   BootDevice = "setup"   // the firmware setup menu
	BootFloppy  BootDevice = "floppy"  // floppy (or its emulation)
	BootDefault BootDevice = "default" // clear the override: boot as the firmware is set up
)

// ParseBootDevice parses an rsetboot device: net, hd, cd, setup, floppy, or def(ault).
func ParseBootDevice(s string) (BootDevice, error) {
	switch d := BootDevice(strings.ToLower(strings.TrimSpace(s))); d {
	case "def":
		return BootDefault, nil
	case BootNet, BootDisk, BootCD, BootSetup, BootFloppy, BootDefault:
		return d, nil
	}
	return "", fmt.Errorf("bmc: boot device %q: want net, hd, cd, setup, floppy or default", s)
}

// bmclibName is bmclib's name for the device.
func (d BootDevice) bmclibName() string {
	switch d {
	case BootNet:
		return "pxe"
	case BootDisk:
		return "disk"
	case BootCD:
		return "cdrom"
	case BootSetup:
		return "bios"
	case BootFloppy:
		return "floppy"
	}
	return "none"
}

// xcatText is what xCAT's rsetboot prints for a device (its ipmi plugin's table).
func (d BootDevice) xcatText() string {
	switch d {
	case BootNet:
		return "Network"
	case BootDisk:
		return "Hard Drive"
	case BootCD:
		return "CD/DVD"
	case BootSetup:
		return "BIOS Setup"
	case BootFloppy:
		return "Floppy"
	}
	return "boot override inactive"
}

// bootFromBmclib maps bmclib's device names back.
func bootFromBmclib(s string) BootDevice {
	switch strings.ToLower(s) {
	case "pxe":
		return BootNet
	case "disk":
		return BootDisk
	case "cdrom":
		return BootCD
	case "bios":
		return BootSetup
	case "floppy":
		return BootFloppy
	}
	return BootDefault
}

// BootOptions are rsetboot's flags.
type BootOptions struct {
	Persistent bool // -p: every boot, not only the next one
	UEFI       bool // -u: boot in UEFI mode
}
